"""Acoustic model: subsampling front end + stacked (bi)LSTM/GRU/RNN over padded batches + linear CTC head,
run over whole utterances or in chunks (truncated BPTT and the latency-controlled bidirectional RNN).

Chunked recurrence. The frames after subsampling are cut into chunks of K frames. Chunk c is processed as a
*window*: its K frames plus the R frames that follow it (right context). Through every layer of the stack:

- the forward direction runs over the K frames of the chunk starting from the state it had at the end of
  chunk c-1, carried *detached* (gradients stop at chunk boundaries: truncated BPTT); it then continues
  over the R context frames, but that continuation is thrown away and never carried;
- the backward direction runs over the window (chunk + context) from a zero state, reversed within the
  utterance's own length, so padding never reaches a valid frame;
- only the K chunk frames are output; the context frames only feed the next layer's window.

All layers see the same window, so a model trained this way also streams with a latency of K+R frames
(`asr.recognizer.Streamer` runs `chunk_forward` one window at a time). With K at least the utterance length
(one chunk), the result is exactly that of full-utterance BPTT. `asr.chunking` holds the training side
(chunk-at-a-time backward).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from asr.config import ModelConfig

_CONV_STRIDES = {2: (2, 1), 3: (3, 1), 4: (2, 2), 6: (3, 2)}


def subsampled_lengths(lengths: torch.Tensor, stride: int) -> torch.Tensor:
    """Frames after a kernel-3, padding-1 convolution (or a stack of `stride` frames): ceil(L / stride)."""
    return torch.div(lengths - 1, stride, rounding_mode="floor") + 1


def mask_time(x: torch.Tensor, lengths: torch.Tensor, dim: int) -> torch.Tensor:
    """Zero every frame at or past each sequence's length along `dim` (batch is dim 0)."""
    steps = torch.arange(x.shape[dim], device=x.device)
    keep = steps.unsqueeze(0) < lengths.to(x.device).unsqueeze(1)  # (B, T)
    shape = [x.shape[0]] + [1] * (x.dim() - 1)
    shape[dim] = x.shape[dim]
    return x * keep.view(shape).to(x.dtype)


class ConvSubsampling(nn.Module):
    """Two 3x3 convolutions with ReLU, stride 2 in frequency and (s1, s2) in time: (B, T, F) → (B, T', D)."""

    def __init__(self, n_mels: int, channels: int, factor: int):
        super().__init__()
        self.strides = _CONV_STRIDES[factor]
        self.conv1 = nn.Conv2d(1, channels, 3, stride=(self.strides[0], 2), padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=(self.strides[1], 2), padding=1)
        freq = (((n_mels - 1) // 2 + 1) - 1) // 2 + 1
        self.out_dim = channels * freq

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for s in self.strides:
            lengths = subsampled_lengths(lengths, s)
        return lengths

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = mask_time(x, lengths, dim=1).unsqueeze(1)  # (B, 1, T, F)
        for conv, stride in ((self.conv1, self.strides[0]), (self.conv2, self.strides[1])):
            lengths = subsampled_lengths(lengths, stride)
            # re-mask so that padding never leaks into valid frames through the next kernel
            x = mask_time(torch.relu(conv(x)), lengths, dim=2)
        b, c, t, f = x.shape
        return x.permute(0, 2, 1, 3).reshape(b, t, c * f), lengths  # (B, C, T', F') -> (B, T', C*F')


class FrameStacking(nn.Module):
    """Concatenate `factor` consecutive frames: (B, T, F) → (B, ceil(T/factor), factor*F)."""

    def __init__(self, n_mels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.out_dim = n_mels * factor

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return subsampled_lengths(lengths, self.factor)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = mask_time(x, lengths, dim=1)
        b, t, f = x.shape
        pad = (-t) % self.factor
        x = nn.functional.pad(x, (0, 0, 0, pad))
        return x.reshape(b, (t + pad) // self.factor, self.factor * f), self.output_lengths(lengths)


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of (B, T, D) over its first `length` frames; padding frames stay in place."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)  # (1, T)
    lens = lengths.to(x.device).unsqueeze(1)  # (B, 1)
    index = torch.where(steps < lens, lens - 1 - steps, steps)  # (B, T)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def flush_denormals() -> None:
    """Treat subnormal floats as zero, process-wide. Without it a model's weights pick up subnormal values as
    it trains, and every step through them is slow on a CPU: the demo's epochs grew 20-60 % longer, and
    decoding with such a model is ~1.2x slower (bench/denormal.py). Training and inference call this."""
    torch.set_flush_denormal(True)


def make_windows(x: torch.Tensor, chunk: int, context: int) -> torch.Tensor:
    """(B, T, D) → (B, C, chunk + context, D) windows starting every `chunk` frames, zero-padded past T."""
    b, t, d = x.shape
    n = max(1, math.ceil(t / chunk))
    x = nn.functional.pad(x, (0, 0, 0, n * chunk + context - t))
    return x.unfold(1, chunk + context, chunk).permute(0, 1, 3, 2)


def window_at(x: torch.Tensor, c: int, chunk: int, context: int) -> torch.Tensor:
    """Window c of (B, T, D): frames [c*chunk, c*chunk + chunk + context), zero-padded past T."""
    seg = x[:, c * chunk: c * chunk + chunk + context]
    return nn.functional.pad(seg, (0, 0, 0, chunk + context - seg.shape[1]))


def window_lengths(lengths: torch.Tensor, n_chunks: int, chunk: int, context: int) -> torch.Tensor:
    """Valid frames of each window (B, C): the part of [c*chunk, (c+1)*chunk + context) before the length."""
    starts = torch.arange(n_chunks, device=lengths.device) * chunk
    valid = lengths.unsqueeze(1) - starts.unsqueeze(0)
    return valid.clamp(min=0, max=chunk + context)


def _detach(state):
    if state is None:
        return None
    if isinstance(state, tuple):  # LSTM (h, c)
        return tuple(s.detach() for s in state)
    return state.detach()


def make_rnn(cfg: ModelConfig, input_size: int) -> nn.RNNBase:
    """One unidirectional recurrent layer of the configured type."""
    kwargs = dict(input_size=input_size, hidden_size=cfg.hidden_size, num_layers=1, batch_first=True)
    if cfg.rnn_type == "lstm":
        return nn.LSTM(**kwargs)
    if cfg.rnn_type == "gru":
        return nn.GRU(**kwargs)
    return nn.RNN(nonlinearity="tanh" if cfg.rnn_type == "rnn_tanh" else "relu", **kwargs)


def bf16_problem(rnn_type: str, device: torch.device) -> str:
    """Why this device cannot run `rnn_type` layers under bf16 autocast, or "" when it can. A tiny layer is run
    once to find out: CPUs without bf16 instructions (AVX2-only x86, for one) have no oneDNN bf16 LSTM, and
    torch then raises a RuntimeError in the first forward pass instead of falling back to fp32."""
    layer = make_rnn(ModelConfig(rnn_type=rnn_type, hidden_size=4), 4).to(device)
    try:
        with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
            layer(torch.zeros(1, 2, 4, device=device))
    except RuntimeError as exc:
        return str(exc).split(". ")[0].strip()
    return ""


class RecurrentLayer(nn.Module):
    """One (bi)directional recurrent layer over padded input (B, T, D) → (B, T, H or 2H).

    The forward direction runs on the padded batch as it is: frames past a sequence's end come after all
    of its valid frames, so they cannot change them. The backward direction runs on every sequence
    reversed within its own length, which puts its padding last too. Valid outputs are therefore exactly
    those of each utterance alone, without packing (which is markedly slower on CPU)."""

    def __init__(self, cfg: ModelConfig, input_size: int):
        super().__init__()
        self.fwd = make_rnn(cfg, input_size)
        self.bwd = make_rnn(cfg, input_size) if cfg.bidirectional else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        y, _ = self.fwd(x)
        if self.bwd is None:
            return y
        y_bwd, _ = self.bwd(reverse_within_lengths(x, lengths))
        return torch.cat([y, reverse_within_lengths(y_bwd, lengths)], dim=-1)

    def windows(self, w: torch.Tensor, wlens: torch.Tensor, chunk: int, state=None) -> tuple[torch.Tensor, object]:
        """The layer over windows (B, C, W, D) → (B, C, W, H or 2H), and its forward state after the last
        chunk (detached), given the state before the first (`state`, None = zeros). wlens (B, C)."""
        b, c, w_len, d = w.shape
        outs = []
        for i in range(c):
            main, new_state = self.fwd(w[:, i, :chunk], state)
            if w_len > chunk:  # right context: continue from the chunk's end state, do not carry it
                ctx, _ = self.fwd(w[:, i, chunk:], new_state)
                main = torch.cat([main, ctx], dim=1)
            outs.append(main)
            state = _detach(new_state)
        y = torch.stack(outs, dim=1)
        if self.bwd is not None:
            flat = w.reshape(b * c, w_len, d)
            flat_lens = wlens.reshape(b * c)
            yb, _ = self.bwd(reverse_within_lengths(flat, flat_lens))
            yb = reverse_within_lengths(yb, flat_lens).reshape(b, c, w_len, -1)
            y = torch.cat([y, yb], dim=-1)
        return y, state


class AcousticModel(nn.Module):
    """Log-mel features (B, T, n_mels) → CTC log-probabilities (B, T', vocab) and lengths T'."""

    def __init__(self, cfg: ModelConfig, n_mels: int, vocab_size: int):
        super().__init__()
        self.cfg = cfg
        if cfg.subsampling == "conv":
            self.frontend = ConvSubsampling(n_mels, cfg.conv_channels, cfg.subsampling_factor)
        else:
            self.frontend = FrameStacking(n_mels, cfg.subsampling_factor)
        self.dropout = nn.Dropout(cfg.dropout)
        width = cfg.hidden_size * (2 if cfg.bidirectional else 1)
        in_dims = [self.frontend.out_dim] + [width] * (cfg.num_layers - 1)
        self.rnns = nn.ModuleList(RecurrentLayer(cfg, d) for d in in_dims)
        self.norms = nn.ModuleList(nn.LayerNorm(d) for d in in_dims) if cfg.layer_norm else None
        self.head = nn.Linear(width, vocab_size)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return self.frontend.output_lengths(lengths)

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, out_lens = self.frontend(feats, lengths)
        if self.cfg.tbptt_chunk > 0:
            x = self.chunked(x, out_lens, self.cfg.tbptt_chunk, self.cfg.right_context)
        else:
            x = self._stack(x, lambda layer, h, _: layer(h, out_lens))
        return self.log_probs(x), out_lens

    def _stack(self, x: torch.Tensor, run_layer) -> torch.Tensor:
        """The one loop over the recurrent layers: optional LayerNorm, dropout, then `run_layer(layer, x, i)`."""
        for i, layer in enumerate(self.rnns):
            if self.norms is not None:
                x = self.norms[i](x)
            x = run_layer(layer, self.dropout(x), i)
        return x

    def log_probs(self, x: torch.Tensor) -> torch.Tensor:
        """Recurrent output (..., H or 2H) → CTC log-probabilities (..., V) in fp32."""
        return self.head(self.dropout(x)).float().log_softmax(dim=-1)

    def chunked(self, x: torch.Tensor, lengths: torch.Tensor, chunk: int, context: int) -> torch.Tensor:
        """The recurrent stack over front-end output x (B, T, D) in chunks of `chunk` frames with `context`
        frames of right context → (B, T, H or 2H)."""
        b, t, _ = x.shape
        w = make_windows(x, chunk, context)
        wlens = window_lengths(lengths.to(x.device), w.shape[1], chunk, context)
        w = self._stack(w, lambda layer, h, _: layer.windows(h, wlens, chunk)[0])
        return w[:, :, :chunk].reshape(b, -1, w.shape[-1])[:, :t]

    def chunk_forward(self, window: torch.Tensor, wlens: torch.Tensor, states: list) -> tuple[torch.Tensor, list]:
        """One window (B, W, D) of front-end output through every layer, from the per-layer forward states
        before it → log-probs of its chunk frames (B, K, V) and the states after it (detached)."""
        chunk = self.cfg.tbptt_chunk
        new_states = list(states)

        def run(layer, h, i):
            y, new_states[i] = layer.windows(h, wlens.unsqueeze(1), chunk, states[i])
            return y

        w = self._stack(window.unsqueeze(1), run)
        return self.log_probs(w[:, 0, :chunk]), new_states
