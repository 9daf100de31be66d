"""Utterance classification on tokens: speaker identification, emotion recognition.

Head: token front end (embeddings + layer fusion) -> utterance encoder -> linear classifier.
The encoder is the ``head`` task parameter (:mod:`benchmark.models.utterance_encoders`):
``bilstm`` (1-layer BiLSTM, masked mean and standard-deviation pooling) or ``ecapa``
(speechbrain's ECAPA-TDNN), DASB's two heads. Scored by accuracy on the test split; the
layer weights averaged over the test set go into the record.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from benchmark.api import (
    BuildContext,
    DataRef,
    MetricValue,
    Task,
    TaskInfo,
    TaskOutput,
    TaskRun,
    TokenizerInfo,
)
from benchmark.errors import DataError
from benchmark.metrics.classification import Accuracy
from benchmark.models.frontend import build_frontend
from benchmark.models.fusion import LayerWeightMeter
from benchmark.models.utterance_encoders import HEADS, build_utterance_encoder
from benchmark.tasks.training import (
    Batch,
    Example,
    TrainConfig,
    batches,
    check_embedding_init,
    examples_from_tokens,
    initial_embeddings,
    train,
)

SPLITS = ("train", "valid", "test")


class ClassificationHead(nn.Module):
    """``[B, N, K]`` tokens (or ``[B, N, K, D]`` features) -> ``[B, classes]`` logits.

    Args:
        info: the tokenizer's metadata (codebooks, or feature layers).
        num_classes: output classes.
        dim: front-end (fused frame) size.
        hidden: BiLSTM units per direction (``head="bilstm"``).
        fusion, fusion_layer: layer fusion mode and the layer of ``single``.
        init: optional ``[K, C, D_init]`` embedding initialisation.
        head: ``bilstm`` or ``ecapa``.
        ecapa: ECAPA-TDNN sizes (``channels``, ``embedding``, ``attention``), ``head="ecapa"``.
    """

    def __init__(
        self,
        info: TokenizerInfo,
        num_classes: int,
        dim: int,
        hidden: int,
        fusion: str,
        fusion_layer: int = 0,
        init: torch.Tensor | None = None,
        head: str = "bilstm",
        ecapa: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__()
        self.frontend = build_frontend(info, dim, fusion, fusion_layer, init)
        sizes = {f"ecapa_{key}": value for key, value in (ecapa or {}).items()}
        self.encoder = build_utterance_encoder(head, dim, hidden, **sizes)
        self.classifier = nn.Sequential(
            nn.Dropout(0.1), nn.Linear(self.encoder.out_dim, num_classes)
        )

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits ``[B, classes]`` and layer weights ``[B, N, K]`` (or None)."""
        fused, weights = self.frontend(batch.tokens, batch.mask)
        return self.classifier(self.encoder(fused, batch.mask)), weights


class UtteranceClassificationTask(Task):
    """Classify whole utterances into a label field of a corpus subset.

    Args:
        name: task name (from the card).
        corpus: corpus recipe (``mini``).
        subset: corpus part (``style``, ``speaker``; ``iemocap``, ``identification``).
        label_field: manifest field holding the class (``label`` or ``speaker``).
        dim, hidden: front-end and BiLSTM sizes.
        head: utterance encoder, ``bilstm`` or ``ecapa``.
        ecapa_channels, ecapa_embedding, ecapa_attention: ECAPA-TDNN block width (the
            aggregation layer has 3x), embedding size and attentive-pooling width.
        fusion: layer fusion mode; ``fusion_layer`` for ``single``.
        embedding_init: ``random`` or ``tokenizer`` (codebook vectors, when available).
        epochs, batch_size, lr: training budget; max_seconds: safety stop (fails the job).
    """

    def __init__(
        self,
        name: str,
        corpus: str,
        subset: str,
        label_field: str = "label",
        dim: int = 128,
        hidden: int = 128,
        fusion: str = "attention",
        fusion_layer: int = 0,
        embedding_init: str = "random",
        epochs: int = 20,
        batch_size: int = 32,
        lr: float = 2e-3,
        max_seconds: float = 0.0,
        head: str = "bilstm",
        ecapa_channels: int = 512,
        ecapa_embedding: int = 192,
        ecapa_attention: int = 128,
    ) -> None:
        if label_field not in ("label", "speaker"):
            raise ValueError(f"label_field must be 'label' or 'speaker', got {label_field!r}")
        if head not in HEADS:
            raise ValueError(f"head must be one of {list(HEADS)}, got {head!r}")
        for key, value in (
            ("ecapa_channels", ecapa_channels),
            ("ecapa_embedding", ecapa_embedding),
            ("ecapa_attention", ecapa_attention),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if ecapa_channels % 8:
            raise ValueError(f"ecapa_channels must be a multiple of 8, got {ecapa_channels!r}")
        self.head = head
        self.ecapa = {
            "channels": ecapa_channels, "embedding": ecapa_embedding, "attention": ecapa_attention,
        }  # fmt: skip
        self.info = TaskInfo(
            name=name, kind="classification", main_metric="accuracy", corpus=corpus
        )
        self.subset, self.label_field = subset, label_field
        self.dim, self.hidden, self.fusion, self.fusion_layer = dim, hidden, fusion, fusion_layer
        self.embedding_init = check_embedding_init(embedding_init)
        self.train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, max_seconds=max_seconds
        )

    def splits(self, context: BuildContext) -> Mapping[str, DataRef]:
        return {split: DataRef(self.info.corpus, self.subset, split) for split in SPLITS}

    def _labelled(self, split: Any, classes: dict[str, int] | None, name: str) -> list[Example]:
        items = []
        for utterance, tokens in split.items():
            label = getattr(utterance, self.label_field)
            if label is None:
                source = split.manifest.source or "the manifest"
                raise DataError(
                    f"{source}: utterance {utterance.id!r} has no {self.label_field!r}; task "
                    f"{self.info.name!r} needs one on every utterance of its {name} split"
                )
            if classes is not None and label not in classes:
                raise DataError(f"{utterance.id}: label {label!r} never seen in training")
            items.append((utterance.id, tokens, label if classes is None else classes[label]))
        return examples_from_tokens(items)

    def run(self, run: TaskRun) -> TaskOutput:
        train_labels = [getattr(u, self.label_field) for u in run.splits["train"].manifest]
        if not train_labels:
            raise DataError(f"the train split of task {self.info.name!r} is empty")
        labels = sorted({label for label in train_labels if label is not None})
        classes = {label: index for index, label in enumerate(labels)}
        train_set = self._labelled(run.splits["train"], classes, "train")
        valid_set = self._labelled(run.splits["valid"], classes, "valid")
        test_set = self._labelled(run.splits["test"], classes, "test")
        torch.manual_seed(run.seed)
        init = initial_embeddings(run, self.embedding_init)
        model = ClassificationHead(
            run.tokenizer_info,
            len(classes),
            self.dim,
            self.hidden,
            self.fusion,
            self.fusion_layer,
            init,
            self.head,
            self.ecapa,
        ).to(run.device)
        loss = nn.CrossEntropyLoss()

        def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
            logits, _ = net(batch)
            return loss(logits, torch.tensor(batch.targets, device=logits.device))

        def error_rate(net: nn.Module) -> float:
            predicted = self._predict(net, valid_set, run.device)
            correct = sum(p == e.target for p, e in zip(predicted, valid_set, strict=True))
            return 100.0 * (1.0 - correct / len(valid_set))

        result = train(
            model,
            loss_fn,
            error_rate,
            train_set,
            self.train_config,
            run.device,
            run.seed,
            run.progress,
            f"{self.info.name} head",
            "valid_error_percent",
        )
        meter = LayerWeightMeter()
        predicted = self._predict(model, test_set, run.device, meter)
        references = [e.target for e in test_set]
        ids = [e.id for e in test_set]
        accuracy = Accuracy().compute(predicted, references, ids).on_split("test")
        extras: dict[str, Any] = {
            "training": {"history": result.history, "best_epoch": result.best_epoch},
            "classes": labels,
            "head": self.head,
        }
        if meter.mean() is not None:
            extras["layer_weights"] = meter.mean()
            extras["layers"] = list(run.tokenizer_info.layers or range(len(meter.mean())))
        return TaskOutput(
            metrics={"accuracy": accuracy},
            extras=extras,
            baselines=self._baselines(train_set, references, len(classes)),
        )

    @staticmethod
    def _baselines(
        train_set: list[Example], references: list[int], num_classes: int
    ) -> dict[str, dict[str, MetricValue]]:
        """Chance (uniform guess, expected accuracy) and the majority training class."""
        counts: dict[int, int] = {}
        for example in train_set:
            counts[example.target] = counts.get(example.target, 0) + 1
        majority = max(sorted(counts), key=lambda c: counts[c])
        chance = MetricValue(
            "accuracy", "higher", 100.0 / num_classes, n=len(references), split="test"
        )
        majority_accuracy = Accuracy().compute([majority] * len(references), references)
        return {
            "chance": {"accuracy": chance},
            "majority-class": {"accuracy": majority_accuracy.on_split("test")},
        }

    @staticmethod
    def _predict(
        model: nn.Module,
        examples: list[Example],
        device: str,
        meter: LayerWeightMeter | None = None,
    ) -> list[int]:
        """Predicted class per example, in input order; layer weights go to ``meter``."""
        model.eval()
        predictions: dict[str, int] = {}
        with torch.no_grad():
            for batch in batches(examples, 64, False, torch.Generator()):
                batch = batch.to(device)
                logits, weights = model(batch)
                predictions.update(zip(batch.ids, logits.argmax(dim=-1).tolist(), strict=True))
                if meter is not None:
                    meter.add(weights, batch.mask)
        return [predictions[e.id] for e in examples]
