"""Small file helpers shared by the data, checkpoint and model-zoo code."""
from __future__ import annotations

import hashlib

_CHUNK = 1 << 20


def file_digest(path: str, algo: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()
