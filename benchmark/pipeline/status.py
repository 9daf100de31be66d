"""Whether a planned step is done, and if not, why: read from the step's own output.

Each kind of step keeps its key (and the components it hashes) with its output: a fit folder
and a conformance result hold ``STEP.json`` / the key in their JSON, a token cache entry its
keys in ``meta.json``, a record its ``fingerprint`` and ``key_components``. A step is done
when its output holds its key; otherwise the reason names the components that changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.pipeline.graph import RECORD_KINDS
from benchmark.pipeline.keys import changed_components, fingerprint
from benchmark.pipeline.records import ResultRecord

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.pipeline.env import StepEnv
    from benchmark.pipeline.graph import Step

MARKER = "STEP.json"
#: Error types of records that a rerun with the same key would write again (done, not retried).
SETTLED_ERRORS = frozenset({"DecoderUnavailableError"})
#: Step kinds whose output is a folder holding ``STEP.json`` (written last).
FOLDER_KINDS = frozenset(
    {"pretrain", "fit", "vocoder", "vocoder-eval", "judge", "generate", "reference-scores"}
)


def read_marker(path: Path) -> dict[str, Any] | None:
    """The ``{"key", "components", ...}`` JSON at ``path``, or None."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def marker_payload(step: Step, **extra: Any) -> dict[str, Any]:
    """What a step stores beside its output so later plans can compare."""
    return {"key": step.key, "components": step.components, "label": step.label, **extra}


def _changed(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    if old is None:
        return "no output yet"
    names = []
    for name in changed_components(old, new):
        a, b = old.get(name), new.get(name)
        if isinstance(a, dict) and isinstance(b, dict):
            inner = changed_components(a, b)
            names.extend(f"{name}.{i}" for i in inner) if inner else names.append(name)
        else:
            names.append(name)
    return "changed: " + ", ".join(names) if names else "output written by another key"


def update_state(step: Step, env: StepEnv, overwrite: bool = False) -> None:
    """Set ``step.state`` (``done`` / ``to do``) and ``step.reason`` from its output."""
    done, reason = _check(step, env, overwrite)
    step.state, step.reason = ("done", "") if done else ("to do", reason)


def is_done(step: Step, env: StepEnv) -> bool:
    """Whether the step's output holds its key (re-checked by executors under the lock)."""
    return _check(step, env, False)[0]


def _check(step: Step, env: StepEnv, overwrite: bool) -> tuple[bool, str]:
    if step.kind == "prepare":
        from benchmark.data.corpora import get_corpus

        corpus = get_corpus(step.spec["corpus"])
        context = env.config.context(env.device)
        return corpus.is_prepared(context), "corpus not built yet"
    if step.kind in FOLDER_KINDS:
        marker = read_marker(step.output / MARKER)
        if marker is not None and marker.get("key") == step.key:
            return True, ""
        return False, _changed(marker and marker.get("components"), step.components)
    if step.kind == "conformance":
        marker = read_marker(step.output)
        if marker is not None and marker.get("key") == step.key:
            return True, ""
        return False, "not checked yet"
    if step.kind == "extract":
        meta = env.token_cache.read_meta(step.output)
        spec = step.spec
        if (
            meta is not None
            and meta.get("encoder_key") == spec["encoder_key"]
            and meta.get("manifest_key") == spec["manifest_key"]
            and (step.output / "tokens.bin").is_file()
            and (step.output / "tokens.bin").stat().st_size == meta.get("tokens_bytes")
        ):
            return True, ""
        return False, "no tokens for this key yet" if meta is None else "cache entry damaged"
    if step.kind in RECORD_KINDS:
        return _job_state(step, env, overwrite and step.kind == "job")
    raise ValueError(f"unknown step kind {step.kind!r}")


def _job_state(step: Step, env: StepEnv, overwrite: bool) -> tuple[bool, str]:
    record = ResultRecord.load_or_none(step.output)
    if overwrite:
        return False, "--overwrite"
    if record is None:
        staged = staged_record_path(step, env)
        if staged.is_file():
            return False, "finished; its record is waiting to be written to the results folder"
        return False, "no record yet"
    if record.fingerprint == step.key:
        if record.status == "ok" or (record.error or {}).get("type") in SETTLED_ERRORS:
            return True, ""
        return False, f"last run {record.status}: {(record.error or {}).get('message', '')[:80]}"
    if not record.key_components:
        return False, f"record from an older harness (schema {record.schema_version} keys)"
    return False, _changed(record.key_components, step.components)


def staged_record_path(step: Step, env: StepEnv) -> Path:
    """Where a job keeps its finished record before writing it to the results folder."""
    return env.workdir / "jobs" / step.key[:16] / "record.json"


def spec_fingerprint(step: Step) -> str:
    """Fingerprint of a step's spec (for logs)."""
    return fingerprint(step.spec)[:12]
