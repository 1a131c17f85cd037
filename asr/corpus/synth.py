"""Synthetic speech corpus in LibriSpeech layout, spoken by espeak-ng and flite voices.

Splits: `train`, `dev`, `test-seen` (new sentences, training voices) and `test-unseen` (new sentences,
voices held out of train and dev). Everything random is drawn up front from `random.Random(seed)`, so
the same seed gives the same transcripts and, for FLAC, the same audio bytes.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import tempfile
import warnings
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape as xml_escape

import numpy as np
import soundfile as sf
from tqdm import tqdm

from asr.audio import SAMPLE_RATE, resample, write_audio
from asr.corpus.grammar import sentences

SPLITS = ("train", "dev", "test-seen", "test-unseen")
CHAPTER = {"train": 1, "dev": 1, "test-seen": 2, "test-unseen": 1}  # test-seen reuses train speakers
FIRST_SPEAKER_ID = 100
TIMEOUT_S = 60

# espeak-ng English accents, sorted ("en" is British English: espeak-ng 1.51 ignores the variant in
# "en-gb+VARIANT"). Each variant is paired with two of them, rotating through the list.
ACCENTS = ("en", "en-029", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-gb-x-rp", "en-us",
           "en-us-nyc")
# espeak-ng variants. Train also gets every accent's own voice. Whole variants are held out of train;
# novelty, robotic, echoing and whisper-like variants (whisper, whisperf, caleb, ...) are not used at all.
TRAIN_VARIANTS = ("Andy", "Gene", "Jacky", "Mario", "antonio", "belinda", "edward", "f1", "f2", "f3",
                  "iven3", "klatt", "klatt2", "klatt4", "m1", "m2", "m3", "m4", "m6", "m7", "paul",
                  "quincy", "steph")
DEV_VARIANTS = ("f4", "klatt3", "robert")
TEST_UNSEEN_VARIANTS = ("Andrea", "klatt5", "m8", "travis")
# flite voices and the range of their mean F0 in Hz (rms ignores the F0 setting).
FLITE_F0 = {"kal": (75, 115), "kal16": (75, 115), "awb": (105, 150), "slt": (150, 200), "rms": (90, 125)}
TRAIN_FLITE = ("awb", "kal", "kal16", "slt")
TEST_UNSEEN_FLITE = ("rms",)
TRAIN_FLITE_WEIGHT = 4  # a flite voice speaks this many times as many training sentences as an espeak-ng voice

ESPEAK_RATE = (130, 210)  # words per minute
ESPEAK_PITCH = (25, 75)  # 0..99
MAX_PITCH_RANGE = 200  # espeak-ng's pitch range (SSML prosody, % of the voice's own) stops growing here
FLITE_STRETCH = (0.8, 1.25)  # duration_stretch
PEAK_LEVEL = (0.3, 0.9)
EDGE_SILENCE_S = (0.1, 0.2)
# libsndfile's Opus compression level for `fmt="ogg"`: 0.98 gives about 13 kbit/s (1.6 KB per second of
# speech) and still keeps the band above 4 kHz (0.99 and up switch Opus to narrowband): ~90 minutes fit
# in under 10 MB. Measured on espeak-ng speech; not checked by ear.
OPUS_COMPRESSION = 0.98
SILENCE_DB = -40.0  # relative to the peak: quieter edges count as silence


class SynthError(RuntimeError):
    """A synthesizer call that failed; the message names the command."""


@dataclass(frozen=True)
class Voice:
    """A speaker: one synthesizer voice with a fixed LibriSpeech-style speaker id."""

    speaker: int
    engine: str  # "espeak" or "flite"
    name: str  # espeak `-v` argument (accent+variant) or flite voice name

    @property
    def label(self) -> str:
        return f"{self.engine}:{self.name}"


@dataclass(frozen=True)
class Job:
    """One utterance with all of its random parameters fixed."""

    split: str
    utt_id: str
    text: str
    voice: Voice
    rate: float  # espeak words per minute, or flite duration_stretch
    pitch: float  # espeak pitch 0..99, or flite mean F0 in Hz
    level: float  # peak amplitude
    lead_s: float  # silence kept before the speech
    tail_s: float  # silence kept after it
    path: Path
    pitch_range: float | None = None  # espeak pitch range in % (None: the voice's own); flite ignores it


# ---------------------------------------------------------------- voices


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    """Run a synthesizer command; raise SynthError with its stderr on failure or timeout."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise SynthError(f"{cmd[0]} timed out after {TIMEOUT_S} s: {' '.join(cmd)}") from None
    except OSError as exc:
        raise SynthError(f"cannot run {cmd[0]}: {exc}") from None
    if proc.returncode != 0:
        raise SynthError(f"{' '.join(cmd)} failed (exit {proc.returncode}): {proc.stderr.strip()}")
    return proc


def _espeak_installed() -> tuple[set[str], set[str]]:
    """(accents, variants) that the installed espeak-ng lists."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed: run `apt-get install espeak-ng` (flite is optional)")
    listing = _run(["espeak-ng", "--voices=en"]).stdout.splitlines()[1:]
    accents = {line.split()[1] for line in listing if len(line.split()) > 1}
    accents |= {m for line in listing for m in re.findall(r"\((\S+) \d+\)", line)}  # "(en 2)"
    variants = set(re.findall(r"!v/(\S+)", _run(["espeak-ng", "--voices=variant"]).stdout))
    return accents, variants


def _flite_installed() -> set[str]:
    """Voices that the installed flite lists; empty (with a warning) when flite is missing."""
    if shutil.which("flite") is None:
        warnings.warn("flite is not installed: flite voices are skipped (`apt-get install flite`)", stacklevel=3)
        return set()
    out = _run(["flite", "-lv"]).stdout
    return set(out.split(":", 1)[-1].split())


def _espeak_names(variants: tuple[str, ...], start: int) -> list[str]:
    """`accent+variant` names: variant i gets accents (2i + start) and (2i + start + 1), cyclically."""
    names = []
    for i, variant in enumerate(variants):
        for k in range(2):
            accent = ACCENTS[(2 * i + start + k) % len(ACCENTS)]
            names.append(f"{accent}+{variant}")
    return names


def voice_plan() -> dict[str, list[tuple[str, str]]]:
    """(engine, name) per voice split, before checking what is installed; speaker ids follow this order."""
    return {
        "train": [("espeak", n) for n in ACCENTS + tuple(_espeak_names(TRAIN_VARIANTS, 0))]
        + [("flite", n) for n in TRAIN_FLITE],
        "dev": [("espeak", n) for n in _espeak_names(DEV_VARIANTS, 1)],
        "test-unseen": [("espeak", n) for n in _espeak_names(TEST_UNSEEN_VARIANTS, 3)]
        + [("flite", n) for n in TEST_UNSEEN_FLITE],
    }


def _available(engine: str, name: str, espeak: tuple[set[str], set[str]], flite: set[str]) -> bool:
    if engine == "flite":
        return name in flite
    accent, _, variant = name.partition("+")
    return accent in espeak[0] and (not variant or variant in espeak[1])


def _probe(voice: Voice) -> str | None:
    """None if the voice speaks a short phrase (and its espeak variant changes the sound), else why not."""
    phrase = "testing one two three"
    try:
        wav, _ = _synthesize_raw(voice, phrase, None, None)
        if not wav.size or np.abs(wav).max() == 0:
            return "produced silence"
        accent, _, variant = voice.name.partition("+")
        if voice.engine == "espeak" and variant:
            plain, _ = _synthesize_raw(Voice(voice.speaker, "espeak", accent), phrase, None, None)
            if np.array_equal(plain, wav):
                return f"espeak-ng ignores variant {variant!r} for {accent!r}"
    except SynthError as exc:
        return str(exc)
    return None


def choose_voices(pool: ThreadPoolExecutor) -> tuple[dict[str, list[Voice]], list[str]]:
    """Voices per split that are installed and work, plus notes on the ones skipped (each warned about)."""
    espeak, flite = _espeak_installed(), _flite_installed()
    candidates: dict[str, list[Voice]] = {}
    skipped, speaker = [], FIRST_SPEAKER_ID
    for split, entries in voice_plan().items():
        candidates[split] = []
        for engine, name in entries:
            voice = Voice(speaker, engine, name)
            speaker += 1
            if _available(engine, name, espeak, flite):
                candidates[split].append(voice)
            elif engine == "flite" and not flite:
                skipped.append(f"{voice.label} (flite not installed)")  # warned about once already
            else:
                skipped.append(f"{voice.label} (not installed)")
                warnings.warn(f"skipping voice {skipped[-1]}", stacklevel=2)
    chosen = {}
    for split, voices in candidates.items():
        chosen[split] = []
        for voice, problem in zip(voices, pool.map(_probe, voices)):
            if problem is None:
                chosen[split].append(voice)
            else:
                skipped.append(f"{voice.label} ({problem})")
                warnings.warn(f"skipping voice {skipped[-1]}", stacklevel=2)
        if not chosen[split]:
            raise RuntimeError(f"no working voice for split {split!r}; skipped: {'; '.join(skipped)}")
    return chosen, skipped


# ---------------------------------------------------------------- audio


def _synthesize_raw(voice: Voice, text: str, rate: float | None, pitch: float | None,
                    pitch_range: float | None = None) -> tuple[np.ndarray, int]:
    """Speak `text` into a temporary WAV and read it back: (mono float32 samples, sample rate). An espeak-ng
    `pitch_range` (in %) goes in as SSML prosody; flite has no such setting and ignores it."""
    with tempfile.TemporaryDirectory(prefix="asr-synth-") as tmp:
        out = os.path.join(tmp, "utt.wav")
        if voice.engine == "espeak":
            cmd = ["espeak-ng", "-v", voice.name, "-w", out]
            if rate is not None:
                cmd += ["-s", str(round(rate)), "-p", str(round(pitch))]
        else:
            cmd = ["flite", "-voice", voice.name, "-o", out]
            if rate is not None:
                cmd += ["--setf", f"duration_stretch={rate:.3f}", "--setf", f"int_f0_target_mean={pitch:.1f}"]
        if voice.engine == "flite":
            cmd += ["-t", text.lower()]
        elif pitch_range is not None:
            cmd += ["-m", f'<speak><prosody range="{round(pitch_range)}%">{xml_escape(text.lower())}</prosody></speak>']
        else:
            cmd += [text.lower()]
        _run(cmd)
        try:
            wav, sr = sf.read(out, dtype="float32", always_2d=True)
        except Exception as exc:
            raise SynthError(f"{voice.label}: cannot read its output for {text!r} ({exc})") from None
    return wav.mean(axis=1), sr


def trim(wav: np.ndarray, sr: int, lead_s: float, tail_s: float) -> np.ndarray:
    """Keep `lead_s`/`tail_s` seconds around the speech (zero-padded where the file has less)."""
    peak = float(np.abs(wav).max()) if wav.size else 0.0
    if peak == 0.0:
        raise SynthError("synthesizer produced silence")
    loud = np.flatnonzero(np.abs(wav) >= peak * 10 ** (SILENCE_DB / 20))
    lead, tail = round(lead_s * sr), round(tail_s * sr)
    start, stop = loud[0] - lead, loud[-1] + 1 + tail
    body = wav[max(start, 0):min(stop, len(wav))]
    return np.pad(body, (max(-start, 0), max(stop - len(wav), 0)))


def render(job: Job) -> float:
    """Synthesize, trim, resample, normalise and write one utterance; return its duration in seconds."""
    try:
        wav, sr = _synthesize_raw(job.voice, job.text, job.rate, job.pitch, job.pitch_range)
        wav = trim(wav, sr, job.lead_s, job.tail_s)
    except SynthError as exc:
        raise SynthError(f"{job.utt_id} ({job.voice.label}): {exc}") from None
    wav = resample(wav, sr, SAMPLE_RATE)
    wav = wav * (job.level / float(np.abs(wav).max()))
    level = OPUS_COMPRESSION if job.path.suffix == ".ogg" else None
    write_audio(job.path, wav, SAMPLE_RATE, compression_level=level)
    return len(wav) / SAMPLE_RATE


# ---------------------------------------------------------------- planning


def split_sentences(rng: random.Random, counts: dict[str, int]) -> dict[str, list[str]]:
    """Distinct sentences for every split, no text shared between splits."""
    pool = sentences(sum(counts.values()), rng)
    out, i = {}, 0
    for split in SPLITS:
        out[split] = pool[i:i + counts[split]]
        i += counts[split]
    return out


def _prosody(rng: random.Random, voice: Voice,
             pitch_range: tuple[float, float] | None = None) -> tuple[float, float, float | None]:
    """(rate, pitch, pitch range) drawn for one utterance of `voice`. The range (%) is drawn from `pitch_range`
    for espeak-ng voices only, and only when it is given: without it, the draws are those of earlier releases."""
    if voice.engine == "espeak":
        rate, pitch = rng.uniform(*ESPEAK_RATE), rng.uniform(*ESPEAK_PITCH)
        return rate, pitch, (rng.uniform(*pitch_range) if pitch_range else None)
    return rng.uniform(*FLITE_STRETCH), rng.uniform(*FLITE_F0[voice.name]), None


def check_pitch_range(pitch_range: tuple[float, float] | None) -> None:
    """ValueError unless `pitch_range` is None or (low, high) with 0 < low <= high <= MAX_PITCH_RANGE."""
    if pitch_range is not None and not (len(pitch_range) == 2 and 0 < pitch_range[0] <= pitch_range[1]
                                        <= MAX_PITCH_RANGE):
        raise ValueError(f"pitch range must be LOW HIGH with 0 < LOW <= HIGH <= {MAX_PITCH_RANGE} (%), "
                         f"got {pitch_range}")


def plan_jobs(out_dir: Path, texts: dict[str, list[str]], voices: dict[str, list[Voice]],
              rng: random.Random, fmt: str, pitch_range: tuple[float, float] | None = None) -> list[Job]:
    """Spread each split's sentences round-robin over its voices (in a seeded order), draw all parameters."""
    jobs = []
    used_in_train: list[Voice] = []
    for split in SPLITS:
        split_voices = used_in_train if split == "test-seen" else rng.sample(voices[split], len(voices[split]))
        slots = split_voices
        if split == "train":  # flite voices are few and unlike espeak-ng's: give each more training speech
            slots = [v for v in split_voices for _ in range(TRAIN_FLITE_WEIGHT if v.engine == "flite" else 1)]
        counter: dict[int, int] = defaultdict(int)
        for i, text in enumerate(texts[split]):
            voice = slots[i % len(slots)]
            chapter = CHAPTER[split]
            utt_id = f"{voice.speaker}-{chapter}-{counter[voice.speaker]:04d}"
            counter[voice.speaker] += 1
            rate, pitch, utt_range = _prosody(rng, voice, pitch_range)
            path = out_dir / split / str(voice.speaker) / str(chapter) / f"{utt_id}.{fmt}"
            jobs.append(Job(split, utt_id, text, voice, rate, pitch, rng.uniform(*PEAK_LEVEL),
                            rng.uniform(*EDGE_SILENCE_S), rng.uniform(*EDGE_SILENCE_S), path, utt_range))
        if split == "train":
            used_in_train = list(dict.fromkeys(slots[:len(texts["train"])]))  # voices that spoke, in order
    return jobs


# ---------------------------------------------------------------- output


def write_transcripts(jobs: list[Job]) -> None:
    """One `<SPK>-<CHAPTER>.trans.txt` per chapter folder, lines sorted by utterance id."""
    chapters: dict[Path, list[Job]] = defaultdict(list)
    for job in jobs:
        chapters[job.path.parent].append(job)
    for folder, chapter_jobs in chapters.items():
        lines = sorted(f"{j.utt_id} {j.text}\n" for j in chapter_jobs)
        spk_chapter = chapter_jobs[0].utt_id.rsplit("-", 1)[0]
        (folder / f"{spk_chapter}.trans.txt").write_text("".join(lines), encoding="utf-8")


def write_voices_txt(out_dir: Path, jobs: list[Job], seed: int, skipped: list[str],
                     pitch_range: tuple[float, float] | None = None) -> None:
    """Human-readable VOICES.txt: parameters, then speaker id -> voice per split."""
    lines = [
        "Synthetic speech corpus (asr.corpus.synth)",
        f"seed: {seed}",
        f"espeak-ng: rate {ESPEAK_RATE[0]}-{ESPEAK_RATE[1]} wpm (-s), pitch {ESPEAK_PITCH[0]}-{ESPEAK_PITCH[1]} (-p)"
        + (f", pitch range {pitch_range[0]:g}-{pitch_range[1]:g} % (SSML prosody)" if pitch_range else ""),
        f"flite: duration_stretch {FLITE_STRETCH[0]}-{FLITE_STRETCH[1]}, int_f0_target_mean (Hz) "
        + ", ".join(f"{v} {lo}-{hi}" for v, (lo, hi) in sorted(FLITE_F0.items())),
        f"peak level {PEAK_LEVEL[0]}-{PEAK_LEVEL[1]}, edge silence {EDGE_SILENCE_S[0]}-{EDGE_SILENCE_S[1]} s, "
        f"{SAMPLE_RATE} Hz mono",
        "test-seen: new sentences spoken by training voices; test-unseen: voices never used in train or dev",
        "",
    ]
    for split in SPLITS:
        per_voice: dict[Voice, int] = defaultdict(int)
        for job in jobs:
            if job.split == split:
                per_voice[job.voice] += 1
        lines.append(f"[{split}] {len(per_voice)} voices, {sum(per_voice.values())} utterances")
        lines += [f"  {v.speaker}  {v.engine:6s} {v.name:28s} {n} utts" for v, n in sorted(per_voice.items(),
                                                                                          key=lambda kv: kv[0].speaker)]
        lines.append("")
    if skipped:
        lines += ["skipped voices:"] + [f"  {s}" for s in skipped] + [""]
    (out_dir / "VOICES.txt").write_text("\n".join(lines), encoding="utf-8")


def synthesize(out_dir: str | os.PathLike, *, seed: int = 0, train_utts: int = 600, dev_utts: int = 60,
               test_utts: int = 80, fmt: str = "flac", progress: bool = True, workers: int | None = None,
               pitch_range: tuple[float, float] | None = None) -> dict[str, dict[str, float]]:
    """Write the corpus under `out_dir`; return {split: {"utterances", "seconds", "voices"}}.

    `test_utts` is the size of each of test-seen and test-unseen; `fmt` is "flac" or "ogg" (Opus);
    `pitch_range` (low, high) in % draws each espeak-ng utterance's pitch range (None: the voice's own).
    """
    check_pitch_range(pitch_range)
    if fmt not in ("flac", "ogg"):
        raise ValueError(f"fmt must be 'flac' or 'ogg', not {fmt!r}")
    counts = {"train": train_utts, "dev": dev_utts, "test-seen": test_utts, "test-unseen": test_utts}
    if min(counts.values()) < 1:
        raise ValueError(f"every split needs at least one utterance, got {counts}")
    out = Path(out_dir)
    existing = [s for s in SPLITS if (out / s).exists()]
    if existing:
        raise FileExistsError(f"{out}: already holds {', '.join(existing)}; choose an empty folder")

    rng = random.Random(seed)
    workers = workers or min(8, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        voices, skipped = choose_voices(pool)
        texts = split_sentences(rng, counts)
        jobs = plan_jobs(out, texts, voices, rng, fmt, pitch_range)
        try:
            seconds = list(tqdm(pool.map(render, jobs), total=len(jobs), desc="synthesize", unit="utt",
                                disable=not progress))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    write_transcripts(jobs)
    write_voices_txt(out, jobs, seed, skipped, pitch_range)

    summary: dict[str, dict[str, float]] = {}
    for split in SPLITS:
        split_jobs = [(j, s) for j, s in zip(jobs, seconds) if j.split == split]
        summary[split] = {
            "utterances": len(split_jobs),
            "seconds": round(sum(s for _, s in split_jobs), 2),
            "voices": len({j.voice.speaker for j, _ in split_jobs}),
        }
    return summary


# ---------------------------------------------------------------- isolated words


def synthesize_words(out_dir: str | os.PathLike, words: list[str], *, takes: int = 2, seed: int = 0,
                     progress: bool = True, workers: int | None = None,
                     pitch_range: tuple[float, float] | None = None) -> dict[str, float]:
    """Every installed voice of the plan (train, dev and test-unseen voices alike) speaks every word `takes`
    times, each take with its own rate, pitch (and pitch range, with `pitch_range`), level and edge silence:
    `OUT/<speaker>/<word>-<take>.flac` plus the manifest `OUT/words.jsonl` (speaker `synth<id>`, text the word
    in upper case). Extra voices for a corpus of real speakers (FSDD's digits), where no synthetic voice is a
    test speaker. Returns {"utterances", "seconds", "voices"}."""
    from asr.manifest import Utterance, write_manifest
    from asr.text import normalize

    words = [normalize(w) for w in words]
    check_pitch_range(pitch_range)
    if not words or not all(words) or takes < 1:
        raise ValueError(f"need at least one non-empty word and takes >= 1, got {len(words)} words, takes={takes}")
    out = Path(out_dir)
    if (out / "words.jsonl").exists():
        raise FileExistsError(f"{out}: already holds words.jsonl; choose an empty folder")
    rng = random.Random(seed)
    workers = workers or min(8, os.cpu_count() or 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        chosen, _ = choose_voices(pool)
        voices = [v for split in ("train", "dev", "test-unseen") for v in chosen[split]]
        jobs = []
        for voice in voices:
            for word in words:
                for take in range(takes):
                    rate, pitch, utt_range = _prosody(rng, voice, pitch_range)
                    tag = f"{word.lower().replace(' ', '_')}-{take}"
                    jobs.append(Job("words", f"synth{voice.speaker}-{tag}", word, voice, rate, pitch,
                                    rng.uniform(*PEAK_LEVEL), rng.uniform(*EDGE_SILENCE_S),
                                    rng.uniform(*EDGE_SILENCE_S), out / str(voice.speaker) / f"{tag}.flac",
                                    utt_range))
        try:
            seconds = list(tqdm(pool.map(render, jobs), total=len(jobs), desc="synthesize words", unit="utt",
                                disable=not progress))
        except BaseException:
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    utts = [Utterance(j.utt_id, str(j.path.resolve()), round(s, 4), f"synth{j.voice.speaker}", j.text)
            for j, s in zip(jobs, seconds)]
    write_manifest(utts, out / "words.jsonl")
    return {"utterances": len(utts), "seconds": round(sum(seconds), 2), "voices": len(voices)}
