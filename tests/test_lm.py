"""ARPA n-gram building, lexicons, and LM beam search through the flashlight decoder."""

import math
from collections import defaultdict

import pytest
import torch

from asr.beam import BeamDecoder, BeamOptions
from asr.lm import LmError, build_arpa, build_lexicon, check_arpa, read_sentences
from asr.text import CharTokenizer

CORPUS = ["THE CAT SAT ON THE MAT", "THE CAT IS BLACK", "A CAT SAT ON A HAT", "THE DOG SAT ON THE MAT",
          "KAT IS A NAME", "THE CAT SAT", "THE HAT IS ON THE CAT", "A DOG IS ON THE MAT"]


def read_arpa(path):
    probs, backoffs, section = {}, {}, None
    for line in path.read_text().splitlines():
        if line.startswith("\\") and line.endswith("-grams:"):
            section = int(line[1])
        elif line == "\\end\\":
            section = None
        elif section and line.strip():
            parts = line.split("\t")
            gram = tuple(parts[1].split())
            probs[gram] = 10 ** float(parts[0])
            if len(parts) > 2:
                backoffs[gram] = 10 ** float(parts[2])
    return probs, backoffs


def prob(probs, backoffs, context, word):
    gram = tuple(context) + (word,)
    if gram in probs:
        return probs[gram]
    return backoffs.get(tuple(context), 1.0) * prob(probs, backoffs, context[1:], word)


@pytest.mark.parametrize("smoothing", ["kneser-ney", "witten-bell"])
def test_arpa_model_is_a_distribution_in_every_context(tmp_path, smoothing):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(CORPUS) + "\n\n")
    counts = build_arpa(read_sentences(text), tmp_path / "lm.arpa", order=3, smoothing=smoothing)
    assert check_arpa(tmp_path / "lm.arpa") == counts
    probs, backoffs = read_arpa(tmp_path / "lm.arpa")
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] != "<s>"]
    assert "<unk>" in vocab and "</s>" in vocab
    contexts = [(), ("THE",), ("<s>",), ("<s>", "THE"), ("THE", "CAT"), ("ON", "A"), ("NAME",), ("MAT", "THE")]
    for ctx in contexts:
        assert sum(prob(probs, backoffs, ctx, w) for w in vocab) == pytest.approx(1.0, abs=1e-4), ctx
    # seen continuations are more likely than unseen ones
    assert prob(probs, backoffs, ("THE",), "CAT") > prob(probs, backoffs, ("THE",), "KAT")


def emissions(tok: CharTokenizer, frames: list[dict[str, float]]) -> torch.Tensor:
    """Log-probabilities (1, T, V): each frame puts the given mass on the given symbols, the rest on blank."""
    lp = torch.full((1, len(frames), tok.vocab_size), 1e-4)
    for t, frame in enumerate(frames):
        for sym, p in frame.items():
            lp[0, t, 0 if sym == "-" else tok.symbols.index(sym) + 1] = p
        lp[0, t, 0] += max(0.0, 1.0 - sum(frame.values()))
    return (lp / lp.sum(-1, keepdim=True)).log()


def test_lm_fixes_an_acoustic_confusion_that_greedy_and_the_lexicon_alone_keep(tmp_path):
    tok = CharTokenizer()
    sentences = read_sentences_from(CORPUS, tmp_path)
    build_arpa(sentences, tmp_path / "lm.arpa", order=3)
    build_lexicon({w for s in sentences for w in s}, tok, tmp_path / "lexicon.txt")
    # "THE ?AT SAT": the acoustics prefer K (0.6) over C (0.4); both KAT and CAT are words
    seq = [{"T": 1}, {"-": 1}, {"H": 1}, {"E": 1}, {" ": 1}, {"K": 0.6, "C": 0.4}, {"-": 1}, {"A": 1}, {"T": 1},
           {" ": 1}, {"S": 1}, {"A": 1}, {"-": 1}, {"T": 1}]
    lp = emissions(tok, seq)
    lens = torch.tensor([lp.shape[1]])
    from asr.decode import greedy_ids

    assert tok.decode(greedy_ids(lp, lens)[0]) == "THE KAT SAT"
    lexicon_only = BeamDecoder(tok, tmp_path / "lexicon.txt", None, BeamOptions(beam_size=20))
    assert lexicon_only.decode(lp, lens) == ["THE KAT SAT"]
    with_lm = BeamDecoder(tok, tmp_path / "lexicon.txt", tmp_path / "lm.arpa", BeamOptions(beam_size=20, lm_weight=1.0))
    assert with_lm.decode(lp, lens) == ["THE CAT SAT"]
    free = BeamDecoder(tok, None, None, BeamOptions(beam_size=20))
    assert free.decode(lp, lens) == ["THE KAT SAT"]


def read_sentences_from(lines, tmp_path):
    path = tmp_path / "text.txt"
    path.write_text("\n".join(lines) + "\n")
    return read_sentences(path)


def test_bad_lm_and_lexicon_files_give_clear_errors(tmp_path):
    tok = CharTokenizer()
    sentences = read_sentences_from(CORPUS, tmp_path)
    build_lexicon({w for s in sentences for w in s}, tok, tmp_path / "lexicon.txt")
    build_arpa(sentences, tmp_path / "lm.arpa")
    bad_lex = tmp_path / "bad_lexicon.txt"
    bad_lex.write_text("CAT C A T |\nDOG D 0 G |\n")
    with pytest.raises(LmError, match=r"bad_lexicon.txt:2: token '0' of 'DOG'"):
        BeamDecoder(tok, bad_lex, tmp_path / "lm.arpa")
    with pytest.raises(LmError, match="lexicon not found"):
        BeamDecoder(tok, tmp_path / "nope.txt", tmp_path / "lm.arpa")
    garbage = tmp_path / "garbage.arpa"
    garbage.write_text("this is not a language model\n")
    with pytest.raises(LmError, match="not an ARPA"):
        BeamDecoder(tok, tmp_path / "lexicon.txt", garbage)
    truncated = tmp_path / "truncated.arpa"
    truncated.write_text("\n".join((tmp_path / "lm.arpa").read_text().splitlines()[:30]))
    with pytest.raises(LmError, match="section sizes do not match"):
        BeamDecoder(tok, tmp_path / "lexicon.txt", truncated)
    with pytest.raises(LmError, match="needs a lexicon"):
        BeamDecoder(tok, None, tmp_path / "lm.arpa")
    with pytest.raises(LmError, match="not found"):
        read_sentences(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("\n  \n")
    with pytest.raises(LmError, match="no text"):
        read_sentences(tmp_path / "empty.txt")


def test_lm_tune_decode_from_the_command_line(tmp_path, digit_corpus, capsys):
    from asr.bundle import read_bundle
    from asr.cli import main
    from asr.decode import read_hypotheses

    out = tmp_path
    assert main(["prepare", "librispeech", str(digit_corpus.parent), str(out / "data"), "--quiet"]) == 0
    assert main(["train", "--config", "/dev/null", f"data.train={out / 'data/train.jsonl'}", "train.epochs=4",
                 f"train.exp_dir={out / 'exp'}", "model.hidden_size=48", "model.num_layers=1", "train.batch_size=8",
                 "model.conv_channels=8", "features.speed_perturb=[1.0]", "train.tensorboard=false", "--quiet"]) == 0
    model = out / "exp" / "model.pt"
    assert main(["lm", str(out / "data/train.jsonl"), str(out / "lm"), "--order", "2", "--model", str(model)]) == 0
    assert len((out / "lm" / "lexicon.txt").read_text().splitlines()) == 10  # the ten digit words
    assert main(["tune", "--model", str(model), "--manifest", str(out / "data/dev.jsonl"), "--lm",
                 str(out / "lm/lm.arpa"), "--lexicon", str(out / "lm/lexicon.txt"), "--lm-weights", "0.5", "1",
                 "--word-scores", "0", "1", "--out", str(out / "tuned.pt"), "--quiet"]) == 0
    decoding = read_bundle(out / "tuned.pt")["decoding"]
    assert decoding["lm_weight"] in (0.5, 1.0) and decoding["word_score"] in (0.0, 1.0)
    assert math.isfinite(decoding["dev_wer"])
    assert main(["decode", "--model", str(out / "tuned.pt"), "--manifest", str(out / "data/dev.jsonl"), "--out",
                 str(out / "hyp.jsonl"), "--lm", str(out / "lm/lm.arpa"), "--lexicon", str(out / "lm/lexicon.txt"),
                 "--quiet"]) == 0
    words = defaultdict(int)
    for text in read_hypotheses(out / "hyp.jsonl").values():
        for w in text.split():
            words[w] += 1
    digits = set("ZERO ONE TWO THREE FOUR FIVE SIX SEVEN EIGHT NINE".split())
    assert set(words) <= digits  # lexicon decoding only produces lexicon words


def test_bpe_models_decode_with_lexicon_lm_and_lexicon_free(tmp_path):
    from asr.text import BpeTokenizer

    tok = BpeTokenizer.train(CORPUS * 20, vocab_size=40)
    sentences = read_sentences_from(CORPUS, tmp_path)
    build_arpa(sentences, tmp_path / "lm.arpa", order=3)
    n = build_lexicon({w for s in sentences for w in s}, tok, tmp_path / "lexicon.txt")
    assert n == len({w for s in sentences for w in s})
    assert all("|" not in line for line in (tmp_path / "lexicon.txt").read_text().splitlines())
    ids = tok.encode("THE DOG SAT ON A HAT")
    frames = torch.full((1, 2 * len(ids), tok.vocab_size), -12.0)
    for k, i in enumerate(ids):  # each piece on one frame, then a blank frame
        frames[0, 2 * k, i] = 0.0
        frames[0, 2 * k + 1, 0] = 0.0
    lp = frames.log_softmax(-1)
    lens = torch.tensor([lp.shape[1]])
    with_lm = BeamDecoder(tok, tmp_path / "lexicon.txt", tmp_path / "lm.arpa", BeamOptions(beam_size=20))
    assert with_lm.decode(lp, lens) == ["THE DOG SAT ON A HAT"]
    assert BeamDecoder(tok, None, None, BeamOptions(beam_size=20)).decode(lp, lens) == ["THE DOG SAT ON A HAT"]
