"""tools/deps.py: the lock check that CI runs before installing, and the smoke check of the installed stack."""

import importlib.util
import shutil
import subprocess
import sys

import pytest

from conftest import REPO

spec = importlib.util.spec_from_file_location("deps", REPO / "tools" / "deps.py")
deps = importlib.util.module_from_spec(spec)
spec.loader.exec_module(deps)


@pytest.fixture
def copies(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    shutil.copy(REPO / "requirements-lock.txt", tmp_path)
    return tmp_path / "requirements-lock.txt", tmp_path / "pyproject.toml"


def test_committed_lock_matches_pyproject_and_pins_torch_exactly():
    assert deps.check_lock() > 50
    pins = deps.locked_versions()
    assert pins["torch"] == "2.11.0" and pins["torchaudio"] == "2.11.0"
    assert '"torch==2.11.0"' in (REPO / "pyproject.toml").read_text()


@pytest.mark.parametrize("edit, message", [
    (('"jiwer>=3.0"', '"jiwer>=99"'), "pins jiwer==.* but pyproject.toml asks for 'jiwer>=99'"),
    (('"jiwer>=3.0"', '"jiwer>=3.0", "zstandard>=0.20"'), r"zstandard \(pyproject.toml\) is not in it"),
    (('"jiwer>=3.0"', '"jiwer>=3.1"'), "dependencies changed since it was made"),
])
def test_a_stale_lock_is_refused_with_the_reason(copies, edit, message):
    lock, pyproject = copies
    text = pyproject.read_text()
    assert edit[0] in text
    pyproject.write_text(text.replace(*edit))
    with pytest.raises(deps.DepsError, match=message):
        deps.check_lock(lock, pyproject)


def test_a_garbled_lock_names_the_line(copies):
    lock, pyproject = copies
    lock.write_text(lock.read_text() + "torch>=2\n")
    with pytest.raises(deps.DepsError, match=r"requirements-lock.txt:\d+: not a `name==version` pin"):
        deps.check_lock(lock, pyproject)


@pytest.mark.slow
def test_smoke_check_passes_in_this_venv_and_reports_one_line_failures():
    r = subprocess.run([sys.executable, REPO / "tools" / "deps.py", "smoke"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert [line.split()[1] for line in r.stdout.splitlines()] == ["torch", "torchaudio", "soundfile",
                                                                    "flashlight-text", "onnxruntime"]
    # a broken package: torchaudio's compiled library cannot load (what a mismatched torchaudio does)
    script = str(REPO / "tools" / "deps.py")
    r = subprocess.run([sys.executable, "-c", "import sys, runpy; sys.modules['torchaudio'] = None; "
                        f"sys.argv = ['deps', 'smoke', 'torchaudio']; runpy.run_path({script!r}, run_name='__main__')"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith("error: smoke check: torchaudio does not work: ModuleNotFoundError: import of "
                               "torchaudio")
