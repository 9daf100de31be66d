"""The mini preset's recogniser: a small CTC character model on log-mel, trained by the harness.

It stands in for Whisper in the ``mini`` preset's dWER (the recogniser transcribes both the
generated and the reference audio). Input: 40-band log-mel at 50 frames/s (512-point
window, 20 ms hop), normalised per utterance. Model: pairs of frames stacked (25 Hz), a
pointwise input projection, residual blocks of depthwise-separable dilated 1-D convolutions
(kernel 5) with batch norm and GELU, then a pointwise layer giving two 50 Hz frames of
scores per step over the characters of the training transcripts plus the CTC blank
(:class:`~benchmark.tasks.asr.CharacterVocabulary`). Greedy CTC decoding. It trains with
:func:`benchmark.tasks.training.train` (AdamW, warm-up + cosine),
keeping the epoch with the lowest validation CER.
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
from benchmark.metrics.asr import CharacterErrorRate
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
from benchmark.tasks.asr import BLANK, CharacterVocabulary
from benchmark.tasks.training import Batch, Example, TrainConfig, batches, train

log = logging.getLogger(__name__)

KIND = "asr"
NAME = "mini CTC character recogniser"
FEATURES = LogMelSettings(n_mels=40, n_fft=512, hop=320)
#: Frames stacked per convolution step (50 Hz features, 25 Hz convolutions).
STACK = 2
#: Architecture: width, dilation of each residual block, kernel size.
ARCHITECTURE: dict[str, Any] = {"hidden": 160, "dilations": [1, 2, 4, 1, 2, 4], "kernel": 5}
DROPOUT = 0.1
#: The default budget for the full mini corpus (about 47 min of training audio).
DEFAULT_BUDGET = JudgeBudget(epochs=8, batch_size=8, lr=3e-3, max_seconds=1200.0)


class _Block(nn.Module):
    """Residual depthwise-separable dilated convolution ``[B, H, N] -> [B, H, N]``."""

    def __init__(self, hidden: int, kernel: int, dilation: int) -> None:
        super().__init__()
        padding = dilation * (kernel - 1) // 2
        self.depthwise = nn.Conv1d(
            hidden, hidden, kernel, padding=padding, dilation=dilation, groups=hidden
        )
        self.pointwise = nn.Conv1d(hidden, hidden, 1)
        self.norm = nn.BatchNorm1d(hidden)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        y = self.norm(self.pointwise(self.depthwise(x)))
        return (x + self.dropout(nn.functional.gelu(y))) * mask


class ConvCTC(nn.Module):
    """Log-mel ``[B, N, F]`` (50 Hz) -> CTC log-probabilities ``[B, N', V]`` (50 Hz).

    Pairs of frames are stacked, so the convolutions run at 25 Hz (half the compute), and
    the output layer predicts two frames' distributions per step, so CTC still has 50
    output frames per second for up to ~17 characters per second of speech.
    """

    def __init__(
        self, n_mels: int, vocab_size: int, hidden: int, dilations: Sequence[int], kernel: int
    ) -> None:
        super().__init__()
        self.vocab_size = vocab_size
        self.input = nn.Conv1d(STACK * n_mels, hidden, 1)
        self.blocks = nn.ModuleList(_Block(hidden, kernel, d) for d in dilations)
        self.output = nn.Conv1d(hidden, STACK * vocab_size, 1)

    def forward(
        self, features: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probabilities ``[B, N', V]`` and their valid lengths ``[B]`` (``N' >= N``)."""
        batch, frames, bands = features.shape
        pad = (-frames) % STACK
        stacked = nn.functional.pad(features, (0, 0, 0, pad)).reshape(batch, -1, STACK * bands)
        steps = (lengths.to(features.device) + STACK - 1) // STACK
        positions = torch.arange(stacked.shape[1], device=features.device)
        mask = (positions[None] < steps[:, None]).unsqueeze(1).float()
        x = self.input(stacked.transpose(1, 2)) * mask
        for block in self.blocks:
            x = block(x, mask)
        logits = self.output(x).transpose(1, 2).reshape(batch, -1, self.vocab_size)
        return logits.log_softmax(dim=-1), steps * STACK


def _examples(manifest: Manifest, front_end: LogMel, progress: bool) -> list[Example]:
    features = manifest_features(
        manifest, front_end, progress, f"mini asr judge: {len(manifest)} files"
    )
    examples = []
    for utterance, frames in zip(manifest, features, strict=True):
        if not utterance.text:
            raise DataError(f"{utterance.id}: no transcript; the mini ASR judge needs text")
        examples.append(Example(utterance.id, frames, utterance.text))
    return examples


def vocabulary_from_chars(chars: str) -> CharacterVocabulary:
    """The :class:`CharacterVocabulary` whose characters are ``chars``, in that order."""
    vocabulary = CharacterVocabulary.__new__(CharacterVocabulary)
    vocabulary.chars = list(chars)
    vocabulary.index = {c: i + 1 for i, c in enumerate(vocabulary.chars)}
    return vocabulary


def _greedy(
    model: ConvCTC,
    examples: Sequence[Example],
    vocabulary: CharacterVocabulary,
    device: str = "cpu",
) -> list[str]:
    model.eval()
    out: dict[str, str] = {}
    with torch.no_grad():
        for batch in batches(examples, 32, False, torch.Generator()):
            log_probs, lengths = model(batch.tokens.to(device), batch.lengths)
            best = log_probs.argmax(dim=-1).cpu()
            for row, utt_id in enumerate(batch.ids):
                n = int(lengths[row])
                out[utt_id] = vocabulary.greedy_decode(best[row, :n].tolist())
    return [out[e.id] for e in examples]


def mini_asr_judge_fingerprint(
    train: Manifest, valid: Manifest, seed: int, budget: JudgeBudget = DEFAULT_BUDGET
) -> str:
    """The step key of :func:`train_mini_asr_judge` with these arguments."""
    return judge_fingerprint(KIND, train, valid, seed, budget)


def train_mini_asr_judge(
    train_manifest: Manifest,
    valid_manifest: Manifest,
    out_dir: Path,
    seed: int,
    budget: JudgeBudget = DEFAULT_BUDGET,
    progress: bool = False,
) -> None:
    """Train the mini CTC recogniser on clean transcribed audio; write it to ``out_dir``.

    Args:
        train_manifest: training utterances with ``text`` (training speakers only).
        valid_manifest: validation utterances with ``text`` (picks the best epoch).
        out_dir: the judge folder, written atomically (replaced if present).
        seed: seeds initialisation and batch order.
        budget: epochs, batch size, learning rate, wall-clock cap.
        progress: show progress bars.

    Raises:
        DataError: an utterance without transcript, or unreadable audio.
    """
    started, cpu_started = time.perf_counter(), time.process_time()
    front_end = LogMel(FEATURES)
    train_set = _examples(train_manifest, front_end, progress)
    valid_set = _examples(valid_manifest, front_end, progress)
    vocabulary = CharacterVocabulary([e.target for e in train_set])
    torch.manual_seed(seed)
    model = ConvCTC(FEATURES.n_mels, len(vocabulary), **ARCHITECTURE)
    ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)

    def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
        log_probs, lengths = net(batch.tokens, batch.lengths)
        targets = [torch.tensor(vocabulary.encode(t), dtype=torch.int64) for t in batch.targets]
        target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.int64)
        return ctc(log_probs.transpose(0, 1), torch.cat(targets), lengths.cpu(), target_lengths)

    def valid_cer(net: nn.Module) -> float:
        hypotheses = _greedy(net, valid_set, vocabulary)
        return CharacterErrorRate().compute(hypotheses, [e.target for e in valid_set]).value

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
        valid_cer,
        train_set,
        config,
        "cpu",
        seed,
        progress,
        "mini asr judge",
        valid_name="valid_cer_percent",
    )
    fingerprint = mini_asr_judge_fingerprint(train_manifest, valid_manifest, seed, budget)
    meta = {
        "kind": KIND,
        "name": NAME,
        "version": MINI_JUDGE_VERSION,
        "fingerprint": fingerprint,
        "features": asdict(FEATURES),
        "architecture": ARCHITECTURE,
        "vocabulary": "".join(vocabulary.chars),
        "valid_cer": result.best_score,
        "best_epoch": result.best_epoch,
        "history": result.history,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
        "threads": torch.get_num_threads(),
        "train_utterances": len(train_set),
    }
    write_judge(out_dir, model.state_dict(), meta)
    log.info(
        "mini ASR judge: valid CER %.1f %% after %.0f s -> %s",
        result.best_score,
        meta["seconds"],
        out_dir,
    )


class MiniRecognizer:
    """A trained mini CTC recogniser: 16 kHz waveforms in, transcripts out."""

    sample_rate = 16000

    def __init__(self, out_dir: Path, device: str = "cpu") -> None:
        state, self.meta = read_judge(out_dir, KIND)
        self.vocabulary = vocabulary_from_chars(self.meta["vocabulary"])
        self.front_end = LogMel(LogMelSettings(**self.meta["features"]))
        self.model = ConvCTC(
            self.meta["features"]["n_mels"], len(self.vocabulary), **self.meta["architecture"]
        )
        self.model.load_state_dict(state)
        self.device = device
        self.model.to(device).eval()

    def identity(self) -> dict[str, Any]:
        """Name, fingerprint and validation CER of the judge."""
        return judge_identity(self.meta, ("valid_cer",))

    def transcribe(self, waves: Sequence[torch.Tensor]) -> list[str]:
        """Greedy transcripts of ``[T]`` waveforms at 16 kHz."""
        with torch.no_grad():
            examples = [Example(str(i), self.front_end(w), "") for i, w in enumerate(waves)]
        return _greedy(self.model, examples, self.vocabulary, self.device) if examples else []


def load_mini_asr_judge(out_dir: Path, device: str = "cpu") -> MiniRecognizer:
    """Load a judge written by :func:`train_mini_asr_judge`.

    Raises:
        JudgeUnavailableError: the folder is missing, unfinished or of another kind.
    """
    return MiniRecognizer(out_dir, device)
