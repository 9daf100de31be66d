"""The ``leaderboard`` and ``profile`` subcommands: parsers and handlers for ``cli.py``.

``add_*_parser(subparsers, common)`` adds the subcommand (``common`` adds the CLI's shared
options such as ``--plugin`` and ``--workdir``; without it a minimal set is added), and
``cmd_*(args) -> int`` runs it. Nothing heavy is imported until a handler runs.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Callable
from pathlib import Path

from benchmark.errors import BenchmarkError, UsageError, WeightsUnavailableError

log = logging.getLogger(__name__)
EXIT_OK, EXIT_FAILED = 0, 1

#: Defaults of the leaderboard build (here, so the parser imports nothing heavy).
DEFAULT_RESULTS = Path("results/runs")
DEFAULT_OUT = Path("leaderboard/site")
DEFAULT_PUBLISHED = Path(__file__).resolve().parent.parent.parent / "results" / "published"


def _minimal_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--plugin", action="append", type=Path, default=[], metavar="FILE.py")
    parser.add_argument(
        "--workdir", type=Path, default=Path(os.environ.get("BENCHMARK_WORKDIR", "work"))
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def add_leaderboard_parser(
    subparsers: argparse._SubParsersAction,
    common: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """Add ``leaderboard``: build the static site from result records."""
    parser = subparsers.add_parser(
        "leaderboard", help="build the static leaderboard site from result records"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=DEFAULT_RESULTS,
        help=f"result records (default: {DEFAULT_RESULTS})",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"site folder (default: {DEFAULT_OUT}/index.html)",
    )
    parser.add_argument(
        "--published",
        type=Path,
        default=DEFAULT_PUBLISHED,
        help="published reference numbers (default: results/published)",
    )
    parser.add_argument(
        "--compare",
        type=Path,
        metavar="OTHER_RESULTS_DIR",
        help="list cells that changed beyond their intervals against these",
    )
    parser.add_argument(
        "--resamples", type=int, default=1000, help="paired bootstrap resamples (default 1000)"
    )
    (common or _minimal_common)(parser)
    return parser


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Build the site, print its path (and the regression diff with ``--compare``)."""
    from benchmark.leaderboard.build import build_site
    from benchmark.leaderboard.compare import format_changes

    if args.resamples < 100:
        raise UsageError(f"--resamples must be >= 100, got {args.resamples}")
    site = build_site(
        results_dir=args.results,
        out_dir=args.out,
        published_dir=args.published,
        compare_dir=args.compare,
        resamples=args.resamples,
    )
    if site.changes is not None:
        for line in format_changes(site.changes, str(args.compare)):
            print(line)
    print(site.index.resolve())
    return EXIT_OK


def add_profile_parser(
    subparsers: argparse._SubParsersAction,
    common: Callable[[argparse.ArgumentParser], None] | None = None,
) -> argparse.ArgumentParser:
    """Add ``profile``: encode/decode time and memory of a tokenizer, as a record."""
    parser = subparsers.add_parser(
        "profile", help="measure a tokenizer's encode/decode time and memory; write a record"
    )
    parser.add_argument("--tokenizer", required=True, metavar="NAME|CARD.yaml")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--preset", default="mini", help="mini or full")
    parser.add_argument("--results", type=Path, default=Path("results/runs"))
    parser.add_argument("--seconds", type=float, default=16.0, help="utterance length (s)")
    parser.add_argument("--batch", type=int, default=16, help="utterances in the batched call")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per call (median)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first")
    parser.add_argument("--threads", type=int, help="CPU threads (default: 1 on CPU)")
    parser.add_argument("--overwrite", action="store_true", help="profile again if up to date")
    (common or _minimal_common)(parser)
    return parser


def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError(f"--device {device}: no CUDA device is visible; use --device cpu")
    if device != "cpu" and not device.startswith("cuda"):
        raise UsageError(f"--device {device!r}: choose auto, cpu, cuda or cuda:N")
    return device


def cmd_profile(args: argparse.Namespace) -> int:
    """Build (and fit) the tokenizer, profile it, write and print its profile record.

    The record is skipped when one with the same key exists (``--overwrite`` measures again).
    Tokenizers that ``needs_fit`` are fitted here as ``check-tokenizer`` does; the pipeline's
    profile step is handed an already fitted tokenizer instead.
    """
    import torch

    from benchmark.pipeline.records import ResultRecord, record_path
    from benchmark.profiles import PROFILE_TASK, ProfileSettings, profile_step
    from benchmark.provenance import code_version, package_versions

    device = _resolve_device(args.device)
    threads = args.threads or (1 if device == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    try:
        settings = ProfileSettings(
            args.seconds, args.batch, args.runs, args.warmup, threads=torch.get_num_threads()
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    from benchmark.pipeline.commands import make_env, tokenizer_tokens
    from benchmark.pipeline.config import RunConfig

    config = RunConfig(
        (args.tokenizer,), (), preset=args.preset, device=device, workdir=args.workdir,
        progress=not args.quiet, threads=threads, plugins=tuple(args.plugin),
    )  # fmt: skip
    env = make_env(config)
    entry = env.entry("tokenizer", args.tokenizer)
    card = entry.card.resolve(args.preset)
    path = record_path(args.results, args.preset, entry.name, PROFILE_TASK, 0)
    provenance = {
        "code": code_version(),
        "packages": package_versions(),
        "tokenizer_source": entry.source.to_dict(),
        "weights": dict(card.weights) if card.weights else None,
        "cards": {"tokenizer": entry.card.sha256},
    }
    try:
        # built, and fitted once per key through the pipeline's own fit step
        tokenizer, tokenizer_fp, _ = tokenizer_tokens(env, args.tokenizer, {})
    except UsageError:
        raise
    except BenchmarkError as exc:
        status = "unavailable" if isinstance(exc, WeightsUnavailableError) else "failed"
        record = ResultRecord(
            status,
            entry.name,
            PROFILE_TASK,
            0,
            args.preset,
            kind="profile",
            provenance=provenance,
            error={"type": type(exc).__name__, "message": str(exc)},
        )
        record.to_disk(path)
        print(f"{status:<11} {entry.name} / profile: {exc}  -> {path}")
        return EXIT_FAILED
    info = {
        **tokenizer.info.to_dict(),
        "description": entry.description,
        "display_name": entry.card.display_name,
    }
    path, record, skipped = profile_step(
        tokenizer,
        entry.name,
        args.preset,
        device,
        args.results,
        tokenizer_fp,
        settings,
        provenance,
        info,
        overwrite=args.overwrite,
    )
    if skipped:
        print(f"ok          {entry.name} / profile (up to date, skipped)  -> {path}")
        return EXIT_OK
    for name in ("encode_seconds", "encode_rtf", "decode_seconds", "encode_peak_mib"):
        metric = record.metrics[name]
        shown = f"{metric.value:.4g}" if metric.value is not None else f"n/a ({metric.reason})"
        print(f"  {name:<16} {shown}")
    print(f"ok          {entry.name} / profile on {device}  -> {path}")
    return EXIT_OK
