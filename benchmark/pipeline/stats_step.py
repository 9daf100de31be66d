"""The ``token-stats`` step as the planner adds it (``run --task all``), one per tokenizer.

Its inputs are the extract steps of the tasks' test splits (a split named ``test`` or
``test:<name>``; a manifest shared by two tasks counts once) and the conformance gate: the
step reads the cached tokens those extractions wrote and encodes nothing but the bounded
stability sample of :mod:`benchmark.token_stats`. Its key covers the tokenizer key, the
manifests, the settings, the statistics code, the preset and the kept codebooks of a
variant. It writes ``<results>/<preset>/<tokenizer>/token-stats/seed0.json``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from benchmark.pipeline.graph import Step
from benchmark.pipeline.records import record_path
from benchmark.token_stats import STATS_TASK, StatsSettings, stats_key_components

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.pipeline.plan import Planner, _Tok


def is_test_split(name: str) -> bool:
    """Whether a task's split name is a test split (``test``, ``test:test-clean``...)."""
    return name == "test" or name.startswith("test:")


def token_stats_step(
    planner: Planner, tok: _Tok, tasks: list, settings: StatsSettings | None = None
) -> Step | None:
    """The token-stats step of one tokenizer, or None when there is nothing to measure.

    None for a tokenizer that could not be built or waits on a corpus (the plan made after
    the preparation has the step), for a continuous reference (features, no ids), and when
    no task has a test split.

    Args:
        planner: the planner building the graph (its extract steps are reused, not copied).
        tok: what the planner learnt about the tokenizer.
        tasks: the planner's ``(entry, spec, task, splits)`` of every task of the command.
        settings: how stability is measured (the defaults otherwise).
    """
    if tok.error is not None or tok.pending or tok.key is None or tok.gate_id is None:
        return None
    if planner.env.tokenizer(tok.spec).info.is_continuous:
        return None
    caches: dict[str, dict[str, Any]] = {}
    inputs: list[str] = []
    for task_entry, _spec, _task, splits in tasks:
        for split, ref in sorted(splits.items()):
            if not is_test_split(split):
                continue
            extracted = planner._extract(tok, ref)
            if extracted is None:
                return None
            step_id, cache = extracted
            if step_id not in inputs:
                inputs.append(step_id)
                caches[f"{task_entry.name}/{split}"] = cache
    if not caches:
        return None
    settings = settings or StatsSettings()
    manifests = {name: cache["manifest_key"] for name, cache in caches.items()}
    config = planner.config
    components = {
        **stats_key_components(tok.key, manifests, settings),
        "preset": config.preset,
        "kept_codebooks": tok.kept,
    }
    return Step(
        id=f"token-stats:{tok.name}",
        kind="token-stats",
        label=f"token statistics {tok.name}",
        components=components,
        inputs=(*inputs, tok.gate_id),
        output=record_path(config.results_dir, config.preset, tok.name, STATS_TASK, 0),
        spec={
            "tokenizer": tok.spec,
            "tokenizer_name": tok.name,
            "task_name": STATS_TASK,
            "seed": 0,
            "fit_dir": tok.fit_dir,
            "gate": str(planner.graph.steps[tok.gate_id].output),
            "kept_codebooks": tok.kept,
            "caches": caches,
            "settings": settings.__dict__,
            "description": tok.entry.description,
            "display_name": tok.entry.card.display_name,
            "tokenizer_source": tok.entry.source.to_dict(),
        },
        goal=True,
    )
