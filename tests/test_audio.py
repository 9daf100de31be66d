"""Audio I/O: loading (errors, down-mix, resampling), atomic deterministic saving, batching."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch

from benchmark.data.audio import batch_audio, load_audio, resample, save_wav
from benchmark.errors import DataError


def _sine(freq: float, rate: int, seconds: float = 1.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_hz(wav: torch.Tensor, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wav.numpy()))
    return float(np.argmax(spectrum) * rate / wav.shape[0])


def test_save_then_load_round_trips_and_is_mono_float32(tmp_path):
    wav = torch.from_numpy(_sine(440, 16000))
    path = tmp_path / "a.wav"
    save_wav(path, wav, 16000)
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (
        16000,
        1,
        "PCM_16",
        "WAV",
    )
    loaded = load_audio(path, 16000)
    assert loaded.dtype == torch.float32 and loaded.shape == wav.shape
    assert torch.max(torch.abs(loaded - wav)) <= 1 / 32768
    save_wav(tmp_path / "b.wav", loaded, 16000)  # re-quantising is exact
    assert (tmp_path / "b.wav").read_bytes() == path.read_bytes()


def test_save_wav_is_deterministic_atomic_and_clips(tmp_path):
    wav = np.array([0.0, 0.5, -0.5, 2.0, -2.0, 1.0, -1.0], dtype=np.float64)
    save_wav(tmp_path / "x.wav", wav, 8000)
    save_wav(tmp_path / "sub" / "y.wav", torch.from_numpy(wav), 8000)
    assert (tmp_path / "x.wav").read_bytes() == (tmp_path / "sub" / "y.wav").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub", "x.wav"]  # no temp files
    data, _ = sf.read(str(tmp_path / "x.wav"), dtype="int16")
    assert data.tolist() == [0, 16384, -16384, 32767, -32768, 32767, -32768]


@pytest.mark.parametrize(
    ("wav", "rate"),
    [(np.zeros((2, 10)), 16000), (np.array([0.0, np.nan]), 16000), (np.zeros(4), 0)],
)
def test_save_wav_rejects_bad_input(tmp_path, wav, rate):
    with pytest.raises(ValueError):
        save_wav(tmp_path / "bad.wav", wav, rate)
    assert list(tmp_path.iterdir()) == []


def _assert_one_line_error(path, fragment: str) -> None:
    with pytest.raises(DataError) as info:
        load_audio(path, 16000)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and fragment in message


def test_load_audio_missing_file(tmp_path):
    _assert_one_line_error(tmp_path / "nope.wav", "does not exist")


def test_load_audio_zero_byte_and_garbage_files(tmp_path):
    (tmp_path / "zero.wav").write_bytes(b"")
    _assert_one_line_error(tmp_path / "zero.wav", "cannot decode")
    (tmp_path / "junk.wav").write_bytes(b"RIFF this is not audio at all" * 10)
    _assert_one_line_error(tmp_path / "junk.wav", "cannot decode")


def test_load_audio_empty_wav(tmp_path):
    sf.write(str(tmp_path / "empty.wav"), np.zeros(0, dtype=np.int16), 16000, subtype="PCM_16")
    _assert_one_line_error(tmp_path / "empty.wav", "empty (0 samples)")


def test_load_audio_non_finite_samples(tmp_path):
    data = np.array([0.1, np.nan, 0.2, np.inf], dtype=np.float32)
    sf.write(str(tmp_path / "nan.wav"), data, 16000, subtype="FLOAT")
    _assert_one_line_error(tmp_path / "nan.wav", "NaN or infinite")


def test_load_audio_downmixes_stereo_by_averaging(tmp_path):
    left = _sine(300, 16000, amp=0.9)
    right = np.full_like(left, 0.8)
    sf.write(str(tmp_path / "st.wav"), np.stack([left, right], 1), 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "st.wav", 16000)
    assert wav.ndim == 1 and wav.shape[0] == left.shape[0]
    np.testing.assert_allclose(wav.numpy(), (left + right) / 2, atol=1e-6)
    assert float(wav.abs().max()) <= 0.85 + 1e-6  # averaged, never summed past full scale


@pytest.mark.parametrize("rate", [22050, 8000, 44100])
def test_load_audio_resamples_to_16k_and_keeps_pitch(tmp_path, rate):
    sf.write(str(tmp_path / "s.wav"), _sine(440, rate), rate, subtype="PCM_16")
    wav = load_audio(tmp_path / "s.wav", 16000)
    assert wav.shape[0] == 16000 and wav.dtype == torch.float32
    assert abs(_peak_hz(wav, 16000) - 440) <= 1.0
    assert 0.3 < float(wav.abs().max()) < 0.6


def test_resample_helper():
    wav = torch.from_numpy(_sine(1000, 22050)).repeat(3, 1)  # [3, T]
    out = resample(wav, 22050, 16000)
    assert out.shape == (3, 16000)
    assert abs(_peak_hz(out[1], 16000) - 1000) <= 1.0
    assert resample(wav, 16000, 16000) is wav
    with pytest.raises(ValueError):
        resample(wav, 0, 16000)
    with pytest.raises(ValueError):
        resample(torch.zeros(4, dtype=torch.int64), 8000, 16000)


def test_batch_audio_pads_with_zeros():
    waves = [torch.ones(3), torch.full((5,), 0.5, dtype=torch.float64), torch.ones(1)]
    wav, lengths = batch_audio(waves)
    assert wav.shape == (3, 5) and wav.dtype == torch.float32
    assert lengths.dtype == torch.int64 and lengths.tolist() == [3, 5, 1]
    assert wav[0].tolist() == [1, 1, 1, 0, 0] and wav[2].tolist() == [1, 0, 0, 0, 0]
    assert waves[0].shape == (3,)  # inputs untouched
    with pytest.raises(ValueError):
        batch_audio([])
    with pytest.raises(ValueError):
        batch_audio([torch.zeros(2, 3)])
