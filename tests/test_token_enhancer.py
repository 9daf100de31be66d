"""The token enhancer learns a token mapping, masks padding, and pairs twins by length."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.api import TokenizerInfo
from benchmark.errors import DataError
from benchmark.models.token_enhancer import (
    EnhancerConfig,
    TokenEnhancer,
    batch_loss,
    pair_examples,
    pair_tokens,
    predict,
    token_accuracy,
    train_enhancer,
)
from benchmark.tasks.training import TrainConfig, collate

INFO = TokenizerInfo(name="toy", sample_rate=16000, frame_rate=50.0, codebook_sizes=(16, 12))
SMALL = EnhancerConfig(dim=64, layers=2, heads=2, ff=128, dropout=0.0, max_frames=128)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


def _pairs(count: int, seed: int) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """Random noisy tokens and clean = a fixed permutation of each codebook's ids."""
    rng = np.random.default_rng(seed)
    permutations = [np.random.default_rng(100 + k).permutation(c) for k, c in enumerate((16, 12))]
    out = []
    for i in range(count):
        n = int(rng.integers(10, 30))
        noisy = np.stack([rng.integers(0, c, n) for c in (16, 12)], axis=1)
        clean = np.stack([permutations[k][noisy[:, k]] for k in range(2)], axis=1)
        out.append((f"u{seed}-{i}", noisy, clean))
    return out


def test_loss_falls_and_accuracy_rises_far_above_chance():
    torch.manual_seed(0)
    model = TokenEnhancer(INFO, SMALL)
    train_set, valid_set = pair_examples(_pairs(64, 0)), pair_examples(_pairs(16, 1))
    before = token_accuracy(model, valid_set)
    result = train_enhancer(
        model, train_set, valid_set, TrainConfig(epochs=12, batch_size=8, lr=3e-3)
    )
    after = token_accuracy(model, valid_set)
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < 0.5 * losses[0]
    chance = (1 / 16 + 1 / 12) / 2
    assert before < 3 * chance and after > 0.9, (before, after)
    tokens = predict(model, valid_set)
    example = valid_set[0]
    assert tokens[example.id].shape == tuple(example.tokens.shape)
    assert tokens[example.id].dtype == np.int64


def test_padding_does_not_change_the_loss():
    torch.manual_seed(0)
    model = TokenEnhancer(INFO, SMALL).eval()
    examples = pair_examples(_pairs(3, 2))
    batch = collate(examples)
    other = collate(examples)
    other.tokens[~other.mask] = 5  # different ids on padded frames only
    assert torch.allclose(batch_loss(model, batch), batch_loss(model, other), atol=1e-6)


def test_pairs_are_cropped_to_the_shorter_and_non_twins_refused():
    noisy, clean = np.zeros((11, 2), np.int64), np.ones((10, 2), np.int64)
    a, b = pair_tokens(noisy, clean, "x")
    assert a.shape == b.shape == (10, 2)
    with pytest.raises(DataError, match="equally long"):
        pair_tokens(np.zeros((14, 2)), clean, "x")
    with pytest.raises(DataError, match="same K"):
        pair_tokens(np.zeros((10, 3)), clean, "x")


def test_continuous_references_are_refused():
    info = TokenizerInfo(name="mel", sample_rate=16000, frame_rate=50.0, layers=(0,), feature_dim=8)
    with pytest.raises(ValueError, match="continuous"):
        TokenEnhancer(info, SMALL)
