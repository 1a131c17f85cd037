"""Recognition of audio cut into pieces: the core of `Recognizer.transcribe`, `asr transcribe` and `asr serve`.

A file, file object or array of samples is read incrementally, cut at pauses into pieces of at most N seconds
(asr.segment), each piece's features go through one batched forward pass, and the pieces' texts, word times,
confidences and n-best lists are stitched into one `Transcript`. The functions take any object with the
`Recognizer` interface (features, forward, decode_log_probs, beam, tokenizer, frame_seconds), so this module does
not import asr.recognizer, which builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from asr.align import Word, align_words, clamp_word
from asr.audio import SAMPLE_RATE, read_blocks, resample
from asr.segment import split_at_silences
from asr.text import BLANK


@dataclass(frozen=True)
class Transcript:
    path: str
    text: str | None  # None when the file could not be read
    error: str | None = None
    words: tuple[Word, ...] = ()  # with timestamps, when asked for
    duration: float = 0.0  # seconds of audio
    confidence: float = 0.0  # mean posterior of the best path's symbols (of the blanks when it is empty), 0..1
    nbest: tuple[tuple[str, float], ...] = ()  # (text, score) best first, when more than one was asked for


def samples_16k(samples, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Samples as a float32 array (N,) or (N, channels), any rate → mono 16 kHz float32."""
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1)
    if x.ndim != 1:
        raise ValueError(f"samples must be (N,) or (N, channels), not of shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("samples contain NaN or infinite values")
    return resample(x, int(sample_rate), SAMPLE_RATE)


def transcribe_source(recognizer, source, *, words: bool = False, max_piece_s: float = 20.0,
                      batch_size: int = 8, name: str = "", sample_rate: int = SAMPLE_RATE,
                      nbest: int = 1) -> Transcript:
    """The Transcript of one file, binary file object, or array of samples (at `sample_rate`)."""
    if isinstance(source, np.ndarray | torch.Tensor | list):
        blocks = [samples_16k(source.numpy() if isinstance(source, torch.Tensor) else source, sample_rate)]
        name = name or "<samples>"
    else:
        blocks = read_blocks(source)
    acc = _Pieces(words, nbest)
    batch: list[tuple[int, np.ndarray]] = []
    total = 0
    for start, piece in split_at_silences(blocks, max_piece_s):
        total += piece.shape[0]
        batch.append((start, piece))
        if len(batch) == batch_size:
            acc.add(recognizer, batch, *recognize_pieces(recognizer, batch))
            batch = []
    if batch:
        acc.add(recognizer, batch, *recognize_pieces(recognizer, batch))
    return acc.transcript(name, total / SAMPLE_RATE)


def piece_features(rec, pieces) -> tuple[list[torch.Tensor], list[int]]:
    """Normalised features of each (first sample, samples) piece, and where each starts after trimming."""
    feats, starts = [], []
    for start, piece in pieces:
        f, trimmed = rec.features(torch.from_numpy(piece))
        feats.append(f)
        starts.append(start + trimmed)
    return feats, starts


@torch.no_grad()
def recognize_pieces(rec, pieces) -> tuple[list[torch.Tensor], list[int]]:
    """Pieces → each piece's log-probs (T', V) from one batched forward pass, and its start after trimming."""
    feats, starts = piece_features(rec, pieces)
    lengths = torch.tensor([f.shape[0] for f in feats])
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    log_probs, out_lens = rec.forward(padded, lengths)
    return [log_probs[i, : int(out_lens[i])].cpu() for i in range(len(pieces))], starts


class _Pieces:
    """Decodes recognised pieces in order and stitches their texts, word times, confidences and (`nbest` > 1,
    beam search) their n-best lists."""

    def __init__(self, words: bool, nbest: int = 1):
        self.words = words
        self.nbest = nbest
        self.texts: list[str] = []
        self.found: list[Word] = []
        self.conf = [0.0, 0]
        self.hyps: list[tuple[str, float]] = [("", 0.0)]  # the n best texts of the pieces so far

    def add(self, rec, pieces, log_probs: list[torch.Tensor], starts: list[int]) -> None:
        if not log_probs:
            return
        lengths = torch.tensor([lp.shape[0] for lp in log_probs])
        padded = torch.nn.utils.rnn.pad_sequence(log_probs, batch_first=True)
        if self.nbest > 1:
            if rec.beam is None:
                raise ValueError(NBEST_NEEDS_BEAM.format(n=self.nbest))
            lists = rec.beam.decode_nbest(padded, lengths, self.nbest)
            hyps = [found[0][0] if found else "" for found in lists]
            for found in lists:
                self.hyps = join_nbest(self.hyps, found or [("", 0.0)], self.nbest)
        else:
            hyps = rec.decode_log_probs(padded, lengths)
        self.texts.extend(hyps)
        for i, text in enumerate(hyps):
            total, count = confidence_terms(log_probs[i])
            self.conf[0] += total
            self.conf[1] += count
            if self.words:
                piece_end = (pieces[i][0] + pieces[i][1].shape[0]) / SAMPLE_RATE  # padded frames run past it
                self.found.extend(clamp_word(w, piece_end) for w in align_words(
                    log_probs[i], text, rec.tokenizer, rec.frame_seconds, starts[i] / SAMPLE_RATE))

    def transcript(self, name: str, seconds: float) -> Transcript:
        return Transcript(name, " ".join(t for t in self.texts if t), None, tuple(self.found), seconds,
                          round(self.conf[0] / self.conf[1], 4) if self.conf[1] else 0.0,
                          tuple(self.hyps) if self.nbest > 1 else ())


NBEST_NEEDS_BEAM = ("--nbest {n} needs beam search (--lm with --lexicon, or --beam-size alone): greedy decoding "
                    "finds one hypothesis")


def confidence_terms(log_probs: torch.Tensor) -> tuple[float, int]:
    """Sum and count of the posteriors of the best path's symbols in log-probs (T, V), or of all its frames
    (blanks) when the path has no symbol: the utterance confidence is the sum over pieces / the count."""
    best = log_probs.max(dim=-1)
    symbols = best.indices != BLANK
    chosen = best.values[symbols] if symbols.any() else best.values
    return float(chosen.exp().sum()), chosen.numel()


def join_nbest(first: list[tuple[str, float]], then: list[tuple[str, float]], n: int) -> list[tuple[str, float]]:
    """The n best (text, score) of consecutive audio from the n best of each part: every pair, texts joined,
    scores added (the n best sums only involve each list's n best), one entry per distinct text."""
    best: dict[str, float] = {}
    for a, sa in first:
        for b, sb in then:
            text = " ".join(t for t in (a, b) if t)
            best[text] = max(best.get(text, -float("inf")), round(sa + sb, 3))
    return sorted(best.items(), key=lambda kv: -kv[1])[:n]
