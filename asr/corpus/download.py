"""Downloads with resume and checksum, safe archive extraction, and local sources instead of the network.

Every corpus downloader goes through `obtain()`: with `source=None` it fetches the archive (resuming a
partial `.part` file with an HTTP Range request, then verifying its MD5); with a local `source` (a folder,
or an archive file) it uses that instead, so the same recipe runs on machines without internet access.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm import tqdm

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".tar.bz2", ".zip")
CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download, checksum or extraction failure; the message names the file or URL."""


def md5sum(path: str | os.PathLike, progress: bool = False, algorithm: str = "md5") -> str:
    """Hex digest of a file (MD5, or another `hashlib` algorithm such as sha256)."""
    h = hashlib.new(algorithm)
    path = Path(path)
    with path.open("rb") as f, tqdm(total=path.stat().st_size, unit="B", unit_scale=True,
                                    desc=f"{algorithm} {path.name}", disable=not progress, leave=False) as bar:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def verify(path: str | os.PathLike, size: int | None = None, md5: str | None = None, sha256: str | None = None,
           progress: bool = False) -> None:
    """Check a file against whichever of its known size, MD5 and SHA-256 are given; a mismatch raises a
    DownloadError naming the file."""
    path = Path(path)
    if size is not None and path.stat().st_size != size:
        raise DownloadError(f"{path}: {path.stat().st_size} bytes, expected {size} (truncated or a different file)")
    for algorithm, want in (("md5", md5), ("sha256", sha256)):
        if want is not None:
            got = md5sum(path, progress, algorithm)
            if got != want:
                raise DownloadError(f"{path}: {algorithm.upper()} mismatch (expected {want}, got {got})")


def is_archive(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(ARCHIVE_SUFFIXES)


def fetch(url: str, dest: str | os.PathLike, md5: str | None = None, progress: bool = True,
          timeout: float = 60.0) -> Path:
    """Download `url` to `dest`, resuming `dest.part` if present; verify `md5` when given.

    An existing complete `dest` with the right checksum is not downloaded again."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():
        if md5 is None or md5sum(dest, progress) == md5:
            return dest
        dest.unlink()  # wrong content: download again
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "asr-downloader"})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # the part file is already complete
            response = None
        else:
            raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason} (use --source DIR for a local copy)") from None
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({exc}); use --source DIR for a local copy") from None
    if response is not None:
        with response:
            resumed = have and response.status == 206
            total = response.headers.get("Content-Length")
            total = int(total) + (have if resumed else 0) if total else None
            mode = "ab" if resumed else "wb"
            with part.open(mode) as f, tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                                            desc=dest.name, disable=not progress) as bar:
                try:
                    for block in iter(lambda: response.read(CHUNK), b""):
                        f.write(block)
                        bar.update(len(block))
                except (urllib.error.URLError, OSError) as exc:
                    raise DownloadError(f"{url}: download interrupted ({exc}); run again to resume") from None
    if md5 is not None:
        got = md5sum(part, progress)
        if got != md5:
            part.unlink()
            raise DownloadError(f"{url}: MD5 mismatch (expected {md5}, got {got}); the partial file was removed")
    os.replace(part, dest)
    return dest


def _check_member(name: str, dest: Path) -> Path:
    """Resolve an archive member under `dest`; refuse absolute paths and anything escaping `dest`."""
    posix = PurePosixPath(name.replace("\\", "/"))
    if posix.is_absolute() or ".." in posix.parts:
        raise DownloadError(f"unsafe path in archive: {name!r}")
    target = (dest / posix).resolve()
    if target != dest and dest not in target.parents:
        raise DownloadError(f"unsafe path in archive: {name!r}")
    return target


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, progress: bool = True) -> Path:
    """Extract a tar (any compression) or zip archive into `dest`, refusing members that would land outside
    it (absolute paths, `..`, links pointing out) and skipping device files."""
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                for m in members:
                    _check_member(m.filename, dest)
                for m in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress,
                              leave=False):
                    zf.extract(m, dest)
            return dest
        with tarfile.open(archive) as tf:
            members = []
            for m in tf.getmembers():
                _check_member(m.name, dest)
                if m.issym() or m.islnk():
                    _check_member(str(PurePosixPath(m.name).parent / m.linkname) if m.issym() else m.linkname,
                                  dest)
                if m.isfile() or m.isdir() or m.issym() or m.islnk():
                    members.append(m)
            for m in tqdm(members, desc=f"extract {archive.name}", unit="file", disable=not progress, leave=False):
                if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: the library's own safety filter too
                    tf.extract(m, dest, set_attrs=False, filter="data")
                else:
                    tf.extract(m, dest, set_attrs=False)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DownloadError(f"{archive}: not a readable archive ({exc})") from None
    return dest


def obtain(name: str, url: str | None, dest: str | os.PathLike, *, md5: str | None = None,
           source: str | os.PathLike | None = None, progress: bool = True, keep_archive: bool = False) -> Path:
    """Make the contents of archive `name` available under `dest` and return `dest`.

    - `source` is an archive file: it is checked (MD5, when known) and extracted.
    - `source` is a folder holding `name`: that archive is used the same way.
    - `source` is any other folder: it is taken to be the extracted content and linked (or copied) in.
    - no `source`: `url` is downloaded with resume and verified, then extracted.
    A marker file `dest/.<name>.done` makes a second call return at once."""
    dest = Path(dest)
    marker = dest / f".{name}.done"
    if marker.is_file():
        return dest
    dest.mkdir(parents=True, exist_ok=True)
    archive: Path | None = None
    if source is not None:
        src = Path(source)
        if not src.exists():
            raise DownloadError(f"{src}: local source not found")
        if src.is_file():
            archive = src
        elif (src / name).is_file():
            archive = src / name
        else:
            _link_tree(src, dest)
    else:
        if url is None:
            raise DownloadError(f"{name}: no download address known; pass a local copy with --source")
        archive = fetch(url, dest / name, md5, progress)
    if archive is not None:
        if md5 is not None and source is not None:
            got = md5sum(archive, progress)
            if got != md5:
                raise DownloadError(f"{archive}: MD5 mismatch (expected {md5}, got {got})")
        safe_extract(archive, dest, progress)
        if source is None and not keep_archive:
            archive.unlink()
    marker.write_text("ok\n")
    return dest


def _link_tree(src: Path, dest: Path) -> None:
    """Make every top-level entry of folder `src` visible under `dest` (symlinks; copies where links fail)."""
    for entry in sorted(src.iterdir()):
        target = dest / entry.name
        if target.exists() or target.is_symlink():
            continue
        try:
            target.symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        except OSError:
            if entry.is_dir():
                shutil.copytree(entry, target)
            else:
                shutil.copy2(entry, target)
