"""Command line: `asr <subcommand>`; each subcommand parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from asr.config import split_overrides
from asr.fileio import FULL

# every error of the package about its input is a ValueError (AudioError, BundleError, ConfigError, LmError,
# ManifestError, ...) or a RuntimeError (DiskFullError, LockedError, DownloadError, ...): one line, exit 2.
# Only what a command needs is imported (torch alone takes seconds), so `asr score` or `asr merge` start fast.
USER_ERRORS = (ValueError, RuntimeError, FileNotFoundError)


def cmd_download(args) -> int:
    progress = not args.quiet
    if args.corpus == "librispeech":
        from asr.corpus.librispeech import EVAL_SUBSETS, download

        dest = download(args.dest, args.subsets or ["100h", *EVAL_SUBSETS], args.source, progress)
    elif args.corpus == "librispeech-lm":
        from asr.corpus.librispeech import download_lm

        dest = download_lm(args.dest, args.lm, args.source, progress)
    elif args.corpus == "fsdd":
        from asr.corpus.fsdd import download

        dest = download(args.dest, args.source, progress)
    elif args.corpus == "speech_commands":
        from asr.corpus.speech_commands import download

        dest = download(args.dest, args.source, progress)
    else:
        from asr.corpus.an4 import download

        dest = download(args.dest, args.source, progress)
    print(f"{args.corpus}: {dest}")
    return 0


def cmd_prepare(args) -> int:
    progress = not args.quiet
    if args.corpus == "librispeech":
        from asr.corpus.librispeech import prepare

        counts = prepare(args.src, args.out, args.subsets or None, progress=progress)
    elif args.corpus == "fsdd":
        from asr.corpus.fsdd import prepare

        counts = prepare(args.src, args.out, progress=progress)
    elif args.corpus == "speech_commands":
        from asr.corpus.speech_commands import prepare

        counts = prepare(args.src, args.out, progress=progress)
    else:
        from asr.corpus.an4 import prepare

        counts = prepare(args.src, args.out, progress=progress)
    for name, n in counts.items():
        print(f"{args.out}/{name}.jsonl: {n} utterances")
    return 0


def cmd_stats(args) -> int:
    from asr.config import load_config
    from asr.data import compute_stats_file

    cfg = load_config(args.config, args.overrides)
    frames = compute_stats_file(args.manifest, cfg.features, args.out, progress=not args.quiet)
    print(f"normalisation statistics over {frames} frames: {args.out}")
    return 0


def cmd_tokenizer(args) -> int:
    from asr.config import load_config
    from asr.text import train_tokenizer_file

    t = load_config(args.config, args.overrides).tokenizer
    tok = train_tokenizer_file(args.manifest, t.kind, args.out, t.vocab_size, t.double_letters)
    print(f"{t.kind} tokenizer, {tok.vocab_size} symbols with blank: {args.out}")
    return 0


def cmd_features(args) -> int:
    from asr.config import load_config
    from asr.featcache import write_cache
    from asr.manifest import read_manifest

    cfg = load_config(args.config, args.overrides).features
    summary = write_cache(read_manifest(args.manifest), cfg, args.out, speeds=cfg.speed_perturb or (1.0,),
                          dtype=args.dtype, shard_mb=args.shard_mb, progress=not args.quiet)
    print(f"feature cache: {summary['utterances']} utterances, {summary['frames']} frames at speeds "
          f"{list(cfg.speed_perturb) or [1.0]}, {summary['bytes'] / 2**20:.1f} MiB in {summary['shards']} shard(s): "
          f"{args.out} (train with data.feature_cache={args.out})")
    return 0


def cmd_package(args) -> int:
    from asr.bundle import package

    out = package(args.exp, args.out)
    print(f"packaged model: {out}")
    return 0


def cmd_merge(args) -> int:
    from asr.manifest import merge_manifests

    texts = None
    if args.texts:
        from asr.decode import read_choices

        texts = read_choices(args.texts, "--texts file")
    n = merge_manifests(args.inputs, args.out, texts)
    print(f"{args.out}: {n} utterances")
    return 0


def cmd_average(args) -> int:
    from pathlib import Path

    from asr.bundle import BundleError, average_checkpoints, pick_checkpoints

    if not args.checkpoints and not args.exp:
        raise BundleError("give an experiment folder or --checkpoints FILE ...")
    paths = args.checkpoints or pick_checkpoints(args.exp, args.n, args.by)
    average_checkpoints(paths, args.out)
    print(f"averaged {len(paths)} checkpoints ({', '.join(Path(p).name for p in paths)}) into {args.out}")
    return 0


def cmd_summarize(args) -> int:
    from asr.score import summarize

    print(summarize(args.scores, args.out, args.title))
    return 0


def cmd_synth(args) -> int:
    from asr.corpus.synth import synthesize, synthesize_words

    if args.words:
        from asr.decode import read_choices

        summary = synthesize_words(args.out, read_choices(args.words, "--words file"), takes=args.takes, seed=args.seed,
                                   progress=not args.quiet, pitch_range=args.pitch_range)
        print(f"{args.out}/words.jsonl: {summary}")
        return 0
    summary = synthesize(args.out, seed=args.seed, train_utts=args.train_utts, dev_utts=args.dev_utts,
                         test_utts=args.test_utts, fmt=args.format, progress=not args.quiet,
                         pitch_range=args.pitch_range)
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
    from asr.decode import ENSEMBLE_NEEDS_CHOICES, decode_manifest, read_choices, read_warps
    from asr.recognizer import Recognizer

    if args.nbest > 1 and not (_wants_beam(args) or args.choices):
        raise ValueError(f"--nbest {args.nbest} needs beam search (--lm with --lexicon, or --beam-size alone) or "
                         "--choices: greedy decoding has one hypothesis")
    averaged = len(args.model) > 1 or args.warps is not None
    if averaged and not args.choices:
        raise ValueError(ENSEMBLE_NEEDS_CHOICES)
    if averaged and _wants_beam(args):
        raise ValueError("several --model and --warps work with --choices, not with beam search")
    warps = read_warps(args.warps) if args.warps is not None else None
    rec = Recognizer.load(args.model[0], args.device)
    more = [Recognizer.load(m, args.device) for m in args.model[1:]]
    _maybe_beam(rec, args)
    if args.empty_choice and not args.choices:
        raise ValueError("--empty-choice needs --choices")
    choices = read_choices(args.choices) if args.choices else None
    if choices is not None and args.empty_choice:
        choices.append("")
    decode_manifest(rec, args.manifest, args.out, batch_size=args.batch_size, progress=not args.quiet,
                    choices=choices, nbest=args.nbest, ensemble=more, warps=warps)
    print(f"hypotheses: {args.out}")
    return 0


def _wants_beam(args) -> bool:
    return bool(args.lm or args.lexicon or args.beam_size is not None)


def _maybe_beam(rec, args) -> None:
    if _wants_beam(args):
        rec.use_beam(args.lexicon, args.lm, beam_size=args.beam_size, lm_weight=args.lm_weight,
                     word_score=args.word_score)


def _beam_args(s) -> None:
    g = s.add_argument_group("beam search (optional extra: pip install 'asr[lm]')")
    g.add_argument("--lm", help="word n-gram LM (ARPA, e.g. from `asr lm`, or KenLM binary); needs --lexicon")
    g.add_argument("--lexicon", help="lexicon (WORD t1 t2 ...) from `asr lm`")
    g.add_argument("--beam-size", type=int, help="beam width (default 50, or the bundle's tuned value); given "
                   "alone: lexicon-free beam search without LM")
    g.add_argument("--lm-weight", type=float, help="LM weight (default: the bundle's tuned value, else 2.0)")
    g.add_argument("--word-score", type=float, help="word insertion bonus (default: tuned value, else 0)")


def cmd_lm(args) -> int:
    from asr.lm import build_arpa, build_lexicon, read_sentences

    sentences = read_sentences(args.text)
    out = Path(args.out)
    counts = build_arpa(sentences, out / "lm.arpa", args.order, args.smoothing)
    print(f"{out / 'lm.arpa'}: order {args.order}, {args.smoothing}, n-grams {counts}")
    if args.model or args.tokenizer:
        if args.model:
            from asr.recognizer import Recognizer

            tok = Recognizer.load(args.model).tokenizer
        else:
            from asr.text import load_tokenizer

            tok = load_tokenizer(args.tokenizer)
        n = build_lexicon({w for s in sentences for w in s}, tok, out / "lexicon.txt")
        print(f"{out / 'lexicon.txt'}: {n} words")
    return 0


def cmd_lexicon(args) -> int:
    from asr.lm import build_lexicon, read_words
    from asr.recognizer import Recognizer

    n = build_lexicon(read_words(args.words), Recognizer.load(args.model).tokenizer, args.out)
    print(f"{args.out}: {n} words")
    return 0


def cmd_tune(args) -> int:
    from asr.beam import tune
    from asr.bundle import store_decoding
    from asr.recognizer import Recognizer

    rec = Recognizer.load(args.model, args.device)
    best, table = tune(rec, args.manifest, args.lexicon, args.lm, args.lm_weights, args.word_scores,
                       beam_size=args.beam_size, progress=not args.quiet)
    for (w, s), wer in sorted(table.items()):
        print(f"lm_weight {w:5.2f}  word_score {s:5.2f}  WER {wer:6.2f}%")
    print(f"best: lm_weight {best['lm_weight']} word_score {best['word_score']} (dev WER {best['dev_wer']:.2f}%)")
    print(f"decoding defaults stored in {store_decoding(args.model, best, args.out)}")
    return 0


def cmd_export(args) -> int:
    from asr.export import compare, export

    out = export(args.model, args.out, args.format)
    diff, same_lengths = compare(args.model, out)
    size = Path(out).stat().st_size / 2**20
    print(f"{out}: {args.format}, {size:.1f} MiB; max |log-prob difference| vs the bundle {diff:.2e} on a test "
          f"batch{'' if same_lengths else ' (OUTPUT LENGTHS DIFFER)'}")
    return 0 if same_lengths else 1


def cmd_score(args) -> int:
    from asr.score import record_result, score_files

    result = score_files(args.manifest, args.hyp, args.out_dir, allow_empty=bool(args.classes))
    print(result.summary(args.name))
    if args.classes:
        from asr.keyword import score_class_files

        print(score_class_files(args.manifest, args.hyp, args.classes, args.out_dir, args.name).summary(args.name))
    if args.results:
        record_result(args.results, args.name or str(args.manifest), result, args.model_label, args.config_label)
    return 0


def cmd_transcribe(args) -> int:
    from asr.recognizer import Recognizer
    from asr.transcribe import check_options, stream_to_outputs, transcribe_to_outputs

    check_options(args.format, args.nbest, _wants_beam(args), args.stream)  # before the model and LM load
    rec = Recognizer.load(args.model, args.device)
    _maybe_beam(rec, args)
    if args.stream:
        failed = stream_to_outputs(rec, args.files, args.block_ms, args.with_names, fmt=args.format,
                                   output_dir=args.output_dir)
    else:
        failed = transcribe_to_outputs(rec, args.files, args.format, args.output_dir, args.with_names,
                                       args.max_piece_s, nbest=args.nbest)
    return 1 if failed else 0


def cmd_serve(args) -> int:
    from asr.serve import serve
    from asr.serve_limits import LIMIT_HELP, Limits

    limits = Limits(**{k: getattr(args, k) for k in LIMIT_HELP})
    limits.check()
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"asr serve: warning: listening on {args.host} without --api-key: anyone who can reach it can use it",
              file=sys.stderr)
    return serve(args.model, args.host, args.port, args.api_key, limits, args.device)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="asr", description="RNN-CTC speech recognition toolkit.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    corpora = ["librispeech", "fsdd", "an4", "speech_commands"]
    s = sub.add_parser("download", help="fetch and extract a corpus (or take it from a local --source); "
                                        "librispeech-lm: an openslr 11 ARPA LM and the vocabulary")
    s.add_argument("corpus", choices=[*corpora, "librispeech-lm"])
    s.add_argument("dest", help="folder to download and extract into")
    s.add_argument("--source", help="local copy instead of the network: the archive, a folder holding it, "
                                    "or the extracted corpus folder")
    s.add_argument("--subsets", nargs="*", help="LibriSpeech: subsets, or 100h/460h/960h (default: 100h and the "
                                                "four dev/test sets); each must be in a local --source")
    s.add_argument("--lm", default="3-gram.pruned.1e-7", help="librispeech-lm: which LM (3-gram.pruned.3e-7, "
                   "3-gram.pruned.1e-7, 3-gram, 4-gram)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_download)

    s = sub.add_parser("prepare", help="write JSON Lines manifests from a corpus on disk")
    s.add_argument("corpus", choices=corpora, help="corpus layout")
    s.add_argument("src", help="corpus folder (e.g. the one holding LibriSpeech/, recordings/ or an4/; for "
                               "speech_commands the word folders, or the folder `asr download` filled)")
    s.add_argument("out", help="output folder for <set>.jsonl manifests")
    s.add_argument("--subsets", nargs="*", help="LibriSpeech: subset folder names (default: all found)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.set_defaults(func=cmd_prepare)

    s = sub.add_parser("merge", help="concatenate manifests into one (ids must be unique)")
    s.add_argument("out", help="manifest to write")
    s.add_argument("inputs", nargs="+", help="manifests to concatenate, in order")
    s.add_argument("--texts", help="keep only utterances whose transcript is one of this file's lines (e.g. a "
                                   "corpus's digit words)")
    s.set_defaults(func=cmd_merge)

    def manifest_to_file(name: str, help: str, section: str, out: str, key: str, func) -> None:
        """A subcommand CONFIG + MANIFEST → one file that training takes as `key`."""
        s = sub.add_parser(name, help=help)
        s.add_argument("--config", help=f"YAML config (its {section} section is used)")
        s.add_argument("manifest", help="training manifest")
        s.add_argument("out", help=f"{out} to write; pass it to training as {key}")
        s.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
        s.add_argument("--quiet", action="store_true", help="no progress bar")
        s.set_defaults(func=func)
        return s

    manifest_to_file("stats", "global mean/variance normalisation statistics of a training manifest", "features",
                     "statistics file (JSON)", "data.cmvn", cmd_stats)
    manifest_to_file("tokenizer", "build the configured tokenizer (characters or BPE) from a manifest", "tokenizer",
                     "tokenizer file (JSON)", "tokenizer.file", cmd_tokenizer)
    s = manifest_to_file("features", "precompute a manifest's features (every speed of features.speed_perturb) "
                         "into memory-mapped shards", "features", "cache folder", "data.feature_cache", cmd_features)
    s.add_argument("--dtype", choices=["float32", "float16"], default="float32",
                   help="storage type (float16 halves the size; values within ~0.01)")
    s.add_argument("--shard-mb", type=float, default=256.0, help="approximate size of each shard file")

    s = sub.add_parser("package", help="check an experiment's best model and write it, with its results, "
                                       "as one bundle")
    s.add_argument("exp", help="experiment folder (holding model.pt and optionally RESULTS.json)")
    s.add_argument("out", help="bundle file to write")
    s.set_defaults(func=cmd_package)

    s = sub.add_parser("average", help="average the weights of the last or best N epoch checkpoints")
    s.add_argument("exp", nargs="?", help="experiment folder (its checkpoints/epoch-*.pt)")
    s.add_argument("--n", type=int, default=5, help="how many checkpoints")
    s.add_argument("--by", choices=["last", "best"], default="last", help="last N epochs, or N best by dev WER")
    s.add_argument("--checkpoints", nargs="+", help="explicit bundle files instead of EXP")
    s.add_argument("--out", required=True, help="averaged bundle to write")
    s.set_defaults(func=cmd_average)

    s = sub.add_parser("summarize", help="table of several scored sets with their mean and worst WER")
    s.add_argument("scores", nargs="+", help="wer.json files written by `asr score --out-dir`")
    s.add_argument("--out", help="write the table (Markdown) here")
    s.add_argument("--title", default="summary")
    s.set_defaults(func=cmd_summarize)

    s = sub.add_parser("synth", help="speak a synthetic corpus with espeak-ng/flite in LibriSpeech layout")
    s.add_argument("out", help="output folder")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--train-utts", type=int, default=600)
    s.add_argument("--dev-utts", type=int, default=60)
    s.add_argument("--test-utts", type=int, default=80, help="utterances per test set")
    s.add_argument("--format", choices=["flac", "ogg"], default="flac", help="flac (LibriSpeech) or ogg (Opus, small)")
    s.add_argument("--words", help="instead of the corpus: every voice speaks each word of this file (one per "
                                   "line) --takes times, into OUT/words.jsonl (extra voices for FSDD's digits)")
    s.add_argument("--takes", type=int, default=2, help="--words: takes per voice and word, each with its own "
                                                         "rate and pitch")
    s.add_argument("--pitch-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                   help="espeak-ng voices: each utterance's pitch range drawn from LOW-HIGH %% of the voice's own "
                        "(at most 200; default: the voice's own range)")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_synth)

    s = sub.add_parser("train", help="train a model from a YAML config")
    s.add_argument("--config", required=True, help="YAML config file")
    s.add_argument("overrides", nargs="*", metavar="section.key=value", help="config overrides")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_train)

    s = sub.add_parser("decode", help="greedy-decode a manifest into a hypothesis file")
    s.add_argument("--model", required=True, action="append", help="model bundle (.pt); with --choices it can "
                   "be given again: the models' closed-set posteriors are averaged (an ensemble)")
    s.add_argument("--manifest", required=True)
    s.add_argument("--out", required=True, help="hypothesis file (JSON Lines)")
    s.add_argument("--batch-size", type=int, default=16)
    s.add_argument("--choices", help="closed-set decoding: file of allowed transcripts, one per line "
                                     "(each utterance gets the one with the highest CTC likelihood)")
    s.add_argument("--empty-choice", action="store_true", help="with --choices: the empty transcript (no speech, "
                                                              "e.g. Speech Commands' silence) is allowed too")
    s.add_argument("--nbest", type=int, default=1, help="also list up to N hypotheses per utterance with their "
                   "scores (beam search: distinct texts; --choices: the N most likely choices)")
    s.add_argument("--warps", help="with --choices: test-time frequency warps, e.g. 0.95,1,1.05,1.1 (each "
                   "utterance decoded at every warp of the mel axis; the posteriors averaged)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    _beam_args(s)
    s.set_defaults(func=cmd_decode)

    s = sub.add_parser("score", help="WER/CER of a hypothesis file against a manifest")
    s.add_argument("--manifest", required=True)
    s.add_argument("--hyp", required=True)
    s.add_argument("--out-dir", help="write wer.json and alignments.txt here")
    s.add_argument("--name", default="", help="label printed before the numbers (the set's row in --results)")
    s.add_argument("--results", help="add or replace this set's row in an experiment's RESULTS.md")
    s.add_argument("--model-label", default="", help="model column of the RESULTS.md row")
    s.add_argument("--config-label", default="", help="config column of the RESULTS.md row")
    s.add_argument("--classes", help="keyword classification (Speech Commands' labels.txt): also the top-1 "
                   "accuracy over these classes (a transcript that is exactly a class word is that class, an "
                   "empty one _silence_, any other _unknown_) and a confusion table (--out-dir: accuracy.json, "
                   "confusion.md); empty references (silence) are then allowed, their decoded words counting "
                   "as insertions")
    s.set_defaults(func=cmd_score)

    s = sub.add_parser("transcribe", help="transcribe audio files (one line of text per file)")
    s.add_argument("--model", required=True, help="model bundle (.pt)")
    s.add_argument("files", nargs="+", metavar="INPUT",
                   help="audio files (WAV, FLAC, OGG, ...; any rate and channel count); folders (their audio "
                        "files, recursively, in sorted order); @LIST: a file list, one path a line (# comments; "
                        "relative to the list's folder); - reads one file from stdin")
    s.add_argument("--with-names", action="store_true", help="prefix each line with the file name and a tab")
    s.add_argument("--stream", action="store_true",
                   help="streaming recognition (chunk-trained models): read each file in blocks, or raw 16-bit "
                        "16 kHz mono PCM from stdin for '-'; partial hypotheses on stderr, the final transcript "
                        "on stdout or in --output-dir, in any --format (greedy decoding only)")
    s.add_argument("--block-ms", type=float, default=100.0, help="--stream: audio block size in milliseconds")
    s.add_argument("--format", choices=["text", "json", "srt", "vtt"], default="text",
                   help="text: one line per file; json: text, duration, confidence and words with "
                        "start/end/score; srt/vtt: subtitles from word timestamps (CTC forced alignment)")
    s.add_argument("--output-dir", help="write one file per input (<name>.txt|json|srt|vtt) instead of stdout; "
                                        "a folder's files keep their layout under it")
    s.add_argument("--nbest", type=int, default=1, metavar="N",
                   help="beam search: up to N best distinct hypotheses per file with their scores (text: the "
                        "file's name, then one 'score<TAB>text' line each; json: an nbest list)")
    s.add_argument("--max-piece-s", type=float, default=20.0,
                   help="long audio is split at pauses into pieces of at most this many seconds")
    s.add_argument("--device", default="cpu")
    _beam_args(s)
    s.set_defaults(func=cmd_transcribe)

    s = sub.add_parser("serve", help="serve a model over HTTP: OpenAI-compatible /v1/audio/transcriptions, a "
                                     "Vosk-compatible streaming WebSocket, a web page (the serve extra)")
    s.add_argument("--model", required=True, help="model file (bundle, TorchScript, int8 or ONNX)")
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--api-key", default=os.environ.get("ASR_API_KEY"),
                   help="require 'Authorization: Bearer KEY' (or ?api_key=KEY) on everything but /healthz "
                        "(default: $ASR_API_KEY; none = open)")
    s.add_argument("--device", default="cpu")
    from asr.serve_limits import LIMIT_HELP

    for name, (default, help) in LIMIT_HELP.items():
        s.add_argument(f"--{name.replace('_', '-')}", dest=name, type=type(default), default=default, help=help)
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("export", help="export a model bundle as TorchScript, ONNX or int8 TorchScript (asr "
                                      "transcribe/decode take the result)")
    s.add_argument("--model", required=True, help="model bundle (.pt)")
    s.add_argument("--format", choices=["torchscript", "onnx", "int8"], required=True,
                   help="int8: dynamic quantisation of the RNN layers (CPU), saved as TorchScript")
    s.add_argument("--out", required=True, help="file to write (use .onnx for ONNX)")
    s.set_defaults(func=cmd_export)

    s = sub.add_parser("lm", help="build an ARPA n-gram LM (and, given the model's tokenizer, a lexicon) from text")
    s.add_argument("text", help="text corpus, one sentence per line (or a .jsonl manifest: its transcripts)")
    s.add_argument("out", help="folder to write lm.arpa and lexicon.txt")
    s.add_argument("--order", type=int, default=3)
    s.add_argument("--smoothing", choices=["kneser-ney", "witten-bell"], default="kneser-ney")
    s.add_argument("--model", help="model bundle whose tokenizer spells the lexicon")
    s.add_argument("--tokenizer", help="tokenizer file (asr tokenizer) instead of --model")
    s.set_defaults(func=cmd_lm)

    s = sub.add_parser("lexicon", help="spell a word list (or an ARPA LM's vocabulary) with a model's tokenizer")
    s.add_argument("--model", required=True, help="model bundle whose tokenizer spells the words")
    s.add_argument("words", help="word list (one per line, first column) or an ARPA file")
    s.add_argument("out", help="lexicon to write")
    s.set_defaults(func=cmd_lexicon)

    s = sub.add_parser("tune", help="grid-search LM weight and word insertion bonus on a dev set; store the best "
                                    "in the model bundle as its decoding defaults")
    s.add_argument("--model", required=True)
    s.add_argument("--manifest", required=True, help="dev manifest")
    s.add_argument("--lm", required=True)
    s.add_argument("--lexicon", required=True)
    s.add_argument("--lm-weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0, 3.0])
    s.add_argument("--word-scores", type=float, nargs="+", default=[-2.0, -1.0, 0.0, 1.0, 2.0])
    s.add_argument("--beam-size", type=int, default=50)
    s.add_argument("--out", help="bundle to write (default: update --model in place)")
    s.add_argument("--device", default="cpu")
    s.add_argument("--quiet", action="store_true")
    s.set_defaults(func=cmd_tune)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    overrides, rest = split_overrides(extra)
    if rest or (overrides and not hasattr(args, "overrides")):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if overrides:
        args.overrides = list(args.overrides) + overrides
    try:
        return args.func(args)
    except USER_ERRORS as exc:
        print(f"asr {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the system refused: a full disk, a permission, a path that is not a folder
        what = "no space left on device while writing" if exc.errno in FULL else f"{exc.strerror or exc}:"
        print(f"asr {args.command}: error: {what} {exc.filename or ''}".rstrip(), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
