"""The ``train-vocoder`` and ``vocoder-study`` commands (their parsers live in the CLI)."""

from __future__ import annotations

import argparse

from benchmark.errors import UsageError

EXIT_OK = 0


def _vocoder_setup(args: argparse.Namespace, registries):
    """Step environment, preset and encoded data of a vocoder command."""
    from benchmark.pipeline.commands import make_env
    from benchmark.pipeline.config import RunConfig
    from benchmark.vocoders.presets import resolve_preset
    from benchmark.vocoders.study import check_device, prepare_data

    if args.steps is not None and args.steps < 1:
        raise UsageError(f"--steps must be >= 1, got {args.steps}")
    if args.adversarial_steps is not None and args.adversarial_steps < 0:
        raise UsageError(f"--adversarial-steps must be >= 0, got {args.adversarial_steps}")
    preset = resolve_preset(args.preset).replace(
        steps=args.steps, corpus=args.corpus, adversarial_steps=args.adversarial_steps
    )
    config = RunConfig(
        tokenizers=(args.tokenizer,),
        tasks=(),
        preset=args.preset,
        device=check_device(args.device),
        workdir=args.workdir,
        data_root=args.data_root,
        corpus_scale=args.corpus_scale,
        progress=not args.quiet,
        plugins=tuple(args.plugin),
    )
    env = make_env(config, registries)
    return env, preset, prepare_data(env, args.tokenizer, preset)


def train_vocoder_command(args: argparse.Namespace, registries) -> int:
    """Train one vocoder; print where it is and its validation curve."""
    from benchmark.vocoders.study import parse_layers, train_one

    env, preset, data = _vocoder_setup(args, registries)
    layers = parse_layers(args.layers, data.info.num_codebooks)
    dropout = args.layer_dropout
    if dropout is None:
        dropout = len(layers) == data.info.num_codebooks
    run = train_one(
        data, preset, layers, dropout, args.workdir, args.seed, env.device,
        not args.quiet, args.out, args.overwrite,
    )  # fmt: skip
    note = " (already trained, reused)" if run.skipped else ""
    if run.resumed_from is not None:
        note = f" (resumed at step {run.resumed_from})"
    print(f"vocoder: {run.vocoder_path}{note}")
    for record in run.history:
        dnsmos = (record.get("dnsmos") or {}).get("value")
        extra = f"  dnsmos {dnsmos:.2f}" if dnsmos is not None else ""
        print(f"  step {record['step']:>6}  valid mel distance {record['mel_distance']:.4f}{extra}")
    return EXIT_OK


def vocoder_study_command(args: argparse.Namespace, registries) -> int:
    """Train single-layer and scalable vocoders, print and save the mel-distance table."""
    from benchmark.vocoders.study import format_table, run_study, write_json

    env, preset, data = _vocoder_setup(args, registries)
    study = run_study(data, preset, args.workdir, args.seed, env.device, not args.quiet)
    out = args.out or args.workdir / "studies" / f"vocoder-{data.tokenizer_name}-{preset.name}.json"
    write_json(out, study)
    print(
        f"valid mel distance ({study['valid_utterances']} utterances, lower is better), "
        f"tokenizer {data.tokenizer_name}, preset {preset.name}, {preset.steps} steps each:"
    )
    for line in format_table(study):
        print(line)
    print(f"({study['seconds']:.0f} s) -> {out}")
    return EXIT_OK
