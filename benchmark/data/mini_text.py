"""Seeded English sentence generator for the synthetic ``mini`` corpus.

A small grammar over a few hundred real English words (embedded below as data) produces
lower-case sentences without punctuation, e.g. ``"the quiet farmer carried seven heavy boxes
across the bridge"``. Two sentence families exist: ``"statement"`` (the in-domain family used
by the ASR, speaker, style, enhancement and TTS subsets) and ``"other"`` (imperatives,
questions and existentials, used for the out-of-domain subset). All randomness comes from the
:class:`numpy.random.Generator` passed in, so the same generator state gives the same text.
"""

from __future__ import annotations

import numpy as np

# (singular, plural)
NOUNS: tuple[tuple[str, str], ...] = tuple(
    (word, plural or word + "s")
    for word, plural in (
        ("apple", ""), ("artist", ""), ("baby", "babies"), ("bag", ""), ("ball", ""),
        ("basket", ""), ("bear", ""), ("bird", ""), ("boat", ""), ("book", ""),
        ("bottle", ""), ("box", "boxes"), ("boy", ""), ("bridge", ""), ("brother", ""),
        ("bus", "buses"), ("cake", ""), ("camera", ""), ("candle", ""), ("car", ""),
        ("cat", ""), ("chair", ""), ("child", "children"), ("city", "cities"), ("clock", ""),
        ("cloud", ""), ("coat", ""), ("cook", ""), ("cup", ""), ("doctor", ""),
        ("dog", ""), ("door", ""), ("dream", ""), ("driver", ""), ("engine", ""),
        ("farmer", ""), ("field", ""), ("fish", "fish"), ("flower", ""), ("forest", ""),
        ("friend", ""), ("garden", ""), ("girl", ""), ("glass", "glasses"), ("hammer", ""),
        ("hat", ""), ("horse", ""), ("house", ""), ("island", ""), ("key", ""),
        ("kitchen", ""), ("lamp", ""), ("lawyer", ""), ("leaf", "leaves"), ("letter", ""),
        ("lion", ""), ("machine", ""), ("map", ""), ("market", ""), ("mirror", ""),
        ("monkey", ""), ("mountain", ""), ("mouse", "mice"), ("neighbour", ""), ("nurse", ""),
        ("ocean", ""), ("orange", ""), ("painter", ""), ("paper", ""), ("pencil", ""),
        ("piano", ""), ("picture", ""), ("pilot", ""), ("plate", ""), ("pocket", ""),
        ("rabbit", ""), ("river", ""), ("road", ""), ("robot", ""), ("rock", ""),
        ("sailor", ""), ("school", ""), ("scientist", ""), ("shirt", ""), ("shoe", ""),
        ("singer", ""), ("sister", ""), ("soldier", ""), ("spoon", ""), ("station", ""),
        ("stone", ""), ("student", ""), ("table", ""), ("teacher", ""), ("tiger", ""),
        ("tower", ""), ("town", ""), ("train", ""), ("tree", ""), ("truck", ""),
        ("village", ""), ("wall", ""), ("window", ""), ("woman", "women"), ("writer", ""),
    )
)  # fmt: skip

ADJECTIVES: tuple[str, ...] = (
    "ancient", "angry", "beautiful", "big", "black", "blue", "bright", "brave", "broken",
    "busy", "calm", "careful", "cheap", "clean", "clever", "cold", "dark", "dirty", "dry",
    "early", "empty", "famous", "fast", "friendly", "full", "gentle", "golden", "green",
    "happy", "heavy", "hungry", "kind", "large", "lazy", "little", "lonely", "long", "loud",
    "lucky", "modern", "narrow", "new", "noisy", "old", "orange", "polite", "poor", "proud",
    "quiet", "red", "rich", "round", "sharp", "short", "silver", "simple", "slow", "small",
    "soft", "strange", "strong", "sweet", "tall", "tiny", "tired", "warm", "wet", "white",
    "wild", "wooden", "yellow", "young",
)  # fmt: skip

# transitive verbs, past tense (no agreement needed)
VERBS_TRANSITIVE: tuple[str, ...] = (
    "admired", "believed", "borrowed", "bought", "built", "called", "carried", "caught",
    "chased", "cleaned", "climbed", "counted", "covered", "crossed", "described", "drew",
    "dropped", "followed", "found", "gathered", "grabbed", "helped", "hid", "held",
    "lifted", "liked", "lost", "moved", "noticed", "opened", "painted", "passed", "picked",
    "pulled", "pushed", "read", "remembered", "repaired", "saw", "sold", "sent", "showed",
    "studied", "touched", "visited", "washed", "watched", "wanted", "wrapped", "dried",
)  # fmt: skip

# intransitive verbs, past tense
VERBS_INTRANSITIVE: tuple[str, ...] = (
    "arrived", "danced", "disappeared", "fell", "floated", "jumped", "laughed", "listened",
    "paused", "rested", "returned", "ran", "sang", "shouted", "slept", "smiled", "stayed",
    "stood", "swam", "talked", "travelled", "waited", "walked", "whispered", "worked",
    "wandered", "appeared", "stopped",
)  # fmt: skip

# base-form verbs for imperatives and questions ("other" family)
VERBS_BASE: tuple[str, ...] = (
    "bring", "carry", "check", "clean", "close", "cover", "draw", "find", "fix", "hold",
    "keep", "leave", "lift", "move", "open", "paint", "place", "pull", "push", "put",
    "show", "take", "throw", "wash", "watch", "wrap",
)  # fmt: skip

ADVERBS: tuple[str, ...] = (
    "again", "almost", "already", "calmly", "carefully", "early", "easily", "finally",
    "gently", "happily", "later", "loudly", "nearly", "often", "once", "quickly",
    "quietly", "rarely", "recently", "sadly", "slowly", "softly", "suddenly", "today",
    "together", "tonight", "twice", "yesterday",
)  # fmt: skip

PREPOSITIONS: tuple[str, ...] = (
    "above", "across", "after", "against", "along", "among", "around", "behind", "below",
    "beside", "between", "beyond", "by", "during", "inside", "near", "past", "through",
    "toward", "under", "with", "without",
)  # fmt: skip

NUMBERS: tuple[str, ...] = (
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
    "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "sixty",
)  # fmt: skip

DETERMINERS_SINGULAR: tuple[str, ...] = (
    "the", "the", "the", "a", "a", "this", "that", "every", "my", "your", "his", "her",
    "our", "their",
)  # fmt: skip
DETERMINERS_PLURAL: tuple[str, ...] = (
    "the", "the", "these", "those", "some", "many", "several", "my", "our", "their",
)  # fmt: skip
CONJUNCTIONS: tuple[str, ...] = ("and", "but", "while", "because", "so", "when", "before")
QUESTION_WORDS: tuple[str, ...] = ("why", "where", "when", "how")
FAMILIES: tuple[str, ...] = ("statement", "other")

VOCABULARY: frozenset[str] = frozenset(
    w
    for group in (
        [w for pair in NOUNS for w in pair],
        ADJECTIVES,
        VERBS_TRANSITIVE,
        VERBS_INTRANSITIVE,
        VERBS_BASE,
        ADVERBS,
        PREPOSITIONS,
        NUMBERS,
        DETERMINERS_SINGULAR,
        DETERMINERS_PLURAL,
        CONJUNCTIONS,
        QUESTION_WORDS,
        ("an", "please", "did", "there", "were", "was"),
    )
    for w in group
)


def _pick(rng: np.random.Generator, words: tuple[str, ...]) -> str:
    return words[int(rng.integers(len(words)))]


def _noun_phrase(rng: np.random.Generator, adjective_p: float = 0.5) -> list[str]:
    """A determiner (or number), an optional adjective and a singular or plural noun."""
    singular, plural = NOUNS[int(rng.integers(len(NOUNS)))]
    words: list[str] = []
    if rng.random() < adjective_p:
        words.append(_pick(rng, ADJECTIVES))
    if rng.random() < 0.6:
        det = _pick(rng, DETERMINERS_SINGULAR)
        if det == "a" and (words or [singular])[0][0] in "aeiou":
            det = "an"
        return [det, *words, singular]
    det = _pick(rng, NUMBERS) if rng.random() < 0.4 else _pick(rng, DETERMINERS_PLURAL)
    return [det, *words, plural]


def _clause(rng: np.random.Generator) -> list[str]:
    kind = int(rng.integers(3))
    subject = _noun_phrase(rng)
    if kind == 0:
        words = [*subject, _pick(rng, VERBS_TRANSITIVE), *_noun_phrase(rng)]
    elif kind == 1:
        words = [*subject, _pick(rng, VERBS_INTRANSITIVE), _pick(rng, PREPOSITIONS)]
        words += _noun_phrase(rng)
    else:
        words = [*subject, _pick(rng, VERBS_INTRANSITIVE)]
    if rng.random() < 0.35:
        words.append(_pick(rng, ADVERBS))
    return words


def _statement(rng: np.random.Generator) -> list[str]:
    kind = int(rng.integers(4))
    if kind == 0:
        return [*_clause(rng), _pick(rng, CONJUNCTIONS), *_clause(rng)]
    if kind == 1:
        return [_pick(rng, PREPOSITIONS), *_noun_phrase(rng), *_clause(rng)]
    return _clause(rng)


def _other(rng: np.random.Generator) -> list[str]:
    kind = int(rng.integers(3))
    if kind == 0:  # imperative
        words = ["please"] if rng.random() < 0.5 else []
        words += [_pick(rng, VERBS_BASE), *_noun_phrase(rng), _pick(rng, PREPOSITIONS)]
        return words + _noun_phrase(rng)
    if kind == 1:  # question without punctuation
        words = [_pick(rng, QUESTION_WORDS), "did", *_noun_phrase(rng), _pick(rng, VERBS_BASE)]
        return words + _noun_phrase(rng, adjective_p=0.3)
    number = _pick(rng, NUMBERS)  # existential
    plural = NOUNS[int(rng.integers(len(NOUNS)))][1]
    words = ["there", "were", number, _pick(rng, ADJECTIVES), plural, _pick(rng, PREPOSITIONS)]
    return words + _noun_phrase(rng)


def generate_sentence(
    rng: np.random.Generator, family: str = "statement", min_words: int = 4, max_words: int = 11
) -> str:
    """One lower-case sentence without punctuation, between ``min_words`` and ``max_words``.

    Args:
        rng: the random stream; the sentence is a pure function of its state.
        family: ``"statement"`` (in-domain) or ``"other"`` (out-of-domain structures).
        min_words: shortest accepted sentence, in words.
        max_words: longest accepted sentence, in words.

    Raises:
        ValueError: unknown family or an empty word range.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown sentence family {family!r}; expected one of {FAMILIES}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"bad word range [{min_words}, {max_words}]")
    make = _statement if family == "statement" else _other
    for _ in range(1000):
        words = make(rng)
        if min_words <= len(words) <= max_words:
            return " ".join(words)
    raise ValueError(f"no {family} sentence of {min_words}..{max_words} words in 1000 tries")


def generate_sentences(
    rng: np.random.Generator,
    count: int,
    family: str = "statement",
    exclude: set[str] | None = None,
    min_words: int = 4,
    max_words: int = 11,
) -> list[str]:
    """``count`` distinct sentences, none of them in ``exclude`` (which is updated in place).

    Args:
        rng: the random stream.
        count: number of sentences.
        family: see :func:`generate_sentence`.
        exclude: sentences already used elsewhere; the new ones are added to it, so one set
            shared across subsets keeps every sentence of the corpus unique.
        min_words: shortest sentence, in words.
        max_words: longest sentence, in words.
    """
    seen = exclude if exclude is not None else set()
    sentences: list[str] = []
    while len(sentences) < count:
        sentence = generate_sentence(rng, family, min_words, max_words)
        if sentence not in seen:
            seen.add(sentence)
            sentences.append(sentence)
    return sentences
