"""Seeds -> cells: one row per (preset, tokenizer, task, metric), with the rule for statuses.

A cell's seeds are its records of one (preset, tokenizer, task). The rule:

- the cell is ``ok`` when at least one seed gave the metric a value; its value is the mean
  over those seeds, with their spread (standard deviation, min, max) and how many seeds of
  how many were ok. A single ok seed keeps its confidence interval; several seeds show the
  spread over seeds instead (each seed's interval is in its provenance);
- otherwise ``failed`` when any seed failed (the run or the metric raised), else
  ``unavailable`` (weights, data or a capability missing), with the first reason given;
- a (tokenizer, task) with no record at all is ``missing`` (made by the ranking, which knows
  which tokenizers and tasks a table has).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

CELL_KEYS = ["preset", "tokenizer", "task", "metric"]
CELL_COLUMNS = [
    *CELL_KEYS,
    "kind",
    "family",
    "direction",
    "status",
    "value",
    "sd",
    "vmin",
    "vmax",
    "seeds",
    "seeds_ok",
    "seeds_total",
    "ci_low",
    "ci_high",
    "ci_level",
    "n",
    "judge",
    "reason",
    "rids",
    "is_main",
]


def _finite(value: object) -> bool:
    return value is not None and isinstance(value, int | float) and math.isfinite(float(value))


def summarize(metrics: pd.DataFrame) -> pd.DataFrame:
    """Cells from metric rows (see :class:`benchmark.leaderboard.load.Results`.metrics).

    Returns:
        One row per (preset, tokenizer, task, metric), columns :data:`CELL_COLUMNS`.
    """
    rows = []
    frame = metrics[metrics["metric"].notna()]
    for key, group in frame.groupby(CELL_KEYS, sort=True):
        ok = group[(group["metric_status"] == "ok") & group["value"].map(_finite)]
        values = ok["value"].astype(float).to_numpy()
        failed = (group["metric_status"] == "failed") | (group["record_status"] == "failed")
        status = "ok" if len(values) else ("failed" if failed.any() else "unavailable")
        bad = group[group["metric_status"] != "ok"]["reason"].dropna()
        single = ok.iloc[0] if len(ok) == 1 else None
        directions = group["direction"].dropna()
        ns = ok["n"].dropna()
        rows.append(
            {
                **dict(zip(CELL_KEYS, key, strict=True)),
                "kind": group["kind"].iloc[0],
                "family": group["family"].iloc[0],
                "direction": directions.iloc[0] if len(directions) else None,
                "status": status,
                "value": float(values.mean()) if len(values) else None,
                "sd": float(values.std(ddof=1)) if len(values) > 1 else None,
                "vmin": float(values.min()) if len(values) else None,
                "vmax": float(values.max()) if len(values) else None,
                "seeds": sorted(int(s) for s in group["seed"]),
                "seeds_ok": len(values),
                "seeds_total": int(group["seed"].nunique()),
                "ci_low": _float(single["ci_low"]) if single is not None else None,
                "ci_high": _float(single["ci_high"]) if single is not None else None,
                "ci_level": _float(single["ci_level"]) if single is not None else None,
                "n": int(ns.min()) if len(ns) else None,
                "judge": next((j for j in group["judge"] if j), ""),
                "reason": None if status == "ok" else (bad.iloc[0] if len(bad) else None),
                "rids": list(group["rid"]),
                "is_main": bool(group["is_main"].any()),
            }
        )
    return pd.DataFrame(rows, columns=CELL_COLUMNS)


def _float(value: object) -> float | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return float(value)  # type: ignore[arg-type]
