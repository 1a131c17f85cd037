"""Acoustic model: subsampling front end + stacked (bi)LSTM/GRU/RNN over padded batches + linear CTC head."""

from __future__ import annotations

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


def make_rnn(cfg: ModelConfig, input_size: int) -> nn.RNNBase:
    """One unidirectional recurrent layer of the configured type."""
    kwargs = dict(input_size=input_size, hidden_size=cfg.hidden_size, num_layers=1, batch_first=True)
    if cfg.rnn_type == "lstm":
        return nn.LSTM(**kwargs)
    if cfg.rnn_type == "gru":
        return nn.GRU(**kwargs)
    return nn.RNN(nonlinearity="tanh" if cfg.rnn_type == "rnn_tanh" else "relu", **kwargs)


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
            from asr.chunking import chunked_stack

            x = chunked_stack(self, x, out_lens, self.cfg.tbptt_chunk, self.cfg.right_context)
        else:
            for i, rnn in enumerate(self.rnns):
                if self.norms is not None:
                    x = self.norms[i](x)
                x = rnn(self.dropout(x), out_lens)
        logits = self.head(self.dropout(x))
        return logits.float().log_softmax(dim=-1), out_lens
