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


def test_cross_voice_bench_speaks_with_festival(digits_model, tmp_path):
    """bench/cross_voice.py: festival (a synthesiser the models never heard) speaks the manifest's sentences;
    its 'as recorded' column is the greedy WER that `asr decode` + `asr score` give; a voice festival does not
    have is left out with a warning, and the audio it did synthesise is real speech-length audio, reused on a
    second run."""
    import soundfile as sf

    from asr.cli import main
    from asr.manifest import read_manifest, write_manifest
    from asr.score import score_files

    out, bundle = digits_model
    write_manifest(read_manifest(out / "data" / "dev.jsonl")[:3], tmp_path / "three.jsonl")
    cmd = [sys.executable, REPO / "bench" / "cross_voice.py", "--models", bundle, "--manifest",
           tmp_path / "three.jsonl", "--voices", "kal_diphone", "no_such_voice", "--work", tmp_path / "fest",
           "--threads", "1", "--out", tmp_path / "t.md"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "festival voice no_such_voice left out" in r.stderr, r.stderr
    lines = (tmp_path / "t.md").read_text().splitlines()
    assert "| kal_diphone | festival mean |" in lines[2] and "no_such_voice" not in lines[2]
    row = next(line for line in lines if line.startswith(f"| {bundle} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert main(["decode", "--model", str(bundle), "--manifest", str(tmp_path / "three.jsonl"), "--out",
                 str(tmp_path / "h.jsonl"), "--quiet"]) == 0
    assert abs(float(cells[1]) - score_files(tmp_path / "three.jsonl", tmp_path / "h.jsonl").wer) < 0.01
    assert float(cells[3]) == float(cells[4])  # one festival voice: the mean is that voice
    wavs = sorted((tmp_path / "fest" / "kal_diphone").glob("*.wav"))
    assert len(wavs) == 3 and all(sf.info(w).duration > 0.3 for w in wavs)
    stamp = [w.stat().st_mtime_ns for w in wavs]
    assert subprocess.run(cmd, capture_output=True, text=True, timeout=300).returncode == 0
    assert [w.stat().st_mtime_ns for w in wavs] == stamp
