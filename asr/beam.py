"""CTC beam search through torchaudio's flashlight decoder: with a lexicon and an n-gram LM, or lexicon-free.

Needs the optional extra `pip install 'asr[lm]'` (flashlight-text); without it every entry point says so."""

from __future__ import annotations

import contextlib
import math
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from asr.lm import BLANK_TOKEN, WORD_BOUNDARY, LmError, check_arpa, check_lexicon, decoder_tokens

INSTALL_HINT = "beam search needs flashlight-text: pip install 'asr[lm]' (or: pip install flashlight-text)"


@dataclass(frozen=True)
class BeamOptions:
    beam_size: int = 50
    beam_threshold: float = 25.0  # prune hypotheses this far (log score) below the best
    lm_weight: float = 2.0
    word_score: float = 0.0  # added per word: the word insertion bonus
    unk_score: float = -math.inf  # lexicon decoding: words outside the lexicon are never produced

    def __post_init__(self):
        if not (isinstance(self.beam_size, int) and self.beam_size >= 1):
            raise LmError(f"beam size must be a whole number of at least 1, not {self.beam_size!r}")
        if not self.beam_threshold > 0:
            raise LmError(f"beam threshold must be positive, not {self.beam_threshold!r}")
        for name in ("lm_weight", "word_score"):
            if not math.isfinite(getattr(self, name)):
                raise LmError(f"{name.replace('_', ' ')} must be a finite number, not {getattr(self, name)!r}")


@contextlib.contextmanager
def _native_output_captured():
    """Collect what native code (KenLM's loader) prints on file descriptors 1 and 2."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield tmp
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _loader_reason(message: str, printed: str) -> str:
    """The reason in KenLM's or flashlight's words, on one line: without the C++ source location and function
    signature that precede it ("... threw FormatLoadException."), nor the loading progress bar it printed."""
    if " threw " in message:
        message = message.split(" threw ", 1)[1].split(".", 1)[-1]
    words = " ".join(message.split())
    words = re.sub(r"\s*Reading \S+\s*[-\d*\s]*$", "", words)
    extra = [line.strip() for line in printed.splitlines()
             if line.strip() and not re.fullmatch(r"[-\d*\s]+|Reading \S+|Loading the LM will be faster.*",
                                                  line.strip())]
    return " ".join([words, *extra[-2:]]).strip() or "the loader gave no reason"


def _ctc_decoder():
    try:
        from torchaudio.models.decoder import ctc_decoder
    except (ImportError, RuntimeError) as exc:
        raise LmError(f"{INSTALL_HINT} ({exc})") from None
    return ctc_decoder


class BeamDecoder:
    """Beam search over CTC log-probabilities (B, T, V). With `lexicon` (+ optional `lm`): words from the
    lexicon, scored by the LM; without: lexicon-free search over the model's symbols (char models)."""

    def __init__(self, tokenizer, lexicon: str | Path | None = None, lm: str | Path | None = None,
                 options: BeamOptions = BeamOptions()):
        ctc_decoder = _ctc_decoder()
        self.tokenizer = tokenizer
        self.options = options
        self.tokens = decoder_tokens(tokenizer)
        if lm is not None and lexicon is None:
            raise LmError("a word n-gram LM needs a lexicon (asr lm writes both)")
        if lexicon is not None:
            check_lexicon(lexicon, self.tokens)
        if lm is not None:
            check_arpa(lm)
        error = None
        with _native_output_captured() as chatter:
            try:
                self._decoder = ctc_decoder(
                    lexicon=str(lexicon) if lexicon is not None else None, tokens=self.tokens,
                    lm=str(lm) if lm is not None else None, nbest=1, beam_size=options.beam_size,
                    beam_threshold=options.beam_threshold, lm_weight=options.lm_weight if lm else 0.0,
                    word_score=options.word_score, unk_score=options.unk_score, sil_score=0.0,
                    blank_token=BLANK_TOKEN, sil_token=WORD_BOUNDARY, log_add=False)
            except Exception as exc:  # flashlight's own loader errors (bad ARPA body, ...): what it printed
                chatter.seek(0)
                error = LmError(f"cannot load the decoder ({lm or lexicon}): "
                                f"{_loader_reason(str(exc), chatter.read().decode(errors='replace'))}")
        if error is not None:  # raised once stdout and stderr are ours again
            raise error
        self.lexicon = lexicon

    def decode(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """The best text of each utterance of log-probabilities (B, T, V) with lengths (B,)."""
        return [hyps[0][0] if hyps else "" for hyps in self.decode_nbest(log_probs, lengths, 1)]

    def decode_nbest(self, log_probs: torch.Tensor, lengths: torch.Tensor, n: int) -> list[list[tuple[str, float]]]:
        """Up to `n` distinct texts of each utterance, best first, each with its score: the log-probability of
        its best CTC path + LM weight x LM log-probability + word score x words (what the search maximises)."""
        if not (isinstance(n, int) and 1 <= n <= self.options.beam_size):
            raise LmError(f"the number of hypotheses must be between 1 and the beam size "
                          f"({self.options.beam_size}), not {n!r}")
        emissions = log_probs.detach().float().cpu()
        if emissions.shape[-1] < len(self.tokens):  # BPE: the silence symbol the model does not have
            emissions = torch.nn.functional.pad(emissions, (0, len(self.tokens) - emissions.shape[-1]), value=-1e4)
        # torchaudio's decoder returns its first `nbest` final hypotheses; for n > 1 take them all, since
        # several of them can spell one text (a word boundary more or less)
        self._decoder.nbest = 1 if n == 1 else self.options.beam_size
        results = self._decoder(emissions.contiguous(), lengths.cpu().to(torch.int32))
        out = []
        for hyps in results:
            best: dict[str, float] = {}
            for h in hyps:
                text = self._text(h)
                best[text] = max(best.get(text, -math.inf), float(h.score))
            out.append([(text, round(score, 3)) for text, score in
                        sorted(best.items(), key=lambda kv: -kv[1])[:n]])
        return out

    def stream(self) -> BeamStream:
        """An incremental search over log-probs arriving chunk by chunk (one stream at a time per decoder)."""
        return BeamStream(self)

    def _emissions(self, log_probs: torch.Tensor) -> torch.Tensor:
        emissions = log_probs.detach().float().cpu()
        if emissions.shape[-1] < len(self.tokens):  # BPE: the silence symbol the model does not have
            emissions = torch.nn.functional.pad(emissions, (0, len(self.tokens) - emissions.shape[-1]), value=-1e4)
        return emissions.contiguous()

    def _text(self, hyp) -> str:
        if self.lexicon is not None:
            return " ".join(w for w in hyp.words if w)
        vocab = self.tokenizer.vocab_size
        return self.tokenizer.decode([int(t) for t in hyp.tokens if int(t) < vocab])


def tune(recognizer, manifest, lexicon, lm, lm_weights, word_scores, *, beam_size: int = 50,
         progress: bool = True) -> tuple[dict, dict]:
    """Decode a dev manifest at every (LM weight, word score) pair; the acoustic model runs once.
    Returns (best settings with their dev WER, {(weight, score): WER})."""
    from tqdm import tqdm

    from asr.decode import batched_log_probs
    from asr.manifest import read_manifest
    from asr.score import compute

    utts = read_manifest(manifest)
    ds = recognizer.dataset(utts)
    outputs, refs = [], []
    for idx, lp, ol in batched_log_probs(recognizer.model, ds, recognizer.device):
        outputs.append((lp.cpu(), ol.cpu()))
        refs += [utts[i].text for i in idx]
    table = {}
    grid = [(w, s) for w in lm_weights for s in word_scores]
    for w, s in tqdm(grid, desc="tune", unit="setting", disable=not progress):
        dec = BeamDecoder(recognizer.tokenizer, lexicon, lm, BeamOptions(beam_size=beam_size, lm_weight=w,
                                                                         word_score=s))
        hyps = [h for lp, ol in outputs for h in dec.decode(lp, ol)]
        table[(w, s)] = compute(refs, hyps).wer
    (w, s), wer = min(table.items(), key=lambda kv: (kv[1], kv[0]))
    return {"lm_weight": w, "word_score": s, "beam_size": beam_size, "dev_wer": wer,
            "tuned_on": str(manifest)}, table


class BeamStream:
    """The beam search of a `BeamDecoder` run incrementally (flashlight's decode_begin / decode_step /
    decode_end): `step(log_probs)` with each chunk (K, V) as it arrives, `text` the best hypothesis so far
    (with a lexicon, only its finished words), `finish()` the final text. Fed the chunks of a whole utterance,
    it ends where the one-call search of the concatenated log-probs ends."""

    def __init__(self, beam: BeamDecoder):
        self.beam = beam
        self.decoder = beam._decoder
        self.decoder.nbest = 1
        self.decoder.decode_begin()
        self.done = False

    def step(self, log_probs: torch.Tensor) -> None:
        if log_probs.shape[0]:
            self.decoder.decode_step(self.beam._emissions(log_probs))

    @property
    def text(self) -> str:
        best = self.decoder._to_hypo([self.decoder.decoder.get_best_hypothesis(0)])
        return self.beam._text(best[0]) if best else ""

    def finish(self) -> str:
        if not self.done:
            self.decoder.decode_end()
            self.done = True
        hyps = self.decoder.get_final_hypothesis()
        return self.beam._text(hyps[0]) if hyps else ""

