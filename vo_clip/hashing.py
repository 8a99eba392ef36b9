"""Content fingerprints of files: what archives, indexes and towers are checked by."""

from __future__ import annotations

import hashlib
import os

__all__ = ["sha256_file"]


def sha256_file(path: str | os.PathLike, *, block: int = 1 << 20) -> str:
    """Hex sha256 of the file at ``path``, read in blocks (previews and weights alike).

    Raises
    ------
    OSError
        If the file cannot be read; callers name what was missing.
    """
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(block), b""):
            digest.update(chunk)
    return digest.hexdigest()
