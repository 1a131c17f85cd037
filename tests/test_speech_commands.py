"""Speech Commands: preparation of both layouts (speaker-disjoint sets, silence, labels, official lists, errors),
the local-source download, the twelve-way scorer, and the CLI. Clips are one-second espeak-ng words written by
the tests; the corpus-scale test uses the real canonical test set in ../shared/data when it is there."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import speech
from asr.corpus import speech_commands as sc
from asr.corpus.download import DownloadError
from asr.keyword import classify, confusion_markdown, read_classes, score_class_files, to_class
from asr.manifest import ManifestError, read_manifest, write_hypotheses
from asr.score import compute, score_files
from conftest import REPO

SHARED_SPEECH_COMMANDS = speech.SHARED_DATA / "speech_commands"
WORDS = ("yes", "no", "up")  # command folders in the generated layouts
OTHER = "bed"  # an _unknown_ word


def _pick(n_per_split: int, prefix: str, fmt: str) -> dict[str, list[str]]:
    """Names whose hash puts `n_per_split` of them in each of train, dev and test."""
    found: dict[str, list[str]] = {s: [] for s in sc.SPLITS}
    i = 0
    while any(len(v) < n_per_split for v in found.values()):
        name = fmt.format(prefix, i)
        split = sc.split_of(name)
        if len(found[split]) < n_per_split:
            found[split].append(name)
        i += 1
    return found


SPEAKERS = _pick(1, "c0", "{}{:06x}")  # three speakers, one per set
SILENCE_NAMES = _pick(1, "", "{}{:04d}")  # silence clips (hashed by file name), one per set
VOICE_OF = dict(zip(sorted(sum(SPEAKERS.values(), [])), speech.VOICES.values()))


def one_second(wav: np.ndarray, seed: int) -> np.ndarray:
    """Pad (with a faint noise floor) or cut to exactly one second at 16 kHz, as the dataset's clips are."""
    out = np.random.default_rng(seed).normal(0, 0.001, 16000).astype(np.float32)
    n = min(len(wav), 16000)
    start = (16000 - n) // 2
    out[start:start + n] += wav[:n]
    return out


def noise(seconds: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 0.05, int(seconds * 16000)).astype(np.float32)


def write_clip(path: Path, word: str, speaker: str, take: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    wav = one_second(speech.speak(word, VOICE_OF[speaker], take, 16000), take)
    sf.write(path, wav, 16000, subtype="PCM_16")


def write_test_layout(root: Path, suffix: str = ".flac") -> Path:
    """The canonical test set's layout: command folders, _unknown_/<word>_<speaker>_..., _silence_/."""
    for speaker in VOICE_OF:
        for word in WORDS:
            write_clip(root / word / f"{speaker}_nohash_0{suffix}", word, speaker, 0)
        write_clip(root / sc.UNKNOWN / f"{OTHER}_{speaker}_nohash_0{suffix}", OTHER, speaker, 1)
    for n, name in enumerate(sum(SILENCE_NAMES.values(), [])):
        (root / sc.SILENCE).mkdir(exist_ok=True)
        sf.write(root / sc.SILENCE / f"{name}{suffix}", noise(1.0, n), 16000, subtype="PCM_16")
    return root


def write_train_layout(root: Path) -> Path:
    """The training archive's layout: one folder per word (commands and others), a long noise recording, and
    the official lists naming one speaker's clips as dev and another's as test."""
    speakers = sorted(VOICE_OF)
    for speaker in speakers:
        for take in (0, 1):
            for word in (*WORDS, OTHER):
                write_clip(root / word / f"{speaker}_nohash_{take}.wav", word, speaker, take)
    (root / sc.NOISE).mkdir()
    sf.write(root / sc.NOISE / "pink.wav", noise(10.5, 7), 16000, subtype="PCM_16")
    (root / sc.NOISE / "README.md").write_text("not audio\n")
    dev, test = speakers[0], speakers[1]
    (root / "validation_list.txt").write_text("".join(f"{w}/{dev}_nohash_{t}.wav\n" for w in (*WORDS, OTHER)
                                                      for t in (0, 1)))
    (root / "testing_list.txt").write_text("".join(f"{w}/{test}_nohash_{t}.wav\n" for w in (*WORDS, OTHER)
                                                   for t in (0, 1)))
    return root


@pytest.fixture(scope="module")
def layouts(tmp_path_factory) -> Path:
    """Both layouts, as `asr download` leaves them: DEST/test (FLAC) and DEST/train (WAV, with lists)."""
    root = tmp_path_factory.mktemp("speech-commands")
    write_test_layout(root / "test")
    write_train_layout(root / "train")
    return root


def manifests(out: Path) -> dict[str, list]:
    return {p.stem: read_manifest(p) for p in sorted(out.glob("*.jsonl"))}


def labels(out: Path, name: str) -> dict[str, str]:
    return dict(line.split("\t") for line in (out / f"{name}.labels").read_text().splitlines())


def test_test_layout_splits_by_speaker_with_silence_and_labels(layouts, tmp_path):
    counts = sc.prepare(layouts / "test", tmp_path, progress=False)
    sets = manifests(tmp_path)
    assert set(counts) == set(sets) == {"train", "dev", "test"}
    assert {k: len(v) for k, v in sets.items()} == counts
    assert sum(counts.values()) == 3 * (len(WORDS) + 1) + 3  # every clip, each once
    # speakers: each in exactly the set its hash names, never in two
    for name, utts in sets.items():
        speakers = {u.speaker for u in utts if u.text}
        assert speakers == set(SPEAKERS[name]), name
    # silence: empty transcript, no speaker, the set its file name hashes to, class _silence_
    for name, utts in sets.items():
        silent = [u for u in utts if not u.text]
        assert [Path(u.audio).stem for u in silent] == [Path(n).stem for n in SILENCE_NAMES[name]]
        assert all(u.speaker == "" and u.id.startswith("silence-") for u in silent)
        lab = labels(tmp_path, name)
        assert set(lab) == {u.id for u in utts}
        for u in utts:
            assert lab[u.id] == (sc.SILENCE if not u.text else u.text.lower() if u.text.lower() in WORDS
                                 else sc.UNKNOWN), u
    texts = {u.text for u in sets["train"]}
    assert texts == {"YES", "NO", "UP", "BED", ""}
    assert (tmp_path / "labels.txt").read_text().split() == [*sc.COMMANDS, sc.UNKNOWN, sc.SILENCE]
    assert (tmp_path / "words.txt").read_text().split() == ["BED", "NO", "UP", "YES"]
    assert read_classes(tmp_path / "labels.txt") == sc.CLASSES
    u = next(u for u in sets["train"] if u.text == "BED")
    assert u.duration == pytest.approx(1.0) and u.id == f"{u.speaker}-bed-0"


def test_upstream_layout_uses_the_official_lists_and_cuts_the_noise(layouts, tmp_path):
    counts = sc.prepare(layouts / "train", tmp_path, progress=False)
    sets = manifests(tmp_path)
    assert set(counts) == {"train", "dev", "test"}
    speakers = sorted(VOICE_OF)
    assert {u.speaker for u in sets["dev"] if u.text} == {speakers[0]}  # validation_list.txt
    assert {u.speaker for u in sets["test"] if u.text} == {speakers[1]}  # testing_list.txt
    assert {u.speaker for u in sets["train"] if u.text} == {speakers[2]}  # not listed: training
    assert all(len([u for u in sets[s] if u.text]) == 8 for s in sets)
    # 10.5 s of noise: ten one-second clips, by position 8 train, 1 dev, 1 test; the README is not audio
    noise_ids = {s: [u.id for u in sets[s] if not u.text] for s in sets}
    assert noise_ids == {"train": [f"noise-pink-{i:04d}" for i in range(8)], "dev": ["noise-pink-0008"],
                         "test": ["noise-pink-0009"]}
    # the training set's noise clips (not dev's or test's) are also the noise source for augmentation
    assert [u.id for u in read_manifest(tmp_path / sc.NOISE_MANIFEST)] == noise_ids["train"]
    clip = next(u for u in sets["test"] if not u.text)
    data, sr = sf.read(clip.audio)
    assert sr == 16000 and len(data) == 16000 and Path(clip.audio).parent == tmp_path / "noise"
    original, _ = sf.read(layouts / "train" / sc.NOISE / "pink.wav")
    assert np.allclose(data, original[9 * 16000:10 * 16000], atol=1e-4)
    assert labels(tmp_path, "train")[f"{speakers[2]}-bed-1"] == sc.UNKNOWN
    # a second run reuses the cut clips and writes the same manifests
    before = (tmp_path / "train.jsonl").read_text()
    assert sc.prepare(layouts / "train", tmp_path, progress=False) == counts
    assert (tmp_path / "train.jsonl").read_text() == before


def test_both_layouts_add_the_canonical_test_set(layouts, tmp_path):
    counts = sc.prepare(layouts, tmp_path, progress=False)
    assert set(counts) == {"train", "dev", "test", "test-canonical"}
    canonical = read_manifest(tmp_path / "test-canonical.jsonl")
    assert len(canonical) == 3 * (len(WORDS) + 1) + 3 and all(u.audio.endswith(".flac") for u in canonical)
    assert counts["train"] == 8 + 8  # the training archive's unlisted speaker and its noise clips


def test_bad_names_are_skipped_with_a_count_and_errors_name_the_folder(layouts, tmp_path, caplog):
    src = tmp_path / "src"
    write_test_layout(src)
    for bad in ("yes/notaclip.flac", "_unknown_/c0000000_nohash_0.flac", "Yes2/x_nohash_0.flac"):
        (src / bad).parent.mkdir(exist_ok=True)
        (src / bad).write_bytes((src / "yes" / f"{SPEAKERS['train'][0]}_nohash_0.flac").read_bytes())
    with caplog.at_level(logging.WARNING):
        counts = sc.prepare(src, tmp_path / "out", progress=False)
    assert sum(counts.values()) == 3 * (len(WORDS) + 1) + 3
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "skipped 3 file(s)" in warning and "Yes2/x_nohash_0.flac" in warning
    with pytest.raises(ManifestError, match="missing: not a directory"):
        sc.prepare(tmp_path / "missing", tmp_path / "out2", progress=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ManifestError, match="empty: no Speech Commands clips found"):
        sc.prepare(tmp_path / "empty", tmp_path / "out2", progress=False)
    # one speaker only: dev and test would be empty, which is an error naming the set
    one = tmp_path / "one"
    (one / "yes").mkdir(parents=True)
    (one / "yes" / f"{SPEAKERS['train'][0]}_nohash_0.flac").write_bytes(
        (src / "yes" / f"{SPEAKERS['train'][0]}_nohash_0.flac").read_bytes())
    with pytest.raises(ManifestError, match="set dev would be empty"):
        sc.prepare(one, tmp_path / "out3", progress=False)
    assert not (tmp_path / "out3" / "train.jsonl").exists()  # nothing half-written
    broken = tmp_path / "broken"
    write_test_layout(broken)
    (broken / "up" / f"{SPEAKERS['dev'][0]}_nohash_0.flac").write_bytes(b"not audio")
    with pytest.raises(ManifestError, match=r"up/c0\w+_nohash_0\.flac"):
        sc.prepare(broken, tmp_path / "out4", progress=False)


def test_download_from_local_sources(layouts, tmp_path):
    # an extracted folder is linked in and found again by prepare
    dest = sc.download(tmp_path / "d1", layouts / "test", progress=False)
    assert sc.find_layouts(dest) == {"test": dest}
    # an archive under a name of its own is extracted under DEST/local
    archive = tmp_path / "mine.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(layouts / "train", arcname=".")
    dest = sc.download(tmp_path / "d2", archive, progress=False)
    assert sc.find_layouts(dest) == {"train": dest / "local"}
    # an archive under the upstream name is checked against the known size and checksum
    fake = tmp_path / "src" / "speech_commands_test_set_v0.02.tar.gz"
    fake.parent.mkdir()
    fake.write_bytes(archive.read_bytes())
    with pytest.raises(DownloadError, match="expected 112563277"):
        sc.download(tmp_path / "d3", fake.parent, progress=False)
    with pytest.raises(DownloadError, match="local source not found"):
        sc.download(tmp_path / "d4", tmp_path / "nowhere", progress=False)
    (tmp_path / "plain").mkdir()
    with pytest.raises(ManifestError, match="no Speech Commands clips found"):
        sc.download(tmp_path / "d5", tmp_path / "plain", progress=False)


def test_class_mapping_accuracy_and_confusion():
    classes = sc.CLASSES
    assert to_class("yes", classes) == "yes" and to_class(" Yes. ", classes) == "yes"
    assert to_class("", classes) == sc.SILENCE and to_class("  ", classes) == sc.SILENCE
    assert to_class("YES YES", classes) == sc.UNKNOWN and to_class("YESS", classes) == sc.UNKNOWN
    assert to_class("MARVIN", classes) == sc.UNKNOWN
    refs = ["YES", "YES", "NO", "", "", "BED", "MARVIN", "GO"]
    hyps = ["YES", "YEP", "NO", "", "NO", "BAD", "", "GO"]
    result = classify(refs, hyps, classes)
    assert (result.correct, result.utterances) == (5, 8) and result.accuracy == pytest.approx(62.5)
    table = {(r, h): result.confusion[classes.index(r)][classes.index(h)]
             for r in classes for h in classes}
    assert table[("yes", "yes")] == 1 and table[("yes", sc.UNKNOWN)] == 1
    assert table[(sc.SILENCE, sc.SILENCE)] == 1 and table[(sc.SILENCE, "no")] == 1
    assert table[(sc.UNKNOWN, sc.UNKNOWN)] == 1 and table[(sc.UNKNOWN, sc.SILENCE)] == 1
    assert sum(sum(row) for row in result.confusion) == 8
    md = confusion_markdown(result, "test")
    assert "accuracy 62.50% (5 of 8 utts, 12 classes)" in md
    assert "| yes | 1 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 1 | 0 | 2 | 50.0 |" in md
    assert "| left | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | 0 | - |" in md
    # WER with silence: a word decoded in silence is an insertion
    score = compute(refs, hyps, allow_empty=True)
    assert (score.substitutions, score.deletions, score.insertions, score.ref_words) == (2, 1, 1, 6)
    assert score.wer == pytest.approx(100 * 4 / 6)
    with pytest.raises(ValueError, match="at least one word"):
        compute(refs, hyps)


def test_classes_file_errors(tmp_path):
    bad = tmp_path / "labels.txt"
    bad.write_text("yes\nno\n_unknown_\n")
    with pytest.raises(ManifestError, match="must include _silence_"):
        read_classes(bad)
    bad.write_text("yes\n_unknown_\n_silence_\n_other_\n")
    with pytest.raises(ManifestError, match="'_other_' is neither a word"):
        read_classes(bad)
    with pytest.raises(ManifestError, match="classes file not found"):
        read_classes(tmp_path / "none.txt")


def run_asr(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "asr", *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


def test_cli_download_prepare_and_score(layouts, tmp_path):
    r = run_asr("download", "speech_commands", tmp_path / "dl", "--source", layouts, "--quiet")
    assert r.returncode == 0, r.stderr
    r = run_asr("prepare", "speech_commands", tmp_path / "dl", tmp_path / "data", "--quiet")
    assert r.returncode == 0, r.stderr
    assert f"{tmp_path / 'data'}/test-canonical.jsonl: 15 utterances" in r.stdout
    utts = read_manifest(tmp_path / "data" / "test-canonical.jsonl")
    # a hypothesis file: all right but one word decoded in a silence clip
    hyps = {u.id: u.text for u in utts}
    silent = next(u.id for u in utts if not u.text)
    hyps[silent] = "UP"
    write_hypotheses(hyps, tmp_path / "hyp.jsonl")
    common = ["--manifest", tmp_path / "data" / "test-canonical.jsonl", "--hyp", tmp_path / "hyp.jsonl"]
    r = run_asr("score", *common)  # plain WER refuses the empty references
    assert r.returncode == 2 and "empty reference text" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = run_asr("score", *common, "--classes", tmp_path / "data" / "labels.txt", "--out-dir", tmp_path / "s",
                "--name", "test-canonical")
    assert r.returncode == 0, r.stderr
    assert "test-canonical: accuracy 93.33% (14 of 15 utts, 12 classes)" in r.stdout
    assert "WER 8.33%" in r.stdout and "I 1 / 12 words" in r.stdout
    acc = json.loads((tmp_path / "s" / "accuracy.json").read_text())
    assert acc["correct"] == 14 and acc["classes"][-1] == sc.SILENCE
    assert "| _silence_ |" in (tmp_path / "s" / "confusion.md").read_text()
    assert score_class_files(*common[1::2], tmp_path / "data" / "labels.txt").correct == 14
    assert score_files(*common[1::2], allow_empty=True).insertions == 1
    r = run_asr("prepare", "speech_commands", tmp_path / "nowhere", tmp_path / "x")
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "not a directory" in r.stderr


def test_corpus_scale_preparation(layouts, tmp_path):
    """The real canonical test set (4,366 clips) when ../shared/data holds it, else the generated layout."""
    if speech.have_shared(SHARED_SPEECH_COMMANDS):
        src = SHARED_SPEECH_COMMANDS
        n_files = sum(1 for p in src.rglob("*.flac"))
        speech.used["speech_commands"] = f"{src} ({n_files} real clips)"
    else:
        src = layouts / "test"
        n_files = sum(1 for p in src.rglob("*.flac"))
        speech.used["speech_commands"] = f"generated layout ({n_files} espeak-ng clips; no {SHARED_SPEECH_COMMANDS})"
    counts = sc.prepare(src, tmp_path, progress=False)
    sets = manifests(tmp_path)
    assert sum(counts.values()) == n_files
    speakers = {name: {u.speaker for u in utts if u.text} for name, utts in sets.items()}
    assert not (speakers["train"] & speakers["dev"] or speakers["train"] & speakers["test"]
                or speakers["dev"] & speakers["test"])
    by_class = Counter(c for name in sets for c in labels(tmp_path, name).values())
    assert set(by_class) <= set(sc.CLASSES) and by_class[sc.SILENCE] > 0 and by_class[sc.UNKNOWN] > 0
    if src == SHARED_SPEECH_COMMANDS:
        assert n_files == 4366 and len(set().union(*speakers.values())) > 100
        for name in sc.SPLITS:  # roughly 80/10/10 of the clips
            share = counts[name] / n_files
            assert abs(share - {"train": 0.8, "dev": 0.1, "test": 0.1}[name]) < 0.05, (name, share)
        assert all(by_class[c] > 300 for c in sc.CLASSES)


@pytest.mark.slow
def test_recipe_smoke(layouts, tmp_path):
    """The recipe end to end on the generated test layout with a tiny model (seconds of training)."""
    exp = tmp_path / "exp"
    r = subprocess.run(["bash", REPO / "recipes" / "speech_commands" / "run.sh", "--source", layouts / "test",
                        "--exp", exp, "--overrides",
                        "train.epochs=1 model.hidden_size=16 model.num_layers=1 train.tensorboard=false"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "stage 8 package: done" in r.stdout
    results = (exp / "RESULTS.md").read_text()
    assert "| test |" in results
    confusion = (exp / "decode" / "test" / "confusion.md").read_text()
    assert "accuracy" in confusion and "| _silence_ |" in confusion
    assert json.loads((exp / "decode" / "test" / "accuracy.json").read_text())["utterances"] == 5
