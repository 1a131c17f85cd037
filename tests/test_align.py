"""Word timestamps from CTC forced alignment (asr.align) on constructed log-probabilities."""

import pytest
import torch

from asr.align import Word, align_words, clamp_word
from asr.text import BpeTokenizer, CharTokenizer, build_tokenizer


def on_path(path: list[int], vocab: int, p: float = 1.0, weak: dict[int, float] | None = None) -> torch.Tensor:
    """Log-probabilities (T, V) with the mass on `path[t]` at frame t (`weak[t]` instead of 1 at some frames,
    the rest of those on blank)."""
    probs = torch.full((len(path), vocab), 1e-5)
    probs[torch.arange(len(path)), torch.tensor(path)] = p
    for t, q in (weak or {}).items():
        probs[t, path[t]] = q
        probs[t, 0] = 1.0 - q
    return (probs / probs.sum(-1, keepdim=True)).log()


def test_word_times_come_from_the_alignment():
    tok = CharTokenizer()
    ids = {s: i + 1 for i, s in enumerate(tok.symbols)}
    # frames: blank x3, O N E (frames 3-5), blank, space (7), blank x2, T W O (10-12), blank x2
    path = [0, 0, 0, ids["O"], ids["N"], ids["E"], 0, ids[" "], 0, 0, ids["T"], ids["W"], ids["O"], 0, 0]
    lp = torch.full((len(path), tok.vocab_size), -10.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    lp = lp.log_softmax(-1)
    words = align_words(lp, "ONE TWO", tok, frame_s=0.04, offset_s=1.0)
    assert [w.word for w in words] == ["ONE", "TWO"]
    assert (words[0].start, words[0].end) == (1.12, 1.24)
    assert (words[1].start, words[1].end) == (1.4, 1.52)
    assert all(w.score > 0.99 for w in words)
    assert align_words(lp[:3], "ONE TWO", tok, 0.04) == []  # too few frames: no times rather than wrong ones


def test_a_word_held_over_several_frames_spans_all_of_them():
    tok = CharTokenizer()
    a, space, b = tok.encode("A B")
    lp = on_path([a, a, a, 0, space, space, b, 0], tok.vocab_size)
    words = align_words(lp, "A B", tok, frame_s=0.5)
    assert [(w.word, w.start, w.end) for w in words] == [("A", 0.0, 1.5), ("B", 3.0, 3.5)]


def test_the_score_is_the_mean_posterior_of_the_word_on_its_frames():
    tok = CharTokenizer()
    h, i, space, o = tok.encode("HI O")
    # HI: H at 0.5 for one frame, I at 1 for three frames: (0.5 + 3 x 1) / 4; O: 0.6 on its only frame
    lp = on_path([h, i, i, i, space, o], tok.vocab_size, weak={0: 0.5, 5: 0.6})
    words = align_words(lp, "HI O", tok, frame_s=0.02)
    assert [w.word for w in words] == ["HI", "O"]
    assert words[0].score == pytest.approx(0.875, abs=2e-3)
    assert words[1].score == pytest.approx(0.6, abs=2e-3)


def test_bpe_words_start_at_their_word_initial_pieces():
    tok = BpeTokenizer.train(["THE CAT SAT ON THE MAT", "A CAT SAT ON A HAT", "THE DOG IS ON THE MAT"] * 20, 28)
    text = ["THE", "CAT", "SAT", "ON", "A", "HAT"]
    per_word = [tok.encode(w) for w in text]
    ids = [i for w in per_word for i in w]
    assert ids == tok.encode(" ".join(text)) and len(ids) > len(text)  # some word has several pieces
    path = [0] + [x for i in ids for x in (i, 0)]  # a blank, then each piece on one frame and a blank
    words = align_words(on_path(path, tok.vocab_size), " ".join(text), tok, frame_s=0.1, offset_s=2.0)
    assert [w.word for w in words] == text
    first = 1
    for w, pieces in zip(words, per_word):  # piece k of the sentence is on frame 1 + 2k
        assert (w.start, w.end) == (round(2.0 + 0.1 * first, 3), round(2.0 + 0.1 * (first + 2 * len(pieces) - 1), 3))
        first += 2 * len(pieces)


def test_doubled_letters_need_a_blank_between_or_a_geminate_symbol():
    tok = CharTokenizer()
    o = tok.encode("O")[0]
    assert align_words(on_path([o, 0, o], tok.vocab_size), "OO", tok, 0.04)[0].word == "OO"
    assert align_words(on_path([o, o], tok.vocab_size), "OO", tok, 0.04) == []  # O O needs three frames
    gem = build_tokenizer("char", [], double_letters=True)
    oo = gem.encode("OO")
    assert len(oo) == 1
    [w] = align_words(on_path(oo * 2, gem.vocab_size), "OO", gem, 0.04)
    assert (w.word, w.start, w.end) == ("OO", 0.0, 0.08)


def test_nothing_to_align_gives_no_words():
    tok = CharTokenizer()
    lp = on_path([0] * 5, tok.vocab_size)
    assert align_words(lp, "", tok, 0.04) == []
    assert align_words(lp, " ?! ", tok, 0.04) == []  # normalises to nothing
    assert align_words(lp[:0], "A", tok, 0.04) == []
    x = tok.encode("X")[0]
    grads = on_path([0, x, 0], tok.vocab_size).double().requires_grad_()  # any dtype, attached to a graph
    assert align_words(grads, "X", tok, 0.04) == [Word("X", 0.04, 0.08, 1.0)]


def test_clamp_word_keeps_times_inside_the_audio():
    w = Word("A", 1.0, 2.0, 0.9)
    assert clamp_word(w, 2.0) is w
    assert clamp_word(w, 1.5) == Word("A", 1.0, 1.5, 0.9)
    assert clamp_word(w, 0.8) == Word("A", 0.8, 0.8, 0.9)
