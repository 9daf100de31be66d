"""The ``study`` subcommand: ``python -m benchmark study studies/NAME.yaml [options]``.

``add_study_parser(subparsers, common)`` adds it to the CLI (``common`` adds ``--plugin``,
``--workdir`` and ``--quiet``); :func:`cmd_study` runs it. Nothing heavy is imported until
the handler runs.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path

from benchmark.pipeline.cli_options import add_executor_options, executor_of

EXIT_OK, EXIT_FAILED = 0, 1


def add_study_parser(
    subparsers: argparse._SubParsersAction, common: Callable[[argparse.ArgumentParser], None]
) -> argparse.ArgumentParser:
    """Add ``study``: run a grid of cells from a study file, print and record its table."""
    parser = subparsers.add_parser(
        "study",
        help="run a study grid (tokenizers x params x tasks x params x seeds) and print its table",
    )
    parser.add_argument("study", type=Path, metavar="studies/NAME.yaml")
    parser.add_argument("--preset", help="mini or full (default: the study's, else mini)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--results", type=Path, default=Path("results/runs"), help="where records go"
    )
    parser.add_argument("--data-root", type=Path, help="folder holding real corpora (full)")
    parser.add_argument("--overwrite", action="store_true", help="rerun cells whose records exist")
    parser.add_argument("--fail-fast", action="store_true", help="stop at the first failed step")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (CPU default 1)")
    parser.add_argument(
        "--corpus-scale", type=float, default=1.0, help="shrink the synthetic mini corpus"
    )
    add_executor_options(parser)
    common(parser)
    return parser


def cmd_study(args: argparse.Namespace) -> int:
    """Run the study; print the summary table, where the record is, and failed cells."""
    from benchmark.pipeline.config import RunConfig
    from benchmark.registry import build_registries
    from benchmark.studies.run import format_table, run_study
    from benchmark.studies.schema import load_study

    study = load_study(args.study, args.preset)
    base = RunConfig(
        tokenizers=(),
        tasks=(),
        preset=study.preset,
        device=args.device,
        workdir=args.workdir,
        results_dir=args.results,
        data_root=args.data_root,
        overwrite=args.overwrite,
        corpus_scale=args.corpus_scale,
        progress=not args.quiet,
        threads=args.threads,
        plugins=tuple(args.plugin),
        fail_fast=args.fail_fast,
        shard_utterances=args.shard_utterances,
    )
    if base.threads is None and base.resolved_device() == "cpu":
        base = dataclasses.replace(base, threads=1)
    executor = executor_of(args)
    if study.vocoder is not None:
        from benchmark.studies.vocoder import run_vocoder_study

        result = run_vocoder_study(study, base, build_registries(args.plugin), executor)
    else:
        result = run_study(study, base, build_registries(args.plugin), executor)
    print(f"study {study.name} ({study.preset}): {study.description}")
    print(format_table(result.summary))
    for row in result.rows:
        if row["status"] not in ("ok", "refused"):  # refused: a single-layer vocoder
            print(f"{row['status']:<11} {row['tokenizer']} / {row['task']} / seed {row['seed']}: "
                  f"{row.get('error') or ''}")  # fmt: skip
    note = "written" if result.written else "unchanged"
    ran = f"{result.ran} {result.ran_what} run now"
    print(f"{len(result.rows)} rows, {ran}; study record ({note}) -> {result.path}")
    failed = any(row["status"] not in ("ok", "refused") for row in result.rows)
    return EXIT_FAILED if failed or result.record.status != "ok" else EXIT_OK
