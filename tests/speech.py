"""Speech the tests make for themselves, so that the suite needs nothing beside the repository.

- `digits()`: spoken digits in FSDD's layout and rate (`{digit}_{speaker}_{take}.wav`, 8 kHz), each "speaker"
  an espeak-ng voice and each take another speaking rate and pitch. Unit tests always use these.
- `fsdd_source()`: the real FSDD in `../shared/data` (2,500 recordings) when it is there, else a generated
  subset (3 voices x 10 digits x 20 takes). Corpus-scale tests use it; the data used is reported.
- `librispeech_sample()`: the two real LibriSpeech utterances in `../shared/data` when there, else two
  generated ones in the same layout.

`ASR_SHARED_DATA` overrides where the shared data is looked for (a missing folder means "not there").
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import SAMPLE_RATE, resample
from asr.corpus.synth import Voice, _synthesize_raw, trim

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))
SHARED_FSDD = SHARED_DATA / "fsdd"
SHARED_LIBRISPEECH = SHARED_DATA / "librispeech-sample"
DIGITS = "ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split()
FSDD_RATE = 8000
# generated speakers: espeak-ng voices (accent+variant), named like FSDD's speakers (letters only)
VOICES = {"ava": "en-us+f2", "ben": "en+m3", "cal": "en-gb-scotland+m1", "dee": "en-us+f4", "eli": "en-029+m2"}
FSDD_SUBSET_SPEAKERS = ("ava", "ben", "cal")
FSDD_SUBSET_TAKES = range(20)  # 0-4 test, 5-7 dev, 8-19 train in the conventional split
LIBRISPEECH_LINES = {
    "dev-clean": (1001, "IF THE WEATHER HOLDS WE WILL WALK TO THE OLD MILL BY THE RIVER TOMORROW MORNING"),
    "test-clean": (1002, "SHE PUT THE BLUE CUP ON THE TABLE AND OPENED THE WINDOW TO LET IN THE COOL AIR"),
}

# which data each corpus-scale fixture used in this run, for the report at the end of the run
used: dict[str, str] = {}


def have_shared(path: Path) -> bool:
    return path.is_dir() and any(path.iterdir())


def speak(text: str, voice: str, take: int, rate_hz: int) -> np.ndarray:
    """`text` spoken by an espeak-ng voice; the take sets the speaking rate, pitch and level. A faint noise
    floor (about 50 dB below the peak, seeded by text, voice and take) stands in for a microphone's: digital
    silence is not what recordings have."""
    wav, sr = _synthesize_raw(Voice(0, "espeak", voice), text, 130 + 7 * (take % 13), 30 + 5 * (take % 10))
    wav = trim(wav, sr, 0.1 + 0.02 * (take % 5), 0.1)
    wav = resample(wav, sr, rate_hz)
    peak = 0.2 + 0.06 * (take % 10)
    rng = np.random.default_rng(list(f"{text}|{voice}|{take}".encode()))
    return (peak * wav / np.abs(wav).max() + rng.normal(0, 0.003 * peak, wav.shape)).astype(np.float32)


def _write_digit(path: Path, digit: int, speaker: str, take: int) -> Path:
    if not path.is_file():
        tmp = path.with_suffix(".tmp.wav")
        sf.write(tmp, speak(DIGITS[digit].lower(), VOICES[speaker], take, FSDD_RATE), FSDD_RATE, subtype="PCM_16")
        tmp.rename(path)
    return path


def write_digits(folder: Path, speakers, takes, digits=range(10)) -> list[Path]:
    """FSDD-named recordings in `folder`, made where missing; in speaker, digit, take order."""
    folder.mkdir(parents=True, exist_ok=True)
    jobs = [(folder / f"{d}_{s}_{t}.wav", d, s, t) for s in speakers for d in digits for t in takes]
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda job: _write_digit(*job), jobs))


class Speech:
    """The tests' speech, made on first use under `root` (one folder per pytest session)."""

    def __init__(self, root: Path):
        self.root = root

    def digits(self, speakers=("ava", "ben"), takes=range(5, 7), digits=range(10)) -> list[Path]:
        return write_digits(self.root / "digits", speakers, takes, digits)

    def fsdd_source(self) -> Path:
        """A folder holding `recordings/`: the real FSDD when shared data is present, else generated."""
        if have_shared(SHARED_FSDD / "recordings"):
            used["fsdd"] = f"{SHARED_FSDD} ({len(list((SHARED_FSDD / 'recordings').glob('*.wav')))} real recordings)"
            return SHARED_FSDD
        src = self.root / "fsdd"
        files = write_digits(src / "recordings", FSDD_SUBSET_SPEAKERS, FSDD_SUBSET_TAKES)
        used["fsdd"] = f"generated subset ({len(files)} espeak-ng recordings; no {SHARED_FSDD})"
        return src

    def librispeech_sample(self) -> Path:
        """A folder holding `LibriSpeech/{dev-clean,test-clean}/SPK/CHAPTER/...`, one utterance each."""
        if have_shared(SHARED_LIBRISPEECH / "LibriSpeech"):
            used["librispeech"] = f"{SHARED_LIBRISPEECH} (2 real utterances)"
            return SHARED_LIBRISPEECH
        src = self.root / "librispeech-sample"
        for subset, (speaker, text) in LIBRISPEECH_LINES.items():
            chapter = src / "LibriSpeech" / subset / str(speaker) / "1"
            if not chapter.is_dir():
                chapter.mkdir(parents=True)
                sf.write(chapter / f"{speaker}-1-0000.flac", speak(text.lower(), "en-us", 3, SAMPLE_RATE),
                         SAMPLE_RATE, format="FLAC", subtype="PCM_16")
                (chapter / f"{speaker}-1.trans.txt").write_text(f"{speaker}-1-0000 {text}\n")
        used["librispeech"] = f"generated ({len(LIBRISPEECH_LINES)} espeak-ng utterances; no {SHARED_LIBRISPEECH})"
        return src
