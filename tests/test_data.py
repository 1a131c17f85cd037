import random

import torch

from asr.config import FeatureConfig
from asr.corpus.librispeech import prepare
from asr.data import SpeechDataset, collate, make_batches
from asr.manifest import read_manifest
from asr.text import CharTokenizer


def test_batches_respect_both_bounds_and_cover_every_item_once():
    rng = random.Random(0)
    lengths = [rng.randint(50, 1500) for _ in range(300)]
    batches = make_batches(lengths, batch_size=16, max_frames=6000, shuffle=True, seed=3)
    seen = sorted(i for b in batches for i in b)
    assert seen == list(range(300))
    for b in batches:
        assert len(b) <= 16
        assert max(lengths[i] for i in b) * len(b) <= 6000 or len(b) == 1


def test_unshuffled_batches_go_from_short_to_long():
    lengths = [30, 10, 20, 40, 50, 60]
    batches = make_batches(lengths, batch_size=2, max_frames=10**6, shuffle=False)
    assert batches == [[1, 2], [0, 3], [4, 5]]
    shuffled = make_batches(lengths, batch_size=2, max_frames=10**6, shuffle=True, seed=1)
    assert sorted(map(sorted, shuffled)) == sorted(map(sorted, batches))


def test_collate_pads_and_keeps_lengths():
    items = [(torch.ones(5, 3), torch.tensor([1, 2])), (torch.ones(2, 3), torch.tensor([3, 4, 5]))]
    b = collate(items, ["a", "b"])
    assert b.feats.shape == (2, 5, 3) and b.feats[1, 2:].abs().sum() == 0
    assert b.feat_lens.tolist() == [5, 2] and b.target_lens.tolist() == [2, 3]
    assert b.targets.tolist() == [[1, 2, 0], [3, 4, 5]]


def test_augmentation_only_in_training(digit_corpus, tmp_path):
    prepare(digit_corpus, tmp_path, progress=False)
    utts = read_manifest(tmp_path / "dev.jsonl")[:2]
    cfg = FeatureConfig(speed_perturb=(0.9, 1.1), freq_warp=0.1)
    evaluation = SpeechDataset(utts, CharTokenizer(), cfg, train=False)
    assert torch.equal(evaluation[0][0], evaluation[0][0])
    training = SpeechDataset(utts, CharTokenizer(), cfg, train=True)
    torch.manual_seed(0)
    random.seed(0)
    a, b = training[0][0], training[0][0]
    n_eval = evaluation[0][0].shape[0]
    assert a.shape[0] != n_eval and b.shape[0] != n_eval  # speed 0.9 or 1.1 always changes the length
    if a.shape == b.shape:
        assert not torch.equal(a, b)  # warping and masking are drawn anew each time


def test_frame_budget_batches_never_exceed_the_budget_on_any_rank():
    from asr.distributed import shard

    rng = random.Random(1)
    lengths = [rng.randint(20, 900) for _ in range(500)]
    for world in (1, 2, 3, 4):
        batches = make_batches(lengths, batch_size=12, max_frames=3000, shuffle=True, seed=5, shards=world)
        assert sorted(i for b in batches for i in b) == list(range(500))  # no duplicates, no gaps
        for b in batches:
            parts = [shard(b, r, world) for r in range(world)]
            assert sorted(i for p in parts for i in p) == sorted(b)
            for p in parts:
                assert len(p) <= 12
                assert not p or max(lengths[i] for i in p) * len(p) <= 3000


def test_sortagrad_orders_epoch_one_only():
    from asr.data import epoch_batches

    rng = random.Random(2)
    lengths = [rng.randint(20, 900) for _ in range(200)]

    def longest(batches):
        return [max(lengths[i] for i in b) for b in batches]

    first = epoch_batches(lengths, 8, 4000, epoch=1, seed=0)
    assert longest(first) == sorted(longest(first))
    for epoch in (2, 3):
        later = epoch_batches(lengths, 8, 4000, epoch=epoch, seed=0)
        assert longest(later) != sorted(longest(later))
        assert sorted(map(sorted, later)) == sorted(map(sorted, first))
    assert epoch_batches(lengths, 8, 4000, 2, seed=0) != epoch_batches(lengths, 8, 4000, 3, seed=0)
    plain = epoch_batches(lengths, 8, 4000, epoch=1, seed=0, sortagrad=False)
    assert longest(plain) != sorted(longest(plain))


def _corrupting_corpus(tmp_path, **options):
    """Two tone utterances and a noise manifest of two clips, written as files; a FeatureConfig with every
    waveform corruption on (always applied) plus `options`."""
    import numpy as np
    import soundfile as sf

    from asr.manifest import Utterance, write_manifest

    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    utts = []
    for n, f in enumerate((300, 500)):
        sf.write(tmp_path / f"u{n}.wav", (0.3 * np.sin(2 * np.pi * f * t * (1 + t))).astype(np.float32), 16000)
        utts.append(Utterance(f"u{n}", str(tmp_path / f"u{n}.wav"), 1.0, "s", "AB"))
    for n, seconds in enumerate((0.3, 1.5)):
        sf.write(tmp_path / f"n{n}.flac", (0.1 * rng.standard_normal(int(16000 * seconds))).astype(np.float32), 16000)
    write_manifest([Utterance(f"n{n}", str(tmp_path / f"n{n}.flac"), 1.0, "", "") for n in range(2)],
                   tmp_path / "noise.jsonl")
    settings = dict(background_noise=str(tmp_path / "noise.jsonl"), background_prob=1.0, pitch_prob=1.0,
                    reverb_prob=1.0, telephone_prob=1.0, codec_prob=1.0, speed_perturb=(0.9, 1.0, 1.1))
    return utts, FeatureConfig(**{**settings, **options})


def test_waveform_corruption_is_the_same_for_a_seed_in_any_process(tmp_path):
    from asr.data import EpochSampler, item_seed, training_loader

    utts, cfg = _corrupting_corpus(tmp_path)
    ds = SpeechDataset(utts, CharTokenizer(), cfg, train=True)
    seeds = [item_seed(0, 1, i) for i in range(2)]
    a = ds[0, seeds[0]][0]
    assert ds._waves and not ds._feats  # waveforms cached, features computed per item
    for seed in range(6):
        assert torch.equal(ds[1, seed][0], ds[1, seed][0])
    assert torch.equal(a, SpeechDataset(utts, CharTokenizer(), cfg, train=True, cache=False)[0, seeds[0]][0])
    other = ds[0, seeds[0] + 1][0]
    assert not (other.shape == a.shape and torch.equal(other, a))
    clean = SpeechDataset(utts, CharTokenizer(), FeatureConfig(speed_perturb=(0.9, 1.0, 1.1)), train=True)
    b = clean[0, seeds[0]][0]
    assert not clean._waves and clean._feats  # off: features cached as before
    assert not (b.shape == a.shape and torch.equal(b, a))  # the corruption changed the item
    sampler = EpochSampler(seed=0)
    sampler.set_epoch(1, [[0, 1]])
    worker = next(iter(training_loader(ds, sampler, workers=1, pin_memory=False)))  # another process
    for i in range(2):
        mine = ds[i, seeds[i]][0]
        assert torch.equal(worker.feats[i, :mine.shape[0]], mine)


def test_each_corruption_alone_changes_the_item(tmp_path):
    utts, _ = _corrupting_corpus(tmp_path)
    base = SpeechDataset(utts, CharTokenizer(), FeatureConfig(speed_perturb=()), train=True)[0, 5][0]
    off = dict(background_noise="", reverb_prob=0.0, telephone_prob=0.0, codec_prob=0.0, speed_perturb=())
    for key, value in (("pitch_prob", 1.0), ("background_noise", str(tmp_path / "noise.jsonl")), ("reverb_prob", 1.0),
                       ("telephone_prob", 1.0), ("codec_prob", 1.0)):
        cfg = FeatureConfig(**{**off, key: value, "background_prob": 1.0})
        feats = SpeechDataset(utts, CharTokenizer(), cfg, train=True)[0, 5][0]
        assert feats.shape == base.shape  # every corruption keeps the length, so the targets stay aligned
        assert not torch.equal(feats, base), key


def test_a_missing_noise_manifest_or_clip_is_named(tmp_path):
    import pytest

    from asr.manifest import ManifestError

    utts, cfg = _corrupting_corpus(tmp_path, background_noise=str(tmp_path / "nope.jsonl"))
    with pytest.raises(ManifestError, match="nope.jsonl: manifest not found"):
        SpeechDataset(utts, CharTokenizer(), cfg, train=True)
    utts, cfg = _corrupting_corpus(tmp_path)
    (tmp_path / "n1.flac").unlink()
    with pytest.raises(ManifestError, match=r"noise.jsonl: noise clip .*n1.flac not found"):
        SpeechDataset(utts, CharTokenizer(), cfg, train=True)
    SpeechDataset(utts, CharTokenizer(), cfg, train=False)  # evaluation never reads the noise


def test_speaker_mean_norm_cancels_a_speakers_channel_and_keeps_the_words(tmp_path):
    import numpy as np
    import pytest

    from asr.audio import write_audio
    from asr.manifest import Utterance

    rng = np.random.default_rng(0)
    t = np.arange(8000) / 16000
    words = [np.sin(2 * np.pi * f * t) * 0.3 + rng.standard_normal(8000) * 0.01 for f in (300, 1200, 2500)]
    utts = []
    for speaker, gain in (("near", 1.0), ("far", 0.3)):  # the same three "words", one speaker 10 dB quieter
        for k, wav in enumerate(words):
            path = tmp_path / f"{speaker}{k}.wav"
            write_audio(path, (wav * gain).astype(np.float32), 16000)
            utts.append(Utterance(f"{speaker}{k}", str(path), 0.5, speaker, "A"))
    ds = SpeechDataset(utts, CharTokenizer(), FeatureConfig(speaker_mean_norm=True, n_mels=40), train=False)
    near, far = [ds[k][0] for k in range(3)], [ds[3 + k][0] for k in range(3)]
    for a, b in zip(near, far):
        assert (a - b).abs().mean() < 0.03  # the gain (2.4 in log power) is gone, but for 16-bit rounding
    assert not torch.allclose(near[0].mean(0), near[1].mean(0), atol=1.0)  # each word keeps its own spectrum
    assert torch.allclose(torch.cat(near).mean(0), torch.zeros(40), atol=1e-3)  # the speaker's mean is zero
    plain = SpeechDataset(utts, CharTokenizer(), FeatureConfig(n_mels=40), train=False)
    assert not torch.allclose(plain[0][0], plain[3][0], atol=1.0)
    with pytest.raises(ValueError, match="exclude each other"):
        FeatureConfig(speaker_mean_norm=True, utterance_mean_norm=True)


def test_speaker_var_norm_stretches_a_noisy_speakers_range_to_the_others(tmp_path):
    import numpy as np
    import pytest

    from asr.audio import write_audio
    from asr.features import utterance_var_norm
    from asr.manifest import Utterance

    rng = np.random.default_rng(1)
    t = np.arange(8000) / 16000
    words = [np.sin(2 * np.pi * f * t) * 0.3 * np.hanning(8000) for f in (300, 1200, 2500)]
    utts = []
    for speaker, noise in (("clean", 0.001), ("noisy", 0.03)):  # the noisy speaker's floor hides the quiet frames
        for k, wav in enumerate(words):
            path = tmp_path / f"{speaker}{k}.wav"
            write_audio(path, (wav + rng.standard_normal(8000) * noise).astype(np.float32), 16000)
            utts.append(Utterance(f"{speaker}{k}", str(path), 0.5, speaker, "A"))

    def spread(cfg):  # per speaker: the mean over channels of each channel's std across the speaker's frames
        ds = SpeechDataset(utts, CharTokenizer(), cfg, train=False)
        return [torch.cat([ds[j][0] for j in range(k, k + 3)]).std(0, unbiased=False).mean().item() for k in (0, 3)]

    clean, noisy = spread(FeatureConfig(speaker_mean_norm=True, n_mels=40))
    assert noisy < 0.7 * clean  # the premise: noise compresses the log-mel range
    clean, noisy = spread(FeatureConfig(speaker_mean_norm=True, speaker_var_norm=True, n_mels=40))
    assert clean == pytest.approx(1.0, abs=1e-3) and noisy == pytest.approx(1.0, abs=1e-3)
    feats = torch.randn(50, 4) * torch.tensor([0.5, 1.0, 2.0, 4.0])
    assert torch.allclose(utterance_var_norm(feats - feats.mean(0)).std(0, unbiased=False), torch.ones(4), atol=1e-4)
    with pytest.raises(ValueError, match="speaker_var_norm needs features.speaker_mean_norm"):
        FeatureConfig(speaker_var_norm=True)


def test_edge_crop_cuts_frames_off_the_ends_only_and_only_in_training(tmp_path):
    """`features.edge_crop`: a training item is a contiguous middle part of the uncropped one (the start and the
    end cut by up to the fraction each, both seen over seeds), never shorter than 1 - 2 * fraction; evaluation and
    edge_crop_prob 0 keep every frame; bad values are one clear error."""
    import pytest

    utts, _ = _corrupting_corpus(tmp_path)
    plain = dict(speed_perturb=(), freq_masks=0, time_masks=0)
    full = SpeechDataset(utts, CharTokenizer(), FeatureConfig(**plain), train=True)[0, 5][0]
    t = full.shape[0]
    cropped = SpeechDataset(utts, CharTokenizer(), FeatureConfig(**plain, edge_crop=0.3, edge_crop_prob=1.0),
                            train=True)
    starts, ends = set(), set()
    for seed in range(12):
        feats = cropped[0, seed][0]
        n = feats.shape[0]
        assert int(t * 0.4) <= n <= t
        lo = next(k for k in range(t - n + 1) if torch.equal(full[k:k + n], feats))  # a contiguous part
        starts.add(lo)
        ends.add(t - n - lo)
    assert max(starts) > 0 and max(ends) > 0 and max(starts) <= 0.3 * t and max(ends) <= 0.3 * t
    never = SpeechDataset(utts, CharTokenizer(), FeatureConfig(**plain, edge_crop=0.3, edge_crop_prob=0.0), train=True)
    assert torch.equal(never[0, 5][0], full)
    evaluation = SpeechDataset(utts, CharTokenizer(), FeatureConfig(**plain, edge_crop=0.3, edge_crop_prob=1.0))
    assert evaluation[0][0].shape[0] == t
    with pytest.raises(ValueError, match="edge_crop must be in"):
        FeatureConfig(edge_crop=0.5)
