import json

import pytest

from asr.corpus.librispeech import prepare
from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest


def test_roundtrip_and_relative_paths(tmp_path):
    utts = [Utterance("a", "audio/a.flac", 1.5, "s1", "HELLO"), Utterance("b", "/abs/b.flac", 2.0, "s2", "WORLD")]
    write_manifest(utts, tmp_path / "m.jsonl")
    back = read_manifest(tmp_path / "m.jsonl")
    assert back[0].audio == str(tmp_path / "audio/a.flac")
    assert back[1] == utts[1]


@pytest.mark.parametrize("line,message", [
    ("{not json", "not valid JSON"),
    (json.dumps({"id": "x", "audio": "x.wav", "duration": 1.0, "speaker": "s"}), "missing field"),
    (json.dumps({"id": "x", "audio": "x.wav", "duration": -1, "speaker": "s", "text": "A"}),
     "must be a positive number of seconds"),
    (json.dumps({"id": "x", "audio": "x.wav", "duration": "long", "speaker": "s", "text": "A"}), "must be a number"),
])
def test_bad_line_names_file_and_line(tmp_path, line, message):
    good = json.dumps({"id": "ok", "audio": "ok.wav", "duration": 1.0, "speaker": "s", "text": "A"})
    path = tmp_path / "bad.jsonl"
    path.write_text(good + "\n" + line + "\n")
    with pytest.raises(ManifestError, match=rf"bad.jsonl:2: .*{message}"):
        read_manifest(path)


def test_duplicate_ids_and_empty_manifest(tmp_path):
    line = json.dumps({"id": "x", "audio": "x.wav", "duration": 1.0, "speaker": "s", "text": "A"})
    (tmp_path / "dup.jsonl").write_text(line + "\n" + line + "\n")
    with pytest.raises(ManifestError, match="duplicate"):
        read_manifest(tmp_path / "dup.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ManifestError, match="no utterances"):
        read_manifest(tmp_path / "empty.jsonl")
    with pytest.raises(ManifestError, match="not found"):
        read_manifest(tmp_path / "missing.jsonl")


def test_prepare_librispeech_sample(speech_data, tmp_path):
    sample = speech_data.librispeech_sample()
    counts = prepare(sample, tmp_path, progress=False)
    assert counts == {"dev-clean": 1, "test-clean": 1}
    (utt,) = read_manifest(tmp_path / "dev-clean.jsonl")
    (trans,) = (sample / "LibriSpeech" / "dev-clean").rglob("*.trans.txt")
    utt_id, text = trans.read_text().split("\n")[0].split(" ", 1)
    assert utt.id == utt_id and utt.speaker == utt_id.split("-")[0]
    assert utt.text == text and len(text.split()) > 5
    assert 1.0 < utt.duration < 30.0


def test_prepare_reports_missing_audio(tmp_path):
    chapter = tmp_path / "src" / "train" / "1" / "2"
    chapter.mkdir(parents=True)
    (chapter / "1-2.trans.txt").write_text("1-2-0000 HELLO\n")
    with pytest.raises(ManifestError, match="no audio file for utterance 1-2-0000"):
        prepare(tmp_path / "src", tmp_path / "out", progress=False)


def test_merge_keeps_only_the_transcripts_asked_for(tmp_path, capsys):
    """`asr merge --texts FILE`: utterances whose transcript is a line of FILE, in input order; none left is an
    error naming the output and writing nothing."""
    from asr.cli import main

    for name, rows in {"a": [("a1", "THREE"), ("a2", "BED"), ("a3", "")], "b": [("b1", "ZERO"), ("b2", "YES")]}.items():
        utts = [Utterance(i, str(tmp_path / f"{i}.wav"), 1.0, "s", t) for i, t in rows]
        write_manifest(utts, tmp_path / f"{name}.jsonl")
    (tmp_path / "digits.txt").write_text("ZERO\nTHREE\n")
    out = tmp_path / "out.jsonl"
    assert main(["merge", str(out), str(tmp_path / "a.jsonl"), str(tmp_path / "b.jsonl"),
                 "--texts", str(tmp_path / "digits.txt")]) == 0
    assert [(u.id, u.text) for u in read_manifest(out)] == [("a1", "THREE"), ("b1", "ZERO")]
    (tmp_path / "none.txt").write_text("NINE\n")
    assert main(["merge", str(tmp_path / "x.jsonl"), str(tmp_path / "a.jsonl"), "--texts",
                 str(tmp_path / "none.txt")]) == 2
    err = capsys.readouterr().err
    assert "x.jsonl: no utterance" in err and not (tmp_path / "x.jsonl").exists()
    assert main(["merge", str(tmp_path / "x.jsonl"), str(tmp_path / "a.jsonl"), "--texts",
                 str(tmp_path / "missing.txt")]) == 2
    assert "missing.txt: --texts file not found" in capsys.readouterr().err
