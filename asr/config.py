"""Typed, frozen configuration: loaded from YAML, overridden with `section.key=value`, validated."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from asr.fileio import atomic_path


class ConfigError(ValueError):
    """An invalid configuration value, an unknown key or an unreadable config file."""


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ConfigError(msg)


@dataclass(frozen=True)
class DataConfig:
    train: str = ""  # training manifest (JSON Lines)
    dev: str = ""  # dev manifest, decoded with greedy WER after each epoch
    max_duration: float = 30.0  # seconds; longer training utterances are skipped with a warning
    cache_features: bool = True  # keep computed features in memory (small corpora)
    cmvn: str = ""  # normalisation statistics from `asr stats`; empty = computed from data.train at start
    feature_cache: str = ""  # folder from `asr features` holding data.train's features (memory-mapped shards)
    num_workers: int = -1  # DataLoader worker processes preparing training batches; -1 = 4 on CUDA, 0 on CPU

    def __post_init__(self):
        _check(self.max_duration > 0, "data.max_duration must be positive")
        _check(self.num_workers >= -1, "data.num_workers must be >= 0, or -1 for the default")


CODECS = ("opus", "mp3")  # lossy codecs of `features.codecs` (soundfile: Opus in OGG, MPEG layer III)


@dataclass(frozen=True)
class FeatureConfig:
    n_mels: int = 80  # log-mel filterbank channels
    win_ms: float = 25.0  # analysis window
    hop_ms: float = 10.0  # frame shift
    f_min: float = 0.0  # lowest mel filter edge (Hz)
    f_max: float = 0.0  # highest mel filter edge (Hz); 0 = Nyquist. 4000 for band-limited (8 kHz) recordings
    trim_db: float = 0.0  # cut leading/trailing audio quieter than the loudest 10 ms by this many dB (0 = off)
    utterance_mean_norm: bool = False  # subtract each utterance's own mean per channel (before global CMVN)
    # subtract the mean of all of the speaker's utterances in the set per channel (before global CMVN): the
    # speaker's voice and microphone cancel out, the word's own spectrum stays. A lone file (transcribe,
    # serve) is its own speaker. Exclusive with utterance_mean_norm.
    speaker_mean_norm: bool = False
    # with speaker_mean_norm: also divide by the speaker's standard deviation per channel, so a noisy
    # speaker's compressed dynamic range is stretched like the others' (a lone file: its own)
    speaker_var_norm: bool = False
    speed_perturb: tuple[float, ...] = (0.9, 1.0, 1.1)  # training only; () or (1.0,) disables
    freq_warp: float = 0.0  # training only: mel axis stretched by a factor in [1 - w, 1 + w] (VTLP-like)
    # training only: cut up to this fraction of the (trimmed) frames off each end of an utterance, as recordings
    # that start or stop mid-word do (two FSDD speakers' SIX files start after the /s/); 0 = off
    edge_crop: float = 0.0
    edge_crop_prob: float = 0.5  # fraction of training utterances cropped (when edge_crop is set)
    noise_snr: tuple[float, ...] = ()  # training only: [low, high] dB; adds noise at a random SNR in the range
    noise_prob: float = 0.5  # fraction of training utterances that get noise (when noise_snr is set)
    # waveform-domain corruption, training only (any of them on: waveforms are cached instead of features)
    background_noise: str = ""  # manifest of noise clips (JSON Lines with `audio`); empty = off
    background_snr: tuple[float, ...] = (5.0, 20.0)  # [low, high] dB against the utterance's mean power
    background_prob: float = 0.5  # fraction of training utterances that get a noise clip
    pitch_prob: float = 0.0  # fraction whose pitch is moved, formants and length kept (0 = off)
    pitch_semitones: tuple[float, ...] = (-3.0, 3.0)  # [low, high] semitones of the pitch shift
    reverb_prob: float = 0.0  # fraction reverberated by a simulated shoebox room (0 = off)
    reverb_rt60: tuple[float, ...] = (0.2, 0.8)  # [low, high] seconds: the room's reverberation time
    reverb_room: tuple[float, ...] = (3.0, 10.0)  # [low, high] metres: room length and width (height 2.4-4 m)
    telephone_prob: float = 0.0  # fraction band-limited to a telephone channel (8 kHz and back; 0 = off)
    codec_prob: float = 0.0  # fraction sent through a lossy codec round trip (0 = off)
    codecs: str = "opus,mp3"  # comma-separated codecs drawn from: opus (Opus in OGG), mp3
    freq_masks: int = 2  # SpecAugment, training only
    freq_mask_width: int = 15  # bins
    time_masks: int = 2
    time_mask_width: int = 20  # frames (before subsampling)
    time_mask_ratio: float = 0.1  # at most this fraction of an utterance per time mask

    def __post_init__(self):
        _check(self.n_mels > 0, "features.n_mels must be positive")
        _check(0 < self.hop_ms <= self.win_ms, "features.hop_ms must be in (0, win_ms]")
        _check(self.trim_db >= 0, "features.trim_db must be >= 0 (0 disables trimming)")
        _check(not (self.utterance_mean_norm and self.speaker_mean_norm),
               "features.utterance_mean_norm and features.speaker_mean_norm exclude each other")
        _check(self.speaker_mean_norm or not self.speaker_var_norm,
               "features.speaker_var_norm needs features.speaker_mean_norm")
        _check(0 <= self.f_min and (self.f_max == 0 or self.f_min < self.f_max <= 8000),
               "features.f_min/f_max must satisfy 0 <= f_min < f_max <= 8000 (f_max 0 = 8000)")
        _check(all(0.5 <= s <= 2.0 for s in self.speed_perturb), "features.speed_perturb factors must lie in [0.5, 2]")
        _check(0.0 <= self.freq_warp < 0.5, "features.freq_warp must be in [0, 0.5)")
        _check(len(self.noise_snr) in (0, 2) and (not self.noise_snr or self.noise_snr[0] <= self.noise_snr[1]),
               "features.noise_snr must be [] or [low_db, high_db] with low <= high")
        _check(0.0 <= self.noise_prob <= 1.0, "features.noise_prob must be in [0, 1]")
        _check(0.0 <= self.edge_crop < 0.5, "features.edge_crop must be in [0, 0.5)")
        _check(0.0 <= self.edge_crop_prob <= 1.0, "features.edge_crop_prob must be in [0, 1]")
        _check(len(self.background_snr) == 2 and self.background_snr[0] <= self.background_snr[1],
               "features.background_snr must be [low_db, high_db] with low <= high")
        _check(len(self.reverb_rt60) == 2 and 0.05 <= self.reverb_rt60[0] <= self.reverb_rt60[1] <= 3.0,
               "features.reverb_rt60 must be [low_s, high_s] with 0.05 <= low <= high <= 3")
        _check(len(self.reverb_room) == 2 and 1.5 <= self.reverb_room[0] <= self.reverb_room[1] <= 50.0,
               "features.reverb_room must be [low_m, high_m] with 1.5 <= low <= high <= 50")
        _check(len(self.pitch_semitones) == 2 and -12 <= self.pitch_semitones[0] <= self.pitch_semitones[1] <= 12,
               "features.pitch_semitones must be [low, high] with -12 <= low <= high <= 12")
        for key in ("background_prob", "pitch_prob", "reverb_prob", "telephone_prob", "codec_prob"):
            _check(0.0 <= getattr(self, key) <= 1.0, f"features.{key} must be in [0, 1]")
        unknown = [c for c in self.codec_list if c not in CODECS]
        _check(not unknown and (self.codec_list or self.codec_prob == 0),
               f"features.codecs must name one or more of {', '.join(CODECS)} (comma-separated), got {self.codecs!r}")
        _check(min(self.freq_masks, self.time_masks, self.freq_mask_width, self.time_mask_width) >= 0,
               "SpecAugment counts and widths must be >= 0")
        _check(0.0 <= self.time_mask_ratio <= 1.0, "features.time_mask_ratio must be in [0, 1]")
        if empty_mel_filters(self.n_mels, self.f_min, self.f_max or 8000.0, self.win_ms):
            fit = max((n for n in range(1, self.n_mels) if not empty_mel_filters(n, self.f_min, self.f_max or 8000.0,
                                                                                  self.win_ms)), default=0)
            raise ConfigError(f"features.n_mels={self.n_mels} is too many for {self.f_min:g}-{self.f_max or 8000:g} Hz "
                              f"with a {self.win_ms:g} ms window: some mel filters would cover no frequency bin "
                              f"(at most {fit} fit)")
        _check(self.freq_mask_width < self.n_mels, "features.freq_mask_width must be smaller than features.n_mels")

    @property
    def codec_list(self) -> list[str]:
        return [c.strip().lower() for c in self.codecs.split(",") if c.strip()]

    @property
    def waveform_augmentation(self) -> bool:
        """Whether any waveform-domain augmentation is on (pitch, background noise, reverberation, telephone,
        codec)."""
        return bool(self.background_noise) or max(self.pitch_prob, self.reverb_prob, self.telephone_prob,
                                                  self.codec_prob) > 0


def empty_mel_filters(n_mels: int, f_min: float, f_max: float, win_ms: float, sample_rate: int = 16000) -> list[int]:
    """The triangular mel filters (HTK mel scale, as torchaudio's MelSpectrogram builds them) whose band holds
    no FFT bin of a `win_ms` window: they would always output zero (and torchaudio warns on every use)."""
    n_fft = int(round(sample_rate * win_ms / 1000))
    step = sample_rate / n_fft

    def mel(f):
        return 2595.0 * math.log10(1.0 + f / 700.0)

    lo, hi = mel(f_min), mel(f_max)
    edges = [700.0 * (10 ** ((lo + (hi - lo) * i / (n_mels + 1)) / 2595.0) - 1.0) for i in range(n_mels + 2)]
    return [i for i in range(n_mels) if math.floor(edges[i + 2] / step - 1e-9) * step <= edges[i]]


@dataclass(frozen=True)
class TokenizerConfig:
    kind: str = "char"  # "char" (letters, apostrophe, space) or "bpe" (SentencePiece)
    vocab_size: int = 256  # BPE only
    double_letters: bool = False  # char only: "LL", "OO", ... are single symbols (no blank needed between)
    file: str = ""  # tokenizer from `asr tokenizer`; empty = built from data.train at start

    def __post_init__(self):
        _check(self.kind in ("char", "bpe"), f"tokenizer.kind must be 'char' or 'bpe', got {self.kind!r}")
        _check(self.vocab_size >= 8, "tokenizer.vocab_size must be >= 8")


@dataclass(frozen=True)
class ModelConfig:
    subsampling: str = "conv"  # "conv" (2-D strided convolutions) or "stack" (frame stacking)
    subsampling_factor: int = 4  # 2, 3, 4 or 6
    conv_channels: int = 32
    rnn_type: str = "gru"  # "lstm", "gru", "rnn_tanh", "rnn_relu"
    num_layers: int = 3
    hidden_size: int = 256  # per direction
    bidirectional: bool = True
    dropout: float = 0.1  # on the input of every recurrent layer and of the head
    layer_norm: bool = False  # LayerNorm on the input of every recurrent layer
    tbptt_chunk: int = 0  # K: frames (after subsampling) per chunk; 0 = full-utterance BPTT
    right_context: int = 0  # R: future frames the backward direction sees past each chunk (bidirectional)

    def __post_init__(self):
        _check(self.subsampling in ("conv", "stack"),
               f"model.subsampling must be 'conv' or 'stack', got {self.subsampling!r}")
        _check(self.subsampling_factor in (2, 3, 4, 6), "model.subsampling_factor must be 2, 3, 4 or 6")
        _check(self.conv_channels >= 1, "model.conv_channels must be >= 1")
        _check(self.rnn_type in ("lstm", "gru", "rnn_tanh", "rnn_relu"),
               f"model.rnn_type must be lstm, gru, rnn_tanh or rnn_relu, got {self.rnn_type!r}")
        _check(self.num_layers >= 1 and self.hidden_size >= 1, "model.num_layers and model.hidden_size must be >= 1")
        _check(0.0 <= self.dropout < 1.0, "model.dropout must be in [0, 1)")
        _check(self.tbptt_chunk >= 0 and self.right_context >= 0, "model.tbptt_chunk and right_context must be >= 0")
        _check(self.right_context == 0 or (self.bidirectional and self.tbptt_chunk > 0),
               "model.right_context needs a bidirectional model with model.tbptt_chunk > 0")


@dataclass(frozen=True)
class TrainConfig:
    exp_dir: str = "exp/default"
    epochs: int = 20
    batch_size: int = 32  # utterances per batch (upper bound)
    max_batch_frames: int = 40000  # input frames per batch (upper bound)
    lr: float = 2e-3  # peak learning rate
    weight_decay: float = 1e-2
    warmup_steps: int = 200  # linear warm-up, then cosine decay to lr * final_lr_ratio
    final_lr_ratio: float = 0.02
    grad_clip: float = 5.0  # max gradient norm; 0 disables
    sortagrad: bool = True  # epoch 1 goes from the shortest batches to the longest
    seed: int = 0
    device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda"
    num_threads: int = 0  # torch CPU threads; 0 = torch default
    max_minutes: float = 0.0  # stop after this much training time (0 = no limit); runs differ in where they stop
    max_steps: int = 0  # stop after this many optimiser steps (0 = no limit); reproducible, unlike max_minutes
    precision: str = "fp32"  # "fp32", "bf16" (autocast) or "fp16" (autocast + gradient scaler, CUDA only)
    keep_checkpoints: int = 5  # epoch checkpoints kept in EXP/checkpoints for `asr average` (0 = none)
    checkpoint_every: int = 500  # steps between resume checkpoints (EXP/resume.pt, also written every epoch)
    log_every: int = 20  # steps between log lines and TensorBoard points
    tensorboard: bool = True  # TensorBoard scalars in EXP/tensorboard (and EXP/curves.png every epoch)

    def __post_init__(self):
        _check(self.epochs >= 1, "train.epochs must be >= 1")
        _check(self.batch_size >= 1 and self.max_batch_frames >= 1,
               "train.batch_size and max_batch_frames must be >= 1")
        _check(self.lr > 0, "train.lr must be positive")
        _check(self.weight_decay >= 0, "train.weight_decay must be >= 0")
        _check(self.warmup_steps >= 0, "train.warmup_steps must be >= 0")
        _check(0 <= self.final_lr_ratio <= 1, "train.final_lr_ratio must be in [0, 1]")
        _check(self.max_minutes >= 0 and self.max_steps >= 0, "train.max_minutes and train.max_steps must be >= 0")
        _check(self.num_threads >= 0, "train.num_threads must be >= 0 (0 = torch's default)")
        _check(bool(self.exp_dir.strip()), "train.exp_dir must not be empty")
        _check(self.grad_clip >= 0, "train.grad_clip must be >= 0")
        _check(self.keep_checkpoints >= 0, "train.keep_checkpoints must be >= 0")
        _check(self.checkpoint_every >= 0, "train.checkpoint_every must be >= 0 (0 = at epoch ends only)")
        _check(self.log_every >= 1, "train.log_every must be >= 1")
        _check(self.precision in ("fp32", "bf16", "fp16"),
               f"train.precision must be fp32, bf16 or fp16, got {self.precision!r}")
        _check(self.device in ("auto", "cpu", "cuda"), f"train.device must be auto, cpu or cuda, got {self.device!r}")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self):
        _check(not (self.data.feature_cache and self.features.waveform_augmentation),
               "data.feature_cache holds finished features, so waveform augmentation (features.pitch_prob, "
               "background_noise, reverb_prob, telephone_prob, codec_prob) cannot run on them: train without the "
               "feature cache, or turn those options off")


_SECTION_TYPES = {"data": DataConfig, "features": FeatureConfig, "tokenizer": TokenizerConfig,
                  "model": ModelConfig, "train": TrainConfig}


def _coerce(section: str, key: str, value: Any, default: Any) -> Any:
    """Convert a YAML or command-line value to the type of the field's default."""
    where = f"{section}.{key}"
    if isinstance(default, bool):
        if isinstance(value, str):
            low = value.lower()
            if low in ("true", "yes", "1"):
                return True
            if low in ("false", "no", "0"):
                return False
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if isinstance(default, tuple):
        if isinstance(value, str):
            value = yaml.safe_load(value) if value.strip() else []
        if value is None:
            value = []
        if not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return tuple(float(v) for v in value)
        except (TypeError, ValueError):
            raise ConfigError(f"{where}: expected a list of numbers, got {value!r}") from None
    if isinstance(default, (int, float)):
        kind = "a whole number" if isinstance(default, int) else "a number"
        if isinstance(value, bool) or value is None:  # YAML's true/false/null are not numbers
            raise ConfigError(f"{where}: expected {kind}, got {value!r}")
        try:
            number = float(value)
            if not math.isfinite(number) or (isinstance(default, int) and not number.is_integer()):
                raise ValueError
        except (TypeError, ValueError, OverflowError):
            raise ConfigError(f"{where}: expected {kind}, got {value!r}") from None
        return int(number) if isinstance(default, int) else number
    if value is None or isinstance(value, (dict, list, tuple, bool)):
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    return str(value)


def from_dict(raw: dict[str, Any]) -> Config:
    """Build a validated Config from nested dicts; unknown sections or keys are errors."""
    if not isinstance(raw, dict):
        raise ConfigError("config must be a mapping of sections (data, features, tokenizer, model, train)")
    sections = {}
    for name, cls in _SECTION_TYPES.items():
        values = raw.get(name) or {}
        if not isinstance(values, dict):
            raise ConfigError(f"config section {name!r} must be a mapping of keys to values, not "
                              f"{type(values).__name__}")
        defaults = cls()
        known = {f.name for f in dataclasses.fields(cls)}
        for key in values:
            if key not in known:
                raise ConfigError(f"unknown config key {name}.{key} (known: {', '.join(sorted(known))})")
        kwargs = {k: _coerce(name, k, v, getattr(defaults, k)) for k, v in values.items()}
        sections[name] = cls(**kwargs)
    for name in raw:
        if name not in _SECTION_TYPES:
            raise ConfigError(f"unknown config section {name!r} (known: {', '.join(_SECTION_TYPES)})")
    return Config(**sections)


def to_dict(cfg: Config) -> dict[str, Any]:
    """Plain nested dict (lists instead of tuples), suitable for YAML and checkpoints."""
    out = dataclasses.asdict(cfg)
    for section in out.values():
        for k, v in section.items():
            if isinstance(v, tuple):
                section[k] = list(v)
    return out


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings to a nested dict (values parsed as YAML scalars)."""
    for name, values in raw.items():
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"config section {name!r} must be a mapping of keys to values, not "
                              f"{type(values).__name__}")
    raw = {k: dict(v or {}) for k, v in raw.items()}
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        dotted, value = item.split("=", 1)
        section, key = dotted.split(".", 1)
        try:
            parsed = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            raise ConfigError(f"override {item!r}: the value is not valid YAML") from None
        raw.setdefault(section, {})[key] = parsed
    return raw


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML itself keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path: str | Path | None, overrides: list[str] = ()) -> Config:
    """Read a YAML config file (or start from defaults when path is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except IsADirectoryError:
            raise ConfigError(f"{path}: is a folder, not a config file") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start})") from None
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: config must be a mapping of sections")
    return from_dict(apply_overrides(raw, list(overrides)))


def save_config(cfg: Config, path: str | Path) -> None:
    """The resolved config as YAML, written atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))


def split_overrides(args: list[str]) -> tuple[list[str], list[str]]:
    """Command-line words → (`section.key=value` overrides, everything else), so that overrides may come
    after options (`asr train --config c.yaml --quiet model.hidden_size=64`)."""
    overrides = [a for a in args if "=" in a and not a.startswith("-")]
    return overrides, [a for a in args if a not in overrides]
