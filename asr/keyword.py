"""Keyword classification scoring (Speech Commands' twelve classes): a transcript → its class, top-1 accuracy
and a confusion table.

A transcript that is exactly one of the command words is that class, an empty one is `_silence_`, anything
else is `_unknown_`. References and hypotheses go through the same mapping, so the classes of a manifest
follow from its transcripts."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from asr.fileio import atomic_path
from asr.text import normalize

UNKNOWN, SILENCE = "_unknown_", "_silence_"


def read_classes(path: str | Path) -> tuple[str, ...]:
    """A classes file (`labels.txt`: one class a line, the command words plus `_unknown_` and `_silence_`)."""
    from asr.manifest import ManifestError, text_lines

    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: classes file not found")
    classes = tuple(line.strip() for _, line in text_lines(path))
    for c in classes:
        if c not in (UNKNOWN, SILENCE) and (not normalize(c) or normalize(c) != c.upper()):
            raise ManifestError(f"{path}: class {c!r} is neither a word (letters, apostrophes, spaces) nor "
                                f"{UNKNOWN} or {SILENCE}")
    missing = [c for c in (UNKNOWN, SILENCE) if c not in classes]
    if missing:
        raise ManifestError(f"{path}: the classes must include {' and '.join(missing)}")
    if len(set(classes)) != len(classes):
        raise ManifestError(f"{path}: a class is listed twice")
    return classes


def to_class(text: str, classes: tuple[str, ...]) -> str:
    """The class of a transcript: the command it is exactly, `_silence_` when empty, else `_unknown_`."""
    words = normalize(text)
    if not words:
        return SILENCE
    for c in classes:
        if c not in (UNKNOWN, SILENCE) and words == c.upper():
            return c
    return UNKNOWN


@dataclass(frozen=True)
class ClassScore:
    accuracy: float  # percent
    correct: int
    utterances: int
    classes: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]  # [reference class][hypothesis class] counts, in `classes` order

    def summary(self, name: str = "") -> str:
        head = f"{name}: " if name else ""
        return (f"{head}accuracy {self.accuracy:.2f}% ({self.correct} of {self.utterances} utts, "
                f"{len(self.classes)} classes)")


def classify(refs: list[str], hyps: list[str], classes: tuple[str, ...]) -> ClassScore:
    """Top-1 accuracy and the confusion counts of hypothesis transcripts against reference transcripts."""
    if not refs or len(refs) != len(hyps):
        raise ValueError("classify: need as many hypotheses as references, and at least one")
    index = {c: i for i, c in enumerate(classes)}
    table = [[0] * len(classes) for _ in classes]
    for r, h in zip(refs, hyps):
        table[index[to_class(r, classes)]][index[to_class(h, classes)]] += 1
    correct = sum(table[i][i] for i in range(len(classes)))
    return ClassScore(100.0 * correct / len(refs), correct, len(refs), tuple(classes),
                      tuple(tuple(row) for row in table))


def confusion_markdown(score: ClassScore, title: str = "") -> str:
    """The accuracy line and the confusion table (rows: reference class, columns: hypothesis class)."""
    lines = [f"# {title}", ""] if title else []
    lines += [score.summary(), "", "Rows: reference class; columns: decoded class; last column: per-class "
              "accuracy (recall).", ""]
    lines.append("| ref \\ hyp | " + " | ".join(score.classes) + " | total | recall % |")
    lines.append("| --- |" + " ---: |" * (len(score.classes) + 2))
    for c, row in zip(score.classes, score.confusion):
        total = sum(row)
        recall = f"{100.0 * row[score.classes.index(c)] / total:.1f}" if total else "-"
        lines.append(f"| {c} | " + " | ".join(str(n) for n in row) + f" | {total} | {recall} |")
    return "\n".join(lines) + "\n"


def score_class_files(manifest: str | Path, hyp_file: str | Path, classes_file: str | Path,
                      out_dir: str | Path | None = None, title: str = "") -> ClassScore:
    """Class accuracy of a hypothesis file against a manifest; with `out_dir`, writes `accuracy.json` and
    `confusion.md`, each atomically."""
    from asr.manifest import ManifestError, read_hypotheses, read_manifest

    classes = read_classes(classes_file)
    utts = read_manifest(manifest)
    hyps = read_hypotheses(hyp_file)
    missing = [u.id for u in utts if u.id not in hyps]
    if missing:
        raise ManifestError(f"{hyp_file}: no hypothesis for {len(missing)} utterance(s), e.g. {missing[0]}")
    result = classify([u.text for u in utts], [hyps[u.id] for u in utts], classes)
    if out_dir is not None:
        out = Path(out_dir)
        with atomic_path(out / "accuracy.json") as tmp:
            tmp.write_text(json.dumps(asdict(result), indent=2) + "\n")
        with atomic_path(out / "confusion.md") as tmp:
            tmp.write_text(confusion_markdown(result, title))
    return result
