import pytest
import torch

from asr.config import FeatureConfig, load_config
from asr.corpus.librispeech import prepare
from asr.data import SpeechDataset
from asr.featcache import CacheError, FeatureCache, write_cache
from asr.manifest import read_manifest


@pytest.fixture(scope="module")
def utts(digit_corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache-data")
    prepare(digit_corpus, out, progress=False)
    return out, read_manifest(out / "train.jsonl")[:12]


def test_cached_features_equal_computed_ones_at_every_speed(utts, tmp_path):
    _, items = utts
    cfg = FeatureConfig(speed_perturb=(0.9, 1.0, 1.1), trim_db=30.0)
    summary = write_cache(items, cfg, tmp_path / "cache", speeds=cfg.speed_perturb, shard_mb=0.05, progress=False)
    assert summary["utterances"] == 12 and summary["shards"] > 1  # small shards: several files
    cache = FeatureCache(tmp_path / "cache")
    cache.check(cfg, cfg.speed_perturb, items)
    plain = SpeechDataset(items, None, cfg, cache=False)
    cached = SpeechDataset(items, None, cfg, cache=False, store=cache)
    for i in (0, 5, 11):
        for s in (0.9, 1.0, 1.1):
            assert torch.equal(cached.raw_features(i, s), plain.raw_features(i, s))
    assert isinstance(cache._shard(0), __import__("numpy").memmap)


def test_float16_cache_is_close_and_half_the_size(utts, tmp_path):
    _, items = utts
    cfg = FeatureConfig()
    big = write_cache(items, cfg, tmp_path / "f32", progress=False)
    small = write_cache(items, cfg, tmp_path / "f16", dtype="float16", progress=False)
    assert small["bytes"] < 0.6 * big["bytes"]
    a, b = FeatureCache(tmp_path / "f32").get(items[3].id), FeatureCache(tmp_path / "f16").get(items[3].id)
    torch.testing.assert_close(b, a, atol=0.02, rtol=0.01)


def test_cache_made_with_other_settings_or_incomplete_is_refused(utts, tmp_path):
    out, items = utts
    write_cache(items[:6], FeatureConfig(), tmp_path / "c", progress=False)
    cache = FeatureCache(tmp_path / "c")
    with pytest.raises(CacheError, match="n_mels: cache 80 vs config 40"):
        cache.check(FeatureConfig(n_mels=40), (1.0,), items[:6])
    with pytest.raises(CacheError, match=r"speed\(s\) \[0.9\]"):
        cache.check(FeatureConfig(), (0.9, 1.0), items[:6])
    with pytest.raises(CacheError, match="6 utterance"):
        cache.check(FeatureConfig(), (1.0,), items)
    with pytest.raises(CacheError, match="not a feature cache"):
        FeatureCache(tmp_path)
    (tmp_path / "c" / "index.json").write_text("{broken")
    with pytest.raises(CacheError, match="damaged index"):
        FeatureCache(tmp_path / "c")


@pytest.mark.slow
def test_asr_features_then_training_from_the_cache(utts, tmp_path):
    import subprocess
    import sys

    out, _ = utts
    conf = tmp_path / "c.yaml"
    conf.write_text("features:\n  speed_perturb: [1.0]\n  n_mels: 40\n")
    run = subprocess.run([sys.executable, "-m", "asr", "features", "--config", str(conf), str(out / "train.jsonl"),
                          str(tmp_path / "cache"), "--quiet"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert "80 utterances" in run.stdout
    from asr.train import train

    cfg = load_config(conf, [f"data.train={out / 'train.jsonl'}", f"data.feature_cache={tmp_path / 'cache'}",
                             f"train.exp_dir={tmp_path / 'exp'}", "train.epochs=1", "model.hidden_size=32",
                             "model.num_layers=1", "train.tensorboard=false"])
    train(cfg, progress=False)
    assert f"features from {tmp_path / 'cache'}" in (tmp_path / "exp" / "train.log").read_text()
    bad = load_config(None, [f"data.train={out / 'train.jsonl'}", f"data.feature_cache={tmp_path / 'cache'}",
                             f"train.exp_dir={tmp_path / 'exp2'}"])
    with pytest.raises(CacheError, match="other feature settings"):
        train(bad, progress=False)
