"""Benchmark harness for discrete audio tokenizers.

Importing this package is cheap: nothing heavy (torch, transformers) is imported until a
tokenizer, task or metric is actually used. The public plugin API lives in
:mod:`benchmark.plugins` and the interfaces in :mod:`benchmark.api`.
"""

__version__ = "0.1.0"
