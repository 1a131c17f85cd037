"""The committed offline corpus (data/synth): complete, small, and split as documented."""

from pathlib import Path

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


def test_committed_corpus_is_what_asr_synth_plans_with_its_documented_command():
    """README: `asr synth data/synth --format ogg --train-utts 1500 --dev-utts 60 --test-utts 100` (seed 0).
    Every file and transcript of that plan, drawn with the installed espeak-ng and flite, is in the corpus."""
    import random
    from concurrent.futures import ThreadPoolExecutor

    from asr.corpus import synth

    rng = random.Random(0)
    with ThreadPoolExecutor(2) as pool:
        voices, _ = synth.choose_voices(pool)
    texts = synth.split_sentences(rng, {"train": 1500, "dev": 60, "test-seen": 100, "test-unseen": 100})
    planned = {(j.path.relative_to(DATA).as_posix(), j.text)
               for j in synth.plan_jobs(DATA, texts, voices, rng, "ogg")}
    committed = {(Path(u.audio).resolve().relative_to(DATA.resolve()).as_posix(), u.text)
                 for split in ("train", "dev", "test-seen", "test-unseen")
                 for u in subset_utterances(DATA / split, progress=False)}
    assert planned == committed
