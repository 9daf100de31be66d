"""What the two harness-trained mini judges share: budget, fingerprint, features, storage.

In the ``mini`` preset no judge weights exist, so the harness trains its own recogniser
(:mod:`~benchmark.metrics.judges.mini_asr`) and speaker-embedding model
(:mod:`~benchmark.metrics.judges.mini_speaker`) once, on the mini corpus's clean audio of
its *training speakers* only (:func:`mini_judge_manifests`), so that judging held-out
speakers' audio never scores audio the judge was trained on.

A judge folder holds ``model.pt`` (the state dict), ``judge.json`` (architecture, feature
settings, vocabulary or speakers, fingerprint, training summary) and a ``COMPLETE`` marker;
it is written into a temporary sibling and renamed into place, so a killed training never
leaves a folder that looks finished. Its :func:`judge_fingerprint` covers the code version,
the manifests, the seed, the budget and the library versions: the step key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from benchmark.data.audio import load_audio
from benchmark.data.manifest import Manifest
from benchmark.errors import DataError, JudgeUnavailableError

#: Bump when training or model code of a mini judge changes its output.
MINI_JUDGE_VERSION = "1"
MARKER = "COMPLETE"
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class JudgeBudget:
    """How long a mini judge trains.

    Attributes:
        epochs: passes over the training examples.
        batch_size: examples per step.
        lr: peak AdamW learning rate (linear warm-up, cosine decay).
        max_seconds: safety stop, not a budget (0 = none): training still running past it
            fails with :class:`~benchmark.tasks.training.TrainingTimeoutError`. The defaults
            are several times the time the epochs take on a busy 2-core machine.
    """

    epochs: int
    batch_size: int
    lr: float
    max_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0 or self.max_seconds < 0:
            raise ValueError(f"invalid judge budget {self!r}")


@dataclass(frozen=True)
class LogMelSettings:
    """Log-mel front end of a mini judge (16 kHz input, per-utterance mean/variance norm).

    Attributes:
        n_mels: mel bands.
        n_fft: FFT size and window length, samples.
        hop: samples between frames (160 = 10 ms, 320 = 20 ms).
    """

    n_mels: int
    n_fft: int
    hop: int


class LogMel(torch.nn.Module):
    """``[T]`` waveform at 16 kHz -> ``[N, n_mels]`` normalised log-mel frames."""

    def __init__(self, settings: LogMelSettings) -> None:
        super().__init__()
        import torchaudio

        self.settings = settings
        self.mel = torchaudio.transforms.MelSpectrogram(
            SAMPLE_RATE, n_fft=settings.n_fft, hop_length=settings.hop, n_mels=settings.n_mels
        )

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel frames ``[N, n_mels]``, each band normalised over the utterance."""
        features = (self.mel(wave.float()) + 1e-6).log().T
        return (features - features.mean(dim=0)) / (features.std(dim=0, unbiased=False) + 1e-5)


def manifest_features(
    manifest: Manifest, front_end: LogMel, progress: bool = False, desc: str = "features"
) -> list[torch.Tensor]:
    """Log-mel frames ``[N_i, n_mels]`` of every utterance of a manifest, in order."""
    with torch.no_grad():
        return [
            front_end(load_audio(manifest.audio_path(u), SAMPLE_RATE))
            for u in tqdm(manifest, desc=desc, unit="file", disable=not progress)
        ]


def judge_fingerprint(
    kind: str, train: Manifest, valid: Manifest, seed: int, budget: JudgeBudget
) -> str:
    """sha256 of what a mini judge's weights depend on: the step key of its training.

    Covers :data:`MINI_JUDGE_VERSION`, the judge kind, both manifests' fingerprints, the
    seed, the budget, and the torch / torchaudio / speechbrain versions.
    """
    versions = {name: metadata.version(name) for name in ("torch", "torchaudio", "speechbrain")}
    spec = {
        "kind": kind,
        "version": MINI_JUDGE_VERSION,
        "train": train.fingerprint(),
        "valid": valid.fingerprint(),
        "seed": int(seed),
        "budget": asdict(budget),
        "libraries": versions,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def write_judge(out_dir: Path, state: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> None:
    """Write ``model.pt`` and ``judge.json`` into ``out_dir`` atomically (temp + rename).

    An existing ``out_dir`` is replaced.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(f".{out_dir.name}.{os.getpid()}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        torch.save(dict(state), tmp / "model.pt")
        (tmp / "judge.json").write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        (tmp / MARKER).write_text(str(meta.get("fingerprint", "")) + "\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def read_judge(out_dir: Path, kind: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """The state dict and metadata of a finished mini judge folder.

    Raises:
        JudgeUnavailableError: the folder is missing, unfinished, or holds another kind.
    """
    out_dir = Path(out_dir)
    if not (out_dir / MARKER).is_file():
        raise JudgeUnavailableError(
            f"mini {kind} judge {out_dir} is missing or unfinished; train it with "
            f"train_mini_{kind}_judge (the mini preset does this as a step)"
        )
    try:
        meta = json.loads((out_dir / "judge.json").read_text())
        state = torch.load(out_dir / "model.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, RuntimeError) as exc:
        raise JudgeUnavailableError(f"mini {kind} judge {out_dir} is unreadable ({exc})") from None
    if meta.get("kind") != kind:
        raise JudgeUnavailableError(
            f"{out_dir} holds a mini {meta.get('kind')!r} judge, not a {kind!r} judge"
        )
    return state, meta


def judge_identity(meta: Mapping[str, Any], keys: Sequence[str] = ()) -> dict[str, Any]:
    """The identity a metric records for a mini judge: name, fingerprint, quality figures."""
    out = {
        "name": meta["name"],
        "kind": "harness-trained",
        "version": meta["version"],
        "fingerprint": meta["fingerprint"],
    }
    out.update({key: meta[key] for key in keys if key in meta})
    return out


def mini_judge_manifests(corpus_dir: Path) -> dict[str, tuple[Manifest, Manifest]]:
    """The ``(train, valid)`` manifests each mini judge trains on, training speakers only.

    - ``asr``: the ``asr`` subset's ``train`` and ``valid`` splits (clean audio; ``valid``
      holds other speakers, used only to pick the best epoch).
    - ``speaker``: the ``speaker`` subset's ``train`` and ``valid`` splits restricted to the
      speakers of ``asr/train`` (the corpus's training speakers); ``valid`` holds other
      utterances of the same speakers (closed-set classification error picks the epoch).

    Raises:
        DataError: the corpus lacks a subset, or no training speaker is in ``speaker``.
    """
    from benchmark.data.mini import mini_manifest

    asr_train = mini_manifest(corpus_dir, "asr", "train")
    asr_valid = mini_manifest(corpus_dir, "asr", "valid")
    speakers = {u.speaker for u in asr_train}

    def restrict(manifest: Manifest) -> Manifest:
        kept = tuple(u for u in manifest if u.speaker in speakers)
        if not kept:
            raise DataError(f"{manifest.source}: no utterance of the training speakers")
        return Manifest(kept, root=manifest.root, source=None)

    speaker_train = restrict(mini_manifest(corpus_dir, "speaker", "train"))
    speaker_valid = restrict(mini_manifest(corpus_dir, "speaker", "valid"))
    return {"asr": (asr_train, asr_valid), "speaker": (speaker_train, speaker_valid)}
