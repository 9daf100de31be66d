"""The plugin API: register tokenizers, tasks and metrics from your own module.

A plugin file is an ordinary Python module: it imports the interfaces and registers its
classes::

    from benchmark.api import Tokenizer, TokenizerInfo
    from benchmark.plugins import register_tokenizer

    class MyTokenizer(Tokenizer):
        ...

    register_tokenizer("my-tokenizer", MyTokenizer, params={"levels": 16},
                       description="what it is")

Registering only *records* the call (:data:`REGISTRATIONS`); nothing is refused outside the
harness, so a plugin's author can import the file in their own unit tests. When the harness
loads the file (``--plugin file.py``, see :func:`benchmark.registry.load_plugin_file`), it
imports it as a module named after the file (so a card's ``class: my_plugin:MyTokenizer`` can
name it, and the file can import modules beside it), then turns the calls that module made
into registry entries whose source is the file's path and sha256. Installed packages use
entry points instead (see :mod:`benchmark.registry`).

This module imports nothing of the registries, so it has no import cycle with them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Kind = Literal["tokenizer", "task", "metric"]


@dataclass(frozen=True)
class Registration:
    """One ``register_*`` call, as recorded.

    Attributes:
        kind: ``tokenizer``, ``task`` or ``metric``.
        name: the registered name.
        obj: the class.
        params: default constructor parameters (tokenizers and tasks).
        description: one line; the class docstring's first line when not given.
        presets: per-preset overrides, as in a card.
        module: ``__module__`` of the class (which loaded file registered it).
    """

    kind: Kind
    name: str
    obj: Any
    params: Mapping[str, Any] | None
    description: str
    presets: Mapping[str, Any] | None
    module: str


#: Every registration made in this process, in call order.
REGISTRATIONS: list[Registration] = []


def _register(
    kind: Kind,
    name: str,
    obj: Any,
    params: Mapping[str, Any] | None,
    description: str | None,
    presets: Mapping[str, Any] | None = None,
) -> Registration:
    if not description:
        lines = (getattr(obj, "__doc__", None) or "").strip().splitlines()
        description = lines[0] if lines else getattr(obj, "__qualname__", name)
    registration = Registration(
        kind, name, obj, params, description, presets, getattr(obj, "__module__", "")
    )
    REGISTRATIONS.append(registration)
    return registration


def register_tokenizer(
    name: str,
    cls: type,
    params: Mapping[str, Any] | None = None,
    description: str | None = None,
    presets: Mapping[str, Any] | None = None,
) -> Registration:
    """Record a :class:`benchmark.api.Tokenizer` subclass under ``name``."""
    return _register("tokenizer", name, cls, params, description, presets)


def register_task(
    name: str,
    cls: type,
    params: Mapping[str, Any] | None = None,
    description: str | None = None,
    presets: Mapping[str, Any] | None = None,
) -> Registration:
    """Record a :class:`benchmark.api.Task` subclass under ``name``."""
    return _register("task", name, cls, params, description, presets)


def register_metric(name: str, cls: type, description: str | None = None) -> Registration:
    """Record a :class:`benchmark.api.Metric` subclass under ``name``."""
    return _register("metric", name, cls, None, description)
