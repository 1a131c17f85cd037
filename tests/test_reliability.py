"""Hostile input and faults: audio of any length, two runs on one experiment folder, a full disk, decoder files
that the LM loader rejects. Each case gives one clear line and loses nothing (RELIABILITY.md lists them)."""

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.bundle import make_bundle, save_bundle
from asr.config import Config, FeatureConfig, ModelConfig
from asr.model import AcousticModel
from asr.text import CharTokenizer
from conftest import tone

ASR = [sys.executable, "-m", "asr"]


def asr(*args, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([*ASR, *map(str, args)], capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """An untrained but complete model bundle (conv front end, trimming on): enough to run every input path."""
    torch.manual_seed(0)
    tok = CharTokenizer()
    cfg = Config(features=FeatureConfig(n_mels=40, trim_db=30.0), model=ModelConfig(hidden_size=16, num_layers=1,
                                                                                     conv_channels=4))
    model = AcousticModel(cfg.model, 40, tok.vocab_size)
    path = tmp_path_factory.mktemp("tiny") / "model.pt"
    save_bundle(make_bundle(model, cfg, tok, torch.zeros(40), torch.ones(40)), path)
    return path


# ---------------------------------------------------------------- audio of any length


@pytest.mark.parametrize("n", [0, 1, 10, 159, 160, 200, 201, 399, 400, 1000])
def test_features_of_every_length_have_the_documented_frame_count(n):
    from asr.features import LogMel

    feats = LogMel(FeatureConfig())(torch.randn(n))
    assert feats.shape == (1 + n // 160, 80) and torch.isfinite(feats).all()


def test_the_shortest_files_are_transcribed_and_do_not_stop_the_others(tiny_model, tmp_path):
    files = []
    for n in (1, 10, 150, 250, 1000):
        files.append(tmp_path / f"n{n}.wav")
        sf.write(files[-1], 0.5 * np.random.default_rng(n).standard_normal(n).astype(np.float32), 16000)
    click = np.zeros(16000, np.float32)
    click[8000:8160] = 0.9  # a 10 ms click in a second of silence: trimming keeps 10 ms
    sf.write(tmp_path / "click.wav", click, 16000)
    files.append(tmp_path / "click.wav")
    r = asr("transcribe", "--model", tiny_model, "--with-names", *files)
    assert r.returncode == 0, r.stderr
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(f) for f in files]
    # decoding a manifest holding such utterances works too
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"id": f.stem, "audio": str(f), "duration": sf.info(f).duration,
                                            "speaker": "s", "text": "A"}) + "\n" for f in files))
    r = asr("decode", "--model", tiny_model, "--manifest", manifest, "--out", tmp_path / "hyp.jsonl", "--quiet")
    assert r.returncode == 0, r.stderr
    assert len((tmp_path / "hyp.jsonl").read_text().splitlines()) == len(files)


# ---------------------------------------------------------------- one run per experiment folder


TRAIN = ["features.speed_perturb=[1.0]", "model.hidden_size=16", "model.num_layers=1", "model.conv_channels=4",
         "train.tensorboard=false", "train.batch_size=4", "train.epochs=400", "train.num_threads=1"]


def test_a_second_training_run_on_the_same_folder_is_refused_and_a_killed_ones_lock_taken_over(
        digit_corpus, tmp_path):
    from asr.corpus.librispeech import prepare

    prepare(digit_corpus, tmp_path / "data", progress=False)
    exp = tmp_path / "exp"
    args = ["train", "--config", os.devnull, "--quiet", f"data.train={tmp_path / 'data/train.jsonl'}",
            f"train.exp_dir={exp}", *TRAIN]
    first = subprocess.Popen([*ASR, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not ((exp / ".lock").is_file() and (exp / ".lock").read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        config_before = (exp / "config.yaml").read_text() if (exp / "config.yaml").exists() else None
        second = asr(*args[:-1], "train.epochs=1")  # another config: must not touch the folder at all
        assert second.returncode == 2
        assert f"in use by another training run (PID {first.pid})" in second.stderr
        assert len(second.stderr.strip().splitlines()) == 1
        if config_before is not None:
            assert (exp / "config.yaml").read_text() == config_before
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # the killed run's lock went with it: the next run takes the folder over (a short time budget: it resumes)
    third = asr(*args, "train.max_minutes=0.05")
    assert third.returncode == 0, third.stderr
    assert f"taking over from an earlier run that stopped (PID {first.pid})" in (exp / "train.log").read_text()
    assert (exp / ".lock").read_text() == ""  # released by a run that ended normally


# ---------------------------------------------------------------- a full disk


@contextmanager
def full_disk(tmp_path: Path, size_kb: int = 64):
    """A tiny tmpfs filled to the brim (needs root: CI and the project's machines run as root)."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(mnt)], capture_output=True)
    assert r.returncode == 0, f"cannot mount a tmpfs: {r.stderr.decode()}"
    try:
        fill(mnt)
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def fill(folder: Path) -> None:
    """Write `folder/filler` until the disk refuses."""
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass


def scored_inputs(tmp_path: Path) -> tuple[Path, Path, Path]:
    wav = tmp_path / "a.wav"
    sf.write(wav, tone(0.5), 16000)
    manifest = tmp_path / "m.jsonl"
    manifest.write_text(json.dumps({"id": "a", "audio": str(wav), "duration": 0.5, "speaker": "s",
                                    "text": "HELLO WORLD"}) + "\n")
    hyp = tmp_path / "hyp.jsonl"
    hyp.write_text(json.dumps({"id": "a", "text": "HELLO"}) + "\n")
    return wav, manifest, hyp


def test_a_full_disk_gives_one_line_and_leaves_no_half_written_file(tiny_model, digit_corpus, tmp_path):
    """Real ENOSPC from a 64 KiB tmpfs: score, decode, transcribe and train each stop with one line naming the
    file; the previous wer.json is intact and no temporary or partial file is left."""
    wav, manifest, hyp = scored_inputs(tmp_path)
    from asr.corpus.librispeech import prepare

    prepare(digit_corpus, tmp_path / "data", progress=False)
    with full_disk(tmp_path) as disk:
        before = sorted(p.name for p in disk.rglob("*"))
        runs = {
            "score": asr("score", "--manifest", manifest, "--hyp", hyp, "--out-dir", disk),
            "decode": asr("decode", "--model", tiny_model, "--manifest", manifest, "--out", disk / "hyp.jsonl",
                          "--quiet"),
            "transcribe": asr("transcribe", "--model", tiny_model, wav, "--output-dir", disk),
            "train": asr("train", "--config", os.devnull, "--quiet", f"data.train={tmp_path / 'data/train.jsonl'}",
                         f"train.exp_dir={disk / 'exp'}", *TRAIN[:-2], "train.epochs=1"),
        }
        for name, r in runs.items():
            assert r.returncode != 0, name
            lines = r.stderr.strip().splitlines()
            assert lines and "no space left on device while writing" in lines[-1], (name, r.stderr[-2000:])
            assert "Traceback" not in r.stderr, name
        after = [p for p in disk.rglob("*") if p.is_file() and p.name not in before]
        assert all(p.parent.name == "exp" and p.name in (".lock", "train.log") for p in after), after


def test_a_full_disk_keeps_the_previous_output_whole(tmp_path):
    """The same through the library: a failed rewrite of an existing wer.json leaves the old one."""
    wav, manifest, hyp = scored_inputs(tmp_path)
    from asr.fileio import DiskFullError
    from asr.score import score_files

    with full_disk(tmp_path, size_kb=128) as disk:
        (disk / "filler").unlink()
        score_files(manifest, hyp, disk)
        old = (disk / "wer.json").read_text()
        (disk / "hyp2.jsonl").write_text(json.dumps({"id": "a", "text": "HELLO WORLD"}) + "\n")
        fill(disk)
        with pytest.raises(DiskFullError, match=f"no space left on device while writing {disk}"):
            score_files(manifest, disk / "hyp2.jsonl", disk)
        assert (disk / "wer.json").read_text() == old
        assert sorted(p.name for p in disk.iterdir()) == ["alignments.txt", "filler", "hyp2.jsonl", "wer.json"]


# ---------------------------------------------------------------- weak messages, silent acceptance


@pytest.mark.parametrize("override, message", [
    ("train.epochs=true", "train.epochs: expected a whole number, got True"),
    ("train.lr=true", "train.lr: expected a number, got True"),
    ("train.lr=.inf", "train.lr: expected a number"),
    ("train.exp_dir=null", "train.exp_dir: expected a string, got None"),
    ("train.final_lr_ratio=-0.1", "final_lr_ratio must be in"),
    ("train.weight_decay=-1", "weight_decay must be >= 0"),
    ("train.warmup_steps=-5", "warmup_steps must be >= 0"),
    ("features.time_mask_ratio=5", "time_mask_ratio must be in"),
    ("model.conv_channels=0", "conv_channels must be >= 1"),
    ("data.num_workers=-2", "num_workers must be"),
    ("train.max_steps=-1", "max_steps must be >= 0"),
])
def test_nonsense_config_values_are_refused_naming_the_key(override, message):
    from asr.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_config(None, [override])


@pytest.mark.parametrize("text, message", [
    ("train:\n  epochs: 3\n  epochs: 4\n", "duplicate key 'epochs'"),
    ("train:\n  - epochs: 3\n", "config section 'train' must be a mapping of keys to values, not list"),
    (b"train:\n  exp_dir: \xff\xfe\n", "not UTF-8 text"),
])
def test_malformed_config_files_name_the_file(tmp_path, text, message):
    from asr.config import ConfigError, load_config

    conf = tmp_path / "c.yaml"
    conf.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError, match=message):
        load_config(conf)
    with pytest.raises(ConfigError, match=f"{tmp_path}: is a folder, not a config file"):
        load_config(tmp_path)


def test_beam_options_that_cannot_work_and_decoder_errors_are_one_clear_line(tiny_model, tmp_path):
    wav, manifest, _ = scored_inputs(tmp_path)
    for size in ("0", "-5"):
        r = asr("decode", "--model", tiny_model, "--manifest", manifest, "--out", tmp_path / "h.jsonl",
                "--beam-size", size, "--quiet")
        assert r.returncode == 2 and "beam size must be a whole number of at least 1" in r.stderr, r.stderr
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("HELLO H E L L O |\nWORLD W O R L D |\n")
    arpa = tmp_path / "lm.arpa"  # a header and sections that add up, but no <s> and no \end\: flashlight refuses
    arpa.write_text("\\data\\\nngram 1=2\n\n\\1-grams:\n-0.3\tHELLO\n-0.3\tWORLD\n")
    r = asr("decode", "--model", tiny_model, "--manifest", manifest, "--out", tmp_path / "h.jsonl",
            "--lm", arpa, "--lexicon", lexicon, "--quiet")
    assert r.returncode == 2 and "cannot load the decoder" in r.stderr and "closed file" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    arpa.write_text("\\data\\\nngram x=y\n")
    r = asr("decode", "--model", tiny_model, "--manifest", manifest, "--out", tmp_path / "h.jsonl",
            "--lm", arpa, "--lexicon", lexicon, "--quiet")
    assert r.returncode == 2 and f"{arpa}:2: malformed header line" in r.stderr, r.stderr
    assert not (tmp_path / "h.jsonl").exists()


def test_two_inputs_with_one_output_name_are_refused_before_anything_is_written(tiny_model, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        sf.write(tmp_path / folder / "x.wav", tone(0.3), 16000)
    r = asr("transcribe", "--model", tiny_model, tmp_path / "a" / "x.wav", tmp_path / "b" / "x.wav",
            "--output-dir", tmp_path / "out")
    assert r.returncode == 2 and "would both be written to" in r.stderr and "x.txt" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------- resume edge cases and step budgets


def test_resume_from_a_copied_folder_and_refusal_when_the_training_data_changed(digit_corpus, tmp_path):
    import shutil

    from asr.corpus.librispeech import prepare

    prepare(digit_corpus, tmp_path / "data", progress=False)
    exp = tmp_path / "exp"
    args = ["train", "--config", os.devnull, "--quiet", f"data.train={tmp_path / 'data/train.jsonl'}",
            f"train.exp_dir={exp}", *TRAIN[:-2], "train.epochs=300", "train.checkpoint_every=2"]
    proc = subprocess.Popen([*ASR, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (exp / "resume.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    (exp / ".resume.pt.123.tmp.pt").write_bytes(b"half a checkpoint")  # what a kill during a save leaves
    copy = tmp_path / "copied"
    shutil.copytree(exp, copy)
    # ours, plus the kill's own when it landed during a checkpoint save (a loaded machine makes that likelier)
    left = [p for p in (*copy.glob(".*.tmp*"), *copy.glob("checkpoints/.*.tmp*")) if p.is_file()]
    r = asr(*args[:5], f"train.exp_dir={copy}", *args[6:], "train.max_minutes=0.02")
    assert r.returncode == 0, r.stderr
    log = (copy / "train.log").read_text()
    assert "resuming at epoch" in log and f"removed {len(left)} temporary file(s)" in log and len(left) >= 1
    assert not (copy / ".resume.pt.123.tmp.pt").exists()
    assert "STOPPED EARLY: train.max_minutes=0.02 reached" in log
    # the same manifest path, other contents: refused, nothing trained
    lines = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    (tmp_path / "data" / "train.jsonl").write_text("\n".join(lines[:20]) + "\n")
    r = asr(*args)
    assert r.returncode == 2 and "the training data changed since the interrupted run" in r.stderr, r.stderr
    assert f"({len(lines)} utterances then, 20 now" in r.stderr


def test_a_step_budget_stops_two_runs_at_the_same_step_with_the_same_weights(digit_corpus, tmp_path):
    from asr.config import load_config
    from asr.corpus.librispeech import prepare
    from asr.train import train

    prepare(digit_corpus, tmp_path / "data", progress=False)
    weights = []
    for name in ("a", "b"):
        cfg = load_config(None, [f"data.train={tmp_path / 'data/train.jsonl'}", f"train.exp_dir={tmp_path / name}",
                                 *TRAIN[:-2], "train.epochs=50", "train.max_steps=7"])
        train(cfg, progress=False)
        log = (tmp_path / name / "train.log").read_text()
        assert "STOPPED EARLY: train.max_steps=7 reached in epoch 1 of 50 (step 7)" in log, log
        weights.append(torch.load(tmp_path / name / "last.pt", weights_only=True)["model"])
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    # the early stop reaches RESULTS.md and the speaker summary, not only the log
    from asr.score import Score, record_result, summarize

    for name in ("a", "b"):
        record_result(tmp_path / name / "RESULTS.md", "test", Score(10.0, 5.0, 1, 0, 0, 8, 4))
        (tmp_path / name / "decode" / "test").mkdir(parents=True)
        score = asdict(Score(10.0, 5.0, 1, 0, 0, 8, 4))
        (tmp_path / name / "decode" / "test" / "wer.json").write_text(json.dumps(score))
    results = (tmp_path / "a" / "RESULTS.md").read_text()
    assert "**Training STOPPED EARLY: train.max_steps=7 reached in epoch 1 of 50 (step 7).**" in results, results
    text = summarize(sorted(tmp_path.glob("?/decode/test/wer.json")))
    assert "a: **Training STOPPED EARLY" in text and "b: **Training STOPPED EARLY" in text, text


def test_mel_filters_that_would_be_empty_are_refused_at_config_time():
    """The cause of torchaudio's "mel filterbank has all zero values" warning, checked against torchaudio."""
    import warnings

    import torchaudio

    from asr.config import ConfigError, empty_mel_filters, load_config

    for n_mels, f_max in ((64, 4000.0), (67, 4000.0), (68, 4000.0), (80, 4000.0), (80, 8000.0), (128, 8000.0)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torchaudio.functional.melscale_fbanks(201, 0.0, f_max, n_mels, 16000)
        assert bool(empty_mel_filters(n_mels, 0.0, f_max, 25.0)) == bool(caught), (n_mels, f_max)
    with pytest.raises(ConfigError, match=r"features.n_mels=80 is too many for 0-4000 Hz .*\(at most 67 fit\)"):
        load_config(None, ["features.f_max=4000"])


def test_damaged_manifests_hypotheses_bundles_and_stdin_name_the_file(tiny_model, tmp_path):
    from asr.bundle import BundleError, read_bundle
    from asr.manifest import ManifestError, read_manifest

    wav, manifest, hyp = scored_inputs(tmp_path)
    good = manifest.read_text()
    manifest.write_bytes(good.encode() + b'{"id": "b", "text": "\xff\xfe"}\n')
    with pytest.raises(ManifestError, match=f"{manifest}:2: not UTF-8 text"):
        read_manifest(manifest)
    manifest.write_text(good.replace('"duration": 0.5', '"duration": Infinity'))
    with pytest.raises(ManifestError, match=f"{manifest}:1: duration must be a positive number of seconds"):
        read_manifest(manifest)
    manifest.write_text(good.replace('"text": "HELLO WORLD"', '"text": " "'))
    r = asr("score", "--manifest", manifest, "--hyp", hyp)
    assert r.returncode == 2 and "utterance a has an empty reference text" in r.stderr, r.stderr
    manifest.write_text(good)
    hyp.write_bytes(b'{"id": "a", "text": "\xff"}\n')
    r = asr("score", "--manifest", manifest, "--hyp", hyp)
    assert r.returncode == 2 and f"{hyp}:1: not UTF-8 text" in r.stderr, r.stderr
    bundle = torch.load(tiny_model, weights_only=True)
    del bundle["tokenizer"]
    torch.save(bundle, tmp_path / "no-tok.pt")
    with pytest.raises(BundleError, match="damaged model bundle \\(no tokenizer\\)"):
        read_bundle(tmp_path / "no-tok.pt")
    r = asr("transcribe", "--model", tiny_model, "-", input="not audio at all")
    assert r.returncode == 1 and r.stderr.strip() == "error: <stdin>: cannot decode audio (Format not recognised.)"
    for bad in ("0", "-1"):
        r = asr("transcribe", "--model", tiny_model, wav, "--max-piece-s", bad)
        assert r.returncode == 2 and "--max-piece-s) must be a positive number of seconds" in r.stderr, r.stderr
