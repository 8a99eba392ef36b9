"""A closed-form refit of the image tower's output projection onto the caption space.

With the text tower locked, contrastive training places each training preview where its
own proposal's caption beats the other captions of its batch: along directions that
tell *those proposals* apart. The tower learns what the previews show — a least-squares
linear classifier reads the scene kind off the demo model's held-out embeddings 90 % of
the time — yet a preview of a new proposal lies nearest its own kind's mean caption only
81 % of the time (``benchmarks/text_ceiling.py --image-probes``). A ridge regression
from the training previews' embeddings onto their captions' embeddings moves every
preview to where the captions of previews like it lie, which is what a text query
compares it with.

It is a trade, measured in the README ("Training and evaluation"): text queries find
more of the right kind, paraphrases most of all, but previews then lie near the
captions' common ground, so ranking short descriptions for a preview (``#describe``)
gets worse, and every similarity is high. ``vo-clip train --refit-ridge`` applies it;
the demo model does not.

The map is linear and the embeddings are normalised after it, so it folds into the
tower's last linear layer: the refit model is an ordinary checkpoint with other
weights, and nothing on the serving path changes. The fit is numpy in float64 on
embeddings the model computes, so it is deterministic where the model's embeddings are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..errors import VoClipError
from .pairs import archive_pairs, caption_embeddings

__all__ = ["Refit", "refit_image_projection", "ridge_map", "training_pairs"]


@dataclass(frozen=True)
class Refit:
    """What a refit did, for the model card: the ridge and the pairs it was fitted on."""

    ridge: float
    pairs: int
    matched_cosine_before: float
    matched_cosine_after: float

    def as_card(self) -> dict:
        return {"ridge": self.ridge, "pairs": self.pairs,
                "matched_cosine_before": round(self.matched_cosine_before, 4),
                "matched_cosine_after": round(self.matched_cosine_after, 4)}


def ridge_map(images: np.ndarray, captions: np.ndarray, ridge: float) -> np.ndarray:
    """The ``d × d`` matrix ``W`` minimising ``|images W - captions|² + λ|W|²``.

    ``ridge`` is relative: λ is ``ridge`` times the mean eigenvalue of ``imagesᵀ images``,
    so the same value means the same shrinkage whatever the number of pairs.
    """
    x, y = images.astype(np.float64), captions.astype(np.float64)
    gram = x.T @ x
    penalty = ridge * np.trace(gram) / len(gram)
    return np.linalg.solve(gram + penalty * np.eye(len(gram)), x.T @ y)


def refit_image_projection(model, pairs, ridge: float, *, progress: bool = False) -> Refit:
    """Fold the ridge map of ``pairs``' previews onto their captions into ``model``'s image tower.

    ``pairs`` are the training pairs (never held-out ones: the map is fitted on them).

    Raises
    ------
    VoClipError
        If ``ridge`` is not positive, or the image tower has no output layer this knows
        how to fold a map into (a ModifiedResNet's attention-pool projection, a ViT's
        ``proj``).
    """
    if not ridge > 0:
        raise VoClipError(f"refit ridge {ridge} must be positive")
    layer = _output_layer(model.module.visual)
    images = model.encode_images(pairs.paths, total=len(pairs),
                                 progress="refit: embedding previews" if progress else None)
    captions = caption_embeddings(model, pairs.captions)
    mapping = ridge_map(images, captions, ridge)
    layer(torch.from_numpy(mapping))
    mapped = images @ mapping
    mapped /= np.linalg.norm(mapped, axis=1, keepdims=True)
    return Refit(ridge=ridge, pairs=len(pairs),
                 matched_cosine_before=float(np.mean(np.sum(images * captions, 1))),
                 matched_cosine_after=float(np.mean(np.sum(mapped * captions, 1))))


def _output_layer(visual):
    """A function that right-multiplies the tower's output by a ``d × d`` matrix, in place."""
    attnpool = getattr(visual, "attnpool", None)
    if attnpool is not None:  # ModifiedResNet: the output is c_proj(x) = x Aᵀ + b

        @torch.no_grad()
        def fold(mapping):
            linear = attnpool.c_proj
            mapping = mapping.to(linear.weight.dtype)
            linear.weight.copy_(mapping.T @ linear.weight)
            linear.bias.copy_(linear.bias @ mapping)
        return fold
    if isinstance(getattr(visual, "proj", None), torch.nn.Parameter):  # ViT: x @ proj

        @torch.no_grad()
        def fold(mapping):
            visual.proj.copy_(visual.proj @ mapping.to(visual.proj.dtype))
        return fold
    raise VoClipError(f"cannot refit the output of a {type(visual).__name__} image tower",
                      hint="the refit knows open_clip's ModifiedResNet and VisionTransformer")


def training_pairs(archive, training_data: dict):
    """The pairs a run trained on, from its card's ``training_data``: every pair of
    ``archive`` (in the run's caption source) outside the held-out proposals."""
    settings = training_data.get("settings", {})
    pairs = archive_pairs(archive, settings.get("captions", "summary"))
    held_out = training_data.get("validation_proposals") or []
    return pairs.subset(~np.isin(pairs.proposals, held_out))
