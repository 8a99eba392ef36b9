"""The index directory: every observation's embedding, its catalog row, and provenance.

Layout::

    INDEX/
      manifest.json     the model and archive it was built from (names + fingerprints)
      embeddings.npy    float32 [n_observations, embed_dim], unit rows, memory-mapped
      catalog.sqlite    the observations (row i ↔ embedding i) and each preview's sha256
      vectors.faiss     only with ``--ann``: a faiss IVF-PQ index of the same rows
                        (ids = row numbers), memory-mapped; see :mod:`.vectors`
      score_moments.npz       the rows' mean and covariance, and
      match_calibration.json  where the archive has truth.csv: the match probability
                              of text queries; see :mod:`.calibration`

A fresh process opens an index without recomputing anything: ``np.load(mmap_mode="r")``
maps the matrix and the operating system pages it in on first use. An index is tied to
one model: vectors of two models live in different spaces, so building refuses to add
to an index made with another model, and searching refuses a model that differs from
the manifest's.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import ArchiveError, IndexDamagedError, IndexMismatchError, IndexMissingError
from ..hashing import sha256_file
from ..timestamps import utc_seconds
from .calibration import calibrate_index, load_calibration, write_calibration
from .catalog import Catalog
from .vectors import FAISS_FILE, AnnSettings, VectorIndex, build_faiss, open_vectors

__all__ = ["EmbeddingIndex", "IndexBuild", "IndexManifest", "build_index"]

MANIFEST = "manifest.json"
EMBEDDINGS = "embeddings.npy"
CATALOG = "catalog.sqlite"
FORMAT = 1


@dataclass(frozen=True)
class IndexManifest:
    """Provenance of an index: which model embedded which archive, when."""

    model: dict
    archive: dict
    count: int
    embed_dim: int
    created: str
    vo_clip_version: str = __version__
    format: int = FORMAT
    #: the vector index: {"kind": "none"} (exact) or an ANN index's kind and parameters
    vectors: dict = field(default_factory=lambda: {"kind": "none"})

    @property
    def model_fingerprint(self) -> str:
        return self.model["fingerprint"]


class EmbeddingIndex:
    """An opened index: a memory-mapped embedding matrix, its vector index and catalog.

    ``vectors`` is what scores rows (exact, or an ANN index when the manifest names
    one); ``embeddings`` stays the exact matrix whichever it is. ``moments`` and
    ``calibration`` turn a text query's cosines into match probabilities
    (:mod:`.calibration`); either is None for an index that has none.
    """

    def __init__(self, root: Path, manifest: IndexManifest, embeddings: np.ndarray,
                 catalog: Catalog, vectors: VectorIndex | None = None):
        self.root = root
        self.manifest = manifest
        self.embeddings = embeddings
        self.catalog = catalog
        self.vectors = vectors if vectors is not None else open_vectors(
            root, manifest.vectors, embeddings)
        self.moments, self.calibration = load_calibration(root)

    def match_probability(self, vector: np.ndarray, cosines: np.ndarray) -> np.ndarray | None:
        """P(match) of a text query's ``cosines`` (any rows), or None without a calibration."""
        if self.moments is None or self.calibration is None:
            return None
        mean, std = self.moments.query_features(vector)
        return self.calibration.probability(cosines, float(mean[0]), float(std[0]))

    @classmethod
    def open(cls, root: str | os.PathLike) -> "EmbeddingIndex":
        """Open the index in ``root`` without loading the embeddings into memory.

        Each file is checked enough to be trusted: the manifest parses, the embeddings
        file holds the matrix it announces, the catalog is a database whose last row is
        the manifest's last observation. A file that fails names itself in the error.

        Raises
        ------
        IndexMissingError
            If ``root`` holds no index at all.
        IndexDamagedError
            If one of its files is missing, truncated, garbage or unreadable.
        """
        root = Path(root).expanduser()
        present = [name for name in (MANIFEST, EMBEDDINGS, CATALOG) if (root / name).exists()]
        if not present:
            raise IndexMissingError(f"no index at {root}", hint="build one with 'vo-clip index'")
        for name in (MANIFEST, EMBEDDINGS, CATALOG):
            if not (root / name).is_file():
                raise _damaged(root, name, "it is missing" if name not in present
                               else "it is not a file")
        try:
            manifest = IndexManifest(**json.loads((root / MANIFEST).read_text()))
            if not isinstance(manifest.model.get("fingerprint"), str) or not all(
                    isinstance(v, int) and v >= 0 for v in (manifest.count, manifest.embed_dim)):
                raise ValueError("its model fingerprint, count or embed_dim is missing")
            if not isinstance(manifest.vectors, dict):
                raise ValueError("its vectors entry is not an object")
        except OSError as exc:
            raise _damaged(root, MANIFEST, exc.strerror) from None
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise _damaged(root, MANIFEST, f"it is not a valid manifest ({exc})") from None
        try:
            embeddings = np.load(root / EMBEDDINGS, mmap_mode="r", allow_pickle=False)
        except OSError as exc:
            raise _damaged(root, EMBEDDINGS, exc.strerror or str(exc)) from None
        except (ValueError, EOFError) as exc:
            raise _damaged(root, EMBEDDINGS, "it is truncated" if "length" in str(exc)
                           else "it is not an .npy matrix") from None
        if embeddings.shape != (manifest.count, manifest.embed_dim):
            raise _damaged(root, EMBEDDINGS, f"its matrix is {embeddings.shape}, the manifest "
                           f"says ({manifest.count}, {manifest.embed_dim})")
        try:
            catalog = Catalog(root / CATALOG)
        except sqlite3.Error as exc:
            raise _damaged(root, CATALOG, str(exc)) from None
        index = cls(root, manifest, embeddings, catalog,
                    open_vectors(root, manifest.vectors, embeddings))
        problem = index._problem()
        if problem:
            raise _damaged(root, *problem)
        return index

    def problem(self) -> str | None:
        """Why the open index can no longer serve (a file damaged since), or None.

        Cheap enough for every health check: the embeddings file's size and one read
        at the end of the catalog, where a truncation shows first. (A query reading
        past the end of a truncated memory-mapped file would crash the process.)
        """
        problem = self._problem()
        return None if problem is None else f"{problem[0]}: {problem[1]}"

    def _problem(self) -> tuple[str, str] | None:
        """(file name, what is wrong with it), or None."""
        path = getattr(self.embeddings, "filename", None)
        if path is not None:
            try:
                size = os.stat(path).st_size
            except OSError as exc:
                return EMBEDDINGS, exc.strerror or str(exc)
            if size < self.embeddings.offset + self.embeddings.nbytes:
                return EMBEDDINGS, "it is shorter than its matrix (truncated)"
        damaged = self.catalog.file_problem()
        if damaged is not None:
            return CATALOG, damaged
        if not self.catalog.columns:
            return CATALOG, "it holds no observations table"
        try:
            last = self.catalog.last_row()
        except sqlite3.Error as exc:
            return CATALOG, str(exc)
        if last != (len(self) - 1 if len(self) else None):
            return CATALOG, f"it does not hold the {len(self)} observations it was built with"
        return None

    def __len__(self) -> int:
        return self.manifest.count

    def check_model(self, fingerprint: str, name: str) -> None:
        """Refuse a model other than the one the index was built with.

        Raises
        ------
        IndexMismatchError
            If ``fingerprint`` differs from the manifest's.
        """
        if fingerprint != self.manifest.model_fingerprint:
            raise IndexMismatchError(
                f"index at {self.root} was built with model {self.manifest.model['name']!r} "
                f"({self.manifest.model_fingerprint[:12]}), not {name!r} ({fingerprint[:12]})",
                hint="use the same --model, or rebuild the index with 'vo-clip index --rebuild'",
            )

    def preview_hashes(self) -> dict[str, str]:
        with sqlite3.connect(f"file:{self.root / CATALOG}?mode=ro", uri=True) as db:
            return dict(db.execute("SELECT obs_id, sha256 FROM preview_hashes"))

    def describe(self) -> dict:
        return {"path": str(self.root), **asdict(self.manifest),
                "vectors": self.vectors.describe(),
                "match_calibration": (None if self.calibration is None
                                      else asdict(self.calibration))}


@dataclass(frozen=True)
class IndexBuild:
    """The outcome of :func:`build_index`: the opened index and how much was reused."""

    index: EmbeddingIndex
    embedded: int
    reused: int


def build_index(archive, model, out: str | os.PathLike, *, rebuild: bool = False,
                batch_size: int | None = None, workers: int | None = None,
                progress: bool = True, ann: AnnSettings | None = None,
                engine: str = "local", ray_address: str | None = None,
                ray_actors: int | None = None) -> IndexBuild:
    """Embed every preview of ``archive`` with ``model`` into the index directory ``out``.

    An existing index built with the same model is reused: observations whose preview
    bytes are unchanged keep their vectors, so re-running after the archive grows embeds
    only the new previews. ``batch_size`` and ``workers`` (decoding threads) go to
    :meth:`~vo_clip.ml.model.ClipModel.encode_images`; by default they suit the model's
    device (large batches on a GPU) and its cores (a thread per core, at most 8).

    ``ann`` chooses the vector index (default: the existing index's, else ``auto``:
    exact below :data:`~.vectors.ANN_THRESHOLD` rows). An existing ANN index of the same
    kind and shape is extended rather than retrained: when the archive only grew, its
    new rows are added; otherwise every row is added again to its trained quantisers.
    ``engine="ray"`` embeds on Ray (:mod:`.embed_ray`) with the same vectors.

    Raises
    ------
    IndexMismatchError
        If ``out`` holds an index built with another model and ``rebuild`` is false.
    """
    out = Path(out).expanduser()
    old = _previous_index(out, model, rebuild)
    previous = _previous_vectors(old)
    hashes = [_sha256(archive.preview_path(i)) for i in range(len(archive))]
    work = out.with_name(out.name + ".partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    matrix = np.lib.format.open_memmap(work / EMBEDDINGS, mode="w+", dtype=np.float32,
                                       shape=(len(archive), model.embed_dim))
    todo = []
    for row, (obs_id, digest) in enumerate(zip(archive.obs_ids, hashes)):
        if previous.get(obs_id, (None,))[0] == digest:
            matrix[row] = previous[obs_id][1]
        else:
            todo.append(row)
    if todo and engine == "ray":
        from .embed_ray import embed_rows

        embed_rows(archive, model, todo, matrix, batch_size=batch_size, workers=workers,
                   address=ray_address, actors=ray_actors, progress=progress)
    elif todo:
        matrix[todo] = model.encode_images(
            (archive.preview_path(r) for r in todo), batch_size=batch_size, workers=workers,
            total=len(todo), progress="embedding previews" if progress else None)
    matrix.flush()
    if ann is None or ann.kind is None:  # what the existing index was asked for, else auto
        before = old.manifest.vectors if old is not None else {}
        tuned = ann or AnnSettings(None)
        ann = AnnSettings(before.get("requested", "auto"),  # indexes made before --ann: auto
                          nlist=tuned.nlist, nprobe=tuned.nprobe or before.get("nprobe"),
                          pq_m=tuned.pq_m or before.get("pq_m"))
    vectors = _build_vectors(work, matrix, ann, old, archive, hashes)
    write_calibration(work, *calibrate_index(archive, model, matrix))
    del matrix
    Catalog.build(work / CATALOG, archive.table)
    with sqlite3.connect(work / CATALOG) as db:
        db.execute("CREATE TABLE preview_hashes (obs_id TEXT PRIMARY KEY, sha256 TEXT)")
        db.executemany("INSERT INTO preview_hashes VALUES (?, ?)", zip(archive.obs_ids, hashes))
    _write_manifest(work, archive, model, vectors)
    _swap_into_place(work, out)
    return IndexBuild(EmbeddingIndex.open(out), embedded=len(todo),
                      reused=len(archive) - len(todo))


def _build_vectors(work: Path, matrix: np.ndarray, ann: AnnSettings,
                   old: "EmbeddingIndex | None", archive, hashes: list[str]) -> dict:
    """The manifest's ``vectors`` entry, with ``vectors.faiss`` written when ANN."""
    n, dim = matrix.shape
    settings = {**ann.for_rows(n, dim), "requested": ann.kind}
    if settings["kind"] == "none":
        return {"kind": "none", "requested": ann.kind}
    previous = None
    before = old.manifest.vectors if old is not None else {}
    if before.get("kind") == settings["kind"] and all(
            before.get(key) == settings[key] for key in ("pq_m", "pq_nbits")) and (
            ann.nlist is None or before.get("nlist") == ann.nlist):
        settings["nlist"] = before["nlist"]  # the trained lists are kept as they are
        if ann.nprobe is None:
            settings["nprobe"] = before.get("nprobe", settings["nprobe"])
        old_ids = old.catalog.fetch(np.arange(len(old)), ["obs_id"])["obs_id"]
        old_hashes = old.preview_hashes()
        unchanged_prefix = len(old) <= n and all(
            str(old_ids[r]) == archive.obs_ids[r] and old_hashes.get(str(old_ids[r])) ==
            hashes[r] for r in range(len(old)))
        previous = (old.root / FAISS_FILE, len(old) if unchanged_prefix else 0)
    return build_faiss(matrix, work, settings, previous=previous)


def _damaged(root: Path, name: str, reason: str) -> IndexDamagedError:
    return IndexDamagedError(f"index file {root / name} is damaged: {reason}",
                             hint=_rebuild_hint(root))


def _rebuild_hint(root: Path) -> str:
    return (f"rebuild the index: vo-clip index --rebuild --out {root} (with --archive "
            "ARCHIVE unless it is the default demo index)")


def _previous_index(out: Path, model, rebuild: bool) -> "EmbeddingIndex | None":
    """The existing index in ``out`` if it was built with ``model`` and is sound."""
    if rebuild or not (out / MANIFEST).is_file():
        return None
    try:
        old = EmbeddingIndex.open(out)
    except (IndexMissingError, IndexMismatchError, IndexDamagedError, ValueError, TypeError):
        return None  # a damaged or foreign-format index is simply rebuilt
    old.check_model(model.fingerprint, model.card.name)
    return old


def _previous_vectors(old: "EmbeddingIndex | None") -> dict[str, tuple[str, np.ndarray]]:
    """obs_id → (preview sha256, vector) of an existing index built with the model."""
    if old is None:
        return {}
    hashes = old.preview_hashes()
    ids = old.catalog.fetch(np.arange(len(old)), ["obs_id"])["obs_id"]
    return {str(i): (hashes.get(str(i)), np.array(old.embeddings[row]))
            for row, i in enumerate(ids)}


def _write_manifest(root: Path, archive, model, vectors: dict) -> None:
    manifest = IndexManifest(
        model={"name": model.card.name, "fingerprint": model.fingerprint,
               "base": model.card.base, "spec": model.spec},
        archive={"name": archive.name, "path": str(archive.root.resolve()),
                 "fingerprint": archive.fingerprint},
        count=len(archive),
        embed_dim=model.embed_dim,
        created=utc_seconds(),
        vectors=vectors,
    )
    (root / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2) + "\n")


def _swap_into_place(work: Path, out: Path) -> None:
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(work, out)
    shutil.rmtree(old, ignore_errors=True)


def _sha256(path: Path) -> str:
    try:
        return sha256_file(path)
    except OSError as exc:
        raise ArchiveError(f"cannot read preview {path}: {exc.strerror}") from exc
