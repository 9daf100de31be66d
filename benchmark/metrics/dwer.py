"""dWER: the word error rate between transcripts of the generated and the reference audio.

A recogniser transcribes both the generated audio and its clean reference; the WER of the
first against the second (DASB's dWER) measures how much of the spoken content survives
generation, without needing the reference text or a recogniser that matches it. Text is
normalised as for WER (:func:`benchmark.metrics.asr.normalise_text`) and scored with jiwer.
Each utterance's dWER is in %; the aggregate is their mean (utterance-averaged) with a
bootstrap CI.

Recognisers: Whisper (``full``; default ``openai/whisper-small`` at a pinned revision, see
:mod:`benchmark.metrics.judges.whisper`) or the harness-trained mini CTC judge
(``mini_judge``: its folder, see :mod:`benchmark.metrics.judges.mini_asr`).

Skipped: audio under 0.1 s; with Whisper, audio over its 30 s window; an utterance whose
reference transcript is empty (dWER is undefined without reference words).
:class:`DCER` is the same on characters (dCER). :class:`TextWER` / :class:`TextCER` score
the transcript of the generated audio against the input text instead (TTS intelligibility).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmark.data.audio import load_audio
from benchmark.metrics.asr import edit_counts, normalise_text
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip

#: Utterances transcribed per recogniser call (bounds the audio held in memory).
CHUNK = 32


class DWER(AudioMetric):
    """Utterance-averaged dWER in % (lower is better; 0 = same words heard).

    Args:
        weights: Whisper weights (``{"hub", "revision"}`` or ``{"path"}``); default
            ``openai/whisper-small`` at its pinned revision.
        mini_judge: folder of a trained mini CTC judge, used instead of Whisper.
        device: torch device.
        batch_size: waveforms per Whisper ``generate`` call.
    """

    name = "dwer"
    unit = "word"
    direction = "lower"
    needs = ("audio", "reference_audio")
    min_seconds = 0.1

    def __init__(
        self,
        weights: Mapping[str, Any] | None = None,
        mini_judge: str | Path | None = None,
        device: str = "cpu",
        batch_size: int = 8,
    ) -> None:
        if weights and mini_judge:
            raise ValueError("dwer: give Whisper weights or a mini_judge folder, not both")
        self.weights, self.mini_judge = weights, mini_judge
        self.device, self.batch_size = device, batch_size
        self.max_seconds = None if mini_judge else 30.0
        self._recognizer: Any = None

    def recognizer(self) -> Any:
        """The loaded recogniser (loaded once). Raises JudgeUnavailableError."""
        if self._recognizer is None:
            if self.mini_judge:
                from benchmark.metrics.judges.mini_asr import load_mini_asr_judge

                self._recognizer = load_mini_asr_judge(Path(self.mini_judge), self.device)
            else:
                from benchmark.metrics.judges.whisper import WhisperRecognizer

                self._recognizer = WhisperRecognizer(self.weights, self.device, self.batch_size)
        return self._recognizer

    def judge(self) -> dict[str, Any]:
        return {**self.recognizer().identity(), "text": "lower, NFKC, no punctuation (jiwer)"}

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        out: list[float | Skip] = []
        for chunk in _chunks(items):
            generated = self._hear([i.audio for i in chunk])
            heard = self._hear([i.reference_audio for i in chunk])
            out.extend(
                self._rates(heard, generated, "the recogniser heard nothing in the reference audio")
            )
        return out

    def _hear(self, paths: Sequence[Any]) -> list[str]:
        """The recogniser's transcripts of audio files, loaded at its sample rate."""
        recognizer = self.recognizer()
        return recognizer.transcribe([load_audio(p, recognizer.sample_rate) for p in paths])

    def _rates(self, references: list[str], heard: list[str], empty: str) -> list[float | Skip]:
        """Per-utterance error rate in % of ``heard`` against ``references``; ``Skip(empty)``
        where a reference is empty after normalisation."""
        errors, lengths = edit_counts(references, heard, self.unit)
        return [
            Skip(empty) if not normalise_text(ref) else 100.0 * float(error) / float(length)
            for ref, error, length in zip(references, errors, lengths, strict=True)
        ]


class DCER(DWER):
    """Utterance-averaged dCER in %: :class:`DWER` on characters (spaces included).

    Finer-grained than dWER where the recogniser is weak (the mini CTC judge), since one
    wrong letter costs one character rather than a whole word.
    """

    name = "dcer"
    unit = "char"


class TextWER(DWER):
    """Utterance-averaged WER in % of the generated audio's transcript against the input text.

    The intelligibility metric of TTS: the recogniser (Whisper, or the mini CTC judge)
    transcribes only the generated audio, and the WER is taken against ``reference_text``
    (the text the model was asked to speak), normalised as for WER. Scoring the real
    recordings the same way (the task's ``ground truth`` row) gives the recogniser's own
    floor on that corpus. Skipped: an utterance whose reference text is empty after
    normalisation, and audio outside the recogniser's duration range.
    """

    name = "text_wer"
    unit = "word"
    needs = ("audio", "reference_text")

    def judge(self) -> dict[str, Any]:
        return {**super().judge(), "reference": "the input text"}

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        out: list[float | Skip] = []
        for chunk in _chunks(items):
            heard = self._hear([i.audio for i in chunk])
            texts = [i.reference_text or "" for i in chunk]
            out.extend(self._rates(texts, heard, "the reference text is empty after normalisation"))
        return out


class TextCER(TextWER):
    """:class:`TextWER` on characters (spaces included), in %."""

    name = "text_cer"
    unit = "char"


def _chunks(items: Sequence[AudioItem]) -> list[Sequence[AudioItem]]:
    """``items`` in consecutive chunks of :data:`CHUNK` (one recogniser batch each)."""
    return [items[start : start + CHUNK] for start in range(0, len(items), CHUNK)]
