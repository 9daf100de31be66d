"""The static site from hand-made records: numbers, escaping, downloads, the regression diff,
and the ``leaderboard`` command (called directly, as cli.py will)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import zipfile

import pandas as pd
import pytest
from lb_fixtures import XSS, write_fixture_results

from benchmark.errors import UsageError
from benchmark.leaderboard.build import build_site
from benchmark.leaderboard.command import add_leaderboard_parser, cmd_leaderboard
from benchmark.leaderboard.compare import compare_results
from benchmark.leaderboard.render import safe_json
from benchmark.leaderboard.table_model import csv_safe
from benchmark.pipeline.records import ResultRecord, record_path
from benchmark.registry import REPO_ROOT

PUBLISHED = REPO_ROOT / "results" / "published"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    results = write_fixture_results(root / "results", root / "audio")
    return build_site(results, root / "site", PUBLISHED, resamples=200), root


def _parse(argv):
    parser = argparse.ArgumentParser()
    add_leaderboard_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["leaderboard", *argv])


def test_page_escapes_record_strings_and_embeds_safe_json(site):
    build, _ = site
    html = build.index.read_text(encoding="utf-8")
    assert XSS not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    block = re.search(
        r'<script type="application/json" id="provenance-data">(.*?)</script>', html, re.S
    ).group(1)
    assert "<" not in block and ">" not in block
    data = json.loads(block)
    assert data["cells"] and data["records"]
    assert (
        safe_json({"x": "</script><b>&"}) == '{"x": "\\u003c/script\\u003e\\u003cb\\u003e\\u0026"}'
    )
    # CSV cells a spreadsheet would run as formulas are neutralised; numbers stay numbers
    assert csv_safe('=HYPERLINK("x")') == '\'=HYPERLINK("x")' and csv_safe(-1.5) == -1.5
    # no inline script, nothing from the network
    assert (
        re.findall(r"<script(?![^>]*(src=\"assets/leaderboard.js\"|application/json))", html) == []
    )
    assert not re.search(r"(src|href)=\"(https?:)?//", html)


def test_tables_and_downloads_hold_the_records_numbers(site):
    build, _ = site
    data = build.index.parent / "data"
    asr = pd.read_csv(data / "task-mini-asr.csv")
    by_name = dict(zip(asr["tokenizer"], asr["wer (main)"], strict=True))
    record = ResultRecord.load(record_path(build.results.root, "mini", "tok-b", "asr", 0))
    assert by_name["tok-b"] == pytest.approx(record.metrics["wer"].value)
    seeds = [
        ResultRecord.load(record_path(build.results.root, "mini", "tok-a", "asr", s))
        for s in (0, 1)
    ]
    assert by_name["tok-a"] == pytest.approx(sum(r.metrics["wer"].value for r in seeds) / 2)
    assert set(asr["row_kind"]) == {"ranked", "reference", "baseline"}
    assert by_name["empty transcript"] == 100.0
    full = pd.read_csv(data / "task-full-asr.csv")
    assert "published" in set(full["row_kind"]) and "tok-b" not in set(full["tokenizer"])
    ranking = pd.read_csv(data / "ranking-mini-all.csv")
    assert list(ranking["tokenizer"]) == ["tok-a", "tok-b", "tok-c"]
    assert list(ranking["coverage"]) == pytest.approx([1.0, 1.0, 1 / 3])
    records = json.loads((data / "records.json").read_text())
    assert len(records) == len(build.results.records) == 17
    with zipfile.ZipFile(data / "tables.zip") as archive:
        assert "task-mini-asr.csv" in archive.namelist()
    html = build.index.read_text(encoding="utf-8")
    for name in re.findall(r'href="(data/[^"]+)"', html):
        assert (build.index.parent / name).is_file(), name
    for name in re.findall(r'src="(assets/[^"]+)"', html):
        assert (build.index.parent / name).is_file(), name
    assert html.count("<audio") == 2 and "Audio examples" in html
    for section in (
        "Token statistics",
        "Encode / decode profile",
        "Study: vocoder-study",
        "Layer-attention weights",
        "Metric definitions",
        "DASB v1",
    ):
        assert section in html


def test_regression_diff_lists_cells_beyond_their_intervals(site, tmp_path, capsys):
    build, _ = site
    other = tmp_path / "other"
    shutil.copytree(build.results.root, other)
    path = record_path(other, "mini", "tok-b", "asr", 0)
    record = ResultRecord.load(path)
    wer = record.metrics["wer"]
    record.metrics["wer"] = type(wer)(
        wer.value / 2,
        "lower",
        {"low": wer.value / 2 - 1, "high": wer.value / 2 + 1, "level": 0.95},
        wer.n,
    )
    record.to_disk(path)
    code = cmd_leaderboard(
        _parse(
            [
                "--results",
                str(build.results.root),
                "--out",
                str(tmp_path / "site"),
                "--compare",
                str(other),
                "--resamples",
                "200",
            ]
        )
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "1 cell(s) changed" in out and "mini / tok-b / asr / seed 0 / wer: changed" in out
    assert out.strip().endswith("index.html")
    html = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "Regression diff" in html
    assert compare_results(build.results, build.results).empty


def test_empty_results_and_a_foreign_out_folder(tmp_path):
    (tmp_path / "results").mkdir()
    empty = build_site(tmp_path / "results", tmp_path / "site", None)
    assert "No result records" in empty.index.read_text(encoding="utf-8")
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="non-empty folder"):
        build_site(tmp_path / "results", foreign, None)
    assert (foreign / "notes.txt").is_file()
    with pytest.raises(UsageError, match="no such folder"):
        build_site(tmp_path / "absent", tmp_path / "x", None)


def test_a_harness_pretrained_tiny_model_is_labelled_as_such_never_by_its_card(tmp_path):
    from lb_fixtures import job, ratio_metric

    from benchmark.leaderboard.load import tokenizer_description

    card = "WavLM-large layers 3, 7 with one k-means (K = 1000) per layer"
    record = job(tmp_path / "results", "mini", "wavlm-attn", "asr", 0, 1750.0,
                 {"wer": ratio_metric([1] * 30, [10] * 30, 100.0, "lower")}, "wer",
                 description=card)  # fmt: skip
    record.tokenizer_info["model_label"] = "pretrained by the harness on mini, 700 steps"
    record.tokenizer_info["codebook_sizes"] = [128, 128]
    record.to_disk(record_path(tmp_path / "results", "mini", "wavlm-attn", "asr", 0))
    line = tokenizer_description(record.tokenizer_info)
    assert line == ("pretrained by the harness on mini, 700 steps; layers 3, 7; "
                    "2 codebooks of K = 128; 50 Hz")  # fmt: skip
    assert tokenizer_description({"description": card}) == card  # real weights: the card
    build_site(tmp_path / "results", tmp_path / "site", None, resamples=50)
    html = (tmp_path / "site" / "index.html").read_text()
    assert "pretrained by the harness on mini, 700 steps" in html and "WavLM-large" not in html
