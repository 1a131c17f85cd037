"""Benchmark: the demo model on voices of a synthesiser it never heard (issue 16 item 4).

The synthetic corpus is spoken by espeak-ng and flite; festival's English voices are kept out of it for this
check. Every model decodes (greedy) the test manifest as recorded (its own unseen voices, WER per voice) and
the same sentences spoken by each festival voice. Festival comes from Debian:

    apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts
    python bench/cross_voice.py --models exp/demo/model.pt --manifest exp/demo/data/test-unseen.jsonl \
        [--voices kal_diphone ...] [--n 100] [--out table.md]

Synthesised audio is kept under --work (default exp/cross-voice), one folder per voice, and reused.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

FESTIVAL_VOICES = ("kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts")


def festival_say(voice: str, text: str, out: Path) -> str | None:
    """Speak `text` with festival's `voice` into `out` (WAV); None, or the reason it failed."""
    if out.exists() and out.stat().st_size > 44:
        return None
    tmp = out.with_suffix(".tmp.wav")
    try:
        proc = subprocess.run(["text2wave", "-eval", f"(voice_{voice})", "-o", str(tmp)], input=text.lower(),
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if proc.returncode != 0 or not tmp.exists() or tmp.stat().st_size <= 44:
        tmp.unlink(missing_ok=True)
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        return lines[-1] if lines else f"text2wave exited with {proc.returncode}"
    if "SIOD ERROR" in proc.stderr or "not defined" in proc.stderr:  # an unknown voice still writes a default one
        tmp.unlink(missing_ok=True)
        return proc.stderr.strip().splitlines()[-1]
    tmp.replace(out)
    return None


def synthesise(utts, voices: list[str], work: Path) -> dict[str, list[Path]]:
    """{voice: one WAV per utterance}; a voice that fails on its first sentence is left out, with a warning."""
    from tqdm import tqdm

    out: dict[str, list[Path]] = {}
    for voice in voices:
        folder = work / voice
        folder.mkdir(parents=True, exist_ok=True)
        paths, problem = [], None
        for u in tqdm(utts, desc=f"festival {voice}", unit="utt", leave=False):
            path = folder / f"{u.id}.wav"
            problem = festival_say(voice, u.text, path)
            if problem:
                break
            paths.append(path)
        if problem:
            print(f"warning: festival voice {voice} left out: {problem}", file=sys.stderr)
            continue
        out[voice] = paths
    return out


def wer_of(rec, paths, utts) -> tuple[float, dict[str, float]]:
    """(WER %, {speaker: WER %}) of greedy decoding of `paths` against the texts of `utts`."""
    from asr.audio import load_audio
    from asr.score import by_speaker, compute

    hyps = [rec.transcribe_wave(torch.from_numpy(load_audio(p)).float()) for p in paths]
    per = by_speaker(utts, hyps)
    return compute([u.text for u in utts], hyps).wer, {s: compute(r, h).wer for s, (r, h) in per.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", required=True, help="model bundles to compare")
    p.add_argument("--manifest", required=True, help="test manifest (its texts are what festival says)")
    p.add_argument("--voices", nargs="+", default=list(FESTIVAL_VOICES), help="festival voice names")
    p.add_argument("--n", type=int, default=100, help="first N utterances of the manifest")
    p.add_argument("--work", default=str(REPO / "exp" / "cross-voice"), help="synthesised audio")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", help="also write the Markdown table here")
    args = p.parse_args(argv)
    from asr.manifest import read_manifest
    from asr.recognizer import Recognizer

    if shutil.which("text2wave") is None:
        p.error("festival's text2wave is not installed (apt-get install festival festvox-kallpc16k ...)")
    torch.set_num_threads(args.threads)
    utts = read_manifest(args.manifest)[: args.n]
    spoken = synthesise(utts, args.voices, Path(args.work))
    if not spoken:
        p.error("no festival voice could speak (see the warnings above)")
    voices = list(spoken)
    lines = [f"greedy WER % on the first {len(utts)} utterances of {args.manifest}: as recorded (per voice: "
             "min-max over its speakers), and spoken by each festival voice", "",
             "| model | as recorded | its voices | " + " | ".join(voices) + " | festival mean |",
             "| --- | ---: | --- |" + " ---: |" * (len(voices) + 1)]
    for model in args.models:
        rec = Recognizer.load(model)
        own, per = wer_of(rec, [u.audio for u in utts], utts)
        fest = [wer_of(rec, spoken[v], utts)[0] for v in voices]
        span = f"{min(per.values()):.1f}-{max(per.values()):.1f}"
        lines.append(f"| {model} | {own:.2f} | {span} | " + " | ".join(f"{w:.2f}" for w in fest)
                     + f" | {sum(fest) / len(fest):.2f} |")
        print(lines[-1], file=sys.stderr)
    table = "\n".join(lines) + "\n"
    print(table)
    if args.out:
        Path(args.out).write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
