"""CTC beam search (asr.beam) on constructed emissions: lexicon-free, lexicon-constrained, with an n-gram LM."""

import math
import subprocess
import sys

import pytest
import torch

from asr.beam import BeamDecoder, BeamOptions
from asr.lm import LmError, build_arpa, build_lexicon
from asr.text import BpeTokenizer, CharTokenizer

CORPUS = ["I SEE THE SEA", "YOU SEE A SHIP", "I SEE", "WE SEE THE BLUE SEA", "I SEE A BOAT", "THE SEA IS BLUE"]
WORDS = sorted({w for s in CORPUS for w in s.split()})
# "I SE?": the last frame is A (0.6) or E (0.4), so the acoustics say "I SEA" and the LM says "I SEE"
I_SEA = [{"I": 1}, {" ": 1}, {"S": 1}, {"E": 1}, {"-": 1}, {"A": 0.6, "E": 0.4}]


def emissions(tok: CharTokenizer, *utterances: list[dict[str, float]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities (B, T, V) and lengths (B,): each frame puts the given mass on the given symbols, the rest
    on blank; shorter utterances are padded with frames that say "X"."""
    width = max(len(u) for u in utterances)
    probs = torch.full((len(utterances), width, tok.vocab_size), 1e-4)
    for b, frames in enumerate(utterances):
        for t, frame in enumerate(frames + [{"X": 1.0}] * (width - len(frames))):
            for sym, p in frame.items():
                probs[b, t, 0 if sym == "-" else tok.symbols.index(sym) + 1] = p
            probs[b, t, 0] += max(0.0, 1.0 - sum(frame.values()))
    return (probs / probs.sum(-1, keepdim=True)).log(), torch.tensor([len(u) for u in utterances])


@pytest.fixture(scope="module")
def lm_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    sentences = [s.split() for s in CORPUS]
    build_arpa(sentences, folder / "lm.arpa", order=2)
    build_lexicon(WORDS, CharTokenizer(), folder / "lexicon.txt")
    return folder


def test_lexicon_free_search_follows_the_acoustics_and_stops_at_each_length():
    tok = CharTokenizer()
    lp, lens = emissions(tok, I_SEA, [{"H": 1}, {"-": 1}, {"I": 1}], [{"-": 1}] * 4)
    assert BeamDecoder(tok, None, None, BeamOptions(beam_size=20)).decode(lp, lens) == ["I SEA", "HI", ""]


def test_a_lexicon_allows_only_its_words(tmp_path):
    tok = CharTokenizer()
    build_lexicon(["I", "SEE", "SHIP"], tok, tmp_path / "lexicon.txt")
    lp, lens = emissions(tok, I_SEA, [{"-": 1}] * 3)
    decoder = BeamDecoder(tok, tmp_path / "lexicon.txt", None, BeamOptions(beam_size=20))
    assert decoder.decode(lp, lens) == ["I SEE", ""]  # SEA is no word of this lexicon


def test_the_language_model_overrules_the_acoustics_in_proportion_to_its_weight(lm_files):
    tok = CharTokenizer()
    lp, lens = emissions(tok, I_SEA)
    lexicon, lm = lm_files / "lexicon.txt", lm_files / "lm.arpa"
    assert BeamDecoder(tok, lexicon, None, BeamOptions(beam_size=20)).decode(lp, lens) == ["I SEA"]
    assert BeamDecoder(tok, lexicon, lm, BeamOptions(beam_size=20, lm_weight=0.0)).decode(lp, lens) == ["I SEA"]
    assert BeamDecoder(tok, lexicon, lm, BeamOptions(beam_size=20, lm_weight=1.0)).decode(lp, lens) == ["I SEE"]


def test_bpe_models_get_a_silence_symbol_they_never_emit():
    tok = BpeTokenizer.train(CORPUS * 20, vocab_size=30)
    decoder = BeamDecoder(tok, None, None, BeamOptions(beam_size=20))
    assert len(decoder.tokens) == tok.vocab_size + 1 and decoder.tokens[-1] == "|" and decoder.tokens[0] == "-"
    ids = tok.encode("YOU SEE THE BLUE SHIP")
    lp = torch.full((1, 2 * len(ids), tok.vocab_size), -12.0)  # as wide as the model's output, no "|" column
    for k, i in enumerate(ids):  # each piece on one frame, then a blank frame
        lp[0, 2 * k, i] = 0.0
        lp[0, 2 * k + 1, 0] = 0.0
    assert decoder.decode(lp.log_softmax(-1), torch.tensor([lp.shape[1]])) == ["YOU SEE THE BLUE SHIP"]


def test_settings_that_cannot_work_are_refused(lm_files, tmp_path):
    tok = CharTokenizer()
    with pytest.raises(LmError, match="needs a lexicon"):
        BeamDecoder(tok, None, lm_files / "lm.arpa")
    bpe = BpeTokenizer.train(CORPUS * 20, vocab_size=30)
    build_lexicon(WORDS, bpe, tmp_path / "bpe_lexicon.txt")  # spelled with another model's symbols
    with pytest.raises(LmError, match=r"bpe_lexicon.txt:1: token '\S+' of 'A' is not a symbol of this model"):
        BeamDecoder(tok, tmp_path / "bpe_lexicon.txt", lm_files / "lm.arpa")
    with pytest.raises(LmError, match="language model not found"):
        BeamDecoder(tok, lm_files / "lexicon.txt", tmp_path / "missing.arpa")


@pytest.mark.slow
def test_missing_flashlight_gives_the_install_hint():
    code = ("import sys; sys.modules['flashlight'] = None\n"
            "from asr.beam import BeamDecoder\nfrom asr.lm import LmError\nfrom asr.text import CharTokenizer\n"
            "try:\n    BeamDecoder(CharTokenizer())\nexcept LmError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'asr[lm]'" in r.stdout, r.stdout + r.stderr


def test_nbest_lists_distinct_texts_best_first_with_their_scores(lm_files):
    tok = CharTokenizer()
    lp, lens = emissions(tok, I_SEA, [{"-": 1}] * 3)
    free = BeamDecoder(tok, None, None, BeamOptions(beam_size=20))
    (sea, see, *rest), silent = free.decode_nbest(lp, lens, 3)
    # the last frame is A (0.6) or E (0.4) after a blank: two spellings whose scores are their path log-probs
    assert (sea[0], see[0]) == ("I SEA", "I SEE") and len(rest) == 1 and rest[0][0] not in ("I SEA", "I SEE")
    def path_score(symbols: str) -> float:
        return sum(float(lp[0, t, 0 if c == "-" else tok.symbols.index(c) + 1]) for t, c in enumerate(symbols))

    assert sea[1] == pytest.approx(path_score("I SE-A"), abs=1e-3) and sea[1] == pytest.approx(math.log(0.6), abs=0.03)
    assert see[1] == pytest.approx(path_score("I SE-E"), abs=1e-3) and see[1] == pytest.approx(math.log(0.4), abs=0.03)
    assert sea[1] > see[1] > rest[0][1]
    assert silent[0] == ("", pytest.approx(0.0, abs=0.01))
    assert [hyps[0][0] for hyps in free.decode_nbest(lp, lens, 1)] == free.decode(lp, lens) == ["I SEA", ""]
    with_lm = BeamDecoder(tok, lm_files / "lexicon.txt", lm_files / "lm.arpa", BeamOptions(beam_size=20, lm_weight=1.0))
    (first, second), _ = with_lm.decode_nbest(lp, lens, 2)
    assert (first[0], second[0]) == ("I SEE", "I SEA") and first[1] > second[1]  # the LM reorders them
    with pytest.raises(LmError, match="between 1 and the beam size"):
        free.decode_nbest(lp, lens, 21)
    # a last frame of word boundary (0.3) or blank (0.7): two paths that both spell "HI" are one hypothesis
    lp, lens = emissions(tok, [{"H": 1}, {"I": 1}, {" ": 0.3}])
    (hi, other), = free.decode_nbest(lp, lens, 2)
    assert hi[0] == "HI" and other[0] != "HI" and hi[1] > other[1]
