"""Write the static site: HTML from the template (autoescaped), assets, CSVs, records, audio.

The only impure part of the leaderboard. The page opens from the file system: every file it
uses is written under the output folder and referenced by a relative path; its
Content-Security-Policy allows nothing else (no network, no inline script). Strings from
cards, plugins and records reach the page only through Jinja2's autoescaping, or inside the
embedded JSON block with ``<``, ``>`` and ``&`` written as ``\\u`` escapes, which the page's
script reads as data and inserts as text.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from benchmark.errors import DataError
from benchmark.leaderboard.plots import PlotFile
from benchmark.leaderboard.table_model import Table, slug
from benchmark.pipeline.records import ResultRecord
from benchmark.pipeline.store import atomic_write_text

log = logging.getLogger(__name__)

SITE_ROOT = Path(__file__).resolve().parent.parent.parent / "leaderboard"
TEMPLATES = SITE_ROOT / "templates"
STATIC = SITE_ROOT / "static"
GROUP_LABELS = {
    "reference": "continuous references (not ranked)",
    "baseline": "trivial baselines and ground truth (not ranked)",
    "published": "published numbers (not ranked)",
}
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")


@dataclass
class Page:
    """Everything the template shows."""

    title: str
    built: str
    results_dir: str
    record_count: int
    presets: list[str]
    tiers: list[str]
    tasks: list[str]
    rank_tables: list[Table] = field(default_factory=list)
    task_tables: list[Table] = field(default_factory=list)
    profile_tables: list[Table] = field(default_factory=list)
    stats_tables: list[Table] = field(default_factory=list)
    study_tables: list[Table] = field(default_factory=list)
    published: Table | None = None
    published_sources: list[str] = field(default_factory=list)
    definitions: Table | None = None
    changes: Table | None = None
    figures: list[PlotFile] = field(default_factory=list)
    examples: list[dict[str, Any]] = field(default_factory=list)
    rules: list[str] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)


def safe_json(payload: Any) -> Markup:
    """JSON for a ``<script type="application/json">`` block: no ``<``, ``>``, ``&`` left
    (so no ``</script>`` can end the block early), non-finite numbers as null."""
    text = json.dumps(_finite(payload), sort_keys=True, default=str, allow_nan=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return Markup(text)  # escaped above for a JSON script block


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_finite(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return _finite(value.item())
    return value


def environment() -> jinja2.Environment:
    """The template environment: autoescaping on, undefined names are errors."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
    )


def copy_examples(examples: Sequence[dict[str, Any]], out_dir: Path) -> list[dict[str, Any]]:
    """Copy the examples' audio into ``out_dir/assets/audio`` and group them for the page.

    Args:
        examples: :attr:`benchmark.leaderboard.load.Results.examples` (``preset, tokenizer,
            task, seed, id, label, audio, reference`` with resolved paths) plus ``tier``.
        out_dir: the site folder.

    Returns:
        One group per (preset, task, tokenizer): ``{"preset", "task", "tokenizer", "tier",
        "utterances": [{"id", "seed", "players": [{"label", "src", "missing"}]}]}``; in an
        utterance, each example's audio under its label, then its reference(s) once. ``src``
        is relative to the page; a file that does not exist (or is not audio) has ``src``
        None and ``missing`` its path, so the page says so instead of a player that cannot
        play. A file used twice (one reference beside several tokenizers) is copied once.
    """
    copied: dict[Path, str] = {}

    def place(source: Path | None, folder: Path, name: str) -> tuple[str | None, str | None]:
        if source is None:
            return None, None
        source = Path(source)
        if not source.is_file() or source.suffix.lower() not in AUDIO_SUFFIXES:
            log.warning("leaderboard: example audio %s not found; listed as missing", source)
            return None, str(source)
        key = source.resolve()
        if key not in copied:
            target = folder / f"{slug(name)}{source.suffix.lower()}"
            (out_dir / target).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_dir / target)
            copied[key] = target.as_posix()
        return copied[key], None

    groups: dict[tuple[str, str, str], dict[str, Any]] = {}
    for example in examples:
        preset, task, tokenizer = (str(example[k]) for k in ("preset", "task", "tokenizer"))
        group = groups.setdefault(
            (preset, task, tokenizer),
            {"preset": preset, "task": task, "tokenizer": tokenizer,
             "tier": example.get("tier", ""), "utterances": {}},
        )  # fmt: skip
        seed, utterance_id = example.get("seed"), str(example["id"])
        utterance = group["utterances"].setdefault(
            (seed, utterance_id), {"id": utterance_id, "seed": seed, "players": [], "refs": []}
        )
        folder = Path("assets/audio") / slug(preset, tokenizer, task)
        label = str(example.get("label") or "output")
        src, missing = place(example.get("audio"), folder, f"{seed}-{utterance_id}-{label}")
        utterance["players"].append({"label": label, "src": src, "missing": missing})
        reference = example.get("reference")
        if reference is not None and Path(reference) not in [r for r, _ in utterance["refs"]]:
            number = len(utterance["refs"]) + 1
            name = f"{seed}-{utterance_id}-reference{number if number > 1 else ''}"
            utterance["refs"].append((Path(reference), place(reference, folder, name)))
    shown = []
    for group in groups.values():
        utterances = []
        for utterance in group["utterances"].values():
            refs = utterance.pop("refs")
            for number, (_, (src, missing)) in enumerate(refs, start=1):
                label = "reference" if len(refs) == 1 else f"reference {number}"
                utterance["players"].append({"label": label, "src": src, "missing": missing})
            utterances.append(utterance)
        shown.append({**group, "utterances": utterances})
    return sorted(shown, key=lambda g: (g["preset"], g["task"], g["tokenizer"]))


def write_data(
    out_dir: Path, tables: Sequence[Table], records: Sequence[tuple[Path, ResultRecord]]
) -> None:
    """Every table as CSV (and all of them in ``tables.zip``), the records as JSON."""
    data = out_dir / "data"
    data.mkdir(parents=True, exist_ok=True)
    names = []
    for table in tables:
        if not table.csv_name:
            continue
        atomic_write_text(data / table.csv_name, table.to_frame().to_csv(index=False))
        names.append(table.csv_name)
    with zipfile.ZipFile(data / "tables.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for name in names:
            archive.write(data / name, arcname=name)
    payload = [{"path": str(path), **record.to_dict()} for path, record in records]
    text = json.dumps(_finite(payload), indent=1, sort_keys=True, default=str, allow_nan=False)
    atomic_write_text(data / "records.json", text + "\n")


def render_site(page: Page, out_dir: Path, records: Sequence[tuple[Path, ResultRecord]]) -> Path:
    """Write ``out_dir/index.html`` with its assets and data; return the index path.

    Raises:
        DataError: the templates or static assets are missing (a broken checkout).
    """
    if not (TEMPLATES / "index.html.j2").is_file() or not STATIC.is_dir():
        raise DataError(
            f"leaderboard templates not found under {SITE_ROOT}; restore the leaderboard/ folder"
        )
    out_dir = Path(out_dir)
    assets = out_dir / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    for path in STATIC.iterdir():
        if path.is_file():
            shutil.copyfile(path, assets / path.name)
    tables = [
        *page.rank_tables,
        *page.task_tables,
        *page.profile_tables,
        *page.stats_tables,
        *page.study_tables,
    ]
    tables += [t for t in (page.published, page.definitions, page.changes) if t is not None]
    write_data(out_dir, tables, records)
    nav = [
        (section, label)
        for section, label, present in (
            ("changes", "changes", page.changes is not None),
            ("rankings", "rankings", bool(page.rank_tables)),
            ("tasks", "tasks", bool(page.task_tables)),
            ("layers", "layer weights", any(f.section == "layers" for f in page.figures)),
            ("profiles", "profiles", bool(page.profile_tables)),
            ("token-stats", "token statistics", bool(page.stats_tables)),
            ("studies", "studies", bool(page.study_tables)),
            ("published", "published", page.published is not None),
            ("definitions", "definitions", True),
            ("rules", "rules", True),
        )
        if present
    ]
    html = (
        environment()
        .get_template("index.html.j2")
        .render(
            **{k: getattr(page, k) for k in page.__dataclass_fields__ if k != "provenance"},
            nav=nav,
            group_labels=GROUP_LABELS,
            provenance_json=safe_json(page.provenance),
        )
    )
    index = out_dir / "index.html"
    atomic_write_text(index, html)
    return index
