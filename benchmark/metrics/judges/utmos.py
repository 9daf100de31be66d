"""UTMOS22 strong learner (Saeki et al., VoiceMOS 2022) through the ``utmos-pytorch`` package.

``utmos-pytorch`` re-implements the strong learner (wav2vec 2.0 Base SSL features, domain
and listener embeddings, BLSTM, projection) in plain PyTorch without fairseq and scores
with the original's settings (main domain, listener 288, ``2 * output + 3``). Its converted
weights are one file, ``utmos_state_dict.pt``, found:

- ``{"path": file_or_folder}``: that file, or the file of that name inside the folder;
- ``{"hub": "Blinorot/UTMOS-PyTorch", "revision": <commit>}`` (the default,
  :data:`UTMOS_HUB`): the Hugging Face cache first, a download only when the hub is
  reachable and ``HF_HUB_OFFLINE`` is not set.

Without the file the judge is unavailable with the reason. The package loads state dicts
with ``strict=False``, so the keys are checked here first (against the architecture built
on the ``meta`` device, which allocates nothing): a file of another model is an
unavailable judge, never a half-random one.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from benchmark.errors import JudgeUnavailableError
from benchmark.models import hf_weights

CHECKPOINT = "utmos_state_dict.pt"
#: The pinned default: the converted UTMOS22 strong learner at a commit of its hub repo.
UTMOS_HUB: dict[str, str] = {
    "hub": "Blinorot/UTMOS-PyTorch",
    "revision": "4f2447e519df3b88567b45583d3500006729502b",
}


def _from_hub(hub: str, revision: str) -> Path:
    from huggingface_hub import hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(hub, CHECKPOINT, revision=revision)
    if isinstance(cached, str) and Path(cached).is_file():
        return Path(cached)
    if hf_weights.hub_offline() or not hf_weights.hub_reachable():
        raise JudgeUnavailableError(
            f"UTMOS: {hub}@{revision} ({CHECKPOINT}) is not in the Hugging Face cache and the "
            f"hub cannot be reached; download it on a connected machine (huggingface-cli "
            f"download {hub} {CHECKPOINT} --revision {revision}) or give weights: "
            "{path: /dir/or/utmos_state_dict.pt}"
        )
    try:
        return Path(hf_hub_download(hub, CHECKPOINT, revision=revision))
    except (OSError, ValueError) as exc:
        raise JudgeUnavailableError(f"UTMOS: cannot download {hub}@{revision}: {exc}") from None


def resolve_checkpoint(weights: Mapping[str, Any] | None) -> tuple[Path, dict[str, Any]]:
    """The checkpoint file and how it was named (for the identity).

    Raises:
        JudgeUnavailableError: no such file, or the hub copy is neither cached nor reachable.
    """
    weights = dict(weights or UTMOS_HUB)
    if set(weights) == {"path"}:
        path = Path(weights["path"]).expanduser()
        path = path / CHECKPOINT if path.is_dir() else path
        if not path.is_file():
            raise JudgeUnavailableError(
                f"UTMOS weights {path} do not exist; put {CHECKPOINT} (the converted UTMOS22 "
                f"strong learner of {UTMOS_HUB['hub']}) there"
            )
        return path, {"source": "path"}
    if set(weights) == {"hub", "revision"}:
        hub, revision = str(weights["hub"]), str(weights["revision"])
        return _from_hub(hub, revision), {"source": "hub", "hub": hub, "revision": revision}
    raise JudgeUnavailableError(
        f"UTMOS weights must be {{hub, revision}} or {{path}}, got keys {sorted(weights)}"
    )


class UTMOSJudge:
    """The UTMOS22 strong learner, scoring 16 kHz waveforms one at a time (no padding).

    Raises:
        JudgeUnavailableError: the package is not installed, the checkpoint is missing, or
            it is not a UTMOS strong-learner state dict.
    """

    sample_rate = 16000

    def __init__(self, weights: Mapping[str, Any] | None = None, device: str = "cpu") -> None:
        try:
            from utmos_pytorch import UTMOSScoreTorch
            from utmos_pytorch.utmos_torch import UTMOSModel
        except ImportError as exc:
            raise JudgeUnavailableError(
                f"UTMOS needs the utmos-pytorch package ({exc}); pip install utmos-pytorch"
            ) from None
        path, named = resolve_checkpoint(weights)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except (OSError, RuntimeError, ValueError) as exc:
            reason = " ".join(str(exc).split())[:200]
            raise JudgeUnavailableError(f"UTMOS weights {path} are unreadable ({reason})") from None
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the package's old weight_norm
            expected = set(UTMOSModel().state_dict())
        found = set(state) if isinstance(state, Mapping) else set()
        if found != expected:
            missing, unexpected = sorted(expected - found), sorted(found - expected)
            raise JudgeUnavailableError(
                f"UTMOS weights {path} are not a UTMOS strong-learner state dict "
                f"({len(missing)} keys missing, e.g. {missing[:1]}; {len(unexpected)} "
                f"unexpected, e.g. {unexpected[:1]})"
            )
        del state
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            self.scorer = UTMOSScoreTorch(ckpt_path=str(path), device=device)
        self.device = device
        self._identity = {
            "name": "UTMOS22 strong learner (utmos-pytorch)",
            **named,
            "file": CHECKPOINT,
            "sha256": hf_weights.sha256_file(path),
            "package": "utmos-pytorch",
            "version": metadata.version("utmos-pytorch"),
        }

    def identity(self) -> dict[str, Any]:
        """Package version, hub revision (or local file) and the checkpoint's sha256."""
        return dict(self._identity)

    def score(self, waves: Sequence[torch.Tensor]) -> list[float]:
        """Predicted MOS (about 1-5) of each ``[T]`` waveform at 16 kHz."""
        out = []
        for wave in waves:
            value = self.scorer.score(wave.detach().float().reshape(1, 1, -1).to(self.device))
            out.append(float(value.reshape(-1)[0]))
        return out
