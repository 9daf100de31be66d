"""Resynthesis: encode and decode the clean test speech, with no model in between.

What a tokenizer's decoder alone reaches (the reconstruction view of Codec-SUPERB and DASB
v2): every test utterance's cached tokens go straight to the decoder (the tokenizer's own,
or the scalable vocoder trained on its tokens), and the audio judges compare the result with
the original recording. The original itself is scored too, as the ``ground truth`` row
(the ceiling of every non-intrusive judge).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from benchmark.api import BuildContext, DataRef, GenerationOutput, ReferenceAudio, TaskRun
from benchmark.tasks.generative import (
    DEFAULT_METRICS,
    INTRUSIVE_METRICS,
    BuiltinGenerativeTask,
    clean_references,
    own_references,
)


class ResynthesisTask(BuiltinGenerativeTask):
    """Decode the tokens of clean test speech.

    Args:
        name: task name (from the card).
        corpus: corpus recipe (``mini``, ``librispeech``, ...).
        subset: corpus part (``asr`` for the mini corpus).
        split: the split to resynthesise.
        metrics, main_metric, judge_weights: see
            :class:`~benchmark.tasks.generative.BuiltinGenerativeTask`.
        max_utterances: resynthesise at most this many (the first, in manifest order);
            0 = all.
    """

    def __init__(
        self,
        name: str,
        corpus: str,
        subset: str,
        split: str = "test",
        metrics: Sequence[str] = INTRUSIVE_METRICS + DEFAULT_METRICS,
        main_metric: str = "dwer",
        judge_weights: Mapping[str, Mapping[str, Any]] | None = None,
        max_utterances: int = 0,
    ) -> None:
        super().__init__(name, "resynthesis", corpus, metrics, main_metric, judge_weights)
        if max_utterances < 0:
            raise ValueError(f"max_utterances must be >= 0, got {max_utterances}")
        self.subset, self.split, self.max_utterances = subset, split, max_utterances

    def splits(self, context: BuildContext) -> Mapping[str, DataRef]:
        return {"test": DataRef(self.info.corpus, self.subset, self.split)}

    def _kept(self, ids: list[str]) -> list[str]:
        return ids[: self.max_utterances] if self.max_utterances else ids

    def reference_rows(self, manifests: Mapping[str, Any]) -> dict[str, list[ReferenceAudio]]:
        """``ground truth``: the original recordings, judged against themselves."""
        references = own_references(manifests["test"])
        return {"ground truth": [references[i] for i in self._kept(list(references))]}

    def run(self, run: TaskRun) -> GenerationOutput:
        split = run.splits["test"]
        generated = clean_references(split)
        rows = self.reference_rows({"test": split.manifest})
        references = [generated[i] for i in self._kept(list(generated))]
        return GenerationOutput(
            utterances=references,
            baseline_audio={name: {r.id: r.audio for r in row} for name, row in rows.items()},
            extras={"utterances": len(references)},
        )
