"""The planner: a :class:`RunConfig` becomes a :class:`StepGraph` of fingerprinted steps.

For every tokenizer x task x seed of the command line it plans, sharing whatever can be
shared: one ``prepare`` step per synthesised corpus, one ``fit`` per tokenizer fit key, one
``conformance`` gate per fitted tokenizer, one ``extract`` per (encoder, manifest), and a
``job`` (train and evaluate, write the record) per cell. Each step's key hashes its named
components (:mod:`benchmark.pipeline.keys`): cards, the code behind every class, the
tokenizer's ``state_fingerprint()``, library versions, manifests with audio bytes, the seed.

The state of each step is read from its output: ``done`` when the output holds the same key,
``to do`` with the names of the components that changed otherwise, and ``pending`` when its
key needs data not yet prepared (the mini corpus before its first synthesis).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.api import DataRef, Tokenizer
from benchmark.conformance import GATE_CHECKS, SUITE_VERSION
from benchmark.data.corpora import get_corpus, resolve_data
from benchmark.data.manifest import Manifest
from benchmark.errors import BenchmarkError, ContractError, UsageError, WeightsUnavailableError
from benchmark.pipeline import status
from benchmark.pipeline.config import RunConfig
from benchmark.pipeline.distributed import world_size
from benchmark.pipeline.env import StepEnv, component_spec
from benchmark.pipeline.graph import Step, StepGraph
from benchmark.pipeline.keys import code_fingerprint, key_of, library_versions, manifest_key
from benchmark.pipeline.plan_generative import GenerativePlanning, is_generative
from benchmark.pipeline.records import SCHEMA_VERSION, record_path
from benchmark.registry import Entry

log = logging.getLogger(__name__)


@dataclass
class _Tok:
    """What the planner learnt about one tokenizer of the command line."""

    entry: Entry
    name: str  # record folder name (variant)
    spec: dict[str, Any]
    key: str | None = None  # tokenizer key (identity + fit), None while pending
    encoder_key: str | None = None
    encoder_spec: dict[str, Any] | None = None
    kept: int | None = None
    fit_id: str | None = None  # what later steps wait for: the fit, else the pretrain step
    fit_dir: str | None = None
    gate_id: str | None = None
    error: BaseException | None = None  # could not be built: its jobs record this
    pending: str = ""
    info: Any = None  # TokenizerInfo of the built tokenizer
    decoder: dict[str, Any] | None = None  # how generative cells decode (plan_generative)
    overrides: tuple[tuple[str, Any], ...] = ()  # the parameters overridden on its card


def identity(entry: Entry, spec: Mapping[str, Any]) -> dict[str, Any]:
    """Code identity of a registered class: source closure, distribution files, plugin file."""
    if entry.source.route == "file":
        from benchmark.pipeline.keys import plugin_file_fingerprint

        return plugin_file_fingerprint(Path(entry.source.location))
    return code_fingerprint(entry.target if isinstance(entry.target, str) else entry.load())


class Planner(GenerativePlanning):
    """Builds the graph of one command line."""

    def __init__(
        self, env: StepEnv, config: RunConfig | None = None, graph: StepGraph | None = None
    ) -> None:
        """Args:
        env: the step environment (device, caches, registries).
        config: the command line to plan (default: ``env.config``); a study plans each of
            its cells' configs into one shared ``graph``.
        graph: add the steps to this graph (steps already in it are shared, not repeated).
        """
        self.env = env
        self.config = config or env.config
        self.graph = graph if graph is not None else StepGraph()
        self._manifest_keys: dict[str, str] = {}
        self._refs: dict[str, str] = {}  # registered name -> reference on the command line

    # --- entry points -----------------------------------------------------------------

    def plan(self) -> StepGraph:
        """The whole graph, with every step's state.

        Raises:
            UsageError: an unknown name, a card whose class cannot be imported, a parameter
                the class does not take or refuses (before any data is prepared).
        """
        config = self.config
        tok_entries = [self.env.entry("tokenizer", n) for n in config.tokenizers]
        self._refs = {e.name: ref for e, ref in zip(tok_entries, config.tokenizers, strict=True)}
        task_names = (
            self.env.registries.task.names() if "all" in config.tasks else list(config.tasks)
        )
        task_entries = [self.env.entry("task", n) for n in task_names]
        for entry in tok_entries + task_entries:
            entry.load()  # contract check before any work
        tasks = [self._task(entry) for entry in task_entries]
        toks = [self._tokenizer(entry) for entry in tok_entries]
        for tok in toks:
            for task_entry, task_spec, task, splits in tasks:
                for seed in config.seeds:
                    self._job(tok, task_entry, task_spec, task, splits, seed)
            if "all" in config.tasks and tok.key is not None:
                self._profile(tok)
                self._token_stats(tok, tasks)
        return self.graph

    def _profile(self, tok: _Tok) -> None:
        """``--task all`` also profiles each tokenizer (encode/decode time and memory)."""
        import torch

        from benchmark.profiles import (
            PROFILE_TASK,
            preset_profile_settings,
            profile_key_components,
        )

        settings = preset_profile_settings(self.config.preset, torch.get_num_threads())
        components = profile_key_components(tok.key, self.env.device, settings)
        path = record_path(self.config.results_dir, self.config.preset, tok.name, PROFILE_TASK, 0)
        step = Step(
            id=f"profile:{tok.name}",
            kind="profile",
            label=f"profile {tok.name}",
            components=components,
            inputs=(tok.fit_id,) if tok.fit_id else (),
            output=path,
            spec={
                "tokenizer": tok.spec,
                "tokenizer_name": tok.name,
                "task_name": PROFILE_TASK,
                "seed": 0,
                "fit_dir": tok.fit_dir,
                "tokenizer_key": tok.key,
                "settings": settings.__dict__,
                "description": tok.entry.description,
                "display_name": tok.entry.card.display_name,
                "tokenizer_source": tok.entry.source.to_dict(),
            },
            goal=True,
        )
        self._add(step)

    def _token_stats(self, tok: _Tok, tasks: list) -> None:
        """``--task all`` also measures the tokenizer's token statistics on the test splits."""
        from benchmark.pipeline.stats_step import token_stats_step

        step = token_stats_step(self, tok, tasks)
        if step is not None:
            self._add(step)

    def plan_tokens(
        self, tokenizer: str, data: Mapping[str, DataRef | Manifest]
    ) -> tuple[StepGraph, _Tok, dict[str, dict[str, Any]]]:
        """The steps that give one tokenizer fitted and ``data`` encoded (for commands
        beyond ``run``: vocoder training, check-tokenizer). The extract steps are the goals;
        with no data, the fit alone (check-tokenizer runs the whole suite itself).

        Raises:
            UsageError: as :meth:`plan`; BenchmarkError: the tokenizer cannot be built or its
                data is not prepared.
        """
        entry = self.env.entry("tokenizer", tokenizer)
        entry.load()
        self._refs = {entry.name: tokenizer}
        tok = self._tokenizer(entry)
        if tok.error is not None:
            raise tok.error
        if tok.pending:
            for step in self.graph:
                step.goal = step.kind == "prepare"
            return self.graph, tok, {}
        caches = {}
        for split, ref in data.items():
            extracted = self._extract(tok, ref)
            if extracted is None:
                for step in self.graph:
                    step.goal = step.kind == "prepare"
                return self.graph, tok, {}
            self.graph.steps[extracted[0]].goal = True
            caches[split] = extracted[1]
        if not data and tok.fit_id:
            self.graph.steps[tok.fit_id].goal = True
        return self.graph, tok, caches

    # --- components ---------------------------------------------------------------------

    def _task(self, entry: Entry):
        card = entry.card.resolve(self.config.preset).with_overrides(dict(self.config.task_params))
        spec = component_spec(entry, dict(card.params), card.weights)
        task = self.env.task(spec)
        try:
            splits = dict(task.splits(self.config.context(self.env.device)))
        except BenchmarkError as exc:
            raise UsageError(f"task {entry.name!r}: {exc}") from None
        return entry, spec, task, splits

    def _tokenizer(self, entry: Entry) -> _Tok:
        config = self.config
        overrides = config.tokenizer_params_of(entry.name, self._refs.get(entry.name))
        card = entry.card.resolve(config.preset).with_overrides(dict(overrides))
        spec = component_spec(entry, dict(card.params), card.weights)
        tok = _Tok(entry, config.variant_name(entry.name, overrides), spec, overrides=overrides)
        try:
            tokenizer = self.env.tokenizer(spec)
        except UsageError:
            raise
        except (WeightsUnavailableError, Exception) as exc:  # recorded per job, run goes on
            if isinstance(exc, KeyboardInterrupt):
                raise
            log.warning("tokenizer %s cannot be built: %s", entry.name, exc)
            tok.error = exc
            return tok
        tok.info = tokenizer.info
        base = {
            "card": card.fingerprint_payload(),
            "code": identity(entry, spec),
            "state": dict(tokenizer.state_fingerprint()),
            "info": {k: v for k, v in tokenizer.info.to_dict().items() if k != "name"},
            "libraries": library_versions(),
        }
        if not self._pretrain(tok, tokenizer, base):
            return tok
        fit_key = None
        if tokenizer.needs_fit:
            fit_key = self._fit(tok, tokenizer, base)
            if fit_key is None:
                return tok
        tok.key = key_of({**base, "fit": fit_key})
        self._encoder(tok, tokenizer, card, base, fit_key)
        self._gate(tok)
        return tok

    def _fit(self, tok: _Tok, tokenizer: Tokenizer, base: dict[str, Any]) -> str | None:
        try:
            ref = DataRef.from_spec(dict(tokenizer.fit_data_spec() or {}))
        except ContractError as exc:
            raise UsageError(f"tokenizer {tok.entry.name!r}: fit data: {exc}") from None
        data = self._manifest_key(ref)
        if data is None:
            tok.pending = f"needs corpus {ref.corpus}"
            return None
        check = getattr(tokenizer, "check_fit_data", None)  # optional: refuse before the fit
        if check is not None:
            try:
                check(self._manifest(ref))
            except ValueError as exc:
                raise UsageError(
                    f"tokenizer {tok.entry.name!r}: {exc}; fix the card or the "
                    "--tokenizer-param option"
                ) from None
        components = {"tokenizer": base, "data": {"ref": ref.name, "manifest": data}}
        fit_key = key_of(components)
        out = self.config.workdir / "fitted" / fit_key[:16]
        step = Step(
            id=f"fit:{fit_key[:16]}",
            kind="fit",
            label=f"fit {tok.name} on {ref.name}",
            components=components,
            inputs=(*self._prepare_ids(ref), *((tok.fit_id,) if tok.fit_id else ())),
            output=out,
            spec={"tokenizer": tok.spec, "data": ref.__dict__, "out": str(out)},
        )
        self._add(step)
        tok.fit_id, tok.fit_dir = step.id, str(out)
        return fit_key

    def _pretrain(self, tok: _Tok, tokenizer: Tokenizer, base: dict[str, Any]) -> bool:
        """A ``pretrain`` step for a tokenizer whose ``pretrain_spec()`` asks for one.

        Its key covers the recipe, the code of the module the spec names (default the
        tokenizer's), the data's manifests with their audio bytes and the library versions.
        The key enters ``base`` (a changed recipe refits and re-extracts), the folder goes
        into the tokenizer's spec as ``pretrained`` (every later step loads it), and the step
        is what the tokenizer's later steps wait for (``tok.fit_id``, until a fit replaces
        it). False while its data is not prepared (``tok.pending`` says which).
        """
        ask = getattr(tokenizer, "pretrain_spec", None)
        request = dict(ask() or {}) if ask is not None else {}
        if not request:
            return True
        try:
            refs = {n: DataRef.from_spec(dict(r)) for n, r in dict(request["data"]).items()}
        except (ContractError, KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"tokenizer {tok.entry.name!r}: pretrain_spec(): {exc}") from None
        data = {}
        for name, ref in refs.items():
            manifest = self._manifest_key(ref)
            if manifest is None:
                tok.pending = f"needs corpus {ref.corpus}"
                return False
            data[name] = {"ref": ref.name, "manifest": manifest}
        code = request.get("code")
        components = {
            "recipe": request.get("recipe"),
            "code": code_fingerprint(str(code)) if code else base["code"],
            "data": data,
            "libraries": library_versions(),
        }
        key = key_of(components)
        out = self.config.workdir / "pretrained" / key[:16]
        inputs = dict.fromkeys(i for ref in refs.values() for i in self._prepare_ids(ref))
        label = str(request.get("label") or "")
        step = Step(
            id=f"pretrain:{key[:16]}",
            kind="pretrain",
            label=f"pretrain for {tok.name}: {label}" if label else f"pretrain for {tok.name}",
            components=components,
            inputs=tuple(inputs),
            output=out,
            spec={
                "tokenizer": tok.spec,
                "label": label,
                "data": {name: ref.__dict__ for name, ref in refs.items()},
            },
        )
        tok.fit_id = self._add(step).id
        tok.spec = {**tok.spec, "pretrained": str(out)}
        base["pretrain"] = key
        return True

    def _encoder(self, tok: _Tok, tokenizer: Tokenizer, card, base, fit_key) -> None:
        variant = tokenizer.extraction_variant()
        if variant is None:
            tok.encoder_key, tok.encoder_spec = tok.key, tok.spec
            return
        full_params, kept = variant
        full_params = {k: v for k, v in full_params.items() if k != "name"}
        encoder_spec = {**tok.spec, "params": full_params}
        encoder = self.env.tokenizer(encoder_spec, tok.fit_dir)
        if not 0 < kept <= encoder.info.num_codebooks:
            raise UsageError(
                f"tokenizer {tok.entry.name!r}: extraction_variant keeps {kept} codebooks, the "
                f"full extraction has 1..{encoder.info.num_codebooks}"
            )
        # names are left out, so every card sharing the full extraction shares its cache
        tok.encoder_key = key_of(
            {
                "class": card.card.target,
                "params": full_params,
                "weights": dict(card.weights) if card.weights else None,
                "code": base["code"],
                "state": dict(encoder.state_fingerprint()),
                "info": {k: v for k, v in encoder.info.to_dict().items() if k != "name"},
                "libraries": base["libraries"],
                "fit": fit_key,
            }
        )
        tok.encoder_spec, tok.kept = encoder_spec, kept

    def _gate(self, tok: _Tok) -> None:
        import benchmark.conformance as conformance

        components = {
            "encoder": tok.encoder_key,
            "suite": SUITE_VERSION,
            "checks": list(GATE_CHECKS),
            "code": code_fingerprint(conformance.__name__),
        }
        gate_key = key_of(components)
        out = self.config.workdir / "conformance" / f"{gate_key[:16]}.json"
        step = Step(
            id=f"conformance:{gate_key[:16]}",
            kind="conformance",
            label=f"conformance gate {tok.name}",
            components=components,
            inputs=(tok.fit_id,) if tok.fit_id else (),
            output=out,
            spec={"tokenizer": tok.encoder_spec, "fit_dir": tok.fit_dir, "out": str(out)},
        )
        tok.gate_id = self._add(step).id

    # --- data ---------------------------------------------------------------------------

    def _prepare_ids(self, ref: DataRef) -> tuple[str, ...]:
        corpus = get_corpus(ref.corpus)
        if not corpus.synthesised:
            return ()
        context = self.config.context(self.env.device)
        components = {"corpus": ref.corpus, **corpus.identity(context)}
        step = Step(
            id=f"prepare:{ref.corpus}",
            kind="prepare",
            label=f"prepare corpus {ref.corpus} (scale {self.config.corpus_scale:g})",
            components=components,
            inputs=(),
            output=self.config.workdir / "data",
            spec={"corpus": ref.corpus},
        )
        return (self._add(step).id,)

    def _manifest(self, ref: DataRef | Manifest) -> Manifest | None:
        if isinstance(ref, Manifest):
            return ref
        self._prepare_ids(ref)
        corpus = get_corpus(ref.corpus)
        if corpus.synthesised and not corpus.is_prepared(self.config.context(self.env.device)):
            return None
        return resolve_data(ref, self.config.context(self.env.device))

    def _manifest_key(self, ref: DataRef | Manifest) -> str | None:
        manifest = self._manifest(ref)
        if manifest is None:
            return None
        memo = manifest.fingerprint()
        if memo not in self._manifest_keys:
            self._manifest_keys[memo] = manifest_key(manifest, self.env.audio_ids)
        return self._manifest_keys[memo]

    # --- extraction and jobs ------------------------------------------------------------

    def _extract(self, tok: _Tok, ref: DataRef | Manifest) -> tuple[str, dict[str, Any]] | None:
        manifest = self._manifest(ref)
        if manifest is None:
            return None
        mkey = self._manifest_key(manifest)
        name = ref.name if isinstance(ref, DataRef) else str(manifest.source or "manifest")
        components = {"encoder": tok.encoder_key, "manifest": mkey}
        out = self.env.token_cache.entry_dir(tok.encoder_key, mkey)
        data = ref.__dict__ if isinstance(ref, DataRef) else {"manifest": str(manifest.source)}
        inputs = tuple(i for i in (tok.fit_id, tok.gate_id) if i)
        if isinstance(ref, DataRef):
            inputs = (*self._prepare_ids(ref), *inputs)
        step = Step(
            id=f"extract:{tok.encoder_key[:16]}:{mkey[:16]}",
            kind="extract",
            label=f"extract {tok.name} {name}",
            components=components,
            inputs=inputs,
            output=out,
            spec={
                "tokenizer": tok.encoder_spec,
                "fit_dir": tok.fit_dir,
                "gate": str(self.graph.steps[tok.gate_id].output),
                "data": data,
                "encoder_key": tok.encoder_key,
                "manifest_key": mkey,
                "shard_utterances": self.config.shard_utterances,
            },
        )
        step = self._add(step)
        return step.id, {"encoder_key": tok.encoder_key, "manifest_key": mkey, "data": data}

    def _job(self, tok: _Tok, task_entry: Entry, task_spec, task, splits, seed: int) -> None:
        config = self.config
        task_name = config.variant_name(task_entry.name, config.task_params)
        path = record_path(config.results_dir, config.preset, tok.name, task_name, seed)
        inputs: list[str] = []
        caches: dict[str, Any] = {}
        pending = tok.pending
        if tok.error is None and not pending:
            for split, ref in splits.items():
                extracted = self._extract(tok, ref)
                if extracted is None:
                    pending = f"needs corpus {getattr(ref, 'corpus', '?')}"
                    break
                inputs.append(extracted[0])
                caches[split] = extracted[1]
        if tok.gate_id:
            inputs.append(tok.gate_id)
        if pending:
            for ref in splits.values():
                if isinstance(ref, DataRef):
                    inputs.extend(self._prepare_ids(ref))
        components: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "preset": config.preset,
            "tokenizer": tok.key,
            "kept_codebooks": tok.kept,
            "task": {
                "card": {"class": task_entry.card.target, "params": task_spec["params"]},
                "code": identity(task_entry, task_spec),
                "version": getattr(task, "VERSION", 1),
            },
            "manifests": {s: c["manifest_key"] for s, c in sorted(caches.items())},
            "seed": seed,
            "libraries": library_versions(),
        }
        world = world_size()
        if world > 1 and not is_generative(task):  # torchrun: DDP trains a different head
            components["world_size"] = world
        step = Step(
            id=f"job:{tok.name}/{task_name}/{seed}",
            kind="job",
            label=f"job {tok.name} / {task_name} / seed {seed}",
            components=components,
            inputs=tuple(dict.fromkeys(inputs)),
            output=path,
            spec={
                "tokenizer": tok.spec,
                "tokenizer_name": tok.name,
                "tokenizer_source": tok.entry.source.to_dict(),
                "tokenizer_card_sha256": tok.entry.card.sha256,
                "description": tok.entry.description,
                "display_name": tok.entry.card.display_name,
                "fit_dir": tok.fit_dir,
                "gate": str(self.graph.steps[tok.gate_id].output) if tok.gate_id else None,
                "kept_codebooks": tok.kept,
                "task": task_spec,
                "task_name": task_name,
                "task_source": task_entry.source.to_dict(),
                "task_card_sha256": task_entry.card.sha256,
                "caches": caches,
                "seed": seed,
                "build_error": _error_text(tok.error),
                "overrides": {"tokenizer": dict(tok.overrides), "task": dict(config.task_params)},
            },
            goal=True,
            cost=getattr(task, "SCHEDULE_COST", None),
        )
        if is_generative(task) and tok.error is None and not pending:
            step.components, step.spec, job_inputs, pending = self._generative_steps(
                tok, task, components, step.spec, list(step.inputs), splits
            )
            step.inputs = tuple(job_inputs)
        if pending:
            step.state, step.reason = "pending", pending
        self._add(step)

    def _add(self, step: Step) -> Step:
        added = self.graph.add(step)
        if added is step and step.state != "pending":
            status.update_state(step, self.env, self.config.overwrite)
        return added


def _error_text(exc: BaseException | None) -> dict[str, Any] | None:
    if exc is None:
        return None
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "unavailable": isinstance(exc, WeightsUnavailableError),
    }
