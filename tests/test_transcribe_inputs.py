"""What `asr transcribe` takes (files, folders, @lists) and where it writes; streaming in every output format."""

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.cli import main
from asr.pieces import join_nbest
from asr.transcribe import expand_inputs
from conftest import tone


@pytest.fixture(scope="module")
def untrained(tmp_path_factory):
    """A complete but untrained model bundle: enough to run every input and output path quickly."""
    from asr.bundle import make_bundle, save_bundle
    from asr.config import Config, FeatureConfig, ModelConfig
    from asr.model import AcousticModel
    from asr.text import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer()
    cfg = Config(features=FeatureConfig(n_mels=20), model=ModelConfig(hidden_size=16, num_layers=1, conv_channels=4))
    path = tmp_path_factory.mktemp("untrained") / "model.pt"
    save_bundle(make_bundle(AcousticModel(cfg.model, 20, tok.vocab_size), cfg, tok, torch.zeros(20), torch.ones(20)),
                path)
    return str(path)


def touch(*paths):
    for p in paths:
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")


def test_folders_and_file_lists_expand_in_a_fixed_order(tmp_path):
    corpus = tmp_path / "corpus"
    touch(corpus / "b" / "x.wav", corpus / "a" / "x.flac", corpus / "a" / "sub" / "y.WAV", corpus / "c.ogg",
          corpus / "a" / "notes.txt", corpus / "a" / "._x.wav", corpus / ".cache" / "z.wav",
          tmp_path / "empty" / "n.txt")
    found = [(corpus / "a" / "sub" / "y.WAV", "a/sub/y"), (corpus / "a" / "x.flac", "a/x"),
             (corpus / "b" / "x.wav", "b/x"), (corpus / "c.ogg", "c")]
    assert expand_inputs([str(corpus)]) == ([(str(f), name) for f, name in found], [])

    lists = tmp_path / "lists"
    lists.mkdir()
    absolute = tmp_path / "elsewhere" / "abs.opus"
    touch(absolute)
    (lists / "batch.txt").write_text(f"# tonight's batch\n\n../corpus/b/x.wav\n  ../corpus/a  \n{absolute}\n"
                                     "missing.wav\n-\n")
    (lists / "comments.txt").write_text("# nothing yet\n\n")
    inputs, errors = expand_inputs(["-", f"@{lists / 'batch.txt'}", f"@{lists / 'none.txt'}", str(tmp_path / "empty"),
                                    f"@{lists}", f"@{lists / 'comments.txt'}", str(tmp_path / "loose.wav")])
    assert inputs == [("-", "stdin"), (str(lists / "../corpus/b/x.wav"), "x"),
                      (str(lists / "../corpus/a/sub/y.WAV"), "sub/y"), (str(lists / "../corpus/a/x.flac"), "x"),
                      (str(absolute), "abs"), (str(lists / "missing.wav"), "missing"), (str(lists / "-"), "-"),
                      (str(tmp_path / "loose.wav"), "loose")]  # missing files fail later, with their own line
    assert errors == [f"{lists / 'none.txt'}: file list not found",
                      f"{tmp_path / 'empty'}: no audio files in this folder or below (looked for .aif .aifc .aiff .au "
                      ".caf .flac .mp3 .oga .ogg .opus .rf64 .snd .sph .w64 .wav)",
                      f"{lists}: is a directory, not a file list (give the folder itself, without @)",
                      f"{lists / 'comments.txt'}: the file list names no files"]


def test_a_folder_keeps_its_layout_in_the_output_folder_and_bad_inputs_do_not_stop_the_rest(untrained, tmp_path,
                                                                                              capsys):
    corpus = tmp_path / "corpus"
    for sub, seconds in (("a", 0.5), ("b", 0.7)):
        (corpus / sub).mkdir(parents=True)
        sf.write(corpus / sub / "x.wav", tone(seconds, freq=300.0), 16000)
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.txt").write_text("# one of them again\ncorpus/b/x.wav\n")
    out = tmp_path / "out"
    args = ["transcribe", "--model", untrained, str(corpus), f"@{tmp_path / 'missing.txt'}", str(tmp_path / "empty")]
    assert main([*args, "--output-dir", str(out), "--format", "json"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "missing.txt: file list not found" in err[0] and "empty: no audio files" in err[1]
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == ["a/x.json", "b/x.json"]
    assert json.loads((out / "b" / "x.json").read_text())["duration"] == pytest.approx(0.7)

    assert main(["transcribe", "--model", untrained, str(corpus), f"@{tmp_path / 'list.txt'}", "--with-names"]) == 0
    names = [line.split("\t")[0] for line in capsys.readouterr().out.splitlines()]
    assert names == [str(corpus / "a" / "x.wav"), str(corpus / "b" / "x.wav"), str(tmp_path / "corpus" / "b" / "x.wav")]

    # a list names files, not a layout: two of them with one name still collide, and nothing is written
    (tmp_path / "both.txt").write_text("corpus/a/x.wav\ncorpus/b/x.wav\n")
    assert main(["transcribe", "--model", untrained, f"@{tmp_path / 'both.txt'}", "--output-dir",
                 str(tmp_path / "out2")]) == 2
    err = capsys.readouterr().err
    assert "would both be written to" in err and "x.txt" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "out2").exists()


def test_options_that_do_not_go_together_are_refused_in_one_line(untrained, tone_file, capsys):
    for extra, message in ((["--nbest", "2"], "--nbest 2 needs beam search"),
                           (["--nbest", "0"], "--nbest must be a whole number of at least 1, not 0"),
                           (["--nbest", "2", "--beam-size", "4", "--format", "srt"], "needs --format text or json"),
                           (["--nbest", "5", "--beam-size", "4"], "--nbest 5 is more than the beam size (4)"),
                           (["--stream", "--nbest", "2"], "--stream does not support --nbest")):
        assert main(["transcribe", "--model", untrained, str(tone_file), *extra]) == 2, extra
        captured = capsys.readouterr()
        assert captured.err.startswith("asr transcribe: error: ") and message in captured.err, (extra, captured.err)
        assert len(captured.err.splitlines()) == 1 and not captured.out


def test_nbest_lists_of_consecutive_pieces_join_into_the_best_sums():
    first = [("SIX", -1.0), ("FIVE", -2.0), ("", -4.0)]
    then = [("ONE", -0.5), ("", -3.0)]
    assert join_nbest(first, then, 4) == [("SIX ONE", -1.5), ("FIVE ONE", -2.5), ("SIX", -4.0), ("ONE", -4.5)]
    # two ways to one text keep the better score
    assert join_nbest([("A", -1.0), ("", -1.5)], [("", -1.0), ("A", -0.2)], 3) == \
        [("A A", -1.2), ("A", -1.7), ("", -2.5)]


@pytest.fixture(scope="module")
def three_digits(speech_data, tmp_path_factory):
    files = speech_data.digits(speakers=("ava",), takes=(5,), digits=(3, 1, 7))
    clips = [sf.read(f, dtype="float32")[0] for f in files]
    path = tmp_path_factory.mktemp("three") / "three.wav"
    gap = np.zeros(2400, np.float32)
    sf.write(path, np.concatenate([np.zeros(4000, np.float32), clips[0], gap, clips[1], gap, clips[2]]), 8000)
    return path


def test_streaming_writes_json_and_subtitles_as_the_offline_transcription_does(chunked_digits_model, three_digits,
                                                                               tmp_path, capfd):
    model = str(chunked_digits_model[1])
    assert main(["transcribe", "--model", model, str(three_digits), "--format", "json"]) == 0
    offline = json.loads(capfd.readouterr().out)
    assert main(["transcribe", "--stream", "--block-ms", "30", "--model", model, str(three_digits),
                 "--format", "json"]) == 0
    captured = capfd.readouterr()
    streamed = json.loads(captured.out)
    assert "partial" in captured.err and offline["words"] and offline["text"]
    # the speech starts after half a second of silence; timed as offline, from the concatenated chunks
    assert offline["words"][0]["start"] >= 0.45 and offline["words"][-1]["end"] <= offline["duration"]
    assert streamed["text"] == offline["text"] and streamed["duration"] == offline["duration"]
    assert [(w["word"], w["start"], w["end"]) for w in streamed["words"]] == \
        [(w["word"], w["start"], w["end"]) for w in offline["words"]]
    assert [w["score"] for w in streamed["words"]] == pytest.approx([w["score"] for w in offline["words"]], abs=2e-3)
    assert 0 < streamed["confidence"] == pytest.approx(offline["confidence"], abs=1e-3)

    for mode in ([], ["--stream"]):
        assert main(["transcribe", *mode, "--model", model, str(three_digits), "--format", "srt",
                     "--output-dir", str(tmp_path / (mode[0][2:] if mode else "offline"))]) == 0
    assert (tmp_path / "stream" / "three.srt").read_text() == (tmp_path / "offline" / "three.srt").read_text()
    assert (tmp_path / "stream" / "three.srt").read_text().startswith("1\n00:00:0")


def test_streaming_beam_search_with_a_lexicon_and_lm_ends_as_the_offline_search(chunked_digits_model, three_digits,
                                                                              tmp_path, capfd):
    """The beam search runs incrementally over the chunks (flashlight's decode_step) and ends with the text of
    the one-call search over the whole file; lexicon-free beam search too."""
    folder, model = chunked_digits_model
    lm = tmp_path / "lm"
    assert main(["lm", str(folder / "data" / "train.jsonl"), str(lm), "--model", str(model)]) == 0
    capfd.readouterr()
    for beam in (["--beam-size", "8"], ["--lm", str(lm / "lm.arpa"), "--lexicon", str(lm / "lexicon.txt")]):
        assert main(["transcribe", "--model", str(model), str(three_digits), "--format", "json", *beam]) == 0
        offline = json.loads(capfd.readouterr().out)
        assert main(["transcribe", "--stream", "--block-ms", "50", "--model", str(model), str(three_digits),
                     "--format", "json", *beam]) == 0
        captured = capfd.readouterr()
        streamed = json.loads(captured.out)
        assert offline["text"] and streamed["text"] == offline["text"], (beam, streamed, offline)
        assert [w["word"] for w in streamed["words"]] == offline["text"].split()
        partials = [line.split(": ", 1)[1] for line in captured.err.splitlines() if line.startswith("partial")]
        assert partials and partials[-1] != "" and len(set(partials)) >= 2, captured.err

