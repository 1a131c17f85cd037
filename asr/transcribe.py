"""Transcription of audio files (any rate, channel count, soundfile-readable format) with a model bundle."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from asr.align import Word, align_words, clamp_word
from asr.audio import SAMPLE_RATE, AudioError, read_blocks
from asr.fileio import atomic_path
from asr.recognizer import Recognizer
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
    if not max_piece_s > 0:
        raise ValueError(f"the longest piece (--max-piece-s) must be a positive number of seconds, not {max_piece_s}")
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
    log_probs, out_lens = rec.forward(padded, lengths)
    hyps = rec.decode_log_probs(log_probs, out_lens)
    texts.extend(hyps)
    if words:
        for i, text in enumerate(hyps):
            piece_end = (pieces[i][0] + pieces[i][1].shape[0]) / SAMPLE_RATE  # padded frames run past it
            found.extend(clamp_word(w, piece_end) for w in align_words(
                log_probs[i, : int(out_lens[i])], text, rec.tokenizer, rec.frame_seconds, starts[i] / SAMPLE_RATE))


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
    stream = recognizer.stream()
    text = ""
    for block in blocks:
        new = stream.accept(block)
        if new != text and on_partial is not None:
            on_partial(new, stream.seconds)
        text = new
    return stream.finish()


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
    step = max(2, int(SAMPLE_RATE * block_ms / 1000) * 2)
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


def output_file(output_dir: str | Path, name: str, fmt: str) -> Path:
    """Where `--output-dir` puts the transcript of input `name` ("-" is stdin)."""
    ext = {"text": "txt"}.get(fmt, fmt)
    return Path(output_dir) / f"{'stdin' if name == '-' else Path(name).stem}.{ext}"


def transcribe_to_outputs(recognizer: Recognizer, files: list[str], fmt: str = "text", output_dir=None,
                          with_names: bool = False, max_piece_s: float = 20.0, stdin=None, out=None, err=None) -> int:
    """Transcribe `files` ("-" = one file read from `stdin`) and write each transcript in `fmt`: to stdout (in
    order), or one file per input in `output_dir` (written atomically). A file that cannot be read gets one
    `error:` line on stderr and the others go on. Returns the number of failed files."""
    out, err = out or sys.stdout, err or sys.stderr
    if fmt in ("srt", "vtt") and len(files) > 1 and not output_dir:
        raise ValueError(f"--format {fmt} with several files needs --output-dir (one file per input)")
    sources = []
    for f in files:
        if f == "-":
            f = io.BytesIO((stdin or sys.stdin.buffer).read())
            f.name = "<stdin>"
        sources.append(f)
    if output_dir:
        targets: dict[Path, str] = {}
        for f in files:
            other = targets.setdefault(output_file(output_dir, f, fmt), f)
            if other != f:
                raise ValueError(f"{other} and {f} would both be written to {output_file(output_dir, f, fmt)}; "
                                 "transcribe them into separate --output-dir folders")
        Path(output_dir).mkdir(parents=True, exist_ok=True)
    failed = 0
    words = fmt in ("json", "srt", "vtt")
    for name, t in zip(files, transcribe_files(recognizer, sources, words=words, max_piece_s=max_piece_s)):
        if t.error is not None:
            failed += 1
            print(f"error: {t.error}", file=err, flush=True)
            continue
        text = render(t, fmt)
        if output_dir:
            with atomic_path(output_file(output_dir, name, fmt)) as tmp:
                tmp.write_text(text, encoding="utf-8")
        elif fmt == "text" and len(files) > 1 and with_names:
            print(f"{name}\t{t.text}", file=out, flush=True)
        else:
            print(text, end="", file=out, flush=True)
    return failed


def stream_to_outputs(recognizer: Recognizer, files: list[str], block_ms: float = 100.0, with_names: bool = False,
                      stdin=None, out=None, err=None) -> int:
    """Streaming recognition of each file (or raw PCM from `stdin` for "-"): the algorithmic latency and the
    partial hypotheses on stderr, each final text on stdout. Returns the number of failed files."""
    out, err = out or sys.stdout, err or sys.stderr
    latency = recognizer.stream().latency_ms  # also checks that the model can stream
    m = recognizer.cfg.model
    print(f"streaming: algorithmic latency {latency:.0f} ms (chunk {m.tbptt_chunk} + right context "
          f"{m.right_context} frames of {recognizer.frame_seconds * 1000:.0f} ms)", file=err, flush=True)

    def partial(text, seconds):
        print(f"partial {seconds:6.2f}s: {text}", file=err, flush=True)

    failed = 0
    for name in files:
        blocks = stdin_blocks(stdin or sys.stdin.buffer, block_ms) if name == "-" else file_blocks(name, block_ms)
        try:
            text = stream_transcribe(recognizer, blocks, partial)
        except AudioError as exc:
            failed += 1
            print(f"error: {exc}", file=err, flush=True)
            continue
        print(f"{name}\t{text}" if with_names else text, file=out, flush=True)
    return failed
