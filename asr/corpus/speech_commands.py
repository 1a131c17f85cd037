"""Speech Commands v0.02 (Warden 2018): one-second clips of single spoken words, thousands of speakers, 16 kHz.

The task is twelve-way classification: ten command words, `_unknown_` (any other word) and `_silence_`
(background noise, no speech). Here every clip is an utterance whose transcript is its word in upper case
(a silence clip has an empty transcript), so a CTC model learns to spell the words and a clip's class
follows from the text it decodes to (`asr.keyword`).

Two layouts on disk are read, alone or together (e.g. both archives extracted by `download`):
- the training archive: `<word>/<speaker>_nohash_<take>.wav` for 35 words, `_background_noise_/*.wav` (long
  noise recordings, cut here into one-second silence clips), and `validation_list.txt` / `testing_list.txt`
  (the official dev and test sets; every clip not listed trains);
- the canonical test set: `<command>/<speaker>_nohash_<take>.{wav,flac}`,
  `_unknown_/<word>_<speaker>_nohash_<take>.{wav,flac}` and `_silence_/<any name>.{wav,flac}`.
Without the official lists, speakers are put into train / dev / test (80/10/10) by a hash of the speaker id,
the way the dataset's own split was made, so that no speaker is in two sets; silence clips by a hash of
their file name without its suffix (a FLAC copy of a WAV clip lands in the same set). With both layouts,
the test-set archive becomes one more set, `test-canonical`.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, duration
from asr.fileio import atomic_path
from asr.manifest import ManifestError, Utterance, write_manifest
from asr.text import normalize

log = logging.getLogger("asr.corpus.speech_commands")

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE, NOISE = "_unknown_", "_silence_", "_background_noise_"
CLASSES = (*COMMANDS, UNKNOWN, SILENCE)
AUDIO_SUFFIXES = (".wav", ".flac")
SPLITS = ("train", "dev", "test")
DEV_PERCENT, TEST_PERCENT = 10, 10
CLIP_SECONDS = 1.0  # length of the silence clips cut from the long noise recordings
NOISE_MANIFEST = "noise/train.jsonl"  # the training set's silence clips, a noise source for augmentation


@dataclass(frozen=True)
class Archive:
    part: str  # the folder under the download destination
    name: str
    url: str
    size: int
    md5: str | None
    sha256: str


# Sizes: ESPnet's egs2/speechcommands recipe. SHA-256: torchaudio's SPEECHCOMMANDS and TensorFlow Datasets'
# checksums (training archive), and several independent users of the test archive. MD5 of the training
# archive: older torchaudio releases (also the storage ETag). No MD5 of the test archive was found.
_HOST = "https://storage.googleapis.com/download.tensorflow.org/data"
ARCHIVES = (
    Archive("train", "speech_commands_v0.02.tar.gz", f"{_HOST}/speech_commands_v0.02.tar.gz", 2428923189,
            "6b74f3901214cb2c2934e98196829835", "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"),
    Archive("test", "speech_commands_test_set_v0.02.tar.gz", f"{_HOST}/speech_commands_test_set_v0.02.tar.gz",
            112563277, None, "cc2a00c1147c2254e9be3fa0f779d8c17421dc349b86366567a8edfa9acd51df"),
)

_WORD_CLIP = re.compile(r"^([A-Za-z0-9]+)_nohash_(\d+)$")  # <speaker>_nohash_<take>
_UNKNOWN_CLIP = re.compile(r"^([a-z]+)_([A-Za-z0-9]+)_nohash_(\d+)$")  # <word>_<speaker>_nohash_<take>


def download(dest: str | Path, source: str | Path | None = None, progress: bool = True) -> Path:
    """Fetch both archives (training set under `dest/train`, canonical test set under `dest/test`), checking
    size, MD5 (when known) and SHA-256; or use `source`: one of the archives, a folder holding them, or an
    extracted copy in either layout (linked in)."""
    from asr.corpus.download import DownloadError, fetch, obtain, verify

    dest = Path(dest)
    if source is None:
        for a in ARCHIVES:
            if (dest / a.part / f".{a.name}.done").is_file():
                continue
            archive = fetch(a.url, dest / a.name, a.md5, progress)
            verify(archive, a.size, sha256=a.sha256, progress=progress)
            obtain(a.name, None, dest / a.part, source=archive, progress=progress)
            archive.unlink()
        return dest
    src = Path(source)
    if not src.exists():
        raise DownloadError(f"{src}: local source not found")
    known = {a.name: a for a in ARCHIVES}
    archives = [src] if src.is_file() else [src / a.name for a in ARCHIVES if (src / a.name).is_file()]
    for path in archives:
        a = known.get(path.name)
        if a is not None:
            verify(path, a.size, a.md5, a.sha256, progress)
        obtain(path.name, None, dest / (a.part if a else "local"), source=path, progress=progress)
    if not archives:
        find_layouts(src)  # a folder without Speech Commands clips is refused before anything is linked
        obtain(src.name or "source", None, dest, source=src, progress=progress)
    return dest


def split_of(key: str) -> str:
    """The set (train, dev or test) a speaker id (or a silence clip's file name) falls into: a stable hash,
    so that a speaker's clips, in every word folder and in every later release, land in the same set."""
    bucket = int(hashlib.sha1(key.encode("utf-8")).hexdigest(), 16) % 100
    if bucket < DEV_PERCENT:
        return "dev"
    if bucket < DEV_PERCENT + TEST_PERCENT:
        return "test"
    return "train"


def class_of(word: str) -> str:
    """The twelve-way class of a clip's word (lower case; empty for silence)."""
    if not word:
        return SILENCE
    return word if word in COMMANDS else UNKNOWN


@dataclass(frozen=True)
class Clip:
    path: Path
    word: str  # lower case; "" for silence
    speaker: str  # "" for silence
    take: int
    rel: str  # path relative to the layout root, with "/" (as the official lists name clips)


def _is_layout(folder: Path) -> bool:
    return any((folder / name).is_dir() for name in (*COMMANDS, UNKNOWN, SILENCE, NOISE))


def find_layouts(src: str | Path) -> dict[str, Path]:
    """The layout roots under `src` (itself or folders up to two levels below): {"train": training-archive
    root, "test": test-set root}, either or both. Raises a ManifestError when there is none, or several of
    one kind."""
    src = Path(src)
    if not src.is_dir():
        raise ManifestError(f"{src}: not a directory")
    roots, frontier = [], [src]
    for _ in range(3):
        below = []
        for folder in frontier:
            if _is_layout(folder):
                roots.append(folder)
            else:
                below += sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
        frontier = below
    found: dict[str, list[Path]] = {}
    for root in roots:
        kind = "test" if (root / UNKNOWN).is_dir() or (root / SILENCE).is_dir() else "train"
        found.setdefault(kind, []).append(root)
    if not found:
        raise ManifestError(f"{src}: no Speech Commands clips found (expected folders such as yes/, _unknown_/, "
                            "_silence_/ or _background_noise_/ holding <speaker>_nohash_<take>.wav or .flac)")
    for kind, paths in found.items():
        if len(paths) > 1:
            raise ManifestError(f"{src}: several Speech Commands {kind} layouts found: "
                                f"{', '.join(str(p) for p in paths)}")
    return {kind: paths[0] for kind, paths in found.items()}


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def scan(root: Path) -> tuple[list[Clip], list[Path], list[str]]:
    """The word and silence clips of one layout root, its long noise recordings (`_background_noise_`), and
    the clips whose names do not parse (skipped)."""
    clips, bad = [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if folder.name == NOISE:
            continue
        for path in _audio_files(folder):
            rel = f"{folder.name}/{path.name}"
            if folder.name == SILENCE:
                clips.append(Clip(path, "", "", 0, rel))
            elif folder.name == UNKNOWN:
                m = _UNKNOWN_CLIP.match(path.stem)
                if m is None:
                    bad.append(rel)
                else:
                    clips.append(Clip(path, m.group(1), m.group(2), int(m.group(3)), rel))
            else:
                m = _WORD_CLIP.match(path.stem)
                if m is None or not re.fullmatch(r"[a-z]+", folder.name):
                    bad.append(rel)
                else:
                    clips.append(Clip(path, folder.name, m.group(1), int(m.group(2)), rel))
    noise = _audio_files(root / NOISE) if (root / NOISE).is_dir() else []
    return clips, noise, bad


def _read_list(path: Path) -> set[str]:
    """An official list (`validation_list.txt`, `testing_list.txt`): one `<word>/<file>.wav` a line."""
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def _utterance(clip: Clip, progress_bar) -> Utterance:
    try:
        dur = duration(clip.path)
    except AudioError as exc:
        raise ManifestError(str(exc)) from None
    progress_bar.update(1)
    if clip.word:
        uid, speaker = f"{clip.speaker}-{clip.word}-{clip.take}", clip.speaker
    else:
        uid, speaker = f"silence-{clip.path.stem}", ""
    return Utterance(uid, str(clip.path.resolve()), round(dur, 4), speaker, normalize(clip.word))


def cut_noise(recordings: list[Path], out_dir: Path) -> dict[str, list[Utterance]]:
    """Cut each long noise recording into one-second silence clips (FLAC under `out_dir`), written once. The
    clips of a recording go to the sets by position (its first 80 % train, the next 10 % dev, the last 10 %
    test), so that neighbouring seconds of one recording do not end up on both sides of a split."""
    from asr.audio import SAMPLE_RATE, load_audio, write_audio

    sets: dict[str, list[Utterance]] = {s: [] for s in SPLITS}
    n = int(CLIP_SECONDS * SAMPLE_RATE)
    for rec in recordings:
        try:
            wav = load_audio(rec)
        except AudioError as exc:
            raise ManifestError(str(exc)) from None
        count = len(wav) // n
        for i in range(count):
            clip = out_dir / f"{rec.stem}-{i:04d}.flac"
            if not clip.is_file():
                write_audio(clip, wav[i * n:(i + 1) * n])
            pos = (i + 0.5) / count
            split = "train" if pos < 0.8 else "dev" if pos < 0.9 else "test"
            sets[split].append(Utterance(f"noise-{rec.stem}-{i:04d}", str(clip.resolve()), CLIP_SECONDS, "", ""))
    return sets


def _assign(clips: list[Clip], lists: dict[str, set[str]]) -> dict[str, list[Clip]]:
    """Clips into train / dev / test: by the official lists when there are any (unlisted clips train),
    otherwise by the hash of the speaker (silence: of the file name without its suffix)."""
    sets: dict[str, list[Clip]] = {s: [] for s in SPLITS}
    use_lists = any(lists.values())
    for c in clips:
        if use_lists and c.word:
            rel = c.rel.rsplit(".", 1)[0] + ".wav"  # the lists name .wav files; a FLAC copy keeps its stem
            split = next((s for s in ("dev", "test") if rel in lists[s]), "train")
        else:
            split = split_of(c.speaker or c.path.stem)
        sets[split].append(c)
    return sets


def prepare(src: str | Path, out_dir: str | Path, progress: bool = True) -> dict[str, int]:
    """Write `{train,dev,test}.jsonl` (and `test-canonical.jsonl` when both layouts are found) under OUT_DIR,
    each with a `<set>.labels` file (`id<TAB>class`), plus `labels.txt` (the twelve classes), `words.txt`
    (every word of the training transcripts) and `noise/train.jsonl` (the training set's silence clips, for
    `features.background_noise`). Returns utterances per set."""
    layouts = find_layouts(src)
    out = Path(out_dir)
    sets: dict[str, list[Utterance]] = {}
    skipped: list[str] = []
    bar = tqdm(desc="speech_commands", unit="file", disable=not progress, leave=False)
    if "train" in layouts:
        root = layouts["train"]
        clips, noise, bad = scan(root)
        skipped += [f"{root}/{b}" for b in bad]
        lists = {"dev": _read_list(root / "validation_list.txt"), "test": _read_list(root / "testing_list.txt")}
        for split, chosen in _assign(clips, lists).items():
            sets[split] = [_utterance(c, bar) for c in chosen]
        for split, utts in cut_noise(noise, out / "noise").items():
            sets[split] += utts
    if "test" in layouts:
        root = layouts["test"]
        clips, noise, bad = scan(root)
        skipped += [f"{root}/{b}" for b in bad]
        if "train" in layouts:
            sets["test-canonical"] = [_utterance(c, bar) for c in clips]
        else:
            for split, chosen in _assign(clips, {}).items():
                sets[split] = [_utterance(c, bar) for c in chosen]
            for split, utts in cut_noise(noise, out / "noise").items():
                sets[split] += utts
    bar.close()
    if skipped:
        log.warning("speech_commands: skipped %d file(s) whose names do not read <speaker>_nohash_<take> (in "
                    "_unknown_: <word>_<speaker>_nohash_<take>), e.g. %s", len(skipped), skipped[0])
    return write_sets(sets, out, src)


def write_sets(sets: dict[str, list[Utterance]], out: Path, src) -> dict[str, int]:
    """Each set's manifest and labels file, `labels.txt` and `words.txt`, each atomically."""
    for name, utts in sets.items():
        if not utts:
            raise ManifestError(f"{src}: Speech Commands set {name} would be empty (too few speakers or clips "
                                f"for an {100 - DEV_PERCENT - TEST_PERCENT}/{DEV_PERCENT}/{TEST_PERCENT} split)")
    counts = {}
    for name, utts in sets.items():
        utts = sorted(utts, key=lambda u: u.id)
        write_manifest(utts, out / f"{name}.jsonl")
        with atomic_path(out / f"{name}.labels") as tmp:
            tmp.write_text("".join(f"{u.id}\t{class_of(u.text.lower())}\n" for u in utts))
        counts[name] = len(utts)
    with atomic_path(out / "labels.txt") as tmp:
        tmp.write_text("\n".join(CLASSES) + "\n")
    words = sorted({u.text for u in sets["train"] if u.text})
    with atomic_path(out / "words.txt") as tmp:
        tmp.write_text("\n".join(words) + "\n")
    noise = sorted((u for u in sets["train"] if not u.text), key=lambda u: u.id)
    if noise:  # the training set's silence clips, for `features.background_noise`
        (out / NOISE_MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        write_manifest(noise, out / NOISE_MANIFEST)
    return counts
