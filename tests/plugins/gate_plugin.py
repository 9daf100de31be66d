"""Broken tokenizers that ``run`` must refuse at the conformance gate (tests)."""

import dataclasses

import torch

from benchmark.plugins import register_tokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer


class DeclaresDoubleRate(MelBandTokenizer):
    """Declares 100 frames/s, emits 50: would report twice its true bitrate."""

    def __init__(self, name: str = "double-rate") -> None:
        super().__init__(name=name)
        self.info = dataclasses.replace(self.info, frame_rate=100.0)


class Jitter(MelBandTokenizer):
    """Adds unseeded random jitter to its ids."""

    def encode(self, wav, lengths):
        tokens, token_lengths = super().encode(wav, lengths)
        return (tokens + torch.randint(0, 2, tokens.shape)).clamp(0, self.levels - 1), token_lengths


class FloatIds(MelBandTokenizer):
    """Returns float ids."""

    def encode(self, wav, lengths):
        tokens, token_lengths = super().encode(wav, lengths)
        return tokens.float() + 0.5, token_lengths


register_tokenizer("double-rate", DeclaresDoubleRate)
register_tokenizer("jitter", Jitter, params={"name": "jitter"})
register_tokenizer("float-ids", FloatIds, params={"name": "float-ids"})
