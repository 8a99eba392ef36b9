"""The model card: what a served model is, carried inside its checkpoint.

A checkpoint without its card is a bag of tensors nobody can audit. The card names the
architecture (the full open_clip configuration, so loading never depends on a model
registry), the image preprocessing, the embedding dimension, where the weights started
from, what they were trained on, how they scored, and which parts live outside the
file (e.g. a text tower shipped by another package). It is plain JSON, so this module
imports neither torch nor open_clip and ``vo-clip info`` can show it cheaply.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from .. import __version__
from ..timestamps import utc_seconds

__all__ = ["ModelCard"]


@dataclass(frozen=True)
class ModelCard:
    """Self-description of a model.

    Attributes
    ----------
    name : str
        Human-readable name shown by ``vo-clip info`` and the service.
    architecture : dict
        open_clip model configuration (``embed_dim``, ``vision_cfg``, ``text_cfg``...).
    preprocess : dict
        open_clip preprocessing configuration (``size``, ``mean``, ``std``...).
    base : str
        Where the weights started from, as a model spec (``ViT-B-16:openai``).
    fingerprint : str
        sha256 of the stored weights; equal fingerprints mean equal embeddings.
    training_data, metrics : dict
        Free-form provenance and evaluation results (``vo-clip eval`` fills ``metrics``).
    external : dict
        Parts of the model not stored in the checkpoint, by tower, with where they load from.
    """

    name: str
    architecture: dict
    preprocess: dict
    base: str
    fingerprint: str = ""
    training_data: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    external: dict = field(default_factory=dict)
    created: str = ""
    vo_clip_version: str = __version__

    @property
    def embed_dim(self) -> int:
        return int(self.architecture["embed_dim"])

    @property
    def image_size(self) -> int:
        size = self.preprocess.get("size", self.architecture["vision_cfg"].get("image_size"))
        return int(size[0] if isinstance(size, (list, tuple)) else size)

    def to_json(self) -> str:
        data = asdict(self)
        data["embed_dim"] = self.embed_dim
        return json.dumps(data, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ModelCard":
        data = json.loads(text)
        data.pop("embed_dim", None)
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in data.items() if k in known})

    def stamped(self, **changes) -> "ModelCard":
        """A copy with ``changes`` applied and the creation time set to now (UTC)."""
        now = utc_seconds()
        return replace(self, created=now, vo_clip_version=__version__, **changes)

    def summary(self) -> dict:
        """The fields ``vo-clip info`` prints (everything but the bulky architecture)."""
        return {
            "name": self.name,
            "base": self.base,
            "embed_dim": self.embed_dim,
            "image_size": self.image_size,
            "fingerprint": self.fingerprint,
            "training_data": self.training_data,
            "metrics": self.metrics,
            "external": self.external,
            "created": self.created,
        }
