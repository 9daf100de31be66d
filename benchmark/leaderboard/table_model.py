"""The table model the page renders and the CSV downloads write: columns, rows, cells.

Cells carry display text (escaped by the renderer, never trusted), a sort key, an optional
provenance id (what a click shows) and the raw value written to CSV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

ARROWS = {"higher": "\u2191", "lower": "\u2193"}  # up: higher is better, down: lower


@dataclass
class Column:
    """One column: ``key``, header ``label``, metric ``direction`` (arrow) and a definition."""

    key: str
    label: str
    direction: str | None = None
    help: str = ""
    numeric: bool = False

    @property
    def arrow(self) -> str:
        """The direction arrow shown in the header ("" when it has no direction)."""
        return ARROWS.get(self.direction or "", "")


@dataclass
class Cell:
    """One cell: what is shown, how it sorts, what a click shows, what the CSV gets."""

    text: str
    sort: float | str | None = None
    prov: str | None = None
    title: str | None = None
    css: str = ""
    raw: Any = None
    sub: str = ""


@dataclass
class Row:
    """One row: ``kind`` is ``ranked``, ``reference``, ``baseline`` or ``published``."""

    kind: str
    cells: dict[str, Cell]
    tier: str = ""
    label: str = ""


@dataclass
class Table:
    """A titled table of one section, with the filter keys it belongs to."""

    id: str
    title: str
    columns: list[Column]
    rows: list[Row] = field(default_factory=list)
    section: str = ""
    preset: str = ""
    task: str = ""
    tier: str = ""
    caption: str = ""
    csv_name: str = ""

    def to_frame(self) -> pd.DataFrame:
        """The table as a frame of raw values (what its CSV download holds)."""
        records = []
        for row in self.rows:
            entry: dict[str, Any] = {"row_kind": row.kind}
            for column in self.columns:
                cell = row.cells.get(column.key)
                value = None if cell is None else (cell.raw if cell.raw is not None else cell.text)
                entry[column.label] = csv_safe(value)
            records.append(entry)
        return pd.DataFrame(records, columns=["row_kind", *[c.label for c in self.columns]])


def slug(*parts: str) -> str:
    """An id / file name from parts (letters, digits, ``-`` and ``_`` only)."""
    text = "-".join(parts)
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in text)


def section_table(
    section: str,
    prefix: str,
    parts: tuple[str, ...],
    title: str,
    columns: list[Column],
    csv_prefix: str | None = None,
    **fields: Any,
) -> Table:
    """A table of one page section, its id ``prefix-parts`` and its CSV download
    ``csv_prefix-parts.csv`` (``csv_prefix`` defaults to ``prefix``); ``fields`` are the
    other :class:`Table` fields (preset, task, tier, caption)."""
    return Table(
        slug(prefix, *parts),
        title,
        columns,
        section=section,
        csv_name=f"{slug(csv_prefix or prefix, *parts)}.csv",
        **fields,
    )


def metric_columns(metric: str, label: str, direction: str | None, help: str) -> list[Column]:
    """The three columns of one metric: value (with its direction arrow), 95 % CI, n."""
    return [
        Column(f"m:{metric}", label, direction, help, True),
        Column(f"ci:{metric}", f"{metric} 95% CI", None, "bootstrap 95 % interval", True),
        Column(f"n:{metric}", f"{metric} n", None, f"test items {metric} was computed on", True),
    ]


#: A text cell starting with one of these is read as a formula by spreadsheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: Any) -> Any:
    """``value`` for a CSV cell: text a spreadsheet would run as a formula gets a leading
    ``'`` (numbers are left as they are)."""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


def fmt(value: float | None, digits: int = 3) -> str:
    """A number for display: ``digits`` significant digits, at most 2 decimals above 100."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    value = float(value)
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:.1f}"
    decimals = max(0, digits - 1 - math.floor(math.log10(magnitude)))
    return f"{value:.{min(decimals, 6)}f}"


def text_cell(
    text: object, prov: str | None = None, css: str = "", sub: str = "", title: str | None = None
) -> Cell:
    """A text cell, sorted by its text; ``sub`` is a second, smaller line."""
    shown = "" if text is None else str(text)
    return Cell(shown, shown.lower(), prov, title, css=css, raw=shown, sub=sub)


class ProvenanceIndex:
    """Cell provenance shown on click: ``c<N>`` -> what the cell is and which records made it."""

    def __init__(self) -> None:
        self.cells: dict[str, dict[str, Any]] = {}

    def add(self, info: dict[str, Any]) -> str:
        """Store ``info`` (JSON-ready) and return its id."""
        cid = f"c{len(self.cells)}"
        self.cells[cid] = info
        return cid


def number_cell(
    value: float | None,
    text: str | None = None,
    prov: str | None = None,
    title: str | None = None,
    css: str = "",
) -> Cell:
    """A numeric cell, sorted by value (empty cells sort last)."""
    shown = fmt(value) if text is None else text
    return Cell(shown, value, prov, title, css, value)
