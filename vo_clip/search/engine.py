"""The search engine: a query (text, image or observation) becomes scores per row.

Ranking goes through the index's vector index (:mod:`.vectors`): by default an exact
float32 matrix–vector product over the memory-mapped embeddings followed by
``argpartition`` (on unit vectors the dot product is the cosine similarity), or a faiss
ANN search re-ranked exactly, whose hits are then marked approximate. A catalog filter
is always applied exactly: it selects the allowed rows before ranking, so every hit
passes it. :meth:`SearchEngine.scores` exposes the full, exact score vector, which the
TAP layer joins to SQL results to evaluate similarity functions for every row at once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from astropy.table import Table

from ..errors import QueryError
from .catalog import SearchFilter
from .index import EmbeddingIndex
from .vectors import top_rows

__all__ = ["MATCH_DESCRIPTION", "Hits", "Query", "SearchEngine", "top_k"]

MATCH_DESCRIPTION = ("Calibrated probability (0-1) that the preview shows what the text "
                     "query describes; ranks as the similarity does")

#: Below 1/8 of the rows, gathering the filtered rows beats scoring every row.
_GATHER_FRACTION = 8

#: ``top_k`` is the vector module's ranking, kept here for its callers.
top_k = top_rows


@dataclass(frozen=True)
class Query:
    """What to look for: exactly one of a text, an image file, or an observation id."""

    text: str | None = None
    image: str | Path | None = None
    like: str | None = None

    def __post_init__(self):
        given = [name for name in ("text", "image", "like") if getattr(self, name) is not None]
        if len(given) != 1:
            raise QueryError(
                "give exactly one of a text, an image or an observation id to search by"
                + (f" (got {', '.join(given)})" if given else ""))
        if self.text is not None and not self.text.strip():
            raise QueryError("the text query is empty", hint="describe what to look for")

    def describe(self) -> str:
        if self.text is not None:
            return f"text {self.text!r}"
        return f"image {self.image}" if self.image is not None else f"observation {self.like}"


@dataclass(frozen=True)
class Hits:
    """Ranked rows of a search, best first.

    ``approximate`` is true when an ANN index found them: a row a full scan would have
    ranked among them may be missing (the scores shown are still exact). ``match`` is
    each row's match probability, for a text query on a calibrated index
    (:mod:`.calibration`), else None.
    """

    rows: np.ndarray
    scores: np.ndarray
    approximate: bool = False
    match: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rows)


class SearchEngine:
    """Ranks the observations of an index by similarity to a query.

    Parameters
    ----------
    index : EmbeddingIndex
    model : ClipModel, optional
        Needed to embed text and image queries; searches by observation id work
        without one. It must be the model the index was built with.
    text_encoder : optional
        Encodes text queries instead of ``model`` (a quicker form of its text tower,
        :func:`vo_clip.ml.text_query.text_encoder_of`); it must have the same fingerprint.
    """

    def __init__(self, index: EmbeddingIndex, model=None, *, text_encoder=None):
        for encoder in (model, text_encoder):
            if encoder is not None:
                index.check_model(encoder.fingerprint, encoder.card.name)
        self.index = index
        self.model = model
        self.text_encoder = text_encoder or model

    def vector(self, query: Query) -> np.ndarray:
        """The unit vector of ``query`` in the index's embedding space."""
        if query.like is not None:
            return np.array(self.index.embeddings[self.index.catalog.row_of(query.like)])
        if self.model is None:
            raise QueryError(f"searching by {query.describe()} needs the model")
        if query.text is not None:
            return self.text_encoder.encode_text([query.text])[0]
        return self.model.encode_images([query.image])[0]

    def scores(self, vector: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Cosine similarity of ``vector`` to every row (or to ``rows``), as float32."""
        vector = np.asarray(vector, dtype=np.float32)
        if rows is None:
            return self.index.embeddings @ vector
        if len(rows) > len(self.index) // _GATHER_FRACTION:
            # Copying many scattered rows costs more than scoring them all in one pass.
            return (self.index.embeddings @ vector)[rows]
        return self.index.embeddings[rows] @ vector

    def search(self, query: Query, *, top: int = 10,
               search_filter: SearchFilter | None = None) -> Hits:
        """The ``top`` rows most similar to ``query`` that satisfy ``search_filter``."""
        if top < 1:
            raise QueryError(f"--top must be at least 1, not {top}")
        vector = self.vector(query)
        hits = self.search_vector(vector, top=top, search_filter=search_filter)
        if query.text is None:  # calibrated on captions: text queries only
            return hits
        return replace(hits, match=self.index.match_probability(vector, hits.scores))

    def search_vector(self, vector: np.ndarray, *, top: int = 10,
                      search_filter: SearchFilter | None = None) -> Hits:
        """The ``top`` rows nearest to a unit ``vector`` among those ``search_filter`` keeps."""
        rows = self.index.catalog.select_rows(search_filter) if search_filter else None
        best, scores, approximate = self.index.vectors.top(vector, top, allowed_rows=rows)
        return Hits(rows=best, scores=scores, approximate=approximate)

    def table(self, hits: Hits, columns: list[str] | None = None) -> Table:
        """The catalog rows of ``hits`` with a ``similarity`` column, best first."""
        table = self.index.catalog.fetch(hits.rows, columns)
        table["similarity"] = hits.scores.astype(np.float64)
        table["similarity"].description = "Cosine similarity of the preview to the query"
        if hits.match is not None:
            table["match"] = hits.match.astype(np.float64)
            table["match"].description = MATCH_DESCRIPTION
        return table

