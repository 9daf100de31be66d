"""The step library: one function per step kind, each a function of its step's spec.

A step function reads only what its :class:`~benchmark.pipeline.graph.Step` declares (the
spec's references, paths and keys; the outputs of its input steps on disk), rebuilds what
it needs through :class:`~benchmark.pipeline.env.StepEnv`, and writes only its own output,
atomically. Executors call :func:`run_step` with the step's output lock held.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.api import DataRef, FitData, TaskRun, Tokenizer
from benchmark.cache import TokenSplit
from benchmark.conformance import GATE_CHECKS, SUITE_VERSION, check_tokenizer
from benchmark.data.batching import iter_audio_batches
from benchmark.data.corpora import get_corpus, resolve_data
from benchmark.data.manifest import Manifest, read_manifest
from benchmark.errors import (
    BenchmarkError,
    ContractError,
    DecoderUnavailableError,
    WeightsUnavailableError,
)
from benchmark.lockfile import lock_sha256
from benchmark.pipeline import distributed
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import Step
from benchmark.pipeline.records import MetricRecord, ResultRecord
from benchmark.pipeline.status import MARKER, marker_payload, read_marker, staged_record_path
from benchmark.pipeline.store import (
    StoreWriteError,
    atomic_folder,
    atomic_write_json,
    output_lock,
)
from benchmark.profiling import Profile
from benchmark.provenance import code_version, device_description, package_versions

log = logging.getLogger(__name__)


class ConformanceGateError(ContractError):
    """A tokenizer failed a fast conformance check before its first extraction."""


class UpstreamError(BenchmarkError):
    """A step this one needs failed; carries that step's error."""


class ResultsWriteError(StoreWriteError):
    """A finished job's record could not be written to the results folder (it is kept staged
    in the workdir, and the next run publishes it without retraining)."""


def publish(record: ResultRecord, step: Step, staged: Path) -> None:
    """Write a finished job's record into the results folder.

    Raises:
        ResultsWriteError: the write failed; names the path, the cause and the staged copy.
    """
    try:
        record.to_disk(step.output)
    except StoreWriteError as exc:
        raise ResultsWriteError(
            f"results not written: {exc}; the finished record is kept at {staged}, rerun "
            "with a writable results folder to publish it without retraining"
        ) from exc


def _manifest(data: dict[str, Any], env: StepEnv) -> Manifest:
    if "manifest" in data:
        return read_manifest(Path(data["manifest"]))
    return resolve_data(DataRef(**data), env.config.context(env.device))


# ----------------------------------------------------------------------------- steps


def run_prepare(step: Step, env: StepEnv) -> None:
    """Build a synthesised corpus (the recipe writes it atomically under the workdir)."""
    corpus = get_corpus(step.spec["corpus"])
    if corpus.prepare is None:  # pragma: no cover - the planner plans none
        raise BenchmarkError(f"corpus {corpus.name!r} has nothing to prepare")
    corpus.prepare(env.config.context(env.device))


def run_pretrain(step: Step, env: StepEnv) -> None:
    """Pretrain a tokenizer's model on the data its ``pretrain_spec()`` names; the folder
    appears whole or not at all, with the summary records carry in its marker."""
    tokenizer = env.tokenizer(step.spec["tokenizer"])
    data = {name: _manifest(ref, env) for name, ref in step.spec["data"].items()}
    log.info("pretraining %s (%s)", tokenizer.info.name, step.spec["label"])
    with atomic_folder(step.output) as tmp:
        summary = tokenizer.pretrain(data, tmp)
        summary = dict(summary) if isinstance(summary, dict) else None
        atomic_write_json(tmp / MARKER, marker_payload(step, summary=summary))


def run_fit(step: Step, env: StepEnv) -> None:
    """Fit a tokenizer (k-means) on its fit data; the folder appears whole or not at all."""
    tokenizer = env.tokenizer(step.spec["tokenizer"])
    ref = DataRef(**step.spec["data"])
    manifest = _manifest(step.spec["data"], env)
    rate = tokenizer.info.sample_rate
    max_seconds = env.config.max_batch_seconds
    data = FitData(
        name=ref.name,
        batches=lambda: (
            (wav, lengths) for _, wav, lengths in iter_audio_batches(manifest, rate, max_seconds)
        ),
        num_utterances=len(manifest),
    )
    log.info("fitting %s on %s (%d utterances)", tokenizer.info.name, ref.name, len(manifest))
    with atomic_folder(step.output) as tmp:
        summary = tokenizer.fit(data, tmp)
        # what the fit reports (per-layer K, frames, inertia...) goes into every record
        summary = summary if isinstance(summary, dict) else None
        atomic_write_json(tmp / MARKER, marker_payload(step, summary=summary))


def run_conformance(step: Step, env: StepEnv) -> None:
    """The fast conformance checks on one small batch; a failure stops the tokenizer's jobs."""
    tokenizer = env.tokenizer(step.spec["tokenizer"], step.spec["fit_dir"])
    if tokenizer.info.is_continuous:
        result = {"suite_version": SUITE_VERSION, "passed": [], "failed": [],
                  "skipped": "continuous reference (features, no tokens)"}  # fmt: skip
    else:
        checks = check_tokenizer(tokenizer, only=GATE_CHECKS)
        result = {
            "suite_version": SUITE_VERSION,
            "passed": [c.name for c in checks if c.passed and not c.skipped],
            "failed": [{"check": c.name, "detail": c.detail} for c in checks if not c.passed],
            "skipped": [c.name for c in checks if c.skipped],
        }
    atomic_write_json(step.output, marker_payload(step, result=result))
    gate_verdict(result, tokenizer.info.name, env)


def gate_verdict(result: dict[str, Any], name: str, env: StepEnv) -> None:
    """Raise :class:`ConformanceGateError` naming the first failed check, if any.

    The hint is the command that reproduces it, with the ``--plugin`` files it needs.
    """
    if result.get("failed"):
        first = result["failed"][0]
        plugins = "".join(f" --plugin {path}" for path in env.config.plugins)
        raise ConformanceGateError(
            f"tokenizer {name!r} failed the conformance check {first['check']!r}: "
            f"{first['detail']}; run `python -m benchmark check-tokenizer {name}{plugins}`"
        )


def read_gate(path: str | None) -> dict[str, Any] | None:
    """The conformance result stored by :func:`run_conformance`, or None."""
    if path is None:
        return None
    marker = read_marker(Path(path))
    return marker.get("result") if marker else None


def run_extract(step: Step, env: StepEnv) -> None:
    """Encode one manifest with one (fitted) tokenizer into the token cache, shard by shard.

    The shards (:func:`extract_shards`) are encoded one after the other here; the Ray
    executor runs them as parallel tasks and then :func:`merge_extract`, which gives the
    same cache entry.
    """
    count = len(extract_shards(step, env))
    for index in range(count):
        extract_shard(step, env, index, count)
    merge_extract(step, env, count)


def extract_shards(step: Step, env: StepEnv) -> list[tuple[int, int]]:
    """The deterministic shards of an extract step: utterance index ranges of its manifest."""
    from benchmark.cache import shard_ranges

    size = step.spec.get("shard_utterances") or env.config.shard_utterances
    return shard_ranges(len(_manifest(step.spec["data"], env)), size)


def _gated_tokenizer(step: Step, env: StepEnv) -> Tokenizer:
    spec = step.spec
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    gate = read_gate(spec["gate"])
    if gate is None:
        raise ConformanceGateError(f"no conformance result at {spec['gate']}")
    gate_verdict(gate, tokenizer.info.name, env)
    return tokenizer


def extract_shard(step: Step, env: StepEnv, index: int, count: int) -> None:
    """Encode shard ``index`` of ``count`` (a whole manifest when ``count`` is 1) into its
    own folder, atomically; a finished shard is kept."""
    spec = step.spec
    tokenizer = _gated_tokenizer(step, env)
    manifest = _manifest(spec["data"], env)
    if count == 1:
        return  # one shard: merge_extract encodes straight into the entry
    start, stop = extract_shards(step, env)[index]
    part = dataclasses.replace(manifest, utterances=manifest.utterances[start:stop])
    label = f"{step.label} [shard {index + 1}/{count}]"
    batches = _batches(tokenizer, part, label, env)
    env.token_cache.build_shard(
        tokenizer, spec["encoder_key"], spec["manifest_key"], index, count, batches
    )


def merge_extract(step: Step, env: StepEnv, count: int) -> None:
    """Merge the ``count`` shards into the cache entry (one shard: encode it in place)."""
    spec = step.spec
    tokenizer = _gated_tokenizer(step, env)
    manifest = _manifest(spec["data"], env)
    keys = spec["encoder_key"], spec["manifest_key"]
    if count == 1:
        batches = _batches(tokenizer, manifest, step.label, env)
        env.token_cache.build(tokenizer, *keys, manifest, batches)
    else:
        env.token_cache.merge_shards(tokenizer, *keys, manifest, count)


def _batches(tokenizer: Tokenizer, manifest: Manifest, label: str, env: StepEnv):
    from tqdm.auto import tqdm

    rate = tokenizer.info.sample_rate
    batches = iter_audio_batches(manifest, rate, env.config.max_batch_seconds)
    return iter(tqdm(batches, desc=label, unit="batch", disable=not env.config.progress,
                     leave=False))  # fmt: skip


def load_tokens(cache: dict[str, Any], kept: int | None, sizes, env: StepEnv) -> TokenSplit:
    """The cached tokens of one split (a view of the leading codebooks for a variant).

    Raises:
        BenchmarkError: the cache entry is missing or damaged (its extract step reruns).
    """
    manifest = _manifest(cache["data"], env)
    encoder_sizes = None
    meta = env.token_cache.read_meta(env.token_cache.entry_dir(cache["encoder_key"],
                                                                cache["manifest_key"]))  # fmt: skip
    if meta is not None:
        encoder_sizes = tuple(meta.get("codebook_sizes") or ())
    args = (cache["encoder_key"], cache["manifest_key"], manifest, encoder_sizes or tuple(sizes))
    split = env.token_cache.load(*args)
    if split is None:
        folder = env.token_cache.entry_dir(cache["encoder_key"], cache["manifest_key"])
        with output_lock(folder, f"tokens of {manifest.source}"):
            split = env.token_cache.load(*args, verify=True)  # another process may have fixed it
            if split is None:
                # its extract step only checks the size, so a damaged entry would stay
                # forever: remove it, and the next run re-encodes it
                shutil.rmtree(folder, ignore_errors=True)
                raise BenchmarkError(
                    f"the token cache {folder} of {manifest.source} is missing or damaged (see "
                    "the warning above); it is removed, rerun to re-encode it"
                )
    if kept is None:
        return split
    return dataclasses.replace(split, data=split.data[:, :kept], codebook_sizes=tuple(sizes))


def run_job(step: Step, env: StepEnv) -> ResultRecord:
    """Train and evaluate one (tokenizer, task, seed); write its record (a generative
    task's job scores the audio of its generate step instead).

    The record is first written to the job's folder in the workdir, then to the results
    folder: if the second write fails (read-only, full), the next run only copies it.
    """
    spec = step.spec
    staged = staged_record_path(step, env)
    finished = ResultRecord.load_or_none(staged)
    if finished is not None and finished.fingerprint == step.key:
        log.info("%s: finished earlier; writing its record", step.label)
        publish(finished, step, staged)
        return finished
    error = spec.get("build_error")
    if error is not None:
        cls = WeightsUnavailableError if error["unavailable"] else BenchmarkError
        cls = DecoderUnavailableError if error["type"] == "DecoderUnavailable" else cls
        raise cls(error["message"])
    if spec.get("generative"):
        from benchmark.pipeline.generative_steps import run_generative_job

        return run_generative_job(step, env)
    profile = Profile()
    started = datetime.now(UTC).isoformat(timespec="seconds")
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    task = env.task(spec["task"])
    info = tokenizer.info
    with profile.step("load-tokens", env.device):
        splits = {
            name: load_tokens(cache, spec["kept_codebooks"], info.codebook_sizes, env)
            for name, cache in spec["caches"].items()
        }
    out_dir = staged.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    run = TaskRun(
        tokenizer_info=info,
        splits=splits,
        context=env.config.context(env.device, None, spec["seed"]),
        seed=spec["seed"],
        device=env.device,
        out_dir=out_dir,
        progress=env.config.progress,
        codebook_vectors=tokenizer.embeddings,
    )
    with profile.step("task", env.device):
        output = task.run(run)
    main = task.info.main_metric
    if main not in output.metrics:
        raise ContractError(f"task {spec['task_name']!r} did not report its main metric {main!r}")
    record = base_record(step, env)
    record.status = "ok"
    record.tokenizer_info = {
        **info.to_dict(),
        "description": spec.get("description"),
        "display_name": spec.get("display_name"),
    }
    record.metrics = {name: MetricRecord.from_value(v) for name, v in output.metrics.items()}
    record.per_utterance = {
        name: v.per_utterance for name, v in output.metrics.items() if v.per_utterance
    }
    record.baselines = {
        name: {m: MetricRecord.from_value(v) for m, v in values.items()}
        for name, values in output.baselines.items()
    }
    record.main_metric = main
    # the leaderboard's discriminative / generative grouping reads this task attribute
    record.config["task"]["needs_decode"] = bool(task.info.needs_decode)
    record.provenance["tokenizer_state"] = dict(tokenizer.state_fingerprint())
    record.extras = {
        **output.extras,
        "beats_baselines": beats(record.metrics, record.baselines, main),
    }
    if spec["fit_dir"]:
        marker = read_marker(Path(spec["fit_dir"]) / MARKER) or {}
        record.extras["fit"] = marker.get("summary")
    if spec["tokenizer"].get("pretrained"):
        marker = read_marker(Path(spec["tokenizer"]["pretrained"]) / MARKER) or {}
        record.extras["pretrain"] = marker.get("summary")
    record.timings = {"started": started, **profile.to_dict()}
    if distributed.is_writer():  # torchrun: rank 0 writes, the other ranks only train
        record.to_disk(staged)
        publish(record, step, staged)
    return record


def beats(
    metrics: dict[str, MetricRecord], baselines: dict[str, dict[str, MetricRecord]], main: str
) -> dict[str, bool]:
    """Whether the main metric beats each trivial baseline (its CI clear of the baseline)."""
    value = metrics.get(main)
    verdicts: dict[str, bool] = {}
    if value is None or value.value is None:
        return verdicts
    for name, values in baselines.items():
        baseline = values.get(main)
        if baseline is None or baseline.value is None:
            continue
        higher = value.direction == "higher"
        bound = (value.ci or {}).get("low" if higher else "high")
        bound = value.value if bound is None else bound
        verdicts[name] = bound > baseline.value if higher else bound < baseline.value
    return verdicts


def base_record(step: Step, env: StepEnv) -> ResultRecord:
    """The envelope of a job's record (provenance, config, conformance), status failed."""
    spec = step.spec
    config = env.config
    gate = read_gate(spec.get("gate"))
    return ResultRecord(
        status="failed",
        tokenizer=spec["tokenizer_name"],
        task=spec["task_name"],
        seed=spec["seed"],
        preset=config.preset,
        fingerprint=step.key,
        key_components=step.components,
        conformance=gate,
        overrides=spec.get("overrides")
        or {"tokenizer": dict(config.tokenizer_params), "task": dict(config.task_params)},
        config={
            "tokenizer": {
                "ref": spec["tokenizer"]["ref"],
                "params": spec["tokenizer"]["params"],
                "weights": spec["tokenizer"]["weights"],
            },
            "task": {"ref": spec["task"]["ref"], "params": spec["task"]["params"]},
            "device": env.device,
            "threads": config.threads,
            "corpus_scale": config.corpus_scale,
        },
        provenance={
            "code": code_version(),
            "packages": package_versions(),
            "lock_sha256": lock_sha256(),
            "device": device_description(env.device),
            "tokenizer_source": spec["tokenizer_source"],
            "task_source": spec["task_source"],
            "weights": spec["tokenizer"]["weights"],
            "cards": {"tokenizer": spec["tokenizer_card_sha256"], "task": spec["task_card_sha256"]},
            "manifests": {s: c["manifest_key"] for s, c in sorted(spec["caches"].items())},
        },
    )


def failure_record(step: Step, env: StepEnv, exc: BaseException) -> ResultRecord:
    """The ``failed`` (or ``unavailable``) record of a job that raised or could not start."""
    if step.kind in ("profile", "token-stats"):
        spec = step.spec
        record = ResultRecord("failed", spec["tokenizer_name"], spec["task_name"], 0,
                              env.config.preset, step.key, kind=step.kind)  # fmt: skip
    else:
        record = base_record(step, env)
    cause = exc.__cause__ if isinstance(exc, UpstreamError) and exc.__cause__ else exc
    record.status = "unavailable" if isinstance(cause, WeightsUnavailableError) else "failed"
    record.error = {"type": type(cause).__name__, "message": str(exc)}
    if record.status == "failed":  # unavailable is an expected state: its one line says why
        record.error["traceback"] = "".join(traceback.format_exception(cause))
    return record


def run_profile(step: Step, env: StepEnv) -> ResultRecord:
    """Encode/decode time and memory of a (fitted) tokenizer, as a ``profile`` record."""
    from benchmark.profiles import ProfileSettings, profile_step

    spec = step.spec
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    info = {**tokenizer.info.to_dict(), "description": spec["description"],
            "display_name": spec["display_name"]}  # fmt: skip
    provenance = _tokenizer_provenance(spec)
    _, record, _ = profile_step(
        tokenizer, spec["tokenizer_name"], env.config.preset, env.device,
        env.config.results_dir, spec["tokenizer_key"], ProfileSettings(**spec["settings"]),
        provenance, info, overwrite=True,
    )  # fmt: skip
    record.key_components = step.components  # so that a later plan can say what changed
    record.to_disk(step.output)
    return record


def _tokenizer_provenance(spec: dict[str, Any]) -> dict[str, Any]:
    """Provenance of a record about a tokenizer alone (a profile, token statistics)."""
    return {
        "code": code_version(),
        "packages": package_versions(),
        "lock_sha256": lock_sha256(),
        "tokenizer_source": spec["tokenizer_source"],
        "weights": spec["tokenizer"]["weights"],
    }


def run_token_stats(step: Step, env: StepEnv) -> ResultRecord:
    """Codebook usage, entropy and stability from the cached test tokens, as a record.

    Reads the token caches of the extract steps it depends on; only the stability measure
    encodes (a bounded sample, see :mod:`benchmark.token_stats`).
    """
    from benchmark.token_stats import StatsSettings, token_stats_record

    spec = step.spec
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    sizes = tokenizer.info.codebook_sizes
    splits = {
        name: load_tokens(cache, spec["kept_codebooks"], sizes, env)
        for name, cache in spec["caches"].items()
    }
    provenance = {**_tokenizer_provenance(spec), "device": device_description(env.device)}
    record = token_stats_record(
        tokenizer, spec["tokenizer_name"], env.config.preset, splits,
        StatsSettings(**spec["settings"]), step.key, provenance,
    )  # fmt: skip
    record.tokenizer_info = {**(record.tokenizer_info or {}), "description": spec["description"],
                             "display_name": spec["display_name"]}  # fmt: skip
    record.conformance = read_gate(spec.get("gate"))
    record.key_components = step.components
    record.to_disk(step.output)
    return record


def _generative(name: str):
    def run(step: Step, env: StepEnv) -> Any:
        import benchmark.pipeline.generative_steps as generative_steps

        return getattr(generative_steps, name)(step, env)

    return run


STEP_FUNCTIONS = {
    "prepare": run_prepare,
    "pretrain": run_pretrain,
    "fit": run_fit,
    "conformance": run_conformance,
    "extract": run_extract,
    "vocoder": _generative("run_vocoder"),
    "vocoder-eval": _generative("run_vocoder_eval"),
    "judge": _generative("run_judge"),
    "generate": _generative("run_generate"),
    "reference-scores": _generative("run_reference_scores"),
    "job": run_job,
    "profile": run_profile,
    "token-stats": run_token_stats,
}


def run_step(step: Step, env: StepEnv) -> Any:
    """Run a step's function (the caller holds the step's output lock)."""
    return STEP_FUNCTIONS[step.kind](step, env)
