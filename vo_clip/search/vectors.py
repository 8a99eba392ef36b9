"""The VectorIndex seam: how the engine and the TAP layer get similarity scores.

Two implementations share one interface (:class:`VectorIndex`):

* :class:`ExactVectors`, the default: the memory-mapped ``embeddings.npy`` of the index,
  scored with one matrix–vector product. Exact, and fast enough up to a few hundred
  thousand rows (see :data:`ANN_THRESHOLD`).
* :class:`FaissVectors`: a faiss IVF-PQ index (``vectors.faiss``, memory-mapped with
  ``IO_FLAG_MMAP_IFC``) that finds candidates without touching every row, re-ranked with the
  exact vectors of ``embeddings.npy``. Candidates can be missed, so its answers are
  *approximate*; the scores it returns are always the exact cosines of the rows it returns.

Both keep ``embeddings.npy``: :meth:`VectorIndex.scores` (every row's exact score, which
ADQL similarity functions need), a search by observation and an incremental rebuild read
it. faiss is imported only when an ANN index is built or opened (``vo_clip[ann]``).

Kinds (``vo-clip index --ann``): ``none`` (exact), ``ivf-pq`` (IVF with a flat coarse
quantiser, PQ codes), ``hnsw`` (the same with an HNSW graph as coarse quantiser, for the
very large ``nlist`` of 10^7+ rows), ``auto`` (``ivf-pq`` from :data:`ANN_THRESHOLD` rows
up, else exact).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..errors import IndexDamagedError, VoClipError

__all__ = ["ANN_KINDS", "ANN_THRESHOLD", "AnnSettings", "ExactVectors", "FaissVectors",
           "VectorIndex", "build_faiss", "open_vectors", "top_rows"]

FAISS_FILE = "vectors.faiss"
ANN_KINDS = ("auto", "none", "ivf-pq", "hnsw")
#: ``--ann auto`` builds an ANN index from this many rows up. Measured with
#: benchmarks/ann_recall.py on 2 cores: below it an exact scan answers in under ~10 ms
#: and training costs more than it saves (see the README, "Approximate search").
ANN_THRESHOLD = 300_000
#: Exact re-ranking looks at this many ANN candidates per wanted row (at least 100).
REFINE_FACTOR = 10
#: A filter keeping at most this many rows is scored exactly over the kept rows:
#: cheaper than a restricted ANN search, and exact.
EXACT_SUBSET_ROWS = 50_000


class AnnUnavailableError(VoClipError):
    """faiss is needed (an ANN index is built or opened) but is not installed."""


class VectorIndex:
    """Scores of rows for a query vector; the rows are those of the index's catalog."""

    embeddings: np.ndarray

    #: True when :meth:`top` may miss rows a full scan would return.
    approximate: bool = False

    def __len__(self) -> int:
        return len(self.embeddings)

    def scores(self, vector: np.ndarray) -> np.ndarray:
        """Exact cosine similarity of every row to a unit ``vector`` (float32)."""
        return self.embeddings @ np.asarray(vector, dtype=np.float32)

    def top(self, vector: np.ndarray, k: int, *, allowed_rows: np.ndarray | None = None
            ) -> tuple[np.ndarray, np.ndarray, bool]:
        """The best ``k`` rows, best first, among ``allowed_rows`` when given.

        Returns ``(rows int64, exact scores float32, approximate)``.
        """
        raise NotImplementedError

    def describe(self) -> dict:
        raise NotImplementedError

    def _exact_top(self, vector, k, allowed_rows):
        vector = np.asarray(vector, dtype=np.float32)
        if allowed_rows is None:
            scores = self.embeddings @ vector
            best = top_rows(scores, k)
            return best, scores[best], False
        allowed_rows = np.asarray(allowed_rows, dtype=np.int64)
        if len(allowed_rows) > len(self) // 8:
            # Copying many scattered rows costs more than scoring them all in one pass.
            scores = (self.embeddings @ vector)[allowed_rows]
        else:
            scores = self.embeddings[allowed_rows] @ vector
        best = top_rows(scores, k)
        return allowed_rows[best], scores[best], False


class ExactVectors(VectorIndex):
    """Every row scored: the memory-mapped matrix times the query vector."""

    def __init__(self, embeddings: np.ndarray):
        self.embeddings = embeddings

    def top(self, vector, k, *, allowed_rows=None):
        return self._exact_top(vector, k, allowed_rows)

    def describe(self) -> dict:
        return {"kind": "none", "approximate": False}


class FaissVectors(VectorIndex):
    """A faiss IVF-PQ candidate search, re-ranked exactly with the embeddings matrix.

    ``nprobe`` inverted lists are scanned per query. A restricted search passes the
    allowed rows to faiss as an ID selector; when fewer than ``k`` allowed rows turn up
    in the probed lists it probes four times as many, up to all of them, so a filter
    never gets fewer rows than it has. A small allowed set is scored exactly instead.
    """

    approximate = True

    def __init__(self, embeddings: np.ndarray, index, settings: dict):
        self.embeddings = embeddings
        self.index = index
        self.settings = settings
        self._ivf = _faiss().extract_index_ivf(index)
        self.nprobe = int(settings.get("nprobe", 32))
        self.refine_factor = int(settings.get("refine_factor", REFINE_FACTOR))

    def top(self, vector, k, *, allowed_rows=None):
        faiss = _faiss()
        k = min(k, len(self) if allowed_rows is None else len(allowed_rows))
        if k <= 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32), False
        if allowed_rows is not None and len(allowed_rows) <= max(EXACT_SUBSET_ROWS, 4 * k):
            return self._exact_top(vector, k, allowed_rows)
        vector = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, -1))
        wanted = max(self.refine_factor * k, 100)
        selector = None
        if allowed_rows is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed_rows, dtype=np.int64))
        nprobe, nlist = self.nprobe, self._ivf.nlist
        while True:
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, nlist))
            if selector is not None:
                params.sel = selector
            _, ids = self.index.search(vector, wanted, params=params)
            candidates = ids[0][ids[0] >= 0]
            if len(candidates) >= k or nprobe >= nlist:
                break
            nprobe *= 4
        candidates = np.sort(candidates)
        scores = self.embeddings[candidates] @ vector[0]
        best = top_rows(scores, k)
        return candidates[best].astype(np.int64), scores[best], True

    def describe(self) -> dict:
        return {**self.settings, "approximate": True, "nprobe": self.nprobe,
                "refine_factor": self.refine_factor}


class AnnSettings:
    """The parameters of an ANN index that matter, and the defaults for ``n`` rows.

    ``nlist`` (inverted lists) defaults to about 2·√n, a power of two (2048 at 10^6);
    ``pq_m`` (bytes per vector) to dim/8, so 512-d vectors take 64 bytes; ``nprobe``
    (lists scanned per query) to nlist/64, at least 16. A ``kind`` of None (tuning
    only) keeps the kind of the index being rebuilt (:func:`~.index.build_index`
    resolves it).
    """

    def __init__(self, kind: str | None, *, nlist: int | None = None,
                 pq_m: int | None = None, nprobe: int | None = None):
        if kind is not None and kind not in ANN_KINDS:
            raise VoClipError(f"unknown ANN kind {kind!r}",
                              hint=f"use one of {', '.join(ANN_KINDS)}")
        self.kind, self.nlist, self.pq_m, self.nprobe = kind, nlist, pq_m, nprobe

    def resolved_kind(self, n: int) -> str:
        """``auto`` becomes ``ivf-pq`` from the threshold up if faiss is installed."""
        if self.kind == "auto":
            if n < ANN_THRESHOLD:
                return "none"
            try:
                _faiss()
            except AnnUnavailableError:
                return "none"
            return "ivf-pq"
        return self.kind

    def for_rows(self, n: int, dim: int) -> dict:
        """The faiss parameters for ``n`` rows of ``dim`` dimensions."""
        nlist = self.nlist or max(1, 2 ** round(math.log2(max(2 * math.sqrt(n), 1))))
        nlist = max(1, min(nlist, n // 39 or 1))  # faiss wants >= 39 points per list
        pq_m = self.pq_m or max(1, dim // 8)
        if dim % pq_m:
            raise VoClipError(f"--ann-pq-m {pq_m} does not divide the embedding dimension "
                              f"{dim}")
        # 8-bit codes need 256 centroids per sub-quantiser, trained on >= 39 points each.
        nbits = max(1, min(8, int(math.log2(max(n // 39, 2)))))
        nprobe = self.nprobe or max(16, nlist // 64)
        return {"kind": self.resolved_kind(n), "nlist": nlist, "pq_m": pq_m,
                "pq_nbits": nbits, "nprobe": min(nprobe, nlist), "metric": "inner_product",
                "refine": "exact (embeddings.npy)"}


def build_faiss(embeddings: np.ndarray, root: Path, settings: dict, *,
                previous: tuple[Path, int] | None = None, chunk: int = 65536,
                seed: int = 0) -> dict:
    """Write ``root/vectors.faiss`` for the rows of ``embeddings``; return its settings.

    ``previous`` is ``(an existing vectors.faiss, n)``, whose first ``n`` rows are the
    first ``n`` rows of ``embeddings`` unchanged: it is extended with the rows after
    them, without retraining. With ``(path, 0)`` its trained quantisers are kept and
    every row is added again (rows changed or moved). Otherwise a new index is trained
    on a sample of 64·nlist rows (faiss asks for 39 to 256 per list).
    """
    faiss = _faiss()
    n, dim = embeddings.shape
    if previous is not None:
        index = faiss.read_index(str(previous[0]))  # in memory: a mapped index is read-only
        start = previous[1]
        if start == 0:
            index.reset()
        settings = {**settings, "trained_rows": _trained_rows(previous[0].parent)}
    else:
        index = _new_index(settings, dim)
        sample = min(n, max(64 * settings["nlist"], 64 * 2 ** settings["pq_nbits"]))
        rows = np.sort(np.random.default_rng(seed).choice(n, size=sample, replace=False))
        index.train(np.ascontiguousarray(embeddings[rows], dtype=np.float32))
        start = 0
        settings = {**settings, "trained_rows": int(n), "training_sample": int(sample)}
    for first in range(start, n, chunk):
        block = np.ascontiguousarray(embeddings[first:first + chunk], dtype=np.float32)
        index.add_with_ids(block, np.arange(first, first + len(block), dtype=np.int64))
    faiss.write_index(index, str(root / FAISS_FILE))
    return {**settings, "added_rows": int(n - start)}


def open_vectors(root: Path, settings: dict | None, embeddings: np.ndarray) -> VectorIndex:
    """The vector index an index directory's manifest describes."""
    if not settings or settings.get("kind", "none") == "none":
        return ExactVectors(embeddings)
    faiss = _faiss()
    path = root / FAISS_FILE
    if not path.is_file():
        raise IndexDamagedError(f"index file {path} is damaged: it is missing")
    try:
        index = faiss.read_index(str(path), _mmap_flag(faiss))
    except RuntimeError as exc:
        raise IndexDamagedError(f"index file {path} is damaged: faiss cannot read it "
                                f"({str(exc).splitlines()[0][:120]})") from None
    if index.ntotal != len(embeddings) or index.d != embeddings.shape[1]:
        raise IndexDamagedError(f"index file {path} is damaged: it holds {index.ntotal} "
                                f"vectors of {index.d} dimensions, not {embeddings.shape}")
    return FaissVectors(embeddings, index, settings)


def _mmap_flag(faiss) -> int:
    """How to map ``vectors.faiss`` rather than read it.

    ``IO_FLAG_MMAP_IFC`` (faiss 1.10+) reads the inverted lists in place from the mapped
    file; plain ``IO_FLAG_MMAP`` turns them into ``OnDiskInvertedLists``, whose per-list
    access made a query 10x slower (1.6 ms instead of 0.18 ms, 20,000 rows, nprobe 16).
    """
    return getattr(faiss, "IO_FLAG_MMAP_IFC", faiss.IO_FLAG_MMAP)


def top_rows(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest scores, best first; equal scores in row order."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    part = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    order = np.lexsort((part, -scores[part]))
    return part[order].astype(np.int64)


def _new_index(settings: dict, dim: int):
    faiss = _faiss()
    if settings["kind"] == "hnsw":
        coarse = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
    else:
        coarse = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(coarse, dim, settings["nlist"], settings["pq_m"],
                             settings["pq_nbits"], faiss.METRIC_INNER_PRODUCT)
    index.own_fields = True
    coarse.this.disown()  # the IVF index frees its quantiser
    return index


def _trained_rows(root: Path) -> int | None:
    import json

    try:
        return json.loads((root / "manifest.json").read_text())["vectors"]["trained_rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _faiss():
    try:
        import faiss
    except ImportError:
        raise AnnUnavailableError(
            "an approximate (ANN) index needs faiss, which is not installed",
            hint="pip install 'vo_clip[ann]' (faiss-cpu), or build with --ann none") from None
    return faiss
