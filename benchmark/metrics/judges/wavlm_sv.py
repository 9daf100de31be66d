"""WavLM x-vector speaker embeddings for the ``full`` preset's speaker similarity.

The default is ``microsoft/wavlm-base-sv`` (WavLM Base fine-tuned for speaker verification
on VoxCeleb1 with an x-vector head and AM-softmax) at a pinned commit, through transformers'
:class:`~transformers.WavLMForXVector`; a local folder written by ``save_pretrained``
(weights and ``preprocessor_config.json``) works the same way. Loading goes through
:func:`benchmark.models.hf_weights.load_weights`.

Each waveform is embedded on its own (no padding; the model's group-norm front end is not
padding-exact), after the checkpoint's feature extractor (zero-mean, unit-variance
normalisation where its config asks for it); embeddings are L2-normalised, so the cosine
similarity of two is their dot product.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import JudgeUnavailableError, WeightsUnavailableError
from benchmark.models import hf_weights

#: The pinned default: microsoft/wavlm-base-sv at a commit of its hub repository.
WAVLM_BASE_SV: dict[str, str] = {
    "hub": "microsoft/wavlm-base-sv",
    "revision": "0a23162ffc49adcf42bdf836a00cb2eb45af3601",
}


class WavLMSpeakerEmbedder:
    """A WavLM x-vector checkpoint that embeds 16 kHz waveforms.

    Args:
        weights: ``{"hub": id, "revision": sha}`` or ``{"path": dir}``; default
            :data:`WAVLM_BASE_SV`.
        device: torch device.

    Raises:
        JudgeUnavailableError: the weights or the feature-extractor config cannot be had.
    """

    sample_rate = 16000

    def __init__(self, weights: Mapping[str, Any] | None = None, device: str = "cpu") -> None:
        from transformers import Wav2Vec2FeatureExtractor

        weights = dict(weights or WAVLM_BASE_SV)
        try:
            self.loaded = hf_weights.load_weights(
                weights,
                family="wavlm",
                what="speaker-verification model",
                classes=hf_weights.transformers_classes("WavLMConfig", "WavLMForXVector"),
                model_type="wavlm",
                device=device,
                hub_files=("preprocessor_config.json",),
            )
        except WeightsUnavailableError as exc:
            raise JudgeUnavailableError(f"WavLM speaker embedder: {exc}") from None
        if not (Path(self.loaded.folder) / "preprocessor_config.json").is_file():
            raise JudgeUnavailableError(
                f"WavLM speaker embedder: {self.loaded.folder} has no preprocessor_config.json; "
                "save the checkpoint's Wav2Vec2FeatureExtractor into the weights folder"
            )
        self.extractor = Wav2Vec2FeatureExtractor.from_pretrained(self.loaded.folder)
        self.device = device

    def identity(self) -> dict[str, Any]:
        """Model id and pinned revision (or local folder hashes)."""
        loaded = self.loaded
        out: dict[str, Any] = {"name": "wavlm x-vector", "source": loaded.source}
        if loaded.source == "hub":
            out.update(hub=loaded.name, revision=loaded.revision)
        out.update(
            config_sha256=loaded.config_sha256,
            weights_sha256=loaded.weights_sha256,
            weight_files=dict(sorted(loaded.weight_files.items())),
            transformers=metadata.version("transformers"),
        )
        return out

    def embed(self, waves: Sequence[torch.Tensor]) -> torch.Tensor:
        """Unit-norm x-vectors ``[B, D]`` of ``[T]`` waveforms at 16 kHz, one at a time."""
        out = []
        with torch.no_grad():
            for wave in waves:
                inputs = self.extractor(
                    wave.detach().cpu().float().numpy(),
                    sampling_rate=self.sample_rate,
                    return_tensors="pt",
                )
                embeddings = self.loaded.model(inputs.input_values.to(self.device)).embeddings
                out.append(torch.nn.functional.normalize(embeddings, dim=-1).cpu())
        return torch.cat(out)


# --------------------------------------------------------------------------- tiny models

TINY_SPEC: dict[str, Any] = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "conv_dim": (16,) * 7,
    "num_conv_pos_embeddings": 16,
    "num_conv_pos_embedding_groups": 2,
    "tdnn_dim": (32, 32, 64),
    "tdnn_kernel": (5, 3, 1),
    "tdnn_dilation": (1, 2, 1),
    "xvector_output_dim": 24,
    "mask_time_prob": 0.0,
}


def tiny_wavlm_sv_dir(root: Path, seed: int = 0) -> Path:
    """A tiny randomly initialised WavLMForXVector with its feature extractor, for tests.

    Loads through :class:`WavLMSpeakerEmbedder` exactly as ``microsoft/wavlm-base-sv`` does.
    Built once per specification under ``root/tiny-wavlm-sv-<hash>``.
    """
    spec = {"family": "wavlm-xvector", "seed": seed, "config": TINY_SPEC}

    def save(folder: Path) -> None:
        from transformers import Wav2Vec2FeatureExtractor, WavLMConfig, WavLMForXVector

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = WavLMForXVector(WavLMConfig(**TINY_SPEC)).eval()
        model.save_pretrained(folder)
        Wav2Vec2FeatureExtractor(
            feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True
        ).save_pretrained(folder)

    return hf_weights.tiny_model_dir(root, "tiny-wavlm-sv", spec, save)
