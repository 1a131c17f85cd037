"""Dataset over a manifest, length-bucketed batches bounded by utterances and frames, padded collate."""

from __future__ import annotations

import hashlib
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset, Sampler

from asr.audio import load_audio
from asr.config import FeatureConfig
from asr.features import (
    CODEC_LEVELS,
    STD_FLOOR,
    Cmvn,
    LogMel,
    add_background,
    add_noise,
    apply_cmvn,
    crop_edges,
    freq_warp,
    pitch_shift,
    random_rir,
    reverberate,
    spec_augment,
    speed_perturb,
    telephone,
    trim_silence,
    utterance_mean_norm,
)
from asr.manifest import ManifestError, Utterance, read_manifest


@dataclass
class Batch:
    feats: torch.Tensor  # (B, T, F), zero-padded
    feat_lens: torch.Tensor  # (B,) frames
    targets: torch.Tensor  # (B, S), zero-padded token ids
    target_lens: torch.Tensor  # (B,)
    ids: list[str]


def read_noise_clips(path) -> list[str]:
    """The audio paths of a noise manifest (`features.background_noise`); a missing manifest or clip is a
    ManifestError naming it."""
    clips = [u.audio for u in read_manifest(path)]
    missing = next((c for c in clips if not Path(c).is_file()), None)
    if missing is not None:
        raise ManifestError(f"{path}: noise clip {missing} not found")
    return clips


class SpeechDataset(Dataset):
    """Items are (normalised features (T, F), token ids); augmentation only when `train` is true.

    With waveform corruption on (`FeatureConfig.waveform_augmentation`, training only) the cache holds each
    utterance's decoded waveform at every training speed instead of its features, and log-mel features are
    computed per item after the corruption."""

    def __init__(self, utts: list[Utterance], tokenizer, feat_cfg: FeatureConfig, *,
                 train: bool = False, cache: bool = True, store=None):
        self.utts = utts
        self.store = store  # a FeatureCache (asr.featcache): features read from disk instead of computed
        self.tokenizer = tokenizer
        self.cfg = feat_cfg
        self.train = train
        self.cache = cache
        self.logmel = LogMel(feat_cfg)
        self.mean: torch.Tensor | None = None
        self.std: torch.Tensor | None = None
        self.warp = 1.0  # evaluation only: `freq_warp` factor for every item (test-time warps, asr decode --warps)
        self._feats: dict[tuple[int, float], torch.Tensor] = {}
        self._speaker_stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        self._by_speaker: dict[str, list[int]] = defaultdict(list)  # utterance indices, for speaker_mean_norm
        for j, utt in enumerate(utts if feat_cfg.speaker_mean_norm else []):
            self._by_speaker[utt.speaker].append(j)
        self.waveforms = train and feat_cfg.waveform_augmentation and store is None
        self._waves: dict[tuple[int, float], torch.Tensor] = {}
        self.noise_clips = read_noise_clips(feat_cfg.background_noise) if train and feat_cfg.background_noise else []
        self._noise: dict[int, torch.Tensor] = {}
        self._tokens = ([torch.tensor(tokenizer.encode(u.text), dtype=torch.long) for u in utts]
                        if tokenizer is not None else [torch.zeros(0, dtype=torch.long)] * len(utts))

    def __len__(self) -> int:
        return len(self.utts)

    def raw_waveform(self, i: int, speed: float = 1.0) -> torch.Tensor:
        """Decoded, trimmed waveform (N,) of utterance i at a given speed, cached (every training speed) if
        enabled."""
        key = (i, speed)
        if key in self._waves:
            return self._waves[key]
        wav = trim_silence(torch.from_numpy(load_audio(self.utts[i].audio)), self.cfg.trim_db)
        if not self.cache:
            return speed_perturb(wav, speed)
        for s in set(self.cfg.speed_perturb) | {speed}:
            self._waves[(i, s)] = speed_perturb(wav, s)
        return self._waves[key]

    def noise_clip(self, k: int) -> torch.Tensor:
        """Noise clip k of `features.background_noise` (N,), cached if enabled."""
        if k in self._noise:
            return self._noise[k]
        wav = torch.from_numpy(load_audio(self.noise_clips[k]))
        if self.cache:
            self._noise[k] = wav
        return wav

    def corrupt(self, wav: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """The waveform-domain corruptions that `rng` draws for one training item, in the order sound meets
        them: the speaker's pitch, the room's reverberation, background noise at the microphone, then the
        transmission channel."""
        cfg = self.cfg
        with torch.no_grad():
            if cfg.pitch_prob > 0 and rng.random() < cfg.pitch_prob:
                wav = pitch_shift(wav, rng.uniform(*cfg.pitch_semitones))
            if cfg.reverb_prob > 0 and rng.random() < cfg.reverb_prob:
                wav = reverberate(wav, *random_rir(rng, cfg.reverb_rt60, cfg.reverb_room))
            if self.noise_clips and rng.random() < cfg.background_prob:
                noise = self.noise_clip(rng.randrange(len(self.noise_clips)))
                wav = add_background(wav, noise, rng.uniform(*cfg.background_snr), rng.randrange(noise.numel()))
            band = cfg.telephone_prob > 0 and rng.random() < cfg.telephone_prob
            codec = rng.choice(cfg.codec_list) if cfg.codec_prob > 0 and rng.random() < cfg.codec_prob else ""
            if band or codec:
                wav = telephone(wav, band, codec, rng.uniform(*CODEC_LEVELS) if codec else 0.0)
        return wav

    def raw_features(self, i: int, speed: float = 1.0) -> torch.Tensor:
        """Un-normalised log-mel features (T, F) of utterance i at a given speed, cached if enabled."""
        key = (i, speed)
        if self.store is not None:
            return self.store.get(self.utts[i].id, speed)
        if self.waveforms:
            with torch.no_grad():
                return self.logmel(self.raw_waveform(i, speed))
        if key in self._feats:
            return self._feats[key]
        wav = trim_silence(torch.from_numpy(load_audio(self.utts[i].audio)), self.cfg.trim_db)
        if not self.cache:
            with torch.no_grad():
                return self.logmel(speed_perturb(wav, speed))
        # decode once, then cache every speed that training will ask for
        speeds = set(self.cfg.speed_perturb) if self.train else set()
        with torch.no_grad():
            for s in speeds | {speed}:
                self._feats[(i, s)] = self.logmel(speed_perturb(wav, s))
        return self._feats[key]

    def speaker_stats(self, speaker: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation per channel (F,), (F,) of the un-augmented features of every utterance
        of `speaker` in this set, weighted by frames; computed once per speaker."""
        if speaker not in self._speaker_stats:
            acc = Cmvn(self.cfg.n_mels)
            for j in self._by_speaker[speaker]:
                acc.add(self.raw_features(j))
            mean, std = acc.stats()
            self._speaker_stats[speaker] = (mean, std.clamp_min(STD_FLOOR))
        return self._speaker_stats[speaker]

    def mean_norm(self, i: int, feats: torch.Tensor) -> torch.Tensor:
        """`features.utterance_mean_norm` or `speaker_mean_norm` (and `speaker_var_norm`) applied to features
        (T, F) of utterance i."""
        if self.cfg.speaker_mean_norm:
            mean, std = self.speaker_stats(self.utts[i].speaker)
            return (feats - mean) / std if self.cfg.speaker_var_norm else feats - mean
        return utterance_mean_norm(feats, self.cfg.utterance_mean_norm)

    def accumulate_cmvn(self, progress: bool = False) -> Cmvn:
        """Global CMVN accumulator over every utterance's un-augmented features."""
        from tqdm import tqdm

        acc = Cmvn(self.cfg.n_mels)
        for i in tqdm(range(len(self)), desc="features+CMVN", unit="utt", disable=not progress, leave=False):
            acc.add(self.mean_norm(i, self.raw_features(i)))
        return acc

    def compute_cmvn(self, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return self.accumulate_cmvn(progress).stats()

    def set_cmvn(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.mean, self.std = mean, std

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Item `key`: an index, or in training (index, seed), where every random draw of the item's
        augmentation (speed, waveform corruption, edge crop, noise, warp, SpecAugment) comes from `seed` alone: the same
        item is the same whichever process prepares it and whenever, and no global random state is used or
        changed."""
        i, seed = key if isinstance(key, tuple) else (key, None)
        if not self.train:
            feats = freq_warp(self.mean_norm(i, self.raw_features(i)), self.warp)
            return (apply_cmvn(feats, self.mean, self.std) if self.mean is not None else feats), self._tokens[i]
        rng = random.Random(seed)
        speed = rng.choice(self.cfg.speed_perturb) if self.cfg.speed_perturb else 1.0
        if self.waveforms:
            with torch.no_grad():
                feats = self.logmel(self.corrupt(self.raw_waveform(i, speed), rng))
        else:
            feats = self.raw_features(i, speed)
        if self.cfg.edge_crop > 0 and rng.random() < self.cfg.edge_crop_prob:
            feats = crop_edges(feats, rng.uniform(0, self.cfg.edge_crop), rng.uniform(0, self.cfg.edge_crop))
        if self.cfg.noise_snr and rng.random() < self.cfg.noise_prob:
            feats = add_noise(feats, rng.uniform(*self.cfg.noise_snr), rng.uniform(-10, 10))
        feats = self.mean_norm(i, feats)
        if self.cfg.freq_warp > 0:
            feats = freq_warp(feats, rng.uniform(1 - self.cfg.freq_warp, 1 + self.cfg.freq_warp))
        if self.mean is not None:
            feats = apply_cmvn(feats, self.mean, self.std)
        with torch.random.fork_rng(devices=[]):  # SpecAugment draws from torch's generator: seed a private one
            torch.manual_seed(rng.getrandbits(63))
            feats = spec_augment(feats, self.cfg)
        return feats, self._tokens[i]

    def frames(self, i: int) -> int:
        """Approximate frame count from the manifest duration (for batching)."""
        return frame_count(self.utts[i].duration, self.cfg.hop_ms)


def frame_count(duration: float, hop_ms: float) -> int:
    """Feature frames of `duration` seconds, as batching counts them."""
    return int(duration * 1000 / hop_ms) + 1


def make_batches(lengths: list[int], batch_size: int, max_frames: int, *, shuffle: bool,
                 seed: int = 0, shards: int = 1) -> list[list[int]]:
    """Group indices of similar length into batches (indices length-sorted inside each batch).

    With `shards` = 1 a batch holds at most `batch_size` items and `max_frames` padded frames (longest *
    count). With `shards` = N (data-parallel ranks) the batch is global: each of its N round-robin shards
    (`asr.distributed.shard`) respects both bounds. Batch order is shuffled (seeded) when asked; unshuffled
    it goes from the shortest batch to the longest (SortaGrad)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, current, longest = [], [], 0
    for i in order:
        new_longest = max(longest, lengths[i])
        per_shard = -(-(len(current) + 1) // shards)
        if current and (per_shard > batch_size or new_longest * per_shard > max_frames):
            batches.append(current)
            current, new_longest = [], lengths[i]
        current.append(i)
        longest = new_longest
    if current:
        batches.append(current)
    if shuffle:
        random.Random(seed).shuffle(batches)
    return batches


def epoch_batches(lengths: list[int], batch_size: int, max_frames: int, epoch: int, *, seed: int = 0,
                  sortagrad: bool = True, shards: int = 1) -> list[list[int]]:
    """The global batches of one training epoch: shortest first in epoch 1 when `sortagrad` (SortaGrad),
    shuffled with a seed that depends on the epoch otherwise. Identical on every rank."""
    return make_batches(lengths, batch_size, max_frames, shuffle=not (sortagrad and epoch == 1),
                        seed=seed + epoch, shards=shards)


def collate(items: list[tuple[torch.Tensor, torch.Tensor]], ids: list[str]) -> Batch:
    feats = [f for f, _ in items]
    toks = [t for _, t in items]
    feat_lens = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
    target_lens = torch.tensor([t.shape[0] for t in toks], dtype=torch.long)
    padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
    targets = torch.nn.utils.rnn.pad_sequence(toks, batch_first=True) if toks else torch.zeros(0, 0)
    return Batch(padded, feat_lens, targets.long(), target_lens, ids)


def item_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of utterance `index` in `epoch` of a run seeded with `seed`."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class EpochSampler(Sampler):
    """The batch sampler of a training DataLoader: this rank's shard of each global batch of the epoch, from
    batch `start` on, as (index, augmentation seed) keys. An empty shard (fewer utterances than ranks in
    an epoch's last batch) is replaced by the batch's first utterance, which the training loop weighs zero.
    `set_epoch` moves it on; a loader with persistent workers keeps using the same sampler."""

    def __init__(self, rank: int = 0, world: int = 1, seed: int = 0):
        self.rank, self.world, self.seed = rank, world, seed
        self.batches: list[list[int]] = []
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int, batches: list[list[int]], start: int = 0) -> None:
        self.epoch, self.batches, self.start = epoch, batches, start

    def shard(self, b: int) -> tuple[list[int], float]:
        """(this rank's indices of global batch b, weight 1.0; or the zero-weight stand-in)."""
        idx = self.batches[b][self.rank::self.world]
        return (idx, 1.0) if idx else (self.batches[b][:1], 0.0)

    def __iter__(self):
        for b in range(self.start, len(self.batches)):
            yield [(i, item_seed(self.seed, self.epoch, i)) for i in self.shard(b)[0]]

    def __len__(self) -> int:
        return len(self.batches) - self.start


def collate_items(items: list[tuple[torch.Tensor, torch.Tensor]]) -> Batch:
    """`collate` for a DataLoader (no ids)."""
    return collate(items, [])


def training_loader(dataset: SpeechDataset, sampler: EpochSampler, workers: int, pin_memory: bool):
    """A DataLoader over `dataset` batched by `sampler`: `workers` processes prepare batches ahead of the
    training step (4 batches each), kept alive across epochs; 0 prepares them in the training process."""
    from torch.utils.data import DataLoader

    extra = {"persistent_workers": True, "prefetch_factor": 4} if workers > 0 else {}
    # a generator of its own: the loader draws its workers' base seed from it, not from torch's global one,
    # so the training process's random stream (dropout) is the same with any number of workers
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_items,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(0), **extra)


def iterate_batches(dataset: SpeechDataset, batches: list[list[int]]):
    """Yield collated Batches in the given order (single process; features cached in memory)."""
    for idx in batches:
        yield collate([dataset[i] for i in idx], [dataset.utts[i].id for i in idx])


def compute_stats_file(manifest, feat_cfg: FeatureConfig, out, progress: bool = True) -> int:
    """Global CMVN statistics of a manifest's features (no augmentation) written to `out`; returns frames."""
    from asr.features import save_cmvn
    from asr.manifest import read_manifest

    ds = SpeechDataset(read_manifest(manifest), None, feat_cfg, train=False, cache=False)
    acc = ds.accumulate_cmvn(progress)
    mean, std = acc.stats()
    save_cmvn(mean, std, out, acc.count)
    return acc.count
