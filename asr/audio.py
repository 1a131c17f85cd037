"""Audio I/O: the only file-decoding code in asr (soundfile), mono mix-down, resampling to 16 kHz."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.fileio import atomic_path

SAMPLE_RATE = 16000


class AudioError(ValueError):
    """A file that cannot be used as audio; the message names the file."""


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Read any file soundfile can decode; return mono float32 samples at `sample_rate`, shape (N,)."""
    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types (LibsndfileError, RuntimeError, TypeError)
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")
    wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wav)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return resample(wav, sr, sample_rate)


def _reason(exc: Exception) -> str:
    """libsndfile's own words, without soundfile's "Error opening <file object repr>:" prefix."""
    return getattr(exc, "error_string", None) or str(exc)


def read_blocks(source, block_s: float = 30.0, sample_rate: int = SAMPLE_RATE):
    """Mono float32 blocks of about `block_s` seconds at `sample_rate`, decoded incrementally, so that a long
    file never sits in memory whole. `source` is a path or a binary file object (e.g. stdin read into
    BytesIO). Each block is resampled on its own (the sinc filter's edge effect at block joins is a few
    samples every `block_s` seconds). Errors name the file, as in `load_audio`."""
    name = getattr(source, "name", None) or ("<stdin>" if not isinstance(source, (str, os.PathLike)) else source)
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"{path}: no such file")
        if path.is_dir():
            raise AudioError(f"{path}: is a directory, not an audio file")
        source = str(path)
    try:
        f = sf.SoundFile(source)
    except Exception as exc:
        raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
    with f:
        sr, n = f.samplerate, 0
        while True:
            try:
                data = f.read(max(1, int(block_s * sr)), dtype="float32", always_2d=True)
            except Exception as exc:
                raise AudioError(f"{name}: cannot decode audio ({_reason(exc)})") from None
            if data.shape[0] == 0:
                break
            n += data.shape[0]
            wav = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
            if not np.all(np.isfinite(wav)):
                raise AudioError(f"{name}: audio contains NaN or infinite samples")
            yield resample(wav, sr, sample_rate)
    if n == 0:
        raise AudioError(f"{name}: audio is empty (0 samples)")


def pcm16(data: bytes) -> np.ndarray:
    """Raw 16-bit little-endian PCM (an even number of bytes) → float32 samples in [-1, 1)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def resample(wav: np.ndarray, sr_in: int, sr_out: int = SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a mono float32 signal (torchaudio's sinc interpolation)."""
    wav = np.ascontiguousarray(wav, dtype=np.float32)
    if sr_in == sr_out:
        return wav
    import torch
    import torchaudio.functional as AF

    out = AF.resample(torch.from_numpy(wav), int(sr_in), int(sr_out))
    return out.numpy().astype(np.float32, copy=False)


def write_audio(path: str | os.PathLike, wav: np.ndarray, sample_rate: int = SAMPLE_RATE,
                compression_level: float | None = None) -> None:
    """Write mono audio atomically; the format follows the suffix (.flac, .wav, .ogg = Opus).

    `compression_level` (0 = best quality .. 1 = smallest) is passed to libsndfile for FLAC and Opus."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".ogg":
        fmt, subtype = "OGG", "OPUS"
    elif suffix == ".flac":
        fmt, subtype = "FLAC", "PCM_16"
    elif suffix == ".wav":
        fmt, subtype = "WAV", "PCM_16"
    else:
        raise AudioError(f"{path}: unsupported output format {suffix!r} (use .flac, .wav or .ogg)")
    wav = np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0)
    extra = {} if compression_level is None or fmt == "WAV" else {"compression_level": compression_level}
    with atomic_path(path) as tmp:
        sf.write(str(tmp), wav, sample_rate, format=fmt, subtype=subtype, **extra)


def duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (no decoding)."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot read audio header ({exc})") from None
    return float(info.frames) / float(info.samplerate)
