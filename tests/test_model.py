import pytest
import torch

from asr.config import ModelConfig
from asr.model import AcousticModel


def make(**kw) -> AcousticModel:
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=16, num_layers=2, conv_channels=4, dropout=0.0, **kw)
    return AcousticModel(cfg, n_mels=20, vocab_size=7).eval()


@pytest.mark.parametrize("subsampling,factor", [("conv", 2), ("conv", 3), ("conv", 4), ("conv", 6), ("stack", 3)])
def test_output_lengths_match_outputs(subsampling, factor):
    model = make(subsampling=subsampling, subsampling_factor=factor)
    lens = torch.tensor([50, 37, 1])
    lp, out_lens = model(torch.randn(3, 50, 20), lens)
    assert out_lens.tolist() == [-(-n // factor) for n in lens.tolist()]
    assert lp.shape == (3, max(out_lens), 7)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(lp.shape[:2]), atol=1e-5)


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("subsampling", ["conv", "stack"])
def test_padded_batch_equals_each_utterance_alone(rnn_type, bidirectional, subsampling):
    model = make(rnn_type=rnn_type, bidirectional=bidirectional, subsampling=subsampling, subsampling_factor=3)
    g = torch.Generator().manual_seed(1)
    utts = [torch.randn(n, 20, generator=g) for n in (41, 17, 29)]
    padded = torch.nn.utils.rnn.pad_sequence(utts, batch_first=True)
    padded[1, 17:] = 5.0  # garbage in the padding must not matter
    lens = torch.tensor([u.shape[0] for u in utts])
    with torch.no_grad():
        batch_lp, batch_lens = model(padded, lens)
        for i, u in enumerate(utts):
            alone, alone_len = model(u.unsqueeze(0), lens[i:i + 1])
            n = int(alone_len)
            assert int(batch_lens[i]) == n
            torch.testing.assert_close(batch_lp[i, :n], alone[0, :n], atol=1e-5, rtol=1e-5)


def test_gradients_flow_to_every_parameter():
    model = make(rnn_type="lstm").train()
    lp, _ = model(torch.randn(2, 30, 20), torch.tensor([30, 20]))
    lp.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
