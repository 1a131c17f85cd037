"""Benchmark: data-parallel scaling. The demo config trained for two epochs by one process and by N ranks
under torchrun (same per-rank batch, so N times the global batch); reported is the second epoch's audio
throughput of each and their ratio. On a CPU-only machine the ranks are gloo processes sharing the cores
(threads per rank = --threads / N); on a GPU machine they are NCCL ranks, one GPU each.

    python bench/ddp_scaling.py [--ranks 2] [--utts 240] [--threads 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=REPO / "conf" / "demo.yaml")
    p.add_argument("--data", type=Path, default=REPO / "data" / "synth")
    p.add_argument("--utts", type=int, default=240)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--threads", type=int, default=2, help="CPU threads in all (split between ranks)")
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    from common import demo_subset, epoch_line

    tmp, manifest = demo_subset(args.data, args.utts, "asr-ddp-")
    common = ["--quiet", "--config", str(args.config), f"data.train={manifest}", "data.dev=",
              "train.epochs=2", "train.max_minutes=0", "train.checkpoint_every=0", "train.keep_checkpoints=0",
              "train.tensorboard=false", f"train.device={args.device}"]
    one = subprocess.run([sys.executable, "-m", "asr", "train", *common, f"train.num_threads={args.threads}",
                          f"train.exp_dir={tmp / 'one'}"], capture_output=True, text=True)
    if one.returncode:
        sys.exit(one.stderr[-2000:])
    per_rank = max(1, args.threads // args.ranks)
    env = dict(os.environ, OMP_NUM_THREADS=str(per_rank))
    many = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={args.ranks}", "-m", "asr", "train", *common,
                           f"train.num_threads={per_rank}", f"train.exp_dir={tmp / 'many'}"],
                          capture_output=True, text=True, env=env)
    if many.returncode:
        sys.exit(many.stderr[-2000:])
    (s1, r1), (sn, rn) = epoch_line(tmp / "one"), epoch_line(tmp / "many")
    print(f"config {args.config.name}, {args.utts} utterances, device {args.device}, {args.threads} threads in all")
    print(f"1 process x {args.threads} threads: epoch 2 {s1:.1f} s, {r1:.0f}x real time")
    print(f"{args.ranks} ranks x {per_rank} thread(s): epoch 2 {sn:.1f} s, {rn:.0f}x real time")
    print(f"throughput ratio: {rn / r1:.2f}")


if __name__ == "__main__":
    main()
