"""Free Spoken Digit Dataset (FSDD): `{digit}_{speaker}_{take}.wav`, 8 kHz mono, real human speakers.

Two evaluations are prepared:
- `conventional/`: takes 0-4 of every speaker are the test set (the split the dataset's README gives);
  takes 5-7 are held out as a dev set for model selection, takes 8-49 train.
- `loso-<speaker>/`: speaker-independent, leave one speaker out: all of that speaker's recordings are the
  test set; the other speakers' takes 5-7 are the dev set and their takes 0-4 and 8-49 train.
Audio stays where it is (8 kHz); `asr.audio` resamples to 16 kHz when it is read.
"""

from __future__ import annotations

import re
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, duration
from asr.fileio import atomic_path
from asr.manifest import ManifestError, Utterance, write_manifest

ARCHIVE = "free-spoken-digit-dataset-1.0.10.zip"
URL = "https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v1.0.10.zip"
WORDS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
TEST_TAKES = range(0, 5)
DEV_TAKES = range(5, 8)
_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def download(dest: str | Path, source: str | Path | None = None, progress: bool = True) -> Path:
    """Fetch the dataset archive from GitHub (or use `source`: the archive, or a folder holding
    `recordings/`) into `dest`."""
    from asr.corpus.download import obtain

    return obtain(ARCHIVE, URL, dest, source=source, progress=progress)


def find_recordings(src: str | Path) -> Path:
    """The folder holding the `*.wav` recordings: `src` itself, or a `recordings/` folder below it."""
    src = Path(src)
    if not src.is_dir():
        raise ManifestError(f"{src}: not a directory")
    if any(_NAME.match(p.name) for p in src.glob("*.wav")):
        return src
    for cand in sorted(src.rglob("recordings")):
        if cand.is_dir() and any(_NAME.match(p.name) for p in cand.glob("*.wav")):
            return cand
    raise ManifestError(f"{src}: no FSDD recordings found (expected recordings/<digit>_<speaker>_<take>.wav)")


def utterances(src: str | Path, progress: bool = True) -> list[Utterance]:
    rec = find_recordings(src)
    utts = []
    files = sorted(p for p in rec.glob("*.wav") if _NAME.match(p.name))
    for path in tqdm(files, desc="fsdd", unit="file", disable=not progress, leave=False):
        digit, speaker, take = _NAME.match(path.name).groups()
        try:
            dur = duration(path)
        except AudioError as exc:
            raise ManifestError(str(exc)) from None
        utts.append(Utterance(f"{speaker}-{int(take):02d}-{digit}", str(path.resolve()), round(dur, 4), speaker,
                              WORDS[int(digit)]))
    return sorted(utts, key=lambda u: u.id)


def _take(u: Utterance) -> int:
    return int(u.id.split("-")[1])


def prepare(src: str | Path, out_dir: str | Path, progress: bool = True) -> dict[str, int]:
    """Write `conventional/{train,dev,test}.jsonl` and `loso-<spk>/{train,dev,test}.jsonl` under OUT_DIR,
    plus `words.txt` (the ten words, for constrained decoding), each file atomically. Returns utterances per
    manifest."""
    utts = utterances(src, progress)
    out = Path(out_dir)
    speakers = sorted({u.speaker for u in utts})
    splits: dict[str, list[Utterance]] = {
        "conventional/test": [u for u in utts if _take(u) in TEST_TAKES],
        "conventional/dev": [u for u in utts if _take(u) in DEV_TAKES],
        "conventional/train": [u for u in utts if _take(u) not in TEST_TAKES and _take(u) not in DEV_TAKES],
    }
    if len(speakers) > 1:
        for spk in speakers:
            others = [u for u in utts if u.speaker != spk]
            splits[f"loso-{spk}/test"] = [u for u in utts if u.speaker == spk]
            splits[f"loso-{spk}/dev"] = [u for u in others if _take(u) in DEV_TAKES]
            splits[f"loso-{spk}/train"] = [u for u in others if _take(u) not in DEV_TAKES]
    counts = {}
    for name, rows in splits.items():
        if not rows:
            raise ManifestError(f"{src}: FSDD split {name} would be empty")
        write_manifest(rows, out / f"{name}.jsonl")
        counts[name] = len(rows)
    with atomic_path(out / "words.txt") as tmp:
        tmp.write_text("\n".join(WORDS) + "\n")
    return counts
