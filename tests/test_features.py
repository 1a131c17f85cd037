import torch

from asr.config import FeatureConfig
from asr.features import Cmvn, LogMel, apply_cmvn, freq_warp, spec_augment, speed_perturb
from conftest import tone


def test_logmel_shape_is_frames_by_mels():
    cfg = FeatureConfig()
    feats = LogMel(cfg)(torch.from_numpy(tone(seconds=1.0)))
    assert feats.shape == (1 + 16000 // 160, 80)
    assert torch.isfinite(feats).all()


def test_logmel_peak_follows_tone_frequency():
    logmel = LogMel(FeatureConfig())
    low = logmel(torch.from_numpy(tone(freq=300.0))).mean(0).argmax()
    high = logmel(torch.from_numpy(tone(freq=3000.0))).mean(0).argmax()
    assert high > low + 20


def test_cmvn_normalises_training_statistics():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 80, generator=g) * 3 + 5
    b = torch.randn(200, 80, generator=g) * 3 + 5
    acc = Cmvn(80)
    acc.add(a)
    acc.add(b)
    mean, std = acc.stats()
    normed = apply_cmvn(torch.cat([a, b]), mean, std)
    assert normed.mean(0).abs().max() < 1e-4
    assert (normed.std(0, unbiased=False) - 1).abs().max() < 1e-3


def test_spec_augment_only_zeroes_values_and_keeps_shape():
    torch.manual_seed(0)
    cfg = FeatureConfig(freq_masks=2, freq_mask_width=20, time_masks=2, time_mask_width=30, time_mask_ratio=0.5)
    feats = torch.randn(200, 80) + 10.0  # no natural zeros
    out = spec_augment(feats, cfg)
    assert out.shape == feats.shape
    changed = out != feats
    assert changed.any()
    assert (out[changed] == 0).all()


def test_spec_augment_disabled_is_identity():
    cfg = FeatureConfig(freq_masks=0, time_masks=0)
    feats = torch.randn(50, 80)
    assert torch.equal(spec_augment(feats, cfg), feats)


def test_speed_perturb_changes_length():
    wav = torch.from_numpy(tone(seconds=1.0))
    assert abs(speed_perturb(wav, 1.1).shape[0] - 16000 / 1.1) < 2
    assert abs(speed_perturb(wav, 0.9).shape[0] - 16000 / 0.9) < 2
    assert torch.equal(speed_perturb(wav, 1.0), wav)


def test_freq_warp_moves_spectral_peak_and_keeps_shape():
    feats = torch.zeros(5, 80)
    feats[:, 40] = 1.0
    up = freq_warp(feats, 1.1)
    down = freq_warp(feats, 0.9)
    assert up.shape == feats.shape
    assert int(up[0].argmax()) == 44 and int(down[0].argmax()) == 36
    assert torch.equal(freq_warp(feats, 1.0), feats)


def test_utterance_mean_norm_cancels_a_fixed_channel_gain():
    import numpy as np
    import torch

    from asr.config import FeatureConfig
    from asr.features import LogMel, utterance_mean_norm

    rng = np.random.default_rng(0)
    wav = torch.from_numpy(rng.standard_normal(16000).astype(np.float32) * 0.1)
    plain = LogMel(FeatureConfig())

    def norm(w):
        return utterance_mean_norm(plain(w))

    a, b = norm(wav), norm(wav * 3.0)  # a louder recording of the same signal
    assert torch.allclose(a, b, atol=1e-2)  # exact but for the log floor
    assert torch.allclose(a.mean(0), torch.zeros(80), atol=1e-4)
    assert not torch.allclose(plain(wav), plain(wav * 3.0), atol=1.0)  # log 9 = 2.2 apart


def test_trim_silence_cuts_quiet_edges_only():
    import torch

    from asr.features import trim_silence

    torch.manual_seed(0)
    speech = torch.randn(8000) * 0.3
    wav = torch.cat([torch.randn(3200) * 1e-4, speech, torch.randn(4800) * 1e-4])  # 0.2 s and 0.3 s of hiss
    out = trim_silence(wav, 35)
    assert abs(out.numel() - 8000) <= 160 and torch.equal(out[160:7000], wav[3200 + 160:3200 + 7000])
    assert torch.equal(trim_silence(wav, 0), wav)  # disabled
    assert torch.equal(trim_silence(speech, 35), speech)  # nothing quiet to cut


def test_add_noise_in_the_power_domain():
    import torch

    from asr.features import add_noise

    feats = torch.full((50, 10), 2.0)  # flat power e^2 everywhere
    noisy = add_noise(feats, 0.0)  # noise as strong as the signal: power doubles
    assert torch.allclose(noisy, feats + torch.log(torch.tensor(2.0)), atol=1e-5)
    assert torch.allclose(add_noise(feats, 60.0), feats, atol=1e-5)
    tilted = add_noise(feats, 0.0, tilt_db=10.0)
    assert tilted[0, -1] > tilted[0, 0]
