"""Inference: the one API that the command line, the server and Python users call.

`Recognizer.load(path)` takes any model file (a bundle, or an `asr export` file: TorchScript, int8, ONNX) and
gives greedy, closed-set or beam-search decoding of features or waveforms. `Stream` is the incremental
recogniser of a chunk-trained model: `accept(samples)` returns the text so far, `finish()` the final text.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from asr.audio import SAMPLE_RATE
from asr.bundle import build_model, read_bundle
from asr.config import Config, from_dict
from asr.decode import best_choices, choice_scores, collapse, greedy_ids, rank_choices
from asr.export import load_exported
from asr.features import (
    LogMel,
    StreamingLogMel,
    apply_cmvn,
    trim_bounds,
    utterance_mean_norm,
    utterance_var_norm,
)
from asr.model import flush_denormals
from asr.pieces import transcribe_source
from asr.text import BLANK, tokenizer_from_state


class Recognizer:
    """A loaded model with its tokenizer and feature normalisation; greedy CTC decoding unless `use_beam`."""

    def __init__(self, bundle: dict, device: str | torch.device = "cpu", model=None):
        flush_denormals()
        self.cfg: Config = from_dict(bundle["config"])
        self.tokenizer = tokenizer_from_state(bundle["tokenizer"])
        self.mean = bundle["cmvn"]["mean"]
        self.std = bundle["cmvn"]["std"]
        self.device = torch.device(device)
        self.exported = bundle.get("export")  # None, or the format of an `asr export` file
        self.model = build_model(bundle) if model is None else model
        self.model.to(self.device).eval()
        self.logmel = LogMel(self.cfg.features)
        self.decoding: dict = dict(bundle.get("decoding", {}))  # beam-search defaults stored by `asr tune`
        self.beam = None  # a BeamDecoder (asr.beam) once use_beam() is called; greedy otherwise

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> Recognizer:
        """A bundle (.pt) or a file written by `asr export` (TorchScript, int8 TorchScript, ONNX)."""
        path = Path(path)
        if path.is_file():
            exported = load_exported(path)
            if exported is not None:
                meta, model = exported
                return cls(meta, device, model=model)
        return cls(read_bundle(path), device)

    def use_beam(self, lexicon=None, lm=None, *, beam_size: int | None = None, lm_weight: float | None = None,
                 word_score: float | None = None) -> None:
        """Decode with beam search from now on; unset weights come from the bundle's tuned defaults."""
        from asr.beam import BeamDecoder, BeamOptions  # optional extra (flashlight-text)

        tuned = {**dataclasses.asdict(BeamOptions()), **self.decoding}
        opts = BeamOptions(beam_size=tuned["beam_size"] if beam_size is None else beam_size,
                           lm_weight=tuned["lm_weight"] if lm_weight is None else lm_weight,
                           word_score=tuned["word_score"] if word_score is None else word_score)
        self.beam = BeamDecoder(self.tokenizer, lexicon, lm, opts)

    def dataset(self, utts):
        """An evaluation dataset (no augmentation, no caching) normalised with this model's statistics."""
        from asr.data import SpeechDataset

        ds = SpeechDataset(utts, self.tokenizer, self.cfg.features, train=False, cache=False)
        ds.set_cmvn(self.mean, self.std)
        return ds

    @property
    def frame_seconds(self) -> float:
        """Duration of one model output frame."""
        return self.cfg.model.subsampling_factor * self.cfg.features.hop_ms / 1000

    def features(self, wav: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Mono 16 kHz waveform (N,) → normalised features (T, F) as in training, and the first sample kept
        by silence trimming (`features.trim_db`), which timestamps are measured from."""
        fc = self.cfg.features
        start, end = trim_bounds(wav, fc.trim_db)
        # a lone waveform is its own speaker: speaker_mean_norm (and var_norm) fall back to the utterance's own
        feats = utterance_mean_norm(self.logmel(wav[start:end]), fc.utterance_mean_norm or fc.speaker_mean_norm)
        feats = utterance_var_norm(feats, fc.speaker_var_norm)
        return apply_cmvn(feats, self.mean, self.std), start

    @torch.no_grad()
    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised, padded features (B, T, F) and lengths (B,) → log-probs (B, T', V) and lengths (B,)."""
        return self.model(feats.to(self.device), lengths.to(self.device))

    def decode_log_probs(self, log_probs: torch.Tensor, out_lens: torch.Tensor,
                         choices: list[str] | None = None) -> list[str]:
        """Greedy CTC, beam search once `use_beam` was called, or with `choices` the allowed transcript of
        highest CTC likelihood."""
        if choices:
            best = best_choices(log_probs, out_lens, [self.tokenizer.encode(c) for c in choices])
            return [choices[i] for i in best]
        if self.beam is not None:
            return self.beam.decode(log_probs, out_lens)
        return [self.tokenizer.decode(ids) for ids in greedy_ids(log_probs, out_lens)]

    def nbest_log_probs(self, log_probs: torch.Tensor, out_lens: torch.Tensor, n: int,
                        choices: list[str] | None = None) -> list[list[tuple[str, float]]]:
        """Up to `n` hypotheses per utterance, best first, with scores: with `choices` the most likely allowed
        transcripts (score: CTC log-likelihood), else the beam search's distinct texts (its score)."""
        if choices:
            return rank_choices(choice_scores(log_probs, out_lens, [self.tokenizer.encode(c) for c in choices]),
                                choices, n)
        if self.beam is None:
            raise ValueError("n-best lists need beam search (use_beam) or choices")
        return self.beam.decode_nbest(log_probs, out_lens, n)

    def decode_features(self, feats: torch.Tensor, lengths: torch.Tensor,
                        choices: list[str] | None = None) -> list[str]:
        """Normalised, padded features (B, T, F) → one text per utterance (see `decode_log_probs`)."""
        return self.decode_log_probs(*self.forward(feats, lengths), choices)

    def transcribe_wave(self, wav: torch.Tensor) -> str:
        """Mono 16 kHz waveform (N,) → text."""
        feats, _ = self.features(wav)
        return self.decode_features(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))[0]

    def transcribe(self, audio, *, sample_rate: int = SAMPLE_RATE, words: bool = True, max_piece_s: float = 20.0):
        """A file path, a binary file object, or samples ((N,) or (N, channels) floats at `sample_rate`) →
        a `Transcript` (asr.pieces): text, words with start/end times and confidences, the utterance
        confidence, the duration. Long audio is split at pauses (pieces of at most `max_piece_s` seconds).
        An unreadable file raises `asr.audio.AudioError` naming it."""
        name = str(getattr(audio, "name", "") or (audio if isinstance(audio, str | Path) else ""))
        return transcribe_source(self, audio, words=words, max_piece_s=max_piece_s, sample_rate=sample_rate, name=name)

    def stream(self) -> Stream:
        """A new incremental recogniser (chunk-trained models only)."""
        return Stream(self)


class Streamer:
    """Incremental forward pass of a chunk-trained model: push audio as it arrives, get the log-probabilities
    of each chunk as soon as its K + R frames (after subsampling) are there.

    Features are computed incrementally and exactly as offline (the same frames, the same reflect padding
    at both ends of the signal), then normalised and stacked by the model's own front end, so the output
    equals the offline chunked forward pass on the whole audio."""

    def __init__(self, recognizer: Recognizer):
        cfg = recognizer.cfg
        if cfg.model.tbptt_chunk <= 0:
            raise ValueError("streaming needs a model trained with chunks (model.tbptt_chunk > 0)")
        fc = cfg.features
        if fc.utterance_mean_norm or fc.speaker_mean_norm or fc.trim_db > 0:
            raise ValueError("streaming cannot use features.utterance_mean_norm, speaker_mean_norm or trim_db (they "
                             "need the whole utterance)")
        if cfg.model.subsampling != "stack":
            raise ValueError("streaming supports the frame-stacking front end (model.subsampling=stack)")
        self.rec = recognizer
        self.model = recognizer.model
        self.chunk = cfg.model.tbptt_chunk
        self.context = cfg.model.right_context if cfg.model.bidirectional else 0
        self.factor = cfg.model.subsampling_factor
        self.features = StreamingLogMel(cfg.features)
        self.pending = torch.zeros(0, cfg.features.n_mels)  # normalised feature frames not yet stacked
        self.frames = torch.zeros(0, self.model.frontend.out_dim)  # stacked frames not yet consumed
        self.states = [None] * cfg.model.num_layers
        self.done = False

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: a chunk's output needs its K frames and R more, each `factor` hops long."""
        return (self.chunk + self.context) * self.factor * self.rec.cfg.features.hop_ms

    @torch.no_grad()
    def push(self, samples: torch.Tensor) -> list[torch.Tensor]:
        """Add 16 kHz mono samples; return log-probabilities (K, V) of every chunk completed by them."""
        return [self.run(*w) for w in self.windows(samples)]

    @torch.no_grad()
    def finish(self) -> list[torch.Tensor]:
        """End of audio: return the remaining chunks (the last one may be shorter than K)."""
        return [self.run(*w) for w in self.windows(None, final=True)]

    @torch.no_grad()
    def windows(self, samples: torch.Tensor | None, final: bool = False) -> list[tuple[torch.Tensor, int]]:
        """Add samples (or end the audio with `final`) without running the network: the windows (W, D) of
        front-end output that are now complete, each with its number of chunk frames. Each goes through
        `run` (or a batched `chunk_forward_batch`) in order, since a chunk starts from the state of the one
        before."""
        if self.done:
            return []
        if final:
            self.done = True
            feats = self.features.finish()
        else:
            feats = self.features.push(torch.as_tensor(samples, dtype=torch.float32).reshape(-1))
        if feats.numel():
            self.pending = torch.cat([self.pending, apply_cmvn(feats, self.rec.mean, self.rec.std)])
        usable = self.pending.shape[0] if final else self.pending.shape[0] - self.pending.shape[0] % self.factor
        if usable:  # the front end stacks whole groups of frames (the last one zero-padded at the end)
            stacked, _ = self.model.frontend(self.pending[:usable].unsqueeze(0), torch.tensor([usable]))
            self.frames = torch.cat([self.frames, stacked[0]])
            self.pending = self.pending[usable:]
        out = []
        while self.frames.shape[0] >= self.chunk + self.context or (final and self.frames.shape[0] > 0):
            avail = min(self.frames.shape[0], self.chunk + self.context)
            n_main = min(self.chunk, avail)
            out.append((self.frames[:avail], n_main))
            self.frames = self.frames[n_main:]
        return out

    @torch.no_grad()
    def run(self, window: torch.Tensor, n_main: int) -> torch.Tensor:
        """One window through the network from this stream's state → log-probs (n_main, V)."""
        device = self.rec.device  # features are computed on the CPU; the network runs where the model is
        log_probs, self.states = self.model.chunk_forward(window.unsqueeze(0).to(device),
                                                          torch.tensor([window.shape[0]], device=device), self.states)
        return log_probs[0, :n_main].cpu()


def _merge_states(states: list):
    """Per-stream states of one layer (each None = zeros, or (1, 1, H), or an LSTM's (h, c)) → one batch state."""
    known = [s for s in states if s is not None]
    if not known:
        return None
    if isinstance(known[0], tuple):
        zero = tuple(torch.zeros_like(x) for x in known[0])
        fill = [s if s is not None else zero for s in states]
        return tuple(torch.cat(parts, dim=1) for parts in zip(*fill))
    zero = torch.zeros_like(known[0])
    return torch.cat([s if s is not None else zero for s in states], dim=1)


@torch.no_grad()
def chunk_forward_batch(model, windows: list[torch.Tensor], states: list[list],
                        device: str | torch.device = "cpu") -> tuple[list[torch.Tensor], list]:
    """One window from each of several streams (W_b, D) through the network in one batch, each from its own
    per-layer states → each stream's chunk log-probs (K_b, V) and states after it. Padding comes after a
    window's frames, so (as in `RecurrentLayer`) each stream's valid outputs are those of its window alone.
    The network and the states live on `device`; the log-probs come back on the CPU."""
    lens = torch.tensor([w.shape[0] for w in windows], device=device)
    padded = torch.nn.utils.rnn.pad_sequence(list(windows), batch_first=True).to(device)
    merged = [_merge_states([s[i] for s in states]) for i in range(len(states[0]))]
    log_probs, new = model.chunk_forward(padded, lens, merged)
    log_probs = log_probs.cpu()

    def pick(state, b):
        if state is None:
            return None
        if isinstance(state, tuple):
            return tuple(x[:, b:b + 1] for x in state)
        return state[:, b:b + 1]

    return ([log_probs[b] for b in range(len(windows))],
            [[pick(layer_state, b) for layer_state in new] for b in range(len(windows))])


class Stream:
    """Incremental recognition with greedy CTC across chunk boundaries, exactly as on the whole utterance:
    `accept(samples)` (16 kHz mono) returns the text so far, `finish()` the final text."""

    def __init__(self, recognizer: Recognizer):
        self.rec = recognizer
        self.streamer = Streamer(recognizer)
        self.greedy = GreedyChunks()
        self.seconds = 0.0  # audio accepted so far

    @property
    def latency_ms(self) -> float:
        return self.streamer.latency_ms

    @property
    def text(self) -> str:
        return self.rec.tokenizer.decode(self.greedy.ids)

    def accept(self, samples) -> str:
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.seconds += samples.numel() / SAMPLE_RATE
        self.greedy.add(self.streamer.push(samples))
        return self.text

    def finish(self) -> str:
        self.greedy.add(self.streamer.finish())
        return self.text


class GreedyChunks:
    """Greedy CTC over consecutive chunks of log-probs (K, V), collapsing across chunk boundaries exactly as
    over the whole utterance: the symbols so far, the confidence terms of the whole (as `confidence_terms`
    over the concatenation), the blank frames at the end, and, with `keep`, the chunks themselves. `last`
    carries the collapse on into a following instance (a server's next segment)."""

    def __init__(self, keep: bool = False, last: int = BLANK):
        self.ids: list[int] = []
        self.last = last  # best symbol of the last frame seen
        self.trailing = 0  # blank frames since the last symbol (or since the start)
        self.keep = keep
        self.kept: list[torch.Tensor] = []
        self.symbols = [0.0, 0]  # posterior sum and count of the best path's symbols
        self.frames = [0.0, 0]  # ... and of all frames, for a path without symbols

    def add(self, chunks: list[torch.Tensor]) -> None:
        for lp in chunks:
            best = lp.max(dim=-1)
            path = best.indices.tolist()
            new, self.last = collapse(path, self.last)
            self.ids.extend(new)
            symbols = [i for i, b in enumerate(path) if b != BLANK]
            self.trailing = len(path) - 1 - symbols[-1] if symbols else self.trailing + len(path)
            posteriors = best.values.exp()
            chosen = posteriors[best.indices != BLANK]
            self.symbols = [self.symbols[0] + float(chosen.sum()), self.symbols[1] + chosen.numel()]
            self.frames = [self.frames[0] + float(posteriors.sum()), self.frames[1] + posteriors.numel()]
            if self.keep:
                self.kept.append(lp)

    def confidence(self) -> float:
        total, count = self.symbols if self.symbols[1] else self.frames
        return round(total / count, 4) if count else 0.0
