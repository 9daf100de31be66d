"""The mini emotion stand-in's plan: every speaker reads every style, prosody ranges overlap.

These read the corpus plan (every random decision, no audio), so they take a second.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from benchmark.data.mini import STYLES, MiniConfig, _Plan


def _style_jobs(config: MiniConfig):
    plan = _Plan(config).build()
    jobs = {job.rel: job for job in plan.jobs}
    return [(item, jobs[item.rel]) for item in plan.items if item.subset == "style"]


def test_every_speaker_reads_every_style_and_the_test_is_large():
    rows = _style_jobs(MiniConfig())
    by_speaker = defaultdict(set)
    splits: Counter = Counter()
    for item, _ in rows:
        by_speaker[item.utterance.speaker].add(item.utterance.label)
        splits[item.split] += 1
    assert len(by_speaker) == 20 and all(styles == set(STYLES) for styles in by_speaker.values())
    # 2 unseen test speakers x 4 styles x 20 (was 40 utterances in MINI_VERSION 2)
    assert splits == {"train": 320, "valid": 160, "test": 160}
    test = Counter(item.utterance.label for item, _ in rows if item.split == "test")
    assert set(test.values()) == {40}


def test_style_prosody_ranges_overlap():
    """Loudness, pitch and pitch range never separate two styles; speaking rate separates
    only the two extremes (low_sad, fast_urgent), every other pair overlaps in it too."""
    cues = defaultdict(lambda: defaultdict(list))
    for item, job in _style_jobs(MiniConfig()):
        # absolute values across speakers, as a listener of an unseen speaker hears them
        style = cues[item.utterance.label]
        style["amplitude"].append(job.amplitude)
        style["range"].append(job.pitch_range)
        style["rate"].append(job.rate)
        style["pitch"].append(job.pitch)
    names = list(STYLES)
    separated = set()
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            for cue in ("amplitude", "rate", "pitch"):
                low = max(min(cues[a][cue]), min(cues[b][cue]))
                high = min(max(cues[a][cue]), max(cues[b][cue]))
                if low >= high:
                    separated.add((a, b, cue))
            assert set(cues[a]["range"]) & set(cues[b]["range"]), (a, b)
    assert separated == {("low_sad", "fast_urgent", "rate")}
    # the means still differ in the expected direction (the styles carry information)
    mean = {s: {c: sum(v) / len(v) for c, v in cues[s].items() if c != "range"} for s in names}
    assert mean["low_sad"]["rate"] < mean["neutral"]["rate"] < mean["fast_urgent"]["rate"]
    assert mean["low_sad"]["amplitude"] < mean["neutral"]["amplitude"]
    assert mean["neutral"]["amplitude"] < mean["high_excited"]["amplitude"]
    assert mean["low_sad"]["pitch"] < mean["neutral"]["pitch"] < mean["high_excited"]["pitch"]


def test_other_subsets_keep_their_plain_prosody():
    plan = _Plan(MiniConfig(scale=0.05)).build()
    jobs = {job.rel: job for job in plan.jobs}
    for item in plan.items:
        if item.subset in ("asr", "speaker", "tts", "ood"):
            job = jobs[item.rel]
            assert job.amplitude == 100 and job.pitch_range is None
