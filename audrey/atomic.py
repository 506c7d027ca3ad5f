"""Atomic, durable file writes: temp file in the same folder, fsync, rename, fsync the folder.

A reader, or a crash at any moment, sees either the old file or the complete new one under the
final name; at worst a hidden `.<name>.*.tmp` is left behind, which no reader mistakes for data.
A write that fails (a full disk, a file-size limit, a read-only folder) removes its temp file,
leaves the old file as it was and raises `WriteFailed`: one line naming the file and the cause.
"""

from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path

from audrey.errors import AudreyError

NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # full disk, quota, file-size limit
NOT_ALLOWED = {errno.EACCES, errno.EPERM, errno.EROFS}


class WriteFailed(AudreyError):
    """A file could not be written; nothing under its name changed. `cause` is the OS's reason
    ("No space left on device"), `remedy` what to do about it, for callers that add context."""

    def __init__(self, path: Path, exc: OSError):
        self.path = Path(path)
        self.cause = exc.strerror or str(exc) or type(exc).__name__
        if exc.errno in NO_SPACE:
            self.remedy = "free some disk space (or write somewhere else) and run again"
        elif exc.errno in NOT_ALLOWED:
            self.remedy = "write to a folder you may write to"
        else:
            self.remedy = "check the disk and the folder, then run again"
        super().__init__(f"{self.path}: could not be written ({self.cause}); {self.remedy}")


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (POSIX needs the directory itself synced)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes, durable: bool = True) -> Path:
    """Write `data` to `path` atomically. durable=False skips the fsyncs (for caches).
    Raises WriteFailed (the old file untouched, no temp file left) when the write fails."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise WriteFailed(path, exc) from None
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # mkstemp makes 0600; a saved file gets the usual mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise WriteFailed(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)
    return path
