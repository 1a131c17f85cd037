"""Long audio in bounded memory, word timestamps, subtitle formats, stdin, n-best lists."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from asr.audio import read_blocks
from asr.cli import main
from asr.lm import build_arpa, build_lexicon
from asr.recognizer import Recognizer
from asr.segment import split_at_silences
from speech import DIGITS


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


def test_nbest_hypotheses_with_a_lexicon_and_lm_in_text_and_json(model, speech_data, tmp_path, capsys):
    rec = Recognizer.load(model)
    build_arpa([[w] for w in DIGITS] + [[a, b] for a in DIGITS for b in DIGITS], tmp_path / "lm.arpa", order=2)
    build_lexicon(DIGITS, rec.tokenizer, tmp_path / "lexicon.txt")
    clips = [sf.read(f, dtype="float32")[0] for f in speech_data.digits(speakers=("cal",), takes=(1,), digits=(3, 7))]
    two = tmp_path / "two.wav"  # two digits and a pause: --max-piece-s 1 splits it, and the pieces' lists are joined
    sf.write(two, np.concatenate([clips[0], np.zeros(4000, np.float32), clips[1]]), 8000)
    one = speech_data.digits(speakers=("ava",), takes=(6,), digits=(5,))[0]
    beam = ["--model", str(model), "--lm", str(tmp_path / "lm.arpa"), "--lexicon", str(tmp_path / "lexicon.txt"),
            "--beam-size", "16", "--max-piece-s", "1", str(two), str(one)]
    assert main(["transcribe", *beam]) == 0
    best = capsys.readouterr().out.splitlines()
    assert main(["transcribe", *beam, "--nbest", "3"]) == 0
    lists: dict[str, list] = {}
    for line in capsys.readouterr().out.splitlines():  # each file's name, then "score<TAB>text" lines
        if "\t" not in line:
            lists[line] = []
        else:
            lists[list(lists)[-1]].append(line.split("\t"))
    assert list(lists) == [str(two), str(one)]
    assert len(list(split_at_silences(read_blocks(two), 1.0))) >= 2  # the first file's pieces' lists were joined
    assert len(lists[str(two)]) == 3  # a confident one-word file may have fewer within the beam
    for hyps, text in zip(lists.values(), best):
        scores, texts = zip(*hyps)
        assert texts[0] == text and len(set(texts)) == len(texts)  # the 1-best decoding first; all distinct
        assert all(w in DIGITS for t in texts for w in t.split())
        assert [float(s) for s in scores] == sorted((float(s) for s in scores), reverse=True)

    assert main(["transcribe", *beam, "--nbest", "2", "--format", "json"]) == 0
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [len(obj["nbest"]) for obj in objs] == [2, len(lists[str(one)][:2])]
    for obj, text in zip(objs, best):
        assert obj["nbest"][0]["text"] == obj["text"] == text
        assert [h["score"] for h in obj["nbest"]] == [float(s) for s, _ in lists[obj["file"]][:2]]
        assert 0 < obj["confidence"] <= 1 and obj["confidence"] == rec.transcribe(obj["file"], max_piece_s=1).confidence

    assert main(["transcribe", "--model", str(model), str(one), "--nbest", "2"]) == 2  # greedy: one hypothesis
    assert "--nbest 2 needs beam search" in capsys.readouterr().err
