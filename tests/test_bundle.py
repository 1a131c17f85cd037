import pytest
import torch

from asr.bundle import BundleError, make_bundle, read_bundle, save_bundle
from asr.config import load_config
from asr.model import AcousticModel
from asr.recognizer import Recognizer
from asr.text import BpeTokenizer, CharTokenizer
from conftest import tone


def _bundle(tokenizer):
    cfg = load_config(None, ["model.hidden_size=16", "model.num_layers=1", "model.conv_channels=4"])
    torch.manual_seed(0)
    model = AcousticModel(cfg.model, cfg.features.n_mels, tokenizer.vocab_size)
    return model, make_bundle(model, cfg, tokenizer, torch.zeros(80), torch.ones(80))


@pytest.mark.parametrize("tokenizer", [CharTokenizer(), BpeTokenizer.train(["RED BOX", "BLUE CUP"] * 10, 20)])
def test_roundtrip_gives_identical_outputs(tmp_path, tokenizer):
    model, bundle = _bundle(tokenizer)
    save_bundle(bundle, tmp_path / "m.pt")
    rec = Recognizer.load(tmp_path / "m.pt")
    x = torch.randn(1, 40, 80)
    with torch.no_grad():
        expected, _ = model.eval()(x, torch.tensor([40]))
        got, _ = rec.model(x, torch.tensor([40]))
    torch.testing.assert_close(got, expected)
    assert rec.tokenizer.encode("RED BOX") == tokenizer.encode("RED BOX")
    assert isinstance(rec.transcribe_wave(torch.from_numpy(tone())), str)


def test_bundle_loads_with_weights_only(tmp_path):
    _, bundle = _bundle(CharTokenizer())
    save_bundle(bundle, tmp_path / "m.pt")
    loaded = torch.load(tmp_path / "m.pt", weights_only=True)
    assert loaded["format"] == "asr-bundle" and loaded["version"] == 1


def test_bad_bundles_are_clear_errors(tmp_path):
    with pytest.raises(BundleError, match="model file not found"):
        read_bundle(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"junk" * 100)
    with pytest.raises(BundleError, match="junk.pt: not a readable asr model bundle"):
        read_bundle(tmp_path / "junk.pt")
    torch.save({"format": "asr-bundle", "version": 99}, tmp_path / "future.pt")
    with pytest.raises(BundleError, match="version 99 is not supported"):
        read_bundle(tmp_path / "future.pt")
    torch.save({"weights": 1}, tmp_path / "other.pt")
    with pytest.raises(BundleError, match="not an asr model bundle"):
        read_bundle(tmp_path / "other.pt")


def test_average_checkpoints_and_selection(tmp_path):
    import pytest
    import torch

    from asr.bundle import BundleError, average_checkpoints, make_bundle, pick_checkpoints, read_bundle, save_bundle
    from asr.config import Config, ModelConfig
    from asr.model import AcousticModel
    from asr.text import CharTokenizer

    cfg = Config(model=ModelConfig(subsampling="stack", subsampling_factor=2, num_layers=1, hidden_size=8))
    tok = CharTokenizer()
    ckdir = tmp_path / "exp" / "checkpoints"
    models = []
    for epoch, wer in ((1, 50.0), (2, 20.0), (3, 30.0)):
        torch.manual_seed(epoch)
        m = AcousticModel(cfg.model, 80, tok.vocab_size)
        models.append(m)
        save_bundle(make_bundle(m, cfg, tok, torch.zeros(80), torch.ones(80),
                                train_state={"epoch": epoch, "dev_wer": wer}), ckdir / f"epoch-{epoch:04d}.pt")
    assert [p.name for p in pick_checkpoints(tmp_path / "exp", 2, "last")] == ["epoch-0002.pt", "epoch-0003.pt"]
    assert [p.name for p in pick_checkpoints(tmp_path / "exp", 2, "best")] == ["epoch-0002.pt", "epoch-0003.pt"]
    assert [p.name for p in pick_checkpoints(tmp_path / "exp", 1, "best")] == ["epoch-0002.pt"]
    average_checkpoints(sorted(ckdir.glob("*.pt")), tmp_path / "avg.pt")
    avg = read_bundle(tmp_path / "avg.pt")["model"]
    for k, v in avg.items():
        expect = sum(m.state_dict()[k] for m in models) / 3
        assert torch.allclose(v, expect, atol=1e-6), k
    other = Config(model=ModelConfig(subsampling="stack", subsampling_factor=2, num_layers=2, hidden_size=8))
    save_bundle(make_bundle(AcousticModel(other.model, 80, tok.vocab_size), other, tok, torch.zeros(80),
                            torch.ones(80)), tmp_path / "other.pt")
    with pytest.raises(BundleError, match="different model architecture"):
        average_checkpoints([ckdir / "epoch-0001.pt", tmp_path / "other.pt"], tmp_path / "bad.pt")
    with pytest.raises(BundleError, match="no epoch checkpoints"):
        pick_checkpoints(tmp_path, 2)
