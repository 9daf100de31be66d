"""The leaderboard build: load -> cells -> ranks -> tables -> plots -> render.

:func:`build_site` is what ``python -m benchmark leaderboard`` and the end of ``run --task
all`` call. It works with whatever records exist (none, one, or all of them).
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from benchmark.errors import UsageError
from benchmark.leaderboard import extra_tables, plots, tables
from benchmark.leaderboard.cells import summarize
from benchmark.leaderboard.command import DEFAULT_OUT, DEFAULT_PUBLISHED, DEFAULT_RESULTS
from benchmark.leaderboard.compare import changes_table, compare_results
from benchmark.leaderboard.load import (
    Results,
    load_published_matches,
    load_published_sources,
    load_results,
)
from benchmark.leaderboard.ranks import RULES, TIERS
from benchmark.leaderboard.render import Page, copy_examples, render_site
from benchmark.leaderboard.standings import build_rankings, tokenizer_tiers
from benchmark.leaderboard.table_model import ProvenanceIndex

log = logging.getLogger(__name__)

TITLE = "Discrete audio tokenizer leaderboard"


@dataclass
class SiteBuild:
    """A built site: its index page, the results it shows and the regression diff."""

    index: Path
    results: Results
    changes: pd.DataFrame | None = None


def _prepare_out(out_dir: Path) -> None:
    """Create ``out_dir``, or clear the generated parts of an earlier build in it.

    Raises:
        UsageError: ``out_dir`` holds other files (not an earlier build): nothing is removed.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "index.html").is_file():
        raise UsageError(
            f"--out {out_dir} is a non-empty folder that holds no earlier leaderboard "
            "(no index.html); choose an empty or new folder"
        )
    for part in ("assets", "data"):
        shutil.rmtree(out_dir / part, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def build_site(
    results_dir: Path = DEFAULT_RESULTS,
    out_dir: Path = DEFAULT_OUT,
    published_dir: Path | None = DEFAULT_PUBLISHED,
    compare_dir: Path | None = None,
    resamples: int = 1000,
    title: str = TITLE,
) -> SiteBuild:
    """Build the static leaderboard from the records under ``results_dir``.

    Args:
        results_dir: where result records are (``<preset>/<tokenizer>/<task>/seed<N>.json``).
        out_dir: where the site goes (``index.html``, ``assets/``, ``data/``).
        published_dir: published reference CSVs (``results/published``), or None.
        compare_dir: another results folder to diff against (regression diff), or None.
        resamples: bootstrap resamples of the paired significance tests.
        title: the page's title.

    Raises:
        UsageError: ``results_dir`` or ``compare_dir`` is not a folder, or ``out_dir`` is a
            folder of other files.
    """
    for label, folder in (("--results", results_dir), ("--compare", compare_dir)):
        if folder is not None and not Path(folder).is_dir():
            raise UsageError(f"{label} {folder}: no such folder of result records")
    _prepare_out(out_dir)
    results = load_results(results_dir, published_dir)
    cells = summarize(results.metrics)
    rankings, specs = build_rankings(results, cells, resamples=resamples)
    index = ProvenanceIndex()
    matches = load_published_matches(published_dir)
    plot_dir = Path(out_dir) / "assets" / "plots"
    figures = [
        *plots.rank_heatmaps(rankings, plot_dir),
        *plots.bitrate_plots(results, cells, specs, plot_dir),
        *plots.layer_weight_heatmaps(results, plot_dir),
        *plots.profile_bars(results, plot_dir),
    ]
    tiers = tokenizer_tiers(results)
    examples = [
        {**e, "tier": tiers.get((e["preset"], e["tokenizer"]), "")} for e in results.examples
    ]
    changes = None
    changes_view = None
    if compare_dir is not None:
        other = load_results(compare_dir, None)
        changes = compare_results(results, other)
        changes_view = changes_table(changes, str(compare_dir))
    presets = sorted(set(results.metrics["preset"].dropna())) if len(results.metrics) else []
    job_tasks = results.jobs()["task"].dropna().unique() if len(results.metrics) else []
    present_tiers = set(tiers.values())
    page = Page(
        title=title,
        built=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        results_dir=str(results_dir),
        record_count=len(results.records),
        presets=presets,
        tiers=[t for t in (*TIERS, "continuous", "unknown") if t in present_tiers],
        tasks=sorted(job_tasks),
        rank_tables=tables.rank_tables(results, rankings),
        task_tables=tables.task_tables(results, cells, rankings, specs, index, matches),
        profile_tables=extra_tables.profile_tables(results, index),
        stats_tables=extra_tables.token_stats_tables(results, index),
        study_tables=extra_tables.study_tables(results, index),
        published=extra_tables.published_table(results),
        published_sources=[
            f"{entry.get('name', name)}: {entry.get('citation', name)}"
            for name, entry in sorted(load_published_sources(published_dir).items())
        ],
        definitions=extra_tables.definitions_table(results),
        changes=changes_view,
        figures=figures,
        examples=copy_examples(examples, Path(out_dir)),
        rules=list(RULES),
        provenance={"records": results.provenance, "cells": index.cells},
    )
    path = render_site(page, Path(out_dir), list(results.records.values()))
    log.info("leaderboard: %s", path)
    return SiteBuild(path, results, changes)
