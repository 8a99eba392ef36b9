"""Description retrieval: what an observation shows, read off a curated list of phrases.

Search goes from text to images; PAPERCLIP (arXiv 2403.08851) also evaluates the other
direction, *description retrieval*: embed an observation's preview, embed a fixed list
of astrophysical object classes and science use cases with the text tower, and rank the
list by cosine similarity. The best entries say what the observation most likely is and
what it could serve, without anyone having to guess a query.

The list (:mod:`.descriptions`) is embedded once per :class:`Describer`, lazily and
under a lock, into one float32 matrix; describing an observation is then one
matrix-vector product with its stored embedding, so no preview is decoded again.
:func:`describe_accuracy` measures the ranking against the demo archive's ground truth
on the proposals the demo model never saw (:func:`held_out_obs_ids`).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from numbers import Integral

import numpy as np

from ..errors import ArchiveError, QueryError
from .descriptions import DEMO_KIND_LABELS, DESCRIPTIONS, Description
from .engine import top_k

__all__ = ["Describer", "Match", "describe_accuracy", "describe_accuracy_by_kind",
           "held_out_obs_ids"]


@dataclass(frozen=True)
class Match:
    """One description of an observation, with its cosine similarity to the preview."""

    label: str
    kind: str
    text: str
    similarity: float


class Describer:
    """Ranks curated descriptions by similarity to an observation's embedding.

    Parameters
    ----------
    engine : SearchEngine
        Its index supplies the observations' embeddings, its model the text tower
        (it must be the model the index was built with, which the engine checks).
    descriptions : sequence of Description, optional
        The entries to rank; :data:`~.descriptions.DESCRIPTIONS` by default.

    Raises
    ------
    ValueError
        If ``descriptions`` is empty or repeats a label.
    """

    def __init__(self, engine, descriptions=DESCRIPTIONS):
        self.descriptions: tuple[Description, ...] = tuple(descriptions)
        if not self.descriptions:
            raise ValueError("a Describer needs at least one description")
        labels = [d.label for d in self.descriptions]
        if len(set(labels)) != len(labels):
            raise ValueError("description labels must be unique")
        self.engine = engine
        self._lock = threading.Lock()
        self._matrix: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.descriptions)

    @property
    def matrix(self) -> np.ndarray:
        """The descriptions' unit text embeddings, float32 ``[n_descriptions, embed_dim]``.

        Computed on first use, once, even when several threads ask at the same time.

        Raises
        ------
        QueryError
            If the engine has no model to embed the descriptions with.
        """
        if self._matrix is None:
            with self._lock:
                if self._matrix is None:
                    self._matrix = self._embed()
        return self._matrix

    def _embed(self) -> np.ndarray:
        if self.engine.model is None:
            raise QueryError("describing observations needs the model the index was built with")
        vectors = self.engine.model.encode_text([d.text for d in self.descriptions])
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        matrix.setflags(write=False)
        return matrix

    def describe(self, obs_id: str, top: int = 5) -> list[Match]:
        """The ``top`` descriptions closest to observation ``obs_id``, best first.

        Raises
        ------
        UnknownObservationError
            If the index has no observation ``obs_id``.
        QueryError
            If ``top`` is not a positive integer.
        """
        top = self._check_top(top)
        return self.describe_row(self.engine.index.catalog.row_of(obs_id), top)

    def describe_row(self, row: int, top: int = 5) -> list[Match]:
        """The ``top`` descriptions closest to the observation in index row ``row``.

        Raises
        ------
        QueryError
            If ``row`` is outside the index or ``top`` is not a positive integer.
        """
        n_rows = len(self.engine.index.embeddings)
        if isinstance(row, bool) or not isinstance(row, Integral) or not 0 <= row < n_rows:
            raise QueryError(f"row {row!r} is not in the index (0 to {n_rows - 1})")
        return self.describe_vector(np.asarray(self.engine.index.embeddings[int(row)]), top)

    def describe_vector(self, vector: np.ndarray, top: int = 5) -> list[Match]:
        """The ``top`` descriptions closest to an embedding ``vector``, best first.

        ``vector`` is scaled to unit length, so similarities are cosines. Equal scores
        keep the list's order.

        Raises
        ------
        QueryError
            If ``vector`` is not a finite, non-zero vector of the model's embedding size,
            or ``top`` is not a positive integer.
        """
        top = self._check_top(top)
        scores = self.matrix @ self._unit(vector)
        return [self._match(i, scores[i]) for i in top_k(scores, top)]

    def _check_top(self, top) -> int:
        if isinstance(top, bool) or not isinstance(top, Integral) or top < 1:
            raise QueryError(f"top must be a positive integer, not {top!r}")
        return min(int(top), len(self.descriptions))

    def _unit(self, vector) -> np.ndarray:
        vector = np.asarray(vector, dtype=np.float32)
        if vector.shape != (self.matrix.shape[1],):
            raise QueryError(f"an embedding of shape {vector.shape} cannot be described; "
                             f"the model embeds into ({self.matrix.shape[1]},)")
        norm = float(np.linalg.norm(vector))
        if not math.isfinite(norm) or norm == 0:
            raise QueryError("an embedding to describe must be finite and non-zero")
        return vector / np.float32(norm)

    def _match(self, i: int, score) -> Match:
        d = self.descriptions[i]
        return Match(label=d.label, kind=d.kind, text=d.text, similarity=float(score))


def held_out_obs_ids(archive, model=None) -> list[str]:
    """The observations of the proposals a model was not trained on, in archive order.

    The split is the trainer's own (:func:`vo_clip.ml.pairs.split_by_proposal` over the
    archive's proposals), drawn with the validation fraction and seed the model card
    records, or with :class:`~vo_clip.ml.train.TrainSettings`' defaults without a card.
    """
    from ..ml.pairs import archive_pairs, split_by_proposal
    from ..ml.train import TrainSettings

    defaults = TrainSettings()
    recorded = {}
    if model is not None:
        recorded = model.card.training_data.get("settings") or {}
    pairs = archive_pairs(archive)
    mask = split_by_proposal(pairs.proposals, recorded.get("val_fraction", defaults.val_fraction),
                             recorded.get("seed", defaults.seed))
    return [obs_id for obs_id, held in zip(pairs.obs_ids, mask) if held]


def describe_accuracy(describer: Describer, archive, obs_ids, kind_labels=DEMO_KIND_LABELS,
                      top: int = 3) -> float:
    """Fraction of ``obs_ids`` with a correct description among their ``top`` matches.

    A description is correct when ``kind_labels`` lists its label for the observation's
    true kind (from the archive's ``truth.csv``).

    Raises
    ------
    ArchiveError
        If the archive has no ``truth.csv``, it lacks an observation, or ``obs_ids``
        is empty.
    """
    hits = _hits(describer, archive, obs_ids, kind_labels, top)
    return float(np.mean([hit for kind_hits in hits.values() for hit in kind_hits]))


def describe_accuracy_by_kind(describer: Describer, archive, obs_ids,
                              kind_labels=DEMO_KIND_LABELS, top: int = 3) -> dict[str, float]:
    """:func:`describe_accuracy` per true kind (kinds absent from ``obs_ids`` left out)."""
    hits = _hits(describer, archive, obs_ids, kind_labels, top)
    return {kind: float(np.mean(kind_hits)) for kind, kind_hits in sorted(hits.items())}


def _hits(describer, archive, obs_ids, kind_labels, top) -> dict[str, list[bool]]:
    from ..ml.evaluate import read_truth

    truth = read_truth(archive)
    if truth is None:
        raise ArchiveError(f"archive {archive.name} has no truth.csv to score descriptions with")
    obs_ids = list(obs_ids)
    if not obs_ids:
        raise ArchiveError("no observations to score descriptions on")
    hits: dict[str, list[bool]] = {}
    for obs_id in obs_ids:
        if obs_id not in truth:
            raise ArchiveError(f"truth.csv of archive {archive.name} lacks {obs_id!r}")
        kind = truth[obs_id]
        labels = {m.label for m in describer.describe(obs_id, top)}
        hits.setdefault(kind, []).append(bool(labels & set(kind_labels.get(kind, ()))))
    return hits
