"""Transcription of audio files (any rate, channel count, soundfile-readable format) with a model bundle."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.audio import AudioError, load_audio
from asr.bundle import Recognizer


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str | None  # None when the file could not be read
    error: str | None = None


def transcribe_files(recognizer: Recognizer, paths: list[str | Path]) -> Iterator[Transcript]:
    """One Transcript per input, in order; an unreadable file gives an error entry, not an exception."""
    for path in paths:
        try:
            wav = load_audio(path)
        except AudioError as exc:
            yield Transcript(str(path), None, str(exc))
            continue
        yield Transcript(str(path), recognizer.transcribe_wave(torch.from_numpy(wav)))
