"""The pipeline: a command line becomes a graph of fingerprinted steps, run by an executor.

- :mod:`~benchmark.pipeline.store`: atomic writes, per-output file locks, stale temp cleanup.
- :mod:`~benchmark.pipeline.records`: the typed :class:`ResultRecord` and its reader.
- :mod:`~benchmark.pipeline.keys`: fingerprints that cannot go stale (code, libraries, audio).
- :mod:`~benchmark.pipeline.plan`: command line -> :class:`~benchmark.pipeline.graph.StepGraph`.
- :mod:`~benchmark.pipeline.steps`: one function per step kind (inputs in, outputs written).
- :mod:`~benchmark.pipeline.local`: the in-process executor.
"""
