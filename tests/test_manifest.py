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
