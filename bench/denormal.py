"""Benchmark: the cost of subnormal floats in CPU training, and what flushing them to zero buys.

A trained model's LSTM gates saturate, and their gradients underflow into subnormal floats, which x86 CPUs
process far more slowly than normal ones. This times forward + CTC loss + backward over real batches of the
demo corpus for a trained model (a bundle from `asr train`) and for the same architecture freshly
initialised, each with `torch.set_flush_denormal` off and on (the setting `asr train` and `asr.recognizer` now use).
A model trained with flushing on carries no subnormal weights and shows no difference; the slowdown shows
with models trained before `asr train` turned it on.

    python bench/denormal.py --model exp/demo/model.pt [--utts 64] [--batch 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="a bundle written by asr train")
    p.add_argument("--data", type=Path, default=REPO / "data" / "synth")
    p.add_argument("--utts", type=int, default=64)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from common import demo_subset

    from asr.data import collate
    from asr.manifest import read_manifest
    from asr.model import AcousticModel
    from asr.recognizer import Recognizer
    from asr.train import ctc_loss

    torch.set_num_threads(args.threads)
    rec = Recognizer.load(args.model)
    if rec.exported:
        raise SystemExit("--model must be a bundle from asr train, not an exported model")
    trained = rec.model.train()
    torch.manual_seed(0)
    fresh = AcousticModel(rec.cfg.model, rec.cfg.features.n_mels, rec.tokenizer.vocab_size).train()
    _, manifest = demo_subset(args.data, args.utts, "asr-denormal-")
    ds = rec.dataset(read_manifest(manifest))
    batches = [collate([ds[i] for i in range(j, min(j + args.batch, len(ds)))], [])
               for j in range(0, len(ds), args.batch)]

    def seconds(model) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for b in batches:
                log_probs, out_lens = model(b.feats, b.feat_lens)
                ctc_loss(log_probs, out_lens, b.targets, b.target_lens).backward()
            model.zero_grad(set_to_none=True)
            best = min(best, time.perf_counter() - t0)
        return best

    print(f"model {args.model} ({rec.cfg.model.rnn_type}, {rec.cfg.model.num_layers}x{rec.cfg.model.hidden_size}), "
          f"{len(ds)} utterances in {len(batches)} batches, {args.threads} threads")
    rows = {}
    for flush in (False, True):
        torch.set_flush_denormal(flush)
        rows[flush] = seconds(trained), seconds(fresh)
        print(f"flush_denormal {str(flush):5}: trained {rows[flush][0]:.2f} s, fresh {rows[flush][1]:.2f} s")
    print(f"trained model, flush on vs off: {rows[False][0] / rows[True][0]:.2f}x faster; "
          f"trained vs fresh with flush off: {rows[False][0] / rows[False][1]:.2f}x the time")


if __name__ == "__main__":
    main()
