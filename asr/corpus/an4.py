"""CMU AN4 (alphanumeric census utterances): NIST SPHERE audio read with soundfile.

Layout of CMU's `an4_sphere.tar.gz`:
    an4/etc/an4_train.transcription   "<s> WORDS ... </s> (utterance-id)" per line
    an4/etc/an4_test.transcription
    an4/wav/an4_clstk/<speaker>/<utterance-id>.sph       (training speakers)
    an4/wav/an4test_clstk/<speaker>/<utterance-id>.sph   (test speakers)
Utterance ids look like `an251-fash-b`: the middle part is the speaker. The training list is split into
train and a dev set of whole held-out speakers (every eighth training speaker) so that model selection
never sees the test speakers.
"""

from __future__ import annotations

import re
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, duration
from asr.manifest import ManifestError, Utterance, write_manifest

ARCHIVE = "an4_sphere.tar.gz"
URL = "http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz"
_LINE = re.compile(r"^(?:<s>)?\s*(.*?)\s*(?:</s>)?\s*\(([^()\s]+)\)\s*$")
DEV_EVERY = 8


def download(dest: str | Path, source: str | Path | None = None, progress: bool = True) -> Path:
    from asr.corpus.download import obtain

    return obtain(ARCHIVE, URL, dest, source=source, progress=progress)


def find_root(src: str | Path) -> Path:
    """The `an4` folder (holding `etc/` and `wav/`): `src` itself or `src/an4`."""
    src = Path(src)
    for cand in (src, src / "an4"):
        if (cand / "etc" / "an4_train.transcription").is_file():
            return cand
    raise ManifestError(f"{src}: not an AN4 folder (expected an4/etc/an4_train.transcription)")


def read_transcription(path: Path) -> list[tuple[str, str]]:
    """(utterance id, text) pairs; sentence markers removed."""
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if m is None:
            raise ManifestError(f"{path}:{n}: expected '<s> WORDS </s> (utterance-id)'")
        text = m.group(1).replace("<s>", "").replace("</s>", "").strip()
        rows.append((m.group(2), " ".join(text.split())))
    return rows


def _speaker(utt_id: str) -> str:
    parts = utt_id.split("-")
    return parts[1] if len(parts) >= 3 else utt_id


def _utterances(root: Path, part: str, wav_dir: str, progress: bool) -> list[Utterance]:
    rows = read_transcription(root / "etc" / f"an4_{part}.transcription")
    utts = []
    for utt_id, text in tqdm(rows, desc=f"an4 {part}", unit="utt", disable=not progress, leave=False):
        spk = _speaker(utt_id)
        audio = root / "wav" / wav_dir / spk / f"{utt_id}.sph"
        if not audio.is_file():
            raise ManifestError(f"{root / 'etc' / f'an4_{part}.transcription'}: no audio for {utt_id} ({audio})")
        if not text:
            raise ManifestError(f"{root / 'etc' / f'an4_{part}.transcription'}: empty transcript for {utt_id}")
        try:
            dur = duration(audio)
        except AudioError as exc:
            raise ManifestError(str(exc)) from None
        utts.append(Utterance(utt_id, str(audio.resolve()), round(dur, 3), spk, text))
    return utts


def prepare(src: str | Path, out_dir: str | Path, progress: bool = True) -> dict[str, int]:
    """Write `train.jsonl`, `dev.jsonl` (held-out training speakers) and `test.jsonl` under OUT_DIR."""
    root = find_root(src)
    train = _utterances(root, "train", "an4_clstk", progress)
    test = _utterances(root, "test", "an4test_clstk", progress)
    speakers = sorted({u.speaker for u in train})
    dev_speakers = set(speakers[DEV_EVERY - 1::DEV_EVERY]) if len(speakers) >= DEV_EVERY else {speakers[-1]}
    if len(speakers) < 2:
        raise ManifestError(f"{root}: AN4 training list has fewer than two speakers; cannot hold out a dev set")
    splits = {"train": [u for u in train if u.speaker not in dev_speakers],
              "dev": [u for u in train if u.speaker in dev_speakers], "test": test}
    counts = {}
    for name, rows in splits.items():
        if not rows:
            raise ManifestError(f"{root}: AN4 {name} set would be empty")
        write_manifest(rows, Path(out_dir) / f"{name}.jsonl")
        counts[name] = len(rows)
    return counts
