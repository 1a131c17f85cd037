import errno
import os
from pathlib import Path

import pytest

from asr.config import Config, ConfigError, load_config, save_config
from asr.fileio import DiskFullError


def test_defaults_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model:\n  rnn_type: lstm\n  hidden_size: 64\ntrain:\n  epochs: 3\n")
    cfg = load_config(path, ["model.num_layers=2", "features.speed_perturb=[1.0]", "model.bidirectional=false"])
    assert cfg.model.rnn_type == "lstm" and cfg.model.hidden_size == 64 and cfg.model.num_layers == 2
    assert cfg.features.speed_perturb == (1.0,)
    assert cfg.model.bidirectional is False
    assert cfg.train.epochs == 3 and cfg.train.lr == Config().train.lr


def test_resolved_config_roundtrips(tmp_path):
    cfg = load_config(None, ["tokenizer.kind=bpe", "train.lr=0.01"])
    save_config(cfg, tmp_path / "resolved.yaml")
    assert load_config(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize("override,message", [
    ("model.hiden_size=3", "unknown config key model.hiden_size"),
    ("modle.hidden_size=3", "unknown config section 'modle'"),
    ("model.hidden_size=abc", "model.hidden_size: expected a whole number"),
    ("model.rnn_type=transformer", "rnn_type must be"),
    ("train.lr=-1", "lr must be positive"),
    ("nodot=1", "must look like section.key=value"),
    ("features.background_snr=[20, 5]", "background_snr must be \\[low_db, high_db\\]"),
    ("features.background_prob=2", "background_prob must be in"),
    ("features.pitch_semitones=[3, -3]", "pitch_semitones must be \\[low, high\\]"),
    ("features.pitch_semitones=[-13, 3]", "pitch_semitones must be"),
    ("features.pitch_prob=1.5", "pitch_prob must be in"),
    ("features.reverb_rt60=[0.01, 0.5]", "reverb_rt60 must be"),
    ("features.reverb_rt60=[0.5]", "reverb_rt60 must be"),
    ("features.reverb_room=[1, 5]", "reverb_room must be"),
    ("features.telephone_prob=-0.1", "telephone_prob must be in"),
    ("features.codecs=opus,aac", "codecs must name one or more of opus, mp3"),
])
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


def test_a_config_write_that_fails_half_way_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "resolved.yaml"
    old = load_config(None, ["train.lr=0.01"])
    save_config(old, path)
    real = Path.write_text

    def disk_full_half_way(self, data, *args, **kwargs):
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full_half_way)
    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        save_config(load_config(None, ["train.lr=0.5"]), path)
    monkeypatch.undo()
    assert load_config(path) == old
    assert os.listdir(tmp_path) == ["resolved.yaml"]  # no temporary file left behind


def test_waveform_augmentation_with_a_feature_cache_is_refused():
    assert load_config(None, ["data.feature_cache=feats", "features.noise_snr=[10, 30]"])  # feature domain: fine
    for option in ("features.pitch_prob=0.5", "features.background_noise=noise.jsonl", "features.reverb_prob=0.5",
                   "features.telephone_prob=0.2", "features.codec_prob=0.1"):
        with pytest.raises(ConfigError, match="data.feature_cache holds finished features"):
            load_config(None, ["data.feature_cache=feats", option])
        assert load_config(None, [option]).features.waveform_augmentation
    assert not Config().features.waveform_augmentation
