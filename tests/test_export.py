"""Exported models (TorchScript, ONNX, int8) match the bundle and are accepted by transcribe."""

import subprocess
import sys

import pytest
import torch

from asr.bundle import BundleError
from asr.cli import main
from asr.data import collate
from asr.manifest import read_manifest
from asr.recognizer import Recognizer


@pytest.fixture(scope="module")
def trained(digits_model):
    return digits_model


def real_batch(rec: Recognizer, manifest):
    utts = read_manifest(manifest)[:6]
    ds = rec.dataset(utts)
    return collate([ds[i] for i in range(len(ds))], [u.id for u in utts])


@pytest.mark.parametrize("fmt,suffix,tol", [("torchscript", ".pt", 1e-5), ("onnx", ".onnx", 1e-3)])
def test_exported_model_matches_the_bundle(trained, speech_data, tmp_path, fmt, suffix, tol):
    out, bundle = trained
    dest = tmp_path / f"model{suffix}"
    assert main(["export", "--model", str(bundle), "--format", fmt, "--out", str(dest)]) == 0
    ref, exp = Recognizer.load(bundle), Recognizer.load(dest)
    assert exp.exported == fmt and exp.tokenizer.state() == ref.tokenizer.state()
    b = real_batch(ref, out / "data" / "dev.jsonl")  # 6 real utterances of different lengths, padded
    with torch.no_grad():
        a, al = ref.model(b.feats, b.feat_lens)
        c, cl = exp.model(b.feats, b.feat_lens)
    assert torch.equal(al, cl)
    torch.testing.assert_close(c, a, atol=tol, rtol=0)
    files = [str(f) for f in speech_data.digits(speakers=("cal",), takes=range(0, 1), digits=range(4))]
    texts = [subprocess.run([sys.executable, "-m", "asr", "transcribe", "--model", str(m), *files],
                            capture_output=True, text=True, timeout=300).stdout for m in (bundle, dest)]
    assert texts[0] == texts[1] and len(texts[0].splitlines()) == 4


def test_int8_export_is_smaller_and_close(trained, tmp_path):
    out, bundle = trained
    dest = tmp_path / "int8.pt"
    assert main(["export", "--model", str(bundle), "--format", "int8", "--out", str(dest)]) == 0
    assert dest.stat().st_size < 0.5 * bundle.stat().st_size
    ref, q = Recognizer.load(bundle), Recognizer.load(dest)
    b = real_batch(ref, out / "data" / "train.jsonl")
    with torch.no_grad():
        a, lens = ref.model(b.feats, b.feat_lens)
        c, _ = q.model(b.feats, b.feat_lens)
    mask = torch.arange(a.shape[1])[None, :] < lens[:, None]
    probs_a, probs_c = a.exp()[mask], c.exp()[mask]
    assert (probs_a - probs_c).abs().max() < 0.2  # posteriors move by little
    assert (a.argmax(-1)[mask] == c.argmax(-1)[mask]).float().mean() > 0.9


def test_bad_exported_files_give_clear_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BundleError, match="not a loadable ONNX model"):
        Recognizer.load(bad)
    import zipfile

    fake = tmp_path / "fake.pt"
    with zipfile.ZipFile(fake, "w") as z:
        z.writestr("fake/extra/asr.json", "{}")
    with pytest.raises(BundleError, match="unreadable TorchScript model"):
        Recognizer.load(fake)
