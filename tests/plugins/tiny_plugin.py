"""A file plugin used by the tests: registers a tokenizer built on the dummy one."""

from benchmark.plugins import register_tokenizer
from benchmark.tokenizers.dummy import MelBandTokenizer


class CoarseMelTokenizer(MelBandTokenizer):
    """Four coarse mel bands (a test plugin)."""


register_tokenizer(
    "coarse-mel",
    CoarseMelTokenizer,
    params={"n_bands": 4, "levels": 8, "name": "coarse-mel"},
    description="four coarse mel bands (test plugin)",
)
