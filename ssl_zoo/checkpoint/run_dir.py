"""One run per output directory: an exclusive lock, and no silent overwrite of a finished run.

The lock is ``fcntl.flock`` on ``OUTPUT_DIR/.lock``. The kernel releases a flock when its
holder dies (even by SIGKILL), so a lock left by a dead process never blocks: the next run
simply takes it. The file records the holder's host and pid for the error message only.
"""
from __future__ import annotations

import fcntl
import os
import socket
from typing import List, Optional

from ssl_zoo.checkpoint.files import list_checkpoints

LOCK_NAME = ".lock"


class RunDirLockedError(RuntimeError):
    """Another live process is training into the same output directory."""


class ExistingRunError(ValueError):
    """A fresh run would replace the checkpoints of an earlier run."""


class RunDirLock:
    """Exclusive lock of an output directory for the life of a training process.

    Args:
        directory: the run's OUTPUT_DIR (created if needed).

    Examples:
        >>> lock = RunDirLock("output").acquire()   # raises RunDirLockedError if held
        >>> ...                                     # train
        >>> lock.release()
    """

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOCK_NAME)
        self._fd: Optional[int] = None

    def acquire(self) -> "RunDirLock":
        os.makedirs(self.directory, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirLockedError(
                f"OUTPUT_DIR '{self.directory}' is in use by another training run ({holder}). Wait for it to "
                f"finish, stop it, or choose another OUTPUT_DIR.") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"host={socket.gethostname()} pid={os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunDirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return os.read(fd, 200).decode(errors="replace").strip() or "unknown process"
    except OSError:
        return "unknown process"


def check_fresh_start(directory: str, *, resume: bool, overwrite: bool) -> List[str]:
    """Refuse to start a fresh run over the checkpoints of an earlier one.

    Args:
        directory: OUTPUT_DIR.
        resume: ``--resume`` was given (existing checkpoints are the point).
        overwrite: ``--overwrite`` was given (the user accepts replacing them).

    Returns:
        the existing checkpoints (replaced by this run when ``overwrite``).

    Raises:
        ExistingRunError: checkpoints exist and neither flag was given.
    """
    existing = list_checkpoints(directory)
    if existing and not resume and not overwrite:
        names = ", ".join(os.path.basename(p) for p in existing[-3:])
        raise ExistingRunError(
            f"OUTPUT_DIR '{directory}' already holds a run ({len(existing)} checkpoint(s): ...{names}). "
            f"Add --resume to continue it, --overwrite to replace it, or choose another OUTPUT_DIR.")
    return existing


__all__ = ["ExistingRunError", "LOCK_NAME", "RunDirLock", "RunDirLockedError", "check_fresh_start"]
