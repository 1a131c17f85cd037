import json

import pytest

from asr.decode import write_hypotheses
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


def test_missing_hypothesis_is_an_error(tmp_path):
    write_manifest([Utterance("u1", "a.wav", 1.0, "s", "A")], tmp_path / "m.jsonl")
    write_hypotheses({"other": "A"}, tmp_path / "h.jsonl")
    with pytest.raises(ManifestError, match="no hypothesis for 1"):
        score_files(tmp_path / "m.jsonl", tmp_path / "h.jsonl")
