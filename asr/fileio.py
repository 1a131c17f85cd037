"""Atomic file writes: a temporary file in the target folder, renamed over the target when complete."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

FULL = (errno.ENOSPC, errno.EDQUOT)
NEARLY_FULL_BYTES = 1 << 20  # less free space than this after a failed write: the disk is taken to be full


class DiskFullError(RuntimeError):
    """A write that ran out of disk space; the message names the file. Nothing was replaced."""


class LockedError(RuntimeError):
    """A folder that another process holds the lock of; the message names it and the process."""


def _disk_full(exc: BaseException, folder: Path) -> bool:
    if isinstance(exc, OSError) and exc.errno in FULL:
        return True
    if isinstance(exc, RuntimeError):  # torch.save reports a failed write as "file write failed"
        try:
            st = os.statvfs(folder)
        except OSError:
            return False
        return st.f_bavail * st.f_frsize < NEARLY_FULL_BYTES
    return False


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path` (with umask permissions), on error
    it is removed and `path` is left as it was. A full disk raises DiskFullError naming `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp" + path.suffix)
        os.close(fd)
    except OSError as exc:
        if exc.errno in FULL:
            raise DiskFullError(f"no space left on device while writing {path}") from None
        raise
    umask = os.umask(0)
    os.umask(umask)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if _disk_full(exc, path.parent):
            raise DiskFullError(f"no space left on device while writing {path}") from None
        raise


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike, what: str = "run") -> Iterator[str | None]:
    """Hold an exclusive advisory lock on `folder` (its `.lock` file, holding our PID) for the duration.
    Another process holding it: LockedError naming that process. The kernel drops the lock of a process that
    dies, so the lock of a killed run is simply taken over; yields the PID written by that earlier holder
    (None if there was none), for the caller to mention. A POSIX record lock (lockf), not flock: processes
    forked from the holder (DataLoader workers) do not inherit it, so none outlives a killed holder."""
    path = Path(folder) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or None
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            raise LockedError(f"{folder} is in use by another {what} (PID {holder or 'unknown'}); wait for it to "
                              "finish or use another folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield holder
        finally:
            os.ftruncate(fd, 0)
            fcntl.lockf(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
