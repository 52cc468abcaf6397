"""Small file helpers shared by the data, checkpoint, model-zoo and benchmark code."""
from __future__ import annotations

import hashlib
import os
import tempfile

_CHUNK = 1 << 20
CACHE_ENV = "SSL_ZOO_CACHE"


def cache_dir() -> str:
    """ssl_zoo's cache root (downloads, converted weights, decoded datasets, feature caches):
    ``$SSL_ZOO_CACHE`` if set, else ``~/.cache/ssl_zoo``."""
    return os.path.expanduser(os.environ.get(CACHE_ENV) or os.path.join("~", ".cache", "ssl_zoo"))


def _default_mode() -> int:
    """What ``open(path, "w")`` would give: 0666 minus the process umask (0644 under umask 022)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def file_digest(path: str, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: str, write_fn) -> None:
    """``write_fn(file)`` into a temp file beside ``path``, fsync, then rename onto ``path``.

    A crash or an exception mid-write leaves the previous ``path`` intact (POSIX rename is atomic).
    The file gets the permissions a plain ``open(path, "w")`` would (``mkstemp``'s 0600 would hide
    checkpoints from colleagues on a shared cluster). Temp files are named ``.<name>.<random>.tmp``;
    a SIGKILL mid-write leaves one behind (``ssl_zoo.checkpoint.files.remove_orphan_tmp`` cleans them)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), _default_mode())
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # pragma: no cover (some filesystems refuse fsync on directories)
        pass
