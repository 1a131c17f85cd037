"""Scoring with jiwer: WER, CER, error counts, and a per-utterance alignment report."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import jiwer

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


def compute(refs: list[str], hyps: list[str]) -> Score:
    """WER and CER (percent) of normalised hypotheses against normalised references."""
    refs = [normalize(r) for r in refs]
    hyps = [normalize(h) for h in hyps]
    if not refs or any(not r for r in refs):
        raise ValueError("every reference must contain at least one word")
    words = jiwer.process_words(refs, hyps)
    chars = jiwer.process_characters(refs, hyps)
    return Score(100 * words.wer, 100 * chars.cer, words.substitutions, words.deletions, words.insertions,
                 sum(len(r.split()) for r in refs), len(refs))


def score_files(manifest: str | Path, hyp_file: str | Path, out_dir: str | Path | None = None) -> Score:
    """Score a hypothesis file against a manifest; every manifest utterance must have a hypothesis.

    With `out_dir`, writes `wer.json` (the numbers) and `alignments.txt` (reference, hypothesis and
    word alignment per utterance)."""
    from asr.decode import read_hypotheses
    from asr.manifest import ManifestError, read_manifest

    utts = read_manifest(manifest)
    hyps = read_hypotheses(hyp_file)
    missing = [u.id for u in utts if u.id not in hyps]
    if missing:
        raise ManifestError(f"{hyp_file}: no hypothesis for {len(missing)} utterance(s), e.g. {missing[0]}")
    refs = [u.text for u in utts]
    hyp_list = [hyps[u.id] for u in utts]
    result = compute(refs, hyp_list)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "wer.json").write_text(json.dumps(asdict(result), indent=2) + "\n")
        (out / "alignments.txt").write_text(alignment_report([u.id for u in utts], refs, hyp_list))
    return result


def alignment_report(ids: list[str], refs: list[str], hyps: list[str]) -> str:
    """One block per utterance: id, REF, HYP and an S/D/I marker line (jiwer's alignment)."""
    blocks = []
    for utt_id, ref, hyp in zip(ids, refs, hyps):
        out = jiwer.process_words(normalize(ref), normalize(hyp))
        text = jiwer.visualize_alignment(out, show_measures=False, skip_correct=False)
        body = "\n".join(line for line in text.splitlines() if line.strip() and not line.startswith("==="))
        blocks.append(f"id: {utt_id}  errors: {out.substitutions + out.deletions + out.insertions}\n{body}\n")
    return "\n".join(blocks)
