"""A deterministic CPU tokenizer with nothing to learn: quantised log-mel band energies.

``MelBandTokenizer`` is the harness's test fixture and the floor of the leaderboard. Each of
its ``K = n_bands`` codebooks is one mel band's log-energy, quantised uniformly into
``levels`` steps between fixed dB bounds, so it needs no fitting and gives the same ids for
the same audio on any machine.

Framing. Frame ``i`` of an item analyses the ``2 * hop_length`` samples centred on
``(i + 1/2) * hop_length`` (Hann window, ``center=False`` on the item zero-padded by half a
hop on the left). An item of ``L`` valid samples has ``ceil(L / hop_length)`` frames, and
every item is analysed on its own valid samples, so its tokens never depend on how much the
batch padded it.

Decoding. Ids are dequantised to band energies, the band energies are interpolated (in dB of
power per STFT bin, linearly along the mel axis) to a finer mel spectrogram, inverted to a
linear spectrogram with :class:`torchaudio.transforms.InverseMelScale`, and phased with
Griffin-Lim (:func:`torchaudio.functional.griffinlim`, zero phase init, so decoding is
deterministic too). Griffin-Lim is the harness's fallback vocoder: intelligible-ish, never
good, and cheap on CPU.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
import torchaudio

from benchmark.api import Tokenizer, TokenizerInfo
from benchmark.decode_validation import check_decode_inputs, describe

logger = logging.getLogger(__name__)

#: Mel bands of the spectrogram the decoder interpolates to before inverting it.
_DECODE_MELS = 40
#: Griffin-Lim iterations of the decoder.
_GRIFFIN_LIM_ITERS = 32
#: Floor added to powers before taking the log (relative to the full-scale reference).
_POWER_FLOOR = 1e-12


def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"MelBandTokenizer: {name} must be an int >= {minimum}, got {value!r}")
    return value


class MelBandTokenizer(Tokenizer):
    """Quantised log-mel band energies: one codebook per band, ``levels`` ids per codebook.

    Args:
        n_bands: number of mel bands, which is the number of codebooks ``K``.
        levels: ids per codebook ``C``; band energies are quantised uniformly in dB.
        sample_rate: audio rate in Hz.
        hop_length: samples per token frame; the frame rate is ``sample_rate / hop_length``
            (50 Hz by default). The analysis window is ``2 * hop_length`` samples.
        name: registry name recorded in :attr:`info`.
        min_db: band energy (dB relative to a full-scale sine) quantised to id 0; lower
            energies clip to 0.
        max_db: band energy quantised to id ``levels - 1``; higher energies clip to it.

    Raises:
        ValueError: on a parameter of the wrong type or range, or when ``n_bands`` is too
            many mel bands for the ``2 * hop_length`` window (a band would be empty).
    """

    def __init__(
        self,
        n_bands: int = 8,
        levels: int = 32,
        sample_rate: int = 16000,
        hop_length: int = 320,
        name: str = "dummy",
        min_db: float = -90.0,
        max_db: float = 10.0,
    ) -> None:
        self.n_bands = _check_int("n_bands", n_bands, 1)
        self.levels = _check_int("levels", levels, 2)
        self.sample_rate = _check_int("sample_rate", sample_rate, 1)
        self.hop_length = _check_int("hop_length", hop_length, 2)
        if not isinstance(name, str) or not name:
            raise ValueError(f"MelBandTokenizer: name must be a non-empty str, got {name!r}")
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in (min_db, max_db)):
            raise ValueError(
                f"MelBandTokenizer: min_db and max_db must be finite numbers, "
                f"got {min_db!r} and {max_db!r}"
            )
        if min_db >= max_db:
            raise ValueError(f"MelBandTokenizer: min_db ({min_db}) must be below max_db ({max_db})")
        self.min_db = float(min_db)
        self.max_db = float(max_db)
        #: dB between two consecutive ids.
        self.step_db = (self.max_db - self.min_db) / (self.levels - 1)
        self.n_fft = 2 * self.hop_length
        n_stft = self.n_fft // 2 + 1

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an empty band is reported below as a ValueError
            self._mel = torchaudio.transforms.MelSpectrogram(
                sample_rate=self.sample_rate,
                n_fft=self.n_fft,
                hop_length=self.hop_length,
                n_mels=self.n_bands,
                center=False,
                power=2.0,
            )
            decode_mels = max(self.n_bands, min(_DECODE_MELS, n_stft // 4))
            self._inverse_mel = torchaudio.transforms.InverseMelScale(
                n_stft=n_stft, n_mels=decode_mels, sample_rate=self.sample_rate
            )
            # Many narrow mel filters on a short window can cover the same STFT bins: the
            # filter matrix is then rank-deficient and the default ``gels`` driver refuses it;
            # ``gelsd`` (SVD, minimum norm) gives the same answer whenever the rank is full.
            fb = self._inverse_mel.fb
            if int(torch.linalg.matrix_rank(fb)) < fb.shape[1]:
                self._inverse_mel.driver = "gelsd"
        band_fb = self._mel.mel_scale.fb  # [n_stft, K]
        fine_fb = self._inverse_mel.fb  # [n_stft, M]
        if bool((band_fb.sum(dim=0) <= 0).any()) or bool((fine_fb.sum(dim=0) <= 0).any()):
            raise ValueError(
                f"MelBandTokenizer: {self.n_bands} mel bands is too many for a "
                f"{self.n_fft}-sample window at {self.sample_rate} Hz (a band holds no STFT "
                "bin); use fewer bands or a larger hop_length"
            )
        self._window = torch.hann_window(self.n_fft)
        # Power of a full-scale sine at its peak bin: the 0 dB reference.
        self._power_ref = float(self._window.sum()) ** 2 / 4.0
        self._band_width = band_fb.sum(dim=0)  # [K] filter weight per band
        self._fine_width = fine_fb.sum(dim=0)  # [M]
        self._band_to_fine = self._interpolation_matrix(self.n_bands, decode_mels)  # [M, K]

        self.info = TokenizerInfo(
            name=name,
            sample_rate=self.sample_rate,
            frame_rate=self.sample_rate / self.hop_length,
            codebook_sizes=(self.levels,) * self.n_bands,
            can_decode=True,
        )

    # ------------------------------------------------------------------ encode

    def num_frames(self, num_samples: int) -> int:
        """Token frames of an item of ``num_samples`` valid samples: ``ceil(L / hop)``."""
        return -(-int(num_samples) // self.hop_length)

    def band_db(
        self, wav: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Unquantised band energies, the quantity the ids encode.

        Args:
            wav: ``[B, T]`` float waveforms at ``sample_rate`` Hz, zero-padded.
            lengths: ``[B]`` integer valid sample counts.

        Returns:
            ``energies [B, N, K]`` float32 in dB relative to a full-scale sine (padded frames
            hold ``min_db``), and ``frame_lengths [B]`` int64 valid frame counts.
        """
        self._check_audio(wav, lengths)
        counts = [int(n) for n in lengths.tolist()]
        frame_lengths = torch.tensor([self.num_frames(n) for n in counts], dtype=torch.int64)
        max_frames = int(frame_lengths.max()) if len(counts) else 0
        out = torch.full((len(counts), max_frames, self.n_bands), self.min_db)
        for b, n in enumerate(counts):
            frames = int(frame_lengths[b])
            if frames == 0:
                continue
            # Only this item's valid samples, padded with its own zeros: no batch leakage.
            item = wav[b, :n].detach().to(device="cpu", dtype=torch.float32)
            left = self.hop_length // 2
            right = (frames + 1) * self.hop_length - left - n
            item = torch.nn.functional.pad(item, (left, right))
            power = self._mel(item)  # [K, frames]
            out[b, :frames] = 10.0 * torch.log10(power.T / self._power_ref + _POWER_FLOOR)
        return out, frame_lengths

    def quantize(self, energies_db: torch.Tensor) -> torch.Tensor:
        """Map band energies in dB to ids: uniform steps of :attr:`step_db` from ``min_db``.

        Args:
            energies_db: any-shaped float tensor in dB.

        Returns:
            int64 ids in ``[0, levels)``, same shape.
        """
        position = (energies_db - self.min_db) / self.step_db
        return position.round().clamp(0, self.levels - 1).to(torch.int64)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """Map ids back to band energies in dB (the centre of each id's step).

        Args:
            ids: any-shaped integer tensor of ids in ``[0, levels)``.

        Returns:
            float32 energies in dB, same shape.
        """
        return self.min_db + ids.to(torch.float32) * self.step_db

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Quantise a padded batch of audio into band-energy ids.

        Args:
            wav: ``[B, T]`` float waveforms at ``sample_rate`` Hz, zero-padded.
            lengths: ``[B]`` integer valid sample counts.

        Returns:
            ``tokens [B, N, K]`` int64 ids in ``[0, levels)`` (padded frames hold 0) and
            ``token_lengths [B]`` int64 with ``token_lengths[b] = ceil(lengths[b] / hop)``.

        Raises:
            ValueError: on inputs of the wrong type, shape or range.
        """
        energies, frame_lengths = self.band_db(wav, lengths)
        tokens = self.quantize(energies)
        for b, frames in enumerate(frame_lengths.tolist()):
            tokens[b, frames:] = 0
        return tokens, frame_lengths

    # ------------------------------------------------------------------ decode

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Turn ids back into audio with Griffin-Lim.

        Args:
            tokens: ``[B, N, K]`` integer ids.
            token_lengths: ``[B]`` integer valid frame counts.
            codebooks: the bands to use; every other band is filled with the middle id
                ``(levels - 1) / 2`` (the mean of a uniform id), so any non-empty subset
                decodes. None uses all bands.

        Returns:
            ``wav [B, T]`` float32 at ``sample_rate`` Hz with ``T = max(token_lengths) * hop``
            (zero-padded) and ``lengths [B] = token_lengths * hop`` int64 samples.

        Raises:
            ValueError: on tokens of the wrong type, shape or range, or a bad ``codebooks``.
        """
        sizes = (self.levels,) * self.n_bands
        name = self.info.name
        selected = check_decode_inputs(name, tokens, token_lengths, sizes, codebooks, what="band")
        frame_counts = [int(n) for n in token_lengths.tolist()]
        lengths = torch.tensor([n * self.hop_length for n in frame_counts], dtype=torch.int64)
        total = int(lengths.max()) if frame_counts else 0
        out = torch.zeros(len(frame_counts), total)
        for b, frames in enumerate(frame_counts):
            if frames == 0:
                continue
            ids = torch.full((frames, self.n_bands), (self.levels - 1) / 2.0)
            ids[:, selected] = tokens[b, :frames][:, selected].detach().cpu().to(torch.float32)
            out[b, : frames * self.hop_length] = self._vocode(self.dequantize(ids))
        return out, lengths

    def _vocode(self, energies_db: torch.Tensor) -> torch.Tensor:
        """Audio of ``N * hop`` samples from ``[N, K]`` band energies in dB."""
        frames = energies_db.shape[0]
        # Power per STFT bin of each band, interpolated along the mel axis to the fine bands.
        band_density_db = energies_db + 10.0 * torch.log10(self._power_ref / self._band_width)
        fine_density_db = band_density_db @ self._band_to_fine.T  # [N, M]
        fine_power = 10.0 ** (fine_density_db / 10.0) * self._fine_width  # [N, M]
        # Griffin-Lim's (centred) frame j sits at sample j * hop; ours sit at (i + 1/2) * hop,
        # so frame j averages our frames j - 1 and j. At least 2 frames keep its padding legal.
        grid = max(frames, 2)
        below = (torch.arange(grid + 1) - 1).clamp(0, frames - 1)
        above = torch.arange(grid + 1).clamp(0, frames - 1)
        fine_power = 0.5 * (fine_power[below] + fine_power[above])  # [grid + 1, M]
        spectrogram = self._inverse_mel(fine_power.T)  # [n_stft, grid + 1] power
        audio = torchaudio.functional.griffinlim(
            spectrogram,
            window=self._window,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            power=2.0,
            n_iter=_GRIFFIN_LIM_ITERS,
            momentum=0.99,
            length=grid * self.hop_length,
            rand_init=False,
        )
        return audio[: frames * self.hop_length]

    def embeddings(self) -> torch.Tensor:
        """One scalar per id: its dequantised energy mapped linearly onto ``[-1, 1]``.

        Returns:
            ``[K, levels, 1]`` float32; row ``k`` is the same ramp for every band.
        """
        ramp = torch.linspace(-1.0, 1.0, self.levels)
        return ramp.view(1, self.levels, 1).repeat(self.n_bands, 1, 1)

    # ------------------------------------------------------------------ helpers

    @staticmethod
    def _interpolation_matrix(n_from: int, n_to: int) -> torch.Tensor:
        """``[n_to, n_from]`` linear interpolation between equally spaced mel band centres."""
        centres_from = np.arange(1, n_from + 1) / (n_from + 1)
        centres_to = np.arange(1, n_to + 1) / (n_to + 1)
        columns = [np.interp(centres_to, centres_from, np.eye(n_from)[k]) for k in range(n_from)]
        return torch.from_numpy(np.stack(columns, axis=1)).to(torch.float32)

    def _check_audio(self, wav: torch.Tensor, lengths: torch.Tensor) -> None:
        if not isinstance(wav, torch.Tensor) or wav.ndim != 2 or not wav.is_floating_point():
            raise ValueError(
                f"{self.info.name}: wav must be a float tensor [B, T], got {describe(wav)}"
            )
        if (
            not isinstance(lengths, torch.Tensor)
            or lengths.shape != (wav.shape[0],)
            or lengths.is_floating_point()
            or lengths.is_complex()
        ):
            raise ValueError(
                f"{self.info.name}: lengths must be an integer tensor [B] with B = "
                f"{wav.shape[0]}, got {describe(lengths)}"
            )
        if len(lengths) and (int(lengths.min()) < 0 or int(lengths.max()) > wav.shape[1]):
            raise ValueError(
                f"{self.info.name}: lengths must lie in [0, T={wav.shape[1]}], got "
                f"{lengths.tolist()}"
            )
