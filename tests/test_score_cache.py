"""The score cache: reference audio is judged once, by content; anything that changes a
score (audio bytes, the metric's key) is judged again."""

from __future__ import annotations

import numpy as np
import torch

from benchmark.data.audio import save_wav
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip, evaluate_metric
from benchmark.pipeline.keys import AudioIdentityCache
from benchmark.pipeline.score_cache import ScoreCache

SR = 16000


class CountingRMS(AudioMetric):
    """Root mean square of the audio; counts the items it judged; skips silence."""

    name, direction = "counting_rms", "higher"

    def __init__(self) -> None:
        self.judged: list[str] = []

    def judge(self):
        return {"name": "rms", "version": 1}

    def _score(self, items):
        out = []
        for item in items:
            self.judged.append(item.id)
            data = np.fromfile(item.audio, dtype=np.int16, offset=44).astype(float)
            rms = float(np.sqrt(np.mean(data**2))) if data.size else 0.0
            out.append(Skip("silence") if rms == 0 else rms)
        return out


def _wav(path, level: float):
    save_wav(path, torch.full((SR // 2,), level), SR)
    return path


SPEC = {"name": "counting_rms", "args": {"mini_judge": "/somewhere"}, "code": "abc"}


def test_reference_audio_is_judged_once_by_content_and_again_when_it_changes(tmp_path):
    items = [AudioItem("a", _wav(tmp_path / "a.wav", 0.1)),
             AudioItem("b", _wav(tmp_path / "b.wav", 0.0))]  # fmt: skip
    metric = CountingRMS()
    ids = AudioIdentityCache(tmp_path / "ids.json")
    key = ScoreCache.metric_key(metric, SPEC, None)
    cache = ScoreCache(tmp_path / "scores", ids, key)
    first, _ = evaluate_metric(metric, items, cache.scorer(metric))
    plain, _ = evaluate_metric(CountingRMS(), items)
    assert first.to_dict() == plain.to_dict() and first.skipped == 1
    assert metric.judged == ["a", "b"]
    # a second step (another tokenizer's record), with the same files copied elsewhere
    moved = [AudioItem(i.id, tmp_path / f"copy-{i.id}.wav") for i in items]
    for old, new in zip(items, moved, strict=True):
        new.audio.write_bytes(old.audio.read_bytes())
    again = ScoreCache(tmp_path / "scores", AudioIdentityCache(tmp_path / "ids.json"), key)
    second, _ = evaluate_metric(metric, moved, again.scorer(metric))
    assert metric.judged == ["a", "b"] and (again.hits, again.misses) == (2, 0)
    assert second.to_dict() == first.to_dict()  # the skip and its reason are kept too
    _wav(moved[0].audio, 0.3)  # other bytes at the same path: judged again
    third, _ = evaluate_metric(metric, moved, again.scorer(metric))
    assert metric.judged == ["a", "b", "a"] and third.value > first.value


def test_the_metric_key_covers_code_arguments_judge_and_judge_step_but_not_the_judge_path(
    monkeypatch,
):
    metric = CountingRMS()
    base = ScoreCache.metric_key(metric, SPEC, "judge-key-1")
    moved = ScoreCache.metric_key(metric, {**SPEC, "args": {"mini_judge": "/elsewhere"}},
                                  "judge-key-1")  # fmt: skip
    assert moved == base
    assert ScoreCache.metric_key(metric, {**SPEC, "code": "abd"}, "judge-key-1") != base
    assert ScoreCache.metric_key(metric, {**SPEC, "args": {"weights": "x"}}, "judge-key-1") != base
    assert ScoreCache.metric_key(metric, SPEC, "judge-key-2") != base

    class OtherVersion(CountingRMS):
        def judge(self):
            return {"name": "rms", "version": 2}

    assert ScoreCache.metric_key(OtherVersion(), SPEC, "judge-key-1") != base
    monkeypatch.setattr("benchmark.pipeline.score_cache.library_versions",
                        lambda: {"onnxruntime": "9.9.9"})  # fmt: skip
    assert ScoreCache.metric_key(metric, SPEC, "judge-key-1") != base


def test_two_steps_scoring_the_same_unseen_items_at_once_judge_each_once(tmp_path):
    """The mini resynthesis record's audio is the enhancement record's ceiling row, and the
    two jobs can run side by side (--jobs 2): each item is judged under its own lock, so
    the two share the work instead of doing it twice, and both get every score."""
    import threading
    import time

    class SlowRMS(CountingRMS):
        def _score(self, items):
            time.sleep(0.05)
            return super()._score(items)

    items = [AudioItem(f"u{i}", _wav(tmp_path / f"u{i}.wav", 0.1 * (i + 1))) for i in range(8)]
    metrics = [SlowRMS(), SlowRMS()]
    key = ScoreCache.metric_key(metrics[0], SPEC, None)
    results: dict[int, list] = {}

    def score(n: int) -> None:
        cache = ScoreCache(tmp_path / "scores", AudioIdentityCache(tmp_path / f"ids{n}.json"), key)
        results[n] = cache.score_with_reasons(metrics[n], items)[0]

    threads = [threading.Thread(target=score, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    judged = metrics[0].judged + metrics[1].judged
    assert sorted(judged) == sorted(i.id for i in items)  # each item judged exactly once
    assert metrics[0].judged and metrics[1].judged  # and the work was shared
    assert results[0] == results[1] == CountingRMS().score_with_reasons(items)[0]
