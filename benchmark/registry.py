"""Lazy registries of tokenizers, tasks and metrics, and where each name came from.

Names come from four routes: built-in cards (the top-level ``tokenizers/`` and ``tasks/``
folders) and built-in metrics; installed packages through the entry-point groups
``benchmark.tokenizers`` / ``benchmark.tasks`` / ``benchmark.metrics``; ``--plugin file.py``;
and a card path given in place of a name. Registration stores ``"module:attr"`` strings (or,
for file plugins, the object itself): nothing heavy is imported until a name is used.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from benchmark.cards import Card, card_from_mapping, load_card
from benchmark.errors import (
    BenchmarkError,
    ContractError,
    DuplicateNameError,
    PluginError,
    UnknownNameError,
)
from benchmark.plugins import REGISTRATIONS, Registration

log = logging.getLogger(__name__)

Kind = Literal["tokenizer", "task", "metric"]
KINDS: tuple[Kind, ...] = ("tokenizer", "task", "metric")
ENTRY_POINT_GROUPS: dict[Kind, str] = {
    "tokenizer": "benchmark.tokenizers",
    "task": "benchmark.tasks",
    "metric": "benchmark.metrics",
}
REPO_ROOT = Path(__file__).resolve().parent.parent
#: Built-in cards ship inside the package (a wheel install has them all); the top-level
#: ``tokenizers/`` and ``tasks/`` folders of a checkout link to these folders.
BUILTIN_CARDS = Path(__file__).resolve().parent / "builtin_cards"
CARD_DIRS: dict[Kind, Path] = {
    "tokenizer": BUILTIN_CARDS / "tokenizers",
    "task": BUILTIN_CARDS / "tasks",
}

#: Built-in metrics, registered lazily as "module:attr" strings.
BUILTIN_METRICS: dict[str, tuple[str, str]] = {
    "accuracy": ("benchmark.metrics.classification:Accuracy", "fraction of correct labels"),
    "wer": ("benchmark.metrics.asr:WordErrorRate", "word error rate (jiwer), in %"),
    "cer": ("benchmark.metrics.asr:CharacterErrorRate", "character error rate (jiwer), in %"),
    "pesq": ("benchmark.metrics.intrusive:PESQ", "wide-band PESQ against the clean reference"),
    "stoi": ("benchmark.metrics.intrusive:STOI", "STOI against the clean reference"),
    "dnsmos_sig": ("benchmark.metrics.dnsmos:DNSMOSSig", "DNSMOS P.835 speech quality"),
    "dnsmos_bak": ("benchmark.metrics.dnsmos:DNSMOSBak", "DNSMOS P.835 background quality"),
    "dnsmos_ovrl": ("benchmark.metrics.dnsmos:DNSMOSOvrl", "DNSMOS P.835 overall quality"),
    "dnsmos_p808": ("benchmark.metrics.dnsmos:DNSMOSP808", "DNSMOS P.808 MOS"),
    "dwer": ("benchmark.metrics.dwer:DWER", "WER between transcripts of output and reference"),
    "dcer": ("benchmark.metrics.dwer:DCER", "CER between transcripts of output and reference"),
    "text_wer": (
        "benchmark.metrics.dwer:TextWER",
        "WER of the output's transcript vs the input text",
    ),
    "text_cer": (
        "benchmark.metrics.dwer:TextCER",
        "CER of the output's transcript vs the input text",
    ),
    "speaker_similarity": (
        "benchmark.metrics.speaker_similarity:SpeakerSimilarity",
        "cosine of speaker embeddings of output and reference",
    ),
    "utmos": ("benchmark.metrics.utmos:UTMOS", "UTMOS22 strong learner MOS prediction"),
}


@dataclass(frozen=True)
class Source:
    """Where a registered name came from.

    Attributes:
        route: ``builtin``, ``entry-point``, ``file`` or ``card``.
        location: card or plugin file path, or ``distribution==version``.
        digest: sha256 of the card or plugin file, where there is a file.
    """

    route: Literal["builtin", "entry-point", "file", "card"]
    location: str
    digest: str | None = None

    def describe(self) -> str:
        """Human-readable one-liner, e.g. ``file plugins/my.py (sha256 1a2b3c4d)``."""
        digest = f" (sha256 {self.digest[:12]})" if self.digest else ""
        label = {
            "builtin": "built-in",
            "entry-point": "package",
            "file": "plugin file",
            "card": "card",
        }[self.route]
        return f"{label} {self.location}{digest}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view for provenance."""
        return {"route": self.route, "location": self.location, "digest": self.digest}


@dataclass
class Entry:
    """One registered name: its source, its card (tokenizers and tasks) and its target."""

    name: str
    kind: Kind
    source: Source
    description: str
    target: str | Any
    card: Card | None = None
    _loaded: Any = field(default=None, repr=False)

    def load(self) -> Any:
        """Import and return the implementing class, checking it honours the contract.

        Raises:
            PluginError: the module cannot be imported or the object is not a valid class.
        """
        if self._loaded is not None:
            return self._loaded
        obj = self.target
        if isinstance(obj, str):
            module_name, _, attr = obj.partition(":")
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                raise PluginError(
                    f"{self.kind} {self.name!r} ({self.source.describe()}): cannot import "
                    f"{module_name!r}: {type(exc).__name__}: {exc}"
                ) from exc
            try:
                for part in attr.split("."):
                    module = getattr(module, part)
            except AttributeError:
                raise PluginError(
                    f"{self.kind} {self.name!r} ({self.source.describe()}): {module_name!r} has "
                    f"no attribute {attr!r}; fix the 'class' entry"
                ) from None
            obj = module
        check_contract(self.kind, self.name, obj, self.source)
        self._loaded = obj
        return obj


def check_contract(kind: Kind, name: str, obj: Any, source: Source) -> None:
    """Raise PluginError unless ``obj`` is a concrete subclass of the kind's interface."""
    from benchmark import api

    try:
        api.check_contract(kind, name, obj, source.describe())
    except ContractError as exc:
        raise PluginError(str(exc)) from None


class Registry:
    """Names of one kind, with close-match suggestions and duplicate detection."""

    def __init__(self, kind: Kind) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}

    def add(self, entry: Entry) -> None:
        """Register an entry; a name registered twice is an error naming both sources."""
        existing = self._entries.get(entry.name)
        if existing is not None:
            raise DuplicateNameError(
                f"{self.kind} {entry.name!r} is registered twice: by "
                f"{existing.source.describe()} and by {entry.source.describe()}; rename one"
            )
        self._entries[entry.name] = entry

    def get(self, name: str) -> Entry:
        """Look a name up, or fail with close matches."""
        try:
            return self._entries[name]
        except KeyError:
            pass
        close = difflib.get_close_matches(name, list(self._entries), n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        known = f" (known: {', '.join(sorted(self._entries))})" if not close else ""
        raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}{known}")

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries[name] for name in self.names())

    def __contains__(self, name: str) -> bool:
        return name in self._entries


@dataclass
class Registries:
    """The three registries together."""

    tokenizer: Registry = field(default_factory=lambda: Registry("tokenizer"))
    task: Registry = field(default_factory=lambda: Registry("task"))
    metric: Registry = field(default_factory=lambda: Registry("metric"))

    def of(self, kind: Kind) -> Registry:
        """The registry of one kind."""
        return {"tokenizer": self.tokenizer, "task": self.task, "metric": self.metric}[kind]

    def add_card_file(self, kind: Kind, path: Path, route: str = "card") -> Entry:
        """Register the card at ``path`` (a built-in card or one passed on the command line)."""
        card = load_card(path)
        path = Path(path).resolve()
        if route == "builtin" and path.is_relative_to(BUILTIN_CARDS):
            location: Path | str = path.relative_to(BUILTIN_CARDS)
        elif path.is_relative_to(REPO_ROOT):
            location = path.relative_to(REPO_ROOT)
        else:
            location = path
        source = Source(route, str(location), card.sha256)  # type: ignore[arg-type]
        entry = Entry(card.name, kind, source, card.description, card.target, card=card)
        self.of(kind).add(entry)
        return entry

    def resolve_name(self, kind: Kind, name_or_path: str) -> Entry:
        """A registered name, or a card path (``*.yaml``/``*.yml`` or an existing file)."""
        path = Path(name_or_path)
        if name_or_path.endswith((".yaml", ".yml")) or (path.suffix and path.is_file()):
            if not path.is_file():
                raise UnknownNameError(f"card file {name_or_path} does not exist")
            card = load_card(path)
            registry = self.of(kind)
            if card.name in registry:
                existing = registry.get(card.name)
                if existing.card is not None and existing.card.path == path.resolve():
                    return existing
            return self.add_card_file(kind, path.resolve())
        return self.of(kind).get(name_or_path)


def _register_builtins(registries: Registries) -> None:
    for kind, folder in CARD_DIRS.items():
        if not folder.is_dir():
            continue
        for path in sorted(folder.glob("*.yaml")):
            registries.add_card_file(kind, path, route="builtin")
    for name, (target, description) in BUILTIN_METRICS.items():
        source = Source("builtin", "benchmark.metrics")
        registries.metric.add(Entry(name, "metric", source, description, target))


def _register_entry_points(registries: Registries) -> None:
    for kind, group in ENTRY_POINT_GROUPS.items():
        for point in metadata.entry_points(group=group):
            dist = getattr(point, "dist", None)
            location = f"{dist.name}=={dist.version}" if dist is not None else point.value
            source = Source("entry-point", location)
            card = None
            if kind != "metric":
                card = card_from_mapping(
                    {"name": point.name, "description": f"from {location}", "class": point.value},
                    where=f"entry point {point.name!r} of {location}",
                )
            registries.of(kind).add(
                Entry(point.name, kind, source, f"from {location}", point.value, card=card)
            )


def build_registries(plugin_files: list[Path] | tuple[Path, ...] = ()) -> Registries:
    """Collect built-ins, installed entry points and plugin files into fresh registries.

    Raises:
        CardError, DuplicateNameError, PluginError: a bad card, name clash or broken plugin.
    """
    registries = Registries()
    _register_builtins(registries)
    _register_entry_points(registries)
    for path in plugin_files:
        load_plugin_file(Path(path), registries)
    return registries


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


#: Plugin files imported in this process: (path, sha256) -> (module name, registrations).
_LOADED: dict[tuple[str, str], tuple[str, list[Registration]]] = {}


def _plugin_module_name(path: Path, digest: str) -> str:
    """The file's stem when that names no other module, else a unique private name.

    Importing a plugin under its stem lets a card say ``class: my_plugin:MyTokenizer``.
    """
    stem = path.stem
    if stem.isidentifier():
        loaded = sys.modules.get(stem)
        if loaded is not None:
            if Path(getattr(loaded, "__file__", "") or "").resolve() == path:
                return stem
        else:
            try:
                spec = importlib.util.find_spec(stem)
            except (ImportError, ValueError):
                spec = None
            if spec is None or Path(spec.origin or "").resolve() == path:
                return stem
    log.debug("plugin %s imported as benchmark_plugin_%s (%r names another module)", path,
              digest[:16], stem)  # fmt: skip
    return f"benchmark_plugin_{digest[:16]}"


def _import_plugin(path: Path, digest: str) -> list[Registration]:
    """Import a plugin file once per content; return the registrations it made."""
    cached = _LOADED.get((str(path), digest))
    if cached is not None:
        return cached[1]
    module_name = _plugin_module_name(path, digest)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be loaded as Python")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.append(folder)  # appended: siblings import, installed modules still win
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    start = len(REGISTRATIONS)
    try:
        spec.loader.exec_module(module)
    except BenchmarkError:
        sys.modules.pop(module_name, None)
        del REGISTRATIONS[start:]
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        del REGISTRATIONS[start:]
        raise PluginError(
            f"plugin file {path} raised {type(exc).__name__}: {exc}; fix the file"
        ) from exc
    made = REGISTRATIONS[start:]
    _LOADED[(str(path), digest)] = (module_name, made)
    return made


def load_plugin_file(path: Path, registries: Registries) -> Source:
    """Import a plugin file and register what it registers, with the file as the source.

    Raises:
        PluginError: the file is missing, raises while imported, or registers a class that
            does not implement its interface.
        DuplicateNameError: a name is already registered.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist; check the --plugin path")
    digest = file_sha256(path)
    source = Source("file", str(path), digest)
    for made in _import_plugin(path, digest):
        check_contract(made.kind, made.name, made.obj, source)
        card = None
        if made.kind != "metric":
            mapping: dict[str, Any] = {
                "name": made.name,
                "description": made.description,
                "class": f"{made.obj.__module__}:{made.obj.__qualname__}",
                "params": dict(made.params or {}),
            }
            if made.presets:
                mapping["presets"] = dict(made.presets)
            where = f"{path} register_{made.kind}({made.name!r})"
            card = card_from_mapping(mapping, where=where)
        entry = Entry(made.name, made.kind, source, made.description, made.obj, card=card)
        registries.of(made.kind).add(entry)
    return source
