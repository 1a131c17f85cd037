"""Manifests: JSON Lines, one utterance a line with `id`, `audio`, `duration`, `speaker`, `text`; and hypothesis
files (`id`, `text`), the same format for decoder output."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.fileio import atomic_path


class ManifestError(ValueError):
    """A manifest that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Utterance:
    id: str
    audio: str  # path to the audio file
    duration: float  # seconds
    speaker: str
    text: str


_FIELDS = ("id", "audio", "duration", "speaker", "text")


def _parse_line(line: str, where: str) -> Utterance:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object")
    missing = [k for k in _FIELDS if k not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    try:
        dur = float(obj["duration"])
    except (TypeError, ValueError):
        raise ManifestError(f"{where}: duration must be a number, got {obj['duration']!r}") from None
    if not (dur > 0 and math.isfinite(dur)):
        raise ManifestError(f"{where}: duration must be a positive number of seconds, got {obj['duration']!r}")
    for key in ("id", "audio", "speaker", "text"):
        if not isinstance(obj[key], str):
            raise ManifestError(f"{where}: field {key!r} must be a string")
    if not obj["id"] or not obj["audio"]:
        raise ManifestError(f"{where}: empty id or audio path")
    return Utterance(obj["id"], obj["audio"], dur, obj["speaker"], obj["text"])


def text_lines(path: Path):
    """(line number, text) of every non-blank line of a UTF-8 text file, read line by line; a line that is not
    UTF-8 is a ManifestError naming the file and line."""
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ManifestError(f"{path}:{n}: not UTF-8 text (byte {exc.start + 1} of the line)") from None
            if line.strip():
                yield n, line


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read and validate a manifest; relative audio paths are resolved against the manifest's folder."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: manifest not found")
    utts, seen = [], set()
    for n, line in text_lines(path):
        utt = _parse_line(line, f"{path}:{n}")
        if utt.id in seen:
            raise ManifestError(f"{path}:{n}: duplicate utterance id {utt.id!r}")
        seen.add(utt.id)
        audio = Path(utt.audio)
        if not audio.is_absolute():
            utt = Utterance(utt.id, str(path.parent / audio), utt.duration, utt.speaker, utt.text)
        utts.append(utt)
    if not utts:
        raise ManifestError(f"{path}: manifest has no utterances")
    return utts


def write_manifest(utts: list[Utterance], path: str | os.PathLike) -> None:
    """Write atomically (temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(asdict(u), ensure_ascii=False) + "\n" for u in utts), encoding="utf-8")


def merge_manifests(inputs: list[str | os.PathLike], out: str | os.PathLike,
                    texts: list[str] | None = None) -> int:
    """Concatenate manifests (e.g. LibriSpeech training subsets) into one; ids must stay unique. With `texts`,
    only utterances whose transcript is one of them are kept (an empty result is an error)."""
    utts, seen = [], set()
    keep = set(texts) if texts is not None else None
    for path in inputs:
        for u in read_manifest(path):
            if keep is not None and u.text not in keep:
                continue
            if u.id in seen:
                raise ManifestError(f"{path}: utterance id {u.id!r} also appears in an earlier manifest")
            seen.add(u.id)
            utts.append(u)
    if keep is not None and not utts:
        raise ManifestError(f"{out}: no utterance of {', '.join(map(str, inputs))} has one of the {len(keep)} "
                            "transcripts asked for")
    write_manifest(utts, out)
    return len(utts)


def write_hypotheses(hyps: dict[str, str], path: str | Path, extra: dict[str, dict] | None = None) -> None:
    """JSON Lines `{"id": ..., "text": ...}` (plus the fields of `extra[id]`, e.g. an n-best list), written
    atomically."""
    extra = extra or {}
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps({"id": i, "text": t, **extra.get(i, {})}) + "\n" for i, t in hyps.items()),
                       encoding="utf-8")


def read_hypotheses(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: hypothesis file not found")
    hyps = {}
    for n, line in text_lines(path):
        try:
            obj = json.loads(line)
            hyps[str(obj["id"])] = str(obj["text"])
        except (json.JSONDecodeError, KeyError, TypeError):
            raise ManifestError(f"{path}:{n}: expected {{\"id\": ..., \"text\": ...}}") from None
    return hyps
