"""Metrics, one module per family. Built-ins are registered lazily in benchmark.registry."""
