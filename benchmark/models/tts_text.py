"""The character vocabulary of the TTS task: normalised text -> ids, unknown characters reported.

Normalisation: NFKC, curly quotes and dashes to ASCII, square brackets to parentheses,
accents stripped (``é`` -> ``e``, via NFKD without combining marks), lower case,
whitespace collapsed. Kept punctuation (it carries phrasing): ``' . , ! ? ; : - " ( )``
(every punctuation mark of LJSpeech's normalized transcripts). Any other character
(digits, symbols, letters of other scripts) is dropped from the model's input and
reported: one warning line naming the utterance and the characters, and a count per
character the task records.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence

log = logging.getLogger(__name__)

#: Characters the model reads, in id order after the padding id 0.
ALPHABET = " abcdefghijklmnopqrstuvwxyz'.,!?;:-\"()"
PAD = 0
_MAP = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u02bc": "'", "`": "'",
        "\u201c": '"', "\u201d": '"',
        "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-",
        "[": "(", "]": ")",
    }
)  # fmt: skip
_SPACES = re.compile(r"\s+")


def normalise_tts_text(text: str) -> str:
    """Text as the TTS model reads it (before dropping characters outside :data:`ALPHABET`)."""
    text = unicodedata.normalize("NFKC", text).translate(_MAP)
    decomposed = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    return _SPACES.sub(" ", text).strip()


class TextVocabulary:
    """Fixed character inventory: id 0 is padding, then :data:`ALPHABET`.

    Attributes:
        dropped: ``{character: count}`` of the characters dropped so far (for the record).
    """

    def __init__(self) -> None:
        self.chars = ALPHABET
        self.index = {c: i + 1 for i, c in enumerate(ALPHABET)}
        self.dropped: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str, utterance_id: str = "?") -> list[int]:
        """Ids of the normalised text; characters outside the alphabet are dropped and reported.

        Args:
            text: the transcript.
            utterance_id: named in the warning.

        Returns:
            Character ids (at least one: an empty text becomes a single space).
        """
        normal = normalise_tts_text(text)
        unknown = sorted({c for c in normal if c not in self.index})
        if unknown:
            self.dropped.update(c for c in normal if c not in self.index)
            log.warning(
                "utterance %s: characters %s are outside the TTS alphabet; dropped from the input "
                "(spell them out in the transcript to keep them)",
                utterance_id, ", ".join(repr(c) for c in unknown),
            )  # fmt: skip
        ids = [self.index[c] for c in normal if c in self.index]
        return ids or [self.index[" "]]

    def decode(self, ids: Sequence[int]) -> str:
        """Characters of ids (padding skipped)."""
        return "".join(self.chars[i - 1] for i in ids if i != PAD)
