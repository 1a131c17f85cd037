"""Benchmark: training throughput of the LibriSpeech recipe models, and the epoch time it projects.

One training step = forward (autocast in bf16 when asked) + CTC loss in fp32 + backward + gradient clipping
+ AdamW, on batches shaped like LibriSpeech training batches (utterances of the train-clean-100 mean length,
12.7 s, as many as the config's batch_size / max_batch_frames allow, unless --batch says otherwise).
Frames per second (10 ms input frames) projects the model time of one epoch of train-clean-100 (100.6 h)
and of the 960 h set; the loader and augmentation are measured separately (bench/pipeline.py).

    python bench/train_speed.py [--device cpu|cuda] [--precision fp32 bf16] [--batch N] [--steps 3]
                                [--configs recipes/librispeech/conf/*.yaml] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
HOURS = {"train-clean-100": 100.6, "960 h": 960.9}  # LibriSpeech training hours (Panayotov et al., 2015)
MEAN_UTT_S = 12.7  # train-clean-100: 100.6 h in 28,539 utterances


def measure(config: Path, device: torch.device, precision: str, batch: int | None, steps: int, warmup: int) -> dict:
    from asr.config import load_config
    from asr.model import AcousticModel
    from asr.train import ctc_loss

    cfg = load_config(config)
    vocab = cfg.tokenizer.vocab_size if cfg.tokenizer.kind == "bpe" else 32
    torch.manual_seed(0)
    model = AcousticModel(cfg.model, cfg.features.n_mels, vocab).to(device)
    optim = torch.optim.AdamW(model.parameters(), lr=1e-4)
    frames = int(MEAN_UTT_S * 100)
    n = batch or max(1, min(cfg.train.batch_size, cfg.train.max_batch_frames // frames))
    feats = torch.randn(n, frames, cfg.features.n_mels, device=device)
    lengths = torch.full((n,), frames, device=device)
    out_len = int(model.output_lengths(lengths[:1].cpu())[0])
    n_tok = max(1, out_len // 4)
    targets = torch.randint(1, vocab, (n, n_tok), device=device)
    tlens = torch.full((n,), n_tok, device=device)
    amp = (torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext())

    def step():
        optim.zero_grad(set_to_none=True)
        with amp:
            lp, ol = model(feats, lengths)
            loss = ctc_loss(lp, ol, targets, tlens)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optim.step()

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(warmup):
        step()
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = (time.perf_counter() - t0) / steps
    fps = n * frames / seconds
    row = {"config": config.stem, "device": device.type, "precision": precision, "batch": n,
           "params_m": sum(p.numel() for p in model.parameters()) / 1e6, "step_s": seconds, "frames_per_s": fps,
           "x_real_time": fps / 100}
    for name, hours in HOURS.items():
        row[f"epoch_min_{name}"] = hours * 3600 * 100 / fps / 60
    if device.type == "cuda":
        row["peak_mem_gb"] = torch.cuda.max_memory_allocated() / 2**30
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="*", type=Path,
                   default=sorted((REPO / "recipes/librispeech/conf").glob("b*_*.yaml")))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--precision", nargs="*", default=None, help="fp32 and/or bf16 (default: both on CUDA, fp32 on CPU)")
    p.add_argument("--batch", type=int, default=None,
                   help="utterances per batch (default: the config's on CUDA, 4 on CPU)")
    p.add_argument("--steps", type=int, default=None, help="timed steps (default 10 on CUDA, 2 on CPU)")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--threads", type=int, default=2, help="CPU threads")
    p.add_argument("--out", type=Path, help="append the markdown table to this file")
    p.add_argument("--json", type=Path, help="write the rows as JSON")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    precisions = args.precision or (["fp32", "bf16"] if cuda else ["fp32"])
    batch = args.batch if args.batch is not None else (None if cuda else 4)
    steps = args.steps or (10 if cuda else 2)
    warmup = args.warmup if args.warmup is not None else (3 if cuda else 1)
    name = torch.cuda.get_device_name(device) if cuda else f"CPU, {args.threads} threads"
    rows = []
    lines = [f"Training throughput ({name}; torch {torch.__version__}; `python bench/train_speed.py`)", "",
             "| config | precision | batch | params (M) | step (s) | frames/s | x real time | "
             "train-clean-100 epoch | 960 h epoch |", "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for config in args.configs:
        for prec in precisions:
            row = measure(config, device, prec, batch, steps, warmup)
            rows.append(row)
            line = (f"| {row['config']} | {prec} | {row['batch']} | {row['params_m']:.1f} | {row['step_s']:.3f} | "
                    f"{row['frames_per_s']:.0f} | {row['x_real_time']:.0f} | "
                    f"{_duration(row['epoch_min_train-clean-100'])} | {_duration(row['epoch_min_960 h'])} |")
            lines.append(line)
            print(line, flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")
    if args.json:
        args.json.write_text(json.dumps({"device": name, "rows": rows}, indent=1))


def _duration(minutes: float) -> str:
    if minutes < 120:
        return f"{minutes:.1f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} days"


if __name__ == "__main__":
    main()
