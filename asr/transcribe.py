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


def stream_transcribe(recognizer: Recognizer, blocks, on_partial=None) -> str:
    """Recognise audio arriving as blocks of 16 kHz mono samples with a chunk-trained model.

    `on_partial(text, seconds)` is called whenever a completed chunk changes the hypothesis (seconds of
    audio received so far); the final text is returned. Greedy CTC runs across chunk boundaries exactly as
    on the whole utterance."""
    from asr.chunking import Streamer
    from asr.text import BLANK

    streamer = Streamer(recognizer)
    ids: list[int] = []
    prev = BLANK
    received = 0

    def consume(chunks) -> bool:
        nonlocal prev
        changed = False
        for lp in chunks:
            for t in lp.argmax(dim=-1).tolist():
                if t != prev and t != BLANK:
                    ids.append(t)
                    changed = True
                prev = t
        return changed

    for block in blocks:
        block = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
        received += block.numel()
        if consume(streamer.push(block)) and on_partial is not None:
            on_partial(recognizer.tokenizer.decode(ids), received / 16000)
    consume(streamer.finish())
    return recognizer.tokenizer.decode(ids)


def file_blocks(path: str | Path, block_ms: float = 100.0):
    """Blocks of 16 kHz mono samples from an audio file, read incrementally when it is 16 kHz already
    (other rates are resampled as a whole first, then cut into blocks)."""
    import soundfile as sf

    from asr.audio import SAMPLE_RATE

    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: cannot decode audio ({exc})") from None
    if info.samplerate != SAMPLE_RATE:
        wav = load_audio(path)
        step = max(1, int(SAMPLE_RATE * block_ms / 1000))
        for i in range(0, wav.shape[0], step):
            yield wav[i:i + step]
        return
    step = max(1, int(info.samplerate * block_ms / 1000))
    n = 0
    for block in sf.blocks(str(path), blocksize=step, dtype="float32", always_2d=True):
        n += block.shape[0]
        yield block.mean(axis=1)
    if n == 0:
        raise AudioError(f"{path}: audio is empty (0 samples)")


def stdin_blocks(stream, block_ms: float = 100.0):
    """Blocks of samples from raw 16-bit little-endian 16 kHz mono PCM (e.g. `arecord -f S16_LE -r 16000`)."""
    import numpy as np

    step = max(2, int(16000 * block_ms / 1000) * 2)
    carry = b""
    while True:
        data = stream.read(step)
        if not data:
            break
        data = carry + data
        usable = len(data) - len(data) % 2
        carry = data[usable:]
        if usable:
            yield np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0
