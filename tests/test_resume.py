"""Exact resume after SIGKILL, and data-parallel training with two gloo processes under torchrun."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from asr.config import ConfigError, load_config
from asr.corpus.librispeech import prepare
from asr.train import train

ASR = [sys.executable, "-m", "asr"]
# small model, every random draw in use (speed perturbation, mel warping, SpecAugment, dropout)
BASE = ["model.hidden_size=48", "model.num_layers=2", "model.dropout=0.1", "model.conv_channels=8",
        "features.speed_perturb=[0.9,1.0,1.1]", "features.freq_warp=0.1", "train.batch_size=4",
        "train.warmup_steps=5", "train.lr=0.005", "train.num_threads=1", "train.epochs=5", "train.device=cpu"]


@pytest.fixture(scope="module")
def manifests(digit_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("resume-data")
    prepare(digit_corpus, out, progress=False)
    return out


def _params(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def test_sigkill_at_a_random_step_then_resume_is_bitwise_identical(manifests, tmp_path):
    """The reference prepares its batches in the training process; the killed run with two DataLoader worker
    processes, the resumed one with one: each item's augmentation depends only on (seed, epoch, index)."""
    common = BASE + [f"data.train={manifests / 'train.jsonl'}", f"data.dev={manifests / 'dev.jsonl'}",
                     "train.checkpoint_every=3"]
    train(load_config(None, common + [f"train.exp_dir={tmp_path / 'reference'}", "data.num_workers=0"]),
          progress=False)

    exp = tmp_path / "killed"
    proc = subprocess.Popen(ASR + ["train", "--quiet", "--config", os.devnull, *common, f"train.exp_dir={exp}",
                                   "data.num_workers=2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (exp / "resume.pt").exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline, "no resume checkpoint within 2 minutes"
        time.sleep(0.02)
    time.sleep(random.uniform(0.0, 1.5))  # a random step after the first checkpoint
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "training ended before it could be killed"
    killed_at = torch.load(exp / "resume.pt", weights_only=True)["state"]
    assert not killed_at["finished"]

    # `asr train` on the same experiment folder resumes (here in process, as a library call)
    train(load_config(None, common + [f"train.exp_dir={exp}", "data.num_workers=1"]), progress=False)
    log = (exp / "train.log").read_text()
    assert "2 loader worker(s)" in log and "1 loader worker(s)" in log
    assert f"resuming at epoch {killed_at['epoch']}, batch {killed_at['batch_in_epoch']}" in log
    ref, got = _params(tmp_path / "reference" / "last.pt"), _params(exp / "last.pt")
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), f"{k} differs after resuming at step {killed_at['step']}"
    best_ref, best_got = _params(tmp_path / "reference" / "model.pt"), _params(exp / "model.pt")
    assert torch.equal(best_ref["head.weight"], best_got["head.weight"])


def test_finished_run_is_not_retrained_and_a_changed_config_is_refused(manifests, tmp_path):
    args = BASE + [f"data.train={manifests / 'train.jsonl'}", f"train.exp_dir={tmp_path / 'exp'}", "train.epochs=1"]
    bundle = train(load_config(None, args), progress=False)
    stamp = bundle.stat().st_mtime_ns
    assert train(load_config(None, args + ["train.max_minutes=5"]), progress=False) == bundle  # resumable key
    assert bundle.stat().st_mtime_ns == stamp
    assert "already finished" in (tmp_path / "exp" / "train.log").read_text()
    with pytest.raises(ConfigError, match=r"model.hidden_size: 48 -> 64.*delete .*resume.pt"):
        train(load_config(None, args + ["model.hidden_size=64"]), progress=False)


def test_training_writes_tensorboard_scalars_and_a_curves_png(manifests, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    exp = tmp_path / "exp"
    train(load_config(None, BASE + [f"data.train={manifests / 'train.jsonl'}", f"data.dev={manifests / 'dev.jsonl'}",
                                    f"train.exp_dir={exp}", "train.epochs=2", "train.log_every=5"]), progress=False)
    png = (exp / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    events = EventAccumulator(str(exp / "tensorboard"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/lr", "train/grad_norm", "train/frames_per_second", "dev/wer", "dev/cer"} <= tags
    assert len(events.Scalars("dev/wer")) == 2
    assert [e.step for e in events.Scalars("train/loss")] == sorted(e.step for e in events.Scalars("train/loss"))


@pytest.mark.parametrize("chunked", [False, True], ids=["full-bptt", "tbptt-chunks"])
def test_two_gloo_ranks_under_torchrun_match_one_process(manifests, tmp_path, chunked):
    """Same global batch (2 x 3 utterances vs 1 x 6): the two-rank run ends at the same parameters, with
    DistributedDataParallel (full BPTT) and with the chunk-wise TBPTT backward (explicit all-reduce)."""
    chunking = ["model.tbptt_chunk=4", "model.right_context=2", "model.subsampling=stack",
                "model.subsampling_factor=3"] if chunked else []
    common = chunking + ["model.hidden_size=48", "model.num_layers=2", "model.dropout=0.0", "model.conv_channels=8",
              "features.speed_perturb=[1.0]", "features.freq_masks=0", "features.time_masks=0",
              "train.warmup_steps=3", "train.lr=0.003", "train.num_threads=1", "train.epochs=2", "train.device=cpu",
              "train.max_batch_frames=100000", "train.tensorboard=false",
              f"data.train={manifests / 'train.jsonl'}", f"data.dev={manifests / 'dev.jsonl'}"]
    train(load_config(None, common + ["train.batch_size=6", f"train.exp_dir={tmp_path / 'one'}"]), progress=False)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")  # a rank that aborts shows its stacks
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "asr", "train", "--quiet", "--config", os.devnull, *common, "train.batch_size=3",
                          f"train.exp_dir={tmp_path / 'two'}"], capture_output=True, text=True, env=env, timeout=300)
    log_file = tmp_path / "two" / "train.log"
    assert run.returncode == 0, run.stderr[-6000:] + "\ntrain.log ends:\n" + (
        "\n".join(log_file.read_text().splitlines()[-3:]) if log_file.is_file() else "(no train.log)")
    log = log_file.read_text()
    assert log.count("80 utterances") == 2 and log.count("each seen exactly once across 2 ranks") == 2
    assert "x 2 rank(s)" in log
    one, two = _params(tmp_path / "one" / "last.pt"), _params(tmp_path / "two" / "last.pt")
    for k in one:
        torch.testing.assert_close(two[k], one[k], rtol=1e-4, atol=1e-4, msg=k)
    # and the two runs really trained: parameters moved away from the shared initialisation
    assert not torch.allclose(one["head.weight"], _initial_head(common, tmp_path), atol=1e-3)


def _initial_head(common, tmp_path):
    from asr.model import AcousticModel
    from asr.text import tokenizer_from_state

    cfg = load_config(None, common)
    torch.manual_seed(cfg.train.seed)
    bundle = torch.load(tmp_path / "one" / "last.pt", weights_only=True)
    tok = tokenizer_from_state(bundle["tokenizer"])
    return AcousticModel(cfg.model, cfg.features.n_mels, tok.vocab_size).state_dict()["head.weight"]
