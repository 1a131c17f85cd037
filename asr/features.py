"""Features: torchaudio log-mel filterbanks, global CMVN, SpecAugment and speed perturbation."""

from __future__ import annotations

import torch
import torchaudio
import torchaudio.functional as AF

from asr.audio import SAMPLE_RATE
from asr.config import FeatureConfig

LOG_FLOOR = 1e-6


class LogMel(torch.nn.Module):
    """Waveform (N,) at 16 kHz → log-mel filterbank (T, n_mels), T = 1 + N // hop."""

    def __init__(self, cfg: FeatureConfig):
        super().__init__()
        win = int(round(SAMPLE_RATE * cfg.win_ms / 1000))
        hop = int(round(SAMPLE_RATE * cfg.hop_ms / 1000))
        self.hop = hop
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=win, win_length=win, hop_length=hop, n_mels=cfg.n_mels, power=2.0)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        spec = self.mel(wav)  # (n_mels, T)
        return torch.log(spec + LOG_FLOOR).transpose(0, 1).contiguous()  # (T, n_mels)


def speed_perturb(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """Play `wav` (N,) `factor` times faster (tempo and pitch change together, as in Kaldi's recipe)."""
    if factor == 1.0:
        return wav
    return AF.resample(wav, int(round(SAMPLE_RATE * factor)), SAMPLE_RATE)


def freq_warp(feats: torch.Tensor, alpha: float) -> torch.Tensor:
    """Stretch (alpha > 1) or compress the mel axis of features (T, F) by linear interpolation.

    Moves formants up or down like a shorter or longer vocal tract: a cheap, feature-domain
    approximation of vocal tract length perturbation (VTLP). Channels past the edge repeat the last one.
    """
    if alpha == 1.0:
        return feats
    n = feats.shape[1]
    pos = (torch.arange(n, dtype=torch.float32) / alpha).clamp(0, n - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=n - 1)
    w = (pos - lo.float()).to(feats.dtype)
    return feats[:, lo] * (1 - w) + feats[:, hi] * w


class Cmvn:
    """Accumulates global per-channel mean and standard deviation over training features."""

    def __init__(self, dim: int):
        self.count = 0
        self.sum = torch.zeros(dim, dtype=torch.float64)
        self.sumsq = torch.zeros(dim, dtype=torch.float64)

    def add(self, feats: torch.Tensor) -> None:
        """feats: (T, F)."""
        f = feats.to(torch.float64)
        self.count += f.shape[0]
        self.sum += f.sum(0)
        self.sumsq += (f * f).sum(0)

    def stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.count == 0:
            raise ValueError("no frames accumulated for CMVN statistics")
        mean = self.sum / self.count
        var = (self.sumsq / self.count - mean * mean).clamp_min(1e-10)
        return mean.float(), var.sqrt().float()


def apply_cmvn(feats: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """(T, F) → (T, F) with zero mean and unit variance per channel (training statistics)."""
    return (feats - mean) / std


def spec_augment(feats: torch.Tensor, cfg: FeatureConfig) -> torch.Tensor:
    """SpecAugment with torchaudio's masking transforms on normalised features (T, F); masks are 0 (the mean).

    Draws from torch's global RNG, so a seeded run is reproducible.
    """
    x = feats.transpose(0, 1).unsqueeze(0)  # (T, F) -> (1, F, T), the layout torchaudio masks expect
    freq_mask = torchaudio.transforms.FrequencyMasking(cfg.freq_mask_width)
    time_mask = torchaudio.transforms.TimeMasking(cfg.time_mask_width, p=cfg.time_mask_ratio)
    for _ in range(cfg.freq_masks):
        x = freq_mask(x)
    for _ in range(cfg.time_masks):
        x = time_mask(x)
    return x.squeeze(0).transpose(0, 1).contiguous()  # back to (T, F)
