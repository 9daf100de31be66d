"""Whisper as the ``full`` preset's recogniser for dWER, loaded through transformers.

The default is ``openai/whisper-small`` at a pinned commit; any Whisper checkpoint works,
from the hub (id + revision) or from a local folder written by ``save_pretrained`` that
also holds the processor files (feature extractor and tokenizer). Loading goes through
:func:`benchmark.models.hf_weights.load_weights`, the project's one weights loader.

Decoding: greedy (one beam), English, ``transcribe`` task, no timestamps, at most
:data:`MAX_NEW_TOKENS` tokens. Whisper reads 30 s windows, so longer audio is skipped by
the metric (its ``max_seconds``), never silently cut.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import JudgeUnavailableError, WeightsUnavailableError
from benchmark.models import hf_weights

log = logging.getLogger(__name__)

#: The pinned default: openai/whisper-small at a commit of its hub repository.
WHISPER_SMALL: dict[str, str] = {
    "hub": "openai/whisper-small",
    "revision": "973afd24965f72e36ca33b3055d56a652f456b4d",
}
#: Files beside the weights that the processor and generation read.
PROCESSOR_FILES: tuple[str, ...] = (
    "preprocessor_config.json",
    "tokenizer_config.json",
    "vocab.json",
    "merges.txt",
    "normalizer.json",
    "added_tokens.json",
    "special_tokens_map.json",
    "generation_config.json",
)
WINDOW_SECONDS = 30.0
MAX_NEW_TOKENS = 128
#: <|startoftranscript|> <|en|> <|transcribe|> <|notimestamps|>
PROMPT_TOKENS = 4
DECODING = {"language": "en", "task": "transcribe", "num_beams": 1}


class WhisperRecognizer:
    """A Whisper checkpoint that transcribes 16 kHz waveforms (greedy, English).

    Args:
        weights: ``{"hub": id, "revision": sha}`` or ``{"path": dir}``; default
            :data:`WHISPER_SMALL`.
        device: torch device.
        batch_size: waveforms per ``generate`` call.

    Raises:
        JudgeUnavailableError: the weights or processor files cannot be had (one line).
    """

    sample_rate = 16000

    def __init__(
        self,
        weights: Mapping[str, Any] | None = None,
        device: str = "cpu",
        batch_size: int = 8,
    ) -> None:
        from transformers import WhisperProcessor

        weights = dict(weights or WHISPER_SMALL)
        try:
            self.loaded = hf_weights.load_weights(
                weights,
                family="whisper",
                what="recogniser",
                classes=hf_weights.transformers_classes(
                    "WhisperConfig", "WhisperForConditionalGeneration"
                ),
                model_type="whisper",
                device=device,
                hub_files=PROCESSOR_FILES,
            )
        except WeightsUnavailableError as exc:
            raise JudgeUnavailableError(f"Whisper recogniser: {exc}") from None
        try:
            self.processor = WhisperProcessor.from_pretrained(self.loaded.folder)
        except (OSError, ValueError, TypeError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise JudgeUnavailableError(
                f"Whisper recogniser: {self.loaded.folder} lacks the processor files "
                f"(feature extractor and tokenizer: {reason}); save them with "
                "WhisperProcessor.save_pretrained into the weights folder"
            ) from None
        self.device = device
        self.batch_size = batch_size

    def identity(self) -> dict[str, Any]:
        """Model id and pinned revision (or local folder hashes) and the decoding settings."""
        loaded = self.loaded
        out: dict[str, Any] = {"name": "whisper", "source": loaded.source}
        if loaded.source == "hub":
            out.update(hub=loaded.name, revision=loaded.revision)
        out.update(
            config_sha256=loaded.config_sha256,
            weights_sha256=loaded.weights_sha256,
            weight_files=dict(sorted(loaded.weight_files.items())),
            transformers=metadata.version("transformers"),
            decoding={**DECODING, "max_new_tokens": MAX_NEW_TOKENS},
        )
        return out

    def transcribe(self, waves: Sequence[torch.Tensor]) -> list[str]:
        """Transcripts of ``[T]`` waveforms at 16 kHz, each at most 30 s long."""
        texts: list[str] = []
        model = self.loaded.model
        # the decoder's positions hold the 4 prompt tokens plus what it writes
        max_new = min(MAX_NEW_TOKENS, int(model.config.max_target_positions) - PROMPT_TOKENS)
        for start in range(0, len(waves), self.batch_size):
            chunk = [
                w.detach().cpu().float().numpy() for w in waves[start : start + self.batch_size]
            ]
            if any(w.shape[0] > WINDOW_SECONDS * self.sample_rate for w in chunk):
                raise ValueError("Whisper transcribes at most 30 s per waveform")
            inputs = self.processor.feature_extractor(
                chunk, sampling_rate=self.sample_rate, return_tensors="pt"
            )
            with torch.no_grad():
                ids = model.generate(
                    inputs.input_features.to(self.device),
                    language=DECODING["language"],
                    task=DECODING["task"],
                    num_beams=DECODING["num_beams"],
                    do_sample=False,
                    max_new_tokens=max_new,
                )
            texts.extend(
                t.strip() for t in self.processor.batch_decode(ids, skip_special_tokens=True)
            )
        return texts


# --------------------------------------------------------------------------- tiny models

TINY_SPEC: dict[str, Any] = {
    "d_model": 32,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "encoder_attention_heads": 2,
    "decoder_attention_heads": 2,
    "encoder_ffn_dim": 64,
    "decoder_ffn_dim": 64,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 64,
}
_SPECIALS = (
    "<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|translate|>",
    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>",
)  # fmt: skip


def tiny_whisper_dir(root: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised Whisper with a byte-level tokenizer, saved for tests.

    Same architecture and files as a real checkpoint (``config.json``, weights,
    ``generation_config.json``, feature extractor and tokenizer files), so it loads through
    :class:`WhisperRecognizer` exactly as ``openai/whisper-small`` does. Built once per
    specification under ``root/tiny-whisper-<hash>``.
    """
    spec = {"family": "whisper", "seed": seed, "config": TINY_SPEC, "specials": list(_SPECIALS)}

    def save(folder: Path) -> None:
        from transformers import (
            GenerationConfig,
            WhisperConfig,
            WhisperFeatureExtractor,
            WhisperForConditionalGeneration,
            WhisperProcessor,
            WhisperTokenizer,
        )

        from tokenizers import pre_tokenizers

        alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
        tokenizer = WhisperTokenizer(vocab={c: i for i, c in enumerate(alphabet)}, merges=[])
        tokenizer.add_special_tokens({"additional_special_tokens": list(_SPECIALS[1:])})
        ids = {s: tokenizer.convert_tokens_to_ids(s) for s in _SPECIALS}
        end, start = ids["<|endoftext|>"], ids["<|startoftranscript|>"]
        special = {"pad_token_id": end, "bos_token_id": end, "eos_token_id": end}
        config = WhisperConfig(
            vocab_size=len(tokenizer), decoder_start_token_id=start, **special, **TINY_SPEC
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = WhisperForConditionalGeneration(config).eval()
        model.generation_config = GenerationConfig(
            decoder_start_token_id=start,
            is_multilingual=True,
            lang_to_id={"<|en|>": ids["<|en|>"]},
            task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
            no_timestamps_token_id=ids["<|notimestamps|>"],
            max_length=TINY_SPEC["max_target_positions"],
            begin_suppress_tokens=[],
            suppress_tokens=[],
            **special,
        )
        model.save_pretrained(folder)
        feature_extractor = WhisperFeatureExtractor(feature_size=TINY_SPEC["num_mel_bins"])
        WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(
            folder
        )

    return hf_weights.tiny_model_dir(root, "tiny-whisper", spec, save)
