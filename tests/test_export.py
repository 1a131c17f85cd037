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


@pytest.mark.parametrize("fmt,suffix,tol", [("torchscript", ".pt", 1e-5), ("int8", ".pt", None),
                                            ("onnx", ".onnx", 1e-4)])
def test_chunk_trained_models_export_and_stream(chunked_digits_model, speech_data, tmp_path, fmt, suffix, tol):
    """A latency-controlled model exports as its chunk step: whole utterances and streams through the export
    give the bundle's log-probs (int8: its argmax path, mostly) and texts."""
    from asr.audio import load_audio

    out, bundle = chunked_digits_model
    dest = tmp_path / f"chunked{suffix}"
    assert main(["export", "--model", str(bundle), "--format", fmt, "--out", str(dest)]) == 0
    ref, exp = Recognizer.load(bundle), Recognizer.load(dest)
    assert exp.exported == fmt
    b = real_batch(ref, out / "data" / "dev.jsonl")
    with torch.no_grad():
        a, al = ref.model(b.feats, b.feat_lens)
        c, cl = exp.model(b.feats, b.feat_lens)
    assert torch.equal(al, cl) and c.shape == a.shape
    mask = torch.arange(a.shape[1])[None, :] < al[:, None]
    if tol is None:
        assert (a.argmax(-1)[mask] == c.argmax(-1)[mask]).float().mean() > 0.9
    else:
        torch.testing.assert_close(c[mask], a[mask], atol=tol, rtol=0)
    files = speech_data.digits(speakers=("cal",), takes=range(0, 1), digits=range(3))
    for f in files:
        wav = load_audio(f)
        texts = []
        for rec in (ref, exp):
            stream = rec.stream()
            for i in range(0, len(wav), 1600):  # 100 ms blocks
                stream.accept(wav[i:i + 1600])
            texts.append(stream.finish())
        if tol is not None:
            assert texts[1] == texts[0] == ref.transcribe(f).text


def test_onnx_export_of_a_chunked_conv_model_is_refused_with_the_reason(tmp_path, capsys):
    from asr.bundle import make_bundle, save_bundle
    from asr.config import load_config
    from asr.model import AcousticModel
    from asr.text import CharTokenizer

    cfg = load_config(None, ["model.hidden_size=16", "model.num_layers=1", "model.tbptt_chunk=4",
                             "model.right_context=2", "model.subsampling=conv", "model.conv_channels=4"])
    tok = CharTokenizer()
    path = tmp_path / "conv-chunked.pt"
    save_bundle(make_bundle(AcousticModel(cfg.model, 80, tok.vocab_size), cfg, tok, torch.zeros(80), torch.ones(80)),
                path)
    assert main(["export", "--model", str(path), "--format", "onnx", "--out", str(tmp_path / "x.onnx")]) == 2
    assert "needs model.subsampling=stack" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
    assert main(["export", "--model", str(path), "--format", "torchscript", "--out", str(tmp_path / "x.pt")]) == 0
