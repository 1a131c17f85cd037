"""Benchmark: loader throughput, FLAC → features: per process (one thread), on the fly vs cache; and the
training DataLoader (augmentation, normalisation, batching) with 0, 1 and 2 worker processes.

On the fly = what `SpeechDataset` does without a cache: read and decode the FLAC file, resample if needed,
trim silence, compute log-mel filterbanks. Cache = `asr features` shards read back through memory maps
(`data.feature_cache`). Audio: the demo corpus' utterances re-encoded as 16 kHz FLAC (like LibriSpeech),
plus the two real LibriSpeech utterances of ../shared/data when present.

Training DataLoader = `asr.data.training_loader` over a training `SpeechDataset` (features on the fly, no
in-memory cache, the default augmentation: speed perturbation and SpecAugment) for one epoch of the demo
config's batches, with nothing else running: the loader-bound throughput, what a fast GPU would see.

    python bench/loader.py [--utts 300] [--repeat 2] [--workers 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import soundfile as sf
import torch

REPO = Path(__file__).resolve().parents[1]


def flac_corpus(src: Path, out: Path, n: int) -> list:
    from asr.manifest import Utterance

    utts = []
    for path in sorted(src.rglob("*.ogg"))[:n]:
        data, sr = sf.read(path, dtype="float32")
        dest = out / (path.stem + ".flac")
        sf.write(dest, data, sr, format="FLAC", subtype="PCM_16")
        utts.append(Utterance(path.stem, str(dest), len(data) / sr, "s", "X"))
    shared = REPO.parent / "shared" / "data" / "librispeech-sample"
    for path in sorted(shared.rglob("*.flac")):
        info = sf.info(path)
        utts.append(Utterance(path.stem, str(path), info.frames / info.samplerate, "s", "X"))
    return utts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=REPO / "data" / "synth")
    p.add_argument("--utts", type=int, default=300)
    p.add_argument("--repeat", type=int, default=2, help="passes; the best is reported")
    p.add_argument("--workers", type=int, nargs="*", default=[0, 1, 2], help="DataLoader worker counts to time")
    args = p.parse_args()
    torch.set_num_threads(1)

    from asr.config import FeatureConfig
    from asr.data import SpeechDataset
    from asr.featcache import FeatureCache, write_cache

    tmp = Path(tempfile.mkdtemp(prefix="asr-loader-"))
    utts = flac_corpus(args.data, tmp, args.utts)
    audio = sum(u.duration for u in utts)
    cfg = FeatureConfig()

    def timed(fn) -> float:
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
        return best

    on_the_fly = SpeechDataset(utts, None, cfg, cache=False)
    t_fly = timed(lambda: [on_the_fly.raw_features(i) for i in range(len(utts))])
    t0 = time.perf_counter()
    summary = write_cache(utts, cfg, tmp / "cache", progress=False)
    t_write = time.perf_counter() - t0
    cached = SpeechDataset(utts, None, cfg, cache=False, store=FeatureCache(tmp / "cache"))
    t_cache = timed(lambda: [cached.raw_features(i) for i in range(len(utts))])
    print(f"{len(utts)} utterances, {audio / 60:.1f} min of 16 kHz FLAC; one process, one thread")
    for name, t in (("on the fly (FLAC -> log-mel)", t_fly), ("feature cache (memory-mapped)", t_cache),
                    ("building the cache (asr features)", t_write)):
        print(f"{name}: {t:.2f} s = {audio / t:.0f}x real time ({audio / t / 3600:.3f} h of audio per second)")
    print(f"cache size: {summary['bytes'] / 2**20:.1f} MiB ({summary['bytes'] / audio / 1024:.0f} KiB per second "
          "of audio, float32)")
    for workers in args.workers:
        t = loader_epoch(utts, workers)
        print(f"training DataLoader, {workers} worker(s): {t:.2f} s = {audio / t:.0f}x real time "
              f"({audio / t / 3600:.3f} h of audio per second)")


def loader_epoch(utts, workers: int) -> float:
    """Seconds for one epoch of training batches from `training_loader` with `workers` processes."""
    from asr.config import load_config
    from asr.data import EpochSampler, SpeechDataset, epoch_batches, training_loader
    from asr.text import CharTokenizer

    cfg = load_config(REPO / "conf" / "demo.yaml", [])
    ds = SpeechDataset(utts, CharTokenizer(), cfg.features, train=True, cache=False)
    ds.set_cmvn(torch.zeros(cfg.features.n_mels), torch.ones(cfg.features.n_mels))
    lengths = [ds.frames(i) for i in range(len(ds))]
    sampler = EpochSampler(seed=0)
    loader = training_loader(ds, sampler, workers, pin_memory=False)
    for epoch in (2, 3):  # the first pass also starts the worker processes: the second is timed
        sampler.set_epoch(epoch, epoch_batches(lengths, cfg.train.batch_size, cfg.train.max_batch_frames, epoch))
        t0 = time.perf_counter()
        frames = sum(int(b.feat_lens.sum()) for b in loader)
        seconds = time.perf_counter() - t0
    assert frames > 0
    return seconds


if __name__ == "__main__":
    main()
