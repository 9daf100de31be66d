"""Plans and executes runs: prepare -> fit -> encode (cached) -> train/evaluate -> record.

Every (tokenizer, task, seed) is one job whose fingerprint covers the tokenizer card, the
tokenizer's fitting data, the task card, the data manifests, the seed and the record schema.
A job whose record already holds that fingerprint with status ok is skipped
before anything is built; otherwise its steps run in process, each reading only its declared
inputs. A failing job leaves a ``failed`` record and the run goes on with the next.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import traceback
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmark.api import BuildContext, FitData, Task, Tokenizer, TokenizerInfo, construct
from benchmark.cache import TokenCache, TokenSplit
from benchmark.cards import PRESETS, ResolvedCard
from benchmark.data.batching import iter_audio_batches
from benchmark.data.corpora import corpus_manifest
from benchmark.data.manifest import Manifest
from benchmark.errors import BenchmarkError, UsageError, WeightsUnavailableError
from benchmark.profiling import Profile
from benchmark.registry import Entry, Registries
from benchmark.results import (
    SCHEMA_VERSION,
    code_version,
    device_description,
    fingerprint,
    is_up_to_date,
    package_versions,
    record_path,
    write_record,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunConfig:
    """One resolved configuration for a whole ``run`` command (no argument chains)."""

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
    threads: int | None = None

    def variant_name(self, name: str, overrides: tuple[tuple[str, Any], ...]) -> str:
        """Record folder name: the card's name, plus a short hash when params are overridden."""
        if not overrides:
            return name
        return f"{name}~{fingerprint(sorted(overrides))[:8]}"

    def resolved_device(self) -> str:
        """``auto`` becomes ``cuda`` when a GPU is visible, else ``cpu``."""
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


@dataclass
class TaskRun:
    """What a task's ``run`` receives: cached tokens per split and the run's settings."""

    tokenizer_info: TokenizerInfo
    tokenizer: Tokenizer
    splits: dict[str, TokenSplit]
    context: BuildContext
    seed: int
    device: str
    out_dir: Path
    progress: bool = True

    def embeddings(self) -> Any:
        """The tokenizer's codebook vectors ``[K, C, D]`` or None."""
        return self.tokenizer.embeddings()


@dataclass
class JobOutcome:
    """One finished (or skipped) job."""

    tokenizer: str
    task: str
    seed: int
    status: str
    path: Path
    skipped: bool = False
    main_metric: str | None = None
    value: float | None = None
    error: str | None = None


@dataclass
class PreparedTokenizer:
    """A tokenizer built (and fitted) for this run, with the fingerprint of its tokens."""

    tokenizer: Tokenizer
    fingerprint: str
    extractor: Tokenizer | None = None
    kept_codebooks: int | None = None


class Runner:
    """Executes a :class:`RunConfig` against registries, in process."""

    def __init__(self, config: RunConfig, registries: Registries) -> None:
        if config.preset not in PRESETS:
            raise UsageError(
                f"unknown preset {config.preset!r}; choose one of {', '.join(PRESETS)}"
            )
        self.config = config
        self.registries = registries
        self.device = config.resolved_device()
        if config.threads:
            import torch

            torch.set_num_threads(config.threads)
        self.cache = TokenCache(Path(config.workdir) / "tokens")
        self.outcomes: list[JobOutcome] = []

    def context(self, card: ResolvedCard | None, seed: int = 0) -> BuildContext:
        """The build context of one component."""
        return BuildContext(
            preset=self.config.preset,
            device=self.device,
            workdir=Path(self.config.workdir),
            weights=card.weights if card else None,
            data_root=self.config.data_root,
            seed=seed,
            corpus_scale=self.config.corpus_scale,
            progress=self.config.progress,
        )

    # --- planning -------------------------------------------------------------------------

    def task_names(self) -> list[str]:
        """The tasks to run, with ``all`` expanded to every registered task."""
        if "all" in self.config.tasks:
            return self.registries.task.names()
        return list(self.config.tasks)

    def run(self) -> list[JobOutcome]:
        """Run every (tokenizer, task, seed); return the outcomes (failures included)."""
        tokenizer_entries = [
            self.registries.resolve_name("tokenizer", n) for n in self.config.tokenizers
        ]
        task_entries = [self.registries.resolve_name("task", n) for n in self.task_names()]
        for entry in tokenizer_entries + task_entries:
            entry.load()  # contract check before any work
        for tokenizer_entry in tokenizer_entries:
            self._run_tokenizer(tokenizer_entry, task_entries)
        return self.outcomes

    def _run_tokenizer(self, tokenizer_entry: Entry, task_entries: list[Entry]) -> None:
        tok_card = self.resolve_card(tokenizer_entry, self.config.tokenizer_params)
        state: PreparedTokenizer | None = None
        build_error: BaseException | None = None
        for task_entry in task_entries:
            task_card = self.resolve_card(task_entry, self.config.task_params)
            try:
                task = construct(
                    task_entry.load(), task_card.params, self.context(task_card), task_entry.name
                )
                manifests = dict(task.splits(self.context(task_card)))
            except BenchmarkError as exc:
                for seed in self.config.seeds:
                    self._write_failure(
                        tokenizer_entry, task_entry, tok_card, task_card, seed, None, exc
                    )
                continue
            for seed in self.config.seeds:
                job_fp = self._job_fingerprint(tok_card, task_card, manifests, seed)
                path = self._record_path(tokenizer_entry, task_entry, seed)
                if not self.config.overwrite and is_up_to_date(path, job_fp):
                    log.info(
                        "%s / %s / seed %d: up to date, skipped",
                        tokenizer_entry.name,
                        task_entry.name,
                        seed,
                    )
                    self._skipped(tokenizer_entry.name, task_entry.name, seed, path)
                    continue
                if state is None and build_error is None:
                    try:
                        state = self.build_tokenizer(tokenizer_entry, tok_card)
                    except (Exception, KeyboardInterrupt) as exc:
                        if isinstance(exc, KeyboardInterrupt):
                            raise
                        build_error = exc
                if build_error is not None:
                    self._write_failure(
                        tokenizer_entry, task_entry, tok_card, task_card, seed, job_fp, build_error
                    )
                    continue
                self._run_job(
                    tokenizer_entry,
                    task_entry,
                    tok_card,
                    task_card,
                    task,
                    manifests,
                    seed,
                    job_fp,
                    state,
                )

    def _job_fingerprint(
        self,
        tok_card: ResolvedCard,
        task_card: ResolvedCard,
        manifests: Mapping[str, Manifest],
        seed: int,
    ) -> str:
        return fingerprint(
            {
                "schema": SCHEMA_VERSION,
                "preset": self.config.preset,
                "tokenizer": tok_card.fingerprint_payload(),
                "task": task_card.fingerprint_payload(),
                "manifests": {k: m.fingerprint() for k, m in sorted(manifests.items())},
                "seed": seed,
            }
        )

    # --- steps ----------------------------------------------------------------------------

    def build_tokenizer(self, entry: Entry, card: ResolvedCard) -> PreparedTokenizer:
        """Construct the tokenizer and fit it (once per fit fingerprint) when it needs to."""
        tokenizer = construct(entry.load(), card.params, self.context(card), entry.name)
        fit_fp = None
        if tokenizer.needs_fit:
            fit_fp = self.fit_tokenizer(tokenizer, card)
        tokenizer_fp = fingerprint(
            {
                "card": card.fingerprint_payload(),
                "info": tokenizer.info.to_dict(),
                "state": dict(tokenizer.state_fingerprint()),
                "fit": fit_fp,
            }
        )
        variant = tokenizer.extraction_variant()
        if variant is None:
            return PreparedTokenizer(tokenizer, tokenizer_fp)
        full_params, kept = variant
        full_params = {k: v for k, v in full_params.items() if k != "name"}
        own_params = {k: v for k, v in card.params.items() if k != "name"}
        extractor = (
            tokenizer
            if full_params == own_params
            else construct(entry.load(), full_params, self.context(card))
        )
        if not 0 < kept <= extractor.info.num_codebooks:
            raise BenchmarkError(
                f"tokenizer {entry.name!r}: extraction_variant keeps {kept} codebooks, the full "
                f"extraction has 1..{extractor.info.num_codebooks}"
            )
        # Names are left out, so every card that shares the full extraction shares its cache.
        info = {k: v for k, v in extractor.info.to_dict().items() if k != "name"}
        extractor_fp = fingerprint(
            {
                "class": card.card.target,
                "params": full_params,
                "weights": dict(card.weights) if card.weights else None,
                "info": info,
                "state": dict(extractor.state_fingerprint()),
            }
        )
        return PreparedTokenizer(tokenizer, extractor_fp, extractor, kept)

    def resolve_card(
        self, entry: Entry, overrides: tuple[tuple[str, Any], ...] = ()
    ) -> ResolvedCard:
        """The entry's card for this run's preset, with command-line overrides applied."""
        return entry.card.resolve(self.config.preset).with_overrides(dict(overrides))

    def prepare_tokenizer(self, name_or_card: str) -> PreparedTokenizer:
        """Build and fit a tokenizer by name or card path (for commands beyond ``run``)."""
        entry = self.registries.resolve_name("tokenizer", name_or_card)
        return self.build_tokenizer(entry, self.resolve_card(entry, self.config.tokenizer_params))

    def fit_tokenizer(self, tokenizer: Tokenizer, card: ResolvedCard) -> str:
        """Fit the tokenizer on its fit data once per fingerprint, then load what it learnt.

        Returns:
            The fit fingerprint (card + data manifest), part of the tokenizer fingerprint.
        """
        spec = dict(tokenizer.fit_data_spec() or {})
        manifest = corpus_manifest(
            spec.get("corpus", "mini"),
            spec["subset"],
            spec.get("split", "train"),
            self.context(card),
        )
        fit_fp = fingerprint(
            {
                "card": card.fingerprint_payload(),
                "state": dict(tokenizer.state_fingerprint()),  # weights identity, pre-fit
                "data": manifest.fingerprint(),
            }
        )
        out_dir = Path(self.config.workdir) / "fitted" / fit_fp[:16]
        marker = out_dir / "COMPLETE"
        if not marker.is_file():
            tmp = out_dir.with_name(out_dir.name + ".partial")
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            rate = tokenizer.info.sample_rate
            data = FitData(
                name=f"{spec.get('corpus', 'mini')}/{spec['subset']}/{spec.get('split', 'train')}",
                batches=lambda: (
                    (wav, lengths)
                    for _, wav, lengths in iter_audio_batches(
                        manifest, rate, self.config.max_batch_seconds
                    )
                ),
                num_utterances=len(manifest),
            )
            log.info(
                "fitting %s on %s (%d utterances)", tokenizer.info.name, data.name, len(manifest)
            )
            tokenizer.fit(data, tmp)
            (tmp / "COMPLETE").write_text(fit_fp + "\n")
            shutil.rmtree(out_dir, ignore_errors=True)
            tmp.rename(out_dir)
        tokenizer.load_fitted(out_dir)
        return fit_fp

    def tokens(self, state: PreparedTokenizer, split: str, manifest: Manifest) -> TokenSplit:
        """Cached tokens of one manifest, encoding it if the cache lacks them.

        A codebook-prefix variant reads the full extraction's cache and keeps its first
        codebooks (a view, no copy).
        """
        encoder = state.extractor or state.tokenizer
        sizes = encoder.info.codebook_sizes
        cached = self.cache.load(state.fingerprint, manifest, sizes)
        if cached is None:
            from tqdm.auto import tqdm

            rate = encoder.info.sample_rate
            batches = iter_audio_batches(manifest, rate, self.config.max_batch_seconds)
            bar = tqdm(
                batches,
                desc=f"encode {encoder.info.name} {split}",
                unit="batch",
                disable=not self.config.progress,
                leave=False,
            )
            cached = self.cache.build(encoder, state.fingerprint, manifest, iter(bar))
        if state.kept_codebooks is None:
            return cached
        return dataclasses.replace(
            cached,
            data=cached.data[:, : state.kept_codebooks],
            codebook_sizes=state.tokenizer.info.codebook_sizes,
        )

    def _run_job(
        self,
        tok_entry: Entry,
        task_entry: Entry,
        tok_card: ResolvedCard,
        task_card: ResolvedCard,
        task: Task,
        manifests: Mapping[str, Manifest],
        seed: int,
        job_fp: str,
        state: PreparedTokenizer,
    ) -> None:
        path = self._record_path(tok_entry, task_entry, seed)
        profile = Profile()
        started = datetime.now(UTC).isoformat(timespec="seconds")
        record = self._base_record(
            tok_entry, task_entry, tok_card, task_card, manifests, seed, job_fp
        )
        record["tokenizer_info"] = state.tokenizer.info.to_dict()
        try:
            with profile.step("encode", self.device):
                splits = {name: self.tokens(state, name, m) for name, m in manifests.items()}
            out_dir = Path(self.config.workdir) / "jobs" / job_fp[:16]
            out_dir.mkdir(parents=True, exist_ok=True)
            task_run = TaskRun(
                state.tokenizer.info,
                state.tokenizer,
                splits,
                self.context(task_card, seed),
                seed,
                self.device,
                out_dir,
                self.config.progress,
            )
            with profile.step("task", self.device):
                output = task.run(task_run)
            main = task.info.main_metric
            if main not in output.metrics:
                raise BenchmarkError(
                    f"task {task_entry.name!r} did not report its main metric {main!r}"
                )
            record.update(
                status="ok",
                metrics={name: value.to_dict() for name, value in output.metrics.items()},
                main_metric=main,
                extras=output.extras,
            )
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # a failing job is recorded, the run goes on
            record.update(_error_fields(exc))
        record["timings"] = {"started": started, **profile.to_dict()}
        write_record(path, record)
        self._outcome(tok_entry.name, task_entry.name, seed, path, record)

    # --- records --------------------------------------------------------------------------

    def _record_path(self, tok_entry: Entry, task_entry: Entry, seed: int) -> Path:
        return record_path(
            self.config.results_dir,
            self.config.preset,
            self.config.variant_name(tok_entry.name, self.config.tokenizer_params),
            self.config.variant_name(task_entry.name, self.config.task_params),
            seed,
        )

    def _base_record(
        self,
        tok_entry: Entry,
        task_entry: Entry,
        tok_card: ResolvedCard,
        task_card: ResolvedCard,
        manifests: Mapping[str, Manifest] | None,
        seed: int,
        job_fp: str | None,
    ) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "status": "failed",
            "tokenizer": self.config.variant_name(tok_entry.name, self.config.tokenizer_params),
            "task": self.config.variant_name(task_entry.name, self.config.task_params),
            "overrides": {
                "tokenizer": dict(self.config.tokenizer_params),
                "task": dict(self.config.task_params),
            },
            "seed": seed,
            "preset": self.config.preset,
            "fingerprint": job_fp,
            "metrics": {},
            "main_metric": None,
            "config": {
                "tokenizer": tok_card.fingerprint_payload(),
                "task": task_card.fingerprint_payload(),
                "device": self.device,
                "threads": self.config.threads,
                "corpus_scale": self.config.corpus_scale,
            },
            "provenance": {
                "code": code_version(),
                "packages": package_versions(),
                "device": device_description(self.device),
                "tokenizer_source": tok_entry.source.to_dict(),
                "task_source": task_entry.source.to_dict(),
                "weights": dict(tok_card.weights) if tok_card.weights else None,
                "cards": {"tokenizer": tok_entry.card.sha256, "task": task_entry.card.sha256},
                "manifests": (
                    {k: m.fingerprint() for k, m in sorted(manifests.items())}
                    if manifests
                    else None
                ),
            },
            "error": None,
        }

    def _write_failure(
        self,
        tok_entry: Entry,
        task_entry: Entry,
        tok_card: ResolvedCard,
        task_card: ResolvedCard,
        seed: int,
        job_fp: str | None,
        exc: BaseException,
    ) -> None:
        path = self._record_path(tok_entry, task_entry, seed)
        record = self._base_record(tok_entry, task_entry, tok_card, task_card, None, seed, job_fp)
        record.update(_error_fields(exc))
        write_record(path, record)
        self._outcome(tok_entry.name, task_entry.name, seed, path, record)

    def _outcome(self, tokenizer: str, task: str, seed: int, path: Path, record: dict) -> None:
        main = record.get("main_metric")
        value = record["metrics"].get(main, {}).get("value") if main else None
        error = record["error"]["message"] if record.get("error") else None
        self.outcomes.append(
            JobOutcome(tokenizer, task, seed, record["status"], path, False, main, value, error)
        )

    def _skipped(self, tokenizer: str, task: str, seed: int, path: Path) -> None:
        from benchmark.results import read_record

        record = read_record(path) or {}
        main = record.get("main_metric")
        value = record.get("metrics", {}).get(main, {}).get("value") if main else None
        self.outcomes.append(
            JobOutcome(tokenizer, task, seed, record.get("status", "ok"), path, True, main, value)
        )


def _error_fields(exc: BaseException) -> dict[str, Any]:
    """``status`` and ``error`` of a record for an exception (unavailable for missing weights)."""
    status = "unavailable" if isinstance(exc, WeightsUnavailableError) else "failed"
    return {
        "status": status,
        "error": {
            "type": type(exc).__name__,
            "message": str(exc),
            "traceback": "".join(traceback.format_exception(exc)),
        },
    }
