"""Speech recognition on tokens: front end -> 2-layer BiLSTM -> CTC over characters.

Greedy CTC decoding; WER and CER with jiwer on normalised text (``benchmark.metrics.asr``).
The model kept is the one with the lowest validation CER; the layer weights of the informed
layer selector, averaged over the test set's frames, go into the record.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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
from benchmark.metrics.asr import CharacterErrorRate, WordErrorRate, normalise_text
from benchmark.models.bilstm import MaskedBiLSTM
from benchmark.models.frontend import build_frontend
from benchmark.models.fusion import LayerWeightMeter
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

BLANK = 0


class CharacterVocabulary:
    """Characters of the normalised training transcripts; id 0 is the CTC blank."""

    def __init__(self, texts: Sequence[str]) -> None:
        chars = sorted({c for text in texts for c in normalise_text(text)})
        if not chars:
            raise DataError("the ASR training split has no transcripts")
        self.chars = chars
        self.index = {c: i + 1 for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        """Ids of a transcript's characters (unknown characters are dropped)."""
        return [self.index[c] for c in normalise_text(text) if c in self.index]

    def greedy_decode(self, best: Sequence[int]) -> str:
        """Collapse repeats, drop blanks, map ids back to characters."""
        out, previous = [], BLANK
        for token in best:
            if token != previous and token != BLANK:
                out.append(self.chars[token - 1])
            previous = token
        return "".join(out).strip()


def time_mask(
    frames: torch.Tensor, lengths: torch.Tensor, count: int, max_width: int
) -> torch.Tensor:
    """SpecAugment-style time masking of fused frames (a new tensor; the input is kept).

    Args:
        frames: ``[B, N, D]`` fused frames.
        lengths: ``[B]`` valid frames.
        count: masks per utterance.
        max_width: widest mask, in frames (uniform in ``0..max_width``).

    Returns:
        ``[B, N, D]`` with ``count`` random spans per utterance set to zero.
    """
    batch, n = frames.shape[:2]
    keep = torch.ones(batch, n, device=frames.device)
    positions = torch.arange(n, device=frames.device)
    for _ in range(count):
        widths = torch.randint(0, max_width + 1, (batch,), device=frames.device)
        room = (lengths.to(frames.device) - widths).clamp(min=1)
        starts = (torch.rand(batch, device=frames.device) * room).long()
        span = (positions[None] >= starts[:, None]) & (positions[None] < (starts + widths)[:, None])
        keep = keep.masked_fill(span, 0.0)
    return frames * keep.unsqueeze(-1)


def stack_frames(
    frames: torch.Tensor, lengths: torch.Tensor, stack: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate every ``stack`` consecutive frames (a lower frame rate for the encoder).

    Padded frames are zeroed first, so a last, partial group holds nothing of the padding.

    Args:
        frames: ``[B, N, D]``.
        lengths: ``[B]`` valid frames.
        stack: frames per output frame (1: unchanged).

    Returns:
        ``[B, ceil(N / stack), stack * D]`` and the ``[B]`` output lengths
        ``ceil(lengths / stack)`` (a last, partial group is zero-padded).
    """
    if stack == 1:
        return frames, lengths
    batch, n, dim = frames.shape
    groups = -(-n // stack)
    valid = torch.arange(n, device=frames.device)[None] < lengths.to(frames.device)[:, None]
    frames = frames * valid.unsqueeze(-1).to(frames.dtype)
    padded = nn.functional.pad(frames, (0, 0, 0, groups * stack - n))
    stacked = padded.reshape(batch, groups, stack * dim)
    return stacked, torch.div(lengths + stack - 1, stack, rounding_mode="floor")


class CTCHead(nn.Module):
    """Tokens ``[B, N, K]`` (or features ``[B, N, K, D]``) -> log-probabilities ``[B, M, V]``.

    With ``frame_stack`` S > 1 the BiLSTM runs on groups of S consecutive fused frames,
    ``M = ceil(N / S)``: S times fewer sequential steps (the cost of a CPU LSTM); CTC over
    characters at 25 frames/s still has room (~15 characters/s of speech). Measured on mini
    (wavlm-attn, 30 epochs): S = 2 trains in ~0.7x the time; predicting S frames per step
    instead (CTC at the tokens' rate) learned slower (valid CER 27.7 vs 19.5 at epoch 19).
    """

    def __init__(
        self,
        info: TokenizerInfo,
        vocab_size: int,
        dim: int,
        hidden: int,
        layers: int,
        fusion: str,
        fusion_layer: int = 0,
        dropout: float = 0.15,
        init: torch.Tensor | None = None,
        time_masks: int = 0,
        time_mask_width: int = 10,
        frame_stack: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(frame_stack, bool) or not isinstance(frame_stack, int) or frame_stack < 1:
            raise ValueError(f"frame_stack must be an int >= 1, got {frame_stack!r}")
        self.time_masks, self.time_mask_width = time_masks, time_mask_width
        self.frame_stack = frame_stack
        self.frontend = build_frontend(info, dim, fusion, fusion_layer, init)
        self.encoder = MaskedBiLSTM(frame_stack * dim, hidden, num_layers=layers, dropout=dropout)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(2 * hidden, vocab_size)

    def forward(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Log-probabilities ``[B, M, V]``, their ``[B]`` lengths ``M_b`` and the layer
        weights ``[B, N, K]`` of the input frames (or None)."""
        fused, weights = self.frontend(batch.tokens, batch.mask)
        if self.training and self.time_masks:
            fused = time_mask(fused, batch.lengths, self.time_masks, self.time_mask_width)
        stacked, lengths = stack_frames(fused, batch.lengths, self.frame_stack)
        encoded = self.encoder(self.dropout(stacked), lengths)
        return self.output(self.dropout(encoded)).log_softmax(dim=-1), lengths, weights


class ASRTask(Task):
    """Character CTC speech recognition on a corpus subset with transcripts.

    Args:
        name: task name (from the card).
        corpus: corpus recipe (``mini``; ``librispeech`` in ``full``).
        subset: corpus part (``asr`` for mini).
        train_split, valid_split, test_splits: split names (LibriSpeech: train-clean-100,
            dev-clean, test-clean + test-other).
        dim, hidden, layers: front-end size, BiLSTM width and depth.
        fusion, fusion_layer: layer fusion mode (informed layer selector by default).
        embedding_init: ``random`` or ``tokenizer`` (codebook vectors).
        epochs, batch_size, lr: training budget; max_seconds: safety stop (fails the job).
        dropout, time_masks, time_mask_width: regularisation (SpecAugment-style time masks
            on the fused frames while training).
        frame_stack: fused frames concatenated per BiLSTM step (1 = the tokenizer's rate).
    """

    #: Its BiLSTM over every frame is the longest job of a run (mini, 2 CPU cores: 8-11 min
    #: against 1 min for a classification head and ~5 min for the SSL pretraining, whose
    #: weight is 10): started first among ready steps, it no longer finishes last.
    SCHEDULE_COST = 16.0

    def __init__(
        self,
        name: str,
        corpus: str = "mini",
        subset: str = "asr",
        train_split: str = "train",
        valid_split: str = "valid",
        test_splits: Sequence[str] = ("test",),
        dim: int = 256,
        hidden: int = 256,
        layers: int = 2,
        fusion: str = "attention",
        fusion_layer: int = 0,
        embedding_init: str = "random",
        epochs: int = 30,
        batch_size: int = 16,
        lr: float = 2e-3,
        max_seconds: float = 0.0,
        dropout: float = 0.15,
        time_masks: int = 2,
        time_mask_width: int = 10,
        frame_stack: int = 1,
    ) -> None:
        if not test_splits:
            raise ValueError("test_splits is empty: name at least one test split")
        self.info = TaskInfo(name=name, kind="asr", main_metric="wer", corpus=corpus)
        self.subset = subset
        self.split_names = {"train": train_split, "valid": valid_split}
        self.test_splits = tuple(test_splits)
        self.dim, self.hidden, self.layers = dim, hidden, layers
        self.fusion, self.fusion_layer = fusion, fusion_layer
        self.embedding_init = check_embedding_init(embedding_init)
        self.regularisation = {
            "dropout": dropout,
            "time_masks": time_masks,
            "time_mask_width": time_mask_width,
        }
        self.frame_stack = frame_stack
        self.train_config = TrainConfig(
            epochs=epochs, batch_size=batch_size, lr=lr, max_seconds=max_seconds
        )

    def splits(self, context: BuildContext) -> Mapping[str, DataRef]:
        names = {**self.split_names, **{f"test:{s}": s for s in self.test_splits}}
        return {key: DataRef(self.info.corpus, self.subset, split) for key, split in names.items()}

    def _examples(self, split: Any, vocabulary: CharacterVocabulary) -> list[Example]:
        items = []
        for utterance, tokens in split.items():
            if utterance.text is None:
                raise DataError(
                    f"{split.manifest.source or 'the manifest'}: utterance {utterance.id!r} has "
                    f"no transcript ('text'); task {self.info.name!r} needs one on every utterance"
                )
            items.append((utterance.id, tokens, utterance.text))
        return examples_from_tokens(items)

    def run(self, run: TaskRun) -> TaskOutput:
        train_split = run.splits["train"]
        if len(train_split) == 0:
            raise DataError(f"the train split of task {self.info.name!r} is empty")
        vocabulary = CharacterVocabulary([u.text or "" for u in train_split.manifest])
        test_splits = [key for key in run.splits if key not in ("train", "valid")]
        for key in test_splits:  # a missing transcript is found before training, not after
            self._examples(run.splits[key], vocabulary)
        train_set = self._examples(train_split, vocabulary)
        valid_set = self._examples(run.splits["valid"], vocabulary)
        torch.manual_seed(run.seed)
        init = initial_embeddings(run, self.embedding_init)
        model = CTCHead(
            run.tokenizer_info,
            len(vocabulary),
            self.dim,
            self.hidden,
            self.layers,
            self.fusion,
            self.fusion_layer,
            init=init,
            frame_stack=self.frame_stack,
            **self.regularisation,
        ).to(run.device)
        ctc = nn.CTCLoss(blank=BLANK, zero_infinity=True)

        def loss_fn(net: nn.Module, batch: Batch) -> torch.Tensor:
            log_probs, lengths, _ = net(batch)
            targets = [torch.tensor(vocabulary.encode(t), dtype=torch.int64) for t in batch.targets]
            target_lengths = torch.tensor([len(t) for t in targets], dtype=torch.int64)
            return ctc(
                log_probs.transpose(0, 1),
                torch.cat(targets).to(log_probs.device),
                lengths,
                target_lengths,
            )

        def valid_cer(net: nn.Module) -> float:
            hypotheses = self._transcribe(net, valid_set, vocabulary, run.device)
            return CharacterErrorRate().compute(hypotheses, [e.target for e in valid_set]).value

        result = train(
            model,
            loss_fn,
            valid_cer,
            train_set,
            self.train_config,
            run.device,
            run.seed,
            run.progress,
            f"{self.info.name} head",
            "valid_cer_percent",
        )
        metrics, extras = (
            {},
            {
                "training": {
                    "history": result.history,
                    "best_epoch": result.best_epoch,
                    "seconds": result.seconds,
                },
                "vocabulary": "".join(vocabulary.chars),
            },
        )
        meter, examples_out = LayerWeightMeter(), {}
        baselines: dict[str, dict[str, MetricValue]] = {"empty-transcript": {}}
        for split_name in self.test_splits:
            test_set = self._examples(run.splits[f"test:{split_name}"], vocabulary)
            hypotheses = self._transcribe(model, test_set, vocabulary, run.device, meter)
            references = [e.target for e in test_set]
            ids = [e.id for e in test_set]
            suffix = "" if len(self.test_splits) == 1 else f"_{split_name}"
            for name, metric in (("wer", WordErrorRate()), ("cer", CharacterErrorRate())):
                value = metric.compute(hypotheses, references, ids).on_split(split_name)
                metrics[f"{name}{suffix}"] = value
                empty = metric.compute([""] * len(references), references)
                baselines["empty-transcript"][f"{name}{suffix}"] = empty.on_split(split_name)
            examples_out[split_name] = [
                {"id": e.id, "reference": e.target, "hypothesis": h}
                for e, h in list(zip(test_set, hypotheses, strict=True))[:5]
            ]
        if len(self.test_splits) > 1:  # the main metric is the first test split's WER
            metrics["wer"] = metrics[f"wer_{self.test_splits[0]}"]
            baselines["empty-transcript"]["wer"] = baselines["empty-transcript"][
                f"wer_{self.test_splits[0]}"
            ]
        extras["transcripts"] = examples_out
        if meter.mean() is not None:
            extras["layer_weights"] = meter.mean()
            extras["layers"] = list(run.tokenizer_info.layers or range(len(meter.mean())))
        return TaskOutput(metrics=metrics, extras=extras, baselines=baselines)

    @staticmethod
    def _transcribe(
        model: nn.Module,
        examples: list[Example],
        vocabulary: CharacterVocabulary,
        device: str,
        meter: LayerWeightMeter | None = None,
    ) -> list[str]:
        """Greedy transcripts in input order; layer weights go to ``meter`` when given."""
        model.eval()
        hypotheses: dict[str, str] = {}
        with torch.no_grad():
            for batch in batches(examples, 32, False, torch.Generator()):
                batch = batch.to(device)
                log_probs, lengths, weights = model(batch)
                best = log_probs.argmax(dim=-1).cpu()
                for row, utt_id in enumerate(batch.ids):
                    n = int(lengths[row])
                    hypotheses[utt_id] = vocabulary.greedy_decode(best[row, :n].tolist())
                if meter is not None:
                    meter.add(weights, batch.mask)
        return [hypotheses[e.id] for e in examples]
