#!/usr/bin/env python3
"""The project's dependencies: install the locked tree into a venv, regenerate the lock, check both.

    python3 tools/deps.py install [--venv .venv] [--installer uv|pip]   # what `make install` runs
    python3 tools/deps.py lock                                          # what `make lock` runs
    python3 tools/deps.py check-lock                                    # lock still matches pyproject.toml?
    .venv/bin/python tools/deps.py smoke                                # the installed stack works?

`requirements-lock.txt` pins every package (with hashes) for Linux x86-64 and CPython 3.11, resolved from
pyproject.toml's dependencies and the extras in LOCKED_EXTRAS. Runs with the standard library alone (plus
pip's vendored `packaging` when `packaging` itself is missing), so it works before any venv exists.
Every failure is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import subprocess
import sys
import time
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"
LOCK = REPO / "requirements-lock.txt"
LOCKED_EXTRAS = ("dev", "lm", "export", "serve")
UV_VERSION = "0.13.9"  # the lock's resolver and the default installer; pinned like everything else
LOCK_PLATFORM = "x86_64-manylinux_2_28"
LOCK_PYTHON = "3.11"
INDEX = "https://pypi.org/simple"
HASH_LINE = "# pyproject-dependencies-sha256: "


class DepsError(RuntimeError):
    """A problem to report in one line."""


def _packaging():
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # a bare interpreter: pip vendors the same library
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.utils import canonicalize_name
    return Requirement, canonicalize_name


# ---------------------------------------------------------------- lock file


def declared_requirements(pyproject: Path = PYPROJECT) -> list[str]:
    """pyproject.toml's dependencies plus those of the locked extras, as written there."""
    try:
        project = tomllib.loads(pyproject.read_text())["project"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as exc:
        raise DepsError(f"{pyproject}: cannot read its [project] table ({exc})") from None
    extras = project.get("optional-dependencies", {})
    missing = [e for e in LOCKED_EXTRAS if e not in extras]
    if missing:
        raise DepsError(f"{pyproject.name}: extra {missing[0]!r} is locked but not declared")
    return list(project["dependencies"]) + [r for e in LOCKED_EXTRAS for r in extras[e]]


def dependencies_digest(pyproject: Path = PYPROJECT) -> str:
    return hashlib.sha256(json.dumps(declared_requirements(pyproject)).encode()).hexdigest()


def locked_versions(lock: Path = LOCK) -> dict[str, str]:
    """name → pinned version from a `name==version` lock file."""
    _, canonicalize = _packaging()
    if not lock.is_file():
        raise DepsError(f"{lock.name} is missing: run `make lock`")
    pins = {}
    for n, line in enumerate(lock.read_text().splitlines(), 1):
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", line)
        if m:
            pins[canonicalize(m.group(1))] = m.group(2)
        elif line and not line[0].isspace() and not line.startswith("#"):
            raise DepsError(f"{lock.name}:{n}: not a `name==version` pin: {line.strip()[:60]}")
    return pins


def check_lock(lock: Path = LOCK, pyproject: Path = PYPROJECT) -> int:
    """Every declared requirement pinned to a version it allows, and the lock made from these declarations;
    returns the number of pinned packages."""
    Requirement, canonicalize = _packaging()
    pins = locked_versions(lock)
    for spec in declared_requirements(pyproject):
        req = Requirement(spec)
        name = canonicalize(req.name)
        if name not in pins:
            raise DepsError(f"{lock.name} is stale: {req.name} (pyproject.toml) is not in it; run `make lock`")
        if not req.specifier.contains(pins[name], prereleases=True):
            raise DepsError(f"{lock.name} is stale: it pins {req.name}=={pins[name]} but pyproject.toml asks for "
                            f"{spec!r}; run `make lock`")
    recorded = next((line[len(HASH_LINE):].strip() for line in lock.read_text().splitlines()
                     if line.startswith(HASH_LINE)), None)
    if recorded != dependencies_digest(pyproject):
        raise DepsError(f"{lock.name} is stale: pyproject.toml's dependencies changed since it was made; "
                        "run `make lock`")
    return len(pins)


def _uv(venv: Path | None = None) -> list[str]:
    """A uv command: the venv's, else one on PATH, else installed for this user with pip."""
    for cand in ([venv / "bin" / "uv"] if venv else []) + [Path(p) / "uv" for p in os.get_exec_path()]:
        if cand.is_file():
            return [str(cand)]
    _run([sys.executable, "-m", "pip", "install", "--quiet", "--user", f"uv=={UV_VERSION}"], "installing uv")
    return [sys.executable, "-m", "uv"]


def make_lock() -> None:
    """Resolve pyproject.toml for the lock platform and write requirements-lock.txt (with hashes)."""
    tmp = LOCK.with_suffix(".tmp")
    cmd = _uv() + ["pip", "compile", str(PYPROJECT), "--python-version", LOCK_PYTHON,
                   "--python-platform", LOCK_PLATFORM, "--index-url", INDEX, "--generate-hashes",
                   "--custom-compile-command", "make lock", "--quiet", "-o", str(tmp)]
    for extra in LOCKED_EXTRAS:
        cmd += ["--extra", extra]
    _run(cmd, "resolving the lock")
    body = tmp.read_text()
    tmp.unlink()
    header = (f"# Locked for Linux x86-64, CPython {LOCK_PYTHON}, extras {', '.join(LOCKED_EXTRAS)}; "
              f"made by uv {UV_VERSION}.\n{HASH_LINE}{dependencies_digest()}\n")
    LOCK.write_text(header + body)
    print(f"wrote {LOCK.name}: {len(locked_versions())} packages")


# ---------------------------------------------------------------- install


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join(line.strip() for line in proc.stdout.strip().splitlines()[-3:])
        raise DepsError(f"{what} failed (exit {proc.returncode}): {tail}")


def lock_fits_this_machine() -> bool:
    return (sys.platform == "linux" and platform.machine() == "x86_64"
            and f"{sys.version_info.major}.{sys.version_info.minor}" == LOCK_PYTHON)


def install(venv: Path, installer: str) -> None:
    t0 = time.monotonic()
    check_lock()
    py = venv / "bin" / "python"
    if not py.is_file():
        _run([sys.executable, "-m", "venv", str(venv)], f"creating {venv}")
    extras = ",".join(LOCKED_EXTRAS)
    if not lock_fits_this_machine():
        # the lock is for Linux x86-64 / 3.11: elsewhere resolve pyproject.toml's exact torch pins afresh
        print(f"note: {LOCK.name} is for Linux x86-64 / Python {LOCK_PYTHON}; this is {sys.platform} "
              f"{platform.machine()} / {platform.python_version()}: installing from pyproject.toml instead",
              file=sys.stderr)
        _run([str(py), "-m", "pip", "install", "--quiet", "-e", f"{REPO}[{extras}]"], "pip install")
    elif installer == "uv":
        _run([str(py), "-m", "pip", "install", "--quiet", f"uv=={UV_VERSION}"], "installing uv")
        uv = str(venv / "bin" / "uv")
        _run([uv, "pip", "sync", "--python", str(py), "--require-hashes", str(LOCK)], f"uv pip sync {LOCK.name}")
        _run([uv, "pip", "install", "--python", str(py), "--no-deps", "--no-build-isolation", "-e", str(REPO)],
             "installing the project")
    else:
        _run([str(py), "-m", "pip", "install", "--quiet", "--require-hashes", "-r", str(LOCK)],
             f"pip install -r {LOCK.name}")
        _run([str(py), "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "-e", str(REPO)],
             "installing the project")
    _run([str(py), str(Path(__file__).resolve()), "smoke"], "the smoke check")
    print(f"installed into {venv} with {installer} in {time.monotonic() - t0:.0f} s; smoke check passed")


# ---------------------------------------------------------------- smoke check


def _smoke_torch():
    import torch

    x = torch.randn(4, 8)
    assert torch.allclose(x @ torch.eye(8), x)
    return f"torch {torch.__version__}"


def _smoke_torchaudio():
    import torch
    import torchaudio
    import torchaudio.functional as F

    mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=400, n_mels=80)(torch.randn(1, 16000))
    assert mel.shape == (1, 80, 81)
    log_probs = torch.randn(1, 20, 5).log_softmax(-1)  # the compiled ops (libtorchaudio)
    labels, _ = F.forced_align(log_probs, torch.tensor([[1, 2, 3]], dtype=torch.int32), blank=0)
    assert labels.shape == (1, 20)
    return f"torchaudio {torchaudio.__version__} (compiled ops load)"


def _smoke_soundfile():
    import io

    import numpy as np
    import soundfile as sf

    tone = (0.3 * np.sin(np.arange(16000) / 16000 * 2 * np.pi * 440)).astype(np.float32)
    for fmt, sub in (("FLAC", "PCM_16"), ("OGG", "OPUS")):
        buf = io.BytesIO()
        sf.write(buf, tone, 16000, format=fmt, subtype=sub)
        buf.seek(0)
        data, sr = sf.read(buf, dtype="float32")
        assert sr == 16000 and abs(len(data) - len(tone)) < 400, fmt
    return f"soundfile {sf.__version__} (libsndfile {sf.__libsndfile_version__}: FLAC, Opus)"


def _smoke_flashlight():
    import torch
    from torchaudio.models.decoder import ctc_decoder

    dec = ctc_decoder(lexicon=None, tokens=["-", "|", "A", "B"], lm=None, blank_token="-", sil_token="|",
                      beam_size=4)
    hyps = dec(torch.randn(1, 10, 4).log_softmax(-1))
    assert len(hyps) == 1 and len(hyps[0]) >= 1
    return "flashlight-text (torchaudio ctc_decoder)"


def _smoke_onnxruntime():
    import onnxruntime

    assert "CPUExecutionProvider" in onnxruntime.get_available_providers()
    return f"onnxruntime {onnxruntime.__version__}"


CHECKS = {"torch": _smoke_torch, "torchaudio": _smoke_torchaudio, "soundfile": _smoke_soundfile,
          "flashlight-text": _smoke_flashlight, "onnxruntime": _smoke_onnxruntime}


def smoke(only: list[str] | None = None) -> None:
    unknown = sorted(set(only or ()) - set(CHECKS))
    if unknown:
        raise DepsError(f"no smoke check named {unknown[0]!r} (there are: {', '.join(CHECKS)})")
    for name, check in CHECKS.items():
        if only and name not in only:
            continue
        try:
            print(f"ok  {check()}")
        except Exception as exc:  # any failure is the install's fault: report it in one line
            detail = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise DepsError(f"smoke check: {name} does not work: {type(exc).__name__}: {detail}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("install", help="create the venv and install the locked tree")
    p.add_argument("--venv", type=Path, default=REPO / ".venv")
    p.add_argument("--installer", choices=("uv", "pip"), default=os.environ.get("INSTALLER") or "uv")
    sub.add_parser("lock", help="regenerate requirements-lock.txt from pyproject.toml")
    sub.add_parser("check-lock", help="fail when the lock no longer matches pyproject.toml")
    p = sub.add_parser("smoke", help="check the installed stack in this interpreter")
    p.add_argument("only", nargs="*", help=f"checks to run, of {', '.join(CHECKS)} (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.cmd == "install":
            install(args.venv.resolve(), args.installer)
        elif args.cmd == "lock":
            make_lock()
        elif args.cmd == "check-lock":
            print(f"{LOCK.name} matches pyproject.toml ({check_lock()} packages)")
        else:
            smoke(args.only)
    except DepsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
