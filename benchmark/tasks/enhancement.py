"""Speech enhancement on tokens: noisy tokens in, clean tokens out, decoded and judged.

The tokens of each noisy file and of its clean twin (the ``<subset>:clean`` view of the same
pair manifest, :mod:`benchmark.data.views`) train a non-autoregressive transformer
(:class:`~benchmark.models.token_enhancer.TokenEnhancer`) that predicts every codebook's clean
token at every frame (cross-entropy per codebook). Its argmax tokens on the noisy test files
are decoded by the harness and judged against the clean twins. Each record also scores, on
the same utterances:

- ``noisy input``: the noisy files themselves (the trivial baseline: doing nothing);
- ``resynthesis ceiling``: the tokens of the clean twins, decoded by the same decoder (what a
  perfect token predictor would reach through this tokenizer);
- ``ground truth``: the clean twins (the ceiling of every non-intrusive judge).

``full``: VoiceBank-DEMAND (28-speaker set; valid held out from train by speaker).
``mini``: the synthetic noisy/clean pairs of the mini corpus.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from benchmark.api import BuildContext, DataRef, GenerationOutput, ReferenceAudio, TaskRun
from benchmark.cache import TokenSplit
from benchmark.data.views import CLEAN_SUFFIX
from benchmark.errors import DataError
from benchmark.models.token_enhancer import (
    EnhancerConfig,
    TokenEnhancer,
    describe,
    pair_examples,
    predict,
    token_accuracy,
    train_enhancer,
)
from benchmark.tasks.generative import (
    DEFAULT_METRICS,
    INTRUSIVE_METRICS,
    BuiltinGenerativeTask,
    clean_references,
    own_references,
)
from benchmark.tasks.training import TrainConfig, check_embedding_init, initial_embeddings

SPLITS = ("train", "valid", "test")


def _copy_accuracy(examples: list) -> float:
    """Share of clean tokens (frames x codebooks) equal to the noisy ones."""
    same = total = 0
    for example in examples:
        noisy, clean = example.tokens.numpy(), example.target.numpy()
        same += int((noisy == clean).sum())
        total += clean.size
    return same / max(total, 1)


class EnhancementTask(BuiltinGenerativeTask):
    """Token enhancement of noisy speech.

    Args:
        name: task name (from the card).
        corpus: ``mini`` or ``voicebank``.
        subset: the pair subset (``enhance`` for mini, ``voicebank`` for VoiceBank-DEMAND).
        metrics, main_metric, judge_weights: see
            :class:`~benchmark.tasks.generative.BuiltinGenerativeTask`.
        dim, layers, heads, ff, dropout, fusion: enhancer size
            (:class:`~benchmark.models.token_enhancer.EnhancerConfig`).
        embedding_init: ``random`` or ``tokenizer`` (codebook vectors).
        epochs, batch_size, lr, max_seconds: training budget.
    """

    def __init__(
        self,
        name: str,
        corpus: str,
        subset: str,
        metrics: Sequence[str] = INTRUSIVE_METRICS + DEFAULT_METRICS,
        main_metric: str = "dnsmos_ovrl",
        judge_weights: Mapping[str, Mapping[str, Any]] | None = None,
        dim: int = 256,
        layers: int = 4,
        heads: int = 4,
        ff: int = 1024,
        dropout: float = 0.1,
        fusion: str = "attention",
        embedding_init: str = "random",
        epochs: int = 20,
        batch_size: int = 16,
        lr: float = 5e-4,
        max_seconds: float = 0.0,
    ) -> None:
        super().__init__(name, "enhancement", corpus, metrics, main_metric, judge_weights)
        self.subset = subset
        self.model_config = EnhancerConfig(dim, layers, heads, ff, dropout, fusion)
        self.embedding_init = check_embedding_init(embedding_init)
        self.train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, max_seconds=max_seconds
        )

    def splits(self, context: BuildContext) -> Mapping[str, DataRef]:
        corpus, subset = self.info.corpus, self.subset
        out = {}
        for split in SPLITS:
            out[split] = DataRef(corpus, subset, split)
            out[f"{split}-clean"] = DataRef(corpus, subset + CLEAN_SUFFIX, split)
        return out

    @staticmethod
    def _pairs(noisy: TokenSplit, clean: TokenSplit) -> list[tuple[str, Any, Any]]:
        missing = sorted(set(noisy.ids) - set(clean.ids))
        if missing:
            raise DataError(
                f"{noisy.manifest.source}: {len(missing)} noisy utterances without a clean twin "
                f"(first: {missing[0]!r})"
            )
        return [(utt_id, noisy[utt_id], clean[utt_id]) for utt_id in noisy.ids]

    def reference_rows(self, manifests: Mapping[str, Any]) -> dict[str, list[ReferenceAudio]]:
        """``noisy input`` (each noisy test file judged against its clean twin) and ``ground
        truth`` (the clean twins against themselves), in the noisy manifest's order."""
        noisy = manifests["test"]
        twins = own_references(manifests["test-clean"])
        rows: dict[str, list[ReferenceAudio]] = {"noisy input": [], "ground truth": []}
        for utterance in noisy:
            twin = twins.get(utterance.id)
            if twin is None:  # run() refuses the pair (DataError)
                continue
            audio = Path(noisy.audio_path(utterance)).resolve()
            rows["noisy input"].append(dataclasses.replace(twin, audio=audio))
            rows["ground truth"].append(twin)
        return rows

    def run(self, run: TaskRun) -> GenerationOutput:
        splits = run.splits
        train_set = pair_examples(self._pairs(splits["train"], splits["train-clean"]))
        valid_set = pair_examples(self._pairs(splits["valid"], splits["valid-clean"]))
        test_set = pair_examples(self._pairs(splits["test"], splits["test-clean"]))
        torch.manual_seed(run.seed)
        init = initial_embeddings(run, self.embedding_init)
        model = TokenEnhancer(run.tokenizer_info, self.model_config, init).to(run.device)
        result = train_enhancer(
            model, train_set, valid_set, self.train_config, run.device, run.seed, run.progress
        )
        enhanced = predict(model, test_set, run.device)
        clean = clean_references(splits["test-clean"])
        rows = self.reference_rows({k: splits[k].manifest for k in ("test", "test-clean")})
        utterances = []
        for example in test_set:
            reference = clean[example.id]
            reference.tokens = enhanced[example.id]
            utterances.append(reference)
        ceiling = {utt_id: splits["test-clean"][utt_id].copy() for utt_id in enhanced}
        return GenerationOutput(
            utterances=utterances,
            baseline_audio={name: {r.id: r.audio for r in row} for name, row in rows.items()},
            baseline_tokens={"resynthesis ceiling": ceiling},
            extras={
                "training": {"history": result.history, "best_epoch": result.best_epoch},
                "test_token_accuracy": token_accuracy(model, test_set, run.device),
                # the trivial baseline of the token accuracy: copy the noisy tokens
                "noisy_token_accuracy": _copy_accuracy(test_set),
                "model": describe(model),
            },
        )
