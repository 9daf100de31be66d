"""Step functions of the generative path: train a vocoder, train a mini judge, generate, score.

- :func:`run_vocoder`: the scalable vocoder (or one on some codebooks, for the vocoder
  study) on a tokenizer's tokens of the preset's vocoder corpus
  (:func:`benchmark.vocoders.training.train_vocoder`; resumable in its folder);
- :func:`run_vocoder_eval`: the vocoder study's table of one tokenizer and seed.
- :func:`run_judge`: a harness-trained mini judge (recogniser or speaker model).
- :func:`run_generate`: the task's model trained and run; its tokens (and the rows it asks
  to decode) decoded into 16-bit WAV files, with ``items.json`` naming, per utterance, the
  generated file and its references. The folder appears whole or not at all.
- :func:`run_reference_scores`: every metric of the card on a task's reference rows (known
  before any tokenizer runs), into the score cache (``<workdir>/scores``).
- :func:`run_generative_job`: every metric of the card on the generated files and on each
  baseline row, through :func:`~benchmark.metrics.audio_base.evaluate_metric` (a metric
  that raises is ``failed``, a missing judge ``unavailable``) and the score cache (audio
  judged before, by content: the reference rows, or a resynthesis that another task's
  ceiling row decoded already); a few examples copied beside the record for listening.

Layout of a generate folder::

    items.json              [{"id", "audio", "reference_audio", "reference_text", "speaker_audio"}]
    rows.json               {row name: {utterance id: audio file}}  (baselines, ceilings)
    extras.json             what the task reported
    audio/<id>.wav          generated audio
    rows/<row>/<id>.wav     rows decoded by the same decoder
    STEP.json               key and components (written last)
"""

from __future__ import annotations

import inspect
import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from benchmark.api import GenerationOutput, MetricValue, TaskRun, UtteranceScores
from benchmark.data.audio import save_wav
from benchmark.errors import ContractError
from benchmark.metrics.audio_base import AudioItem, evaluate_metric
from benchmark.pipeline.env import StepEnv
from benchmark.pipeline.graph import Step
from benchmark.pipeline.records import MetricRecord, ResultRecord
from benchmark.pipeline.status import MARKER, marker_payload, staged_record_path
from benchmark.pipeline.store import atomic_folder, atomic_write_bytes, atomic_write_json
from benchmark.profiling import Profile

log = logging.getLogger(__name__)

#: Utterances of each task whose audio is copied beside the record (for listening).
EXAMPLES = 3


# ----------------------------------------------------------------------------- vocoder


def _vocoder_inputs(step: Step, env: StepEnv) -> tuple[Any, Any, Any, dict[str, Any]]:
    """``(tokenizer, info, preset, pairs)`` of a vocoder or vocoder-eval step: the preset
    with the step's overrides, the token/audio pairs of its cached splits."""
    from benchmark.pipeline.steps import load_tokens
    from benchmark.vocoders.presets import resolve_preset
    from benchmark.vocoders.study import vocoder_pairs

    spec = step.spec
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    info = tokenizer.info
    preset = resolve_preset(spec["preset"]).replace(**spec.get("preset_overrides", {}))
    splits = {
        name: load_tokens(cache, spec["kept_codebooks"], info.codebook_sizes, env)
        for name, cache in spec["caches"].items()
    }
    return tokenizer, info, preset, vocoder_pairs(splits, info, preset)


def _data_fingerprint(spec: dict[str, Any]) -> str:
    return json.dumps({s: c["manifest_key"] for s, c in spec["caches"].items()}, sort_keys=True)


def run_vocoder(step: Step, env: StepEnv) -> None:
    """Train a vocoder (scalable, or on some codebooks) on a tokenizer's cached tokens."""
    from benchmark.vocoders.presets import vocoder_config
    from benchmark.vocoders.training import train_vocoder

    spec = step.spec
    _, info, preset, pairs = _vocoder_inputs(step, env)
    layers = tuple(spec.get("layers") or range(info.num_codebooks))
    config = vocoder_config(
        preset, tuple(info.codebook_sizes), layers, bool(spec.get("layer_dropout", True)),
        info.sample_rate, info.frame_rate,
    )  # fmt: skip
    run = train_vocoder(
        pairs["train"], pairs["valid"], config, preset, step.output, info.name,
        spec["tokenizer_key"], spec["seed"], env.device, env.config.progress,
        data_fingerprint=_data_fingerprint(spec),
    )  # fmt: skip
    last = run.history[-1] if run.history else {}
    summary = {"steps": run.steps, "seconds": run.seconds,
               "valid_mel_distance": last.get("mel_distance")}  # fmt: skip
    atomic_write_json(step.output / MARKER, marker_payload(step, summary=summary))


def run_vocoder_eval(step: Step, env: StepEnv) -> None:
    """The vocoder study's table for one tokenizer and seed: each trained vocoder (and the
    tokenizer's own decoder, when it has one) decoding the validation split, each codebook
    alone and all together; ``table.json`` beside the marker."""
    import time

    from benchmark.vocoders.study import reference_row, study_row, study_table

    started = time.perf_counter()
    spec = step.spec
    tokenizer, info, preset, pairs = _vocoder_inputs(step, env)
    rows = []
    for vocoder in spec["vocoders"]:
        run = _finished_vocoder(Path(vocoder["dir"]))
        rows.append(study_row(vocoder["label"], vocoder["layers"], vocoder["layer_dropout"], run,
                              pairs["valid"], info.num_codebooks, spec["tokenizer_key"], preset,
                              env.device))  # fmt: skip
    if info.can_decode:
        rows.append(reference_row(tokenizer, info, pairs["valid"], preset, env.device))
    table = study_table(spec["tokenizer_name"], spec["tokenizer_key"], preset, spec["seed"],
                        pairs["valid"], info.num_codebooks, rows,
                        time.perf_counter() - started)  # fmt: skip
    with atomic_folder(step.output) as tmp:
        atomic_write_json(tmp / "table.json", table)
        atomic_write_json(tmp / MARKER, marker_payload(step))


def _finished_vocoder(folder: Path) -> Any:
    """The :class:`~benchmark.vocoders.training.VocoderRun` a vocoder step left in ``folder``."""
    from benchmark.vocoders.training import VocoderRun

    summary = json.loads((folder / MARKER).read_text()).get("summary") or {}
    history = json.loads((folder / "history.json").read_text())
    return VocoderRun(folder, folder / "vocoder.pt", history, int(summary.get("steps") or 0),
                      None, True, float(summary.get("seconds") or 0.0))  # fmt: skip


def vocoder_summary(vocoder_dir: str | None) -> dict[str, Any] | None:
    """What a record says about the vocoder that decoded its audio."""
    if vocoder_dir is None:
        return None
    marker = json.loads((Path(vocoder_dir) / MARKER).read_text())
    return {"key": marker["key"], "label": marker["label"], **(marker.get("summary") or {})}


# ----------------------------------------------------------------------------- judges


def run_judge(step: Step, env: StepEnv) -> None:
    """Train one harness judge of the mini preset (one torch thread: small models)."""
    from benchmark.metrics.judges.mini_common import mini_judge_manifests
    from benchmark.vocoders.training import cpu_threads

    spec = step.spec
    train, valid = mini_judge_manifests(Path(spec["corpus_dir"]))[spec["kind"]]
    if spec["kind"] == "asr":
        from benchmark.metrics.judges.mini_asr import train_mini_asr_judge as trainer
    else:
        from benchmark.metrics.judges.mini_speaker import train_mini_speaker_judge as trainer
    with cpu_threads(1, "cpu"):
        trainer(train, valid, step.output, spec["seed"], progress=env.config.progress)
    atomic_write_json(step.output / MARKER, marker_payload(step))


# ----------------------------------------------------------------------------- generate


class _Decoder:
    """Tokens ``[N, K]`` -> waveform ``[T]``: the tokenizer's decoder or a trained vocoder."""

    def __init__(self, tokenizer: Any, vocoder_dir: str | None, key: str, device: str) -> None:
        self.sample_rate = tokenizer.info.sample_rate
        if vocoder_dir is None:
            self.decode_fn = tokenizer.decode
            self.identity: dict[str, Any] = {"decoder": "tokenizer"}
            return
        from benchmark.vocoders.model import load_vocoder

        vocoder = load_vocoder(
            Path(vocoder_dir) / "vocoder.pt", key, tuple(tokenizer.info.codebook_sizes), device
        )
        self.decode_fn = vocoder.decode
        self.sample_rate = vocoder.config.sample_rate
        self.identity = {"decoder": "scalable vocoder", **(vocoder_summary(vocoder_dir) or {})}

    @torch.no_grad()
    def __call__(self, tokens: Any) -> np.ndarray:
        array = torch.as_tensor(np.asarray(tokens, dtype=np.int64)).unsqueeze(0)
        if array.ndim != 3 or array.shape[1] == 0:
            raise ContractError(
                f"generated tokens must be [N, K] with N > 0, got {tuple(array.shape[1:])}"
            )
        wav, lengths = self.decode_fn(array, torch.tensor([array.shape[1]]))
        return wav[0, : int(lengths[0])].detach().float().cpu().numpy()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "row"


def run_generate(step: Step, env: StepEnv) -> None:
    """Train and run a generative task, decode its tokens, write the generate folder."""
    from benchmark.pipeline.steps import load_tokens

    spec = step.spec
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    task = env.task(spec["task"])
    info = tokenizer.info
    profile = Profile()
    with profile.step("load-tokens", env.device):
        splits = {
            name: load_tokens(cache, spec["kept_codebooks"], info.codebook_sizes, env)
            for name, cache in spec["caches"].items()
        }
    out_dir = staged_record_path(step, env).parent
    out_dir.mkdir(parents=True, exist_ok=True)
    run = TaskRun(
        tokenizer_info=info, splits=splits,
        context=env.config.context(env.device, None, spec["seed"]), seed=spec["seed"],
        device=env.device, out_dir=out_dir, progress=env.config.progress,
        codebook_vectors=tokenizer.embeddings,
    )  # fmt: skip
    with profile.step("task", env.device):
        output = task.run(run)
    if not isinstance(output, GenerationOutput) or not output.utterances:
        raise ContractError(
            f"task {spec['task_name']!r} must return a GenerationOutput with utterances"
        )
    decoder = _Decoder(tokenizer, spec.get("vocoder_dir"), spec["tokenizer_key"], env.device)
    with atomic_folder(step.output) as tmp, profile.step("decode", env.device):
        items = []
        bar = tqdm(output.utterances, desc=f"decode {step.label}", unit="utt",
                   disable=not env.config.progress, leave=False)  # fmt: skip
        for utterance in bar:
            relative = f"audio/{_slug(utterance.id)}.wav"
            save_wav(tmp / relative, decoder(utterance.tokens), decoder.sample_rate)
            items.append({
                "id": utterance.id, "audio": relative,
                "reference_audio": _text(utterance.reference_audio),
                "reference_text": utterance.reference_text,
                "speaker_audio": _text(utterance.speaker_audio),
            })  # fmt: skip
        rows: dict[str, dict[str, str]] = {
            name: {utt_id: _text(path) for utt_id, path in files.items()}
            for name, files in output.baseline_audio.items()
        }
        for name, tokens in output.baseline_tokens.items():
            rows[name] = {}
            for utt_id, array in tokens.items():
                relative = f"rows/{_slug(name)}/{_slug(utt_id)}.wav"
                save_wav(tmp / relative, decoder(array), decoder.sample_rate)
                rows[name][utt_id] = relative
        atomic_write_json(tmp / "items.json", items)
        atomic_write_json(tmp / "rows.json", rows)
        extras = {**output.extras, "decoder": decoder.identity, "timings": profile.to_dict()}
        atomic_write_json(tmp / "extras.json", extras)
        atomic_write_json(tmp / MARKER, marker_payload(step))


def _text(path: Any) -> str | None:
    """A task's file as stored: absolute (``read_generated`` reads relative paths as files
    of the generate folder, so a relative workdir's paths would point inside it)."""
    return None if path is None else str(Path(path).resolve())


# ----------------------------------------------------------------------------- score


def read_generated(folder: Path) -> tuple[list[AudioItem], dict[str, dict[str, Path]], dict]:
    """The generated items, the rows (absolute files) and the extras of a generate folder."""
    folder = Path(folder)

    def path(value: str | None) -> Path | None:
        if value is None:
            return None
        p = Path(value)
        return p if p.is_absolute() else folder / p

    items = [
        AudioItem(
            d["id"],
            path(d["audio"]),
            path(d["reference_audio"]),
            d["reference_text"],
            path(d["speaker_audio"]),
        )
        for d in json.loads((folder / "items.json").read_text())
    ]
    rows = {
        name: {utt_id: path(p) for utt_id, p in files.items()}
        for name, files in json.loads((folder / "rows.json").read_text()).items()
    }
    return items, rows, json.loads((folder / "extras.json").read_text())


def _metric(metric_spec: dict[str, Any], env: StepEnv) -> Any:
    """The metric object of a planned metric spec."""
    cls = env.entry("metric", metric_spec["name"]).load()
    args = dict(metric_spec["args"])
    if "device" in inspect.signature(cls).parameters:
        args["device"] = env.device
    return cls(**args)


def _evaluate(metric: Any, cache: Any, items: list[AudioItem]):
    """``evaluate_metric`` through the score cache when the metric has one."""
    return evaluate_metric(metric, items, cache.scorer(metric) if cache else None)


def run_reference_scores(step: Step, env: StepEnv) -> None:
    """Judge a generative task's reference rows into the score cache; the marker says how
    many items each metric judged and found."""
    from benchmark.pipeline.steps import _manifest

    spec = step.spec
    task = env.task(spec["task"])
    manifests = {name: _manifest(data, env) for name, data in spec["splits"].items()}
    rows = task.reference_rows(manifests)
    items = [AudioItem(r.id, Path(r.audio), r.reference_audio, r.reference_text,
                       r.speaker_audio) for row in rows.values() for r in row]  # fmt: skip
    summary: dict[str, Any] = {}
    with atomic_folder(step.output) as tmp:
        for metric_spec in spec["metrics"]:
            metric = _metric(metric_spec, env)
            cache = _score_cache(metric, metric_spec, env)
            if cache is None:  # unavailable: the job records why
                summary[metric_spec["name"]] = "unavailable"
                continue
            value, _ = _evaluate(metric, cache, items)
            status = value.status if isinstance(value, MetricValue) else value.get("status")
            summary[metric_spec["name"]] = {"status": status, "judged": cache.misses,
                                            "cached": cache.hits}  # fmt: skip
        atomic_write_json(tmp / MARKER, marker_payload(step, summary=summary))


def _record_metric(value: Any) -> MetricRecord:
    data = value.to_dict() if isinstance(value, MetricValue) else dict(value)
    data.setdefault("split", "test")
    if data.get("split") is None:
        data["split"] = "test"
    return MetricRecord.from_dict(data)


def run_generative_job(step: Step, env: StepEnv) -> ResultRecord:
    """Score a generate folder with the card's metrics; write the record."""
    from benchmark.pipeline.steps import base_record, beats, publish

    spec = step.spec
    started = datetime.now(UTC).isoformat(timespec="seconds")
    items, rows, extras = read_generated(Path(spec["generated_dir"]))
    profile = Profile()
    metrics: dict[str, MetricRecord] = {}
    per_utterance: dict[str, UtteranceScores] = {}
    baselines: dict[str, dict[str, MetricRecord]] = {name: {} for name in rows}
    for metric_spec in spec["metrics"]:
        name = metric_spec["name"]
        with profile.step(f"score-{name}", env.device):
            metric = _metric(metric_spec, env)
            cache = _score_cache(metric, metric_spec, env)
            value, scores = _evaluate(metric, cache, items)
            metrics[name] = _record_metric(value)
            kept = [(i.id, s) for i, s in zip(items, scores, strict=True) if s is not None]
            if kept:
                per_utterance[name] = UtteranceScores(
                    [k for k, _ in kept], [s for _, s in kept], [1.0] * len(kept)
                )
            for row, files in rows.items():
                row_items = [_replace_audio(i, files[i.id]) for i in items if i.id in files]
                row_value, _ = _evaluate(metric, cache, row_items)
                baselines[row][name] = _record_metric(row_value)
            if cache is not None and cache.hits:
                log.info("%s: %d scores from the score cache, %d judged",
                         name, cache.hits, cache.misses)  # fmt: skip
    main = env.task(spec["task"]).info.main_metric
    record = base_record(step, env)
    record.status = "ok"
    tokenizer = env.tokenizer(spec["tokenizer"], spec["fit_dir"])
    record.tokenizer_info = {**tokenizer.info.to_dict(), "description": spec.get("description"),
                             "display_name": spec.get("display_name")}  # fmt: skip
    record.metrics, record.per_utterance, record.main_metric = metrics, per_utterance, main
    record.baselines = baselines
    record.config["task"]["needs_decode"] = True  # the leaderboard's generative group
    record.provenance["tokenizer_state"] = dict(tokenizer.state_fingerprint())
    record.extras = {**extras, "generated_dir": spec["generated_dir"]}
    record.extras["beats_baselines"] = beats(metrics, baselines, main)
    record.timings = {"started": started, **profile.to_dict()}
    staged = staged_record_path(step, env)
    record.extras["examples"] = _examples(items, rows, step.output)
    record.to_disk(staged)
    publish(record, step, staged)
    return record


def _score_cache(metric: Any, metric_spec: dict[str, Any], env: StepEnv) -> Any:
    """The score cache of one metric (keyed by content: safe for any audio), or None when
    the metric's judge is missing (it is recorded unavailable anyway)."""
    from benchmark.errors import JudgeUnavailableError
    from benchmark.pipeline.score_cache import ScoreCache

    judge_key = metric_spec.get("judge_key")
    try:
        key = ScoreCache.metric_key(metric, metric_spec, judge_key)
    except JudgeUnavailableError:
        return None
    return ScoreCache(env.workdir / "scores", env.audio_ids, key)


def _replace_audio(item: AudioItem, audio: Path) -> AudioItem:
    return AudioItem(item.id, Path(audio), item.reference_audio, item.reference_text,
                     item.speaker_audio)  # fmt: skip


def _examples(items: list[AudioItem], rows: dict[str, dict[str, Path]], record_path: Path):
    """Copy the first few utterances' audio beside the record; their list for the site.

    Files go to ``<record stem>.examples/`` next to the record; paths in the list are
    relative to the record's folder.
    """
    folder = record_path.with_name(record_path.stem + ".examples")
    examples = []
    for item in items[:EXAMPLES]:
        reference = None
        if item.reference_audio is not None and Path(item.reference_audio).is_file():
            reference = f"{folder.name}/{_slug(item.id)}.reference.wav"
            atomic_write_bytes(
                record_path.parent / reference, Path(item.reference_audio).read_bytes()
            )
        sources = {
            "generated": item.audio,
            **{row: files.get(item.id) for row, files in rows.items()},
        }
        for label, source in sources.items():
            if source is None or label == "ground truth":
                continue
            relative = f"{folder.name}/{_slug(item.id)}.{_slug(label)}.wav"
            atomic_write_bytes(record_path.parent / relative, Path(source).read_bytes())
            examples.append({"id": item.id, "label": label, "audio": relative,
                             "reference": reference})  # fmt: skip
    return examples
