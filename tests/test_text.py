from asr.text import BLANK, BpeTokenizer, CharTokenizer, normalize, tokenizer_from_state


def test_normalize():
    assert normalize("  Hello, world!  it's 9-TO-5 ") == "HELLO WORLD IT'S TO"


def test_char_roundtrip_and_blank_is_zero():
    tok = CharTokenizer()
    ids = tok.encode("show me the red box")
    assert BLANK not in ids
    assert tok.decode(ids) == "SHOW ME THE RED BOX"
    assert tok.vocab_size == 29


def test_bpe_train_roundtrip_and_state():
    texts = ["SHOW ME THE RED BOX", "MOVE THE GREEN CUP", "WHAT TIME IS IT", "SHOW THE BLUE CUP"] * 20
    tok = BpeTokenizer.train(texts, vocab_size=40)
    ids = tok.encode("show the red cup")
    assert ids and min(ids) >= 1
    assert tok.decode(ids) == "SHOW THE RED CUP"
    again = tokenizer_from_state(tok.state())
    assert again.encode("show the red cup") == ids


def test_double_letters_are_single_symbols():
    from asr.text import build_tokenizer

    tok = build_tokenizer("char", [], double_letters=True)
    ids = tok.encode("the green balloon")
    assert len(ids) == len("THE GREEN BALLOON") - 3  # EE, LL, OO
    assert tok.decode(ids) == "THE GREEN BALLOON"
    assert tokenizer_from_state(tok.state()).encode("BOOKKEEPER") == tok.encode("BOOKKEEPER")
    assert len(tok.encode("BOOKKEEPER")) == 7
