"""Shared fixtures: generated tones and small real-speech corpora written into tmp folders."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))
FSDD = SHARED_DATA / "fsdd" / "recordings"
LIBRISPEECH_SAMPLE = SHARED_DATA / "librispeech-sample"
DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


@pytest.fixture
def tone_file(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(), 16000)
    return path


def fsdd_files(speakers=("jackson", "nicolas"), takes=range(5, 7), digits=range(10)) -> list[Path]:
    files = [FSDD / f"{d}_{s}_{t}.wav" for s in speakers for d in digits for t in takes]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"shared test data missing: {missing[0]} (set ASR_SHARED_DATA)")
    return files


def write_librispeech_layout(root: Path, subset: str, files: list[Path], texts: list[str], speaker: int) -> None:
    """Write FLAC copies of `files` as one LibriSpeech chapter: root/subset/SPK/1/SPK-1-NNNN.flac + trans.txt."""
    chapter = root / subset / str(speaker) / "1"
    chapter.mkdir(parents=True, exist_ok=True)
    lines = []
    for n, (f, text) in enumerate(zip(files, texts)):
        utt = f"{speaker}-1-{n:04d}"
        data, sr = sf.read(f, dtype="float32")
        sf.write(chapter / f"{utt}.flac", data, sr, format="FLAC", subtype="PCM_16")
        lines.append(f"{utt} {text}")
    (chapter / f"{speaker}-1.trans.txt").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="session")
def digit_corpus(tmp_path_factory) -> Path:
    """Real spoken digits (FSDD, 8 kHz) in LibriSpeech layout: train (2 speakers) and dev (1 other speaker)."""
    root = tmp_path_factory.mktemp("digits") / "LibriSpeech"
    for spk_id, spk in ((100, "jackson"), (101, "nicolas")):
        files = fsdd_files(speakers=(spk,), takes=range(5, 9))
        write_librispeech_layout(root, "train", files, [DIGITS[int(f.name[0])] for f in files], spk_id)
    files = fsdd_files(speakers=("theo",), takes=range(0, 1))
    write_librispeech_layout(root, "dev", files, [DIGITS[int(f.name[0])] for f in files], 200)
    return root


@pytest.fixture(scope="session")
def digits_model(digit_corpus, tmp_path_factory):
    """A small character model trained for a few seconds on the digit corpus: (manifest folder, bundle path).
    It recognises the training speakers' digits roughly; tests use it where a real trained network matters
    (exports, timestamps), not for accuracy."""
    from asr.config import load_config
    from asr.corpus.librispeech import prepare
    from asr.train import train

    out = tmp_path_factory.mktemp("digits-model")
    prepare(digit_corpus, out / "data", progress=False)
    cfg = load_config(None, [f"data.train={out / 'data/train.jsonl'}", f"train.exp_dir={out / 'exp'}",
                             "train.epochs=30", "model.hidden_size=64", "model.num_layers=2", "train.batch_size=8",
                             "model.conv_channels=8", "features.speed_perturb=[1.0]", "train.tensorboard=false",
                             "train.lr=0.005", "train.warmup_steps=10"])
    return out, train(cfg, progress=False)
