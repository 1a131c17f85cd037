"""Scoring with jiwer: WER, CER, error counts, and a per-utterance alignment report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer

from asr.fileio import atomic_path
from asr.text import normalize


@dataclass(frozen=True)
class Score:
    wer: float  # percent
    cer: float  # percent
    substitutions: int
    deletions: int
    insertions: int
    ref_words: int
    utterances: int

    def summary(self, name: str = "") -> str:
        head = f"{name}: " if name else ""
        return (f"{head}WER {self.wer:.2f}% CER {self.cer:.2f}% "
                f"[S {self.substitutions} D {self.deletions} I {self.insertions} / {self.ref_words} words, "
                f"{self.utterances} utts]")


def compute(refs: list[str], hyps: list[str], allow_empty: bool = False) -> Score:
    """WER and CER (percent) of normalised hypotheses against normalised references.

    With `allow_empty`, a reference may be empty (a keyword task's silence): every word and character
    decoded for it counts as an insertion."""
    refs = [normalize(r) for r in refs]
    hyps = [normalize(h) for h in hyps]
    if not refs or (not allow_empty and any(not r for r in refs)):
        raise ValueError("every reference must contain at least one word")
    if not any(refs):
        raise ValueError("no reference contains a word")
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return Score(100 * words.wer, 100 * chars.cer, words.substitutions, words.deletions, words.insertions,
                 sum(len(r.split()) for r in refs), len(refs))


def score_files(manifest: str | Path, hyp_file: str | Path, out_dir: str | Path | None = None,
                allow_empty: bool = False) -> Score:
    """Score a hypothesis file against a manifest; every manifest utterance must have a hypothesis. Empty
    references are refused unless `allow_empty` (see `compute`).

    With `out_dir`, writes `wer.json` (the numbers), `alignments.txt` (reference, hypothesis and
    word alignment per utterance) and, when the set has more than one speaker, `speakers.md` (WER and CER
    per speaker, worst first), each atomically."""
    from asr.manifest import ManifestError, read_hypotheses, read_manifest

    utts = read_manifest(manifest)
    hyps = read_hypotheses(hyp_file)
    missing = [u.id for u in utts if u.id not in hyps]
    if missing:
        raise ManifestError(f"{hyp_file}: no hypothesis for {len(missing)} utterance(s), e.g. {missing[0]}")
    refs = [u.text for u in utts]
    empty = [u.id for u in utts if not normalize(u.text)]
    if empty and not allow_empty:
        raise ManifestError(f"{manifest}: utterance {empty[0]} has an empty reference text ({len(empty)} such "
                            "utterance(s)); word error rates need at least one reference word")
    hyp_list = [hyps[u.id] for u in utts]
    result = compute(refs, hyp_list, allow_empty)
    if out_dir is not None:
        out = Path(out_dir)
        with atomic_path(out / "wer.json") as tmp:
            tmp.write_text(json.dumps(asdict(result), indent=2) + "\n")
        with atomic_path(out / "alignments.txt") as tmp:
            tmp.write_text(alignment_report([u.id for u in utts], refs, hyp_list))
        if len({u.speaker for u in utts}) > 1:
            with atomic_path(out / "speakers.md") as tmp:
                tmp.write_text(speaker_table(utts, hyp_list))
    return result


def by_speaker(utts: list, hyps: list[str]) -> dict[str, tuple[list[str], list[str]]]:
    """{speaker: (its references, its hypotheses)} of manifest utterances `utts` and their hypotheses."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for u, h in zip(utts, hyps):
        refs, hs = out.setdefault(u.speaker, ([], []))
        refs.append(u.text)
        hs.append(h)
    return out


def speaker_table(utts: list, hyps: list[str]) -> str:
    """A markdown table of WER and CER per speaker (`utts`: manifest utterances, `hyps`: their hypotheses),
    worst WER first; a speaker with no reference word (silence only) is listed last with its insertions."""
    rows, silent = [], []
    for speaker, (refs, hs) in by_speaker(utts, hyps).items():
        if any(normalize(r) for r in refs):
            s = compute(refs, hs, allow_empty=True)
            rows.append((s.wer, f"| {speaker} | {s.wer:.2f} | {s.cer:.2f} | {s.utterances} | {s.ref_words} | "
                                f"{s.substitutions} | {s.deletions} | {s.insertions} |"))
        else:
            inserted = sum(len(normalize(h).split()) for h in hs)
            silent.append(f"| {speaker} | – | – | {len(refs)} | 0 | 0 | 0 | {inserted} |")
    rows.sort(key=lambda r: -r[0])
    return ("| speaker | WER % | CER % | #utts | #words | S | D | I |\n"
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            + "".join(line + "\n" for _, line in rows) + "".join(line + "\n" for line in silent))


def alignment_report(ids: list[str], refs: list[str], hyps: list[str]) -> str:
    """One block per utterance: id, REF, HYP and an S/D/I marker line (jiwer's alignment)."""
    blocks = []
    for utt_id, ref, hyp in zip(ids, refs, hyps):
        out = jiwer.process_words(normalize(ref), normalize(hyp))
        text = jiwer.visualize_alignment(out, show_measures=False, skip_correct=False)
        body = "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("==="))
        blocks.append(f"id: {utt_id}  errors: {out.substitutions + out.deletions + out.insertions}\n{body}\n")
    return "\n".join(blocks)


RESULTS_HEADER = ("| set | WER % | CER % | #utts | #words | S | D | I | model | config | date |\n"
                  "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n")


def _results_row(r: dict) -> str:
    return (f"| {r['set']} | {r['wer']:.2f} | {r['cer']:.2f} | {r['utterances']} | {r['ref_words']} | "
            f"{r['substitutions']} | {r['deletions']} | {r['insertions']} | {r['model']} | {r['config']} | "
            f"{r['date']} |\n")


def record_result(results_md: str | Path, set_name: str, score: Score, model: str = "", config: str = "") -> None:
    """Add (or replace) the row of one test set in an experiment's RESULTS.md.

    Rows live in RESULTS.json beside it, keyed by set name, so every test set keeps its own row and a
    rerun replaces its row instead of adding a second; sets are never pooled."""
    import datetime

    md = Path(results_md)
    store = md.with_suffix(".json")
    rows = json.loads(store.read_text()) if store.is_file() else []
    rows = [r for r in rows if r["set"] != set_name]
    rows.append({"set": set_name, **asdict(score), "model": model, "config": config,
                 "date": datetime.date.today().isoformat()})
    with atomic_path(store) as tmp:
        tmp.write_text(json.dumps(rows, indent=2) + "\n")
    title = md.parent.name or "results"
    with atomic_path(md) as tmp:
        tmp.write_text(f"# Results: {title}\n\nGreedy or constrained decoding as the experiment's decode stage "
                       f"ran it; one row per test set (never pooled).\n\n" + training_note(md.parent) +
                       RESULTS_HEADER + "".join(_results_row(r) for r in rows))


def training_note(exp: Path) -> str:
    """A RESULTS.md line on how far the experiment's training went (from exp/training.json), loud when a
    time or step budget stopped it before its planned epochs."""
    path = exp / "training.json"
    try:
        t = json.loads(path.read_text())
        planned, last = int(t["epochs_planned"]), int(t["last_epoch"])
    except FileNotFoundError:
        return ""
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"Training summary {path} unreadable ({e}).\n\n"
    if t.get("stopped_early"):
        return (f"**Training STOPPED EARLY: {t['stopped_early']}.** These numbers are for a model trained "
                f"{last - 1} full epoch(s) of the {planned} planned, plus part of epoch {last}.\n\n")
    return (f"Training: {last} of {planned} epochs, {t.get('steps', '?')} steps, "
            f"best epoch {t.get('best_epoch', '?')}.\n\n")


def summarize(wer_files: list[str | Path], out: str | Path | None = None, title: str = "summary") -> str:
    """A table of several scored sets (e.g. the folds of a leave-one-speaker-out evaluation) with the mean
    and the worst WER over them; each input is a `wer.json` written by `score_files`, named by its folder
    (`EXP/decode/SET/wer.json` → `EXP/SET`). Written to `out` when given; returned either way."""
    if not wer_files:
        raise ValueError("summarize: no wer.json files given")
    rows = []
    for f in wer_files:
        f = Path(f)
        if not f.is_file():
            raise FileNotFoundError(f"{f}: no such score file")
        obj = json.loads(f.read_text())
        name = f"{f.parent.parent.parent.name}/{f.parent.name}"
        rows.append((name, obj))
    wers = [o["wer"] for _, o in rows]
    cers = [o["cer"] for _, o in rows]
    worst = max(range(len(rows)), key=lambda i: wers[i])
    lines = [f"# {title}", "", "| set | WER % | CER % | #utts | #words |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {n} | {o['wer']:.2f} | {o['cer']:.2f} | {o['utterances']} | {o['ref_words']} |" for n, o in rows]
    lines += [f"| **mean of {len(rows)}** | {sum(wers) / len(wers):.2f} | {sum(cers) / len(cers):.2f} | | |",
              f"| **worst** ({rows[worst][0]}) | {wers[worst]:.2f} | {cers[worst]:.2f} | | |", ""]
    for exp in sorted({Path(f).parent.parent.parent for f in wer_files}):
        note = training_note(exp)
        if "STOPPED EARLY" in note or "unreadable" in note:
            lines += [f"{exp.name}: {note.strip()}", ""]
    text = "\n".join(lines)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(text)
    return text
