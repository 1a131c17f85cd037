"""LibriSpeech layout (`SUBSET/SPK/CHAPTER/SPK-CHAPTER.trans.txt` + audio) → one manifest per subset."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from asr.audio import AudioError, duration
from asr.manifest import ManifestError, Utterance, write_manifest

AUDIO_SUFFIXES = (".flac", ".wav", ".ogg")


def _find_root(src: Path) -> Path:
    """Accept either the folder holding the subsets or its parent containing `LibriSpeech/`."""
    if (src / "LibriSpeech").is_dir():
        return src / "LibriSpeech"
    return src


def _read_transcripts(trans: Path) -> list[tuple[str, str]]:
    rows = []
    for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise ManifestError(f"{trans}:{n}: expected '<utterance-id> <TEXT>'")
        rows.append((parts[0], parts[1]))
    return rows


def _audio_for(folder: Path, utt_id: str) -> Path | None:
    for suffix in AUDIO_SUFFIXES:
        p = folder / f"{utt_id}{suffix}"
        if p.is_file():
            return p
    return None


def found_subsets(src: str | Path) -> list[str]:
    """Subsets a local LibriSpeech copy holds: extracted subset folders, and `<subset>.tar.gz` archives."""
    src = Path(src)
    if not src.is_dir():
        return []
    root = _find_root(src)
    names = {p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")}
    names |= {p.name[: -len(".tar.gz")] for p in src.glob("*.tar.gz")}
    return sorted(names)


def subset_utterances(subset_dir: Path, progress: bool = True) -> list[Utterance]:
    """All utterances of one subset folder, sorted by id; missing audio is an error naming the file."""
    utts = []
    transcripts = sorted(subset_dir.rglob("*.trans.txt"))
    for trans in tqdm(transcripts, desc=subset_dir.name, unit="chapter", disable=not progress, leave=False):
        for utt_id, text in _read_transcripts(trans):
            audio = _audio_for(trans.parent, utt_id)
            if audio is None:
                raise ManifestError(f"{trans}: no audio file for utterance {utt_id} ({'/'.join(AUDIO_SUFFIXES)})")
            try:
                dur = duration(audio)
            except AudioError as exc:
                raise ManifestError(str(exc)) from None
            utts.append(Utterance(utt_id, str(audio.resolve()), round(dur, 3), utt_id.split("-")[0], text))
    return sorted(utts, key=lambda u: u.id)


def prepare(src: str | Path, out_dir: str | Path, subsets: list[str] | None = None,
            progress: bool = True) -> dict[str, int]:
    """Write `OUT_DIR/<subset>.jsonl` for each subset folder under SRC; return utterances per subset."""
    root = _find_root(Path(src))
    if not root.is_dir():
        raise ManifestError(f"{src}: not a directory")
    names = subsets or sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.rglob("*.trans.txt")))
    if not names:
        raise ManifestError(f"{root}: no LibriSpeech subsets found (no */SPK/CHAPTER/*.trans.txt)")
    counts = {}
    for name in names:
        subset_dir = root / name
        if not subset_dir.is_dir():
            raise ManifestError(f"{root}: subset {name} not found (found: {', '.join(found_subsets(root)) or 'none'})")
        utts = subset_utterances(subset_dir, progress)
        if not utts:
            raise ManifestError(f"{subset_dir}: no utterances found")
        write_manifest(utts, Path(out_dir) / f"{name}.jsonl")
        counts[name] = len(utts)
    return counts


# openslr resource 12; MD5 sums as published in https://www.openslr.org/resources/12/md5sum.txt
OPENSLR_12 = "https://www.openslr.org/resources/12"
SUBSET_MD5 = {
    "dev-clean": "42e2234ba48799c1f50f24a7926300a1",
    "dev-other": "c8d0bcc9cca99d4f8b62fcc847357931",
    "test-clean": "32fa31d27d2e1cad72775fee3f4849a9",
    "test-other": "fb5a50374b501bb3bac4815ee91d3135",
    "train-clean-100": "2a93770f6d5c6c964bc36631d331a522",
    "train-clean-360": "c0e676e450a7ff2f54aeade5171606fa",
    "train-other-500": "d1a0fd59409feb2c614ce4d30c387708",
}
# training subsets of the three usual sizes
TRAIN_SIZES = {"100h": ("train-clean-100",), "460h": ("train-clean-100", "train-clean-360"),
               "960h": ("train-clean-100", "train-clean-360", "train-other-500")}
EVAL_SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other")


def download(dest: str | Path, subsets: list[str], source: str | Path | None = None,
             progress: bool = True) -> Path:
    """Fetch (or take from `source`) and extract LibriSpeech subsets under `dest/LibriSpeech/`.

    `subsets` holds subset names or a size (`100h`, `460h`, `960h`: those training subsets). From openslr.org
    only the seven subsets of resource 12; a local source may hold any subset (e.g. mini LibriSpeech's), and
    every requested one must be there: the error names the missing ones and those found."""
    from asr.corpus.download import DownloadError, obtain

    names: list[str] = []
    for s in subsets:
        for name in TRAIN_SIZES.get(s, (s,)):
            if source is None and name not in SUBSET_MD5:
                raise DownloadError(f"unknown LibriSpeech subset {name!r} (known: {', '.join(SUBSET_MD5)}, "
                                    f"or {', '.join(TRAIN_SIZES)}; other subsets from a local --source)")
            if name not in names:
                names.append(name)
    if source is not None and Path(source).is_dir():  # checked before anything is extracted
        found = found_subsets(source)
        missing = [n for n in names if n not in found]
        if missing:
            raise DownloadError(f"{source}: subset{'s' if len(missing) > 1 else ''} {', '.join(missing)} not found "
                                f"(found: {', '.join(found) or 'none'})")
    dest = Path(dest)
    for name in names:
        archive = f"{name}.tar.gz"
        obtain(archive, f"{OPENSLR_12}/{archive}" if name in SUBSET_MD5 else None, dest, md5=SUBSET_MD5.get(name),
               source=source, progress=progress)
        if not (_find_root(dest) / name).is_dir():
            found = ", ".join(found_subsets(dest)) or "none"
            raise DownloadError(f"{source or OPENSLR_12}: subset {name} not found in the source (expected "
                                f"LibriSpeech/{name}/SPK/CHAPTER/...; found: {found})")
    return dest


# openslr resource 11: the LibriSpeech language models, trained on the 800M-word LibriSpeech LM corpus
OPENSLR_11 = "https://www.openslr.org/resources/11"
LM_FILES = ("3-gram.pruned.3e-7", "3-gram.pruned.1e-7", "3-gram", "4-gram")
# What is known of each file, checked like the audio archives' MD5 (asr.corpus.download.verify). openslr
# publishes MD5 sums in https://www.openslr.org/resources/11/md5sum.txt, which could not be read when this
# table was written: no MD5 is known yet (add them here as "md5" entries). Sizes in bytes: Kaldi's
# egs/librispeech/s5/local/download_lm.sh (kaldi-asr/kaldi). SHA-256: rwth-i6/i6_experiments,
# common/datasets/librispeech/language_model.py (3-gram, 4-gram) and lexicon.py (the lexicon).
LM_CHECKSUMS: dict[str, dict] = {
    "3-gram.pruned.1e-7.arpa.gz": {"size": 34094057},
    "3-gram.pruned.3e-7.arpa.gz": {"size": 13654242},
    "3-gram.arpa.gz": {"size": 759636181,
                       "sha256": "263649573475c2991d3e755eb4e690c9d2656f2b3283a1eb589e1e4e174bf874"},
    "4-gram.arpa.gz": {"size": 1355172078,
                       "sha256": "f2b2d1507637ddf459d3579159f7e8099ed7d77452ff1059aeeeaea33d274613"},
    "librispeech-vocab.txt": {"size": 1737588},
    "librispeech-lexicon.txt": {"size": 5627646,
                                "sha256": "d722bc29908cd338ae738edd70f61826a6fca29aaa704a9493f0006773f79d71"},
}


def download_lm(dest: str | Path, lm: str = "3-gram.pruned.1e-7", source: str | Path | None = None,
                progress: bool = True) -> Path:
    """Fetch (or take from `source`: a folder holding the .arpa.gz file, or that file with the vocabulary beside
    it) one of openslr 11's ARPA LMs and its vocabulary list; write `dest/<lm>.arpa` (decompressed) and
    `dest/librispeech-vocab.txt`.

    Downloads and a local `<lm>.arpa.gz` are verified against LM_CHECKSUMS, as audio archives are; plain files
    of a local folder (the vocabulary, or `<lm>.arpa` already decompressed instead of the .gz) are taken as they
    are, like an extracted corpus. The ARPA file is also checked by reading it. Returns the ARPA path."""
    import gzip
    import shutil

    from asr.corpus.download import DownloadError, fetch, verify
    from asr.fileio import atomic_path
    from asr.lm import check_arpa

    if lm not in LM_FILES:
        raise DownloadError(f"unknown LibriSpeech LM {lm!r} (known: {', '.join(LM_FILES)})")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    arpa = dest / f"{lm}.arpa"
    vocab = dest / "librispeech-vocab.txt"
    for name, out in ((f"{lm}.arpa.gz", arpa), ("librispeech-vocab.txt", vocab)):
        if out.is_file():
            continue
        known = LM_CHECKSUMS.get(name, {})
        if source is not None:
            src = Path(source)
            local = src if src.name == name else (src.parent if src.is_file() else src) / name
            if not local.is_file() and src.is_dir() and (src / out.name).is_file():
                local = src / out.name  # already decompressed
            if not local.is_file():
                raise DownloadError(f"{source}: {name} not found in the local source")
            if local.name.endswith(".gz"):
                verify(local, progress=progress, **known)
        else:
            local = fetch(f"{OPENSLR_11}/{name}", dest / name, known.get("md5"), progress)
            try:
                verify(local, progress=progress, **known)
            except DownloadError:
                local.unlink()
                raise
        with atomic_path(out) as tmp:
            if local.name.endswith(".gz"):
                with gzip.open(local, "rb") as f_in, open(tmp, "wb") as f_out:
                    shutil.copyfileobj(f_in, f_out, 1 << 20)
            else:
                shutil.copyfile(local, tmp)
        if source is None:
            local.unlink()
    check_arpa(arpa)
    return arpa
