"""Word timestamps from CTC alignment (torchaudio.functional.forced_align) of a decoded text."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torchaudio.functional as AF


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds from the start of the file
    end: float
    score: float  # mean posterior of the word's symbols on their aligned frames, 0..1


def _starts_word(tokenizer, token: int) -> bool | None:
    """True if the symbol begins a word (BPE '▁' pieces), None if it separates words (char space)."""
    if tokenizer.kind == "char":
        return None if tokenizer.symbols[token - 1] == " " else False
    return tokenizer.sp.id_to_piece(token - 1).startswith("\u2581")


def align_words(log_probs: torch.Tensor, text: str, tokenizer, frame_s: float, offset_s: float = 0.0) -> list[Word]:
    """Times of the words of `text` in one utterance's CTC log-probabilities (T, V), by forced alignment.
    Returns [] for an empty text, or when the text cannot be aligned to so few frames."""
    ids = tokenizer.encode(text)
    if not ids or log_probs.shape[0] == 0:
        return []
    lp = log_probs.detach().float().cpu().unsqueeze(0)
    targets = torch.tensor([ids], dtype=torch.int32)
    try:
        labels, scores = AF.forced_align(lp, targets, torch.tensor([lp.shape[1]]), torch.tensor([len(ids)]), blank=0)
    except RuntimeError:  # more symbols (with the blanks repeats need) than frames
        return []
    spans = AF.merge_tokens(labels[0], scores[0].exp())
    groups: list[list] = []
    current: list = []
    for span in spans:
        kind = _starts_word(tokenizer, span.token)
        if kind is None or (kind and current):
            if current:
                groups.append(current)
            current = []
        if kind is not None:
            current.append(span)
    if current:
        groups.append(current)
    words = []
    for g in groups:
        word = tokenizer.decode([s.token for s in g])
        if not word:
            continue
        score = sum(s.score * (s.end - s.start) for s in g) / max(sum(s.end - s.start for s in g), 1)
        words.append(Word(word, round(offset_s + g[0].start * frame_s, 3), round(offset_s + g[-1].end * frame_s, 3),
                          round(float(score), 3)))
    return words
