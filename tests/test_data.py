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
