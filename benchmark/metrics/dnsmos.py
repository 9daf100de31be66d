"""DNSMOS (Reddy et al. 2022): non-intrusive quality scores from the ONNX models in speechmos.

The ``speechmos`` package bundles Microsoft's DNSMOS models (``dnsmos_models/``):
``sig_bak_ovr.onnx`` (P.835: speech signal ``SIG``, background ``BAK`` and overall ``OVRL``
quality, each mapped to 1-5 by the package's polynomial fits) and ``model_v8.onnx`` (a P.808
overall MOS). They run offline on the CPU through onnxruntime, on 16 kHz audio; clips
shorter than the models' 9.01 s window are tiled to it and longer ones scored in 1 s hops
and averaged, as speechmos does. The judge's identity is the package version and a sha256
of the two model files.

Handling: audio shorter than 0.5 s is skipped (tiling it to 9 s would score the tiling);
samples outside ``[-1, 1]`` (float files) are clipped, since the models take that range.
The four outputs come from one model run per file, cached, so scoring all four metrics
runs DNSMOS once.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from functools import cache, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from benchmark.data.audio import load_audio
from benchmark.errors import JudgeUnavailableError
from benchmark.metrics.audio_base import AudioItem, AudioMetric, Skip

SAMPLE_RATE = 16000
#: The bundled files ``speechmos.dnsmos.run`` reads (non-personalised DNSMOS).
MODEL_FILES: tuple[str, ...] = ("sig_bak_ovr.onnx", "model_v8.onnx")
#: speechmos's output key of each score.
OUTPUTS: dict[str, str] = {
    "sig": "sig_mos",
    "bak": "bak_mos",
    "ovrl": "ovrl_mos",
    "p808": "p808_mos",
}


@cache
def dnsmos_judge() -> dict[str, str]:
    """Identity of the DNSMOS judge: speechmos version and sha256 of its model files.

    Raises:
        JudgeUnavailableError: speechmos (or onnxruntime / librosa) cannot be imported, or
            a model file is missing from the package.
    """
    try:
        import speechmos
        from speechmos import dnsmos  # noqa: F401  (imports onnxruntime and librosa)
    except ImportError as exc:
        raise JudgeUnavailableError(
            f"DNSMOS needs the speechmos package ({exc}); install it with pip install speechmos"
        ) from None
    folder = Path(speechmos.__file__).parent / "dnsmos_models"
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = folder / name
        if not path.is_file():
            raise JudgeUnavailableError(
                f"{path} is missing from the speechmos package; reinstall speechmos"
            )
        digest.update(path.read_bytes())
    return {
        "name": "DNSMOS (speechmos)",
        "package": "speechmos",
        "version": metadata.version("speechmos"),
        "models": ", ".join(MODEL_FILES),
        "models_sha256": digest.hexdigest(),
    }


def _use_sessions(threads: int) -> None:
    """Make ``speechmos.dnsmos.run`` use onnxruntime sessions of ``threads`` intra-op threads.

    speechmos builds its two sessions with onnxruntime's defaults (a thread per core, spinning
    between runs), which on a CPU shared with other steps (``--jobs``) spends cycles for
    nothing. :func:`speechmos.dnsmos.run` reuses a module-level ``DNSMOS`` object whose model
    path matches its own: this installs one whose sessions are built with our options, from
    the same model files (``scripts/bench_dnsmos.py`` compares the two: same scores).
    """
    import onnxruntime as ort
    from speechmos import dnsmos

    current = dnsmos.dnsmos
    if current is not None and getattr(current, "harness_threads", None) == threads:
        return
    # the very path speechmos compares against (os.path.abspath of its own file)
    folder = Path(os.path.dirname(os.path.abspath(dnsmos.__file__))) / "dnsmos_models"
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    judge = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
    judge.primary_model_path = str(folder / MODEL_FILES[0])
    judge.onnx_sess = ort.InferenceSession(
        str(folder / MODEL_FILES[0]), options, providers=["CPUExecutionProvider"]
    )
    judge.p808_onnx_sess = ort.InferenceSession(
        str(folder / MODEL_FILES[1]), options, providers=["CPUExecutionProvider"]
    )
    judge.harness_threads = threads
    dnsmos.dnsmos = judge


def dnsmos_scores(audio: np.ndarray, threads: int | None = None) -> dict[str, float]:
    """The four DNSMOS scores of one ``[T]`` waveform at 16 kHz.

    Args:
        audio: ``[T]`` float samples at 16 kHz (clipped to ``[-1, 1]``), at least one sample.
        threads: onnxruntime intra-op threads (None: torch's thread count, i.e. the run's
            ``--threads``).

    Returns:
        ``{"sig", "bak", "ovrl", "p808"}`` -> score (about 1-5).
    """
    import torch
    from speechmos import dnsmos

    audio = np.clip(np.asarray(audio, dtype=np.float64), -1.0, 1.0)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"DNSMOS needs a non-empty [T] waveform, got shape {audio.shape}")
    _use_sessions(threads or torch.get_num_threads())
    result = dnsmos.run(audio, SAMPLE_RATE)
    return {key: float(result[field]) for key, field in OUTPUTS.items()}


@lru_cache(maxsize=4096)
def _file_scores(path: str, size: int, mtime_ns: int) -> dict[str, float]:
    """DNSMOS of one file, cached by path, size and modification time."""
    return dnsmos_scores(load_audio(Path(path), SAMPLE_RATE).numpy())


def file_scores(path: Path) -> dict[str, float]:
    """The four DNSMOS scores of an audio file (any rate; resampled to 16 kHz)."""
    stat = Path(path).stat()
    return _file_scores(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


class _DNSMOS(AudioMetric):
    """One DNSMOS output of the generated audio (non-intrusive)."""

    output: str
    direction = "higher"
    needs = ("audio",)
    min_seconds = 0.5

    def judge(self) -> dict[str, Any]:
        return {**dnsmos_judge(), "output": self.output}

    def _score(self, items: Sequence[AudioItem]) -> list[float | Skip]:
        return [file_scores(item.audio)[self.output] for item in items]


class DNSMOSSig(_DNSMOS):
    """DNSMOS P.835 speech-signal quality (SIG, 1-5)."""

    name = "dnsmos_sig"
    output = "sig"


class DNSMOSBak(_DNSMOS):
    """DNSMOS P.835 background-noise quality (BAK, 1-5)."""

    name = "dnsmos_bak"
    output = "bak"


class DNSMOSOvrl(_DNSMOS):
    """DNSMOS P.835 overall quality (OVRL, 1-5)."""

    name = "dnsmos_ovrl"
    output = "ovrl"


class DNSMOSP808(_DNSMOS):
    """DNSMOS P.808 overall MOS (1-5)."""

    name = "dnsmos_p808"
    output = "p808"
