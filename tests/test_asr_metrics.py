"""WER/CER text normalisation: typographic quotes compare equal to their ASCII forms."""

from __future__ import annotations

import pytest

from benchmark.metrics.asr import CharacterErrorRate, WordErrorRate, normalise_text


@pytest.mark.parametrize(
    ("typographic", "ascii_form"),
    [
        ("don\u2019t", "don't"),
        ("\u2018twas", "'twas"),
        ("\u201cHello\u201d, she said", '"hello", she said'),
        ("rock \u02bcn\u02bc roll", "rock 'n' roll"),
    ],
)
def test_curly_quotes_normalise_to_ascii(typographic, ascii_form):
    assert normalise_text(typographic) == normalise_text(ascii_form)


def test_curly_apostrophe_is_not_an_error():
    reference = ['I don\'t know what "it" is']
    prediction = ["i don\u2019t know what \u201cit\u201d is"]
    assert WordErrorRate().compute(prediction, reference).value == 0.0
    assert CharacterErrorRate().compute(prediction, reference).value == 0.0
    # a real difference is still counted: one substituted word of six
    wer = WordErrorRate().compute(["i do\u2019t know what it is"], reference)
    assert wer.value == pytest.approx(100 / 6)
    assert wer.judge["normalisation_version"] == 2


def test_apostrophes_stay_and_punctuation_goes():
    assert normalise_text("  It\u2019s   A  \u201cTEST\u201d!  ") == "it's a test"
