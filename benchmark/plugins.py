"""Registering tokenizers, tasks and metrics from a local plugin file (``--plugin file.py``).

A plugin file imports the interfaces and registers its classes::

    from benchmark.api import Tokenizer, TokenizerInfo
    from benchmark.plugins import register_tokenizer

    class MyTokenizer(Tokenizer):
        ...

    register_tokenizer("my-tokenizer", MyTokenizer, params={"levels": 16},
                       description="what it is")

The harness executes the file once with a registration context that records the file's path
and sha256 as the source of every name it registers. Installed packages use entry points
instead (see :mod:`benchmark.registry`).
"""

from __future__ import annotations

import contextvars
import hashlib
import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmark.cards import card_from_mapping
from benchmark.errors import BenchmarkError, PluginError
from benchmark.registry import Entry, Kind, Registries, Source, check_contract

_ACTIVE: contextvars.ContextVar[tuple[Registries, Source] | None] = contextvars.ContextVar(
    "benchmark_plugin_context", default=None
)


def _register(
    kind: Kind,
    name: str,
    obj: Any,
    params: Mapping[str, Any] | None,
    description: str | None,
    presets: Mapping[str, Any] | None = None,
) -> None:
    active = _ACTIVE.get()
    if active is None:
        raise PluginError(
            f"register_{kind}({name!r}) was called outside a plugin load; pass the file with "
            "--plugin, or register through an entry point"
        )
    registries, source = active
    check_contract(kind, name, obj, source)
    description = description or (obj.__doc__ or "").strip().splitlines()[0:1]
    if isinstance(description, list):
        description = description[0] if description else obj.__qualname__
    card = None
    if kind != "metric":
        mapping: dict[str, Any] = {
            "name": name,
            "description": description,
            "class": f"{obj.__module__}:{obj.__qualname__}",
            "params": dict(params or {}),
        }
        if presets:
            mapping["presets"] = dict(presets)
        card = card_from_mapping(mapping, where=f"{source.location} register_{kind}({name!r})")
    registries.of(kind).add(Entry(name, kind, source, description, obj, card=card))


def register_tokenizer(
    name: str,
    cls: type,
    params: Mapping[str, Any] | None = None,
    description: str | None = None,
    presets: Mapping[str, Any] | None = None,
) -> None:
    """Register a :class:`benchmark.api.Tokenizer` subclass under ``name``."""
    _register("tokenizer", name, cls, params, description, presets)


def register_task(
    name: str,
    cls: type,
    params: Mapping[str, Any] | None = None,
    description: str | None = None,
    presets: Mapping[str, Any] | None = None,
) -> None:
    """Register a :class:`benchmark.api.Task` subclass under ``name``."""
    _register("task", name, cls, params, description, presets)


def register_metric(name: str, cls: type, description: str | None = None) -> None:
    """Register a :class:`benchmark.api.Metric` subclass under ``name``."""
    _register("metric", name, cls, None, description)


def load_plugin_file(path: Path, registries: Registries) -> Source:
    """Execute a plugin file so that its ``register_*`` calls land in ``registries``.

    Raises:
        PluginError: the file is missing or raises while it is executed.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise PluginError(f"plugin file {path} does not exist")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    source = Source("file", str(path), digest)
    module_name = f"benchmark_plugin_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise PluginError(f"plugin file {path} cannot be loaded as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    token = _ACTIVE.set((registries, source))
    try:
        spec.loader.exec_module(module)
    except BenchmarkError:
        sys.modules.pop(module_name, None)
        raise
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise PluginError(
            f"plugin file {path} raised {type(exc).__name__}: {exc}; fix the file"
        ) from exc
    finally:
        _ACTIVE.reset(token)
    return source
