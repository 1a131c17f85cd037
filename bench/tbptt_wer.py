"""Benchmark: the accuracy cost of streaming. Trains the same recipe three ways with the same time budget:
full-utterance BPTT (offline BiGRU), latency-controlled BiGRU (chunks of K frames + R right context) and a
unidirectional GRU with truncated BPTT (chunks of K, no look-ahead), then reports greedy WER (demo corpus)
and closed-set WER (FSDD conventional split) on the test sets.

    python bench/tbptt_wer.py [--minutes 4] [--chunk 20] [--context 5] [--out BENCHMARKS-tbptt.md]

Wall time: about 3 x (minutes + 1) for the demo corpus plus 3 x (FSDD minutes + 0.5) for FSDD.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("ASR_SHARED_DATA", REPO.parent / "shared" / "data"))


def variants(chunk: int, context: int) -> dict[str, list[str]]:
    return {
        "full BPTT, BiGRU (offline)": [],
        f"LC-BiGRU K={chunk} R={context}": [f"model.tbptt_chunk={chunk}", f"model.right_context={context}"],
        f"unidirectional GRU, TBPTT K={chunk}": [f"model.tbptt_chunk={chunk}", "model.bidirectional=false"],
    }


def run(cmd: list[str]) -> None:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"failed: {' '.join(map(str, cmd))}\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def wer(path: Path) -> str:
    """'WER / CER (epochs)' of a scored set; epochs counted in the experiment's train.log."""
    obj = json.loads(path.read_text())
    log = path.parents[2] / "train.log"
    epochs = sum(" done: " in line for line in log.read_text().splitlines()) if log.is_file() else 0
    return f"{obj['wer']:.2f} / {obj['cer']:.2f} ({epochs} ep)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=4.0, help="training budget per demo model")
    p.add_argument("--fsdd-minutes", type=float, default=2.5, help="training budget per FSDD model")
    p.add_argument("--chunk", type=int, default=20, help="K, frames after subsampling (x3: 30 ms each)")
    p.add_argument("--context", type=int, default=5, help="R, right-context frames")
    p.add_argument("--fsdd-chunk", type=int, default=5, help="K for FSDD (its words last about 17 frames)")
    p.add_argument("--fsdd-context", type=int, default=2, help="R for FSDD")
    p.add_argument("--exp", default=str(REPO / "exp" / "bench-tbptt"))
    p.add_argument("--out", help="append the Markdown table here")
    args = p.parse_args()
    exp = Path(args.exp)
    rows = []
    fsdd_variants = list(variants(args.fsdd_chunk, args.fsdd_context).values())
    for i, (name, overrides) in enumerate(variants(args.chunk, args.context).items()):
        tag = name.split(",")[0].split(" ")[0].lower().replace("-", "")
        demo_exp = exp / f"demo-{tag}"
        run(["bash", REPO / "recipes" / "demo" / "run.sh", "--exp", demo_exp, f"train.max_minutes={args.minutes}",
             *overrides])
        fsdd_exp = exp / f"fsdd-{tag}"
        run(["bash", REPO / "recipes" / "fsdd" / "run.sh", "--source", SHARED / "fsdd", "--exp", fsdd_exp,
             "--loso", "false", "--overrides", " ".join([f"train.max_minutes={args.fsdd_minutes}", *fsdd_variants[i]])])
        rows.append((name, wer(demo_exp / "decode" / "test-seen" / "wer.json"),
                     wer(demo_exp / "decode" / "test-unseen" / "wer.json"),
                     wer(fsdd_exp / "conventional" / "decode" / "test" / "wer.json")))
        print(rows[-1], flush=True)
    latency = (args.chunk + args.context) * 30
    table = (f"Same recipes and time budgets (demo {args.minutes} min, FSDD {args.fsdd_minutes} min per model), "
             f"K={args.chunk} and R={args.context} frames of 30 ms: LC-BiGRU latency {latency} ms, "
             f"unidirectional {args.chunk * 30} ms; FSDD uses K={args.fsdd_chunk}, R={args.fsdd_context} "
             "(its words are shorter than the demo's chunk).\n\n"
             "| model | demo test-seen WER / CER % (epochs) | demo test-unseen WER / CER % | "
             "FSDD conventional WER / CER % (epochs) |\n"
             "| --- | ---: | ---: | ---: |\n" + "".join(f"| {a} | {b} | {c} | {d} |\n" for a, b, c, d in rows))
    print(table)
    if args.out:
        with open(args.out, "a") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    sys.exit(main())
