"""The mini preset's speaker-embedding model: a small ECAPA-TDNN trained by the harness.

It stands in for WavLM-base-sv in the ``mini`` preset's speaker similarity. Input: 40-band
log-mel at 100 frames/s (400-point window, 10 ms hop), normalised per utterance. Model:
speechbrain's :class:`~speechbrain.lobes.models.ECAPA_TDNN.ECAPA_TDNN` at a reduced width,
trained as a closed-set classifier of the training speakers with speechbrain's cosine
:class:`~speechbrain.lobes.models.ECAPA_TDNN.Classifier` and additive angular margin
softmax (AAM, margin 0.2, scale 30), which shapes embeddings for cosine scoring. Training
examples are 2 s crops (1 s hop) of the training utterances; the epoch with the lowest
validation classification error (other utterances of the same speakers) is kept. An
utterance's embedding is computed on the whole utterance, one at a time (no padding).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from benchmark.data.manifest import Manifest
from benchmark.errors import DataError
from benchmark.metrics.judges.mini_common import (
    MINI_JUDGE_VERSION,
    JudgeBudget,
    LogMel,
    LogMelSettings,
    judge_fingerprint,
    judge_identity,
    manifest_features,
    read_judge,
    write_judge,
)
from benchmark.tasks.training import Batch, Example, TrainConfig, batches, train

log = logging.getLogger(__name__)

KIND = "speaker"
NAME = "mini ECAPA-TDNN speaker embedder"
FEATURES = LogMelSettings(n_mels=40, n_fft=512, hop=320)
#: ECAPA-TDNN settings (speechbrain's defaults are 512/1536 channels, 192 dims).
ARCHITECTURE: dict[str, Any] = {
    "channels": [64, 64, 64, 64, 192],
    "lin_neurons": 96,
    "attention_channels": 32,
    "se_channels": 32,
    "res2net_scale": 2,
}
#: Training crops: length and hop in frames (2 s and 1 s at 20 ms).
CROP, CROP_HOP = 100, 50
MARGIN, SCALE = 0.2, 30.0
DEFAULT_BUDGET = JudgeBudget(epochs=10, batch_size=32, lr=3e-3, max_seconds=900.0)


class SpeakerModel(nn.Module):
    """ECAPA-TDNN embedder plus the cosine classifier used only for training."""

    def __init__(self, n_mels: int, n_speakers: int, architecture: dict[str, Any]) -> None:
        super().__init__()
        from speechbrain.lobes.models.ECAPA_TDNN import ECAPA_TDNN, Classifier

        self.embedder = ECAPA_TDNN(n_mels, **architecture)
        self.classifier = Classifier(architecture["lin_neurons"], out_neurons=n_speakers)

    def embed(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """``[B, N, F]`` log-mel (padded) -> ``[B, D]`` embeddings."""
        relative = lengths.float() / features.shape[1]
        return self.embedder(features, relative).squeeze(1)

    def forward(self, features: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Cosine scores ``[B, 1, S]`` against every training speaker."""
        return self.classifier(self.embed(features, lengths).unsqueeze(1))


def _crops(frames: torch.Tensor) -> list[torch.Tensor]:
    """2 s crops with a 1 s hop (the whole utterance when it is shorter than a crop)."""
    if frames.shape[0] <= CROP:
        return [frames]
    starts = range(0, frames.shape[0] - CROP + 1, CROP_HOP)
    return [frames[s : s + CROP] for s in starts]


def _examples(
    manifest: Manifest, front_end: LogMel, speakers: dict[str, int], progress: bool
) -> list[Example]:
    features = manifest_features(
        manifest, front_end, progress, f"mini speaker judge: {len(manifest)} files"
    )
    examples = []
    for utterance, frames in zip(manifest, features, strict=True):
        if utterance.speaker not in speakers:
            raise DataError(
                f"{utterance.id}: speaker {utterance.speaker!r} is not a training speaker of "
                "the mini speaker judge; validate on other utterances of the same speakers"
            )
        for k, crop in enumerate(_crops(frames)):
            examples.append(Example(f"{utterance.id}#{k}", crop, speakers[utterance.speaker]))
    return examples


def mini_speaker_judge_fingerprint(
    train: Manifest, valid: Manifest, seed: int, budget: JudgeBudget = DEFAULT_BUDGET
) -> str:
    """The step key of :func:`train_mini_speaker_judge` with these arguments."""
    return judge_fingerprint(KIND, train, valid, seed, budget)


def train_mini_speaker_judge(
    train_manifest: Manifest,
    valid_manifest: Manifest,
    out_dir: Path,
    seed: int,
    budget: JudgeBudget = DEFAULT_BUDGET,
    progress: bool = False,
) -> None:
    """Train the mini speaker embedder on the training speakers; write it to ``out_dir``.

    Args:
        train_manifest: utterances with ``speaker`` (at least two speakers).
        valid_manifest: other utterances of the same speakers (picks the best epoch).
        out_dir: the judge folder, written atomically (replaced if present).
        seed: seeds initialisation and batch order.
        budget: epochs, batch size, learning rate, wall-clock cap.
        progress: show progress bars.

    Raises:
        DataError: fewer than two speakers, or a validation speaker not in training.
    """
    from speechbrain.nnet.losses import AdditiveAngularMargin, LogSoftmaxWrapper

    started, cpu_started = time.perf_counter(), time.process_time()
    names = sorted({u.speaker for u in train_manifest if u.speaker})
    if len(names) < 2 or any(not u.speaker for u in train_manifest):
        raise DataError(
            "the mini speaker judge needs speaker labels on every training utterance and at "
            f"least two speakers; got {len(names)}"
        )
    speakers = {name: i for i, name in enumerate(names)}
    front_end = LogMel(FEATURES)
    train_set = _examples(train_manifest, front_end, speakers, progress)
    valid_set = _examples(valid_manifest, front_end, speakers, progress)
    torch.manual_seed(seed)
    model = SpeakerModel(FEATURES.n_mels, len(names), ARCHITECTURE)
    criterion = LogSoftmaxWrapper(AdditiveAngularMargin(margin=MARGIN, scale=SCALE))

    def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
        targets = torch.tensor(batch.targets, dtype=torch.int64).unsqueeze(1)
        return criterion(net(batch.tokens, batch.lengths), targets)

    def valid_error(net: nn.Module) -> float:
        wrong = 0
        for batch in batches(valid_set, 64, False, torch.Generator()):
            predicted = net(batch.tokens, batch.lengths).squeeze(1).argmax(dim=-1)
            wrong += int((predicted != torch.tensor(batch.targets)).sum())
        return 100.0 * wrong / len(valid_set)

    config = TrainConfig(
        epochs=budget.epochs,
        batch_size=budget.batch_size,
        lr=budget.lr,
        max_seconds=budget.max_seconds,
        warmup_fraction=0.1,
    )
    result = train(
        model,
        loss_fn,
        valid_error,
        train_set,
        config,
        "cpu",
        seed,
        progress,
        "mini speaker judge",
        valid_name="valid_error_percent",
    )
    meta = {
        "kind": KIND,
        "name": NAME,
        "version": MINI_JUDGE_VERSION,
        "fingerprint": mini_speaker_judge_fingerprint(train_manifest, valid_manifest, seed, budget),
        "features": asdict(FEATURES),
        "architecture": ARCHITECTURE,
        "speakers": names,
        "valid_error": result.best_score,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "threads": torch.get_num_threads(),
        "train_crops": len(train_set),
    }
    write_judge(out_dir, model.state_dict(), meta)
    log.info(
        "mini speaker judge: valid error %.1f %% after %.0f s -> %s",
        result.best_score,
        meta["seconds"],
        out_dir,
    )


class MiniSpeakerEmbedder:
    """A trained mini speaker embedder: 16 kHz waveforms in, unit-norm embeddings out."""

    sample_rate = 16000

    def __init__(self, out_dir: Path, device: str = "cpu") -> None:
        state, self.meta = read_judge(out_dir, KIND)
        self.front_end = LogMel(LogMelSettings(**self.meta["features"]))
        self.model = SpeakerModel(
            self.meta["features"]["n_mels"], len(self.meta["speakers"]), self.meta["architecture"]
        )
        self.model.load_state_dict(state)
        self.device = device
        self.model.to(device).eval()

    def identity(self) -> dict[str, Any]:
        """Name, fingerprint and validation error of the judge."""
        return judge_identity(self.meta, ("valid_error",))

    def embed(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        """Unit-norm embeddings ``[B, D]`` of ``[T]`` waveforms at 16 kHz, one at a time."""
        out = []
        with torch.no_grad():
            for wave in waves:
                frames = self.front_end(wave).unsqueeze(0).to(self.device)
                length = torch.tensor([frames.shape[1]], device=self.device)
                out.append(nn.functional.normalize(self.model.embed(frames, length), dim=-1))
        return torch.cat(out).cpu()


def load_mini_speaker_judge(out_dir: Path, device: str = "cpu") -> MiniSpeakerEmbedder:
    """Load a judge written by :func:`train_mini_speaker_judge`.

    Raises:
        JudgeUnavailableError: the folder is missing, unfinished or of another kind.
    """
    return MiniSpeakerEmbedder(out_dir, device)
