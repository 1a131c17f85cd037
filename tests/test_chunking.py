"""Truncated BPTT and latency-controlled bidirectional chunks: exactness, gradient cut, streaming."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from asr.config import ModelConfig
from asr.model import AcousticModel
from asr.recognizer import Streamer


def model_for(rnn_type="lstm", bidirectional=True, chunk=0, context=0, layers=2, subsampling="stack"):
    torch.manual_seed(0)
    cfg = ModelConfig(subsampling=subsampling, subsampling_factor=2, rnn_type=rnn_type, num_layers=layers,
                      hidden_size=16, bidirectional=bidirectional, dropout=0.0, tbptt_chunk=chunk,
                      right_context=context)
    return AcousticModel(cfg, 8, 6)


def with_chunks(model, chunk, context):
    """The same weights with another chunking."""
    other = AcousticModel(dataclasses.replace(model.cfg, tbptt_chunk=chunk, right_context=context), 8, 6)
    other.load_state_dict(model.state_dict())
    return other


@pytest.mark.parametrize("rnn_type,bidirectional", [("lstm", True), ("gru", True), ("lstm", False),
                                                    ("gru", False)])
def test_chunk_at_least_the_utterance_is_exactly_full_bptt(rnn_type, bidirectional):
    full = model_for(rnn_type, bidirectional)
    chunked = with_chunks(full, 40, 5 if bidirectional else 0)  # 40 frames after subsampling >= 30
    x = torch.randn(3, 60, 8)
    lengths = torch.tensor([60, 41, 17])
    targets = torch.randint(1, 6, (3, 5))

    def loss_and_grads(model):
        model.zero_grad()
        lp, ol = model(x, lengths)
        loss = torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, ol, torch.tensor([5, 5, 3]),
                                            reduction="sum")
        loss.backward()
        return loss.detach(), [p.grad.clone() for p in model.parameters()]

    l1, g1 = loss_and_grads(full)
    l2, g2 = loss_and_grads(chunked)
    assert torch.allclose(l1, l2, atol=1e-5)
    for a, b in zip(g1, g2):
        assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("bidirectional,context", [(False, 0), (True, 3)])
def test_no_gradient_crosses_a_chunk_boundary_through_the_state(bidirectional, context):
    model = model_for("lstm", bidirectional, chunk=4, context=context)
    x = torch.randn(1, 40, 8, requires_grad=True)  # 20 frames after ×2 stacking: chunks of 4 frames
    lp, _ = model(x, torch.tensor([40]))
    lp[0, 8:12].sum().backward()  # outputs of chunk 2 (frames 8-11 = input frames 16-23)
    g = x.grad[0].abs().sum(dim=1)
    assert torch.all(g[:16] == 0)  # nothing earlier than the chunk receives gradient
    assert torch.all(g[16:24] > 0)
    # bidirectional: the R right-context frames do (they feed the backward direction); beyond them, nothing
    reach = 24 + 2 * context
    assert torch.all(g[reach:] == 0) and (context == 0 or torch.all(g[24:reach] > 0))
    # and the forward values do depend on earlier chunks (the state is carried, only its gradient is cut)
    y_ref, _ = model(x.detach(), torch.tensor([40]))
    x2 = x.detach().clone()
    x2[0, :8] += 1.0
    y2, _ = model(x2, torch.tensor([40]))
    assert not torch.allclose(y_ref[0, 8:12], y2[0, 8:12])


def test_padded_batch_equals_each_utterance_alone_in_chunked_mode():
    model = model_for("gru", True, chunk=3, context=2).eval()
    lengths = [50, 33, 8]
    xs = [torch.randn(n, 8) for n in lengths]
    batch = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
    lp, ol = model(batch, torch.tensor(lengths))
    for i, x in enumerate(xs):
        alone, n = model(x.unsqueeze(0), torch.tensor([lengths[i]]))
        assert int(n[0]) == int(ol[i])
        assert torch.allclose(lp[i, : int(n[0])], alone[0], atol=1e-5)


def test_unidirectional_right_context_is_rejected():
    from asr.config import ConfigError

    with pytest.raises(ConfigError, match="right_context"):
        ModelConfig(bidirectional=False, tbptt_chunk=4, right_context=2)


def test_chunked_forward_runs_on_the_models_layers_directly():
    model = model_for("lstm", True, chunk=5, context=2).eval()
    x = torch.randn(2, 23, 16)  # front-end output (B, T, 2 * 8)
    y = model.chunked(x, torch.tensor([23, 11]), 5, 2)
    assert y.shape == (2, 23, 32)


def recognizer_for(chunk: int, context: int, bidirectional: bool = True):
    from asr.bundle import make_bundle
    from asr.config import Config, FeatureConfig
    from asr.recognizer import Recognizer
    from asr.text import CharTokenizer

    torch.manual_seed(0)
    tok = CharTokenizer()
    cfg = Config(features=FeatureConfig(n_mels=20),
                 model=ModelConfig(subsampling="stack", subsampling_factor=3, rnn_type="lstm", num_layers=2,
                                   hidden_size=16, bidirectional=bidirectional, dropout=0.0, tbptt_chunk=chunk,
                                   right_context=context))
    model = AcousticModel(cfg.model, 20, tok.vocab_size)
    bundle = make_bundle(model, cfg, tok, torch.randn(20), torch.rand(20) + 0.5)
    return Recognizer(bundle)


@pytest.mark.parametrize("chunk,context,bidirectional", [(4, 2, True), (5, 0, False), (1000, 3, True)])
def test_streaming_equals_offline_chunked_output_for_any_block_size(chunk, context, bidirectional):
    from asr.features import apply_cmvn

    rec = recognizer_for(chunk, context, bidirectional)
    wav = torch.randn(8000 + 1234) * 0.1
    feats = apply_cmvn(rec.logmel(wav), rec.mean, rec.std)
    with torch.no_grad():
        offline, n = rec.model(feats.unsqueeze(0), torch.tensor([feats.shape[0]]))
    offline = offline[0, : int(n[0])]
    for block in (160, 4001, 100000):
        s = Streamer(rec)
        outs = []
        for i in range(0, wav.numel(), block):
            outs += s.push(wav[i:i + block])
        outs += s.finish()
        got = torch.cat(outs)
        assert got.shape == offline.shape, block
        assert torch.allclose(got, offline, atol=1e-4), (block, (got - offline).abs().max())
        # chunks are released as soon as K + R frames are there, before the end of the audio
        if chunk < 100:
            assert len(outs) == -(-offline.shape[0] // chunk)
    assert s.latency_ms == (chunk + context) * 3 * 10


def test_streaming_refuses_unchunked_models():
    rec = recognizer_for(0, 0)
    with pytest.raises(ValueError, match="tbptt_chunk"):
        Streamer(rec)


@pytest.mark.slow
def test_transcribe_stream_cli_matches_offline_for_files_and_stdin(tmp_path, capfd):
    import subprocess
    import sys

    import numpy as np
    import soundfile as sf

    from asr.bundle import make_bundle, save_bundle
    from asr.cli import main

    rec = recognizer_for(4, 2)
    bundle = make_bundle(rec.model, rec.cfg, rec.tokenizer, rec.mean, rec.std)
    model = tmp_path / "m.pt"
    save_bundle(bundle, model)
    rng = np.random.default_rng(1)
    wav = (rng.standard_normal(12000) * 0.2).astype(np.float32)
    sf.write(tmp_path / "a.wav", wav, 16000, subtype="PCM_16")
    assert main(["transcribe", "--model", str(model), str(tmp_path / "a.wav")]) == 0
    offline = capfd.readouterr().out.strip()
    assert main(["transcribe", "--stream", "--block-ms", "30", "--model", str(model), str(tmp_path / "a.wav")]) == 0
    captured = capfd.readouterr()
    assert captured.out.strip() == offline
    assert "algorithmic latency 180 ms" in captured.err  # (4 + 2) frames x 3 x 10 ms
    pcm = (sf.read(tmp_path / "a.wav", dtype="int16")[0]).tobytes()
    r = subprocess.run([sys.executable, "-m", "asr", "transcribe", "--stream", "--model", str(model), "-"],
                       input=pcm, capture_output=True, timeout=120)
    assert r.returncode == 0 and r.stdout.decode().strip() == offline
    unchunked = recognizer_for(0, 0)
    save_bundle(make_bundle(unchunked.model, unchunked.cfg, unchunked.tokenizer, unchunked.mean, unchunked.std),
                tmp_path / "u.pt")
    assert main(["transcribe", "--stream", "--model", str(tmp_path / "u.pt"), str(tmp_path / "a.wav")]) == 2
    assert "tbptt_chunk" in capfd.readouterr().err


@pytest.mark.parametrize("bidirectional,context,subsampling", [(True, 2, "stack"), (False, 0, "stack"),
                                                               (True, 3, "conv")])
def test_chunkwise_backward_gives_the_same_loss_and_gradients_as_autograd(bidirectional, context, subsampling):
    from asr.chunking import chunkwise_backward

    model = model_for("lstm", bidirectional, chunk=4, context=context, subsampling=subsampling)
    x = torch.randn(3, 70, 8)
    lengths = torch.tensor([70, 51, 20])
    targets = torch.randint(1, 6, (3, 6))
    tlens = torch.tensor([6, 5, 3])

    def loss_fn(lp, ol):
        return torch.nn.functional.ctc_loss(lp.transpose(0, 1), targets, ol, tlens, reduction="sum")

    lp, ol = model(x, lengths)
    ref = loss_fn(lp, ol)
    ref.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss, n_chunks = chunkwise_backward(model, x, lengths, loss_fn)
    assert n_chunks > 1
    assert torch.allclose(loss, ref.detach(), atol=1e-4)
    for (name, p), g in zip(model.named_parameters(), ref_grads):
        assert torch.allclose(p.grad, g, atol=1e-4), name
