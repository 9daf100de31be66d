"""Result records -> pandas frames: the only place the leaderboard reads records.

Everything downstream (tables, ranks, plots, the page) works on the frames and small
mappings built here, so it never parses a record by hand. Records are read with
:func:`benchmark.pipeline.records.iter_records`; published reference numbers are CSV files
under ``results/published/`` (columns ``tier, tokenizer, task, metric, direction, value,
note``), named by ``sources.json`` beside them.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark.errors import DataError
from benchmark.pipeline.records import ResultRecord, UtteranceScores, iter_records

log = logging.getLogger(__name__)

#: Task names of records that do not say whether their task decodes audio (records written
#: before ``config.task.needs_decode``, and failed records): the part before ``~``, or a prefix.
DISCRIMINATIVE_TASKS = ("asr", "speaker-id", "emotion", "style")
GENERATIVE_TASKS = ("enhancement", "resynthesis", "tts")
#: Task modules whose tasks decode audio (when the record and the name say nothing).
GENERATIVE_MODULES = ("benchmark.tasks.enhancement", "benchmark.tasks.tts")

METRIC_COLUMNS = [
    "rid",
    "preset",
    "tokenizer",
    "task",
    "seed",
    "kind",
    "family",
    "record_status",
    "metric",
    "value",
    "direction",
    "ci_low",
    "ci_high",
    "ci_level",
    "n",
    "judge",
    "split",
    "metric_status",
    "reason",
    "is_main",
]


@dataclass
class Results:
    """What the leaderboard is built from.

    Attributes:
        root: the results folder read.
        records: record id (``r0``, ``r1``...) -> ``(path, record)``.
        metrics: one row per (record, metric) for every kind; a record that is not ``ok``
            has one row (its task's main metric, no value) carrying its status and error.
        tokenizers: one row per (preset, tokenizer): tier, bitrate, description.
        baselines: one row per (record, baseline, metric), ``baseline_of`` naming the
            record's tokenizer (see :mod:`~benchmark.leaderboard.baselines`).
        utterances: ``(preset, tokenizer, task, metric)`` -> ``[(seed, scores)]``.
        layer_weights: one row per (preset, tokenizer, task, seed, layer).
        examples: audio examples ``{preset, tokenizer, task, seed, id, label, audio,
            reference}`` (paths resolved).
        provenance: record id -> what the page shows for it on click.
        published: published reference rows, with their ``source``.
    """

    root: Path
    records: dict[str, tuple[Path, ResultRecord]] = field(default_factory=dict)
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=METRIC_COLUMNS))
    tokenizers: pd.DataFrame = field(default_factory=pd.DataFrame)
    baselines: pd.DataFrame = field(default_factory=pd.DataFrame)
    utterances: dict[tuple[str, str, str, str], list[tuple[int, UtteranceScores]]] = field(
        default_factory=dict
    )
    layer_weights: pd.DataFrame = field(default_factory=pd.DataFrame)
    examples: list[dict[str, Any]] = field(default_factory=list)
    provenance: dict[str, dict[str, Any]] = field(default_factory=dict)
    published: pd.DataFrame = field(default_factory=pd.DataFrame)

    def jobs(self) -> pd.DataFrame:
        """Metric rows of task runs (``kind == "job"``)."""
        return self.metrics[self.metrics["kind"] == "job"]


def task_family(task: str, record: ResultRecord | None = None) -> str:
    """``discriminative`` or ``generative``: what the record says of its task, else its name.

    In order: the task attribute the job stored, ``config.task.needs_decode``
    (:attr:`benchmark.metadata.TaskInfo.needs_decode`, true for tasks whose output is audio);
    audio examples in the record (only generative tasks save them); the task's name (for
    older and failed records); the module of its class. Otherwise discriminative.
    """
    task_config = (record.config.get("task") or {}) if record is not None else {}
    needs_decode = task_config.get("needs_decode") if isinstance(task_config, dict) else None
    if isinstance(needs_decode, bool):
        return "generative" if needs_decode else "discriminative"
    if record is not None:
        examples = record.extras.get("examples")
        if isinstance(examples, list) and any(
            isinstance(e, dict) and "audio" in e for e in examples
        ):
            return "generative"
    base = task.split("~", 1)[0]
    for names, family in (
        (GENERATIVE_TASKS, "generative"),
        (DISCRIMINATIVE_TASKS, "discriminative"),
    ):
        if base in names or any(base.startswith(f"{name}-") for name in names):
            return family
    target = str(task_config.get("class") or task_config.get("ref") or "")
    return "generative" if target.startswith(GENERATIVE_MODULES) else "discriminative"


def _judge_text(judge: dict[str, Any] | None) -> str:
    if not judge:
        return ""
    name = judge.get("name") or judge.get("model") or ""
    rest = {k: v for k, v in judge.items() if k not in ("name", "model")}
    extra = ", ".join(f"{k} {v}" for k, v in sorted(rest.items()))
    return f"{name} ({extra})" if extra and name else str(name or extra)


def _conformance_text(conformance: dict[str, Any] | None) -> str:
    if not conformance:
        return "not recorded"
    passed = conformance.get("passed") or []
    failed = conformance.get("failed") or []
    version = conformance.get("suite_version")
    verdict = "passed" if not failed else f"FAILED {', '.join(map(str, failed))}"
    return f"{verdict} ({len(passed)} checks passed, suite v{version})"


def record_provenance(path: Path, root: Path, record: ResultRecord) -> dict[str, Any]:
    """The provenance the page shows for one record (code, weights, device, date...)."""
    prov = record.provenance or {}
    code = prov.get("code") or {}
    try:
        shown = str(path.relative_to(root))
    except ValueError:
        shown = str(path)
    commit = code.get("commit")
    return {
        "record": shown,
        "kind": record.kind,
        "status": record.status,
        "preset": record.preset,
        "tokenizer": record.tokenizer,
        "task": record.task,
        "seed": record.seed,
        "code": (
            f"{code.get('version', '?')} @ {commit[:12] if commit else 'unknown commit'}"
            f"{' (uncommitted changes)' if code.get('dirty') else ''}"
            if code
            else "not recorded"
        ),
        "weights": prov.get("weights"),
        "device": prov.get("device"),
        "date": (record.timings or {}).get("started") or prov.get("date"),
        "conformance": _conformance_text(record.conformance),
        "fingerprint": record.fingerprint,
        "packages": prov.get("packages"),
        "tokenizer_source": prov.get("tokenizer_source"),
        "error": (record.error or {}).get("message") if record.error else None,
    }


def _record_keys(rid: str, record: ResultRecord, family: str) -> dict[str, Any]:
    """The columns of a metric row that name its record."""
    return {
        "rid": rid,
        "preset": record.preset,
        "tokenizer": record.tokenizer,
        "task": record.task,
        "seed": record.seed,
        "kind": record.kind,
        "family": family,
        "record_status": record.status,
    }


def _metric_row(rid: str, record: ResultRecord, family: str, name: str, metric) -> dict:
    ci = metric.ci or {}
    return {
        **_record_keys(rid, record, family),
        "metric": name,
        "value": metric.value,
        "direction": metric.direction,
        "ci_low": ci.get("low"),
        "ci_high": ci.get("high"),
        "ci_level": ci.get("level"),
        "n": metric.n,
        "judge": _judge_text(metric.judge),
        "split": metric.split,
        "metric_status": metric.status,
        "reason": metric.reason,
        "is_main": name == record.main_metric,
    }


def _status_row(rid: str, record: ResultRecord, family: str) -> dict:
    """The one row of a record that is not ok: its task's main metric, no value."""
    message = (record.error or {}).get("message") if record.error else None
    empty = ("value", "direction", "ci_low", "ci_high", "ci_level", "n", "split")
    return {
        **_record_keys(rid, record, family),
        **dict.fromkeys(empty),
        "metric": record.main_metric,
        "judge": "",
        "metric_status": record.status,
        "reason": message or f"record status {record.status}",
        "is_main": True,
    }


def _examples(rid: str, path: Path, record: ResultRecord) -> list[dict[str, Any]]:
    """Audio examples of a generative record, ``extras["examples"]``: items ``{"id", "label",
    "audio", "reference"}`` with paths relative to the record's folder (absolute ones are
    kept), resolved here; an item without ``audio`` is left out."""
    found = []
    examples = record.extras.get("examples")
    if not isinstance(examples, list):
        return found
    for item in examples:
        if not isinstance(item, dict) or not item.get("audio"):
            continue
        entry = {
            "rid": rid,
            "preset": record.preset,
            "tokenizer": record.tokenizer,
            "task": record.task,
            "seed": record.seed,
            "id": str(item.get("id", "")),
            "label": str(item.get("label") or "output"),
        }
        for key in ("audio", "reference"):
            value = item.get(key)
            entry[key] = (path.parent / str(value)) if value else None
        found.append(entry)
    return found


def load_published(folder: Path | None) -> pd.DataFrame:
    """Published reference rows from ``folder/*.csv``, each with its ``source`` name.

    Raises:
        DataError: a CSV without the expected columns (names the file).
    """
    columns = ["tier", "tokenizer", "task", "metric", "direction", "value", "note", "source"]
    if folder is None or not Path(folder).is_dir():
        return pd.DataFrame(columns=columns)
    folder = Path(folder)
    sources = load_published_sources(folder)
    frames = []
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path, dtype={"note": str}, keep_default_na=False, na_values=[""])
        missing = set(columns[:-1]) - set(frame.columns)
        if missing:
            raise DataError(f"{path}: published CSV misses columns {sorted(missing)}")
        frame["note"] = frame["note"].fillna("")
        frame["source"] = sources.get(path.name, {}).get("name", path.name)
        frames.append(frame[columns])
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def load_published_sources(folder: Path | None) -> dict[str, dict[str, Any]]:
    """``sources.json`` of the published folder: CSV file name -> ``{"name", "citation",
    "matches"}`` (empty when there is none).

    ``matches``: ``{preset: {local task: {"task": published task, "metrics": {local metric:
    published metric}}}}``, which published rows are shown beside which local task table
    (only tasks measured the same way).

    Raises:
        DataError: ``sources.json`` is not a JSON object.
    """
    path = None if folder is None else Path(folder) / "sources.json"
    if path is None or not path.is_file():
        return {}
    try:
        sources = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(sources, dict):
        raise DataError(f"{path}: expected an object of CSV file name -> source")
    return {name: entry for name, entry in sources.items() if isinstance(entry, dict)}


def load_published_matches(folder: Path | None) -> dict[str, Any]:
    """``source name -> matches`` (see :func:`load_published_sources`)."""
    return {
        entry.get("name", name): entry.get("matches", {})
        for name, entry in load_published_sources(folder).items()
    }


def tokenizer_description(info: dict[str, Any]) -> str:
    """The line under a tokenizer's name: its card's description, except where the weights
    are not what the card describes (``model_label``: a tiny model pretrained by the harness
    on mini, a random-init one): then that label and the tokens' own shape, never the card's
    "WavLM-large ..." text."""
    label = info.get("model_label")
    if not label:
        return str(info.get("description") or "")
    parts = [str(label)]
    if info.get("layers"):
        parts.append("layers " + ", ".join(str(layer) for layer in info["layers"]))
    sizes = sorted(set(info.get("codebook_sizes") or []))
    if sizes:
        parts.append(f"{info.get('num_codebooks', len(info['codebook_sizes']))} codebooks of "
                     f"K = {', '.join(str(k) for k in sizes)}")  # fmt: skip
    if info.get("frame_rate"):
        parts.append(f"{float(info['frame_rate']):g} Hz")
    return "; ".join(parts)


def load_results(results_dir: Path, published_dir: Path | None = None) -> Results:
    """Read every record under ``results_dir`` (and the published numbers) into frames.

    Works with whatever exists: one record, or none (empty frames).
    """
    root = Path(results_dir)
    results = Results(root=root)
    rows, baselines, weights, tokenizers = [], [], [], {}
    for index, (path, record) in enumerate(iter_records(root)):
        rid = f"r{index}"
        results.records[rid] = (path, record)
        results.provenance[rid] = record_provenance(path, root, record)
        family = task_family(record.task, record) if record.kind == "job" else record.kind
        info = record.tokenizer_info or {}
        key = (record.preset, record.tokenizer)
        if info and (key not in tokenizers or not tokenizers[key].get("tier")):
            tokenizers[key] = {
                "preset": record.preset,
                "tokenizer": record.tokenizer,
                "tier": info.get("tier"),
                "bitrate": info.get("bitrate_bps"),
                "description": tokenizer_description(info),
                "display": info.get("display_name") or record.tokenizer,
            }
        tokenizers.setdefault(
            key,
            {
                "preset": record.preset,
                "tokenizer": record.tokenizer,
                "tier": None,
                "bitrate": None,
                "description": "",
                "display": record.tokenizer,
            },
        )
        if record.status != "ok":
            rows.append(_status_row(rid, record, family))
            continue
        for name, metric in record.metrics.items():
            rows.append(_metric_row(rid, record, family, name, metric))
        for name, scores in record.per_utterance.items():
            key4 = (record.preset, record.tokenizer, record.task, name)
            results.utterances.setdefault(key4, []).append((record.seed, scores))
        for baseline, metrics in record.baselines.items():
            for name, metric in metrics.items():
                row = _metric_row(rid, record, family, name, metric)
                row.update(tokenizer=baseline, kind="baseline", baseline_of=record.tokenizer)
                baselines.append(row)
        layer_weights = record.extras.get("layer_weights")
        if isinstance(layer_weights, list) and layer_weights:
            layers = record.extras.get("layers") or list(range(len(layer_weights)))
            for layer, weight in zip(layers, layer_weights, strict=False):
                weights.append(
                    {
                        "preset": record.preset,
                        "tokenizer": record.tokenizer,
                        "task": record.task,
                        "seed": record.seed,
                        "layer": int(layer),
                        "weight": float(weight),
                    }
                )
        if record.kind == "job":
            results.examples.extend(_examples(rid, path, record))
    frame = _one_family_per_task(pd.DataFrame(rows, columns=METRIC_COLUMNS))
    results.metrics = _fill_main_metrics(frame)
    results.tokenizers = pd.DataFrame(
        list(tokenizers.values()),
        columns=["preset", "tokenizer", "tier", "bitrate", "description", "display"],
    )
    results.baselines = pd.DataFrame(baselines, columns=[*METRIC_COLUMNS, "baseline_of"])
    results.layer_weights = pd.DataFrame(
        weights, columns=["preset", "tokenizer", "task", "seed", "layer", "weight"]
    )
    results.published = load_published(published_dir)
    log.info("leaderboard: %d records from %s", len(results.records), root)
    return results


def main_metrics(frame: pd.DataFrame) -> dict[tuple[str, str], tuple[str, str]]:
    """``(preset, task) -> (main metric, direction)``: the most common among ok records."""
    mains: dict[tuple[str, str], tuple[str, str]] = {}
    ok = frame[frame["is_main"] & frame["metric"].notna() & frame["direction"].notna()]
    for (preset, task), group in ok.groupby(["preset", "task"]):
        pairs = Counter(zip(group["metric"], group["direction"], strict=True))
        mains[(preset, task)] = pairs.most_common(1)[0][0]
    return mains


def _one_family_per_task(frame: pd.DataFrame) -> pd.DataFrame:
    """A (preset, task) is generative when any of its job records says so (a failed record
    cannot tell, an ok one can)."""
    jobs = frame["kind"] == "job"
    if not jobs.any():
        return frame
    generative = frame[jobs & (frame["family"] == "generative")][["preset", "task"]]
    pairs = set(zip(generative["preset"], generative["task"], strict=True))
    hit = jobs & pd.Series(
        [(p, t) in pairs for p, t in zip(frame["preset"], frame["task"], strict=True)],
        index=frame.index,
    )
    frame.loc[hit, "family"] = "generative"
    return frame


def _fill_main_metrics(frame: pd.DataFrame) -> pd.DataFrame:
    """Give status rows of failed records their task's main metric and its direction."""
    if frame.empty:
        return frame
    mains = main_metrics(frame)
    status_rows = frame["direction"].isna() & frame["value"].isna() & frame["is_main"]
    for index in frame.index[status_rows]:
        main = mains.get((frame.at[index, "preset"], frame.at[index, "task"]))
        if main is not None:
            frame.at[index, "metric"], frame.at[index, "direction"] = main
    return frame
