"""Long audio in bounded memory, word timestamps, subtitle formats, stdin."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch


@pytest.fixture(scope="module")
def model(digits_model):
    return digits_model[1]


def long_file(path, clips_files, minutes: float, sr: int = 22050):
    """Spoken digits with pauses, repeated to `minutes`, stereo at `sr` (resampled on reading)."""
    clips = [sf.read(f, dtype="float32")[0] for f in clips_files]
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


def test_long_audio_transcribes_in_bounded_memory_with_timestamps(model, speech_data, tmp_path):
    clips = speech_data.digits(speakers=("ava",), takes=range(5, 6))
    long_file(tmp_path / "short.flac", clips, 1.0)
    long_s = long_file(tmp_path / "long.flac", clips, 10.0)
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


def test_formats_and_stdin(model, speech_data, tmp_path):
    from asr.cli import main

    audio = speech_data.digits(speakers=("ava",), takes=range(6, 7), digits=range(3))
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
