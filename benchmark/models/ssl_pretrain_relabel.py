"""HuBERT's second iteration: new frame targets from the partly trained model's own layer.

HuBERT's first iteration predicts clusters of hand-made spectral features; its second one
clusters the outputs of an intermediate layer of the first iteration's model, which carry
context the spectral frames do not, and predicts those instead. Here the second iteration
continues the same model (the short CPU budget has no room for a restart): at
``relabel_step`` the model encodes every training utterance, whole and unmasked, the chosen
layer's outputs are standardised per dimension and clustered on every frame, and training
goes on with those ids as (additional) targets.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from benchmark.models.ssl_features import block_outputs
from benchmark.models.ssl_pretrain_data import PretrainCorpus, cluster_targets, standardise

log = logging.getLogger(__name__)


def layer_features(
    model: nn.Module,
    corpus: PretrainCorpus,
    layer: int,
    progress: bool = False,
    batch_size: int = 16,
) -> torch.Tensor:
    """Outputs ``[F, D]`` float32 of transformer block ``layer`` for every corpus frame.

    Each utterance is encoded whole and unpadded (the group-norm front end normalises over
    the whole input, so padding would change it): utterances of the same length go through
    together, up to ``batch_size`` at a time (measured on the mini corpus, one thread: 1.7x
    faster than one at a time; the result is the same up to float rounding). Eval mode (no
    masking), truncated after ``layer`` (:func:`~benchmark.models.ssl_features.block_outputs`:
    layer ``l`` is what the tokenizers extract as layer ``l``); the model is put back in its
    mode afterwards.

    Args:
        model: a transformers ``WavLMModel`` / ``HubertModel``.
        corpus: the pretraining audio (already normalised); row ``i`` of the result is frame
            ``i`` of the corpus.
        layer: 1..num_hidden_layers.
        progress: show a progress bar.
        batch_size: utterances per forward at most.

    Raises:
        RuntimeError: the encoder's frame count differs from the corpus's.
    """
    by_length: dict[int, list[int]] = {}
    for u in range(corpus.num_utterances):
        length = int(corpus.sample_offsets[u + 1] - corpus.sample_offsets[u])
        by_length.setdefault(length, []).append(u)
    batches = [
        group[i : i + batch_size]
        for group in by_length.values()
        for i in range(0, len(group), batch_size)
    ]
    out = torch.empty(corpus.num_frames, int(model.config.hidden_size))
    was_training = model.training
    model.eval()
    try:
        for batch in tqdm(batches, desc="relabel: encoding", disable=not progress, leave=False):
            wav = torch.stack(
                [
                    corpus.audio[int(corpus.sample_offsets[u]) : int(corpus.sample_offsets[u + 1])]
                    for u in batch
                ]
            ).float()
            (states,) = block_outputs(model, wav, [layer])
            for row, u in enumerate(batch):
                f0, f1 = int(corpus.frame_offsets[u]), int(corpus.frame_offsets[u + 1])
                if states.shape[1] != f1 - f0:
                    raise RuntimeError(
                        f"utterance {u}: the encoder gave {states.shape[1]} frames, the corpus "
                        f"counts {f1 - f0}"
                    )
                out[f0:f1] = states[row]
    finally:
        model.train(was_training)
    return out


def relabel_targets(
    model: nn.Module,
    corpus: PretrainCorpus,
    layer: int,
    n_clusters: int,
    seed: int,
    max_iter: int,
    progress: bool = False,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """The second iteration's cluster ids ``[F]`` int64 of every corpus frame, and a summary.

    Args:
        model: the model trained so far.
        corpus: the pretraining audio.
        layer: whose outputs are clustered.
        n_clusters: K.
        seed: the k-means seed.
        max_iter: exact Lloyd passes at most.

    Returns:
        The ids and ``{"kind": "layer<l>", "K", "inertia", "passes", "clusters_used",
        "seconds"}``.
    """
    started = time.perf_counter()
    features = standardise(layer_features(model, corpus, layer, progress))
    ids, summary = cluster_targets(features, n_clusters, seed, max_iter)
    summary = {
        "kind": f"layer{layer}",
        **summary,
        "seconds": round(time.perf_counter() - started, 2),
    }
    log.info(
        "second-iteration targets: layer %d K=%d, inertia %.4f, %.0f s",
        layer, n_clusters, summary["inertia"], summary["seconds"],
    )  # fmt: skip
    return ids, summary
