"""Command line: ``python -m benchmark {list,plan,run,check-tokenizer,prepare,...} ...``.

Only argparse and light modules are imported at start-up, so ``--help`` answers at once;
torch and the models load when a command needs them. Exit codes: 0 success, 1 a run or check
failed, 2 a usage error (unknown name, bad card, bad option).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from pathlib import Path

from benchmark.errors import (
    BenchmarkError,
    CardError,
    DuplicateNameError,
    PluginError,
    UnknownNameError,
    UsageError,
)

log = logging.getLogger("benchmark")
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    """argparse with exit code 2 and a one-line message for usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        raise SystemExit(f"{self.prog}: error: {message}") from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--plugin",
        action="append",
        type=Path,
        default=[],
        metavar="FILE.py",
        help="load a plugin file that registers tokenizers, tasks or metrics (repeatable)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("BENCHMARK_WORKDIR", "work")),
        help="caches: corpora, tokens, fitted tokenizers (default: ./work or $BENCHMARK_WORKDIR)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show tracebacks and debug logs",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no heavy imports)."""
    parser = _Parser(
        prog="python -m benchmark",
        description="Benchmark discrete audio tokenizers: conformance checks, downstream tasks "
        "(ASR, speaker ID, emotion), vocoders, and typed result records.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    listing = commands.add_parser("list", help="list registered tokenizers, tasks or metrics")
    listing.add_argument("kind", choices=["tokenizers", "tasks", "metrics"])
    _common(listing)

    run = commands.add_parser("run", help="plan and execute: encode, train, evaluate, record")
    _run_options(run)
    plan = commands.add_parser(
        "plan", help="print the step graph of a run: each step, its key, done or to do and why"
    )
    _run_options(plan)

    check = commands.add_parser("check-tokenizer", help="run the tokenizer conformance suite")
    check.add_argument("tokenizer", metavar="NAME|CARD.yaml")
    check.add_argument("--preset", default="mini")
    check.add_argument("--device", default="cpu")
    check.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    _common(check)

    prepare = commands.add_parser("prepare", help="prepare a corpus (mini: synthesise it)")
    prepare.add_argument("corpus", choices=["mini"])
    prepare.add_argument("--corpus-scale", type=float, default=1.0)
    _common(prepare)

    vocoder = commands.add_parser(
        "train-vocoder", help="train a (scalable) unit HiFi-GAN vocoder on a tokenizer's tokens"
    )
    vocoder.add_argument("--tokenizer", required=True, metavar="NAME|CARD.yaml")
    vocoder.add_argument(
        "--layers",
        metavar="I,J",
        help="codebook indices (0-based) to train on; default all (the scalable vocoder)",
    )
    vocoder.add_argument(
        "--layer-dropout",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="blank random codebooks while training (default: on when training on all)",
    )
    _vocoder_options(vocoder)
    vocoder.add_argument("--out", type=Path, help="run folder (default: under WORKDIR/vocoders)")
    vocoder.add_argument("--overwrite", action="store_true", help="retrain from scratch")
    _common(vocoder)

    study = commands.add_parser(
        "vocoder-study",
        help="single-layer vs scalable vocoders: train them, print the mel-distance table",
    )
    study.add_argument("--tokenizer", required=True, metavar="NAME|CARD.yaml")
    _vocoder_options(study)
    study.add_argument("--out", type=Path, help="JSON of the table (default: WORKDIR/studies/)")
    _common(study)

    from benchmark.leaderboard.command import add_leaderboard_parser, add_profile_parser

    add_profile_parser(commands, _common)
    add_leaderboard_parser(commands, _common)
    from benchmark.studies.command import add_study_parser

    add_study_parser(commands, _common)
    return parser


def _run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--tokenizer",
        action="append",
        required=True,
        metavar="NAME|CARD.yaml",
        help="tokenizer name or card path (repeatable)",
    )
    run.add_argument(
        "--task",
        action="append",
        required=True,
        metavar="NAME|CARD.yaml|all",
        help="task name, card path, or 'all' (repeatable)",
    )
    run.add_argument("--preset", default="mini", help="mini (offline, CPU) or full")
    run.add_argument("--seed", type=int, action="append", help="seed (repeatable; default 0)")
    run.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    run.add_argument(
        "--results",
        type=Path,
        default=Path("results/runs"),
        help="where result records go (default: results/runs)",
    )
    run.add_argument("--data-root", type=Path, help="folder holding real corpora (full preset)")
    run.add_argument("--overwrite", action="store_true", help="rerun jobs whose records exist")
    run.add_argument(
        "--fail-fast", action="store_true", help="stop at the first failed step (default: go on)"
    )
    run.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads for torch (default: 1 on CPU, where the small mini models run "
        "fastest and a busy machine cannot stall them; torch's default on CUDA)",
    )
    run.add_argument(
        "--tokenizer-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a tokenizer card parameter, VALUE in YAML (e.g. layers=[3,7] "
        "num_clusters=500); records go to <tokenizer>~<hash>",
    )
    run.add_argument(
        "--task-param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a task card parameter (e.g. fusion=average epochs=5)",
    )
    run.add_argument(
        "--corpus-scale",
        type=float,
        default=1.0,
        help="shrink the synthetic mini corpus (smoke tests); default 1.0",
    )
    from benchmark.pipeline.cli_options import add_executor_options

    add_executor_options(run)
    _common(run)


def _vocoder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="mini", help="mini (CPU, minutes) or full (GPU)")
    parser.add_argument("--steps", type=int, help="override the preset's training steps")
    parser.add_argument(
        "--adversarial-steps",
        type=int,
        metavar="N",
        help="train the last N steps with the discriminators (mini: 0, full: all)",
    )
    parser.add_argument(
        "--corpus", help="mini-tts, mini-asr, ljspeech or libritts (default: the preset's)"
    )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-root", type=Path, help="folder holding LJSpeech-1.1 / LibriTTS")
    parser.add_argument("--corpus-scale", type=float, default=1.0, help="shrink the mini corpus")


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s" if debug else "%(message)s",
        stream=sys.stderr,
    )
    if not debug:
        for noisy in ("urllib3", "matplotlib", "numba", "speechbrain", "transformers"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def _registries(args: argparse.Namespace):
    from benchmark.registry import build_registries

    return build_registries(args.plugin)


def parse_overrides(items: list[str], option: str) -> tuple[tuple[str, object], ...]:
    """``["k=v", ...]`` -> sorted ``((k, yaml(v)), ...)``; a malformed item is a UsageError."""
    import yaml

    parsed: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{option} {item!r}: expected KEY=VALUE, e.g. layers=[3,7]")
        try:
            parsed[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise UsageError(f"{option} {item!r}: VALUE is not valid YAML") from None
    return tuple(sorted(parsed.items()))


def cmd_list(args: argparse.Namespace) -> int:
    """Print each registered name, what it is and where it came from."""
    registries = _registries(args)
    kind = args.kind.rstrip("s")
    entries = list(registries.of(kind))
    width = max((len(e.name) for e in entries), default=4)
    for entry in entries:
        print(f"{entry.name:<{width}}  {entry.description}  [{entry.source.describe()}]")
    return EXIT_OK


def _run_config(args: argparse.Namespace):
    from benchmark.pipeline.config import RunConfig

    config = RunConfig(
        tokenizers=tuple(args.tokenizer),
        tasks=tuple(args.task),
        preset=args.preset,
        seeds=tuple(args.seed or [0]),
        device=args.device,
        workdir=args.workdir,
        results_dir=args.results,
        data_root=args.data_root,
        overwrite=args.overwrite,
        corpus_scale=args.corpus_scale,
        progress=not args.quiet,
        tokenizer_params=parse_overrides(args.tokenizer_param, "--tokenizer-param"),
        task_params=parse_overrides(args.task_param, "--task-param"),
        threads=args.threads,
        plugins=tuple(args.plugin),
        fail_fast=args.fail_fast,
        shard_utterances=getattr(args, "shard_utterances", 2000),
    )
    if config.threads is None and config.resolved_device() == "cpu":
        config = dataclasses.replace(config, threads=1)
    return config


def cmd_run(args: argparse.Namespace) -> int:
    """Plan and execute the jobs; print one line per outcome."""
    from benchmark.pipeline.cli_options import executor_of
    from benchmark.pipeline.commands import run

    config = _run_config(args)
    outcomes = run(config, _registries(args), executor_of(args))
    for outcome in outcomes:
        value = f"{outcome.main_metric}={outcome.value:.2f}" if outcome.value is not None else ""
        note = " (up to date, skipped)" if outcome.skipped else ""
        error = f": {outcome.error}" if outcome.error else ""
        print(
            f"{outcome.status:<11} {outcome.tokenizer} / {outcome.task} / seed {outcome.seed} "
            f"{value}{note}{error}  -> {outcome.path}"
        )
    if "all" in config.tasks:
        from benchmark.leaderboard.build import build_site

        site = build_site(config.results_dir)
        print(f"leaderboard: {Path(site.index).resolve()}")
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """Print the step graph: state, key, step, and why it is to do."""
    from benchmark.pipeline.commands import format_plan, plan

    _, graph = plan(_run_config(args), _registries(args))
    for line in format_plan(graph):
        print(line)
    return EXIT_OK


def cmd_check_tokenizer(args: argparse.Namespace) -> int:
    """Build one tokenizer (fitted through the pipeline if it needs it) and check it."""
    from benchmark.conformance import check_tokenizer, failed_checks, format_results
    from benchmark.pipeline.commands import make_env, tokenizer_tokens
    from benchmark.pipeline.config import RunConfig

    config = RunConfig(
        (args.tokenizer,), (), preset=args.preset, device=args.device, workdir=args.workdir,
        progress=not args.quiet, threads=args.threads, plugins=tuple(args.plugin),
    )  # fmt: skip
    env = make_env(config, _registries(args))
    entry = env.entry("tokenizer", args.tokenizer)
    card = entry.card.resolve(args.preset)
    from benchmark.pipeline.env import component_spec

    tokenizer = env.tokenizer(component_spec(entry, dict(card.params), card.weights))
    if tokenizer.info.is_continuous:
        raise UsageError(
            f"{entry.name!r} is a continuous reference (features, no tokens, no bitrate): "
            "check-tokenizer checks tokenizers only"
        )
    if tokenizer.needs_fit or tokenizer.pretrain_spec():  # through its pretrain / fit steps
        tokenizer = tokenizer_tokens(env, args.tokenizer, {})[0]
    results = check_tokenizer(tokenizer)
    for line in format_results(results):
        print(line)
    failed = failed_checks(results)
    skipped = sum(r.skipped for r in results)
    passed = len(results) - len(failed) - skipped
    print(f"{entry.name}: {passed} passed, {len(failed)} failed, {skipped} skipped")
    return EXIT_FAILED if failed else EXIT_OK


def cmd_prepare(args: argparse.Namespace) -> int:
    """Prepare a corpus and print where it is."""
    from benchmark.data.mini import MiniConfig, prepare_mini

    folder = prepare_mini(
        args.workdir / "data", MiniConfig(seed=0, scale=args.corpus_scale), progress=not args.quiet
    )
    print(folder)
    return EXIT_OK


def cmd_train_vocoder(args: argparse.Namespace) -> int:
    """Train one vocoder (see :mod:`benchmark.vocoders.commands`)."""
    from benchmark.vocoders.commands import train_vocoder_command

    return train_vocoder_command(args, _registries(args))


def cmd_vocoder_study(args: argparse.Namespace) -> int:
    """Single-layer vs scalable vocoders (see :mod:`benchmark.vocoders.commands`)."""
    from benchmark.vocoders.commands import vocoder_study_command

    return vocoder_study_command(args, _registries(args))


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Build the static site from the records (see :mod:`benchmark.leaderboard`)."""
    from benchmark.leaderboard.command import cmd_leaderboard as build

    return build(args)


def cmd_profile(args: argparse.Namespace) -> int:
    """Encode/decode time and memory of one tokenizer, stored as a record."""
    from benchmark.leaderboard.command import cmd_profile as profile

    return profile(args)


def cmd_study(args: argparse.Namespace) -> int:
    """Run a study grid (see :mod:`benchmark.studies.command`)."""
    from benchmark.studies.command import cmd_study as run_study_command

    return run_study_command(args)


COMMANDS = {
    "list": cmd_list,
    "run": cmd_run,
    "plan": cmd_plan,
    "check-tokenizer": cmd_check_tokenizer,
    "prepare": cmd_prepare,
    "train-vocoder": cmd_train_vocoder,
    "vocoder-study": cmd_vocoder_study,
    "profile": cmd_profile,
    "leaderboard": cmd_leaderboard,
    "study": cmd_study,
}


def main(argv: list[str] | None = None) -> int:
    """Parse, dispatch, and turn user errors into one line and an exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        if isinstance(exc.code, str):
            print(exc.code, file=sys.stderr)
            return EXIT_USAGE
        return EXIT_OK if exc.code in (0, None) else EXIT_USAGE
    _setup_logging(args.debug)
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return COMMANDS[args.command](args)
    except _Terminated:
        print("terminated (SIGTERM): stopped cleanly; rerun to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BenchmarkError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE if isinstance(exc, USAGE_ERRORS) else EXIT_FAILED
    except OSError as exc:  # one not wrapped by a writer: still one line with its path
        if args.debug:
            raise
        print(f"error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error_line(exc: OSError) -> str:
    """``<path>: <cause>`` (``no space left on device`` for ENOSPC), or the bare error."""
    from benchmark.pipeline.store import describe_os_error

    if exc.filename is None:
        return describe_os_error(exc, "(unknown path)")
    paths = f"{exc.filename} -> {exc.filename2}" if exc.filename2 else str(exc.filename)
    return describe_os_error(exc, paths)


#: Errors that mean the command line (or a card or plugin it names) is wrong: exit code 2.
USAGE_ERRORS = (UsageError, UnknownNameError, CardError, PluginError, DuplicateNameError)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C (temp files removed by the writers' cleanups)."""


def _terminated(signum: int, frame: object) -> None:
    raise _Terminated()
