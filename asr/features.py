"""Features: torchaudio log-mel filterbanks, global CMVN, SpecAugment, speed and pitch perturbation and waveform
corruption (background noise, simulated room reverberation, telephone band and lossy codecs)."""

from __future__ import annotations

import functools
import io
import math
import random

import numpy as np
import torch
import torchaudio
import torchaudio.functional as AF

from asr.audio import SAMPLE_RATE
from asr.config import FeatureConfig

LOG_FLOOR = 1e-6


class LogMel(torch.nn.Module):
    """Waveform (N,) at 16 kHz → log-mel filterbank (T, n_mels), T = 1 + N // hop (centred frames, any N ≥ 0).

    Centred frames pad the signal by reflection at both ends, which needs more samples than half a window;
    a shorter signal (down to none) is extended with silence first, so it still gives its 1 + N // hop frames."""

    def __init__(self, cfg: FeatureConfig, center: bool = True):
        super().__init__()
        win = int(round(SAMPLE_RATE * cfg.win_ms / 1000))
        hop = int(round(SAMPLE_RATE * cfg.hop_ms / 1000))
        self.hop = hop
        self.reflect = win // 2 if center else 0  # samples of reflection padding on each side
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE, n_fft=win, win_length=win, hop_length=hop, n_mels=cfg.n_mels, power=2.0,
            f_min=cfg.f_min, f_max=cfg.f_max or None, center=center)

    def forward(self, wav: torch.Tensor) -> torch.Tensor:
        n = wav.shape[-1]
        if self.reflect and n <= self.reflect:
            wav = torch.nn.functional.pad(wav, (0, self.reflect + 1 - n))
        spec = self.mel(wav)  # (n_mels, T)
        if self.reflect and n <= self.reflect:
            spec = spec[:, : 1 + n // self.hop]
        return torch.log(spec + LOG_FLOOR).transpose(0, 1).contiguous()  # (T, n_mels)


STD_FLOOR = 1e-3  # smallest standard deviation a per-speaker or per-utterance variance normalisation divides by


def utterance_var_norm(feats: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """Divide mean-normalised features (T, F) by the utterance's own standard deviation per channel."""
    if not enabled or feats.shape[0] < 2:
        return feats
    return feats / feats.std(dim=0, unbiased=False, keepdim=True).clamp_min(STD_FLOOR)


def utterance_mean_norm(feats: torch.Tensor, enabled: bool = True) -> torch.Tensor:
    """Subtract the utterance's own mean per channel (T, F): a fixed microphone response or gain cancels out."""
    return feats - feats.mean(dim=0, keepdim=True) if enabled else feats


class StreamingLogMel:
    """LogMel computed on audio that arrives in blocks: the same frames as `LogMel` on the whole signal.

    Offline, the signal is reflect-padded by n_fft/2 samples at both ends and frame t starts at t*hop of
    the padded signal. Here the left padding is built once enough samples have arrived, each frame is
    computed as soon as its window is complete, and the right padding is added by `finish()`."""

    def __init__(self, cfg: FeatureConfig):
        self.logmel = LogMel(cfg, center=False)  # the same filterbank, on windows we pad ourselves
        self.n_mels = cfg.n_mels
        self.n_fft = self.logmel.mel.n_fft
        self.hop = self.logmel.hop
        self.pad = self.n_fft // 2
        self.buf = torch.zeros(0)  # padded-signal samples from index `self.start` on
        self.start = 0
        self.received = 0  # raw samples so far
        self.head: torch.Tensor | None = None  # first raw samples, until the left padding is built
        self.next_frame = 0
        self.tail = torch.zeros(0)  # the last pad + 1 raw samples, for the right padding

    def push(self, samples: torch.Tensor) -> torch.Tensor:
        samples = torch.as_tensor(samples, dtype=torch.float32).reshape(-1)
        self.received += samples.numel()
        self.tail = torch.cat([self.tail, samples])[-(self.pad + 1):]
        if self.head is not None or self.start == 0 and self.buf.numel() == 0:
            self.head = samples if self.head is None else torch.cat([self.head, samples])
            if self.head.numel() <= self.pad:
                return torch.zeros(0, self.n_mels)
            left = self.head[1:self.pad + 1].flip(0)  # reflect padding (edge sample not repeated)
            samples, self.head = torch.cat([left, self.head]), None
        self.buf = torch.cat([self.buf, samples])
        return self._frames(final=False)

    def finish(self) -> torch.Tensor:
        if self.head is not None:  # shorter than the padding: compute everything offline-style at once
            wav, self.head = self.head, None
            full = torch.nn.functional.pad(wav.view(1, 1, -1), (self.pad, self.pad), mode="reflect").view(-1)
            self.buf, self.start = full, 0
        else:
            raw_end = self.tail[:-1].flip(0)  # reflect padding at the end (edge sample not repeated)
            self.buf = torch.cat([self.buf, raw_end])
        return self._frames(final=True)

    def _frames(self, final: bool) -> torch.Tensor:
        total = self.received // self.hop + 1 if final else None  # offline frame count: 1 + N // hop
        end = self.start + self.buf.numel()
        last = (end - self.n_fft) // self.hop  # last frame whose window is complete
        if total is not None:
            last = min(last, total - 1)
        if last < self.next_frame:
            return torch.zeros(0, self.n_mels)
        a = self.next_frame * self.hop - self.start
        seg = self.buf[a:a + (last - self.next_frame) * self.hop + self.n_fft]
        feats = self.logmel(seg)
        self.next_frame = last + 1
        drop = self.next_frame * self.hop - self.start
        self.buf, self.start = self.buf[drop:], self.start + drop
        return feats


def add_noise(feats: torch.Tensor, snr_db: float, tilt_db: float = 0.0) -> torch.Tensor:
    """Log-mel features (T, F) of the signal plus stationary noise `snr_db` below its mean power.

    Works in the power domain of the cached features (power of a sum = sum of powers, cross terms dropped),
    so augmentation needs no second pass over the audio. The noise spectrum is flat across mel channels,
    tilted by `tilt_db` from the lowest to the highest channel."""
    power = feats.exp()
    shape = torch.linspace(-tilt_db / 2, tilt_db / 2, feats.shape[1], dtype=feats.dtype)
    noise = power.mean() * 10 ** (-snr_db / 10) * 10 ** (shape / 10)
    return torch.log(power + noise.unsqueeze(0))


def trim_bounds(wav: torch.Tensor, db: float, frame: int = 160) -> tuple[int, int]:
    """(start, end) sample indices that `trim_silence` keeps."""
    if db <= 0 or wav.numel() < 2 * frame:
        return 0, wav.numel()
    n = wav.numel() // frame
    energy = wav[: n * frame].reshape(n, frame).pow(2).mean(dim=1)
    level = 10 * torch.log10(energy + 1e-12)
    keep = torch.nonzero(level >= level.max() - db).flatten()
    start, end = int(keep[0]) * frame, (int(keep[-1]) + 1) * frame
    if end >= n * frame:
        end = wav.numel()
    return start, end


def trim_silence(wav: torch.Tensor, db: float, frame: int = 160) -> torch.Tensor:
    """Cut leading and trailing audio whose 10 ms frames are more than `db` dB below the loudest frame
    (recordings of one corpus are often trimmed differently; this makes them alike). 0 disables."""
    start, end = trim_bounds(wav, db, frame)
    return wav[start:end]


def speed_perturb(wav: torch.Tensor, factor: float) -> torch.Tensor:
    """Play `wav` (N,) `factor` times faster (tempo and pitch change together, as in Kaldi's recipe)."""
    if factor == 1.0:
        return wav
    return AF.resample(wav, int(round(SAMPLE_RATE * factor)), SAMPLE_RATE)


def add_background(wav: torch.Tensor, noise: torch.Tensor, snr_db: float, offset: int = 0) -> torch.Tensor:
    """`wav` (N,) plus the noise clip (M,) read from sample `offset` on, looped when shorter than N, scaled so
    that the utterance's mean power is `snr_db` above the noise's. A silent utterance or clip is left as is."""
    idx = (torch.arange(wav.numel()) + offset) % noise.numel()
    seg = noise[idx].double()
    p_speech, p_noise = wav.double().pow(2).mean(), seg.pow(2).mean()
    if p_speech == 0 or p_noise == 0:
        return wav
    scale = torch.sqrt(p_speech / (p_noise * 10 ** (snr_db / 10)))
    return (wav.double() + scale * seg).float()


SOUND_SPEED = 343.0  # m/s
EARLY_S = 0.08  # reflections computed image by image for this long after the direct sound; a diffuse tail after
TAIL_MATCH_S = 0.03  # the tail continues the images' energy over their last 30 ms


def room_impulse_response(room, source, mic, rt60: float, rng: np.random.Generator,
                          sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, int]:
    """(impulse response, index of the direct-path tap) from `source` to `mic` (metres) in a shoebox `room`
    (L, W, H metres) with reverberation time `rt60` (s); scaled so that the direct-path tap is 1.

    Image-source method (Allen & Berkley 1979), nearest-sample taps, one wall absorption from Eyring's formula,
    for the first `EARLY_S` after the direct sound; then a diffuse tail as in Lehmann & Johansson (2010):
    Gaussian noise continuing the images' energy, decaying 60 dB per rt60.
    Computing every image for the whole decay would take seconds per response at rt60 ≈ 1 s."""
    room, source, mic = (np.asarray(v, dtype=np.float64) for v in (room, source, mic))
    volume = float(room.prod())
    surface = 2.0 * (room[0] * room[1] + room[0] * room[2] + room[1] * room[2])
    beta = math.sqrt(math.exp(-0.161 * volume / (surface * rt60)))  # reflection = sqrt(1 - Eyring absorption)
    d0 = float(np.linalg.norm(source - mic))
    t_mix = d0 / SOUND_SPEED + EARLY_S
    reach = SOUND_SPEED * t_mix
    axes = []  # per axis: image coordinates relative to the mic, and reflection counts
    for a in range(3):
        n = np.arange(-int(reach // (2 * room[a])) - 1, int(reach // (2 * room[a])) + 2)
        pos = np.concatenate([2 * n * room[a] + source[a], 2 * n * room[a] - source[a]]) - mic[a]
        bounces = np.concatenate([2 * np.abs(n), np.abs(n - 1) + np.abs(n)])
        axes.append((pos, bounces))
    (x, bx), (y, by), (z, bz) = axes
    dist = np.sqrt(x[:, None, None] ** 2 + y[None, :, None] ** 2 + z[None, None, :] ** 2).ravel()
    bounces = (bx[:, None, None] + by[None, :, None] + bz[None, None, :]).ravel()
    keep = dist <= reach
    dist, bounces = dist[keep], bounces[keep]
    length = int(math.ceil((d0 / SOUND_SPEED + rt60) * sample_rate)) + 1
    rir = np.zeros(length)
    np.add.at(rir, np.rint(dist / SOUND_SPEED * sample_rate).astype(np.int64), beta ** bounces / dist)
    start = int(math.ceil(t_mix * sample_rate))
    # the tail starts at the energy the images reach in their last TAIL_MATCH_S (taps of images arriving in one
    # sample add up, which the expected 4πc / (V fs) per sample leaves out), or at that expectation when none did
    win = int(TAIL_MATCH_S * sample_rate)
    decay = 3 * math.log(10) / rt60  # amplitude: 60 dB in rt60 seconds
    level = float(np.mean(rir[start - win:start] ** 2)) * math.exp(2 * decay * (start - win / 2) / sample_rate)
    level = level or 4 * math.pi * SOUND_SPEED / (volume * sample_rate)
    t = np.arange(start, length) / sample_rate
    rir[start:] = rng.standard_normal(length - start) * math.sqrt(level) * np.exp(-decay * t)
    direct = int(np.rint(d0 / SOUND_SPEED * sample_rate))
    return rir * d0, direct  # the direct path's gain is 1 / d0


def random_rir(rng: random.Random, rt60_range, size_range) -> tuple[np.ndarray, int]:
    """`room_impulse_response` of a random room (length and width in `size_range` metres, height 2.4-4 m, RT60
    in `rt60_range` s) with the source and microphone at random places at least 0.5 m from the walls and each
    other; every draw comes from `rng`."""
    room = [rng.uniform(*size_range), rng.uniform(*size_range), rng.uniform(2.4, 4.0)]
    rt60 = rng.uniform(*rt60_range)

    def place():
        return np.array([rng.uniform(0.5, d - 0.5) for d in room])

    mic, source = place(), place()
    for _ in range(100):
        if np.linalg.norm(source - mic) >= 0.5:
            break
        source = place()
    return room_impulse_response(room, source, mic, rt60, np.random.default_rng(rng.getrandbits(63)))


def reverberate(wav: torch.Tensor, rir: np.ndarray, direct: int) -> torch.Tensor:
    """`wav` (N,) convolved with an impulse response, cut to N samples starting at the direct-path tap, so that
    the output stays aligned with the input (and with its transcript's timing)."""
    full = AF.fftconvolve(wav, torch.from_numpy(rir.astype(np.float32)))
    return full[direct:direct + wav.numel()].contiguous()


PITCH_FFT = 512  # 32 ms at 16 kHz: harmonics of voices down to about 60 Hz are resolved
PITCH_HOP = 128
ENVELOPE_MS = 1.5  # cepstral lifter: quefrencies below 1.5 ms are the envelope (pitch periods are 2.5-12 ms)
ENVELOPE_MAX_GAIN_DB = 20.0  # the formant correction changes no bin by more than this


_PITCH_WINDOW = torch.hann_window(PITCH_FFT)  # shared by the five transforms of every pitch_shift call


def _stft(wav: torch.Tensor) -> torch.Tensor:
    return torch.stft(wav, PITCH_FFT, PITCH_HOP, window=_PITCH_WINDOW, return_complex=True)


def _istft(spec: torch.Tensor, length: int) -> torch.Tensor:
    return torch.istft(spec, PITCH_FFT, PITCH_HOP, window=_PITCH_WINDOW, length=length)


@functools.lru_cache(maxsize=256)
def _resampler(source_rate: int) -> torchaudio.transforms.Resample:
    """source_rate → 16 kHz, with its filter computed once (building it costs more than applying it)."""
    return torchaudio.transforms.Resample(source_rate, SAMPLE_RATE)


def log_envelope(spec: torch.Tensor) -> torch.Tensor:
    """Smooth log-magnitude envelope (F, T) of a complex spectrogram (F, T) from a `PITCH_FFT`-point STFT:
    the real cepstrum of each frame with every quefrency above `ENVELOPE_MS` removed (what is left is the
    vocal tract's resonances without the harmonics of the voice's pitch)."""
    cep = torch.fft.irfft(torch.log(spec.abs() + 1e-7), n=PITCH_FFT, dim=0)
    keep = int(SAMPLE_RATE * ENVELOPE_MS / 1000)
    cep[keep + 1:PITCH_FFT - keep] = 0
    return torch.fft.rfft(cep, dim=0).real


def pitch_shift(wav: torch.Tensor, semitones: float) -> torch.Tensor:
    """`wav` (N,) with its pitch moved by `semitones` and its length and formants kept (a higher or lower voice
    from the same vocal tract, unlike `speed_perturb` and `freq_warp`, which move both together).

    Resampling raises every frequency by the pitch ratio (rounded to a 100 Hz step of the source rate, which
    keeps the resampling filter short) and shortens the signal; a phase vocoder stretches it back to N samples;
    then each frame's spectral envelope (`log_envelope`) is put back to the input's, which returns the formants
    to where they were and leaves the harmonics moved. The output has the input's mean power."""
    n = wav.numel()
    if semitones == 0 or n < 2 * PITCH_FFT:  # under 64 ms: too short to analyse (a shifted copy is half as long)
        return wav
    source_rate = int(round(SAMPLE_RATE * 2 ** (semitones / 12) / 100)) * 100
    if source_rate == SAMPLE_RATE:
        return wav
    fast = _stft(_resampler(source_rate)(wav))  # every frequency x ratio, duration / ratio
    advance = torch.linspace(0, math.pi * PITCH_HOP, fast.shape[0])[:, None]
    shifted = _istft(AF.phase_vocoder(fast, SAMPLE_RATE / source_rate, advance), n)
    spec = _stft(shifted)
    limit = ENVELOPE_MAX_GAIN_DB / 20 * math.log(10)
    gain = (log_envelope(_stft(wav)) - log_envelope(spec)).clamp(-limit, limit).exp()
    out = _istft(spec * gain, n)
    p_in, p_out = wav.double().pow(2).mean(), out.double().pow(2).mean()
    return (out * torch.sqrt(p_in / p_out)).float() if p_out > 0 else out  # as loud as the input


TELEPHONE_RATE = 8000
# a steep low-pass for the telephone band (torchaudio's default filter lets through energy above 4 kHz, about
# -20 dB of white noise's; this one < -45 dB): cut-off 0.94 x 4 kHz
_BAND = {"lowpass_filter_width": 16, "rolloff": 0.94, "resampling_method": "sinc_interp_kaiser", "beta": 8.0}
CODEC_LEVELS = (0.8, 0.99)  # soundfile compression levels drawn for a codec: Opus about 65 down to 16 kbit/s
_CODEC_FORMATS = {"opus": ("OGG", "OPUS"), "mp3": ("MP3", "MPEG_LAYER_III")}


def codec_round_trip(wav: torch.Tensor, codec: str, sample_rate: int = SAMPLE_RATE, level: float = 0.9) -> torch.Tensor:
    """`wav` (N,) encoded with a lossy codec (`opus` or `mp3`, at soundfile's compression `level` 0..1) and
    decoded again, in memory; the same length (libsndfile removes the codecs' start-up delay)."""
    import soundfile as sf

    fmt, subtype = _CODEC_FORMATS[codec]
    buf = io.BytesIO()
    sf.write(buf, np.clip(wav.numpy(), -1.0, 1.0), sample_rate, format=fmt, subtype=subtype, compression_level=level)
    buf.seek(0)
    out = torch.from_numpy(sf.read(buf, dtype="float32")[0])
    n = wav.numel()
    return out[:n] if out.numel() >= n else torch.nn.functional.pad(out, (0, n - out.numel()))


def telephone(wav: torch.Tensor, band_limit: bool, codec: str = "", level: float = 0.9) -> torch.Tensor:
    """A transmission channel for `wav` (N,) at 16 kHz: with `band_limit`, resampled to 8 kHz (nothing above
    4 kHz survives) and back; with a `codec`, a lossy round trip (at 8 kHz when band-limited). Same length."""
    x = AF.resample(wav, SAMPLE_RATE, TELEPHONE_RATE, **_BAND) if band_limit else wav
    if codec:
        x = codec_round_trip(x, codec, TELEPHONE_RATE if band_limit else SAMPLE_RATE, level)
    if band_limit:
        x = AF.resample(x, TELEPHONE_RATE, SAMPLE_RATE, **_BAND)[:wav.numel()]
    return x


def crop_edges(feats: torch.Tensor, start: float, end: float) -> torch.Tensor:
    """Features (T, F) without their first `start` and last `end` fraction of frames (each under 0.5; at least
    one frame is kept): the word of a recording that begins or ends mid-sound."""
    t = feats.shape[0]
    lo, hi = int(t * start), t - int(t * end)
    return feats[lo:hi] if hi > lo else feats[lo:lo + 1]


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


def save_cmvn(mean: torch.Tensor, std: torch.Tensor, path, frames: int = 0) -> None:
    """Statistics as JSON (readable, diffable): {"n_mels", "frames", "mean", "std"}; written atomically."""
    import json

    from asr.fileio import atomic_path

    payload = {"n_mels": int(mean.numel()), "frames": int(frames), "mean": mean.tolist(), "std": std.tolist()}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(payload) + "\n")


def load_cmvn(path, n_mels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Read statistics written by `save_cmvn`; the channel count must match the feature config."""
    import json
    from pathlib import Path

    from asr.config import ConfigError

    path = Path(path)
    try:
        obj = json.loads(path.read_text())
        mean = torch.tensor(obj["mean"], dtype=torch.float32)
        std = torch.tensor(obj["std"], dtype=torch.float32)
    except FileNotFoundError:
        raise ConfigError(f"{path}: normalisation statistics not found (make them with `asr stats`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a statistics file written by `asr stats` ({exc})") from None
    if mean.shape != (n_mels,) or std.shape != (n_mels,) or not bool((std > 0).all()):
        raise ConfigError(f"{path}: statistics are for {mean.numel()} channels, the config has {n_mels} "
                          "(or a standard deviation is not positive)")
    return mean, std


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
