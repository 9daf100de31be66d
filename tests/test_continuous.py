"""Continuous references: unquantised features through the same heads (no bitrate)."""

from __future__ import annotations

import pytest
import torch

from benchmark.api import BuildContext
from benchmark.conformance import synthetic_batch
from benchmark.models.ssl_features import full_hidden_states
from benchmark.tokenizers.continuous import LogMelReference, SSLHiddenStates
from benchmark.tokenizers.dummy import MelBandTokenizer


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_logmel_reference_is_the_dummy_analysis_unquantised():
    reference = LogMelReference(n_mels=8)
    dummy = MelBandTokenizer(n_bands=8, levels=32)
    wav, lengths = synthetic_batch(16000, seed=3)
    features, frames = reference.encode(wav, lengths)
    tokens, token_frames = dummy.encode(wav, lengths)
    assert features.shape == (3, int(frames.max()), 1, 8)
    assert torch.equal(frames, token_frames)
    assert reference.info.is_continuous and reference.info.bitrate is None
    assert reference.info.tier == "continuous"
    # quantising the reference's features gives the dummy's ids
    db = features[:, :, 0] * (dummy.max_db - dummy.min_db) + dummy.min_db
    valid = torch.arange(tokens.shape[1])[None] < frames[:, None]
    assert torch.equal(dummy.quantize(db)[valid], tokens[valid])


def test_ssl_hidden_states_are_the_models_layers(tmp_path):
    reference = SSLHiddenStates(
        layers=(3, 7), tiny_model=True, context=BuildContext(workdir=tmp_path)
    )
    info = reference.info
    assert info.layers == (3, 7) and info.feature_dim == reference.extractor.info.hidden_size
    assert info.frame_rate == 50.0 and info.bitrate is None
    wav = torch.randn(1, 16000) * 0.1
    features, frames = reference.encode(wav, torch.tensor([16000]))
    assert features.shape == (1, int(frames[0]), 2, info.feature_dim)
    x, _ = reference.extractor.prepare(wav, torch.tensor([16000]))
    hidden = full_hidden_states(reference.extractor.model, x)
    assert torch.allclose(features[0, :, 0], hidden[3][0], atol=1e-5)
    assert torch.allclose(features[0, :, 1], hidden[7][0], atol=1e-5)
