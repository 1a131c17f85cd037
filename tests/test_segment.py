"""Splitting a stream of samples into bounded pieces cut in pauses (asr.segment)."""

import itertools

import numpy as np
import pytest

from asr.segment import split_at_silences


def noise(n: int, seed: int = 0) -> np.ndarray:
    return 0.3 * np.random.default_rng(seed).standard_normal(n).astype(np.float32)


def blocks_of(audio: np.ndarray, size: int) -> list[np.ndarray]:
    return [audio[i:i + size] for i in range(0, len(audio), size)]


def test_pieces_cover_the_stream_and_cut_in_pauses():
    sr = 16000
    rng = np.random.default_rng(0)
    parts, gaps = [], []
    pos = 0
    for _ in range(12):  # 2.5-3.5 s of "speech" then 0.4 s of silence
        n = int(rng.uniform(2.5, 3.5) * sr)
        parts += [0.3 * rng.standard_normal(n).astype(np.float32), np.zeros(int(0.4 * sr), np.float32)]
        gaps.append((pos + n, pos + n + int(0.4 * sr)))
        pos += n + int(0.4 * sr)
    audio = np.concatenate(parts)
    blocks = [audio[i:i + 7000] for i in range(0, len(audio), 7000)]
    pieces = list(split_at_silences(blocks, max_s=8.0, sr=sr))
    assert np.array_equal(np.concatenate([p for _, p in pieces]), audio)  # nothing lost, nothing repeated
    assert [s for s, _ in pieces] == list(np.cumsum([0] + [len(p) for _, p in pieces[:-1]]))
    assert all(len(p) <= 8 * sr for _, p in pieces)
    for start, _ in pieces[1:]:
        assert any(a <= start < b for a, b in gaps), f"cut at {start / sr:.2f} s is not in a pause"


def test_the_cut_is_the_middle_of_the_quietest_window_of_the_second_half():
    audio = noise(1500)  # sr 1000: pieces of at most 1000 samples, 100-sample windows
    audio[720:800] *= 0.01  # quietest window of the second half: 700-799
    audio[100:200] = 0.0  # silent, but in the first half: a cut there would leave a needlessly short piece
    pieces = list(split_at_silences([audio], max_s=1.0, sr=1000, window_s=0.1))
    assert [(s, len(p)) for s, p in pieces] == [(0, 750), (750, 750)]


@pytest.mark.parametrize("block", [1, 333, 1000, 4096])
def test_every_sample_once_in_order_whatever_the_block_size(block):
    audio = noise(3700, seed=block)
    pieces = list(split_at_silences(blocks_of(audio, block) + [np.zeros(0, np.float32)], max_s=1.0, sr=1000))
    assert np.array_equal(np.concatenate([p for _, p in pieces]), audio)
    assert [s for s, _ in pieces] == [0, *np.cumsum([len(p) for _, p in pieces[:-1]])]
    assert all(500 < len(p) <= 1000 for _, p in pieces[:-1])  # cuts fall in the second half of a full buffer
    assert all(p.dtype == np.float32 for _, p in pieces)


def test_a_window_longer_than_half_a_piece_cuts_at_the_limit():
    audio = noise(250)
    pieces = list(split_at_silences(blocks_of(audio, 30), max_s=0.1, sr=1000, window_s=0.1))
    assert [(s, len(p)) for s, p in pieces] == [(0, 100), (100, 100), (200, 50)]


def test_short_and_empty_streams():
    audio = noise(7)
    assert [(s, p.tolist()) for s, p in split_at_silences([audio[:3], audio[3:]], max_s=1.0, sr=1000)] == [
        (0, audio.tolist())]
    assert list(split_at_silences([], max_s=1.0)) == []
    assert list(split_at_silences([np.zeros(0), np.zeros(0)], max_s=1.0)) == []
    ints = np.array([0, 1000, -1000], dtype=np.int16)  # other sample types come back as float32
    [(start, piece)] = split_at_silences([ints], max_s=1.0, sr=1000)
    assert start == 0 and piece.dtype == np.float32 and piece.tolist() == [0.0, 1000.0, -1000.0]


def test_pieces_come_out_while_the_stream_is_still_running():
    endless = (noise(400, seed=k) for k in itertools.count())
    first = list(itertools.islice(split_at_silences(endless, max_s=1.0, sr=1000), 5))
    assert len(first) == 5 and all(len(p) <= 1000 for _, p in first)
