"""dMel: every log-mel channel quantised on its own into a few intensity bins (Bai et al. 2024).

``DMelTokenizer`` follows "dMel: Speech Tokenization made Simple" (Bai, Likhomanenko, Zhang,
Gu, Aldeneh, Jaitly; arXiv 2407.15835) and Apple's released ``dmel`` package
(github.com/apple/dmel): a frame is ``n_mels = 80`` log-mel-filterbank channels, each channel
is one codebook, and each channel's log energy is mapped to the nearest of ``n_bins = 16``
values (4 bits) spaced uniformly from a minimum ``m`` to a maximum ``M``:
``b_i = m + i * (M - m) / (n_bins - 1)``, values outside ``[m, M]`` clip to the end bins.
Decoding dequantises id ``i`` to ``b_i`` (the centre of its bin; the two end bins are half
bins inside ``[m, M]``) and inverts the log-mel spectrogram to audio.

Bin range. The paper sets ``m`` and ``M`` to the minimum and maximum log-mel value over the
training data, so by default the range is fitted (``needs_fit``) on the corpus split named by
``range_data`` (mini ``asr`` train unless the card says otherwise) and saved as
``dmel_range.json``. Apple's package ships that range as fixed constants (``-7`` and ``2`` in
``log10`` of the magnitude mel); passing both ``min_db`` and ``max_db`` gives such a fixed range
here and then nothing is fitted.

Analysis. The log-mel front end is the harness's shared one,
:meth:`benchmark.tokenizers.dummy.MelBandTokenizer.band_db` (mel power in dB relative to a
full-scale sine, Hann window of ``2 * hop_length`` samples), so dMel, ``dummy``,
``continuous-logmel`` and ``kmeans-logmel`` quantise the same features. The frame rate follows
the released dMel recipe, 12.5 ms hops (``hop_length = 200`` at 16 kHz, 80 Hz), which gives
``80 * log2(16) * 80 = 25.6`` kbit/s. Differences from Apple's front end: a 25 ms window
instead of 50 ms (``n_fft = 2 * hop_length``), an HTK mel scale over 0-8 kHz instead of the
Slaney scale over 80-7600 Hz, and the log of the mel power in dB instead of ``log10`` of the
mel magnitude. The quantiser itself (uniform bins on a log-energy scale between the data's
extremes, one codebook per channel) is the paper's.

Decoding. Griffin-Lim through the ``dummy`` tokenizer's vocoding path is the documented
fallback (cheap, deterministic, never good); :func:`mel_bands` lets it invert 80 bands on the
short window. A trained vocoder plugs in through ``vocoder`` (:data:`Vocoder`): a token
vocoder such as the harness's :class:`benchmark.vocoders.model.ScalableVocoder` (anything with
the tokenizer's ``decode(tokens, token_lengths, codebooks)``) gets the ids as they are; a
:class:`MelVocoder` (a callable) gets the dequantised log-mel ``[B, N, n_mels]`` in dB.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
from tqdm.auto import tqdm

from benchmark.api import BuildContext, FitData, Tokenizer, TokenizerInfo
from benchmark.decode_validation import check_decode_inputs
from benchmark.errors import BenchmarkError, DataError
from benchmark.tokenizers.dummy import MelBandTokenizer

log = logging.getLogger(__name__)

#: Bump when a change here changes tokens without changing the card or the fitted range.
TOKENIZER_VERSION = 1
#: The split the bin range is fitted on when the card names none.
DEFAULT_RANGE_DATA: dict[str, str] = {"corpus": "mini", "subset": "asr", "split": "train"}
#: File :meth:`DMelTokenizer.fit` writes in its fit folder.
RANGE_FILENAME = "dmel_range.json"
RANGE_FORMAT = "benchmark.dmel_range"
RANGE_FORMAT_VERSION = 1


class WeightFreeConfigError(BenchmarkError, ValueError):
    """A weight-free tokenizer parameter that cannot work (bad size, range or data spec)."""


@runtime_checkable
class TokenVocoder(Protocol):
    """A vocoder trained on the tokens themselves (e.g. the harness's ``ScalableVocoder``).

    ``decode(tokens [B, N, K], token_lengths [B], codebooks)`` returns ``wav [B, T]`` at the
    tokenizer's sample rate and ``lengths [B]``, as :meth:`benchmark.api.Tokenizer.decode`.
    """

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class MelVocoder(Protocol):
    """A log-mel vocoder the weight-free tokenizers decode through instead of Griffin-Lim.

    Called as ``vocoder(mel_db, frame_lengths)`` with ``mel_db [B, N, n_mels]`` float32 band
    energies in dB relative to a full-scale sine (the tokenizer's analysis, at its frame
    rate) and ``frame_lengths [B]`` int64 valid frame counts; returns ``wav [B, T]`` float at
    the tokenizer's sample rate and ``lengths [B]`` int64 samples.
    """

    def __call__(
        self, mel_db: torch.Tensor, frame_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...


#: What the weight-free tokenizers' ``vocoder`` accepts (None means Griffin-Lim).
Vocoder = TokenVocoder | MelVocoder


def check_vocoder(owner: str, vocoder: object) -> Vocoder | None:
    """``vocoder`` when it is None, a :class:`TokenVocoder` or a :class:`MelVocoder`.

    Raises:
        WeightFreeConfigError: anything else.
    """
    if vocoder is None or isinstance(vocoder, TokenVocoder | MelVocoder):
        return vocoder
    raise WeightFreeConfigError(
        f"{owner}: vocoder must have decode(tokens, token_lengths, codebooks) or be callable "
        f"on (mel_db, frame_lengths), got {type(vocoder).__name__}"
    )


# ---------------------------------------------------------------------- shared helpers


def mel_bands(**params: Any) -> MelBandTokenizer:
    """The harness's :class:`MelBandTokenizer` (analysis + Griffin-Lim) with these parameters.

    Raises:
        ValueError: parameters :class:`MelBandTokenizer` refuses.
    """
    return MelBandTokenizer(**params)


def check_int(owner: str, name: str, value: object, minimum: int) -> int:
    """``value`` when it is an int >= ``minimum``, else :class:`WeightFreeConfigError`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise WeightFreeConfigError(f"{owner}: {name} must be an int >= {minimum}, got {value!r}")
    return value


def data_spec(owner: str, name: str, spec: Any, default: Mapping[str, str]) -> dict[str, str]:
    """Validate a ``{corpus, subset, split}`` fit-data spec (``subset`` required).

    Raises:
        WeightFreeConfigError: unknown keys, no subset, or values that are not strings.
    """
    if spec is None:
        spec = default
    resolved = dict(spec) if isinstance(spec, Mapping) else {}
    unknown = set(resolved) - {"corpus", "subset", "split"}
    if not resolved or unknown or "subset" not in resolved:
        raise WeightFreeConfigError(
            f"{owner}: {name} must be {{corpus, subset, split}} (subset required), got {spec!r}"
        )
    if any(not isinstance(v, str) or not v for v in resolved.values()):
        raise WeightFreeConfigError(f"{owner}: {name} values must be non-empty strings: {spec!r}")
    return {"corpus": "mini", "split": "train", **resolved}


def fit_batches(data: FitData) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(wav [B, T], lengths [B])`` of each batch of ``data``.

    The harness's batches are ``(ids, wav, lengths)``; a bare ``(wav, lengths)`` (tests,
    plugins) is accepted too.
    """
    for batch in data:
        yield batch[-2], batch[-1]


# ---------------------------------------------------------------------- the tokenizer


class DMelTokenizer(Tokenizer):
    """dMel tokens: ``n_mels`` codebooks (one per log-mel channel) of ``n_bins`` ids each.

    Args:
        n_mels: log-mel channels, which is the number of codebooks ``K`` (80 in the paper).
        n_bins: intensity bins per channel, the codebook size ``C`` (16 = 4 bits in the paper).
        sample_rate: audio rate in Hz.
        hop_length: samples per frame; 200 at 16 kHz is dMel's 12.5 ms hop (80 frames/s).
        min_db: fixed lower end ``m`` of the bins, in dB relative to a full-scale sine.
            Give it with ``max_db`` for a fixed range; leave both None (the paper's recipe)
            to fit them on ``range_data``.
        max_db: fixed upper end ``M`` of the bins, in dB.
        range_data: the corpus split the range is fitted on, ``{"corpus", "subset",
            "split"}``; defaults to mini ``asr`` train.
        vocoder: a :data:`Vocoder` to decode through; None (the default) uses Griffin-Lim.
            Set it in code (``tokenizer.vocoder = ...``); cards cannot name one yet.
        name: registry name recorded in :attr:`info`.
        context: the harness's build context (only ``progress`` is used).

    Raises:
        WeightFreeConfigError: a parameter of the wrong type or range, or only one of
            ``min_db`` / ``max_db``.
    """

    def __init__(
        self,
        n_mels: int = 80,
        n_bins: int = 16,
        sample_rate: int = 16000,
        hop_length: int = 200,
        min_db: float | None = None,
        max_db: float | None = None,
        range_data: Mapping[str, str] | None = None,
        vocoder: Vocoder | None = None,
        name: str = "dmel",
        context: BuildContext | None = None,
    ) -> None:
        owner = f"DMelTokenizer {name!r}"
        self.n_mels = check_int(owner, "n_mels", n_mels, 1)
        self.n_bins = check_int(owner, "n_bins", n_bins, 2)
        self.range_data = data_spec(owner, "range_data", range_data, DEFAULT_RANGE_DATA)
        self.vocoder = check_vocoder(owner, vocoder)
        self.progress = True if context is None else context.progress
        try:
            # The analysis (and Griffin-Lim) of the harness's mel-band tokenizer; its own
            # quantiser is unused until the range is known.
            self._analysis = mel_bands(
                n_bands=self.n_mels,
                levels=self.n_bins,
                sample_rate=sample_rate,
                hop_length=hop_length,
                name=name,
            )
        except ValueError as exc:
            raise WeightFreeConfigError(f"{owner}: {exc}") from None
        self.sample_rate = self._analysis.sample_rate
        self.hop_length = self._analysis.hop_length
        self._bands: MelBandTokenizer | None = None
        if (min_db is None) != (max_db is None):
            raise WeightFreeConfigError(
                f"{owner}: give both min_db and max_db for a fixed range, or neither to fit it"
            )
        #: False when the card fixes the range; the harness then skips fitting.
        self.needs_fit = min_db is None
        if min_db is not None:
            self.set_range(min_db, max_db)
        self.info = TokenizerInfo(
            name=name,
            sample_rate=self.sample_rate,
            frame_rate=self.sample_rate / self.hop_length,
            codebook_sizes=(self.n_bins,) * self.n_mels,
            can_decode=True,
        )

    # ------------------------------------------------------------------ range

    @property
    def range_db(self) -> tuple[float, float] | None:
        """``(m, M)`` in dB, or None before the range is fitted or loaded."""
        if self._bands is None:
            return None
        return self._bands.min_db, self._bands.max_db

    @property
    def step_db(self) -> float | None:
        """dB between two consecutive bin values, ``(M - m) / (n_bins - 1)``."""
        return None if self._bands is None else self._bands.step_db

    def set_range(self, min_db: float, max_db: float) -> None:
        """Use bins spaced uniformly from ``min_db`` to ``max_db`` (dB).

        Raises:
            WeightFreeConfigError: bounds that are not finite numbers with ``min < max``.
        """
        numbers = all(isinstance(v, int | float) and math.isfinite(v) for v in (min_db, max_db))
        if not numbers or not min_db < max_db:
            raise WeightFreeConfigError(
                f"{self._analysis.info.name}: the dMel range needs finite min_db < max_db, "
                f"got {min_db!r} and {max_db!r}"
            )
        self._bands = mel_bands(
            n_bands=self.n_mels,
            levels=self.n_bins,
            sample_rate=self.sample_rate,
            hop_length=self.hop_length,
            name=self._analysis.info.name,
            min_db=float(min_db),
            max_db=float(max_db),
        )

    def fit_data_spec(self) -> Mapping[str, Any]:
        """The split the bin range is fitted on, ``{"corpus", "subset", "split"}``."""
        return dict(self.range_data)

    def fit(self, data: FitData, out_dir: Path) -> None:
        """Measure the minimum and maximum log-mel value of ``data``; save them under ``out_dir``.

        Only valid frames count (each item is analysed on its own samples). Writes
        ``dmel_range.json`` with the global range (what quantises) and, for the record, the
        per-channel ranges and the number of frames.

        Raises:
            DataError: ``data`` holds no audio frame.
        """
        low = torch.full((self.n_mels,), math.inf, dtype=torch.float64)
        high = torch.full((self.n_mels,), -math.inf, dtype=torch.float64)
        frames = 0
        bar = tqdm(
            fit_batches(data),
            desc=f"dMel range {self.info.name}",
            unit="batch",
            disable=not self.progress,
            leave=False,
        )
        for wav, lengths in bar:
            energies, frame_lengths = self._analysis.band_db(wav, lengths)
            valid = torch.arange(energies.shape[1]) < frame_lengths.unsqueeze(1)  # [B, N]
            values = energies[valid].to(torch.float64)  # [M, K]
            if values.shape[0]:
                low = torch.minimum(low, values.min(dim=0).values)
                high = torch.maximum(high, values.max(dim=0).values)
                frames += values.shape[0]
        if frames == 0:
            raise DataError(f"dMel range data {data.name!r} holds no audio frames")
        min_db, max_db = float(low.min()), float(high.max())
        if not min_db < max_db:
            raise DataError(
                f"dMel range data {data.name!r}: every log-mel value is {min_db} dB; fit on "
                "real audio or give min_db and max_db"
            )
        payload = {
            "format": RANGE_FORMAT,
            "version": RANGE_FORMAT_VERSION,
            "min_db": min_db,
            "max_db": max_db,
            "n_mels": self.n_mels,
            "sample_rate": self.sample_rate,
            "hop_length": self.hop_length,
            "frames": frames,
            "data": data.name,
            "range_data": dict(self.range_data),
            "channel_min_db": [float(v) for v in low],
            "channel_max_db": [float(v) for v in high],
        }
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / RANGE_FILENAME).write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
        log.info("dMel range on %s: [%.2f, %.2f] dB, %d frames", data.name, min_db, max_db, frames)

    def load_fitted(self, out_dir: Path) -> None:
        """Load the range :meth:`fit` saved under ``out_dir``.

        Raises:
            DataError: a missing or malformed file, or one fitted for another analysis
                (``n_mels``, ``sample_rate`` or ``hop_length``) or damaged.
        """
        path = Path(out_dir) / RANGE_FILENAME
        try:
            payload = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DataError(
                f"dMel range {path} cannot be read ({exc}); fit the tokenizer"
            ) from None
        if not isinstance(payload, dict) or payload.get("format") != RANGE_FORMAT:
            raise DataError(f"dMel range {path} is not a {RANGE_FORMAT} file")
        if payload.get("version") != RANGE_FORMAT_VERSION:
            raise DataError(
                f"dMel range {path} has version {payload.get('version')!r}; this code reads "
                f"version {RANGE_FORMAT_VERSION}"
            )
        expected = {"n_mels": self.n_mels, "sample_rate": self.sample_rate}
        expected["hop_length"] = self.hop_length
        wrong = {k: payload.get(k) for k, v in expected.items() if payload.get(k) != v}
        if wrong:
            raise DataError(
                f"dMel range {path} was fitted for {wrong}, not {expected}; delete "
                f"{path.parent} to refit it"
            )
        self.set_range(payload.get("min_db"), payload.get("max_db"))

    def state_fingerprint(self) -> Mapping[str, Any]:
        """Code version, the analysis, and the bin range (None until fitted or loaded)."""
        return {
            "version": TOKENIZER_VERSION,
            "analysis": "benchmark.tokenizers.dummy:MelBandTokenizer.band_db",
            "range_db": None if self.range_db is None else list(self.range_db),
        }

    # ------------------------------------------------------------------ tokens

    def _quantiser(self) -> MelBandTokenizer:
        if self._bands is None:
            raise BenchmarkError(
                f"tokenizer {self.info.name!r} has no dMel bin range yet; fit it, call "
                "load_fitted(out_dir), or give min_db and max_db"
            )
        return self._bands

    def log_mel_db(
        self, wav: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The unquantised log-mel the ids encode (needs no range).

        Returns:
            ``mel_db [B, N, n_mels]`` float32 in dB relative to a full-scale sine, and
            ``frame_lengths [B]`` int64, for ``wav [B, T]`` and ``lengths [B]``.
        """
        return self._analysis.band_db(wav, lengths)

    def dequantize(self, ids: torch.Tensor) -> torch.Tensor:
        """Bin values ``m + id * step`` in dB of any-shaped integer ids (same shape, float32)."""
        return self._quantiser().dequantize(ids)

    def encode(self, wav: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """dMel ids of a padded batch.

        Args:
            wav: ``[B, T]`` float waveforms at ``sample_rate`` Hz, zero-padded (not modified).
            lengths: ``[B]`` integer valid sample counts.

        Returns:
            ``tokens [B, N, n_mels]`` int64 in ``[0, n_bins)`` (padded frames hold 0) and
            ``token_lengths [B]`` int64, ``ceil(lengths / hop_length)``.

        Raises:
            BenchmarkError: the range is neither fitted, loaded nor fixed.
            ValueError: inputs of the wrong type, shape or range.
        """
        return self._quantiser().encode(wav, lengths)

    def mel_db(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> torch.Tensor:
        """Dequantised log-mel, what a :class:`MelVocoder` receives.

        Args:
            tokens: ``[B, N, n_mels]`` integer ids.
            token_lengths: ``[B]`` valid frame counts.
            codebooks: channels to keep; the others get the middle bin value
                ``(m + M) / 2``. None keeps all.

        Returns:
            ``[B, N, n_mels]`` float32 dB; padded frames hold ``m``.
        """
        bands = self._quantiser()
        sizes = self.info.codebook_sizes
        selected = check_decode_inputs(self.info.name, tokens, token_lengths, sizes, codebooks)
        ids = torch.full(tokens.shape, (self.n_bins - 1) / 2.0)
        ids[:, :, selected] = tokens[:, :, selected].detach().cpu().to(torch.float32)
        padded = torch.arange(tokens.shape[1]) >= token_lengths.cpu().unsqueeze(1)
        ids[padded] = 0.0
        return bands.dequantize(ids)

    def decode(
        self,
        tokens: torch.Tensor,
        token_lengths: torch.Tensor,
        codebooks: Sequence[int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Audio from dMel ids: Griffin-Lim on the bin values, or :attr:`vocoder` when set.

        Args:
            tokens: ``[B, N, n_mels]`` integer ids.
            token_lengths: ``[B]`` integer valid frame counts.
            codebooks: channels to use; the others are filled with the middle bin, so any
                non-empty subset decodes. None uses all.

        Returns:
            ``wav [B, T]`` float32 at ``sample_rate`` Hz and ``lengths [B]`` int64; with
            Griffin-Lim ``lengths = token_lengths * hop_length`` and ``T = max(lengths)``.

        Raises:
            BenchmarkError: no range yet.
            ValueError: tokens of the wrong type, shape or range, or a bad ``codebooks``.
        """
        bands = self._quantiser()
        if self.vocoder is None:
            return bands.decode(tokens, token_lengths, codebooks)
        if isinstance(self.vocoder, TokenVocoder):
            return self.vocoder.decode(tokens, token_lengths, codebooks)
        mel = self.mel_db(tokens, token_lengths, codebooks)
        return self.vocoder(mel, token_lengths.detach().cpu().to(torch.int64))

    def embeddings(self) -> torch.Tensor:
        """One scalar per bin: its value mapped linearly onto ``[-1, 1]``.

        Returns:
            ``[n_mels, n_bins, 1]`` float32; the same ramp for every channel (the bins of all
            channels share one range).
        """
        return self._analysis.embeddings()
