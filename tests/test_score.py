import errno
import json
import os
from pathlib import Path

import pytest

from asr.decode import write_hypotheses
from asr.fileio import DiskFullError
from asr.manifest import ManifestError, Utterance, write_manifest
from asr.score import compute, score_files


def test_wer_and_counts_on_hand_made_pairs():
    s = compute(["the cat sat", "on the mat"], ["the bat sat down", "on mat"])
    # errors: cat->bat (S), +down (I), -the (D): 3 errors / 6 words
    assert (s.substitutions, s.deletions, s.insertions, s.ref_words) == (1, 1, 1, 6)
    assert s.wer == pytest.approx(50.0)


def test_perfect_and_empty_hypotheses():
    assert compute(["a b c"], ["A B C"]).wer == 0.0
    s = compute(["a b c"], [""])
    assert s.wer == 100.0 and s.deletions == 3 and s.cer == 100.0


def test_cer():
    assert compute(["abcd"], ["abed"]).cer == pytest.approx(25.0)


def test_score_files_writes_report(tmp_path):
    write_manifest([Utterance("u1", "a.wav", 1.0, "s", "THE CAT SAT"), Utterance("u2", "b.wav", 1.0, "s", "HELLO")],
                   tmp_path / "m.jsonl")
    write_hypotheses({"u1": "THE BAT SAT", "u2": "HELLO"}, tmp_path / "h.jsonl")
    s = score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl", tmp_path / "report")
    assert s.wer == pytest.approx(25.0)
    assert json.loads((tmp_path / "report" / "wer.json").read_text())["substitutions"] == 1
    report = (tmp_path / "report" / "alignments.txt").read_text()
    assert "id: u1  errors: 1" in report and "THE BAT SAT" in report


def test_score_files_reports_each_speaker_worst_first(tmp_path):
    utts = [Utterance("a1", "a.wav", 1.0, "alice", "ONE TWO"), Utterance("a2", "b.wav", 1.0, "alice", "THREE"),
            Utterance("b1", "c.wav", 1.0, "bob", "FOUR FIVE"), Utterance("q1", "d.wav", 1.0, "quiet", "")]
    write_manifest(utts, tmp_path / "m.jsonl")
    write_hypotheses({"a1": "ONE TWO", "a2": "THREE", "b1": "FOUR", "q1": "SIX"}, tmp_path / "h.jsonl")
    score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl", tmp_path / "report", allow_empty=True)
    rows = [line.split("|")[1:-1] for line in (tmp_path / "report" / "speakers.md").read_text().splitlines()[2:]]
    rows = [[c.strip() for c in r] for r in rows]
    assert [r[0] for r in rows] == ["bob", "alice", "quiet"]
    assert rows[0][1] == "50.00" and rows[0][3:] == ["1", "2", "0", "1", "0"]  # one deletion of two words
    assert rows[1][1] == "0.00" and rows[1][3] == "2"
    assert rows[2][1] == "–" and rows[2][-1] == "1"  # silence only: the decoded word is an insertion


def test_one_speaker_writes_no_speaker_table(tmp_path):
    write_manifest([Utterance("u1", "a.wav", 1.0, "s", "A B")], tmp_path / "m.jsonl")
    write_hypotheses({"u1": "A"}, tmp_path / "h.jsonl")
    score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl", tmp_path / "report")
    assert (tmp_path / "report" / "wer.json").exists() and not (tmp_path / "report" / "speakers.md").exists()


def test_missing_hypothesis_is_an_error(tmp_path):
    write_manifest([Utterance("u1", "a.wav", 1.0, "s", "A")], tmp_path / "m.jsonl")
    write_hypotheses({"other": "A"}, tmp_path / "h.jsonl")
    with pytest.raises(ManifestError, match="no hypothesis for 1"):
        score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl")


def test_results_rows_are_per_set_and_replaced_on_rerun(tmp_path):
    from asr.score import compute, record_result

    md = tmp_path / "exp" / "RESULTS.md"
    md.parent.mkdir()
    record_result(md, "test-clean", compute(["A B C D"], ["A B C X"]), "m.pt", "c.yaml")
    record_result(md, "test-other", compute(["A B"], ["A B"]), "m.pt", "c.yaml")
    record_result(md, "test-clean", compute(["A B C D"], ["A B C D"]), "m.pt", "c.yaml")  # rerun
    rows = [line for line in md.read_text().splitlines() if line.startswith("| test-")]
    assert len(rows) == 2
    clean = next(r for r in rows if r.startswith("| test-clean"))
    assert "| 0.00 |" in clean and "| 1 | 4 |" in clean


def test_summarize_mean_and_worst(tmp_path):
    import json

    from asr.score import summarize

    files = []
    for name, wer in (("loso-a", 10.0), ("loso-b", 30.0)):
        f = tmp_path / name / "decode" / "test" / "wer.json"
        f.parent.mkdir(parents=True)
        f.write_text(json.dumps({"wer": wer, "cer": wer / 2, "utterances": 5, "ref_words": 5}))
        files.append(f)
    text = summarize(files, tmp_path / "S.md")
    assert "| **mean of 2** | 20.00 | 10.00 |" in text and "**worst** (loso-b/test) | 30.00" in text
    assert (tmp_path / "S.md").read_text() == text


def disk_full_half_way(monkeypatch, name: str) -> None:
    """Writing a file whose name contains `name` stops half-way with a full disk (temporary files included)."""
    real = Path.write_text

    def write_text(self, data, *args, **kwargs):
        if name not in self.name:
            return real(self, data, *args, **kwargs)
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", write_text)


@pytest.mark.parametrize("failing", ["wer.json", "alignments.txt"])
def test_a_report_write_that_fails_half_way_keeps_the_previous_report(tmp_path, monkeypatch, failing):
    write_manifest([Utterance("u1", "a.wav", 1.0, "s", "THE CAT SAT")], tmp_path / "m.jsonl")
    write_hypotheses({"u1": "THE CAT SAT"}, tmp_path / "h.jsonl")
    report = tmp_path / "report"
    score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl", report)
    before = (report / failing).read_text()
    write_hypotheses({"u1": "A BAT SAT DOWN"}, tmp_path / "h.jsonl")
    disk_full_half_way(monkeypatch, failing)
    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl", report)
    assert (report / failing).read_text() == before
    assert sorted(os.listdir(report)) == ["alignments.txt", "wer.json"]  # no temporary file left behind


@pytest.mark.parametrize("failing", ["RESULTS.json", "RESULTS.md", "S.md"])
def test_results_and_summary_writes_that_fail_half_way_keep_the_previous_file(tmp_path, monkeypatch, failing):
    from asr.score import record_result, summarize

    wer = tmp_path / "exp" / "decode" / "test" / "wer.json"
    wer.parent.mkdir(parents=True)
    wer.write_text(json.dumps({"wer": 10.0, "cer": 5.0, "utterances": 5, "ref_words": 5}))
    md = tmp_path / "exp" / "RESULTS.md"
    record_result(md, "test", compute(["A B"], ["A B"]))
    summarize([wer], tmp_path / "S.md")
    target = tmp_path / failing if failing == "S.md" else md.with_name(failing)
    before = target.read_text()
    wer.write_text(json.dumps({"wer": 50.0, "cer": 25.0, "utterances": 5, "ref_words": 5}))
    disk_full_half_way(monkeypatch, failing)
    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        if failing == "S.md":
            summarize([wer], target)
        else:
            record_result(md, "test", compute(["A B"], ["A X"]))
    assert target.read_text() == before
    assert not [p for p in tmp_path.rglob("*") if p.name.startswith(".")]
