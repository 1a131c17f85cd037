"""Corpus preparation: FSDD splits from the real recordings (or a generated subset without ../shared), AN4
from a SPHERE layout the test writes, LibriSpeech from a local source."""

from __future__ import annotations

import errno
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import load_audio
from asr.corpus import an4, fsdd, librispeech
from asr.corpus.download import DownloadError
from asr.fileio import DiskFullError
from asr.manifest import ManifestError, read_manifest
from conftest import tone


@pytest.mark.slow
def test_fsdd_conventional_and_leave_one_speaker_out_splits(speech_data, tmp_path):
    src = speech_data.fsdd_source()
    counts = fsdd.prepare(src, tmp_path, progress=False)
    utts = fsdd.utterances(src / "recordings", progress=False)
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


@pytest.mark.parametrize("failing", ["test.jsonl", "words.txt"])
def test_fsdd_split_writes_that_fail_half_way_keep_the_previous_files(tmp_path, monkeypatch, failing):
    rec = tmp_path / "recordings"
    rec.mkdir()
    for take in (0, 5, 8):  # one test, one dev and one train take
        sf.write(rec / f"3_ann_{take}.wav", tone(0.2, sr=8000), 8000)
    out = tmp_path / "out"
    fsdd.prepare(tmp_path, out, progress=False)
    target = out / "conventional" / failing if failing.endswith(".jsonl") else out / failing
    before = target.read_text()
    (rec / "3_ann_0.wav").rename(rec / "7_ann_0.wav")  # the corpus changed: the test split changes
    real = Path.write_text

    def disk_full_half_way(self, data, *args, **kwargs):
        if failing not in self.name:
            return real(self, data, *args, **kwargs)
        real(self, data[: len(data) // 2], *args, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", disk_full_half_way)
    with pytest.raises(DiskFullError, match="no space left on device while writing"):
        fsdd.prepare(tmp_path, out, progress=False)
    assert target.read_text() == before
    assert not [p for p in out.rglob("*") if p.name.startswith(".")]  # no temporary file left behind


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


def test_librispeech_download_from_local_folder(speech_data, tmp_path):
    sample = speech_data.librispeech_sample()
    dest = librispeech.download(tmp_path / "dl", ["dev-clean", "test-clean"], source=sample, progress=False)
    counts = librispeech.prepare(dest, tmp_path / "m", progress=False)
    assert counts == {"dev-clean": 1, "test-clean": 1}
    with pytest.raises(DownloadError, match=r"subset train-clean-100 not found \(found: dev-clean, test-clean\)"):
        librispeech.download(tmp_path / "dl2", ["100h"], source=sample, progress=False)
    assert not (tmp_path / "dl2").exists()  # checked before anything is taken
    with pytest.raises(DownloadError, match="subsets train-clean-5, test-other not found"):
        librispeech.download(tmp_path / "dl3", ["train-clean-5", "test-other"], source=sample, progress=False)
    with pytest.raises(DownloadError, match="unknown LibriSpeech subset 'train-clean-5'"):  # not on openslr.org
        librispeech.download(tmp_path / "dl4", ["train-clean-5"], progress=False)
    with pytest.raises(ManifestError, match=r"subset train-clean-100 not found \(found: dev-clean, test-clean\)"):
        librispeech.prepare(dest, tmp_path / "m2", ["train-clean-100"], progress=False)


def test_librispeech_lm_from_a_local_copy_is_verified(tmp_path):
    """A local <lm>.arpa.gz is checked against the known size (like an audio archive's MD5); a decompressed
    <lm>.arpa is taken as it is."""
    import gzip

    from asr.corpus.download import verify

    arpa = "\\data\\\nngram 1=3\n\n\\1-grams:\n-1.0 <s> 0\n-1.0 </s> 0\n-0.5 HELLO 0\n\n\\end\\\n"
    src = tmp_path / "src"
    src.mkdir()
    with gzip.open(src / "3-gram.pruned.1e-7.arpa.gz", "wt") as f:
        f.write(arpa)
    (src / "librispeech-vocab.txt").write_text("HELLO\n")
    with pytest.raises(DownloadError, match=r"3-gram.pruned.1e-7.arpa.gz: \d+ bytes, expected 34094057"):
        librispeech.download_lm(tmp_path / "lm", source=src, progress=False)
    (src / "3-gram.pruned.1e-7.arpa.gz").unlink()
    (src / "3-gram.pruned.1e-7.arpa").write_text(arpa)
    out = librispeech.download_lm(tmp_path / "lm", source=src, progress=False)
    assert out.read_text() == arpa and (tmp_path / "lm" / "librispeech-vocab.txt").read_text() == "HELLO\n"
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    verify(f, size=3, md5="900150983cd24fb0d6963f7d28e17f72",
           sha256="ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        verify(f, md5="0" * 32)
    with pytest.raises(DownloadError, match="SHA256 mismatch"):
        verify(f, sha256="0" * 64)


def test_sphere_fixture_roundtrip(tmp_path):
    sig = tone(0.25)
    sf.write(tmp_path / "x.sph", sig, 16000, format="NIST", subtype="PCM_16")
    assert np.abs(load_audio(tmp_path / "x.sph") - sig).max() < 1e-3
