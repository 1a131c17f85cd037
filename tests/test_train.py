import math

import pytest
import torch

from asr.bundle import Recognizer
from asr.config import load_config
from asr.corpus.librispeech import prepare
from asr.train import ctc_loss, lr_factor, train

OVERFIT = ["features.speed_perturb=[1.0]", "features.freq_masks=0", "features.time_masks=0",
           "model.hidden_size=64", "model.num_layers=1", "model.dropout=0.0", "model.conv_channels=8",
           "train.warmup_steps=5", "train.lr=0.01", "train.final_lr_ratio=0.05", "train.batch_size=4"]


@pytest.fixture(scope="module")
def overfit_run(digit_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("overfit")
    prepare(digit_corpus, out / "data", progress=False)
    # three utterances of one speaker, trained and "evaluated" on the same data
    lines = (out / "data" / "train.jsonl").read_text().splitlines()
    (out / "tiny.jsonl").write_text("\n".join(lines[:3]) + "\n")
    cfg = load_config(None, OVERFIT + [f"data.train={out / 'tiny.jsonl'}", f"data.dev={out / 'tiny.jsonl'}",
                                       f"train.exp_dir={out / 'exp'}", "train.epochs=150"])
    bundle = train(cfg, progress=False)
    return out, bundle


def test_overfits_a_few_utterances_to_near_zero_loss(overfit_run):
    out, bundle = overfit_run
    rec = Recognizer.load(bundle)
    from asr.manifest import read_manifest

    utts = read_manifest(out / "tiny.jsonl")
    ds = rec.dataset(utts)
    from asr.data import collate

    batch = collate([ds[i] for i in range(len(ds))], [u.id for u in utts])
    with torch.no_grad():
        lp, lens = rec.model(batch.feats, batch.feat_lens)
    loss = ctc_loss(lp, lens, batch.targets, batch.target_lens)
    assert float(loss) < 0.1
    assert rec.decode_features(batch.feats, batch.feat_lens) == [u.text for u in utts]


def test_experiment_folder_has_log_config_and_checkpoints(overfit_run):
    out, bundle = overfit_run
    exp = out / "exp"
    for name in ("config.yaml", "train.log", "best.pt", "last.pt", "model.pt"):
        assert (exp / name).is_file(), name
    log = (exp / "train.log").read_text()
    assert "dev WER" in log and "best epoch" in log


def test_lr_schedule_warms_up_then_decays():
    assert lr_factor(0.0, 0, warmup=10, final_ratio=0.1) == pytest.approx(0.1)
    assert lr_factor(0.0, 9, warmup=10, final_ratio=0.1) == pytest.approx(1.0)
    assert lr_factor(0.5, 50, warmup=10, final_ratio=0.1) == pytest.approx(0.55)
    assert lr_factor(1.0, 99, warmup=10, final_ratio=0.1) == pytest.approx(0.1)


def test_ctc_loss_is_finite_when_target_is_too_long():
    lp = torch.randn(1, 3, 5).log_softmax(-1)
    loss = ctc_loss(lp, torch.tensor([3]), torch.tensor([[1, 2, 3, 4, 1]]), torch.tensor([5]))
    assert math.isfinite(float(loss))
