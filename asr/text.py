"""Text normalisation and tokenizers: characters (blank = 0) and SentencePiece BPE."""

from __future__ import annotations

import io
import re

BLANK = 0
_KEEP = re.compile(r"[^A-Z' ]+")
_SPACES = re.compile(r"\s+")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
CHARS = (" ", "'") + tuple(LETTERS)
# One symbol per doubled letter ("LL", "OO", ...): CTC can only emit the same symbol twice in a row with a
# blank frame between, which subsampled frames of fast speech often lack; a geminate symbol needs none.
DOUBLE_LETTERS = tuple(c + c for c in LETTERS)


def normalize(text: str) -> str:
    """Upper-case, map anything outside A-Z/apostrophe to a space, collapse spaces."""
    text = _KEEP.sub(" ", text.upper().replace("-", " "))
    return _SPACES.sub(" ", text).strip()


class CharTokenizer:
    """Letters, apostrophe and space (optionally doubled letters as single symbols); id 0 is the CTC blank.

    Encoding takes the longest matching symbol at each position."""

    kind = "char"

    def __init__(self, symbols: tuple[str, ...] = CHARS):
        self.symbols = tuple(symbols)
        self._index = {s: i + 1 for i, s in enumerate(self.symbols)}
        self._longest = max(len(s) for s in self.symbols)

    @property
    def vocab_size(self) -> int:
        return len(self.symbols) + 1

    def encode(self, text: str) -> list[int]:
        text, ids, i = normalize(text), [], 0
        while i < len(text):
            for n in range(min(self._longest, len(text) - i), 0, -1):
                if text[i:i + n] in self._index:
                    ids.append(self._index[text[i:i + n]])
                    i += n
                    break
            else:
                raise ValueError(f"character {text[i]!r} is not in the tokenizer's symbols")
        return ids

    def decode(self, ids: list[int]) -> str:
        chars = [self.symbols[i - 1] for i in ids if 0 < i <= len(self.symbols)]
        return _SPACES.sub(" ", "".join(chars)).strip()

    def pieces(self) -> list[str]:
        """The text of ids 1, 2, ... (every symbol but the blank), in id order."""
        return list(self.symbols)

    def starts_word(self, token: int) -> bool:
        """Whether the symbol itself marks the start of a word: never for characters (a space separates)."""
        return False

    def separates_words(self, token: int) -> bool:
        """Whether the symbol is the space between words."""
        return self.symbols[token - 1] == " "

    def spell(self, word: str) -> list[int] | None:
        """The ids that spell `word` (normalised), or None if it has no spelling in these symbols."""
        try:
            return self.encode(word) or None
        except ValueError:
            return None

    def state(self) -> dict:
        return {"kind": "char", "symbols": list(self.symbols)}


class BpeTokenizer:
    """SentencePiece BPE; SentencePiece id k becomes k + 1 so that 0 stays the CTC blank."""

    kind = "bpe"

    def __init__(self, model_proto: bytes):
        import sentencepiece as spm

        self.model_proto = bytes(model_proto)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_proto)

    @classmethod
    def train(cls, texts: list[str], vocab_size: int) -> BpeTokenizer:
        import sentencepiece as spm

        buf = io.BytesIO()
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([normalize(t) for t in texts if normalize(t)]), model_writer=buf,
            vocab_size=vocab_size, model_type="bpe", character_coverage=1.0, hard_vocab_limit=False,
            bos_id=-1, eos_id=-1, unk_id=0, minloglevel=2)
        return cls(buf.getvalue())

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size() + 1

    def encode(self, text: str) -> list[int]:
        return [i + 1 for i in self.sp.encode(normalize(text))]

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode([i - 1 for i in ids if i > 0]).strip()

    def pieces(self) -> list[str]:
        """The SentencePiece pieces of ids 1, 2, ... (every symbol but the blank), in id order."""
        return [self.sp.id_to_piece(i) for i in range(self.sp.get_piece_size())]

    def starts_word(self, token: int) -> bool:
        """Whether the piece begins a word (SentencePiece's leading '\u2581')."""
        return self.sp.id_to_piece(token - 1).startswith("\u2581")

    def separates_words(self, token: int) -> bool:
        """Never: BPE has no space symbol, a word starts with its first piece."""
        return False

    def spell(self, word: str) -> list[int] | None:
        """The ids of the pieces that spell `word` (as given, not normalised), or None if a piece is unknown."""
        pieces = self.sp.encode(word, out_type=str)
        ids = [self.sp.piece_to_id(p) for p in pieces]
        if not ids or self.sp.unk_id() in ids:
            return None
        return [i + 1 for i in ids]

    def state(self) -> dict:
        return {"kind": "bpe", "model": self.model_proto}


def build_tokenizer(kind: str, texts: list[str], vocab_size: int = 256, double_letters: bool = False):
    """A new tokenizer of the configured kind; BPE is trained on `texts`."""
    if kind == "char":
        return CharTokenizer(CHARS + DOUBLE_LETTERS if double_letters else CHARS)
    if kind == "bpe":
        return BpeTokenizer.train(texts, vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}")


def tokenizer_from_state(state: dict):
    if state.get("kind") == "char":
        return CharTokenizer(tuple(state["symbols"]))
    if state.get("kind") == "bpe":
        return BpeTokenizer(bytes(state["model"]))
    raise ValueError(f"unknown tokenizer state {state.get('kind')!r}")


def save_tokenizer(tokenizer, path) -> None:
    """Tokenizer as JSON (a SentencePiece model is embedded base64-encoded); written atomically."""
    import base64
    import json

    from asr.fileio import atomic_path

    state = dict(tokenizer.state())
    if "model" in state:
        state["model"] = base64.b64encode(bytes(state["model"])).decode("ascii")
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(state) + "\n")


def load_tokenizer(path):
    """Read a tokenizer written by `save_tokenizer`."""
    import base64
    import json
    from pathlib import Path

    from asr.config import ConfigError

    path = Path(path)
    try:
        state = json.loads(path.read_text())
        if "model" in state:
            state["model"] = base64.b64decode(state["model"])
        return tokenizer_from_state(state)
    except FileNotFoundError:
        raise ConfigError(f"{path}: tokenizer file not found (make it with `asr tokenizer`)") from None
    except Exception as exc:
        raise ConfigError(f"{path}: not a tokenizer file written by `asr tokenizer` ({exc})") from None


def train_tokenizer_file(manifest, kind: str, out, vocab_size: int = 256, double_letters: bool = False):
    """Build a tokenizer of `kind` from a manifest's transcripts (BPE is trained on them); write it to `out`."""
    from asr.manifest import read_manifest

    tokenizer = build_tokenizer(kind, [u.text for u in read_manifest(manifest)], vocab_size, double_letters)
    save_tokenizer(tokenizer, out)
    return tokenizer
