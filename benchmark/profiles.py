"""Encode/decode time and memory profiles of a tokenizer, stored as ``profile`` records.

What is measured (DASB's Figure 2, computed rather than typed): encode and decode of one
synthetic utterance of ``seconds`` (16 s by default) and of a batch of ``batch`` (16) such
utterances, each call run ``warmup`` times untimed and ``runs`` times timed
(:func:`benchmark.profiling.measure_call`): the median wall time and its spread (min, max,
every run), CUDA synchronised before and after; the real-time factor (processing seconds per
second of audio: ``median / (items * seconds)``); the memory peak of that call alone (the CUDA
allocator's peak, reset before each run, above what was allocated before it on GPU; the
peak-RSS increase on CPU); the tokenizer's parameter count; its bitrate; the device named.

Every metric's direction is ``lower``. A tokenizer that cannot decode has its decode metrics
``unavailable`` with that reason, never a number. The profile record lives at
``<results>/<preset>/<tokenizer>/profile/seed0.json`` (task :data:`PROFILE_TASK`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from benchmark.pipeline.keys import key_of
from benchmark.pipeline.records import MetricRecord, ResultRecord, record_path
from benchmark.profiling import CallMeasurement, measure_call

if TYPE_CHECKING:  # pragma: no cover
    from benchmark.api import Tokenizer

log = logging.getLogger(__name__)

PROFILE_TASK = "profile"
#: Bumped when what is measured or how changes (part of the profile step's key).
PROFILE_VERSION = 1
MAIN_METRIC = "encode_rtf"

#: Metric name -> (what it measures, unit). Every profile metric's direction is ``lower``.
PROFILE_METRICS: dict[str, tuple[str, str]] = {
    "encode_seconds": ("median wall time to encode one utterance", "s"),
    "encode_rtf": ("encode real-time factor: encode seconds per second of audio", "x"),
    "encode_peak_mib": ("memory peak of encoding one utterance, above the resident model", "MiB"),
    "encode_batch_seconds": ("median wall time to encode the batch", "s"),
    "encode_batch_rtf": ("batch encode seconds per second of audio in the batch", "x"),
    "encode_batch_peak_mib": ("memory peak of encoding the batch", "MiB"),
    "decode_seconds": ("median wall time to decode one utterance's tokens", "s"),
    "decode_rtf": ("decode real-time factor: decode seconds per second of audio", "x"),
    "decode_peak_mib": ("memory peak of decoding one utterance", "MiB"),
    "decode_batch_seconds": ("median wall time to decode the batch", "s"),
    "decode_batch_rtf": ("batch decode seconds per second of audio in the batch", "x"),
    "decode_batch_peak_mib": ("memory peak of decoding the batch", "MiB"),
    "parameters": ("module parameters plus float tensors held (centroids, filterbanks)", "count"),
    "bitrate_bps": ("frame_rate * sum_k log2(C_k), from the tokenizer's metadata", "bit/s"),
}


@dataclass(frozen=True)
class ProfileSettings:
    """How a profile is measured (all of it is part of the profile step's key).

    Attributes:
        seconds: length of the synthetic utterance, in seconds.
        batch: utterances in the batched measurement.
        runs: timed runs per call (the median is reported).
        warmup: untimed runs before them.
        seed: seed of the synthetic audio.
        threads: CPU threads torch uses (recorded; set by the caller).
    """

    seconds: float = 16.0
    batch: int = 16
    runs: int = 5
    warmup: int = 1
    seed: int = 0
    threads: int | None = None

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.batch < 1 or self.runs < 1 or self.warmup < 0:
            raise ValueError(
                f"ProfileSettings: seconds > 0, batch >= 1, runs >= 1 and warmup >= 0 needed, "
                f"got {self.seconds}, {self.batch}, {self.runs}, {self.warmup}"
            )


def preset_profile_settings(preset: str, threads: int | None) -> ProfileSettings:
    """The profile ``--task all`` measures in a preset: ``full`` the defaults (16 x 16 s
    batched, 5 timed runs); ``mini`` a batch of 4 and 3 timed runs (the tiny models on one
    CPU thread: the default settings cost 100 s of a 20-minute budget, measured)."""
    if preset == "mini":
        return ProfileSettings(batch=4, runs=3, threads=threads)
    return ProfileSettings(threads=threads)


@dataclass
class ProfileOutcome:
    """Metrics (name -> :class:`MetricRecord`) and extras (spread of runs, device, counts)."""

    metrics: dict[str, MetricRecord]
    extras: dict[str, Any]


def count_parameters(tokenizer: Any, max_depth: int = 4) -> dict[str, int]:
    """Parameters of every ``torch.nn.Module`` the tokenizer holds, and its other tensors.

    Walks the tokenizer's attributes (and those of the objects, lists and dicts it holds, to
    ``max_depth``), counting each parameter and tensor once. ``modules`` counts module
    parameters (not buffers such as filterbanks); ``tensors`` counts floating-point tensors
    held outside modules (k-means centroids, codebooks).

    Returns:
        ``{"modules": int, "tensors": int, "total": int}``.
    """
    import torch

    seen: set[int] = set()
    counted: set[int] = set()
    modules = tensors = 0
    stack: list[tuple[Any, int]] = [(tokenizer, 0)]
    while stack:
        item, depth = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, torch.nn.Module):
            for parameter in item.parameters():
                if id(parameter) not in counted:
                    counted.add(id(parameter))
                    modules += parameter.numel()
            continue
        if isinstance(item, torch.Tensor):
            if item.is_floating_point() and id(item) not in counted:
                counted.add(id(item))
                tensors += item.numel()
            continue
        if depth >= max_depth or isinstance(item, str | bytes | int | float | type):
            continue
        if isinstance(item, Mapping):
            children = list(item.values())
        elif isinstance(item, list | tuple | set):
            children = list(item)
        elif hasattr(item, "__dict__"):
            children = list(vars(item).values())
        else:
            continue
        stack.extend((child, depth + 1) for child in children)
    return {"modules": modules, "tensors": tensors, "total": modules + tensors}


def device_identity(device: str) -> dict[str, Any]:
    """What the profile ran on: the CUDA device name, or the CPU model and threads."""
    import torch

    identity: dict[str, Any] = {
        "device": device,
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    if device.startswith("cuda"):
        identity["gpu"] = torch.cuda.get_device_name(torch.device(device))
        identity["cuda"] = torch.version.cuda
    return identity


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _code_hash() -> str:
    """sha256 of this module's and :mod:`benchmark.profiling`'s source."""
    from benchmark import profiling

    digest = hashlib.sha256()
    for path in (Path(__file__), Path(profiling.__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def profile_key_components(
    tokenizer_fp: str, device: str, settings: ProfileSettings
) -> dict[str, Any]:
    """The inputs of a profile step's key: every one changes the measured numbers.

    Args:
        tokenizer_fp: the fingerprint of the (fitted) tokenizer's state (card, fit, weights).
        device: the device string the profile runs on.
        settings: how it is measured.
    """
    return {
        "kind": "profile",
        "version": PROFILE_VERSION,
        "tokenizer": tokenizer_fp,
        "settings": asdict(settings),
        "device": device_identity(device),
        "code": _code_hash(),
    }


def _metric(
    value: float | None, runs: int | None, judge: dict[str, Any], reason: str | None
) -> MetricRecord:
    if value is None:
        return MetricRecord(None, "lower", judge=judge, status="unavailable", reason=reason)
    return MetricRecord(float(value), "lower", n=runs, judge=judge, split="synthetic")


def _measured(
    prefix: str,
    measurement: CallMeasurement,
    audio_seconds: float,
    judge: dict[str, Any],
    metrics: dict[str, MetricRecord],
    spread: dict[str, Any],
) -> None:
    runs = len(measurement.wall_s)
    median = measurement.median_s
    metrics[f"{prefix}_seconds"] = _metric(median, runs, judge, None)
    metrics[f"{prefix}_rtf"] = _metric(median / audio_seconds, runs, judge, None)
    metrics[f"{prefix}_peak_mib"] = _metric(
        measurement.max_peak_mib,
        runs,
        {**judge, "peak": measurement.peak_kind},
        measurement.peak_reason,
    )
    spread[f"{prefix}_seconds"] = {
        "min": min(measurement.wall_s),
        "max": max(measurement.wall_s),
        "runs": [round(w, 6) for w in measurement.wall_s],
        "cpu_seconds": [round(c, 6) for c in measurement.cpu_s],
    }
    if measurement.peak_mib is not None:
        spread[f"{prefix}_peak_mib"] = {"runs": [round(p, 2) for p in measurement.peak_mib]}


def profile_tokenizer(
    tokenizer: Tokenizer,
    device: str,
    settings: ProfileSettings = ProfileSettings(),
    progress: Callable[[str], None] | None = None,
) -> ProfileOutcome:
    """Measure encode and decode of one utterance and of a batch (see the module docstring).

    Args:
        tokenizer: a built (and, when it ``needs_fit``, fitted) tokenizer on ``device``.
        device: ``cpu`` or ``cuda[:N]``, where its work runs (for synchronisation and peaks).
        settings: how long, how many, how often.
        progress: called with a short label before each measurement (logging by default).

    Returns:
        Metrics named as in :data:`PROFILE_METRICS`, and extras: ``spread`` (min, max and
        every run of each timed call), ``device``, ``parameters`` (modules / tensors),
        ``settings``.
    """
    import torch

    from benchmark.conformance import synthetic_batch

    say = progress or (lambda label: log.info("profile %s: %s", tokenizer.info.name, label))
    info = tokenizer.info
    one_wav, one_len = synthetic_batch(info.sample_rate, settings.seed, (settings.seconds,))
    many_wav, many_len = synthetic_batch(
        info.sample_rate, settings.seed + 1, (settings.seconds,) * settings.batch
    )
    judge = {
        "name": "wall clock (time.perf_counter)",
        "statistic": f"median of {settings.runs} runs after {settings.warmup} warm-up",
        "device": device,
    }
    metrics: dict[str, MetricRecord] = {}
    spread: dict[str, Any] = {}
    inputs = {"encode": (one_wav, one_len, 1), "encode_batch": (many_wav, many_len, settings.batch)}
    tokens: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    with torch.inference_mode():
        for prefix, (wav, lengths, items) in inputs.items():
            say(f"{prefix} ({items} x {settings.seconds:g} s)")
            tokens[prefix] = tokenizer.encode(wav, lengths)

            def run(wav: torch.Tensor = wav, lengths: torch.Tensor = lengths) -> None:
                tokenizer.encode(wav, lengths)

            measured = measure_call(run, device, settings.runs, settings.warmup)
            _measured(prefix, measured, items * settings.seconds, judge, metrics, spread)
        for prefix, source in (("decode", "encode"), ("decode_batch", "encode_batch")):
            items = 1 if prefix == "decode" else settings.batch
            if not info.can_decode:
                reason = f"tokenizer {info.name!r} cannot decode"
                for suffix in ("seconds", "rtf", "peak_mib"):
                    metrics[f"{prefix}_{suffix}"] = _metric(None, None, judge, reason)
                continue
            say(f"{prefix} ({items} x {settings.seconds:g} s)")
            codes, code_lengths = tokens[source]

            def run_decode(codes: torch.Tensor = codes, code_lengths: torch.Tensor = code_lengths):
                tokenizer.decode(codes, code_lengths)

            measured = measure_call(run_decode, device, settings.runs, settings.warmup)
            _measured(prefix, measured, items * settings.seconds, judge, metrics, spread)
    counts = count_parameters(tokenizer)
    metrics["parameters"] = MetricRecord(
        float(counts["total"]), "lower", judge={"name": "count_parameters"}, split="model"
    )
    bitrate = info.bitrate
    metrics["bitrate_bps"] = (
        MetricRecord(bitrate, "lower", judge={"name": "TokenizerInfo.bitrate"}, split="model")
        if bitrate is not None
        else MetricRecord(
            None, "lower", status="unavailable", reason="continuous reference: no bitrate"
        )
    )
    extras = {
        "spread": spread,
        "device": device_identity(device),
        "parameters": counts,
        "settings": asdict(settings),
        "audio_seconds": {"one": settings.seconds, "batch": settings.seconds * settings.batch},
    }
    return ProfileOutcome(metrics, extras)


def profile_record(
    tokenizer: Tokenizer,
    tokenizer_name: str,
    preset: str,
    device: str,
    settings: ProfileSettings,
    fingerprint: str | None = None,
    provenance: Mapping[str, Any] | None = None,
    tokenizer_info: Mapping[str, Any] | None = None,
) -> ResultRecord:
    """Profile ``tokenizer`` and wrap the result as a ``profile`` :class:`ResultRecord`.

    Args:
        tokenizer: built and fitted, on ``device``.
        tokenizer_name: the record's tokenizer name (card name, or variant name).
        preset: ``mini`` or ``full``.
        device: where it ran.
        settings: how it was measured.
        fingerprint: the profile step's key (from :func:`profile_key_components`), or None.
        provenance: code version, packages, weights, sources... (the device is added).
        tokenizer_info: the record's tokenizer metadata (default: ``tokenizer.info.to_dict()``).
    """
    started = datetime.now(UTC)
    outcome = profile_tokenizer(tokenizer, device, settings)
    provenance = {**(provenance or {}), "device": outcome.extras["device"]}
    provenance.setdefault("date", started.isoformat(timespec="seconds"))
    return ResultRecord(
        status="ok",
        tokenizer=tokenizer_name,
        task=PROFILE_TASK,
        seed=0,
        preset=preset,
        fingerprint=fingerprint,
        kind="profile",
        metrics=outcome.metrics,
        main_metric=MAIN_METRIC,
        tokenizer_info=dict(tokenizer_info or tokenizer.info.to_dict()),
        config={"settings": asdict(settings), "device": device},
        provenance=provenance,
        timings={"started": started.isoformat(timespec="seconds")},
        extras=outcome.extras,
    )


def profile_key(tokenizer_fp: str, device: str, settings: ProfileSettings) -> str:
    """The profile step's key: sha256 of :func:`profile_key_components` (canonical JSON)."""
    return key_of(profile_key_components(tokenizer_fp, device, settings))


def profile_step(
    tokenizer: Tokenizer,
    tokenizer_name: str,
    preset: str,
    device: str,
    results_dir: Path,
    tokenizer_fp: str,
    settings: ProfileSettings = ProfileSettings(),
    provenance: Mapping[str, Any] | None = None,
    tokenizer_info: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[Path, ResultRecord, bool]:
    """The profile step of the graph: measure unless an ok record with the same key exists.

    Args:
        tokenizer: built and fitted, on ``device`` (the step never fits).
        tokenizer_name: the record's tokenizer name.
        preset: ``mini`` or ``full``.
        device: where it runs.
        results_dir: the results root; the record goes to
            ``<results>/<preset>/<tokenizer>/profile/seed0.json``.
        tokenizer_fp: the fingerprint of the tokenizer's tokens (card, fit, weights, state).
        settings: how it is measured.
        provenance: code version, packages, weights, sources (the device is added).
        tokenizer_info: the record's tokenizer metadata (with the card's description).
        overwrite: measure again even when up to date.

    Returns:
        ``(record path, record, skipped)``.
    """
    key = profile_key(tokenizer_fp, device, settings)
    path = record_path(results_dir, preset, tokenizer_name, PROFILE_TASK, 0)
    existing = ResultRecord.load_or_none(path)
    up_to_date = existing is not None and existing.status == "ok" and existing.fingerprint == key
    if up_to_date and not overwrite:
        return path, existing, True
    record = profile_record(
        tokenizer, tokenizer_name, preset, device, settings, key, provenance, tokenizer_info
    )
    record.to_disk(path)
    return path, record, False
