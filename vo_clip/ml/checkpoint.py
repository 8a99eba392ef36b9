"""The vo_clip checkpoint file: safetensors weights with the model card in the header.

One file travels: the tensors (optionally stored as float16 to halve the size) and,
in the safetensors metadata under ``vo_clip.card``, the :class:`ModelCard` as JSON.
safetensors never unpickles, so opening a checkpoint from elsewhere runs no code, and
its header can be read without loading the weights: :func:`read_card` imports no torch,
so a process that needs only the card (``vo-clip info``, a text query's numpy encoder)
does not pay its ~2 s import.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

from safetensors import SafetensorError, safe_open

from ..errors import CheckpointError
from .card import ModelCard

if TYPE_CHECKING:
    import torch

__all__ = ["CARD_KEY", "fingerprint", "load_checkpoint", "read_card", "save_checkpoint"]

CARD_KEY = "vo_clip.card"


def fingerprint(state_dict: Mapping[str, torch.Tensor]) -> str:
    """sha256 over names, dtypes, shapes and bytes of the tensors, in name order."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().to("cpu").contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def read_card(path: str | os.PathLike) -> ModelCard:
    """Read only the card of the checkpoint at ``path``.

    Raises
    ------
    CheckpointError
        If ``path`` is not a safetensors file or carries no vo_clip card.
    """
    path = Path(path)
    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(
            f"{path} is not a vo_clip checkpoint (not a safetensors file: {exc})"
        ) from exc
    if CARD_KEY not in metadata:
        raise CheckpointError(
            f"{path} is a safetensors file without a vo_clip model card",
            hint="convert other weights with 'vo-clip' model specs such as ARCH:/path/weights",
        )
    try:
        return ModelCard.from_json(metadata[CARD_KEY])
    except (ValueError, TypeError, KeyError) as exc:
        raise CheckpointError(f"{path} has a damaged model card: {exc}") from exc


def load_checkpoint(path: str | os.PathLike) -> tuple[ModelCard, dict[str, torch.Tensor]]:
    """Read the card and the tensors of the checkpoint at ``path``."""
    from safetensors.torch import load_file

    card = read_card(path)
    return card, load_file(str(path), device="cpu")


def save_checkpoint(path: str | os.PathLike, state_dict: Mapping[str, torch.Tensor],
                    card: ModelCard, *, half: bool = False) -> ModelCard:
    """Write ``state_dict`` and ``card`` to ``path`` atomically; return the stamped card.

    Parameters
    ----------
    half : bool
        Store floating-point tensors as float16 (they are cast back on load).
    """
    from safetensors.torch import save_file

    tensors = {}
    for name, tensor in state_dict.items():
        tensor = tensor.detach().to("cpu").contiguous()
        if half and tensor.is_floating_point():
            tensor = tensor.half()
        tensors[name] = tensor
    card = card.stamped(fingerprint=fingerprint(tensors))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(tensors, str(tmp), metadata={CARD_KEY: card.to_json()})
    os.replace(tmp, path)
    return card
