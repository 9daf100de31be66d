"""A file plugin for the tests: the dummy tokenizer, counting its encode calls.

Each encode call appends one line to the file named by ``$BENCH_TEST_COUNT_FILE``.
"""

import os
from pathlib import Path

from benchmark.plugins import register_tokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer


class CountingMelTokenizer(MelBandTokenizer):
    """Mel bands that count their encode calls."""

    def encode(self, wav, lengths):
        with Path(os.environ["BENCH_TEST_COUNT_FILE"]).open("a") as handle:
            handle.write(f"{wav.shape[0]}\n")
        return super().encode(wav, lengths)


register_tokenizer("counting-mel", CountingMelTokenizer, params={"name": "counting-mel"})
