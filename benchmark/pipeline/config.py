"""One resolved configuration for a whole ``run`` / ``plan`` command (no argument chains)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext
from benchmark.cards import PRESETS
from benchmark.errors import UsageError
from benchmark.pipeline.keys import fingerprint


@dataclass(frozen=True)
class RunConfig:
    """Everything a command line decides, validated on construction.

    Attributes:
        tokenizers: names or card paths.
        tasks: names, card paths or ``all``.
        preset: ``mini`` or ``full``.
        seeds: one job per seed.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        workdir: caches (corpora, tokens, fitted tokenizers, job folders).
        results_dir: result records.
        data_root: where real corpora live.
        overwrite: rerun jobs whose records are up to date.
        corpus_scale: shrinks the mini corpus (tests).
        progress: progress bars.
        max_batch_seconds: padded audio per encoding batch, in seconds.
        tokenizer_params, task_params: ``--tokenizer-param`` / ``--task-param`` overrides.
        tokenizer_overrides: per-tokenizer overrides, ``{name or card path: {param: value}}``
            (stored as sorted tuples), applied after ``tokenizer_params`` to that tokenizer
            only (a study's grid; the record folder is named from the merged overrides).
        shard_utterances: utterances per extraction shard (a manifest is encoded in
            deterministic shards by utterance index, merged into one cache entry).
        threads: torch CPU threads (None: the library default).
        plugins: plugin files (steps rebuild the registries from them).
        fail_fast: stop at the first failed step instead of recording it and going on.
    """

    tokenizers: tuple[str, ...]
    tasks: tuple[str, ...]
    preset: str = "mini"
    seeds: tuple[int, ...] = (0,)
    device: str = "auto"
    workdir: Path = Path("work")
    results_dir: Path = Path("results/runs")
    data_root: Path | None = None
    overwrite: bool = False
    corpus_scale: float = 1.0
    progress: bool = True
    max_batch_seconds: float = 160.0
    tokenizer_params: tuple[tuple[str, Any], ...] = ()
    task_params: tuple[tuple[str, Any], ...] = ()
    tokenizer_overrides: tuple[tuple[str, tuple[tuple[str, Any], ...]], ...] = ()
    shard_utterances: int = 2000
    threads: int | None = None
    plugins: tuple[Path, ...] = ()
    fail_fast: bool = False

    def __post_init__(self) -> None:
        for name in ("workdir", "results_dir"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        if self.data_root is not None:
            object.__setattr__(self, "data_root", Path(self.data_root))
        object.__setattr__(self, "plugins", tuple(Path(p) for p in self.plugins))
        overrides = self.tokenizer_overrides
        if isinstance(overrides, Mapping):
            overrides = tuple(
                (str(name), tuple(sorted(dict(params).items())))
                for name, params in sorted(overrides.items())
            )
            object.__setattr__(self, "tokenizer_overrides", overrides)
        if isinstance(self.shard_utterances, bool) or not (
            isinstance(self.shard_utterances, int) and self.shard_utterances >= 1
        ):
            raise UsageError(
                f"--shard-utterances must be a positive integer, got {self.shard_utterances!r}"
            )
        if self.preset not in PRESETS:
            raise UsageError(f"unknown preset {self.preset!r}; choose one of {', '.join(PRESETS)}")
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise UsageError(f"--threads must be a positive integer, got {self.threads}")
        if not 0.0 < self.corpus_scale <= 100.0:
            raise UsageError(f"--corpus-scale must lie in (0, 100], got {self.corpus_scale}")
        if not self.device or not (
            self.device in ("auto", "cpu") or self.device.split(":")[0] == "cuda"
        ):
            raise UsageError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")

    def variant_name(self, name: str, overrides: tuple[tuple[str, Any], ...]) -> str:
        """Record folder name: the card's name, plus a short hash when params are overridden."""
        if not overrides:
            return name
        return f"{name}~{fingerprint(sorted(overrides))[:8]}"

    def tokenizer_params_of(self, name: str, ref: str | None = None) -> tuple[tuple[str, Any], ...]:
        """The overrides of one tokenizer: ``tokenizer_params``, then its own entry of
        ``tokenizer_overrides`` (looked up by registered name, then by the reference given)."""
        merged = dict(self.tokenizer_params)
        own = dict(self.tokenizer_overrides)
        for key in (name, ref):
            if key is not None and key in own:
                merged.update(dict(own[key]))
                break
        return tuple(sorted(merged.items()))

    def resolved_device(self) -> str:
        """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``.

        Raises:
            UsageError: a CUDA device is asked for and none is visible.
        """
        if self.device == "cpu":
            return "cpu"
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if not torch.cuda.is_available():
            raise UsageError(f"--device {self.device}: no CUDA device is visible; use --device cpu")
        index = int(self.device.split(":")[1]) if ":" in self.device else 0
        if index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {self.device}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
        return self.device

    def context(self, device: str, weights: Any = None, seed: int = 0) -> BuildContext:
        """The build context of one component."""
        return BuildContext(
            preset=self.preset,
            device=device,
            workdir=Path(self.workdir),
            weights=weights,
            data_root=self.data_root,
            seed=seed,
            corpus_scale=self.corpus_scale,
            progress=self.progress,
        )
