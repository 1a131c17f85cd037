"""The benchmark scripts run (tiny settings, CPU), so that they do not rot between GPU sessions."""

import json
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def test_train_speed_projects_epoch_times(tmp_path):
    out = tmp_path / "speed.json"
    r = subprocess.run([sys.executable, REPO / "bench" / "train_speed.py", "--device", "cpu", "--configs",
                        REPO / "conf" / "demo.yaml", "--batch", "2", "--steps", "1", "--warmup", "0", "--json", out],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    row = json.loads(out.read_text())["rows"][0]
    # the script only has to run and measure: its numbers are for BENCHMARKS.md, not for assertions
    assert row["config"] == "demo" and row["batch"] == 2 and row["step_s"] > 0 and row["params_m"] > 1
    assert "| demo |" in r.stdout, r.stdout


def test_parity_script_and_gpu_script_syntax():
    r = subprocess.run([sys.executable, REPO / "bench" / "gpu_parity.py", "--device", "cpu", "--configs",
                        REPO / "conf" / "demo.yaml"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "| demo | 0.00e+00 | 0.00e+00 |" in r.stdout, r.stdout + r.stderr
    assert subprocess.run(["bash", "-n", REPO / "bench" / "gpu.sh"]).returncode == 0


def test_denormal_bench_times_a_trained_model(digits_model, digit_corpus):
    _, bundle = digits_model
    r = subprocess.run([sys.executable, REPO / "bench" / "denormal.py", "--model", bundle, "--data", digit_corpus,
                        "--utts", "4", "--batch", "2", "--repeats", "1", "--threads", "1"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "flush_denormal True : trained" in r.stdout and "x faster" in r.stdout, r.stdout


def test_robustness_bench_decodes_every_condition(digits_model, tmp_path):
    """bench/robustness.py: one row per model with every condition; its clean column is the WER that
    `asr decode` + `asr score` give for the same model and choices, and the corrupted audio really differs
    (0 dB of noise costs more than 10 dB)."""
    import numpy as np
    import soundfile as sf

    from asr.cli import main
    from asr.manifest import Utterance, read_manifest, write_manifest
    from asr.score import score_files
    from speech import DIGITS

    out, bundle = digits_model
    dev = out / "data" / "dev.jsonl"
    sf.write(tmp_path / "hum.wav", (0.3 * np.random.default_rng(1).standard_normal(16000)).astype(np.float32), 16000)
    write_manifest([Utterance("hum", str(tmp_path / "hum.wav"), 1.0, "", "")], tmp_path / "noise.jsonl")
    (tmp_path / "digits.txt").write_text("\n".join(DIGITS) + "\n")
    r = subprocess.run([sys.executable, REPO / "bench" / "robustness.py", "--models", bundle, "--manifest", dev,
                        "--noise", tmp_path / "noise.jsonl", "--choices", tmp_path / "digits.txt", "--threads", "1",
                        "--out", tmp_path / "t.md"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    row = next(line for line in (tmp_path / "t.md").read_text().splitlines() if line.startswith(f"| {bundle} |"))
    cells = [float(c) for c in row.strip("|").split("|")[1:]]
    assert len(cells) == 8
    assert main(["decode", "--model", str(bundle), "--manifest", str(dev), "--out", str(tmp_path / "h.jsonl"),
                 "--choices", str(tmp_path / "digits.txt"), "--quiet"]) == 0
    assert abs(cells[0] - score_files(dev, tmp_path / "h.jsonl").wer) < 0.01
    # every condition changes the audio, keeps its length, and draws the same way each time
    sys.path.insert(0, str(REPO / "bench"))
    import robustness

    from asr.audio import load_audio

    wav = torch.from_numpy(load_audio(read_manifest(dev)[0].audio)).float()
    noises = [torch.from_numpy(load_audio(tmp_path / "hum.wav")).float()]
    for k, condition in enumerate(robustness.CONDITIONS):
        a, b = (robustness.corrupt(wav, condition, k, noises) for _ in range(2))
        assert a.shape == wav.shape and torch.equal(a, b)
        assert torch.equal(a, wav) == (condition == "clean"), condition
