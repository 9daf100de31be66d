"""The classification heads: speechbrain's ECAPA-TDNN beside the BiLSTM, on a tiny example."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmark.api import TaskRun, TokenizerInfo
from benchmark.cache import TokenSplit
from benchmark.data.manifest import Utterance, read_manifest, write_manifest
from benchmark.errors import DataError
from benchmark.models.utterance_encoders import ECAPAPooling, build_utterance_encoder
from benchmark.tasks.classification import ClassificationHead, UtteranceClassificationTask
from benchmark.tasks.training import Batch, Example, batches

INFO = TokenizerInfo("tiny", 16000, 50.0, codebook_sizes=(6, 6))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run faster on one thread, and stay sane on a loaded machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _examples(count: int, seed: int) -> list[Example]:
    """Class 0 utterances use ids 0-2 of codebook 0, class 1 ids 3-5; codebook 1 is noise."""
    generator = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(count):
        target = i % 2
        frames = 12 + int(torch.randint(0, 10, (1,), generator=generator))
        informative = torch.randint(0, 3, (frames,), generator=generator) + 3 * target
        noise = torch.randint(0, 6, (frames,), generator=generator)
        examples.append(Example(f"u{i}", torch.stack([informative, noise], dim=1), target))
    return examples


def _loss(model: ClassificationHead, batch: Batch) -> torch.Tensor:
    logits, _ = model(batch)
    return torch.nn.functional.cross_entropy(logits, torch.tensor(batch.targets))


@pytest.mark.parametrize("head", ["ecapa", "bilstm"])
def test_head_trains_loss_goes_down(head):
    torch.manual_seed(0)
    ecapa = {"channels": 16, "embedding": 8, "attention": 8}
    model = ClassificationHead(INFO, 2, 16, 8, "attention", head=head, ecapa=ecapa)
    train_set = _examples(32, seed=0)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    data = batches(train_set, 8, False, torch.Generator())
    model.eval()
    with torch.no_grad():
        before = sum(_loss(model, b).item() for b in data) / len(data)
    model.train()
    for _ in range(10):
        for batch in data:
            loss = _loss(model, batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        after = sum(_loss(model, b).item() for b in data) / len(data)
        test = batches(_examples(16, seed=1), 16, False, torch.Generator())[0]
        accuracy = (model(test)[0].argmax(-1) == torch.tensor(test.targets)).float().mean()
    assert after < 0.5 * before, (before, after)
    assert accuracy.item() >= 0.9
    if head == "ecapa":
        assert isinstance(model.encoder, ECAPAPooling) and model.encoder.out_dim == 8


def test_ecapa_ignores_padded_frames():
    torch.manual_seed(0)
    encoder = ECAPAPooling(4, channels=16, embedding=6, attention_channels=8, se_channels=8)
    encoder.eval()
    frames = torch.randn(1, 20, 4)
    mask = torch.ones(1, 20, dtype=torch.bool)
    mask[0, 14:] = False
    garbage = frames.clone()
    garbage[0, 14:] = 100.0
    with torch.no_grad():
        a, b = encoder(frames, mask), encoder(garbage, mask)
    assert a.shape == (1, 6) and torch.allclose(a, b)


def test_head_parameters_are_checked():
    with pytest.raises(ValueError, match="head must be one of"):
        UtteranceClassificationTask("emotion", "mini", "style", head="xvector")
    with pytest.raises(ValueError, match="ecapa_channels must be a multiple of 8"):
        UtteranceClassificationTask("emotion", "mini", "style", head="ecapa", ecapa_channels=12)
    with pytest.raises(ValueError, match="ecapa_embedding must be a positive integer"):
        UtteranceClassificationTask("emotion", "mini", "style", ecapa_embedding=0)
    with pytest.raises(ValueError, match="head must be one of"):
        build_utterance_encoder("lstm", 8)


def _token_split(tmp_path, name: str, labels: list[str], seed: int) -> TokenSplit:
    """A cached-token split: class "b" utterances use ids 3-5 of codebook 0, "a" ids 0-2."""
    lines = [
        Utterance(f"{name}{i}", f"{name}{i}.wav", 0.3, 16000, label=label)
        for i, label in enumerate(labels)
    ]
    path = tmp_path / f"{name}.jsonl"
    write_manifest(path, lines)
    manifest = read_manifest(path)
    generator = np.random.default_rng(seed)
    frames = 16
    data = np.stack(
        [
            np.concatenate(
                [generator.integers(0, 3, frames) + 3 * (u.label == "b") for u in lines]
            ),
            generator.integers(0, 6, frames * len(lines)),
        ],
        axis=1,
    ).astype(np.int64)
    n = len(lines)
    return TokenSplit(
        manifest=manifest, ids=[u.id for u in manifest], offsets=np.arange(n) * frames,
        lengths=np.full(n, frames), data=data, codebook_sizes=(6, 6), path=tmp_path,
    )  # fmt: skip


def test_the_task_trains_an_ecapa_head_and_refuses_unseen_labels(tmp_path):
    splits = {
        name: _token_split(tmp_path, name, ["a", "b"] * count, seed)
        for seed, (name, count) in enumerate((("train", 12), ("valid", 4), ("test", 6)))
    }
    task = UtteranceClassificationTask(
        "emotion", "mini", "style", head="ecapa", dim=16, epochs=8, batch_size=8, lr=0.003,
        ecapa_channels=16, ecapa_embedding=8, ecapa_attention=8,
    )  # fmt: skip
    run = TaskRun(
        tokenizer_info=INFO, splits=splits, context=None, seed=0, device="cpu",
        out_dir=tmp_path, progress=False,
    )  # fmt: skip
    output = task.run(run)
    assert output.extras["head"] == "ecapa" and output.extras["classes"] == ["a", "b"]
    assert output.metrics["accuracy"].value >= 75.0  # chance: 50
    assert output.baselines["chance"]["accuracy"].value == 50.0
    splits["test"] = _token_split(tmp_path, "test", ["a", "b", "surprised"], 3)
    with pytest.raises(DataError, match="test2: label 'surprised' never seen in training"):
        task.run(run)
