"""The committed offline corpus (data/synth): complete, small, and split as documented."""

from asr.corpus.librispeech import subset_utterances
from conftest import REPO

DATA = REPO / "data" / "synth"


def test_committed_corpus_is_small_and_split_as_documented():
    total = sum(f.stat().st_size for f in (REPO / "data").rglob("*") if f.is_file())
    assert total <= 10 * 1024 * 1024
    sets = {name: subset_utterances(DATA / name, progress=False)
            for name in ("train", "dev", "test-seen", "test-unseen")}
    speakers = {name: {u.speaker for u in utts} for name, utts in sets.items()}
    texts = {name: {u.text for u in utts} for name, utts in sets.items()}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test-unseen"]
    assert not speakers["dev"] & speakers["test-unseen"]
    assert speakers["test-seen"] <= speakers["train"]
    for a in sets:
        for b in sets:
            if a < b:
                assert not texts[a] & texts[b], (a, b)
    minutes = sum(u.duration for u in sets["train"]) / 60
    assert minutes > 30
