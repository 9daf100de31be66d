"""Generative tasks, token statistics, studies and audio examples on the site, from
hand-made records (tests/lb_generative.py) beside the shared fixture (tests/lb_fixtures.py)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import soundfile as sf
from lb_fixtures import write_fixture_results, write_wav
from lb_generative import METRICS, RESYNTHESIS, STUDY_ROWS, write_generative_results

from benchmark.leaderboard.build import build_site
from benchmark.leaderboard.cells import summarize
from benchmark.leaderboard.extra_tables import study_tables, token_stats_tables
from benchmark.leaderboard.load import load_results, task_family
from benchmark.leaderboard.render import copy_examples
from benchmark.leaderboard.standings import build_rankings
from benchmark.leaderboard.table_model import ProvenanceIndex
from benchmark.leaderboard.tables import task_tables
from benchmark.pipeline.records import ResultRecord, record_path


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("generative")
    write_fixture_results(root / "results", root / "audio")
    write_generative_results(root / "results")
    build = build_site(root / "results", root / "site", None, resamples=200)
    results = build.results
    cells = summarize(results.metrics)
    rankings, specs = build_rankings(results, cells, resamples=200)
    index = ProvenanceIndex()
    tables = {t.id: t for t in task_tables(results, cells, rankings, specs, index)}
    return build, rankings, specs, tables


def test_every_metric_with_direction_ci_n_and_the_baselines(built):
    build, _, _, tables = built
    table = tables["task-mini-enhancement"]
    columns = {c.key: c for c in table.columns}
    for name, (direction, *_rest) in METRICS.items():
        assert columns[f"m:{name}"].direction == direction
        assert f"ci:{name}" in columns and f"n:{name}" in columns
    assert columns["m:utmos"].direction == "higher"
    assert table.columns[7].key == "m:dnsmos_ovrl" and "(main)" in table.columns[7].label
    frame = pd.read_csv(build.index.parent / "data" / "task-mini-enhancement.csv")
    rows = frame.set_index("tokenizer")
    record = ResultRecord.load(record_path(build.results.root, "mini", "tok-c", "enhancement", 0))
    for name in ("pesq", "stoi", "dwer", "dnsmos_p808", "speaker_similarity"):
        metric = record.metrics[name]
        assert float(rows.loc["tok-c", name]) == pytest.approx(metric.value)
        assert rows.loc["tok-c", f"{name} 95% CI"] == f"{metric.ci['low']};{metric.ci['high']}"
        assert float(rows.loc["tok-c", f"{name} n"]) == metric.n
    assert rows.loc["tok-c", "stoi n"] == 28
    assert rows.loc["tok-b", "pesq"] == "failed" and rows.loc["tok-a", "utmos"] == "unavailable"
    # baselines: equal in every record -> one row; tokenizer-dependent -> one row each
    baselines = frame[frame["row_kind"] == "baseline"]["tokenizer"].tolist()
    assert baselines == ["ground truth", "noisy input"] + [
        f"resynthesis ceiling \u00b7 {t}" for t in ("tok-a", "tok-b", "tok-c")
    ]
    noisy = record.baselines["noisy input"]["dwer"]
    assert rows.loc["noisy input", "dwer"] == pytest.approx(noisy.value)
    assert rows.loc["noisy input", "dwer n"] == noisy.n
    ceiling = record.baselines["resynthesis ceiling"]["pesq"].value
    assert float(rows.loc["resynthesis ceiling \u00b7 tok-c", "pesq"]) == pytest.approx(ceiling)
    assert rows.loc["ground truth", "pesq"] == "unavailable"
    assert set(frame[frame["row_kind"] == "baseline"]["rank (all)"].dropna()) == set()


def test_generative_tasks_rank_on_their_main_metric_and_count_as_generative(built):
    _, rankings, specs, _ = built
    mini = {s.task: s for s in specs["mini"]}
    assert mini["enhancement"].metric == "dnsmos_ovrl" and mini[RESYNTHESIS].metric == "pesq"
    assert {t: s.family for t, s in mini.items()} == {
        "asr": "discriminative", "style": "discriminative", "tts": "generative",
        "enhancement": "generative", RESYNTHESIS: "generative",
    }  # fmt: skip
    table = next(t for t in rankings if (t.preset, t.tier) == ("mini", "all"))
    tasks = {t.task: t for t in table.tasks}
    assert tasks["enhancement"].ranks == {"tok-a": 1.0, "tok-b": 2.0, "tok-c": 3.0}
    assert tasks["enhancement"].groups == {"tok-a": 1, "tok-b": 2, "tok-c": 3}
    # tok-b's failed pesq is not its main metric: its enhancement rank stands
    assert tasks[RESYNTHESIS].ranks == {"tok-a": 1.0, "tok-b": 2.0, "tok-c": 3.0}
    means = {m.tokenizer: m for m in table.means}
    assert means["tok-a"].generative == 1.0 and means["tok-b"].generative == 2.0
    assert means["tok-c"].generative == 3.0 and means["tok-c"].discriminative == 3.0
    assert means["tok-a"].overall == pytest.approx((1 + 1.5 + 1 + 1 + 1) / 5)


def test_task_family_comes_from_the_records_task_attribute():
    def record(task, needs_decode=None, **extras):
        config = {"task": {"ref": task} | ({} if needs_decode is None else
                                            {"needs_decode": needs_decode})}  # fmt: skip
        return ResultRecord("ok", "t", task, 0, "mini", config=config, extras=extras)

    assert task_family("denoise-x", record("denoise-x", True)) == "generative"
    assert task_family("tts", record("tts", False)) == "discriminative"  # the attribute wins
    assert task_family("mystery", record("mystery")) == "discriminative"
    examples = [{"id": "u", "audio": "a.wav"}]
    assert task_family("mystery", record("mystery", examples=examples)) == "generative"
    assert task_family("emotion") == task_family("style") == "discriminative"  # old records


def test_audio_players_beside_their_reference(built):
    build, *_ = built
    html = build.index.read_text(encoding="utf-8")
    sources = re.findall(r'<audio controls preload="auto" src="([^"]+)"', html)
    # enhancement: 3 tokenizers x 2 utterances x (generated, noisy input, reference);
    # copy-synthesis: 3 x 2 x (resynthesis, reference); tts: output and reference
    assert len(sources) == 18 + 12 + 2
    site = build.index.parent
    for src in sources:
        assert (site / src).is_file(), src
    record_dir = record_path(build.results.root, "mini", "tok-b", "enhancement", 0).parent
    original = record_dir / "seed0.examples" / "utt01.noisy-input.wav"
    copied = [s for s in sources if "mini-tok-b-enhancement" in s and "noisy_input" in s]
    assert copied and any(
        sf.info(site / s).duration == pytest.approx(sf.info(original).duration) for s in copied
    )
    block = html[html.index('id="task-mini-enhancement"') :]
    block = block[: block.index('<div class="task"')]
    for label in ("generated", "noisy input", "reference"):
        assert f"<span>{label}</span>" in block
    assert block.count('<div class="example-group"') == 3 and "<h5>tok-c" in block


def test_copy_examples_groups_dedupes_and_lists_missing_files(tmp_path):
    reference = write_wav(tmp_path / "ref.wav")
    output = write_wav(tmp_path / "out.wav")
    examples = [
        {
            "preset": "mini",
            "task": "tts",
            "tokenizer": t,
            "seed": 0,
            "id": "u1",
            "label": "generated",
            "audio": output if t == "a" else tmp_path / "gone.wav",
            "reference": reference,
        }
        for t in ("a", "b")
    ]
    groups = copy_examples(examples, tmp_path / "site")
    assert [g["tokenizer"] for g in groups] == ["a", "b"]
    players = {g["tokenizer"]: g["utterances"][0]["players"] for g in groups}
    assert [p["label"] for p in players["a"]] == ["generated", "reference"]
    assert players["b"][0]["src"] is None and players["b"][0]["missing"].endswith("gone.wav")
    assert players["a"][1]["src"] == players["b"][1]["src"]  # one copy of a shared reference
    assert len(list((tmp_path / "site" / "assets" / "audio").rglob("*.wav"))) == 2


def test_token_statistics_and_study_tables(built):
    build, *_ = built
    index = ProvenanceIndex()
    summary, per_codebook = token_stats_tables(build.results, index)
    assert summary.id == "stats-mini" and per_codebook.id == "stats-codebooks-mini"
    assert "delayed by 1 sample(s)" in summary.caption and "30.0 dB SNR" in summary.caption
    frame = per_codebook.to_frame()
    tok_b = frame[frame["tokenizer"] == "tok-b"]
    assert list(tok_b["codebook"]) == [0, 1] and list(tok_b["stable, noise %"]) == [80.0, 79.0]
    assert list(tok_b["entropy (bits)"]) == [3.0, 4.0]
    study = next(t for t in study_tables(build.results, index) if "layer dropout" in t.title)
    assert study.caption == "vocoder decodes layer subsets"
    assert [c.label for c in study.columns] == list(STUDY_ROWS[0])
    assert [c.numeric for c in study.columns] == [False, True, True]
    rows = study.to_frame()
    assert list(rows["mel_distance"]) == [r["mel_distance"] for r in STUDY_ROWS]
    html = build.index.read_text(encoding="utf-8")
    assert "Token statistics per codebook (mini)" in html and "Study: layer dropout" in html


def test_a_failed_token_stats_record_shows_its_reason(tmp_path):
    ResultRecord("failed", "tok-x", "token-stats", 0, "mini", kind="token-stats",
                 error={"type": "TokenStatsError", "message": "cache damaged"},
                 ).to_disk(record_path(tmp_path, "mini", "tok-x", "token-stats", 0))  # fmt: skip
    (summary,) = token_stats_tables(load_results(tmp_path), ProvenanceIndex())
    cell = summary.rows[0].cells["stability_noise"]
    assert (cell.text, cell.title, cell.css) == ("failed", "cache damaged", "failed")
