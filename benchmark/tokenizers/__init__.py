"""Tokenizer implementations, one family per module.

Their cards live in the top-level ``tokenizers/`` folder, which holds YAML only.
"""
