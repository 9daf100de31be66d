"""The vocoder study on the study machinery: single-layer vs scalable vocoders per tokenizer.

A study file with a ``vocoder`` block instead of ``tasks`` runs, for every tokenizer
variant of the file and every seed, :func:`benchmark.vocoders.study.run_study` (one vocoder
per codebook trained on that codebook alone, one scalable vocoder trained on all of them
with layer dropout, each decoding the validation split with every single codebook and with
all of them). Vocoders are cached under ``<workdir>/vocoders`` by their run fingerprint; the
rows (one per tokenizer x seed x vocoder x decoded layers, the mel distance) and a summary
over seeds go into the same kind of ``study`` record as a grid of jobs, under
``<results>/<preset>/studies/<name>.record.json``. A rerun whose tokenizers, settings and
seeds are unchanged reads that record and trains nothing.

It runs in process: the vocoders are not steps of the graph yet (``--executor ray`` is
refused for it).
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from benchmark.errors import UsageError
from benchmark.pipeline.commands import make_env
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.keys import key_of
from benchmark.pipeline.records import ResultRecord
from benchmark.registry import Registries
from benchmark.studies.run import STUDY_TOKENIZER, StudyResult, record_path_of
from benchmark.studies.schema import Study

log = logging.getLogger(__name__)


def run_vocoder_study(
    study: Study, base: RunConfig, registries: Registries | None = None
) -> StudyResult:
    """Train and compare the vocoders of every tokenizer variant and seed of ``study``.

    Raises:
        UsageError: the study has no ``vocoder`` block.
    """
    from benchmark.vocoders.presets import resolve_preset
    from benchmark.vocoders.study import check_device, prepare_data, run_study

    if study.vocoder is None:
        raise UsageError(f"{study.path}: not a vocoder study (no 'vocoder' block)")
    settings = study.vocoder
    preset = resolve_preset(study.preset).replace(
        steps=settings.get("steps"),
        corpus=settings.get("corpus"),
        adversarial_steps=settings.get("adversarial_steps"),
    )
    base = dataclasses.replace(base, preset=study.preset, device=check_device(base.device))
    prepared = []
    for axis in study.tokenizers:
        for params in axis.variants:
            config = dataclasses.replace(
                base, tokenizers=(axis.ref,), tasks=(), tokenizer_params=(),
                tokenizer_overrides={axis.ref: dict(params)},
            )  # fmt: skip
            env = make_env(config, registries)
            prepared.append((axis.ref, params, env, prepare_data(env, axis.ref, preset)))
    fingerprint = key_of(
        {
            "study": study.sha256,
            "preset": preset.to_dict(),
            "seeds": list(study.seeds),
            "tokenizers": [data.tokenizer_fingerprint for *_, data in prepared],
        }
    )
    path = record_path_of(base.results_dir, study.preset, study.name)
    old = ResultRecord.load_or_none(path)
    if old is not None and old.fingerprint == fingerprint and old.status == "ok":
        log.info("vocoder study %s is up to date", study.name)
        return StudyResult(old.extras["rows"], old.extras["table"], old, path, [], False)
    rows: list[dict[str, Any]] = []
    tables = []
    for ref, params, env, data in prepared:
        for seed in study.seeds:
            table = run_study(data, preset, base.workdir, seed, env.device, base.progress)
            tables.append(table)
            rows.extend(_rows(data.tokenizer_name, ref, params, seed, table))
    summary = summarise(rows)
    record = ResultRecord(
        status="ok",
        tokenizer=STUDY_TOKENIZER,
        task=study.name,
        seed=0,
        preset=study.preset,
        fingerprint=fingerprint,
        kind="study",
        extras={
            "study": study.to_dict(),
            "table": summary,
            "columns": list(summary[0]) if summary else [],
            "rows": rows,
            "vocoder": tables,
        },
    )
    record.to_disk(path)
    return StudyResult(rows, summary, record, path, [], True)


def _rows(name: str, ref: str, params, seed: int, table: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for row in table["rows"]:
        for column in table["columns"]:
            cell = row["cells"].get(column) or {}
            ok = cell.get("status") == "ok"
            rows.append(
                {
                    "tokenizer": name,
                    "tokenizer_ref": ref,
                    "tokenizer_params": dict(params),
                    "seed": seed,
                    "vocoder": row["vocoder"],
                    "decoded": column,
                    "metric": "mel_distance",
                    "status": cell.get("status", "missing"),
                    "value": cell.get("value") if ok else None,
                    "reason": None if ok else cell.get("reason"),
                }
            )
    return rows


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean mel distance over seeds: one row per (tokenizer, vocoder), one column per
    decoded layer set (None where that vocoder cannot decode it)."""
    import pandas as pd

    if not rows:
        return []
    frame = pd.DataFrame(rows)
    table = frame.pivot_table(
        index=["tokenizer", "vocoder"], columns="decoded", values="value", aggfunc="mean",
        sort=False, dropna=False,
    )  # fmt: skip
    columns = list(dict.fromkeys(r["decoded"] for r in rows))
    table = table.reindex(columns=columns).reset_index()
    return [
        {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
        for row in table.to_dict(orient="records")
    ]
