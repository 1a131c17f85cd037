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


def clamp_word(w: Word, end_s: float) -> Word:
    """`w` with its times no later than `end_s` (the end of the audio: the last output frame can reach past it)."""
    if w.end <= end_s:
        return w
    return Word(w.word, min(w.start, round(end_s, 3)), round(end_s, 3), w.score)


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
    for span in spans:  # a word ends at a separator (char space) or where the next begins (BPE '▁' piece)
        separator = tokenizer.separates_words(span.token)
        if separator or (current and tokenizer.starts_word(span.token)):
            if current:
                groups.append(current)
            current = []
        if not separator:
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
