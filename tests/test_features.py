import math

import numpy as np
import pytest
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


def _power(x) -> float:
    return float((x.double() ** 2).mean())


def test_background_noise_is_added_at_the_asked_snr_and_looped():
    from asr.features import add_background

    t = torch.arange(16000) / 16000
    speech = 0.3 * torch.sin(2 * torch.pi * 300 * t) * (1 + torch.sin(2 * torch.pi * 3 * t))
    noise = torch.randn(4000, generator=torch.Generator().manual_seed(0))  # a quarter of the utterance: looped
    for snr in (0.0, 10.0, 25.0):
        added = add_background(speech, noise, snr, offset=1234) - speech
        assert abs(10 * math.log10(_power(speech) / _power(added)) - snr) < 0.01
        assert torch.allclose(added[:-4000], added[4000:], atol=1e-6)  # the clip repeats, from the offset on
        scale = added[0] / noise[1234]
        assert torch.allclose(added[:100], scale * noise[1234:1334], atol=1e-6)
    assert torch.equal(add_background(speech, torch.zeros(100), 10.0), speech)  # a silent clip adds nothing


def _rt60(h, sr=16000) -> float:
    """Reverberation time from the Schroeder backward integral of a decay (T20: its -5 to -25 dB slope)."""
    energy = np.cumsum((np.asarray(h, dtype=np.float64) ** 2)[::-1])[::-1]
    level = 10 * np.log10(energy / energy[0] + 1e-30)
    a, b = int(np.argmax(level <= -5)), int(np.argmax(level <= -25))
    slope = np.polyfit(np.arange(a, b) / sr, level[a:b], 1)[0]
    return -60.0 / slope


def test_reverb_keeps_length_and_alignment_and_decays_at_the_asked_rt60():
    from asr.features import reverberate, room_impulse_response

    burst = torch.zeros(24000)
    burst[:1600] = torch.randn(1600, generator=torch.Generator().manual_seed(0))  # 0.1 s of noise, then silence
    for rt60 in (0.3, 0.8):
        rir, direct = room_impulse_response([5.0, 4.0, 3.0], [1.0, 1.2, 1.5], [3.5, 2.5, 1.2], rt60,
                                            np.random.default_rng(0))
        assert rir[direct] == pytest.approx(1.0)  # normalised to the direct path
        out = reverberate(burst, rir, direct)
        assert out.shape == burst.shape
        xcorr = np.correlate(out.numpy(), burst.numpy(), mode="full")
        assert abs(int(np.argmax(xcorr)) - (burst.numel() - 1)) <= 2  # aligned: no delay
        tail = out[1600:].numpy()
        assert 10 * math.log10(_power(out[1600:3200]) / _power(burst[:1600])) > -30  # a tail rings on
        assert abs(_rt60(tail) / rt60 - 1) < 0.25


def test_random_rooms_come_from_the_seed_alone():
    import random

    from asr.features import random_rir

    a, b, c = (random_rir(random.Random(s), (0.2, 0.8), (3.0, 10.0)) for s in (7, 7, 8))
    assert a[1] == b[1] and np.array_equal(a[0], b[0])
    assert not (a[0].shape == c[0].shape and np.array_equal(a[0], c[0]))


def test_telephone_band_leaves_nothing_above_4_khz():
    from asr.features import telephone

    white = torch.randn(16001, generator=torch.Generator().manual_seed(0))  # odd length: resampling rounds
    out = telephone(white, band_limit=True)
    assert out.shape == white.shape
    spec = torch.fft.rfft(out.double() * torch.hann_window(out.numel(), dtype=torch.float64)).abs() ** 2
    freqs = torch.fft.rfftfreq(out.numel(), 1 / 16000)
    assert 10 * math.log10(spec[freqs > 4000].sum() / spec.sum()) < -40
    ref = torch.fft.rfft(white.double() * torch.hann_window(white.numel(), dtype=torch.float64)).abs() ** 2
    kept = spec[(freqs > 300) & (freqs < 3000)].sum() / ref[(freqs > 300) & (freqs < 3000)].sum()
    assert 0.9 < kept < 1.1  # the telephone band itself passes


@pytest.mark.parametrize("codec", ["opus", "mp3"])
@pytest.mark.parametrize("band", [False, True])
def test_codec_round_trip_keeps_length_and_timing(codec, band):
    from asr.features import codec_round_trip, telephone

    t = torch.arange(12345) / 16000
    wav = 0.3 * torch.sin(2 * torch.pi * (200 + 600 * t) * t) * (t < 0.5)  # a chirp, then silence
    out = telephone(wav, band, codec, level=0.9)
    assert out.shape == wav.shape and not torch.equal(out, wav)  # lossy
    xcorr = np.correlate(out.numpy(), wav.numpy(), mode="full")
    assert int(np.argmax(xcorr)) - (wav.numel() - 1) == 0
    assert float(torch.corrcoef(torch.stack([out, wav]))[0, 1]) > 0.9
    assert codec_round_trip(wav[:999], codec).shape == (999,)


def _vowel(f0: float, formants=(700.0, 1800.0), n: int = 16000) -> torch.Tensor:
    """A synthetic vowel: an impulse train at `f0` Hz through two resonators (formants) of 90 and 120 Hz
    bandwidth."""
    import torchaudio.functional as AF

    pulses = torch.zeros(n)
    pulses[(torch.arange(0, n, 16000 / f0)).long()] = 1.0
    out = pulses
    for freq, bandwidth in zip(formants, (90.0, 120.0)):
        r = math.exp(-math.pi * bandwidth / 16000)
        a = torch.tensor([1.0, -2 * r * math.cos(2 * math.pi * freq / 16000), r * r])
        out = AF.lfilter(out, a, torch.tensor([1 - r, 0.0, 0.0]), clamp=False)
    return 0.3 * out / out.abs().max()


def _harmonic_energy(wav: torch.Tensor, f0: float) -> float:
    """Energy of `wav` in narrow bands around the first six harmonics of `f0`."""
    mid = wav[2000:-2000]
    spec = torch.fft.rfft(mid * torch.hann_window(mid.numel())).abs() ** 2
    step = 16000 / mid.numel()
    return sum(float(spec[round(k * f0 / step) - 3:round(k * f0 / step) + 4].sum()) for k in range(1, 7))


def _first_formant(wav: torch.Tensor) -> float:
    from asr.features import PITCH_FFT, _stft, log_envelope

    env = log_envelope(_stft(wav))[:, 5:-5].mean(dim=1)
    freqs = torch.arange(env.numel()) * 16000 / PITCH_FFT
    band = (freqs > 300) & (freqs < 1200)
    return float(freqs[band][int(env[band].argmax())])


@pytest.mark.parametrize("semitones", [-3.0, 2.5])
def test_pitch_shift_moves_the_harmonics_and_keeps_formants_length_and_level(semitones):
    from asr.features import pitch_shift

    vowel = _vowel(120.0)
    out = pitch_shift(vowel, semitones)
    assert out.shape == vowel.shape
    moved = 120.0 * 2 ** (semitones / 12)
    assert _harmonic_energy(out, moved) > 20 * _harmonic_energy(out, 120.0)  # the voice is higher or lower
    assert _harmonic_energy(vowel, 120.0) > 20 * _harmonic_energy(vowel, moved)  # (the measure can tell)
    assert abs(_first_formant(out) - _first_formant(vowel)) <= 32  # one STFT bin: the vocal tract stays
    assert abs(_first_formant(speed_perturb(vowel, 2 ** (semitones / 12))) - _first_formant(vowel)) > 60  # two bins
    assert float(out.pow(2).mean() / vowel.pow(2).mean()) == pytest.approx(1.0, rel=1e-3)
    assert torch.equal(pitch_shift(vowel, 0.0), vowel)
    for n in (100, 1024, 1500):  # from far too short to analyse to just long enough, at the widest shifts
        for shift in (-12.0, 12.0):
            assert pitch_shift(vowel[:n], shift).shape == (n,)
