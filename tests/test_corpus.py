"""Corpus preparation: FSDD splits from the real recordings, AN4 from a SPHERE layout the test writes,
LibriSpeech from a local source."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.corpus import an4, fsdd, librispeech
from asr.corpus.download import DownloadError
from asr.manifest import ManifestError, read_manifest
from conftest import FSDD, LIBRISPEECH_SAMPLE, tone


def test_fsdd_conventional_and_leave_one_speaker_out_splits(tmp_path):
    counts = fsdd.prepare(FSDD.parent, tmp_path, progress=False)
    utts = fsdd.utterances(FSDD, progress=False)
    speakers = sorted({u.speaker for u in utts})
    assert len(speakers) >= 2
    conv = {s: read_manifest(tmp_path / "conventional" / f"{s}.jsonl") for s in ("train", "dev", "test")}
    takes = {s: {int(u.id.split("-")[1]) for u in v} for s, v in conv.items()}
    assert takes["test"] == set(range(5)) and takes["dev"] == {5, 6, 7} and min(takes["train"]) == 8
    assert sum(len(v) for v in conv.values()) == len(utts)
    assert counts["conventional/test"] == len(speakers) * 10 * 5
    for spk in speakers:
        fold = {s: read_manifest(tmp_path / f"loso-{spk}" / f"{s}.jsonl") for s in ("train", "dev", "test")}
        assert {u.speaker for u in fold["test"]} == {spk}
        assert spk not in {u.speaker for u in fold["train"] + fold["dev"]}
        assert len(fold["test"]) == sum(u.speaker == spk for u in utts)
    u = conv["test"][0]
    assert u.text in fsdd.WORDS
    assert load_audio(u.audio).shape[0] == pytest.approx(u.duration * 16000, abs=2)  # 8 kHz read as 16 kHz
    assert (tmp_path / "words.txt").read_text().split() == list(fsdd.WORDS)


def test_fsdd_errors(tmp_path):
    with pytest.raises(ManifestError, match="no FSDD recordings"):
        fsdd.prepare(tmp_path, tmp_path / "out", progress=False)


def write_an4(root, speakers_train, speakers_test, per_speaker=2):
    """An AN4-layout folder: SPHERE files (NIST header, 16-bit PCM) and CMU's transcription format."""
    words = ["YES", "NO", "RUBOUT", "ENTER SIX TWO", "G M E F THREE NINE"]
    for part, wav_dir, speakers in (("train", "an4_clstk", speakers_train), ("test", "an4test_clstk", speakers_test)):
        lines, ids = [], []
        for s_i, spk in enumerate(speakers):
            for k in range(per_speaker):
                utt = f"an{100 + 10 * s_i + k}-{spk}-b"
                d = root / "an4" / "wav" / wav_dir / spk
                d.mkdir(parents=True, exist_ok=True)
                sf.write(d / f"{utt}.sph", tone(0.5 + 0.1 * k, freq=300 + 50 * k), 16000, format="NIST",
                         subtype="PCM_16")
                lines.append(f"<s> {words[(s_i + k) % len(words)]} </s> ({utt})")
                ids.append(f"{wav_dir}/{spk}/{utt}")
        etc = root / "an4" / "etc"
        etc.mkdir(parents=True, exist_ok=True)
        (etc / f"an4_{part}.transcription").write_text("\n".join(lines) + "\n")
        (etc / f"an4_{part}.fileids").write_text("\n".join(ids) + "\n")


def test_an4_prepare_reads_sphere_and_holds_out_dev_speakers(tmp_path):
    train_spk = [f"sp{c}" for c in "abcdefghij"]
    write_an4(tmp_path, train_spk, ["tsta", "tstb"])
    counts = an4.prepare(tmp_path, tmp_path / "m", progress=False)
    assert counts == {"train": 18, "dev": 2, "test": 4}
    train, dev = read_manifest(tmp_path / "m" / "train.jsonl"), read_manifest(tmp_path / "m" / "dev.jsonl")
    assert not {u.speaker for u in train} & {u.speaker for u in dev}
    test = read_manifest(tmp_path / "m" / "test.jsonl")
    assert test[0].text in ("YES", "NO") and "<s>" not in " ".join(u.text for u in test)
    assert load_audio(test[0].audio).shape[0] == 8000 and test[0].duration == pytest.approx(0.5)


def test_an4_errors(tmp_path):
    with pytest.raises(ManifestError, match="not an AN4 folder"):
        an4.prepare(tmp_path, tmp_path / "m", progress=False)
    write_an4(tmp_path, ["spa", "spb"], ["tsta"], per_speaker=1)
    (tmp_path / "an4" / "etc" / "an4_test.transcription").write_text("garbage line without id\n")
    with pytest.raises(ManifestError, match=r"an4_test.transcription:1"):
        an4.prepare(tmp_path, tmp_path / "m", progress=False)


def test_librispeech_download_from_local_folder(tmp_path):
    dest = librispeech.download(tmp_path / "dl", ["dev-clean", "test-clean"], source=LIBRISPEECH_SAMPLE,
                                progress=False)
    counts = librispeech.prepare(dest, tmp_path / "m", progress=False)
    assert counts == {"dev-clean": 1, "test-clean": 1}
    with pytest.raises(DownloadError, match="train-clean-100 not found"):
        librispeech.download(tmp_path / "dl2", ["100h"], source=LIBRISPEECH_SAMPLE, progress=False)
    with pytest.raises(DownloadError, match="unknown LibriSpeech subset"):
        librispeech.download(tmp_path / "dl3", ["train-clean-5"], source=LIBRISPEECH_SAMPLE, progress=False)


def test_sphere_fixture_roundtrip(tmp_path):
    sig = tone(0.25)
    sf.write(tmp_path / "x.sph", sig, 16000, format="NIST", subtype="PCM_16")
    assert np.abs(load_audio(tmp_path / "x.sph") - sig).max() < 1e-3
