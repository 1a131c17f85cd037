"""LibriSpeech layout (`SUBSET/SPK/CHAPTER/SPK-CHAPTER.trans.txt` + audio) → one manifest per subset."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, duration
from asr.manifest import ManifestError, Utterance, write_manifest

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def _find_root(src: Path) -> Path:
    """Accept either the folder holding the subsets or its parent containing `LibriSpeech/`."""
    if (src / "LibriSpeech").is_dir():
        return src / "LibriSpeech"
    return src


def _read_transcripts(trans: Path) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise ManifestError(f"{trans}:{n}: expected '<utterance-id> <TEXT>'")
        rows.append((parts[0], parts[1]))
    return rows


def _audio_for(folder: Path, utt_id: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        p = folder / f"{utt_id}{suffix}"
        if p.is_file():
            return p
    return None


def subset_utterances(subset_dir: Path, progress: bool = True) -> list[Utterance]:
    """All utterances of one subset folder, sorted by id; missing audio is an error naming the file."""
    utts = []
    transcripts = sorted(subset_dir.rglob("*.trans.txt"))
    for trans in tqdm(transcripts, desc=subset_dir.name, unit="chapter", disable=not progress, leave=False):
        for utt_id, text in _read_transcripts(trans):
            audio = _audio_for(trans.parent, utt_id)
            if audio is None:
                raise ManifestError(f"{trans}: no audio file for utterance {utt_id} ({'/'.join(AUDIO_SUFFIXES)})")
            try:
                dur = duration(audio)
            except AudioError as exc:
                raise ManifestError(str(exc)) from None
            utts.append(Utterance(utt_id, str(audio.resolve()), round(dur, 3), utt_id.split("-")[0], text))
    return sorted(utts, key=lambda u: u.id)


def prepare(src: str | Path, out_dir: str | Path, subsets: list[str] | None = None,
            progress: bool = True) -> dict[str, int]:
    """Write `OUT_DIR/<subset>.jsonl` for each subset folder under SRC; return utterances per subset."""
    root = _find_root(Path(src))
    if not root.is_dir():
        raise ManifestError(f"{src}: not a directory")
    names = subsets or sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.rglob("*.trans.txt")))
    if not names:
        raise ManifestError(f"{root}: no LibriSpeech subsets found (no */SPK/CHAPTER/*.trans.txt)")
    counts = {}
    for name in names:
        subset_dir = root / name
        if not subset_dir.is_dir():
            raise ManifestError(f"{root}: subset {name!r} not found")
        utts = subset_utterances(subset_dir, progress)
        if not utts:
            raise ManifestError(f"{subset_dir}: no utterances found")
        write_manifest(utts, Path(out_dir) / f"{name}.jsonl")
        counts[name] = len(utts)
    return counts
