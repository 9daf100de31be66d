"""Text-to-speech on tokens: characters -> every codebook's tokens, decoded and judged.

An autoregressive transformer encoder-decoder
(:class:`~benchmark.models.tts_transformer.TextToTokens`) reads the normalised characters
(:class:`~benchmark.models.tts_text.TextVocabulary`) and predicts all codebooks of one
frame per step, with a stop gate and guided attention on its cross-attention. It trains
on the (text, tokens) pairs of the train split with teacher forcing, keeps the epoch of
lowest validation loss, and generates the test sentences; the harness decodes the tokens
(the tokenizer's decoder or the scalable vocoder) and judges the audio:

- ``reference_audio``: the real recording of the same sentence;
- ``reference_text``: its text (``text_wer`` / ``text_cer`` score the transcript of the
  generated audio against it);
- ``speaker_audio``: one training recording of the same voice (the first in id order),
  so speaker similarity measures closeness to the target voice, not to the test sentence.

The record also scores ``ground truth``: the real test recordings through the same judges
(the recogniser's floor, the judges' ceiling).

``mini``: the single-voice ``tts`` subset of the synthetic corpus. ``full``: LJSpeech-1.1
(:func:`~benchmark.data.tts_corpora.ljspeech_split`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.api import BuildContext, DataRef, GenerationOutput, ReferenceAudio, TaskRun
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Manifest
from benchmark.errors import ContractError, DataError
from benchmark.models.tts_text import TextVocabulary
from benchmark.models.tts_training import (
    cap_ratio,
    generate_tokens,
    train_tts,
    tts_examples,
)
from benchmark.models.tts_transformer import LossWeights, TextToTokens, TTSModelConfig
from benchmark.tasks.generative import BuiltinGenerativeTask, utterance_for
from benchmark.tasks.training import Example, TrainConfig

#: The card's default metrics: intelligibility against the input text, quality, voice.
TTS_METRICS: tuple[str, ...] = (
    "text_wer", "text_cer", "utmos", "dnsmos_sig", "dnsmos_bak", "dnsmos_ovrl", "dnsmos_p808",
    "speaker_similarity",
)  # fmt: skip


class TTSTask(BuiltinGenerativeTask):
    """Autoregressive text-to-token synthesis.

    Args:
        name: task name (from the card).
        corpus: ``mini`` or ``ljspeech``.
        subset: corpus part (``tts`` for mini, ``ljspeech`` for LJSpeech).
        train_split, valid_split, test_split: split names.
        metrics, main_metric, judge_weights: see
            :class:`~benchmark.tasks.generative.BuiltinGenerativeTask`.
        dim, heads, encoder_layers, decoder_layers, ffn, dropout, input_dropout: model size
            (:class:`~benchmark.models.tts_transformer.TTSModelConfig`).
        gate_weight, gate_pos_weight, guided_attention_weight, guided_attention_sigma: loss
            terms (:class:`~benchmark.models.tts_transformer.LossWeights`).
        gate_threshold: stop-gate probability that ends generation.
        top_k: 0 for greedy decoding, else seeded top-k sampling.
        cap_slack: the frame cap is ``cap_slack`` x the largest frames-per-character ratio of
            the training set, times the characters.
        epochs, batch_size, lr, max_seconds: training budget (``max_seconds``: safety stop).
    """

    VERSION = 1

    def __init__(
        self,
        name: str,
        corpus: str = "mini",
        subset: str = "tts",
        train_split: str = "train",
        valid_split: str = "valid",
        test_split: str = "test",
        metrics: Sequence[str] = TTS_METRICS,
        main_metric: str = "text_wer",
        judge_weights: Mapping[str, Mapping[str, Any]] | None = None,
        dim: int = 256,
        heads: int = 4,
        encoder_layers: int = 3,
        decoder_layers: int = 3,
        ffn: int = 1024,
        dropout: float = 0.1,
        input_dropout: float = 0.2,
        gate_weight: float = 1.0,
        gate_pos_weight: float = 5.0,
        guided_attention_weight: float = 10.0,
        guided_attention_sigma: float = 0.2,
        gate_threshold: float = 0.5,
        top_k: int = 0,
        cap_slack: float = 1.5,
        epochs: int = 50,
        batch_size: int = 16,
        lr: float = 5e-4,
        max_seconds: float = 0.0,
    ) -> None:
        super().__init__(name, "tts", corpus, metrics, main_metric, judge_weights)
        self.subset = subset
        self.split_names = {"train": train_split, "valid": valid_split, "test": test_split}
        self.model_config = TTSModelConfig(
            dim, heads, encoder_layers, decoder_layers, ffn, dropout, input_dropout
        )
        self.loss_weights = LossWeights(
            gate_weight, gate_pos_weight, guided_attention_weight, guided_attention_sigma
        )
        if not 0 < gate_threshold < 1:
            raise ValueError(f"gate_threshold must be in (0, 1), got {gate_threshold!r}")
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
            raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
        if cap_slack < 1:
            raise ValueError(f"cap_slack must be >= 1, got {cap_slack!r}")
        self.gate_threshold, self.top_k, self.cap_slack = gate_threshold, top_k, cap_slack
        self.train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, max_seconds=max_seconds
        )

    def splits(self, context: BuildContext) -> Mapping[str, DataRef]:
        return {
            key: DataRef(self.info.corpus, self.subset, split)
            for key, split in self.split_names.items()
        }

    def _examples(self, split: TokenSplit, vocabulary: TextVocabulary) -> list[Example]:
        items = []
        for utterance, tokens in split.items():
            if not utterance.text:
                raise DataError(
                    f"{split.manifest.source or 'the manifest'}: utterance {utterance.id!r} has "
                    f"no text; task {self.info.name!r} needs a transcript on every utterance"
                )
            if tokens.shape[0] < 1:
                raise DataError(f"utterance {utterance.id!r} has no token frames")
            items.append((utterance.id, tokens, vocabulary.encode(utterance.text, utterance.id)))
        if not items:
            raise DataError(f"{split.manifest.source}: no utterances in this split")
        return tts_examples(items)

    def reference_rows(self, manifests: Mapping[str, Any]) -> dict[str, list[ReferenceAudio]]:
        """``ground truth``: the real test recordings, judged against themselves, with the
        first training recording of their voice as speaker audio.

        Raises:
            DataError: a test speaker has no training recording.
        """
        manifest, speakers = manifests["test"], _speaker_audio(manifests["train"])
        row = []
        for utterance in manifest:
            if utterance.speaker not in speakers:
                raise DataError(
                    f"{manifest.source}: test utterance {utterance.id!r} is spoken by "
                    f"{utterance.speaker!r}, who has no training recording (speaker audio)"
                )
            path = Path(manifest.audio_path(utterance)).resolve()
            row.append(ReferenceAudio(utterance.id, path, path, utterance.text,
                                      speakers[utterance.speaker]))  # fmt: skip
        return {"ground truth": row}

    def run(self, run: TaskRun) -> GenerationOutput:
        info = run.tokenizer_info
        if info.is_continuous:
            raise ContractError(
                f"task {self.info.name!r} generates token ids; tokenizer {info.name!r} gives "
                "continuous features: run it with a discrete tokenizer"
            )
        vocabulary = TextVocabulary()
        splits = run.splits
        train_set = self._examples(splits["train"], vocabulary)
        valid_set = self._examples(splits["valid"], vocabulary)
        test_set = self._examples(splits["test"], vocabulary)
        torch.manual_seed(run.seed)
        model = TextToTokens(len(vocabulary), info.codebook_sizes, self.model_config)
        model = model.to(run.device)
        result = train_tts(
            model, train_set, valid_set, self.loss_weights, self.train_config, run.device,
            run.seed, run.progress, f"{self.info.name} model",
        )  # fmt: skip
        ratio = cap_ratio(train_set, self.cap_slack)
        generated = generate_tokens(
            model, {e.id: e.target for e in test_set}, ratio, run.device, self.gate_threshold,
            self.top_k, run.seed,
        )  # fmt: skip
        rows = self.reference_rows({k: splits[k].manifest for k in ("train", "test")})
        utterances = [utterance_for(r, generated[r.id].tokens) for r in rows["ground truth"]]
        return GenerationOutput(
            utterances=utterances,
            baseline_audio={name: {r.id: r.audio for r in row} for name, row in rows.items()},
            extras={
                "training": {
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "seconds": result.seconds,
                },
                "generation": _generation_summary(generated, test_set, ratio),
                "dropped_characters": dict(sorted(vocabulary.dropped.items())),
                "vocabulary": vocabulary.chars,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )


def _speaker_audio(manifest: Manifest) -> dict[str | None, Path]:
    """``{speaker: the first training recording of that speaker, in id order}``."""
    out: dict[str | None, Path] = {}
    for utterance in sorted(manifest, key=lambda u: u.id):
        out.setdefault(utterance.speaker, Path(manifest.audio_path(utterance)).resolve())
    return out


def _generation_summary(
    generated: Mapping[str, Any], test_set: Sequence[Example], ratio: float
) -> dict[str, Any]:
    """How generation ended, and generated vs real lengths (frames)."""
    real = {e.id: e.tokens.shape[0] for e in test_set}
    ratios = [generated[uid].tokens.shape[0] / real[uid] for uid in real]
    return {
        "utterances": len(real),
        "stopped_by_gate": sum(g.stopped for g in generated.values()),
        "stopped_by_cap": sum(not g.stopped for g in generated.values()),
        "cap_frames_per_character": ratio,
        "length_ratio_mean": sum(ratios) / len(ratios),
        "length_ratio_min": min(ratios),
        "length_ratio_max": max(ratios),
        "mean_frames": sum(g.tokens.shape[0] for g in generated.values()) / len(generated),
        "mean_real_frames": sum(real.values()) / len(real),
    }
