"""Contrastive objectives on a batch of image and caption embeddings.

Observations of one proposal share a caption, so a batch can hold several positives per
row: ``targets[i, j]`` is 1 where preview ``i`` and caption ``j`` come from the same
proposal. Both losses take that matrix instead of assuming the diagonal; a one-hot
target would push identical captions apart.

* **softmax** (InfoNCE, CLIP and PAPERCLIP): the symmetric cross entropy of the scaled
  similarity matrix, with each row's target spread over its positives.
* **sigmoid** (SigLIP): every (image, caption) cell is an independent binary decision,
  ``log σ(±(t·s + b))``; no batch-wide normalisation, so it degrades less with the
  small batches a fine-tuning run can afford.

Both take optional ``negatives``: captions of proposals outside the batch, which every
preview must also rank below its own (a bank of constants, as in MoCo's queue). A locked
text tower makes them nearly free — its features are computed once per run — and they
give each preview the whole training set's proposals to tell apart, not only the batch's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["LOSSES", "alignment_loss", "clamp_temperature", "contrastive_loss"]

LOSSES = ("softmax", "sigmoid")

#: CLIP clamps the learned temperature at 100; past that the softmax saturates.
_MAX_LOGIT_SCALE = math.log(100)


def contrastive_loss(kind: str, image_features: torch.Tensor, text_features: torch.Tensor,
                     targets: torch.Tensor, logit_scale: torch.Tensor,
                     logit_bias: torch.Tensor | None = None,
                     negatives: torch.Tensor | None = None) -> torch.Tensor:
    """The ``kind`` loss of unit-norm features; ``logit_scale`` is the log temperature.

    ``negatives`` (unit-norm, ``[m, d]``) are captions that answer none of the previews:
    they enter the preview → caption direction only, since no preview is their positive.

    Raises
    ------
    ValueError
        If ``kind`` is not one of :data:`LOSSES`, or sigmoid is asked without a bias.
    """
    logits = logit_scale.exp() * image_features @ text_features.T
    targets = targets.to(logits.device, logits.dtype)
    extra = (logit_scale.exp() * image_features @ negatives.T if negatives is not None
             else logits[:, :0])
    if kind == "softmax":
        per_image = F.pad(targets / targets.sum(1, keepdim=True), (0, extra.shape[1]))
        per_text = targets.T / targets.T.sum(1, keepdim=True)
        return (F.cross_entropy(torch.cat([logits, extra], 1), per_image)
                + F.cross_entropy(logits.T, per_text)) / 2
    if kind == "sigmoid":
        if logit_bias is None:
            raise ValueError("the sigmoid loss needs a logit bias")
        signs = 2 * targets - 1
        return -(F.logsigmoid(signs * (logits + logit_bias)).sum()
                 + F.logsigmoid(-(extra + logit_bias)).sum()) / len(logits)
    raise ValueError(f"unknown loss {kind!r}; choose one of {', '.join(LOSSES)}")


def alignment_loss(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """Mean cosine distance of unit-norm rows ``i`` ↔ ``i``: 0 when each preview lies on its caption."""
    return (1 - (image_features * text_features).sum(-1)).mean()


@torch.no_grad()
def clamp_temperature(module: torch.nn.Module) -> None:
    """Keep the learned log temperature in CLIP's range after an optimiser step."""
    module.logit_scale.clamp_(0, _MAX_LOGIT_SCALE)
