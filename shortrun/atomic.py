"""Writing a file all at once: the one helper every output of the package goes through.

The content goes to a temporary file beside the target (same folder, so the rename never
crosses file systems), is flushed and fsynced, then renamed over the target. A failure at any
point (a full disk, "file too large", a kill) leaves the previous file as it was and no
temporary file behind (a kill -9 may leave one: OUT.PID.tmp).

    atomic_write("s.png", lambda fh: image.save(fh, format="PNG"))
    write_text_atomic("eval.json", text)
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import UserError


def temp_path(path: Path) -> Path:
    """The temporary name for `path`; the PID keeps two writers (e.g. two ranks) apart."""
    return path.with_name(f"{path.name}.{os.getpid()}.tmp")


def _fsync_dir(folder: Path) -> None:
    """Makes the rename itself durable; some file systems cannot open a folder, which is harmless."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: str | Path, writer: Callable[[BinaryIO], object]) -> Path:
    """Calls writer(fh) on a binary file that becomes `path` only once it is complete.
    An OSError becomes a one-line UserError; anything else is re-raised, the temp file removed."""
    path = Path(path)
    tmp = temp_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.unlink(missing_ok=True)  # left by a killed process that had our PID: nobody writes it now
        # O_EXCL: never write through a link or into another writer's file; 0o666 follows the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as fh:
            writer(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(e, OSError):
            raise UserError(f"cannot write {path}: {e.strerror or e}"
                            + ("; the previous file is unchanged" if path.exists() else "")) from None
        raise
    _fsync_dir(path.parent)
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))
