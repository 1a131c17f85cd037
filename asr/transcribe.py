"""Transcription of audio files (any rate, channel count, soundfile-readable format) with a model bundle."""

from __future__ import annotations

import io
import json
import os
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch

from asr.align import align_words, clamp_word
from asr.audio import SAMPLE_RATE, AudioError, pcm16, read_blocks
from asr.fileio import atomic_path
from asr.pieces import NBEST_NEEDS_BEAM, Transcript, confidence_terms, samples_16k, transcribe_source  # noqa: F401
from asr.recognizer import GreedyChunks, Recognizer, Streamer

# what a folder argument of `asr transcribe` is searched for (suffixes, any case); soundfile reads them all
AUDIO_SUFFIXES = (".aif", ".aifc", ".aiff", ".au", ".caf", ".flac", ".mp3", ".oga", ".ogg", ".opus", ".rf64",
                  ".snd", ".sph", ".w64", ".wav")


def audio_files(folder: Path) -> list[Path]:
    """The audio files (by `AUDIO_SUFFIXES`) in `folder` and below, sorted by their path inside it. Hidden
    files and folders (a leading dot) are skipped and symbolic links to folders are not followed."""
    found = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(root, f) for f in files if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_SUFFIXES]
    return sorted(found, key=lambda f: f.relative_to(folder).parts)


def read_file_list(path: Path) -> list[str]:
    """The paths a file list names, one a line (blank lines and `#` comment lines skipped), relative ones taken
    relative to the list's folder. Raises AudioError naming the list when it cannot be used."""
    if not path.exists():
        raise AudioError(f"{path}: file list not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not a file list (give the folder itself, without @)")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AudioError(f"{path}: cannot read the file list ({getattr(exc, 'strerror', None) or exc})") from None
    entries = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not entries:
        raise AudioError(f"{path}: the file list names no files")
    paths = [str(path.parent / e) for e in entries]  # an absolute entry stays as it is
    return ["./-" if f == "-" else f for f in paths]  # a file named "-", not stdin


def expand_inputs(args: list[str]) -> tuple[list[tuple[str, str]], list[str]]:
    """`asr transcribe` inputs → (source, output name) pairs, and an error message for each input that gives
    nothing. An argument is a file, `-` (stdin), a folder (its audio files, recursively: see `audio_files`) or
    `@LIST` (the files and folders a file list names: `read_file_list`). The output name, relative to
    --output-dir and without suffix, is a file's stem, or a folder's file's path inside the folder."""
    inputs: list[tuple[str, str]] = []
    errors: list[str] = []
    for arg in args:
        try:
            paths = read_file_list(Path(arg[1:])) if arg.startswith("@") else [arg]
        except AudioError as exc:
            errors.append(str(exc))
            continue
        for path in paths:
            if path == "-":
                inputs.append(("-", "stdin"))
            elif not Path(path).is_dir():
                inputs.append((path, Path(path).stem))
            elif found := audio_files(Path(path)):
                inputs += [(str(f), f.relative_to(path).with_suffix("").as_posix()) for f in found]
            else:
                errors.append(f"{path}: no audio files in this folder or below (looked for {' '.join(AUDIO_SUFFIXES)})")
    return inputs, errors


def transcribe_files(recognizer: Recognizer, sources: list, *, words: bool = False, max_piece_s: float = 20.0,
                     batch_size: int = 8, nbest: int = 1) -> Iterator[Transcript]:
    """One Transcript per input (a path, or a binary file object), in order; an unreadable file gives an
    error entry, not an exception. Long files are read incrementally, split at pauses into pieces of at most
    `max_piece_s` seconds, recognised `batch_size` pieces at a time and stitched (memory stays bounded).
    `nbest` > 1 (beam search only) also gives up to that many distinct hypotheses with their scores."""
    if not max_piece_s > 0:
        raise ValueError(f"the longest piece (--max-piece-s) must be a positive number of seconds, not {max_piece_s}")
    for source in sources:
        name = str(getattr(source, "name", None) or source)
        try:
            yield transcribe_source(recognizer, source, words=words, max_piece_s=max_piece_s, batch_size=batch_size,
                                    name=name, nbest=nbest)
        except AudioError as exc:
            yield Transcript(name, None, str(exc))


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
    if fmt == "text":  # with n-best: one "score<TAB>text" line per hypothesis
        return "".join(f"{score:.3f}\t{text}\n" for text, score in t.nbest) if t.nbest else t.text + "\n"
    if fmt == "json":
        obj = {"file": t.path, "text": t.text, "duration": round(t.duration, 3), "confidence": t.confidence,
               "words": [{"word": w.word, "start": w.start, "end": w.end, "score": w.score} for w in t.words]}
        if t.nbest:
            obj["nbest"] = [{"text": text, "score": score} for text, score in t.nbest]
        return json.dumps(obj) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{_time(a, ',')} --> {_time(b, ',')}\n{text}\n\n"
                       for i, (a, b, text) in enumerate(cues(t), 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_time(a, '.')} --> {_time(b, '.')}\n{text}\n\n" for a, b, text in cues(t))
    raise ValueError(f"unknown format {fmt!r} (text, json, srt, vtt)")


def stream_transcribe(recognizer: Recognizer, blocks, on_partial=None) -> str:
    """The final text of `stream_transcript` (see there)."""
    return stream_transcript(recognizer, blocks, on_partial).text


def stream_transcript(recognizer: Recognizer, blocks, on_partial=None, *, words: bool = False,
                      name: str = "") -> Transcript:
    """Recognise audio arriving as blocks of 16 kHz mono samples with a chunk-trained model → its Transcript.

    Greedy CTC runs across chunk boundaries exactly as on the whole utterance; after `use_beam`, the beam search
    (with its lexicon and LM) runs incrementally over the chunks instead. `on_partial(text, seconds)` is
    called whenever a completed chunk changes the hypothesis (seconds of audio received so far). With `words`
    the chunks' log-probs are kept (V floats per output frame) and the final text is aligned to them."""
    streamer = Streamer(recognizer)
    greedy = GreedyChunks(keep=words)
    beam = recognizer.beam.stream() if recognizer.beam is not None else None  # else greedy
    text, samples = "", 0

    def add(chunks: list[torch.Tensor]) -> str:
        greedy.add(chunks)
        if beam is None:
            return recognizer.tokenizer.decode(greedy.ids)
        for lp in chunks:
            beam.step(lp)
        return beam.text

    for block in blocks:
        block = torch.as_tensor(block, dtype=torch.float32).reshape(-1)
        samples += block.numel()
        new = add(streamer.push(block))
        if new != text and on_partial is not None:
            on_partial(new, samples / SAMPLE_RATE)
        text = new
    text = add(streamer.finish())
    if beam is not None:
        text = beam.finish()
    seconds = samples / SAMPLE_RATE
    found = ()
    if words and greedy.kept:
        found = tuple(clamp_word(w, seconds) for w in align_words(torch.cat(greedy.kept), text,
                                                                    recognizer.tokenizer, recognizer.frame_seconds))
    return Transcript(name, text, None, found, seconds, greedy.confidence())


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
            yield pcm16(data[:usable])


def output_file(output_dir: str | Path, name: str, fmt: str) -> Path:
    """Where `--output-dir` puts the transcript of the input with output name `name` (`expand_inputs`)."""
    ext = {"text": "txt"}.get(fmt, fmt)
    return Path(output_dir) / f"{name}.{ext}"


def check_options(fmt: str = "text", nbest: int = 1, beam: bool = False, stream: bool = False) -> None:
    """Refuse, before any work, the output format, number of hypotheses, decoding (`beam`: beam search) and
    mode (`stream`) that do not go together."""
    if not (isinstance(nbest, int) and nbest >= 1):
        raise ValueError(f"--nbest must be a whole number of at least 1, not {nbest!r}")
    if stream and nbest > 1:
        raise ValueError("--stream does not support --nbest yet (it gives the best hypothesis as the audio "
                         "arrives); transcribe without --stream for n-best lists")
    if nbest > 1 and not beam:
        raise ValueError(NBEST_NEEDS_BEAM.format(n=nbest))
    if nbest > 1 and fmt not in ("text", "json"):
        raise ValueError(f"--nbest {nbest} needs --format text or json (subtitles show one hypothesis)")


def check_outputs(inputs: list[tuple[str, str]], fmt: str, output_dir) -> None:
    """Refuse, before anything is written, outputs that cannot be told apart: several subtitle files on
    stdout, or two inputs with one output file."""
    if fmt in ("srt", "vtt") and len(inputs) > 1 and not output_dir:
        raise ValueError(f"--format {fmt} with several files needs --output-dir (one file per input)")
    if output_dir:
        targets: dict[Path, str] = {}
        for source, name in inputs:
            target = output_file(output_dir, name, fmt)
            other = targets.setdefault(target, source)
            if other != source:
                raise ValueError(f"{other} and {source} would both be written to {target}; "
                                 "transcribe them into separate --output-dir folders")


def write_transcript(t: Transcript, source: str, name: str, fmt: str, output_dir, show_name: bool, out) -> None:
    """One transcript in `fmt`: into its file under `output_dir` (atomically), else on `out`; text on `out`
    gets the source's name first with `show_name` (before a tab, or on a line of its own before n-best
    lines)."""
    text = render(t, fmt)
    if output_dir:
        with atomic_path(output_file(output_dir, name, fmt)) as tmp:
            tmp.write_text(text, encoding="utf-8")
    elif fmt == "text" and t.nbest:
        print(f"{source}\n{text}", end="", file=out, flush=True)
    elif fmt == "text" and show_name:
        print(f"{source}\t{t.text}", file=out, flush=True)
    else:
        print(text, end="", file=out, flush=True)


def transcribe_to_outputs(recognizer: Recognizer, files: list[str], fmt: str = "text", output_dir=None,
                          with_names: bool = False, max_piece_s: float = 20.0, stdin=None, out=None, err=None,
                          nbest: int = 1) -> int:
    """Transcribe `files` (files, folders, @lists, "-" = one file read from `stdin`: `expand_inputs`) and write
    each transcript in `fmt`: to stdout (in order), or one file per input in `output_dir` (written
    atomically, a folder's layout kept). An input that gives nothing (a file that cannot be read, an empty
    folder, a missing list) gets one `error:` line on stderr and the others go on. `nbest` > 1 (beam search):
    up to that many distinct hypotheses per file with their scores. Returns the number of failed inputs."""
    out, err = out or sys.stdout, err or sys.stderr
    check_options(fmt, nbest, beam=recognizer.beam is not None)
    if nbest > 1 and nbest > recognizer.beam.options.beam_size:
        raise ValueError(f"--nbest {nbest} is more than the beam size ({recognizer.beam.options.beam_size}); "
                         "raise --beam-size")
    inputs, problems = expand_inputs(files)
    check_outputs(inputs, fmt, output_dir)
    for problem in problems:
        print(f"error: {problem}", file=err, flush=True)
    sources = []
    for f, _ in inputs:
        if f == "-":
            f = io.BytesIO((stdin or sys.stdin.buffer).read())
            f.name = "<stdin>"
        sources.append(f)
    failed = len(problems)
    words = fmt in ("json", "srt", "vtt")
    for (source, name), t in zip(inputs, transcribe_files(recognizer, sources, words=words, max_piece_s=max_piece_s,
                                                          nbest=nbest)):
        if t.error is not None:
            failed += 1
            print(f"error: {t.error}", file=err, flush=True)
            continue
        write_transcript(t, source, name, fmt, output_dir, with_names and len(inputs) > 1, out)
    return failed


def stream_to_outputs(recognizer: Recognizer, files: list[str], block_ms: float = 100.0, with_names: bool = False,
                      stdin=None, out=None, err=None, fmt: str = "text", output_dir=None) -> int:
    """Streaming recognition of each input (as in `transcribe_to_outputs`; "-" is raw PCM from `stdin`): the
    algorithmic latency and the partial hypotheses on stderr, each final transcript in `fmt` on stdout or in
    `output_dir`. Returns the number of failed inputs."""
    out, err = out or sys.stdout, err or sys.stderr
    check_options(fmt, beam=recognizer.beam is not None, stream=True)
    latency = Streamer(recognizer).latency_ms  # also checks that the model can stream
    inputs, problems = expand_inputs(files)
    check_outputs(inputs, fmt, output_dir)
    m = recognizer.cfg.model
    print(f"streaming: algorithmic latency {latency:.0f} ms (chunk {m.tbptt_chunk} + right context "
          f"{m.right_context} frames of {recognizer.frame_seconds * 1000:.0f} ms)", file=err, flush=True)
    for problem in problems:
        print(f"error: {problem}", file=err, flush=True)
    failed = len(problems)
    for source, name in inputs:
        blocks = stdin_blocks(stdin or sys.stdin.buffer, block_ms) if source == "-" else file_blocks(source, block_ms)
        try:
            t = stream_transcript(recognizer, blocks, partial(_print_partial, err), words=fmt != "text",
                                  name="<stdin>" if source == "-" else source)
        except AudioError as exc:
            failed += 1
            print(f"error: {exc}", file=err, flush=True)
            continue
        write_transcript(t, source, name, fmt, output_dir, with_names, out)
    return failed


def _print_partial(err, text: str, seconds: float) -> None:
    print(f"partial {seconds:6.2f}s: {text}", file=err, flush=True)
