"""The benchmark scripts run (tiny settings, CPU), so that they do not rot between GPU sessions."""

import json
import subprocess
import sys
from pathlib import Path

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
