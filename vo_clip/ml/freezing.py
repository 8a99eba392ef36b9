"""Which weights a fine-tuning run may change: the paper's ablations as settings.

PAPERCLIP asks how much of CLIP must move to learn the archive's language: the whole
model, one tower with the other frozen, or only the projection heads that map each
tower into the shared space. LiT (a locked, pretrained text trunk with a trainable
projection) is the demo model's recipe. Each choice is a set of parameter-name
prefixes; everything else has ``requires_grad`` cleared, and frozen towers are put in
evaluation mode so batch-norm statistics stay those of the base model.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from ..errors import VoClipError
from .model import ClipModel, has_frozen_text_trunk

__all__ = ["FREEZABLE", "apply_freezing", "check_freezing", "frozen_towers", "lock_text_trunk",
           "trainable_parameters"]

FREEZABLE = ("image", "text")

#: The final projection of each open_clip tower kind into the shared embedding space.
_HEADS = (
    "visual.proj",                 # VisionTransformer
    "visual.attnpool.c_proj.",     # ModifiedResNet (the demo model's image tower)
    "visual.head.",                # timm towers
    "text_projection",             # CLIP's own text transformer
    "text.proj.",                  # Hugging Face text towers
    "text.text_projection",        # open_clip TextTransformer inside CustomTextCLIP
)
_TEMPERATURE = ("logit_scale", "logit_bias")
#: CLIP's own text tower below its projection (the trunk LiT locks), then the whole tower.
_CLIP_TEXT_TRUNK = ("token_embedding.", "positional_embedding", "transformer.", "ln_final.")
_CLIP_TEXT = _CLIP_TEXT_TRUNK + ("text_projection", "text.")


def apply_freezing(model: ClipModel, *, freeze: Iterable[str] = (), head_only: bool = False,
                   lock_text: bool = False) -> list[torch.nn.Parameter]:
    """Clear ``requires_grad`` on what the run must not change; return what it may.

    Parameters
    ----------
    freeze : iterable of {"image", "text"}
        Towers kept exactly as the base model has them (projection included).
    head_only : bool
        Train only the projection heads and the temperature.
    lock_text : bool
        LiT: the text trunk is frozen, its projection is trained.

    Raises
    ------
    VoClipError
        If a tower name is unknown, or the choices leave nothing to train.
    """
    freeze = tuple(freeze)
    check_freezing(freeze)
    if lock_text:
        lock_text_trunk(model)
    for name, parameter in model.module.named_parameters():
        if _tower(name) in freeze or (head_only and not name.startswith(_HEADS + _TEMPERATURE)):
            parameter.requires_grad_(False)
    return trainable_parameters(model)


def check_freezing(freeze: Iterable[str]) -> None:
    """Refuse an unknown tower, or freezing both (only the temperature would be left).

    Raises
    ------
    VoClipError
        If ``freeze`` names something other than :data:`FREEZABLE`, or all of them.
    """
    unknown = sorted(set(freeze) - set(FREEZABLE))
    if unknown:
        raise VoClipError(f"cannot freeze {', '.join(unknown)}: choose from "
                          f"{', '.join(FREEZABLE)}")
    if set(freeze) == set(FREEZABLE):
        raise VoClipError("nothing to train: both towers are frozen",
                          hint="freeze at most one tower (--head-only trains the projections)")


def lock_text_trunk(model: ClipModel) -> None:
    """Freeze the text tower except its final projection (LiT: a locked, pretrained text tower).

    The projection stays trainable so the image tower and the text space can meet.
    """
    locked = ("text.transformer.",) if has_frozen_text_trunk(model) else _CLIP_TEXT_TRUNK
    for name, parameter in model.module.named_parameters():
        if name.startswith(locked):
            parameter.requires_grad_(False)


def trainable_parameters(model: ClipModel) -> list[torch.nn.Parameter]:
    """The parameters an optimiser should see.

    Raises
    ------
    VoClipError
        If every parameter is frozen.
    """
    params = [p for p in model.module.parameters() if p.requires_grad]
    if not params:
        raise VoClipError("nothing to train: every parameter is frozen",
                          hint="freeze at most one tower, or drop --head-only")
    return params


def frozen_towers(model: ClipModel) -> list[torch.nn.Module]:
    """Sub-modules with no trainable weight: they stay in evaluation mode while training."""
    module = model.module
    towers = [module.visual]
    if has_frozen_text_trunk(model):
        towers.append(module.text.transformer)
    elif hasattr(module, "text"):
        towers.append(module.text)
    elif hasattr(module, "transformer"):
        towers.append(module.transformer)
    return [t for t in towers if not any(p.requires_grad for p in t.parameters())]


def _tower(name: str) -> str:
    if name.startswith("visual."):
        return "image"
    if name.startswith(_CLIP_TEXT):
        return "text"
    return ""
