from asr.text import BLANK, CHARS, BpeTokenizer, CharTokenizer, build_tokenizer, normalize, tokenizer_from_state


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
    tok = build_tokenizer("char", [], double_letters=True)
    ids = tok.encode("the green balloon")
    assert len(ids) == len("THE GREEN BALLOON") - 3  # EE, LL, OO
    assert tok.decode(ids) == "THE GREEN BALLOON"
    assert tokenizer_from_state(tok.state()).encode("BOOKKEEPER") == tok.encode("BOOKKEEPER")
    assert len(tok.encode("BOOKKEEPER")) == 7


def bpe() -> BpeTokenizer:
    return BpeTokenizer.train(["SHOW ME THE RED BOX", "MOVE THE GREEN CUP", "WHAT TIME IS IT"] * 20, vocab_size=40)


def test_pieces_are_the_text_of_every_non_blank_id():
    char = CharTokenizer()
    assert char.pieces() == list(CHARS) and len(char.pieces()) == char.vocab_size - 1
    tok = bpe()
    pieces = tok.pieces()
    assert len(pieces) == tok.vocab_size - 1
    assert [pieces[i - 1] for i in tok.encode("show the cup")] == tok.sp.encode("SHOW THE CUP", out_type=str)
    assert "".join(pieces[i - 1] for i in tok.encode("move the cup")).replace("\u2581", " ").strip() == "MOVE THE CUP"


def test_char_space_separates_words_and_no_letter_starts_one():
    tok = CharTokenizer()
    space, a = tok.encode("A B")[1], tok.encode("A")[0]
    assert tok.separates_words(space) and not tok.separates_words(a)
    assert not any(tok.starts_word(i) for i in range(1, tok.vocab_size))
    assert [i for i in range(1, tok.vocab_size) if tok.separates_words(i)] == [space]


def test_bpe_pieces_start_words_and_none_separates():
    tok = bpe()
    ids = tok.encode("SHOW ME THE GREEN BOX")
    starts = [tok.starts_word(i) for i in ids]
    assert sum(starts) == 5 and starts[0]  # one word-initial piece per word
    words, current = [], []
    for i, s in zip(ids, starts):
        if s and current:
            words.append(tok.decode(current))
            current = []
        current.append(i)
    words.append(tok.decode(current))
    assert words == ["SHOW", "ME", "THE", "GREEN", "BOX"]
    assert not any(tok.separates_words(i) for i in range(1, tok.vocab_size))


def test_spell_gives_the_ids_of_one_word_or_none():
    char = build_tokenizer("char", [], double_letters=True)
    assert char.spell("GREEN") == char.encode("GREEN") and len(char.spell("GREEN")) == 4  # G R EE N
    assert char.spell("don't") == char.encode("DON'T")  # normalised like transcripts
    assert char.spell("") is None and char.spell("123") is None  # nothing left to spell
    assert CharTokenizer(tuple("ABC")).spell("CAB") == [3, 1, 2]
    assert CharTokenizer(tuple("ABC")).spell("CAT") is None  # no symbol for T
    tok = bpe()
    assert tok.spell("GREEN") == tok.encode("GREEN")
    assert tok.decode(tok.spell("SHOW")) == "SHOW" and tok.starts_word(tok.spell("SHOW")[0])
    assert tok.spell("ZEBRA") is None  # no training text has a Z: an unknown piece
    assert tok.spell("") is None
