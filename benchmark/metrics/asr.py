"""Word and character error rates with jiwer, on normalised text, with bootstrap CIs."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import jiwer
import numpy as np

from benchmark.api import Metric, MetricValue, UtteranceScores
from benchmark.metrics.bootstrap import DEFAULT_LEVEL, bootstrap_ratio_ci

_PUNCT = re.compile(r"[^\w\s']")
_SPACES = re.compile(r"\s+")
#: Typographic quotes and apostrophes (which NFKC leaves alone) -> their ASCII forms, so that
#: "don\u2019t" and "don't" are one word: U+2018/2019/201A/201B and U+02BC (modifier letter
#: apostrophe) -> ', U+201C/201D/201E/201F -> ".
_QUOTES = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u201b": "'",
        "\u02bc": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u201e": '"',
        "\u201f": '"',
    }
)
#: Bump when :func:`normalise_text` changes what it returns (recorded with every WER/CER).
NORMALISATION_VERSION = 2
NORMALISATION = "lower, NFKC, curly quotes to ASCII, no punctuation but apostrophes"


def normalise_text(text: str) -> str:
    """Text as WER/CER compare it.

    NFKC, curly quotes and apostrophes mapped to ASCII (``\u2019`` -> ``'``, ``\u201c`` ->
    ``"``), lower case, punctuation removed except apostrophes, whitespace collapsed.
    """
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES).lower()
    text = _PUNCT.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def edit_counts(
    references: Sequence[str], predictions: Sequence[str], unit: str = "word"
) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance edit operations and reference lengths, on normalised text.

    Args:
        references: reference transcripts.
        predictions: hypotheses, aligned with the references.
        unit: ``word`` or ``char``.

    Returns:
        ``errors [U]`` (substitutions + deletions + insertions) and ``lengths [U]``
        (reference words or characters), float64.
    """
    errors, lengths = [], []
    for reference, prediction in zip(references, predictions, strict=True):
        reference, prediction = normalise_text(reference), normalise_text(prediction)
        if unit == "char":
            out = jiwer.process_characters(reference, prediction)
            length = len(reference)
        else:
            out = jiwer.process_words(reference, prediction) if reference else None
            length = len(reference.split())
        if out is None:  # empty reference: every predicted word is an insertion
            errors.append(len(prediction.split()))
        else:
            errors.append(out.substitutions + out.deletions + out.insertions)
        lengths.append(length)
    return np.asarray(errors, dtype=np.float64), np.asarray(lengths, dtype=np.float64)


class _ErrorRate(Metric):
    unit = "word"
    direction = "lower"

    def compute(
        self,
        predictions: Sequence[str],
        references: Sequence[str],
        ids: Sequence[str] | None = None,
    ) -> MetricValue:
        if len(predictions) != len(references) or not references:
            raise ValueError(
                f"{self.name} needs as many predictions as references (>0), got "
                f"{len(predictions)} and {len(references)}"
            )
        errors, lengths = edit_counts(references, predictions, self.unit)
        if lengths.sum() == 0:
            return MetricValue.unavailable(self.name, "lower", "all references are empty")
        low, high = bootstrap_ratio_ci(errors, lengths)
        items = None
        if ids is not None:
            items = UtteranceScores(list(ids), errors.tolist(), lengths.tolist(), scale=100.0)
        return MetricValue(
            name=self.name,
            direction="lower",
            value=100.0 * float(errors.sum() / lengths.sum()),
            ci_low=100.0 * low,
            ci_high=100.0 * high,
            ci_level=DEFAULT_LEVEL,
            n=len(references),
            judge={
                "library": "jiwer",
                "normalisation": NORMALISATION,
                "normalisation_version": NORMALISATION_VERSION,
            },
            per_utterance=items,
        )


class WordErrorRate(_ErrorRate):
    """Corpus-level WER in % (edits / reference words)."""

    name = "wer"
    unit = "word"


class CharacterErrorRate(_ErrorRate):
    """Corpus-level CER in % (edits / reference characters, spaces included)."""

    name = "cer"
    unit = "char"
