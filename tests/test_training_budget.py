"""Budgets are counted in epochs; ``max_seconds`` is a safety stop that fails the job."""

from __future__ import annotations

import time

import pytest
import torch
from torch import nn

from benchmark.tasks.training import Example, TrainConfig, TrainingTimeoutError, train


class _Slow(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, batch):
        time.sleep(0.02)
        return self.linear(batch.tokens.float().mean(dim=(1, 2)).unsqueeze(-1))


def _examples(n: int = 8) -> list[Example]:
    return [Example(f"u{i}", torch.full((3, 1), i, dtype=torch.int64), float(i)) for i in range(n)]


def _loss(net, batch):
    return ((net(batch).squeeze(-1) - torch.tensor(batch.targets)) ** 2).mean()


def test_the_same_budget_runs_the_same_epochs_whatever_the_clock():
    config = TrainConfig(epochs=3, batch_size=4, lr=1e-2)
    result = train(_Slow(), _loss, lambda net: 0.0, _examples(), config, progress=False)
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert all(h["steps"] == 2 for h in result.history)
    assert "valid_error_percent" in result.history[0]


def test_the_safety_stop_fails_instead_of_recording_a_shorter_training():
    config = TrainConfig(epochs=50, batch_size=1, lr=1e-2, max_seconds=0.05)
    with pytest.raises(TrainingTimeoutError, match="safety stop of 0 s.*budget is 50 epochs"):
        train(_Slow(), _loss, lambda net: 0.0, _examples(), config, progress=False)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"batch_size": 0}, {"epochs": "ten"}, {"lr": 0}])
def test_non_positive_budgets_are_refused(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        TrainConfig(**bad)
