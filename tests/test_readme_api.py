"""README's Python API examples run as written (with this test's model and LM files substituted)."""

from __future__ import annotations

import re
import subprocess
import sys

import numpy as np

from conftest import REPO


def python_blocks(section: str) -> list[str]:
    text = (REPO / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", body, flags=re.S)


def test_readme_python_api_examples_run(chunked_digits_model, tmp_path):
    folder, model = chunked_digits_model
    lm = tmp_path / "lm"
    r = subprocess.run([sys.executable, "-m", "asr", "lm", str(folder / "data" / "train.jsonl"), str(lm),
                        "--model", str(model)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    first, second = python_blocks("Python API")
    code = (first.replace("exp/demo/model.pt", str(model)).replace("lm/lexicon.txt", str(lm / "lexicon.txt"))
            .replace("lm/lm.arpa", str(lm / "lm.arpa")).replace("data/synth/", f"{REPO}/data/synth/"))
    blocks = [np.zeros(1600, np.float32)] * 10
    scope = {"blocks": blocks}
    exec(compile(code, "README.md (Python API)", "exec"), scope)  # noqa: S102 - our own README
    assert scope["t"].duration == 1.0 and isinstance(scope["t"].text, str)
    assert scope["rec"].beam is not None
    exec(compile(second, "README.md (streaming)", "exec"), scope)  # noqa: S102
    assert isinstance(scope["final"], str) and isinstance(scope["partial"], str)
