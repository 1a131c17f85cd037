"""Command line: `asr <subcommand>`; each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import sys

from asr.audio import AudioError
from asr.bundle import BundleError
from asr.config import ConfigError
from asr.manifest import ManifestError

USER_ERRORS = (AudioError, BundleError, ConfigError, ManifestError, FileNotFoundError, RuntimeError)


def cmd_prepare(args) -> int:
    if args.corpus == "librispeech":
        from asr.corpus.librispeech import prepare

        counts = prepare(args.src, args.out, args.subsets or None, progress=not args.quiet)
    for name, n in counts.items():
        print(f"{args.out}/{name}.jsonl: {n} utterances")
    return 0


def cmd_synth(args) -> int:
    from asr.corpus.synth import synthesize

    summary = synthesize(args.out, seed=args.seed, train_utts=args.train_utts, dev_utts=args.dev_utts,
                         test_utts=args.test_utts, fmt=args.format, progress=not args.quiet)
    print(summary)
    return 0


def cmd_train(args) -> int:
    from asr.config import load_config
    from asr.train import train

    cfg = load_config(args.config, args.overrides)
    bundle = train(cfg, progress=not args.quiet)
    print(f"model bundle: {bundle}")
    return 0


def cmd_decode(args) -> int:
    from asr.bundle import Recognizer
    from asr.decode import decode_manifest

    rec = Recognizer.load(args.model, args.device)
    decode_manifest(rec, args.manifest, args.out, batch_size=args.batch_size, progress=not args.quiet)
    print(f"hypotheses: {args.out}")
    return 0


def cmd_score(args) -> int:
    from asr.score import score_files

    result = score_files(args.manifest, args.hyp, args.out_dir)
    print(result.summary(args.name))
    return 0


def cmd_transcribe(args) -> int:
    from asr.bundle import Recognizer
    from asr.transcribe import transcribe_files

    rec = Recognizer.load(args.model, args.device)
    failed = 0
    for t in transcribe_files(rec, args.files):
        if t.error is not None:
            failed += 1
            print(f"error: {t.error}", file=sys.stderr, flush=True)
        elif len(args.files) > 1 and args.with_names:
            print(f"{t.path}\t{t.text}", flush=True)
        else:
            print(t.text, flush=True)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description="RNN-CTC speech recognition toolkit.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("prepare", help="write JSON Lines manifests from a corpus on disk")
    s.add_argument("corpus", choices=["librispeech"], help="corpus layout")
    s.add_argument("src", help="corpus folder (e.g. the one holding LibriSpeech/ or the subsets)")
    s.add_argument("out", help="output folder for <subset>.jsonl manifests")
    s.add_argument("--subsets", nargs="*", help="subset folder names (default: all found)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("synth", help="speak a synthetic corpus with espeak-ng/flite in LibriSpeech layout")
    s.add_argument("out", help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--train-utts", type=int, default=600)
    s.add_argument("--dev-utts", type=int, default=60)
    s.add_argument("--test-utts", type=int, default=80, help="utterances per test set")
    s.add_argument("--format", choices=["flac", "ogg"], default="flac", help="flac (LibriSpeech) or ogg (Opus, small)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("train", help="train a model from a YAML config")
    s.add_argument("--config", required=True, help="YAML config file")
    s.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("decode", help="greedy-decode a manifest into a hypothesis file")
    s.add_argument("--model", required=True, help="model bundle (.pt)")
    s.add_argument("--manifest", required=True)
    s.add_argument("--out", required=True, help="hypothesis file (JSON Lines)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("score", help="WER/CER of a hypothesis file against a manifest")
    s.add_argument("--manifest", required=True)
    s.add_argument("--hyp", required=True)
    s.add_argument("--out-dir", help="write wer.json and alignments.txt here")
    s.add_argument("--name", default="", help="label printed before the numbers")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("transcribe", help="transcribe audio files (one line of text per file)")
    s.add_argument("--model", required=True, help="model bundle (.pt)")
    s.add_argument("files", nargs="+", help="audio files (WAV, FLAC, OGG, ...; any rate and channel count)")
    s.add_argument("--with-names", action="store_true", help="prefix each line with the file name and a tab")
    s.add_argument("--device", default="cpu")
    s.set_defaults(func=cmd_transcribe)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # overrides may come after options (`asr train --config c.yaml --quiet model.hidden_size=64`)
    if extra and args.command == "train" and all("=" in e and not e.startswith("-") for e in extra):
        args.overrides = list(args.overrides) + extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"asr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
