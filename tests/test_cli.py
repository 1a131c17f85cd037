import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from asr.cli import build_parser, main
from conftest import REPO

TINY = ["features.speed_perturb=[1.0]", "model.hidden_size=48", "model.num_layers=1", "model.conv_channels=8",
        "train.epochs=3", "train.warmup_steps=5", "train.batch_size=8"]


@pytest.fixture(scope="module")
def trained(digit_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cli")
    assert main(["prepare", "librispeech", str(digit_corpus.parent), str(out / "data"), "--quiet"]) == 0
    conf = out / "conf.yaml"
    conf.write_text(f"data:\n  train: {out / 'data/train.jsonl'}\n  dev: {out / 'data/dev.jsonl'}\n")
    assert main(["train", "--config", str(conf), f"train.exp_dir={out / 'exp'}", "--quiet", *TINY]) == 0
    return out


def test_prepare_train_decode_score(trained, capsys):
    out = trained
    model = out / "exp" / "model.pt"
    assert model.is_file()
    assert main(["decode", "--model", str(model), "--manifest", str(out / "data/dev.jsonl"),
                 "--out", str(out / "hyp.jsonl"), "--quiet"]) == 0
    assert main(["score", "--manifest", str(out / "data/dev.jsonl"), "--hyp", str(out / "hyp.jsonl"),
                 "--out-dir", str(out / "score"), "--name", "dev"]) == 0
    assert "dev: WER" in capsys.readouterr().out
    assert (out / "score" / "alignments.txt").is_file()


def test_transcribe_mixed_good_and_bad_files(trained, speech_data, tmp_path, capsys):
    good = speech_data.digits(speakers=("cal",), takes=range(1, 2), digits=range(2))
    stereo = tmp_path / "stereo44k.flac"
    data, sr = sf.read(good[0], dtype="float32")
    sf.write(stereo, np.stack([data, data], 1), sr, format="FLAC")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    corrupt = tmp_path / "corrupt.ogg"
    corrupt.write_bytes(b"OggS" + b"\x00" * 50)
    files = [good[0], tmp_path / "missing.wav", empty, corrupt, stereo, good[1]]
    code = main(["transcribe", "--model", str(trained / "exp" / "model.pt"), *map(str, files)])
    captured = capsys.readouterr()
    assert code != 0
    assert len(captured.out.splitlines()) == 3  # the three readable files are still transcribed
    errors = captured.err.splitlines()
    assert len(errors) == 3
    assert "missing.wav" in errors[0] and "empty.wav" in errors[1] and "corrupt.ogg" in errors[2]


def test_unknown_config_key_is_a_clear_error(tmp_path, capsys):
    conf = tmp_path / "c.yaml"
    conf.write_text("model:\n  hidden: 3\n")
    assert main(["train", "--config", str(conf)]) == 2
    assert "unknown config key model.hidden" in capsys.readouterr().err


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert main(["transcribe", "--model", str(tmp_path / "none.pt"), "x.wav"]) == 2
    assert "model file not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["prepare", "synth", "train", "decode", "score", "transcribe"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args([command, "--help"])
    assert exc.value.code == 0
    assert "usage: asr " + command in capsys.readouterr().out


@pytest.mark.slow
def test_python_dash_m_entry_point():
    result = subprocess.run([sys.executable, "-m", "asr", "--help"], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0 and "transcribe" in result.stdout
