"""Shared set-up of the benchmark scripts."""

from __future__ import annotations

import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def demo_subset(data: Path, n: int, prefix: str) -> tuple[Path, Path]:
    """Manifests of a LibriSpeech-layout corpus (default: the committed demo corpus) in a new temporary
    folder, and a training manifest of its first `n` utterances. Returns (folder, train manifest)."""
    from asr.corpus.librispeech import prepare

    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    prepare(data, tmp / "data", progress=False)
    lines = (tmp / "data" / "train.jsonl").read_text().splitlines()[:n]
    (tmp / "train.jsonl").write_text("\n".join(lines) + "\n")
    return tmp, tmp / "train.jsonl"


def epoch_line(exp: Path, epoch: int = 2) -> tuple[float, float]:
    """(seconds, x real time) of an epoch, from the experiment's train.log."""
    import re
    import sys

    log = (exp / "train.log").read_text()
    m = re.search(rf"epoch {epoch} done: .*?, ([\d.]+) s \((\d+)x real time\)", log)
    if not m:
        sys.exit(f"no epoch-{epoch} line in {exp / 'train.log'}")
    return float(m.group(1)), float(m.group(2))
