import numpy as np
import pytest
import soundfile as sf

from asr.audio import AudioError, duration, load_audio, resample, write_audio
from conftest import tone


@pytest.mark.parametrize("fmt,suffix", [("WAV", ".wav"), ("FLAC", ".flac"), ("OGG", ".ogg")])
def test_any_format_rate_and_channels_become_mono_16k(tmp_path, fmt, suffix):
    path = tmp_path / f"stereo{suffix}"
    subtype = "VORBIS" if fmt == "OGG" else "PCM_16"
    sf.write(path, tone(seconds=0.5, sr=44100, channels=2), 44100, format=fmt, subtype=subtype)
    wav = load_audio(path)
    assert wav.ndim == 1 and wav.dtype == np.float32
    assert abs(len(wav) - 8000) <= 2
    assert np.abs(wav).max() > 0.1


def test_resample_keeps_tone_frequency():
    wav = resample(tone(seconds=1.0, sr=8000, freq=500.0), 8000, 16000)
    spectrum = np.abs(np.fft.rfft(wav))
    assert abs(np.argmax(spectrum) * 16000 / len(wav) - 500.0) < 2.0


def test_write_then_read_roundtrip(tmp_path):
    path = tmp_path / "x.flac"
    write_audio(path, tone(seconds=0.25))
    assert abs(duration(path) - 0.25) < 1e-3
    np.testing.assert_allclose(load_audio(path), tone(seconds=0.25), atol=1e-4)


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(AudioError, match="nope.wav: no such file"):
        load_audio(tmp_path / "nope.wav")


def test_corrupt_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.flac"
    bad.write_bytes(b"this is not audio at all" * 10)
    with pytest.raises(AudioError, match="bad.flac: cannot decode audio"):
        load_audio(bad)


def test_empty_audio_is_a_clear_error(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: audio is empty"):
        load_audio(empty)


def test_directory_is_not_audio(tmp_path):
    with pytest.raises(AudioError, match="is a directory"):
        load_audio(tmp_path)
