"""Benchmark: decoding real-time factor and WER — greedy and beam+LM, fp32 and int8 — and PocketSphinx on
the same audio, all in one run on this machine.

Real-time factor = wall time / audio duration for the whole path from file to text (reading, features,
network, search), one utterance at a time, `--threads` torch threads (PocketSphinx is single-threaded).
The n-gram LM (3-gram, Kneser-Ney) and lexicon are built by `asr.lm` from `--lm-text`; the LM weight and
word score are the bundle's tuned defaults (`asr tune`) unless given.

    python bench/decode_speed.py --model exp/demo/model.pt --lm-text exp/demo/data/train.jsonl \\
        --set test-seen=exp/demo/data/test-seen.jsonl --set test-unseen=exp/demo/data/test-unseen.jsonl \\
        [--pocketsphinx] [--out FILE.md]

--pocketsphinx needs `pip install pocketsphinx` (5.x; its en-us model is included in the wheel).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def run_variant(rec, utts) -> tuple[list[str], float]:
    from asr.audio import load_audio

    hyps = []
    t0 = time.perf_counter()
    for u in utts:
        hyps.append(rec.transcribe_wave(torch.from_numpy(load_audio(u.audio))))
    return hyps, time.perf_counter() - t0


def run_pocketsphinx(utts, lm: Path | None = None) -> tuple[list[str], float]:
    """PocketSphinx's en-us acoustic model and dictionary, with its own LM or with `lm` (ARPA)."""
    try:
        from pocketsphinx import Decoder
    except ImportError:
        raise SystemExit("--pocketsphinx needs the pocketsphinx package: pip install pocketsphinx") from None

    from asr.audio import load_audio
    from asr.text import normalize

    decoder = Decoder(loglevel="FATAL", **({"lm": str(lm)} if lm else {}))
    hyps = []
    t0 = time.perf_counter()
    for u in utts:
        pcm = (np.clip(load_audio(u.audio), -1, 1) * 32767).astype("<i2").tobytes()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        hyps.append(normalize(hyp.hypstr) if hyp is not None else "")
    return hyps, time.perf_counter() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path)
    p.add_argument("--set", action="append", required=True, help="NAME=MANIFEST (repeatable)")
    p.add_argument("--lm-text", type=Path, help="text or manifest for the LM and lexicon (omit: no beam rows)")
    p.add_argument("--lm-weight", type=float)
    p.add_argument("--word-score", type=float)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--pocketsphinx", action="store_true", help="also decode with PocketSphinx (en-us model)")
    p.add_argument("--out", type=Path, help="append the markdown table here")
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from asr.export import quantize_int8
    from asr.lm import build_arpa, build_lexicon, read_sentences
    from asr.manifest import read_manifest
    from asr.recognizer import Recognizer
    from asr.score import compute

    sets = {}
    for item in args.set:
        name, manifest = item.split("=", 1)
        sets[name] = read_manifest(manifest)
    variants = {"greedy fp32": dict(int8=False, beam=False), "greedy int8": dict(int8=True, beam=False)}
    tmp = Path(tempfile.mkdtemp(prefix="asr-decode-bench-"))
    if args.lm_text:
        tok = Recognizer.load(args.model).tokenizer
        sentences = read_sentences(args.lm_text)
        build_arpa(sentences, tmp / "lm.arpa", order=3)
        build_lexicon({w for s in sentences for w in s}, tok, tmp / "lexicon.txt")
        variants["beam+LM fp32"] = dict(int8=False, beam=True)
        variants["beam+LM int8"] = dict(int8=True, beam=True)
    rows = []
    for vname, v in variants.items():
        rec = Recognizer.load(args.model)
        if v["int8"]:
            rec.model = quantize_int8(rec.model)
        if v["beam"]:
            rec.use_beam(tmp / "lexicon.txt", tmp / "lm.arpa", lm_weight=args.lm_weight, word_score=args.word_score)
        for sname, utts in sets.items():
            run_variant(rec, utts[:3])  # warm-up
            hyps, seconds = run_variant(rec, utts)
            audio = sum(u.duration for u in utts)
            score = compute([u.text for u in utts], hyps)
            rows.append((vname, sname, score.wer, score.cer, seconds / audio))
            print(f"{vname:14s} {sname:12s} WER {score.wer:6.2f}% CER {score.cer:6.2f}% RTF {seconds / audio:.4f}",
                  flush=True)
    if args.pocketsphinx:
        ps_variants = {"PocketSphinx en-us (its LM)": None}
        if args.lm_text:  # the same 3-gram, lower-cased for PocketSphinx's dictionary
            lower = tmp / "lm-lower.arpa"
            lower.write_text((tmp / "lm.arpa").read_text().lower())
            ps_variants["PocketSphinx en-us + our LM"] = lower
        for vname, lm in ps_variants.items():
            for sname, utts in sets.items():
                hyps, seconds = run_pocketsphinx(utts, lm)
                audio = sum(u.duration for u in utts)
                score = compute([u.text for u in utts], hyps)
                rows.append((vname, sname, score.wer, score.cer, seconds / audio))
                print(f"{vname:14s} {sname:12s} WER {score.wer:6.2f}% CER {score.cer:6.2f}% "
                      f"RTF {seconds / audio:.4f}", flush=True)
    lines = [f"Decoding ({args.model}; {args.threads} threads; `python bench/decode_speed.py`)", "",
             "| decoder | set | WER % | CER % | real-time factor |", "| --- | --- | ---: | ---: | ---: |"]
    lines += [f"| {v} | {s} | {w:.2f} | {c:.2f} | {r:.4f} |" for v, s, w, c, r in rows]
    text = "\n".join(lines) + "\n"
    print("\n" + text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
