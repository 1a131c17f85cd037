"""Chunked recurrence: truncated BPTT and the latency-controlled bidirectional RNN (LC-BLSTM/BGRU).

The frames after subsampling are cut into chunks of K frames. Chunk c is processed as a *window*: its K
frames plus the R frames that follow it (right context). Through every layer of the stack:

- the forward direction runs over the K frames of the chunk starting from the state it had at the end of
  chunk c-1, carried *detached* (gradients stop at chunk boundaries: truncated BPTT); it then continues
  over the R context frames, but that continuation is thrown away and never carried;
- the backward direction runs over the window (chunk + context) from a zero state, reversed within the
  utterance's own length, so padding never reaches a valid frame;
- only the K chunk frames are output; the context frames only feed the next layer's window.

All layers see the same window, so a model trained this way also streams with a latency of K+R frames
(`Streamer` below does exactly this computation incrementally). With K at least the utterance length
(one chunk), the result is exactly that of full-utterance BPTT.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asr.model import reverse_within_lengths


def _detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):  # LSTM (h, c)
        return tuple(s.detach() for s in state)
    return state.detach()


def make_windows(x: torch.Tensor, chunk: int, context: int) -> torch.Tensor:
    """(B, T, D) → (B, C, chunk + context, D) windows starting every `chunk` frames, zero-padded past T."""
    b, t, d = x.shape
    n = max(1, math.ceil(t / chunk))
    x = nn.functional.pad(x, (0, 0, 0, n * chunk + context - t))
    return x.unfold(1, chunk + context, chunk).permute(0, 1, 3, 2)


def window_lengths(lengths: torch.Tensor, n_chunks: int, chunk: int, context: int) -> torch.Tensor:
    """Valid frames of each window (B, C): the part of [c*chunk, (c+1)*chunk + context) before the length."""
    starts = torch.arange(n_chunks, device=lengths.device) * chunk
    valid = lengths.unsqueeze(1) - starts.unsqueeze(0)
    return valid.clamp(min=0, max=chunk + context)


def layer_windows(layer, w: torch.Tensor, wlens: torch.Tensor, chunk: int,
                  state=None) -> tuple[torch.Tensor, object]:
    """One RecurrentLayer over windows (B, C, W, D) → (B, C, W, H or 2H), and its forward state after the
    last chunk (detached), given the state before the first (`state`, None = zeros)."""
    b, c, w_len, d = w.shape
    outs = []
    for i in range(c):
        main, new_state = layer.fwd(w[:, i, :chunk], state)
        if w_len > chunk:  # right context: continue from the chunk's end state, do not carry it
            ctx, _ = layer.fwd(w[:, i, chunk:], new_state)
            main = torch.cat([main, ctx], dim=1)
        outs.append(main)
        state = _detach(new_state)
    y = torch.stack(outs, dim=1)
    if layer.bwd is not None:
        flat = w.reshape(b * c, w_len, d)
        flat_lens = wlens.reshape(b * c)
        yb, _ = layer.bwd(reverse_within_lengths(flat, flat_lens))
        yb = reverse_within_lengths(yb, flat_lens).reshape(b, c, w_len, -1)
        y = torch.cat([y, yb], dim=-1)
    return y, state


def chunked_stack(model, x: torch.Tensor, lengths: torch.Tensor, chunk: int, context: int) -> torch.Tensor:
    """The model's recurrent stack over front-end output x (B, T, D) in chunks → (B, T, H or 2H)."""
    b, t, _ = x.shape
    w = make_windows(x, chunk, context)
    wlens = window_lengths(lengths.to(x.device), w.shape[1], chunk, context)
    for i, rnn in enumerate(model.rnns):
        if model.norms is not None:
            w = model.norms[i](w)
        w, _ = layer_windows(rnn, model.dropout(w), wlens, chunk)
    return w[:, :, :chunk].reshape(b, -1, w.shape[-1])[:, :t]


class Streamer:
    """Incremental recognition with a chunk-trained model: push audio as it arrives, get log-probabilities
    of each chunk as soon as its K + R frames (after subsampling) are there.

    Features are computed incrementally and exactly as offline (the same frames, the same reflect padding
    at both ends of the signal), so the output equals the offline chunked forward pass on the whole audio.
    """

    def __init__(self, recognizer):
        from asr.features import StreamingLogMel

        cfg = recognizer.cfg
        if cfg.model.tbptt_chunk <= 0:
            raise ValueError("streaming needs a model trained with chunks (model.tbptt_chunk > 0)")
        if cfg.features.utterance_mean_norm or cfg.features.trim_db > 0:
            raise ValueError("streaming cannot use features.utterance_mean_norm or trim_db (they need the whole "
                             "utterance)")
        if cfg.model.subsampling != "stack":
            raise ValueError("streaming supports the frame-stacking front end (model.subsampling=stack)")
        self.rec = recognizer
        self.model = recognizer.model
        self.chunk = cfg.model.tbptt_chunk
        self.context = cfg.model.right_context if cfg.model.bidirectional else 0
        self.factor = cfg.model.subsampling_factor
        self.features = StreamingLogMel(cfg.features)
        self.pending = torch.zeros(0, cfg.features.n_mels)  # feature frames not yet stacked
        self.frames = torch.zeros(0, self.model.frontend.out_dim)  # stacked frames not yet consumed
        self.states = [None] * len(self.model.rnns)
        self.done = False

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency: a chunk's output needs its K frames and R more, each `factor` hops long."""
        return (self.chunk + self.context) * self.factor * self.rec.cfg.features.hop_ms

    @torch.no_grad()
    def push(self, samples: torch.Tensor) -> list[torch.Tensor]:
        """Add 16 kHz mono samples; return log-probabilities (K, V) of every chunk completed by them."""
        return self._advance(self.features.push(samples), final=False)

    @torch.no_grad()
    def finish(self) -> list[torch.Tensor]:
        """End of audio: return the remaining chunks (the last one may be shorter than K)."""
        if self.done:
            return []
        self.done = True
        return self._advance(self.features.finish(), final=True)

    def _advance(self, feats: torch.Tensor, final: bool) -> list[torch.Tensor]:
        if feats.numel():
            feats = (feats - self.rec.mean) / self.rec.std
            self.pending = torch.cat([self.pending, feats])
        n_stack = self.pending.shape[0] // self.factor
        if final and self.pending.shape[0] % self.factor:
            n_stack += 1
            pad = n_stack * self.factor - self.pending.shape[0]
            self.pending = torch.cat([self.pending, self.pending.new_zeros(pad, self.pending.shape[1])])
        if n_stack:
            take = self.pending[: n_stack * self.factor]
            self.pending = self.pending[n_stack * self.factor:]
            self.frames = torch.cat([self.frames, take.reshape(n_stack, -1)])
        out = []
        need = self.chunk + self.context
        while self.frames.shape[0] >= need or (final and self.frames.shape[0] > 0):
            out.append(self._run_chunk())
        return out

    def _run_chunk(self) -> torch.Tensor:
        avail = min(self.frames.shape[0], self.chunk + self.context)
        n_main = min(self.chunk, avail)
        window = _window(self.frames[:avail].unsqueeze(0), 0, self.chunk, self.context)
        log_probs, self.states = chunk_forward(self.model, window, torch.tensor([avail]), self.chunk, self.states)
        self.frames = self.frames[n_main:]
        return log_probs[0, :n_main]


def _window(x: torch.Tensor, c: int, chunk: int, context: int) -> torch.Tensor:
    """Window c of (B, T, D): frames [c*chunk, c*chunk + chunk + context), zero-padded past T."""
    seg = x[:, c * chunk: c * chunk + chunk + context]
    return nn.functional.pad(seg, (0, 0, 0, chunk + context - seg.shape[1]))


def chunk_forward(model, window: torch.Tensor, wlens: torch.Tensor, chunk: int, states: list):
    """One window (B, W, D) through every layer, from the per-layer forward states before it → log-probs of
    its `chunk` frames (B, chunk, V) and the states after it (detached)."""
    w = window.unsqueeze(1)
    new_states = []
    for i, rnn in enumerate(model.rnns):
        if model.norms is not None:
            w = model.norms[i](w)
        w, state = layer_windows(rnn, model.dropout(w), wlens.unsqueeze(1), chunk, states[i])
        new_states.append(state)
    logits = model.head(model.dropout(w[:, 0, :chunk]))
    return logits.float().log_softmax(dim=-1), new_states


def _rng_state(device: torch.device):
    return (torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None)


def _set_rng_state(state, device: torch.device) -> None:
    torch.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state(state[1], device)


def chunkwise_backward(model, feats: torch.Tensor, lengths: torch.Tensor, loss_fn) -> tuple[torch.Tensor, int]:
    """Truncated-BPTT training step whose activation memory grows with the chunk, not the utterance.

    Because no gradient crosses a chunk boundary through the recurrent state, the gradient of a chunk's
    parameters depends only on the gradient of the loss with respect to that chunk's outputs. So:
    (1) run every chunk without building a graph, keeping the carried states and RNG states, and compute
    the CTC loss over the whole utterance and its gradient with respect to the log-probabilities;
    (2) run each chunk again with a graph from its saved state (same dropout masks) and backpropagate
    that chunk's slice of the gradient, then free it. The front end keeps its (small) graph for the whole
    utterance. Gradients equal those of backpropagating through `model(feats, lengths)` in chunked mode.

    `loss_fn(log_probs, out_lens)` returns the scalar loss. Returns (loss, number of chunks)."""
    cfg = model.cfg
    chunk, context = cfg.tbptt_chunk, cfg.right_context
    x, out_lens = model.frontend(feats, lengths)
    xd = x.detach().requires_grad_(True)
    t = x.shape[1]
    n_chunks = max(1, math.ceil(t / chunk))
    wlens = window_lengths(out_lens.to(x.device), n_chunks, chunk, context)
    states: list = [None] * len(model.rnns)
    saved, rngs, outs = [], [], []
    with torch.no_grad():
        for c in range(n_chunks):
            saved.append(states)
            rngs.append(_rng_state(x.device))
            lp, states = chunk_forward(model, _window(xd, c, chunk, context), wlens[:, c], chunk, states)
            outs.append(lp)
    log_probs = torch.cat(outs, dim=1)[:, :t].requires_grad_(True)
    loss = loss_fn(log_probs, out_lens)
    loss.backward()
    grad = nn.functional.pad(log_probs.grad, (0, 0, 0, n_chunks * chunk - t))
    rng_now = _rng_state(x.device)
    for c in range(n_chunks):
        _set_rng_state(rngs[c], x.device)
        lp, _ = chunk_forward(model, _window(xd, c, chunk, context), wlens[:, c], chunk, saved[c])
        lp.backward(grad[:, c * chunk:(c + 1) * chunk])
    _set_rng_state(rng_now, x.device)
    if x.requires_grad:
        x.backward(xd.grad)
    return loss.detach(), n_chunks
