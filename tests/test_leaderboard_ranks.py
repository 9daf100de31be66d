"""Ranking maths: ties, failed/unavailable/missing cells, a single tokenizer, rank groups,
mean ranks that stay between their group ranks, paired bootstrap, presets kept apart."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lb_fixtures import write_fixture_results

from benchmark.leaderboard.cells import summarize
from benchmark.leaderboard.load import load_results, task_family
from benchmark.leaderboard.ranks import (
    TaskCell,
    mean_ranks,
    rank_groups,
    rank_table,
    task_ranks,
)
from benchmark.leaderboard.significance import paired_bootstrap, pool_seeds
from benchmark.leaderboard.standings import build_rankings
from benchmark.pipeline.records import UtteranceScores


def never(*_):
    return None


def test_ties_share_the_mean_of_their_places():
    cells = [TaskCell("a", "ok", 10.0), TaskCell("b", "ok", 10.0), TaskCell("c", "ok", 20.0)]
    assert task_ranks(cells, "lower") == {"a": 1.5, "b": 1.5, "c": 3.0}
    assert task_ranks(cells, "higher") == {"a": 2.5, "b": 2.5, "c": 1.0}


def test_failed_ranks_last_unavailable_and_missing_are_not_ranked():
    cells = [
        TaskCell("ok1", "ok", 5.0),
        TaskCell("ok2", "ok", 7.0),
        TaskCell("f1", "failed"),
        TaskCell("f2", "failed"),
        TaskCell("u", "unavailable"),
        TaskCell("m", "missing"),
    ]
    ranks = task_ranks(cells, "lower")
    assert ranks == {"ok1": 1.0, "ok2": 2.0, "f1": 3.5, "f2": 3.5, "u": None, "m": None}
    groups, _ = rank_groups(cells, "lower", lambda a, b: (True, 0.01, -2.0))
    assert groups == {"ok1": 1, "ok2": 2, "f1": 3, "f2": 3}


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="direction"):
        task_ranks([TaskCell("a", "ok", 1.0)], "up")
    with pytest.raises(ValueError, match="twice"):
        task_ranks([TaskCell("a", "ok", 1.0), TaskCell("a", "ok", 2.0)], "lower")


def test_a_single_tokenizer_ranks_first_with_full_coverage():
    table = rank_table(
        "mini",
        "low",
        ["only"],
        [("asr", "wer", "lower", "discriminative")],
        {("only", "asr"): TaskCell("only", "ok", 12.0)},
        never,
    )
    assert table.tasks[0].ranks == {"only": 1.0}
    assert table.tasks[0].groups == {"only": 1}
    mean = table.means[0]
    assert (mean.discriminative, mean.generative, mean.overall) == (1.0, None, 1.0)
    assert (mean.ranked, mean.total, mean.coverage) == (1, 1, 1.0)


def test_rank_groups_follow_neighbour_significance():
    cells = [TaskCell(n, "ok", v) for n, v in (("a", 1.0), ("b", 2.0), ("c", 3.0), ("d", 4.0))]
    verdicts = {("a", "b"): False, ("b", "c"): True, ("c", "d"): False}
    groups, tests = rank_groups(cells, "lower", lambda x, y: (verdicts[(x, y)], 0.5, -1.0))
    assert groups == {"a": 1, "b": 1, "c": 2, "d": 2}
    assert [(t.better, t.worse, t.significant) for t in tests] == [
        ("a", "b", False),
        ("b", "c", True),
        ("c", "d", False),
    ]
    # no paired test possible: a new group unless the values are equal
    tied = [TaskCell("x", "ok", 1.0), TaskCell("y", "ok", 1.0), TaskCell("z", "ok", 2.0)]
    groups, tests = rank_groups(tied, "lower", never)
    assert groups == {"x": 1, "y": 1, "z": 2}
    assert all(t.significant is None for t in tests)


def test_mean_ranks_and_coverage_with_missing_cells():
    ranks = {
        "asr": {"a": 1.0, "b": 2.0, "c": None},
        "style": {"a": 2.0, "b": 1.0, "c": 3.0},
        "tts": {"a": 1.0, "b": None, "c": None},
    }
    families = {"asr": "discriminative", "style": "discriminative", "tts": "generative"}
    means = {m.tokenizer: m for m in mean_ranks(ranks, families, ["a", "b", "c"])}
    assert means["a"].discriminative == 1.5 and means["a"].generative == 1.0
    assert means["a"].overall == pytest.approx(4 / 3)
    assert means["b"].generative is None and means["b"].overall == 1.5
    assert (means["c"].ranked, means["c"].total) == (1, 3)
    with pytest.raises(ValueError, match="family"):
        mean_ranks({"x": {"a": 1.0}}, {}, ["a"])


def test_overall_mean_rank_never_leaves_its_two_group_ranks():
    rng = np.random.default_rng(0)
    for _ in range(300):
        tasks = [f"t{i}" for i in range(int(rng.integers(2, 7)))]
        families = {t: ("discriminative", "generative")[int(rng.integers(0, 2))] for t in tasks}
        names = [f"k{i}" for i in range(int(rng.integers(1, 6)))]
        ranks = {}
        for task in tasks:
            cells = [
                TaskCell(
                    n,
                    str(rng.choice(["ok", "ok", "ok", "failed", "unavailable"])),
                    float(rng.integers(0, 4)),
                )
                for n in names
            ]
            ranks[task] = task_ranks(cells, "lower")
        for mean in mean_ranks(ranks, families, names):
            groups = [g for g in (mean.discriminative, mean.generative) if g is not None]
            if mean.overall is None:
                assert not groups
                continue
            assert min(groups) - 1e-12 <= mean.overall <= max(groups) + 1e-12


def test_paired_bootstrap_recomputes_the_ratio_and_judges_significance():
    ids = [f"u{i}" for i in range(40)]
    same = UtteranceScores(ids, [1.0] * 40, [10.0] * 40, 100.0)
    test = paired_bootstrap(same, same)
    assert test is not None and not test.significant and test.difference == 0.0
    assert test.p_value == 1.0
    rng = np.random.default_rng(1)
    good = UtteranceScores(ids, rng.integers(0, 2, 40).tolist(), [10.0] * 40, 100.0)
    bad = UtteranceScores(ids, rng.integers(4, 7, 40).tolist(), [10.0] * 40, 100.0)
    test = paired_bootstrap(good, bad)
    expected = 100 * (sum(good.num) - sum(bad.num)) / 400
    assert test.difference == pytest.approx(expected)
    assert test.significant and test.ci_high < 0 and test.p_value < 0.01
    # nothing in common, or different scales: no paired test
    other = UtteranceScores([f"v{i}" for i in range(40)], good.num, good.den, 100.0)
    assert paired_bootstrap(good, other) is None
    assert paired_bootstrap(good, UtteranceScores(ids, good.num, good.den, 1.0)) is None


def test_pooling_seeds_averages_parts_over_common_utterances():
    a = UtteranceScores(["x", "y", "z"], [1, 2, 3], [10, 10, 10], 100.0)
    b = UtteranceScores(["y", "x"], [4, 3], [10, 20], 100.0)
    pooled = pool_seeds([a, b])
    assert pooled.ids == ["x", "y"]
    assert pooled.num == [2.0, 3.0] and pooled.den == [15.0, 10.0]
    assert pool_seeds([a, UtteranceScores(["q"], [1], [1], 100.0)]) is None


@pytest.fixture(scope="module")
def fixture_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("lb")
    write_fixture_results(root / "results", root / "audio")
    results = load_results(root / "results")
    cells = summarize(results.metrics)
    return results, cells


def test_seeds_are_averaged_with_their_spread(fixture_results):
    _, cells = fixture_results
    row = cells[
        (cells["tokenizer"] == "tok-a")
        & (cells["task"] == "asr")
        & (cells["metric"] == "wer")
        & (cells["preset"] == "mini")
    ].iloc[0]
    assert row["seeds"] == [0, 1] and row["seeds_ok"] == 2
    assert row["sd"] > 0 and pd.isna(row["ci_low"])  # the spread, not one seed's CI
    style_c = cells[(cells["tokenizer"] == "tok-c") & (cells["task"] == "style")].iloc[0]
    assert style_c["status"] == "unavailable" and style_c["reason"] == "no speaker labels"
    failed = cells[(cells["tokenizer"] == "tok-b") & (cells["task"] == "tts")].iloc[0]
    assert failed["status"] == "failed" and failed["metric"] == "utmos"
    assert failed["reason"] == "CUDA out of memory"


def test_rankings_of_hand_made_records(fixture_results):
    results, cells = fixture_results
    tables, specs = build_rankings(results, cells, resamples=500)
    by_key = {(t.preset, t.tier): t for t in tables}
    assert set(by_key) == {("mini", "low"), ("mini", "medium"), ("mini", "all"), ("full", "low")}
    # presets kept apart; the continuous reference is never ranked
    assert by_key[("full", "low")].tokenizers == ["tok-a", "tok-z"]
    assert by_key[("mini", "all")].tokenizers == ["tok-a", "tok-b", "tok-c"]
    assert [s.task for s in specs["mini"]] == ["asr", "style", "tts"]
    full_asr = by_key[("full", "low")].tasks[0]
    assert full_asr.ranks == {"tok-a": 2.0, "tok-z": 1.0}
    tasks = {t.task: t for t in by_key[("mini", "all")].tasks}
    asr = tasks["asr"]
    assert asr.ranks == {"tok-a": 1.0, "tok-b": 2.0, "tok-c": 3.0}
    # tok-a is far better than tok-b; tok-c differs from tok-b on 3 of 30 utterances
    assert asr.groups == {"tok-a": 1, "tok-b": 2, "tok-c": 2}
    assert [t.significant for t in asr.tests] == [True, False]
    assert tasks["style"].ranks == {"tok-a": 1.5, "tok-b": 1.5, "tok-c": None}
    assert tasks["style"].groups == {"tok-a": 1, "tok-b": 1}
    assert tasks["tts"].ranks == {"tok-a": 1.0, "tok-b": 2.0, "tok-c": None}
    assert tasks["tts"].cells["tok-c"].status == "missing"
    means = {m.tokenizer: m for m in by_key[("mini", "all")].means}
    assert means["tok-a"].overall == pytest.approx((1 + 1.5 + 1) / 3)
    assert means["tok-b"].discriminative == pytest.approx(1.75)
    assert means["tok-b"].generative == 2.0
    assert (means["tok-c"].ranked, means["tok-c"].total) == (1, 3)
    assert [m.tokenizer for m in by_key[("mini", "all")].means] == ["tok-a", "tok-b", "tok-c"]
    assert by_key[("mini", "medium")].tasks[0].ranks == {"tok-c": 1.0}


def test_task_families():
    assert task_family("asr") == task_family("speaker-id~1a2b") == "discriminative"
    assert task_family("style-quick") == "discriminative"
    assert task_family("tts") == task_family("enhancement") == "generative"


def test_pareto_front_keeps_points_no_lower_bitrate_beats():
    from benchmark.leaderboard.plots import pareto_front

    points = [(1.0, 5.0), (2.0, 3.0), (3.0, 6.0), (4.0, 6.0), (5.0, 7.0)]
    assert pareto_front(points, "higher") == [(1.0, 5.0), (3.0, 6.0), (5.0, 7.0)]
    assert pareto_front(points, "lower") == [(1.0, 5.0), (2.0, 3.0)]
