"""Downstream building blocks: embeddings, layer fusion, the padding-exact BiLSTM, CTC helpers."""

from __future__ import annotations

import pytest
import torch

from benchmark.api import TokenizerInfo
from benchmark.errors import ContractError
from benchmark.models.bilstm import MaskedBiLSTM, reverse_within_lengths
from benchmark.models.embeddings import MultiCodebookEmbedding
from benchmark.models.frontend import FeatureFrontEnd, TokenFrontEnd, build_frontend
from benchmark.models.fusion import LayerFusion, LayerWeightMeter
from benchmark.tasks.asr import CharacterVocabulary


def test_embedding_offsets_do_not_mutate_and_padding_is_never_a_token():
    embedding = MultiCodebookEmbedding([4, 3], dim=8)
    tokens = torch.tensor([[[3, 2], [0, 0]]])
    before = tokens.clone()
    mask = torch.tensor([[True, False]])
    out = embedding(tokens, mask)
    assert torch.equal(tokens, before)
    assert out.shape == (1, 2, 2, 8)
    table = embedding.table.weight
    # codebook 1 id 2 lives after codebook 0's 4 ids + its padding row
    assert torch.equal(out[0, 0, 1], table[4 + 1 + 2])
    # padded frame uses each codebook's own padding row (ids 4 and 4+1+3)
    assert torch.equal(out[0, 1, 0], table[4]) and torch.equal(out[0, 1, 1], table[8])
    real_rows = {0, 1, 2, 3, 5, 6, 7}
    assert {4, 8}.isdisjoint(real_rows)


def test_embedding_init_from_codebook_vectors():
    init = torch.randn(2, 5, 3)
    embedding = MultiCodebookEmbedding([5, 5], dim=3, init=init)
    rows = embedding.table.weight[:5]
    normalised = (init[0] - init[0].mean(0)) / (init[0].std(0) + 1e-5)
    assert torch.allclose(rows, normalised * 3**-0.5, atol=1e-5)
    with pytest.raises(ValueError, match="does not match"):
        MultiCodebookEmbedding([5, 4], dim=3, init=init)


@pytest.mark.parametrize("mode", ["attention", "average", "single", "concat"])
def test_fusion_shapes_and_weights(mode):
    fusion = LayerFusion(3, 8, mode=mode, layer=2)
    x = torch.randn(2, 5, 3, 8)
    fused, weights = fusion(x)
    assert fused.shape == (2, 5, 8)
    if mode == "concat":
        assert weights is None
        return
    assert torch.allclose(weights.sum(-1), torch.ones(2, 5))
    if mode == "single":
        assert torch.equal(fused, x[:, :, 2])
    if mode == "attention":
        assert torch.allclose(fused, (weights.unsqueeze(-1) * x).sum(2), atol=1e-6)


def test_attention_fusion_learns_to_pick_the_informative_layer():
    torch.manual_seed(0)
    fusion = LayerFusion(3, 4, mode="attention")
    head = torch.nn.Linear(4, 1)
    optimiser = torch.optim.Adam([*fusion.parameters(), *head.parameters()], lr=0.05)
    for _ in range(300):
        x = torch.randn(64, 1, 3, 4)
        x[:, :, 1, 3] = 2.0  # layer 1 is recognisable and carries the target; others are noise
        target = x[:, 0, 1, 0:1]
        fused, _ = fusion(x)
        loss = ((head(fused[:, 0]) - target) ** 2).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    probe = torch.randn(256, 1, 3, 4)
    probe[:, :, 1, 3] = 2.0
    _, weights = fusion(probe)
    assert weights.mean((0, 1))[1].item() > 0.8


@pytest.mark.parametrize("sizes", [(300, 500), (7,) * 12])  # more table rows / more tokens
def test_row_scored_attention_equals_scoring_every_token(sizes):
    # the front end scores table rows once when that is cheaper: same output, weights, gradients
    torch.manual_seed(0)
    front = TokenFrontEnd(sizes, dim=16)
    tokens = torch.stack([torch.randint(0, c, (4, 9)) for c in sizes], dim=-1)
    mask = torch.arange(9)[None, :] < torch.tensor([9, 5, 2, 7])[:, None]
    fused, weights = front(tokens, mask)
    rows_scored = tokens.numel() > front.embedding.table.num_embeddings
    assert rows_scored == (len(sizes) == 12)
    grads = torch.autograd.grad(fused.square().sum(), list(front.parameters()))
    embedded = front.embedding(tokens, mask)
    direct, direct_weights = front.fusion(embedded)  # the scorer on every token
    direct_grads = torch.autograd.grad(direct.square().sum(), list(front.parameters()))
    assert torch.allclose(fused, direct, atol=1e-6)
    assert torch.allclose(weights, direct_weights, atol=1e-6)
    for got, want in zip(grads, direct_grads, strict=True):
        assert torch.allclose(got, want, atol=1e-5)


def test_layer_weight_meter_averages_valid_frames_only():
    meter = LayerWeightMeter()
    assert meter.mean() is None
    meter.add(torch.tensor([[[0.2, 0.8], [1.0, 0.0]]]), torch.tensor([[True, False]]))
    meter.add(torch.tensor([[[0.6, 0.4]]]), torch.tensor([[True]]))
    meter.add(None, torch.tensor([[True]]))  # a fusion without weights adds nothing
    assert meter.mean() == pytest.approx([0.4, 0.6])


def test_reverse_within_lengths_keeps_padding_in_place():
    x = torch.arange(8.0).reshape(2, 4, 1)
    out = reverse_within_lengths(x, torch.tensor([4, 2]))
    assert out[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_masked_bilstm_equals_packed_bidirectional_lstm():
    torch.manual_seed(0)
    ours = MaskedBiLSTM(6, 5, num_layers=1)
    reference = torch.nn.LSTM(6, 5, bidirectional=True, batch_first=True)
    with torch.no_grad():
        for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(ours.forward_layers[0], name).copy_(getattr(reference, name))
            getattr(ours.backward_layers[0], name).copy_(getattr(reference, name + "_reverse"))
    x = torch.randn(3, 7, 6)
    lengths = torch.tensor([7, 4, 1])
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        x, lengths, batch_first=True, enforce_sorted=False
    )
    expected, _ = reference(packed)
    expected, _ = torch.nn.utils.rnn.pad_packed_sequence(expected, batch_first=True, total_length=7)
    assert torch.allclose(ours(x, lengths), expected, atol=1e-6)


def test_masked_bilstm_outputs_do_not_depend_on_padding_content():
    torch.manual_seed(0)
    model = MaskedBiLSTM(4, 3, num_layers=2)
    x = torch.randn(1, 6, 4)
    y = x.clone()
    y[:, 3:] = 100.0
    lengths = torch.tensor([3])
    assert torch.allclose(model(x, lengths)[:, :3], model(y, lengths)[:, :3], atol=1e-6)


def test_frontend_factory_picks_features_or_tokens():
    tokens_info = TokenizerInfo("t", 16000, 50.0, codebook_sizes=(4, 4))
    features_info = TokenizerInfo("f", 16000, 50.0, layers=(0, 1), feature_dim=6)
    assert isinstance(build_frontend(tokens_info, 8), TokenFrontEnd)
    frontend = build_frontend(features_info, 8)
    assert isinstance(frontend, FeatureFrontEnd)
    fused, weights = frontend(torch.randn(2, 3, 2, 6), torch.ones(2, 3, dtype=torch.bool))
    assert fused.shape == (2, 3, 8) and weights.shape == (2, 3, 2)


def test_character_vocabulary_and_greedy_ctc_decoding():
    vocabulary = CharacterVocabulary(["the cat", "a dog!"])
    assert vocabulary.chars == [" ", "a", "c", "d", "e", "g", "h", "o", "t"]
    ids = vocabulary.encode("Tag")
    assert ids == [9, 2, 6]
    blank = 0
    path = [blank, 9, 9, blank, 2, 2, 2, blank, 6, blank]
    assert vocabulary.greedy_decode(path) == "tag"
    assert vocabulary.greedy_decode([9, blank, 9]) == "tt"


def test_out_of_range_ids_are_refused_where_tokens_enter_a_head():
    embedding = MultiCodebookEmbedding([4, 3], dim=8)
    mask = torch.tensor([[True, True, False]])
    tokens = torch.tensor([[[3, 2], [0, 1], [9, 9]]])  # the padded frame may hold anything
    embedding(tokens, mask)
    for (frame, k, value), shown in (((1, 1, 3), "[0, 3)"), ((0, 0, 5), "[0, 4)")):
        bad = tokens.clone()
        bad[0, frame, k] = value  # C_k would read the padding row, C_k + 1 the next codebook
        with pytest.raises(ContractError, match=rf"codebook {k} holds token id {value}, ") as exc:
            embedding(bad, mask)
        assert shown in str(exc.value) and "\n" not in str(exc.value)
    negative = tokens.clone()
    negative[0, 0, 1] = -1
    with pytest.raises(ContractError, match="codebook 1 holds token id -1"):
        embedding(negative, mask)
    with pytest.raises(ContractError, match="codebook 0 holds token id 9"):
        embedding(tokens)  # without a mask every frame counts
    frontend = TokenFrontEnd([4, 3], dim=8, fusion="average")
    with pytest.raises(ContractError, match="codebook 1 holds token id 3"):
        frontend(torch.tensor([[[0, 3]]]), torch.tensor([[True]]))
    # the vocoder's absent id C_k is accepted only when asked for
    absent = torch.tensor([[[4, 3]]])
    assert embedding(absent, absent_ok=True).shape == (1, 1, 2, 8)
    with pytest.raises(ContractError, match=r"codebook 0 holds token id 5, outside .*\[0, 4\]"):
        embedding(absent + torch.tensor([1, 0]), absent_ok=True)


def test_frame_stacking_groups_frames_and_keeps_padding_out():
    from benchmark.metadata import TokenizerInfo
    from benchmark.tasks.asr import CTCHead, stack_frames
    from benchmark.tasks.training import Batch

    frames = torch.arange(2 * 5 * 3, dtype=torch.float32).reshape(2, 5, 3)
    stacked, lengths = stack_frames(frames, torch.tensor([5, 2]), 2)
    assert stacked.shape == (2, 3, 6) and lengths.tolist() == [3, 1]
    assert torch.equal(stacked[0, 1], torch.cat([frames[0, 2], frames[0, 3]]))
    assert torch.equal(stacked[0, 2, 3:], torch.zeros(3))  # the partial group is padded
    info = TokenizerInfo(name="t", sample_rate=16000, frame_rate=50.0, codebook_sizes=(8, 8))
    torch.manual_seed(0)
    head = CTCHead(info, 6, 8, 8, 2, "attention", frame_stack=2).eval()
    tokens = torch.randint(0, 8, (2, 7, 2))

    def batch(tokens, lengths):
        mask = torch.arange(tokens.shape[1])[None] < lengths[:, None]
        return Batch(["a", "b"][: len(tokens)], tokens, mask, lengths, [None] * len(tokens))

    log_probs, out_lengths, _ = head(batch(tokens, torch.tensor([7, 3])))
    assert log_probs.shape == (2, 4, 6) and out_lengths.tolist() == [4, 2]
    alone, _, _ = head(batch(tokens[1:, :3], torch.tensor([3])))  # no padding at all
    assert torch.allclose(log_probs[1, :2], alone[0], atol=1e-6)
    with pytest.raises(ValueError, match="frame_stack"):
        CTCHead(info, 6, 8, 8, 2, "attention", frame_stack=0)
