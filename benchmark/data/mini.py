"""The synthetic ``mini`` corpus: espeak-ng speech for every task, built offline in a minute.

``prepare_mini(root)`` synthesises six subsets into ``root/mini-v{MINI_VERSION}-{hash}``:

- ``asr``: seeded English sentences (:mod:`benchmark.data.mini_text`) read by synthetic
  speakers (espeak voice x variant x pitch x rate); splits are speaker-disjoint.
- ``speaker``: closed-set speaker identification, the same speakers in every split.
- ``style``: four prosodic speaking styles (label; the mini stand-in of emotion recognition),
  read by every speaker, speaker-disjoint splits, balanced; the styles' prosody ranges
  overlap (jittered per utterance), so no single cue separates them.
- ``enhance``: noisy/clean pairs at SNRs drawn from 0..15 dB (white, pink, hum, babble).
- ``tts``: one fixed voice reading text.
- ``ood``: other sentence structures and other voices, ``train`` only (for k-means fitting).

Every file is 16 kHz mono 16-bit WAV; each subset holds ``train/valid/test.jsonl``
manifests (:mod:`benchmark.data.manifest`) with paths relative to the subset folder.
The same config gives byte-identical files (all randomness is drawn up front from named
``numpy.random.default_rng`` streams; synthesis jobs are pure functions of their
arguments). The build goes to a temp sibling folder renamed into place at the end, after
a ``COMPLETE`` marker holding the config, so an interrupted build never looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmark.data.espeak import SynthJob, espeak_version, run_parallel, synthesize_job
from benchmark.data.manifest import Manifest, Utterance, read_manifest, write_manifest
from benchmark.data.mini_text import generate_sentences
from benchmark.data.noise import NOISE_KINDS, MixJob, mix_job
from benchmark.errors import DataError, MissingDependencyError
from benchmark.pipeline.store import atomic_folder, output_lock, remove_stale_temps

logger = logging.getLogger(__name__)

MINI_VERSION = "3"
SUBSETS: tuple[str, ...] = ("asr", "speaker", "style", "enhance", "tts", "ood")
SPLITS: tuple[str, ...] = ("train", "valid", "test")
MARKER = "COMPLETE"

# espeak-ng accents (gmw voices) and voice variants (espeak-ng-data/voices/!v)
ACCENTS: tuple[str, ...] = (
    "en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd",
    "en-029", "en-us-nyc",
)  # fmt: skip
MAIN_VARIANTS: tuple[str, ...] = (
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5", "klatt",
    "klatt2", "klatt3", "adam", "anika", "david", "edward", "john", "linda", "max", "paul",
    "steph",
)  # fmt: skip
OOD_VARIANTS: tuple[str, ...] = (
    "m8", "klatt4", "klatt5", "klatt6", "Alex", "Andy", "Annie", "Lee", "Mike", "michel",
    "rob", "victor", "belinda", "benjamin", "boris",
)  # fmt: skip
# style -> mean prosody: (pitch offset, rate factor, amplitude 0..200) and the weights of
# the SSML pitch ranges PITCH_RANGES drawn per utterance. The means sit close together and
# every utterance is jittered (STYLE_JITTER), so the styles' prosody ranges overlap, as
# emotions do in speech: no single cue (loudness, rate, pitch) separates them on its own.
PITCH_RANGES: tuple[str, ...] = ("x-low", "low", "medium", "high", "x-high")
STYLES: dict[str, tuple[int, float, int, tuple[float, ...]]] = {
    "neutral": (0, 1.0, 100, (0.1, 0.25, 0.3, 0.25, 0.1)),
    "high_excited": (16, 1.12, 135, (0.0, 0.0, 0.15, 0.35, 0.5)),
    "low_sad": (-14, 0.8, 70, (0.5, 0.35, 0.15, 0.0, 0.0)),
    "fast_urgent": (6, 1.32, 125, (0.2, 0.35, 0.3, 0.15, 0.0)),
}
#: per-utterance jitter: pitch offset s.d. (espeak -p steps), log-rate s.d., log-amplitude s.d.
#: Tuned so that a linear probe on utterance-level log-mel statistics reaches about 80 %
#: (speaker-disjoint test): the first, milder design (offsets +-9, jitter 5 / 0.08 / 0.25)
#: left the BiLSTM on continuous log-mels at 29 %, below the 8-band dummy tokenizer (35 %).
STYLE_JITTER: tuple[float, float, float] = (4.0, 0.06, 0.18)

ESPEAK_INSTALL = (
    "espeak-ng is not installed; install it with `apt-get install espeak-ng` (Debian/Ubuntu)"
)


@dataclass(frozen=True)
class MiniConfig:
    """What the corpus holds; its hash names the folder. Counts are before ``scale``.

    Attributes:
        seed: root of every random stream.
        n_speakers: synthetic speakers shared by asr, speaker, style and enhance.
        n_valid_speakers: speakers held out for ``valid`` (asr, style, enhance).
        n_test_speakers: speakers held out for ``test`` (asr, style, enhance).
        utterances_per_speaker: asr utterances per speaker (20 x 60 = 1200, about 1 h).
        speaker_train_per_speaker: speaker-ID training utterances per speaker.
        speaker_eval_per_speaker: speaker-ID valid and test utterances per speaker (each).
        style_per_speaker: utterances per training speaker and style.
        style_eval_per_speaker: utterances per valid or test speaker and style (the held-out
            speakers read more, so the test has enough utterances for tight intervals).
        enhance_per_speaker: noisy/clean pairs per training speaker.
        enhance_eval_per_speaker: noisy/clean pairs per valid or test speaker (12: every
            generative record judges each test pair 2-4 times, DNSMOS at ~2.5 s per file on
            one CPU thread, so the test sets are sized for the main command's 20 minutes).
        tts_utterances: single-voice utterances (train, then valid and test).
        tts_eval_utterances: of which valid, and as many test.
        ood_utterances: out-of-domain utterances (train only).
        ood_speakers: voices of the out-of-domain subset (disjoint variants).
        sample_rate: rate of every file, Hz.
        scale: multiplies every utterance count (min 1 per speaker/class), for tests.
    """

    seed: int = 0
    n_speakers: int = 20
    n_valid_speakers: int = 2
    n_test_speakers: int = 2
    utterances_per_speaker: int = 60
    speaker_train_per_speaker: int = 16
    speaker_eval_per_speaker: int = 4
    style_per_speaker: int = 5
    style_eval_per_speaker: int = 20
    enhance_per_speaker: int = 20
    enhance_eval_per_speaker: int = 12
    tts_utterances: int = 280
    tts_eval_utterances: int = 20
    ood_utterances: int = 200
    ood_speakers: int = 10
    sample_rate: int = 16000
    scale: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, int | float):
            raise ValueError(f"MiniConfig.scale must be a number, got {self.scale!r}")
        object.__setattr__(self, "scale", float(self.scale))  # 1 and 1.0 hash alike
        for name, value in asdict(self).items():
            if name != "scale" and (not isinstance(value, int) or value < 0):
                raise ValueError(f"MiniConfig.{name} must be a non-negative int, got {value!r}")
        if not 0.0 < self.scale <= 100.0:
            raise ValueError(f"MiniConfig.scale must be in (0, 100], got {self.scale!r}")
        held_out = self.n_valid_speakers + self.n_test_speakers
        if self.n_valid_speakers < 1 or self.n_test_speakers < 1 or self.n_speakers < held_out + 2:
            raise ValueError("MiniConfig needs >= 1 valid, >= 1 test and >= 2 train speakers")
        if self.n_speakers > 2 * len(MAIN_VARIANTS) or self.n_speakers % 2:
            raise ValueError(
                f"MiniConfig.n_speakers must be even (speakers come in pairs sharing a voice "
                f"variant) and at most {2 * len(MAIN_VARIANTS)}"
            )
        if held_out > self.n_speakers // 2:
            raise ValueError(
                "MiniConfig holds out at most one speaker per variant pair: "
                "n_valid_speakers + n_test_speakers must be <= n_speakers / 2"
            )
        if not 1 <= self.ood_speakers <= len(ACCENTS) * len(OOD_VARIANTS):
            raise ValueError("MiniConfig.ood_speakers is out of range")
        if self.sample_rate < 8000:
            raise ValueError("MiniConfig.sample_rate must be >= 8000 Hz")

    def to_json(self) -> str:
        """Key-sorted JSON of the fields and the recipe version (what the hash covers)."""
        return json.dumps({"mini_version": MINI_VERSION, **asdict(self)}, sort_keys=True)

    def fingerprint(self) -> str:
        """sha256 hex digest of :meth:`to_json`."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def count(self, base: int, minimum: int = 1) -> int:
        """``base`` utterances scaled by ``scale``, at least ``minimum``."""
        return max(minimum, round(base * self.scale))


@dataclass(frozen=True)
class _Speaker:
    id: str
    accent: str
    variant: str
    pitch: int  # espeak -p, 0..99
    rate: int  # espeak -s, words per minute

    def job(self, rel: str, text: str, prosody: _Prosody | None = None) -> SynthJob:
        """The espeak-ng call reading ``text`` in this voice, shifted by ``prosody``."""
        voice = f"{self.accent}+{self.variant}"
        if prosody is None:
            return SynthJob(rel, voice, self.pitch, self.rate, 100, text)
        pitch = int(np.clip(self.pitch + prosody.pitch_offset, 0, 99))
        rate = round(self.rate * prosody.rate_factor)
        return SynthJob(rel, voice, pitch, rate, prosody.amplitude, text, prosody.pitch_range)


@dataclass(frozen=True)
class _Prosody:
    """One style utterance's prosody: its style's mean plus this utterance's jitter."""

    pitch_offset: int
    rate_factor: float
    amplitude: int  # espeak -a, 0..200
    pitch_range: str  # SSML <prosody range=...>

    @staticmethod
    def draw(style: str, rng: np.random.Generator) -> _Prosody:
        pitch, rate, amplitude, range_weights = STYLES[style]
        pitch_sd, rate_sd, amplitude_sd = STYLE_JITTER
        return _Prosody(
            round(pitch + float(rng.normal(0.0, pitch_sd))),
            round(rate * float(np.exp(rng.normal(0.0, rate_sd))), 4),
            int(np.clip(round(amplitude * float(np.exp(rng.normal(0.0, amplitude_sd)))), 20, 200)),
            PITCH_RANGES[int(rng.choice(len(PITCH_RANGES), p=np.asarray(range_weights)))],
        )


@dataclass(frozen=True)
class _Item:
    """One manifest line before its duration is known; ``rel`` is relative to the corpus."""

    subset: str
    split: str
    rel: str
    utterance: Utterance


def _rng(config: MiniConfig, stream: str) -> np.random.Generator:
    """An independent random stream per name, so one subset's size never shifts another's."""
    return np.random.default_rng([config.seed, *stream.encode("utf-8")])


def _make_speakers(
    rng: np.random.Generator,
    count: int,
    variants: tuple[str, ...],
    prefix: str,
    per_variant: int = 1,
) -> list[_Speaker]:
    """Synthetic speakers; ``per_variant`` consecutive speakers share one voice variant.

    Speakers sharing a variant still differ in accent, pitch and rate, like two people with
    similar voices; sharing lets held-out (speaker-disjoint) speakers have voice qualities
    that training saw, so the ASR test measures speaker generalisation, not a new synthesiser.
    """
    variant_order = rng.permutation(len(variants))
    accent_order = rng.permutation(len(ACCENTS))
    speakers = []
    for i in range(count):
        variant = variants[variant_order[(i // per_variant) % len(variants)]]
        accent = ACCENTS[accent_order[(i + i // len(variants)) % len(ACCENTS)]]
        pitch, rate = int(rng.integers(30, 71)), int(rng.integers(145, 186))
        speakers.append(_Speaker(f"{prefix}{i:02d}", accent, variant, pitch, rate))
    return speakers


def recipe_fingerprint() -> str:
    """Hash of the recipe's code: this module and the harness modules it imports (text,
    noise, audio I/O, resampling), so an edit that changes the audio builds a new corpus."""
    from benchmark.pipeline.keys import code_fingerprint

    return code_fingerprint(__name__)["source"]


def corpus_name(config: MiniConfig) -> str:
    """Folder name of a config's corpus: ``mini-v{MINI_VERSION}-{hash[:10]}``.

    The hash covers the config and :func:`recipe_fingerprint`.
    """
    digest = hashlib.sha256(f"{config.fingerprint()}:{recipe_fingerprint()}".encode())
    return f"mini-v{MINI_VERSION}-{digest.hexdigest()[:10]}"


class _Plan:
    """Every random decision of the corpus, made in a fixed order (no audio is touched)."""

    def __init__(self, config: MiniConfig) -> None:
        self.config = config
        self.jobs: list[SynthJob] = []
        self.mixes: list[MixJob] = []
        self.items: list[_Item] = []
        self.seen: set[str] = set()  # every sentence of the corpus is unique
        self.rngs = {name: _rng(config, f"text-{name}") for name in SUBSETS}
        c = config
        self.speakers = _make_speakers(
            _rng(c, "speakers"), c.n_speakers, MAIN_VARIANTS, "spk", per_variant=2
        )
        # hold out at most one speaker of each variant pair, so the other one trains
        pairs = _rng(c, "speaker-split").permutation(c.n_speakers // 2)
        held_out = c.n_valid_speakers + c.n_test_speakers
        picked = [2 * int(p) + int(_rng(c, f"pick-{p}").integers(2)) for p in pairs[:held_out]]
        rest = [i for i in range(c.n_speakers) if i not in picked]
        order = [self.speakers[i].id for i in picked + rest]
        self.split_of = {spk: "train" for spk in order[held_out:]}
        self.split_of |= {spk: "valid" for spk in order[: c.n_valid_speakers]}
        self.split_of |= {spk: "test" for spk in order[c.n_valid_speakers : held_out]}

    def sentences(self, stream: str, count: int, family: str = "statement") -> list[str]:
        return generate_sentences(self.rngs[stream], count, family, exclude=self.seen)

    def add(self, subset: str, split: str, uid: str, spk: _Speaker, text: str, **kw: Any) -> str:
        """Queue one synthesis; ``kw``: label, prosody, extra, rel (default ``wav/{uid}.wav``)."""
        rel = f"{subset}/{kw.get('rel', f'wav/{uid}.wav')}"
        utterance = Utterance(
            uid, rel.split("/", 1)[1], 0.0, self.config.sample_rate, text, spk.id,
            kw.get("label"), kw.get("extra", {}),
        )  # fmt: skip
        self.items.append(_Item(subset, split, rel, utterance))
        self.jobs.append(spk.job(kw.get("clean", rel), text, kw.get("prosody")))
        return rel

    def build(self) -> _Plan:
        c = self.config
        for spk in self.speakers:
            for k, text in enumerate(self.sentences("asr", c.count(c.utterances_per_speaker))):
                self.add("asr", self.split_of[spk.id], f"asr-{spk.id}-{k:04d}", spk, text)
        n_eval = c.count(c.speaker_eval_per_speaker)
        counts = {"train": c.count(c.speaker_train_per_speaker), "valid": n_eval, "test": n_eval}
        for spk in self.speakers:
            for split in SPLITS:
                for k, text in enumerate(self.sentences("speaker", counts[split])):
                    uid = f"speaker-{spk.id}-{split}-{k:04d}"
                    self.add("speaker", split, uid, spk, text, label=spk.id)
        prosody_rng = _rng(c, "style-prosody")
        for spk in self.speakers:
            split = self.split_of[spk.id]
            per_style = c.count(
                c.style_per_speaker if split == "train" else c.style_eval_per_speaker
            )
            for style in STYLES:
                for k, text in enumerate(self.sentences("style", per_style)):
                    uid, extra = f"style-{spk.id}-{style}-{k:04d}", {"synthetic_style": True}
                    prosody = _Prosody.draw(style, prosody_rng)
                    self.add(
                        "style", split, uid, spk, text, label=style, prosody=prosody, extra=extra
                    )
        self._enhance()
        tts = _Speaker("tts", "en-us", "f2", 50, 165)
        n = c.count(c.tts_utterances, minimum=3)
        n_eval = min(c.count(c.tts_eval_utterances), (n - 1) // 2)
        for k, text in enumerate(self.sentences("tts", n)):
            split = "test" if k >= n - n_eval else "valid" if k >= n - 2 * n_eval else "train"
            self.add("tts", split, f"tts-{k:04d}", tts, text)
        ood = _make_speakers(_rng(c, "ood-speakers"), c.ood_speakers, OOD_VARIANTS, "ood")
        for k, text in enumerate(self.sentences("ood", c.count(c.ood_utterances, 4), "other")):
            spk = ood[k % len(ood)]
            self.add("ood", "train", f"ood-{spk.id}-{k:04d}", spk, text)
        return self

    def _enhance(self) -> None:
        """Clean synthesis plus one mixing job per pair; noise kinds balanced per split."""
        c, rng = self.config, _rng(self.config, "noise")
        asr = [(item.rel, item.utterance.speaker) for item in self.items if item.subset == "asr"]
        for split in SPLITS:
            pairs = [
                (spk, f"enhance-{spk.id}-{k:04d}", text)
                for spk in self.speakers
                if self.split_of[spk.id] == split
                for k, text in enumerate(
                    self.sentences(
                        "enhance",
                        c.count(
                            c.enhance_per_speaker
                            if split == "train"
                            else c.enhance_eval_per_speaker
                        ),
                    )
                )
            ]
            kinds = [NOISE_KINDS[i % len(NOISE_KINDS)] for i in rng.permutation(len(pairs))]
            for (spk, uid, text), kind in zip(pairs, kinds, strict=True):
                snr, seed = round(float(rng.uniform(0.0, 15.0)), 2), int(rng.integers(2**32))
                others = [rel for rel, speaker in asr if speaker != spk.id]
                talkers = int(rng.integers(3, 6))
                picks = rng.choice(len(others), talkers, replace=len(others) < talkers)
                babble = tuple(others[int(i)] for i in picks) if kind == "babble" else ()
                extra = {"clean_path": f"clean/{uid}.wav", "snr_db": snr, "noise": kind}
                clean = f"enhance/clean/{uid}.wav"
                rel = f"noisy/{uid}.wav"
                noisy = self.add(
                    "enhance", split, uid, spk, text, rel=rel, clean=clean, extra=extra
                )
                self.mixes.append(MixJob(clean, noisy, kind, snr, seed, babble))


def is_complete(folder: Path, config: MiniConfig) -> bool:
    """Whether ``folder`` holds a finished build of ``config`` (its marker matches)."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("config") == json.loads(config.to_json())


def _build(build: Path, config: MiniConfig, espeak: str, progress: bool, workers: int) -> dict:
    plan = _Plan(config).build()
    sr = config.sample_rate
    args = (build, espeak, sr)
    lengths = run_parallel(synthesize_job, plan.jobs, workers, "mini: synthesis", progress, *args)
    samples = {job.rel: n for job, n in zip(plan.jobs, lengths, strict=True)}
    mixed = run_parallel(mix_job, plan.mixes, workers, "mini: noise", progress, build, sr)
    samples |= {job.noisy_rel: n for job, n in zip(plan.mixes, mixed, strict=True)}
    summary: dict[str, dict[str, Any]] = {}
    for subset in SUBSETS:
        for split in SPLITS if subset != "ood" else ("train",):
            rows = [i for i in plan.items if (i.subset, i.split) == (subset, split)]
            lines = [replace(i.utterance, duration=samples[i.rel] / sr) for i in rows]
            write_manifest(build / subset / f"{split}.jsonl", lines)
            hours = round(sum(u.duration for u in lines) / 3600, 4)
            summary.setdefault(subset, {})[split] = {"utterances": len(lines), "hours": hours}
    return summary


def prepare_mini(
    root: Path, config: MiniConfig = MiniConfig(), progress: bool = True, workers: int = 2
) -> Path:
    """Synthesise the mini corpus once and return its folder (cached by config hash).

    Args:
        root: parent folder; the corpus goes to ``root/mini-v{MINI_VERSION}-{hash[:10]}``.
        config: what to build.
        progress: show tqdm bars.
        workers: espeak-ng processes run at once (does not change the output).

    Returns:
        The corpus folder, holding ``{subset}/{split}.jsonl`` and the WAV files.

    Raises:
        MissingDependencyError: ``espeak-ng`` is not on ``PATH`` (and no finished corpus).
        DataError: espeak-ng failed on an utterance.
    """
    root = Path(root)
    name = corpus_name(config)
    final = root / name
    if is_complete(final, config):
        logger.debug("mini corpus %s is complete; reusing it", final)
        return final
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        raise MissingDependencyError(ESPEAK_INSTALL)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(root, max_depth=0)  # builds of killed processes
    threads = torch.get_num_threads()
    started = time.perf_counter()
    with output_lock(final, f"mini corpus {name}"):
        if is_complete(final, config):  # another process built it while we waited
            return final
        logger.info("building mini corpus %s", final)
        try:
            torch.set_num_threads(1)  # resampling output must not depend on the thread count
            with atomic_folder(final) as build:
                summary = _build(build, config, espeak, progress, max(1, workers))
                marker = {
                    "config": json.loads(config.to_json()),
                    "espeak_ng": espeak_version(espeak),
                    "subsets": summary,
                }
                (build / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
        finally:
            torch.set_num_threads(threads)
    logger.info("mini corpus ready in %.1f s: %s", time.perf_counter() - started, final)
    return final


def mini_manifest(corpus_dir: Path, subset: str, split: str) -> Manifest:
    """Read ``corpus_dir/subset/split.jsonl`` (paths resolve from the subset folder).

    Raises:
        DataError: unknown subset or split, or the manifest does not exist.
    """
    if subset not in SUBSETS:
        raise DataError(f"unknown mini subset {subset!r}; expected one of {list(SUBSETS)}")
    if split not in SPLITS or (subset == "ood" and split != "train"):
        allowed = ["train"] if subset == "ood" else list(SPLITS)
        raise DataError(f"mini subset {subset!r} has no split {split!r}; expected {allowed}")
    return read_manifest(Path(corpus_dir) / subset / f"{split}.jsonl")
