"""Benchmark: how well models hold up when the test audio is corrupted (issue 16 item 3).

Every model decodes the same test set under the same corruptions (each clip's draw is seeded by its index, so
all models hear identical audio): clean; real background noise at 10, 5 and 0 dB SNR (noise clips from a
manifest, e.g. the *test* split's silence clips, never heard in training); simulated rooms (RT60 0.3-0.9 s);
the telephone band (8 kHz); an Opus round trip at a low bit rate; and the telephone band with an MP3 round trip.
With `--classes` (Speech Commands' labels.txt) the table gives 12-class accuracy, else WER. Decoding is
closed-set with `--choices` (and `--empty-choice`), else greedy.

    python bench/robustness.py --models A.pt B.pt --manifest EXP/data/test.jsonl --noise EXP/data/test.jsonl \
        --choices EXP/data/words.txt --empty-choice --classes EXP/data/labels.txt [--out table.md]
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONDITIONS = ("clean", "noise 10 dB", "noise 5 dB", "noise 0 dB", "reverb", "telephone", "opus", "telephone+mp3")


def corrupt(wav: torch.Tensor, condition: str, index: int, noises: list[torch.Tensor]) -> torch.Tensor:
    """`wav` (N,) under `condition`; every random choice comes from the clip's index."""
    from asr import features as F

    rng = random.Random(1000003 * index + CONDITIONS.index(condition))
    if condition == "clean":
        return wav
    if condition.startswith("noise"):
        noise = noises[rng.randrange(len(noises))]
        return F.add_background(wav, noise, float(condition.split()[1]), rng.randrange(noise.numel()))
    if condition == "reverb":
        rir, direct = F.random_rir(rng, (0.3, 0.9), (3.0, 10.0))
        out = F.reverberate(wav, rir, direct)
        peak = float(out.abs().max())
        return out * (0.9 / peak) if peak > 0.9 else out
    if condition == "telephone":
        return F.telephone(wav, band_limit=True)
    if condition == "opus":
        return F.telephone(wav, band_limit=False, codec="opus", level=0.95)
    if condition == "telephone+mp3":
        return F.telephone(wav, band_limit=True, codec="mp3", level=0.9)
    raise ValueError(condition)


def evaluate(model_path: str, utts, noises, choices, classes: bool, batch: int = 32) -> dict[str, float]:
    """{condition: accuracy % (with classes) or WER %} of one model."""
    from asr.audio import load_audio
    from asr.corpus.speech_commands import class_of
    from asr.recognizer import Recognizer
    from asr.score import compute

    rec = Recognizer.load(model_path)
    waves = [torch.from_numpy(load_audio(u.audio)).float() for u in utts]
    out = {}
    for condition in CONDITIONS:
        hyps = []
        for i in range(0, len(utts), batch):
            feats = [rec.features(corrupt(w, condition, i + k, noises))[0] for k, w in enumerate(waves[i:i + batch])]
            lengths = torch.tensor([f.shape[0] for f in feats])
            padded = torch.nn.utils.rnn.pad_sequence(feats, batch_first=True)
            hyps += rec.decode_features(padded, lengths, choices)
        if classes:
            right = sum(class_of(h.lower()) == class_of(u.text.lower()) for h, u in zip(hyps, utts))
            out[condition] = 100.0 * right / len(utts)
        else:
            out[condition] = compute([u.text for u in utts], hyps, allow_empty=True).wer
        print(f"{Path(model_path).parent.name or model_path}: {condition}: {out[condition]:.2f}", file=sys.stderr)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="model bundles, each decoded under every condition")
    p.add_argument("--manifest", required=True, help="test manifest")
    p.add_argument("--noise", required=True, help="manifest whose transcript-less clips are the noise")
    p.add_argument("--choices", help="closed-set decoding: file of allowed transcripts")
    p.add_argument("--empty-choice", action="store_true", help="the empty transcript is a choice too")
    p.add_argument("--classes", action="store_true", help="report Speech Commands' 12-class accuracy, not WER")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="also write the Markdown table here")
    args = p.parse_args(argv)
    from asr.audio import load_audio
    from asr.decode import read_choices
    from asr.manifest import read_manifest

    torch.set_num_threads(args.threads)
    utts = read_manifest(args.manifest)
    noises = [torch.from_numpy(load_audio(u.audio)).float() for u in read_manifest(args.noise) if not u.text]
    if not noises:
        p.error(f"{args.noise}: no clip without a transcript to use as noise")
    choices = read_choices(args.choices) if args.choices else None
    if choices is not None and args.empty_choice:
        choices.append("")
    metric = "12-class accuracy %" if args.classes else "WER %"
    lines = [f"{metric} on {args.manifest} ({len(utts)} utterances; noise: {len(noises)} clips of {args.noise})", "",
             "| model | " + " | ".join(CONDITIONS) + " |", "| --- |" + " ---: |" * len(CONDITIONS)]
    for model in args.models:
        res = evaluate(model, utts, noises, choices, args.classes)
        lines.append(f"| {model} | " + " | ".join(f"{res[c]:.2f}" for c in CONDITIONS) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
