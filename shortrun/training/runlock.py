"""An exclusive lock on a run directory, so that two `train` processes never write into one run.

The lock is flock(2) on RUN/.lock: the kernel drops it when the process ends, however it ends
(kill -9 included), so a lock is never left stale and nobody has to delete it. The file holds
the holder's PID, only for the message a second writer gets. A clean release removes the file
(a failed command then leaves nothing behind); a killed holder leaves it, unlocked and harmless.

    with RunLock("runs/d1"):
        ...  # write the run
"""
from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from ..errors import UserError

NAME = ".lock"


class RunLock:
    def __init__(self, run: str | Path):
        self.run = Path(run)
        self.path = self.run / NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Takes the lock, creating RUN if needed; raises UserError naming the holder's PID if taken."""
        while True:
            try:
                self.run.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise UserError(f"cannot write to {self.run}: {e.strerror or e}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _holder(fd)
                os.close(fd)
                raise UserError(f"{self.run} is in use by another training process (PID {holder}); "
                                f"wait for it to end or stop it, or choose another --out") from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder before us removed the file we opened: lock the one now there
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)  # while still locked: see acquire's check
            os.close(self.fd)  # drops the lock
            self.fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _holder(fd: int) -> str:
    """The PID in the lock file; the holder writes it just after locking, so wait a moment for it."""
    for _ in range(20):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text:
            return text
        time.sleep(0.05)
    return "unknown"
