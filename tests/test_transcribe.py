"""Long audio in bounded memory, word timestamps, subtitle formats, stdin."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.align import align_words
from asr.segment import split_at_silences
from asr.text import CharTokenizer
from conftest import fsdd_files


def test_pieces_cover_the_stream_and_cut_in_pauses():
    sr = 16000
    rng = np.random.default_rng(0)
    parts, gaps = [], []
    pos = 0
    for _ in range(12):  # 2.5-3.5 s of "speech" then 0.4 s of silence
        n = int(rng.uniform(2.5, 3.5) * sr)
        parts += [0.3 * rng.standard_normal(n).astype(np.float32), np.zeros(int(0.4 * sr), np.float32)]
        gaps.append((pos + n, pos + n + int(0.4 * sr)))
        pos += n + int(0.4 * sr)
    audio = np.concatenate(parts)
    blocks = [audio[i:i + 7000] for i in range(0, len(audio), 7000)]
    pieces = list(split_at_silences(blocks, max_s=8.0, sr=sr))
    assert np.array_equal(np.concatenate([p for _, p in pieces]), audio)  # nothing lost, nothing repeated
    assert [s for s, _ in pieces] == list(np.cumsum([0] + [len(p) for _, p in pieces[:-1]]))
    assert all(len(p) <= 8 * sr for _, p in pieces)
    for start, _ in pieces[1:]:
        assert any(a <= start < b for a, b in gaps), f"cut at {start / sr:.2f} s is not in a pause"


def test_word_times_come_from_the_alignment():
    tok = CharTokenizer()
    ids = {s: i + 1 for i, s in enumerate(tok.symbols)}
    # frames: blank x3, O N E (frames 3-5), blank, space (7), blank x2, T W O (10-12), blank x2
    path = [0, 0, 0, ids["O"], ids["N"], ids["E"], 0, ids[" "], 0, 0, ids["T"], ids["W"], ids["O"], 0, 0]
    lp = torch.full((len(path), tok.vocab_size), -10.0)
    lp[torch.arange(len(path)), torch.tensor(path)] = 0.0
    lp = lp.log_softmax(-1)
    words = align_words(lp, "ONE TWO", tok, frame_s=0.04, offset_s=1.0)
    assert [w.word for w in words] == ["ONE", "TWO"]
    assert (words[0].start, words[0].end) == (1.12, 1.24)
    assert (words[1].start, words[1].end) == (1.4, 1.52)
    assert all(w.score > 0.99 for w in words)
    assert align_words(lp[:3], "ONE TWO", tok, 0.04) == []  # too few frames: no times rather than wrong ones


@pytest.fixture(scope="module")
def model(digits_model):
    return digits_model[1]


def long_file(path, minutes: float, sr: int = 22050):
    """Real spoken digits with pauses, repeated to `minutes`, stereo at `sr` (resampled on reading)."""
    clips = [sf.read(f, dtype="float32")[0] for f in fsdd_files(speakers=("jackson",), takes=range(5, 6))]
    unit = np.concatenate([np.concatenate([c, np.zeros(4000, np.float32)]) for c in clips])  # 8 kHz
    reps = int(np.ceil(minutes * 60 * 8000 / len(unit)))
    with sf.SoundFile(path, "w", samplerate=sr, channels=2, format="FLAC", subtype="PCM_16") as f:
        import torchaudio.functional as AF

        block = AF.resample(torch.from_numpy(unit), 8000, sr).numpy()
        for _ in range(reps):
            f.write(np.stack([block, 0.5 * block], axis=1))
    return reps * len(unit) / 8000


def peak_rss_mb(args) -> tuple[float, str]:
    code = ("import resource, sys\nfrom asr.cli import main\nrc = main(sys.argv[1:])\n"
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, file=sys.stderr)\nsys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    rss = float(r.stderr.strip().splitlines()[-1].split()[1])
    return rss, r.stdout


def test_long_audio_transcribes_in_bounded_memory_with_timestamps(model, tmp_path):
    long_file(tmp_path / "short.flac", 1.0)
    long_s = long_file(tmp_path / "long.flac", 10.0)
    assert long_s > 9 * 60
    args = ["transcribe", "--model", model, "--format", "json"]
    rss_short, _ = peak_rss_mb(args + [tmp_path / "short.flac"])
    rss_long, out = peak_rss_mb(args + [tmp_path / "long.flac"])
    # whole-file decoding would hold >= 100 MB of float32 samples for the 10-minute stereo file alone
    assert rss_long - rss_short < 60, (rss_short, rss_long)
    obj = json.loads(out)
    assert obj["duration"] == pytest.approx(long_s, abs=0.01)
    starts = [w["start"] for w in obj["words"]]
    assert len(starts) >= 20 and starts == sorted(starts)
    assert all(0 <= w["start"] <= w["end"] <= long_s for w in obj["words"])
    assert obj["words"][-1]["end"] > long_s - 30  # words all the way to the end, not just the first pieces


def test_formats_and_stdin(model, tmp_path):
    from asr.cli import main

    audio = fsdd_files(speakers=("jackson",), takes=range(6, 7), digits=range(3))
    wav = tmp_path / "three.wav"
    sf.write(wav, np.concatenate([sf.read(f, dtype="float32")[0] for f in audio]), 8000)
    assert main(["transcribe", "--model", str(model), str(wav), str(audio[0]), "--format", "srt",
                 "--output-dir", str(tmp_path / "subs")]) == 0
    srt = (tmp_path / "subs" / "three.srt").read_text()
    assert srt.startswith("1\n00:00:0") and " --> " in srt
    vtt = subprocess.run([sys.executable, "-m", "asr", "transcribe", "--model", str(model), "-", "--format", "vtt"],
                         input=wav.read_bytes(), capture_output=True, timeout=300)
    assert vtt.returncode == 0, vtt.stderr.decode()
    assert vtt.stdout.decode().startswith("WEBVTT\n\n00:00:")
    r = subprocess.run([sys.executable, "-m", "asr", "transcribe", "--model", str(model), str(wav), str(wav),
                        "--format", "srt"], capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 and "needs --output-dir" in r.stderr and not r.stdout
