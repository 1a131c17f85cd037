import math

import pytest
import torch

from asr.config import load_config
from asr.corpus.librispeech import prepare
from asr.recognizer import Recognizer
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
    # summed CTC loss per utterance: under 0.3 nats the reference transcript holds over 74 % of the probability.
    # It varies with the recordings the fixture uses and the machine (0.106 without ../shared in the 2026-12-07
    # fresh check, under 0.1 in earlier ones), so the bound leaves room; the exact decode below is the stricter
    # half of the check
    assert float(loss) < 0.3
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


@pytest.mark.slow
def test_chunked_training_with_bf16_autocast_learns(digit_corpus, tmp_path):
    """Truncated BPTT (LC-BiGRU chunks, chunk-wise backward) under bf16 autocast on the CPU: the loss falls
    and the checkpoint loads and decodes."""
    prepare(digit_corpus, tmp_path / "data", progress=False)
    lines = (tmp_path / "data" / "train.jsonl").read_text().splitlines()
    (tmp_path / "tiny.jsonl").write_text("\n".join(lines[:3]) + "\n")
    cfg = load_config(None, OVERFIT + [f"data.train={tmp_path / 'tiny.jsonl'}", f"train.exp_dir={tmp_path / 'exp'}",
                                       "train.epochs=40", "train.precision=bf16", "model.tbptt_chunk=4",
                                       "model.right_context=2", "model.subsampling=stack",
                                       "model.subsampling_factor=3"])
    bundle = train(cfg, progress=False)
    losses = [float(line.split("mean loss ")[1].split(",")[0])
              for line in (tmp_path / "exp" / "train.log").read_text().splitlines() if "mean loss" in line]
    assert len(losses) == 40 and all(math.isfinite(v) for v in losses)
    assert losses[-1] < 0.3 * losses[0]
    assert Recognizer.load(bundle).cfg.model.tbptt_chunk == 4


def test_fp16_on_cpu_is_a_clear_error(tmp_path, digit_corpus):
    from asr.config import ConfigError

    prepare(digit_corpus, tmp_path / "data", progress=False)
    cfg = load_config(None, OVERFIT + [f"data.train={tmp_path / 'data' / 'train.jsonl'}", "train.device=cpu",
                                       f"train.exp_dir={tmp_path / 'exp'}", "train.precision=fp16"])
    with pytest.raises(ConfigError, match="fp16 needs CUDA"):
        train(cfg, progress=False)


def test_bf16_lstm_training_runs_or_is_refused_where_the_cpu_cannot(tmp_path, digit_corpus):
    """An AVX2-only x86 CPU has no oneDNN bf16 LSTM: the first forward pass under autocast fails there. Training
    with train.precision=bf16 then stops at once with a ConfigError naming the key; where the kernel exists,
    it trains. The probe's verdict agrees with a plain torch LSTM under autocast on this machine."""
    from asr.config import ConfigError
    from asr.model import bf16_problem

    try:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            torch.nn.LSTM(8, 8, batch_first=True)(torch.randn(2, 3, 8))
        works = True
    except RuntimeError:
        works = False
    problem = bf16_problem("lstm", torch.device("cpu"))
    assert (problem == "") == works
    prepare(digit_corpus, tmp_path / "data", progress=False)
    cfg = load_config(None, OVERFIT + [f"data.train={tmp_path / 'data' / 'train.jsonl'}", "train.device=cpu",
                                       f"train.exp_dir={tmp_path / 'exp'}", "train.precision=bf16",
                                       "model.rnn_type=lstm", "train.epochs=1"])
    if works:
        assert train(cfg, progress=False).is_file()
    else:
        with pytest.raises(ConfigError, match="train.precision=bf16: this cpu cannot run lstm layers in bf16"):
            train(cfg, progress=False)
        assert not (tmp_path / "exp" / "model.pt").exists()
