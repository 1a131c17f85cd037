"""Transcription of audio files (any rate, channel count, soundfile-readable format) with a model bundle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.align import Word, align_words
from asr.audio import SAMPLE_RATE, AudioError, read_blocks
from asr.bundle import Recognizer
from asr.segment import split_at_silences


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str | None  # None when the file could not be read
    error: str | None = None
    words: tuple[Word, ...] = ()  # with timestamps, when asked for
    duration: float = 0.0  # seconds of audio


def transcribe_files(recognizer: Recognizer, sources: list, *, words: bool = False, max_piece_s: float = 20.0,
                     batch_size: int = 8) -> Iterator[Transcript]:
    """One Transcript per input (a path, or a binary file object), in order; an unreadable file gives an
    error entry, not an exception. Long files are read incrementally, split at pauses into pieces of at most
    `max_piece_s` seconds, recognised `batch_size` pieces at a time and stitched (memory stays bounded)."""
    for source in sources:
        name = str(getattr(source, "name", None) or source)
        try:
            text, found, seconds = transcribe_source(recognizer, source, words=words, max_piece_s=max_piece_s,
                                                     batch_size=batch_size)
        except AudioError as exc:
            yield Transcript(name, None, str(exc))
            continue
        yield Transcript(name, text, None, tuple(found), seconds)


def transcribe_source(recognizer: Recognizer, source, *, words: bool = False, max_piece_s: float = 20.0,
                      batch_size: int = 8) -> tuple[str, list[Word], float]:
    """(text, words with times, seconds of audio) of one file or file object."""
    texts: list[str] = []
    found: list[Word] = []
    batch: list[tuple[int, np.ndarray]] = []
    total = 0
    for start, piece in split_at_silences(read_blocks(source), max_piece_s):
        total += piece.shape[0]
        batch.append((start, piece))
        if len(batch) == batch_size:
            _recognize(recognizer, batch, words, texts, found)
            batch = []
    if batch:
        _recognize(recognizer, batch, words, texts, found)
    return " ".join(t for t in texts if t), found, total / SAMPLE_RATE


@torch.no_grad()
def _recognize(rec: Recognizer, pieces, words: bool, texts: list[str], found: list[Word]) -> None:
    feats, starts = [], []
    for start, piece in pieces:
        f, trimmed = rec.features(torch.from_numpy(piece))
        feats.append(f)
        starts.append(start + trimmed)
    lengths = torch.tensor([f.shape[0] for f in feats])
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    log_probs, out_lens = rec.model(padded.to(rec.device), lengths.to(rec.device))
    hyps = rec.decode_log_probs(log_probs, out_lens)
    texts.extend(hyps)
    if words:
        for i, text in enumerate(hyps):
            found.extend(align_words(log_probs[i, : int(out_lens[i])], text, rec.tokenizer, rec.frame_seconds,
                                     starts[i] / SAMPLE_RATE))


def _time(seconds: float, sep: str) -> str:
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def cues(t: Transcript, max_words: int = 12, max_s: float = 6.0, gap_s: float = 1.0) -> list[tuple[float, float, str]]:
    """Subtitle cues: consecutive words, split at pauses longer than `gap_s` and at the size limits."""
    if not t.words:
        return [(0.0, t.duration, t.text)] if t.text else []
    out, current = [], []
    for w in t.words:
        if current and (len(current) >= max_words or w.end - current[0].start > max_s
                        or w.start - current[-1].end > gap_s):
            out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
            current = []
        current.append(w)
    if current:
        out.append((current[0].start, current[-1].end, " ".join(x.word for x in current)))
    return out


def render(t: Transcript, fmt: str) -> str:
    """A transcript as text, json (one object), srt or vtt."""
    if fmt == "text":
        return t.text + "\n"
    if fmt == "json":
        obj = {"file": t.path, "text": t.text, "duration": round(t.duration, 3),
               "words": [{"word": w.word, "start": w.start, "end": w.end, "score": w.score} for w in t.words]}
        return json.dumps(obj) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{_time(a, ',')} --> {_time(b, ',')}\n{text}\n\n"
                       for i, (a, b, text) in enumerate(cues(t), 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_time(a, '.')} --> {_time(b, '.')}\n{text}\n\n" for a, b, text in cues(t))
    raise ValueError(f"unknown format {fmt!r} (text, json, srt, vtt)")


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
    """Blocks of `block_ms` of 16 kHz mono samples from an audio file, decoded incrementally (`read_blocks`:
    any rate and channel count)."""
    step = max(1, int(SAMPLE_RATE * block_ms / 1000))
    carry = np.zeros(0, dtype=np.float32)
    for chunk in read_blocks(path):
        carry = np.concatenate([carry, chunk])
        n = carry.shape[0] - carry.shape[0] % step
        for i in range(0, n, step):
            yield carry[i:i + step]
        carry = carry[n:]
    if carry.shape[0]:
        yield carry


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
