"""Benchmark: peak memory and time of one training step against utterance length, full BPTT vs truncated
BPTT chunks (K frames after subsampling, latency-controlled with R right-context frames).

Each (length, mode) runs in a fresh process so that its peak resident memory is its own; reported is the
peak during the step minus the resident memory before it. Usage:
    python bench/tbptt_memory.py [--lengths 10 30 60 120] [--chunks 0 50 100 200] [--out FILE.md]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(seconds: float, chunk: int, context: int, batch: int, layers: int, hidden: int) -> dict:
    import torch

    from asr.chunking import chunkwise_backward
    from asr.config import ModelConfig
    from asr.model import AcousticModel
    from asr.train import ctc_loss

    torch.manual_seed(0)
    torch.set_num_threads(2)
    cfg = ModelConfig(subsampling="stack", subsampling_factor=3, rnn_type="lstm", num_layers=layers,
                      hidden_size=hidden, bidirectional=True, dropout=0.0, tbptt_chunk=chunk,
                      right_context=context if chunk else 0)
    model = AcousticModel(cfg, 80, 30)
    frames = int(seconds * 100)
    feats = torch.randn(batch, frames, 80)
    lengths = torch.full((batch,), frames)
    n_tok = max(1, frames // 12)
    targets = torch.randint(1, 30, (batch, n_tok))
    tlens = torch.full((batch,), n_tok)

    def loss_fn(lp, ol):
        return ctc_loss(lp, ol, targets, tlens)

    def step():
        model.zero_grad()
        if chunk:
            chunkwise_backward(model, feats, lengths, loss_fn)
        else:
            lp, ol = model(feats, lengths)
            loss_fn(lp, ol).backward()

    before = _rss_mb()
    t0 = time.perf_counter()
    step()
    seconds_step = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "chunk": chunk, "context": context if chunk else 0, "step_s": seconds_step,
            "peak_mb": peak - before}


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--lengths", type=float, nargs="+", default=[10, 30, 60, 120], help="seconds")
    p.add_argument("--chunks", type=int, nargs="+", default=[0, 50, 100, 200], help="K (0 = full BPTT)")
    p.add_argument("--context", type=int, default=20, help="R right-context frames for chunked runs")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--layers", type=int, default=3)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--out", help="append the Markdown table here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        s, k = args.one.split(",")
        print(json.dumps(one(float(s), int(k), args.context, args.batch, args.layers, args.hidden)))
        return
    rows = []
    for s in args.lengths:
        for k in args.chunks:
            cmd = [sys.executable, __file__, "--one", f"{s},{k}", "--context", str(args.context), "--batch",
                   str(args.batch), "--layers", str(args.layers), "--hidden", str(args.hidden)]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                rows.append({"seconds": s, "chunk": k, "error": r.stderr.strip().splitlines()[-1]})
            else:
                rows.append(json.loads(r.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    head = (f"BiLSTM {args.layers}x{args.hidden}, x3 frame stacking, batch {args.batch}, one training step "
            f"(forward + CTC + backward), 2 threads; R = {args.context} for chunked runs.\n\n"
            "| utterance | mode | step time (s) | peak memory (MB) | memory vs full BPTT |\n"
            "| ---: | --- | ---: | ---: | ---: |\n")
    lines = []
    for r in rows:
        mode = "full BPTT" if r["chunk"] == 0 else f"K={r['chunk']}, R={r.get('context', args.context)}"
        if "error" in r:
            lines.append(f"| {r['seconds']:.0f} s | {mode} | failed: {r['error']} | | |")
            continue
        full = next((f for f in rows if f["seconds"] == r["seconds"] and f["chunk"] == 0 and "error" not in f), None)
        ratio = f"{r['peak_mb'] / full['peak_mb']:.2f}" if full and full["peak_mb"] > 0 else "-"
        lines.append(f"| {r['seconds']:.0f} s | {mode} | {r['step_s']:.2f} | {r['peak_mb']:.0f} | {ratio} |")
    table = head + "\n".join(lines) + "\n"
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
