"""Shared fixtures: generated tones, generated speech (tests/speech.py) and small corpora written into tmp
folders. Nothing here needs ../shared; corpus-scale tests use it when present and the run reports which data
they used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speech
from speech import DIGITS, Speech

REPO = Path(__file__).resolve().parents[1]


def pytest_report_header(config):
    return [f"shared data: {speech.SHARED_DATA} ({'present' if speech.SHARED_DATA.is_dir() else 'absent'}); "
            "unit tests use generated speech, corpus-scale tests use the shared data when present"]


# tests that train a model or run a recipe (by the fixtures they use, or their module) are `slow`: `make smoke`
# leaves them out; single slow tests elsewhere carry the mark themselves
SLOW_FIXTURES = {"digit_corpus", "digits_model", "chunked_digits_model"}
SLOW_MODULES = {"test_recipes", "test_resume", "test_bench", "test_export", "test_reliability"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames) or item.module.__name__ in SLOW_MODULES:
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    for name, what in sorted(speech.used.items()):
        terminalreporter.write_line(f"corpus-scale data used: {name}: {what}")


def tone(seconds: float = 1.0, sr: int = 16000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    wav = 0.3 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([wav] * channels, axis=1) if channels > 1 else wav


@pytest.fixture
def tone_file(tmp_path):
    path = tmp_path / "tone.wav"
    sf.write(path, tone(), 16000)
    return path


@pytest.fixture(scope="session")
def speech_data(tmp_path_factory) -> Speech:
    """Generated spoken digits and sample corpora (made on first use, shared by the whole session)."""
    return Speech(tmp_path_factory.mktemp("speech"))


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
def digit_corpus(tmp_path_factory, speech_data) -> Path:
    """Spoken digits (FSDD layout, 8 kHz) in LibriSpeech layout: train (2 voices) and dev (1 other voice)."""
    root = tmp_path_factory.mktemp("digits") / "LibriSpeech"
    for spk_id, spk in ((100, "ava"), (101, "ben")):
        files = speech_data.digits(speakers=(spk,), takes=range(5, 9))
        write_librispeech_layout(root, "train", files, [DIGITS[int(f.name[0])] for f in files], spk_id)
    files = speech_data.digits(speakers=("cal",), takes=range(0, 1))
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


@pytest.fixture(scope="session")
def chunked_digits_model(digit_corpus, tmp_path_factory):
    """As `digits_model`, but latency-controlled (chunks of 4 frames of 30 ms, 2 frames of right context):
    the model that streams partial results. (manifest folder, bundle path)."""
    from asr.config import load_config
    from asr.corpus.librispeech import prepare
    from asr.train import train

    out = tmp_path_factory.mktemp("chunked-digits-model")
    prepare(digit_corpus, out / "data", progress=False)
    cfg = load_config(None, [f"data.train={out / 'data/train.jsonl'}", f"train.exp_dir={out / 'exp'}",
                             "train.epochs=30", "model.hidden_size=64", "model.num_layers=2", "train.batch_size=8",
                             "model.subsampling=stack", "model.subsampling_factor=3", "model.tbptt_chunk=4",
                             "model.right_context=2", "features.speed_perturb=[1.0]", "train.tensorboard=false",
                             "train.lr=0.005", "train.warmup_steps=10"])
    return out, train(cfg, progress=False)
