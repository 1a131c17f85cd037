"""Long audio: split a stream of samples into pieces of at most N seconds, cutting in the quietest place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from asr.audio import SAMPLE_RATE


def split_at_silences(blocks: Iterable[np.ndarray], max_s: float = 20.0, sr: int = SAMPLE_RATE,
                      window_s: float = 0.1) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (first sample, piece) for consecutive pieces covering the whole stream, none longer than `max_s`.

    When `max_s` seconds are buffered, the cut goes at the middle of the lowest-energy `window_s` window in
    the buffer's second half (a pause between words, when there is one). Memory is bounded by `max_s` plus
    one block."""
    limit = int(max_s * sr)
    win = max(1, int(window_s * sr))
    buf = np.zeros(0, dtype=np.float32)
    start = 0
    for block in blocks:
        buf = np.concatenate([buf, np.asarray(block, dtype=np.float32)])
        while buf.shape[0] >= limit:
            cut = _quietest_cut(buf[:limit], win)
            yield start, buf[:cut]
            start += cut
            buf = buf[cut:]
    if buf.shape[0]:
        yield start, buf


def _quietest_cut(piece: np.ndarray, win: int) -> int:
    half = piece.shape[0] // 2
    tail = piece[half:]
    n = tail.shape[0] // win
    if n < 1:
        return piece.shape[0]
    energy = (tail[: n * win].reshape(n, win) ** 2).mean(axis=1)
    k = int(np.argmin(energy))
    return half + k * win + win // 2
