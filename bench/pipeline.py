"""Benchmark: pipeline efficiency of training on this machine.

Efficiency = training frames per second of the full pipeline (`asr.train.train`: reading features, speed
perturbation, normalisation, mel warping, SpecAugment, batching, padding, model, CTC loss, clipping, AdamW,
logging) divided by frames per second of the bare model forward + backward on ready tensors of the same
batch shapes, both measured in this run with the same threads. The full pipeline is timed on its second
epoch (the first fills the in-memory feature cache). The bare model is timed before and after it, and the
mean is used, so that drift of a shared machine shows.

    python bench/pipeline.py [--config conf/demo.yaml] [--utts 240] [--threads 2] [--precision fp32] [--workers N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def bare_fps(cfg, vocab: int, shapes: list[list[int]], threads: int, device: torch.device) -> float:
    """Frames per second of model forward + backward (no loss, no optimiser) over batches of given lengths."""
    from asr.model import AcousticModel

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = AcousticModel(cfg.model, cfg.features.n_mels, vocab).to(device)
    batches = []
    for lens in shapes:
        lengths = torch.tensor(lens, device=device)
        batches.append((torch.randn(len(lens), max(lens), cfg.features.n_mels, device=device), lengths))
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.train.precision == "bf16")
    for feats, lengths in batches[:2]:  # warm-up
        with amp:
            lp, _ = model(feats, lengths)
        lp.sum().backward()
    t0 = time.perf_counter()
    for feats, lengths in batches:
        model.zero_grad(set_to_none=True)
        with amp:
            lp, _ = model(feats, lengths)
        lp.sum().backward()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return sum(map(sum, shapes)) / (time.perf_counter() - t0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=REPO / "conf" / "demo.yaml")
    p.add_argument("--data", type=Path, default=REPO / "data" / "synth")
    p.add_argument("--utts", type=int, default=240, help="training utterances (the demo corpus' first N)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--device", default="cpu")
    p.add_argument("--workers", type=int, default=-1, help="data.num_workers (DataLoader worker processes; "
                   "-1 = the default: 4 on CUDA, 0 on a CPU)")
    args = p.parse_args()

    from common import demo_subset, epoch_line

    from asr.config import load_config
    from asr.data import SpeechDataset, epoch_batches
    from asr.manifest import read_manifest
    from asr.text import build_tokenizer
    from asr.train import train

    tmp, manifest = demo_subset(args.data, args.utts, "asr-pipeline-")
    overrides = [f"data.train={manifest}", "data.dev=", f"train.exp_dir={tmp / 'exp'}", "train.epochs=2",
                 "train.max_minutes=0", f"train.num_threads={args.threads}", "train.checkpoint_every=0",
                 "train.keep_checkpoints=0", "train.tensorboard=false", f"train.precision={args.precision}",
                 f"train.device={args.device}", f"data.num_workers={args.workers}"]
    cfg = load_config(args.config, overrides)
    utts = read_manifest(cfg.data.train)
    tok = build_tokenizer(cfg.tokenizer.kind, [u.text for u in utts], cfg.tokenizer.vocab_size,
                          cfg.tokenizer.double_letters)
    ds = SpeechDataset(utts, tok, cfg.features)
    lengths = [ds.frames(i) for i in range(len(ds))]
    shapes = [[lengths[i] for i in b] for b in epoch_batches(lengths, cfg.train.batch_size,
                                                             cfg.train.max_batch_frames, 2, seed=cfg.train.seed)]

    before = bare_fps(cfg, tok.vocab_size, shapes, args.threads, torch.device(args.device))
    train(cfg, progress=False)
    seconds, rt = epoch_line(tmp / "exp")
    full = rt * 1000 / cfg.features.hop_ms
    after = bare_fps(cfg, tok.vocab_size, shapes, args.threads, torch.device(args.device))
    bare = (before + after) / 2
    print(f"config {args.config.name}, {len(utts)} utterances ({sum(u.duration for u in utts) / 60:.1f} min), "
          f"{len(shapes)} batches, {args.threads} threads, {args.precision}, {args.device}, "
          f"data.num_workers={args.workers}")
    print(f"bare model fwd+bwd: {before:.0f} / {after:.0f} frames/s (before / after), mean {bare:.0f}")
    print(f"full pipeline, epoch 2: {full:.0f} frames/s ({seconds:.1f} s, {rt:.0f}x real time)")
    print(f"pipeline efficiency: {full / bare:.2f}")


if __name__ == "__main__":
    main()
