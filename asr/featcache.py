"""Precomputed feature cache: log-mel features of a manifest in memory-mapped shards, read by training.

Layout of a cache folder:
  index.json          feature settings, speeds, dtype, shard names, and per utterance and speed
                      [shard number, first row, rows]
  shard-00000.npy ... 2-D arrays (frames, n_mels), concatenated utterances, opened with mmap_mode="r"

What is stored is the un-normalised output of `SpeechDataset.raw_features` (silence trimmed, speed
perturbed, log-mel) for every speed training asks for; normalisation and the random augmentations still run
per step. Use it when decoding FLAC on the fly cannot keep the GPU fed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from asr.config import FeatureConfig
from asr.fileio import atomic_path
from asr.manifest import Utterance

INDEX = "index.json"
# the feature settings that decide the stored values; a cache made with other values is refused
KEYS = ("n_mels", "win_ms", "hop_ms", "f_min", "f_max", "trim_db")


class CacheError(ValueError):
    """A feature cache that is missing, damaged or made with other settings."""


def _speed_key(speed: float) -> str:
    return f"{float(speed):g}"


def write_cache(utts: list[Utterance], feat_cfg: FeatureConfig, out: str | Path, *, speeds=(1.0,),
                dtype: str = "float32", shard_mb: float = 256.0, progress: bool = True) -> dict:
    """Compute the features of `utts` at each speed and write them as shards + index to `out`.
    Returns a summary (utterances, frames, bytes, shards)."""
    from asr.data import SpeechDataset

    if dtype not in ("float32", "float16"):
        raise CacheError(f"dtype must be float32 or float16, got {dtype!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    speeds = sorted({float(s) for s in speeds} or {1.0})
    ds = SpeechDataset(utts, None, feat_cfg, train=False, cache=False)
    limit = max(1, int(shard_mb * 2**20))
    shards: list[str] = []
    index: dict[str, dict[str, list[int]]] = {}
    pending: list[np.ndarray] = []
    rows = size = total_frames = 0

    def flush():
        nonlocal pending, rows, size
        if not pending:
            return
        name = f"shard-{len(shards):05d}.npy"
        with atomic_path(out / name) as tmp, open(tmp, "wb") as f:
            np.save(f, np.concatenate(pending))
        shards.append(name)
        pending, rows, size = [], 0, 0

    for i, u in enumerate(tqdm(utts, desc="features", unit="utt", disable=not progress)):
        if u.id in index:
            raise CacheError(f"utterance id {u.id!r} appears twice in the manifest")
        index[u.id] = {}
        for s in speeds:
            feats = ds.raw_features(i, s).numpy().astype(dtype)
            index[u.id][_speed_key(s)] = [len(shards), rows, feats.shape[0]]
            pending.append(feats)
            rows += feats.shape[0]
            size += feats.nbytes
            total_frames += feats.shape[0]
        if size >= limit:
            flush()
    flush()
    meta = {"format": "asr-feature-cache", "version": 1, "features": {k: getattr(feat_cfg, k) for k in KEYS},
            "speeds": speeds, "dtype": dtype, "shards": shards, "utterances": index}
    with atomic_path(out / INDEX) as tmp:
        tmp.write_text(json.dumps(meta))
    nbytes = sum((out / s).stat().st_size for s in shards)
    return {"utterances": len(utts), "frames": total_frames, "bytes": nbytes, "shards": len(shards)}


class FeatureCache:
    """Read side of a cache folder; shards are memory-mapped on first use."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        path = self.folder / INDEX
        if not path.is_file():
            raise CacheError(f"{self.folder}: not a feature cache (no {INDEX}; make one with `asr features`)")
        try:
            meta = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise CacheError(f"{path}: damaged index ({exc})") from None
        if meta.get("format") != "asr-feature-cache":
            raise CacheError(f"{path}: not a feature cache index")
        self.meta = meta
        self.index = meta["utterances"]
        self._maps: dict[int, np.ndarray] = {}

    def check(self, feat_cfg: FeatureConfig, speeds, utts: list[Utterance]) -> None:
        """Refuse a cache made with other feature settings, or lacking an utterance or a speed."""
        made = self.meta["features"]
        diff = [f"{k}: cache {made.get(k)} vs config {getattr(feat_cfg, k)}" for k in KEYS
                if made.get(k) != getattr(feat_cfg, k)]
        if diff:
            raise CacheError(f"{self.folder}: made with other feature settings ({'; '.join(diff)}); rebuild it")
        have = set(self.meta["speeds"])
        missing_speeds = sorted({float(s) for s in speeds} - have)
        if missing_speeds:
            raise CacheError(f"{self.folder}: no features at speed(s) {missing_speeds} (cache has "
                             f"{sorted(have)}); rebuild it with the training config")
        missing = [u.id for u in utts if u.id not in self.index]
        if missing:
            raise CacheError(f"{self.folder}: {len(missing)} utterance(s) of the manifest are not in the cache "
                             f"(first: {missing[0]})")

    def _shard(self, n: int) -> np.ndarray:
        if n not in self._maps:
            path = self.folder / self.meta["shards"][n]
            try:
                self._maps[n] = np.load(path, mmap_mode="r")
            except (OSError, ValueError) as exc:
                raise CacheError(f"{path}: unreadable shard ({exc})") from None
        return self._maps[n]

    def get(self, utt_id: str, speed: float = 1.0) -> torch.Tensor:
        """Float32 features (T, n_mels) of one utterance at one speed."""
        try:
            shard, start, rows = self.index[utt_id][_speed_key(speed)]
        except KeyError:
            raise CacheError(f"{self.folder}: no features for {utt_id!r} at speed {speed:g}") from None
        return torch.from_numpy(np.array(self._shard(shard)[start:start + rows], dtype=np.float32))
