"""Synthetic corpus: grammar, layout, voice/sentence disjointness and determinism (real espeak-ng/flite)."""

from __future__ import annotations

import random
import re
import shutil
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from asr.corpus import grammar, synth

UTT_ID = re.compile(r"^(\d+)-(\d+)-(\d{4})$")
TEXT = re.compile(r"^[A-Z']+( [A-Z']+)*$")


# ---------------------------------------------------------------- grammar


def test_sentences_are_distinct_deterministic_and_in_vocabulary():
    first = grammar.sentences(500, random.Random(7))
    assert first == grammar.sentences(500, random.Random(7))
    assert len(set(first)) == 500
    vocab = set(grammar.VOCABULARY)
    assert grammar.VOCABULARY == sorted(vocab)
    assert 250 <= len(vocab) <= 400
    for text in first:
        assert TEXT.match(text), text
        assert grammar.MIN_WORDS <= len(text.split()) <= grammar.MAX_WORDS, text
        assert set(text.split()) <= vocab, text


def test_every_vocabulary_word_is_reachable():
    counts = Counter(w for s in grammar.sentences(6000, random.Random(0)) for w in s.split())
    assert set(counts) == set(grammar.VOCABULARY)


def test_number_and_ordinal_words():
    assert grammar.number_words(0) == "ZERO"
    assert grammar.number_words(42) == "FORTY TWO"
    assert grammar.number_words(90) == "NINETY"
    assert grammar.ordinal_words(23) == "TWENTY THIRD"
    assert grammar.ordinal_words(30) == "THIRTIETH"
    with pytest.raises(ValueError):
        grammar.number_words(100)


# ---------------------------------------------------------------- voices and audio helpers


def test_voice_plan_holds_out_whole_variants():
    variant = {split: {n.partition("+")[2] for e, n in entries if e == "espeak"}
               for split, entries in synth.voice_plan().items()}
    assert not variant["train"] & variant["dev"]
    assert not variant["train"] & variant["test-unseen"]
    assert not variant["dev"] & variant["test-unseen"]
    names = [n for entries in synth.voice_plan().values() for _, n in entries]
    assert len(names) == len(set(names))
    assert not any("whisper" in n for n in names)
    assert 30 <= len(synth.voice_plan()["train"]) <= 60


def test_trim_keeps_requested_edges():
    sr = 1000
    wav = np.zeros(3000, dtype=np.float32)
    wav[1000:1500] = 0.5
    out = synth.trim(wav, sr, 0.1, 0.2)
    assert len(out) == 100 + 500 + 200
    assert np.all(out[:100] == 0) and out[100] == 0.5
    padded = synth.trim(wav[1000:1500], sr, 0.1, 0.1)  # nothing around the speech: zero-padded
    assert len(padded) == 700


def test_flite_voice_renders(tmp_path):
    voice = synth.Voice(999, "flite", "kal")  # 8 kHz voice: exercises resampling
    job = synth.Job("train", "999-1-0000", "SHOW ME THE RED BOXES", voice, 1.1, 100.0, 0.5, 0.15, 0.15,
                    tmp_path / "a.flac")
    seconds = synth.render(job)
    wav, sr = sf.read(job.path, dtype="float32")
    assert sr == 16000 and wav.ndim == 1
    assert seconds == pytest.approx(len(wav) / sr)
    assert np.abs(wav).max() == pytest.approx(0.5, abs=0.01)


def test_missing_espeak_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(synth.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="apt-get install espeak-ng"):
        synth.synthesize(tmp_path / "x", train_utts=1, dev_utts=1, test_utts=1, progress=False)


def test_missing_flite_skips_its_voices_with_a_warning(monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(synth.shutil, "which", lambda name: None if name == "flite" else real_which(name))
    with pytest.warns(UserWarning, match="flite is not installed"), ThreadPoolExecutor(2) as pool:
        voices, _ = synth.choose_voices(pool)
    assert all(v.engine == "espeak" for split in voices.values() for v in split)
    assert all(voices.values())


def test_unknown_variant_is_skipped_with_a_warning(monkeypatch):
    monkeypatch.setattr(synth, "DEV_VARIANTS", ("f4", "no-such-variant"))
    with pytest.warns(UserWarning, match="no-such-variant"), ThreadPoolExecutor(2) as pool:
        voices, skipped = synth.choose_voices(pool)
    assert [v.name for v in voices["dev"]] == ["en-029+f4", "en-gb-scotland+f4"]
    assert any("no-such-variant" in note for note in skipped)


def test_synth_failure_names_the_command():
    with pytest.raises(synth.SynthError, match="false"):
        synth._run(["false"])


# ---------------------------------------------------------------- whole corpus


def _read_corpus(root: Path) -> dict[str, dict[str, tuple[str, Path]]]:
    """{split: {utt_id: (text, audio path)}}, checking layout and trans.txt format on the way."""
    corpus = {}
    for split in synth.SPLITS:
        utts = {}
        for trans in sorted((root / split).glob("*/*/*.trans.txt")):
            spk, chapter = trans.parent.parent.name, trans.parent.name
            assert trans.name == f"{spk}-{chapter}.trans.txt"
            for line in trans.read_text(encoding="utf-8").splitlines():
                utt_id, text = line.split(" ", 1)
                m = UTT_ID.match(utt_id)
                assert m and m.group(1) == spk and m.group(2) == chapter, line
                assert TEXT.match(text), line
                audio = trans.parent / f"{utt_id}.flac"
                assert audio.is_file(), audio
                utts[utt_id] = (text, audio)
        corpus[split] = utts
    return corpus


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "a"
    summary = synth.synthesize(out, seed=3, train_utts=8, dev_utts=2, test_utts=2, progress=False)
    return out, summary


def test_layout_audio_and_summary(corpus_dir):
    root, summary = corpus_dir
    corpus = _read_corpus(root)
    assert (root / "VOICES.txt").read_text().startswith("Synthetic speech corpus")
    expected = {"train": 8, "dev": 2, "test-seen": 2, "test-unseen": 2}
    for split, n in expected.items():
        assert len(corpus[split]) == n
        assert summary[split]["utterances"] == n
        seconds = 0.0
        for _, audio in corpus[split].values():
            wav, sr = sf.read(audio, dtype="float32", always_2d=True)
            assert sr == 16000 and wav.shape[1] == 1
            assert 0.5 < len(wav) / sr < 15
            assert 0.25 < np.abs(wav).max() <= 0.95
            seconds += len(wav) / sr
        assert summary[split]["seconds"] == pytest.approx(seconds, abs=0.05)


def test_voices_and_sentences_are_disjoint(corpus_dir):
    root, summary = corpus_dir
    corpus = _read_corpus(root)
    speakers = {split: {u.split("-")[0] for u in utts} for split, utts in corpus.items()}
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["train"] & speakers["test-unseen"]
    assert not speakers["dev"] & speakers["test-unseen"]
    assert speakers["test-seen"] <= speakers["train"]
    assert {s: summary[s]["voices"] for s in synth.SPLITS} == {s: len(v) for s, v in speakers.items()}
    texts = {split: [t for t, _ in utts.values()] for split, utts in corpus.items()}
    for split, items in texts.items():
        assert len(items) == len(set(items)), split
    for i, a in enumerate(synth.SPLITS):
        for b in synth.SPLITS[i + 1:]:
            assert not set(texts[a]) & set(texts[b]), (a, b)


def test_same_seed_gives_identical_corpus(corpus_dir, tmp_path):
    root, _ = corpus_dir
    synth.synthesize(tmp_path / "b", seed=3, train_utts=8, dev_utts=2, test_utts=2, progress=False)
    first, second = _read_corpus(root), _read_corpus(tmp_path / "b")
    for split in synth.SPLITS:
        assert first[split].keys() == second[split].keys()
        for utt_id, (text, audio) in first[split].items():
            assert second[split][utt_id][0] == text
            assert second[split][utt_id][1].read_bytes() == audio.read_bytes(), utt_id
    assert (root / "VOICES.txt").read_text() == (tmp_path / "b" / "VOICES.txt").read_text()


def test_refuses_to_overwrite(corpus_dir):
    root, _ = corpus_dir
    with pytest.raises(FileExistsError):
        synth.synthesize(root, train_utts=1, dev_utts=1, test_utts=1, progress=False)


def test_flite_voices_get_more_training_sentences(tmp_path):
    voices = {"train": [synth.Voice(1, "espeak", "en"), synth.Voice(2, "flite", "kal")],
              "dev": [synth.Voice(3, "espeak", "en-us")], "test-unseen": [synth.Voice(4, "espeak", "en-029")]}
    texts = {"train": [f"T{i}" for i in range(50)], "dev": ["D"], "test-seen": ["S1", "S2"], "test-unseen": ["U"]}
    jobs = synth.plan_jobs(tmp_path, texts, voices, random.Random(0), "flac")
    per_voice = Counter(j.voice.engine for j in jobs if j.split == "train")
    assert per_voice["flite"] == 40 and per_voice["espeak"] == 10


def _f0_spread(wav: np.ndarray, sr: int) -> float:
    """Distance between the 10th and 90th percentile of the voiced F0 estimates, in Hz."""
    f0 = torchaudio.functional.detect_pitch_frequency(torch.from_numpy(wav), sr, freq_low=60).numpy()
    f0 = f0[(f0 > 60) & (f0 < 300)]
    return float(np.percentile(f0, 90) - np.percentile(f0, 10))


def test_espeak_pitch_range_widens_the_melody():
    voice = synth.Voice(999, "espeak", "en-us+m3")
    text = "seven four one, go left now, and don't you stop at the big red door"  # an apostrophe inside SSML
    narrow, sr = synth._synthesize_raw(voice, text, 160, 50, pitch_range=30)
    wide, _ = synth._synthesize_raw(voice, text, 160, 50, pitch_range=200)
    plain, _ = synth._synthesize_raw(voice, text, 160, 50)
    assert not np.array_equal(narrow, wide) and not np.array_equal(plain, wide)
    assert _f0_spread(wide, sr) > 1.3 * _f0_spread(narrow, sr)


def test_pitch_range_is_drawn_only_when_asked_and_leaves_other_draws_alone(tmp_path):
    voices = {"train": [synth.Voice(1, "espeak", "en"), synth.Voice(2, "flite", "kal")],
              "dev": [synth.Voice(3, "espeak", "en-us")], "test-unseen": [synth.Voice(4, "espeak", "en-029")]}
    texts = {"train": [f"T{i}" for i in range(10)], "dev": ["D"], "test-seen": ["S1"], "test-unseen": ["U"]}
    plain = synth.plan_jobs(tmp_path, texts, voices, random.Random(0), "flac")
    ranged = synth.plan_jobs(tmp_path, texts, voices, random.Random(0), "flac", pitch_range=(40, 150))
    assert all(j.pitch_range is None for j in plain)
    assert all((40 <= j.pitch_range <= 150) if j.voice.engine == "espeak" else j.pitch_range is None for j in ranged)
    assert plain[0].rate == ranged[0].rate and plain[0].pitch == ranged[0].pitch  # the first draws are shared
    with pytest.raises(ValueError, match="pitch range"):
        synth.synthesize_words(tmp_path / "w", ["ONE"], pitch_range=(50, 300), progress=False)
