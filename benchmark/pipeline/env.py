"""What the steps of one process share: the config, the registries, and built components.

Steps are functions of their specs; :class:`StepEnv` rebuilds what a spec names (a
tokenizer from its card reference and parameters, a task likewise) and memoises it by the
spec's fingerprint, so an in-process executor builds each tokenizer once while a worker
elsewhere rebuilds it from the same spec. Nothing here is handed from one step to another.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from benchmark.api import Task, Tokenizer, construct
from benchmark.cache import TokenCache
from benchmark.errors import ContractError, UsageError
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.keys import AudioIdentityCache, fingerprint
from benchmark.pipeline.status import MARKER
from benchmark.registry import Entry, Registries, build_registries

log = logging.getLogger(__name__)


def component_spec(entry: Entry, params: dict[str, Any], weights: Any) -> dict[str, Any]:
    """The JSON-ready reference a step rebuilds a tokenizer or task from."""
    ref = str(entry.card.path) if entry.source.route == "card" and entry.card.path else entry.name
    return {"kind": entry.kind, "ref": ref, "name": entry.name, "params": params,
            "weights": dict(weights) if weights else None}  # fmt: skip


class StepEnv:
    """Shared, rebuildable state of one process running steps."""

    def __init__(self, config: RunConfig, registries: Registries | None = None) -> None:
        self.config = config
        self._registries = registries
        self.device = config.resolved_device()
        self.workdir = Path(config.workdir)
        self.audio_ids = AudioIdentityCache(self.workdir / "audio-ids.json")
        self.token_cache = TokenCache(self.workdir / "tokens")
        self._built: dict[str, Any] = {}

    @property
    def registries(self) -> Registries:
        """The registries (built-ins, entry points and the config's plugin files)."""
        if self._registries is None:
            self._registries = build_registries(list(self.config.plugins))
        return self._registries

    def entry(self, kind: str, ref: str) -> Entry:
        """A registered name or card path."""
        return self.registries.resolve_name(kind, ref)  # type: ignore[arg-type]

    def build(self, spec: dict[str, Any], seed: int = 0, fit_dir: str | None = None) -> Any:
        """Construct (and load the fitted state of) the tokenizer or task a spec names.

        Raises:
            UsageError: the parameters do not fit the class (names the parameter and the
                accepted ones) or a value is refused by the class.
        """
        memo_key = fingerprint({"spec": spec, "seed": seed, "fit": fit_dir})
        if memo_key in self._built:
            return self._built[memo_key]
        entry = self.entry(spec["kind"], spec["ref"])
        cls = entry.load()
        context = self.config.context(self.device, spec.get("weights"), seed)
        try:
            obj = construct(cls, spec["params"], context, entry.name)
        except ContractError as exc:
            raise UsageError(f"{spec['kind']} {entry.name!r}: {exc}") from None
        except (ValueError, TypeError) as exc:
            raise UsageError(
                f"{spec['kind']} {entry.name!r}: bad parameter value: {exc}; fix the card or "
                f"the --{spec['kind']}-param option"
            ) from None
        pretrained = spec.get("pretrained")  # the output of its pretrain step
        if pretrained and not (Path(pretrained) / MARKER).is_file():
            # asked while planning, before the step ran: info and state only (its encoder
            # raises until loaded); not memoised, so a later build loads the folder
            return obj
        if pretrained:
            obj.load_pretrained(Path(pretrained))  # before the fit, which depends on it
        if fit_dir is not None:
            obj.load_fitted(Path(fit_dir))
        self._built[memo_key] = obj
        return obj

    def tokenizer(self, spec: dict[str, Any], fit_dir: str | None = None) -> Tokenizer:
        """The tokenizer a spec names (fitted from ``fit_dir`` when given)."""
        return self.build(spec, 0, fit_dir)

    def task(self, spec: dict[str, Any]) -> Task:
        """The task a spec names."""
        return self.build(spec)
