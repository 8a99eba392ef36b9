"""The VectorIndex seam: exact and faiss ANN vectors, filters, the manifest, increments."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import BACKENDS, run_cli, tap_on_backend, write_tiny_archive

from vo_clip.archive import Archive
from vo_clip.ml.model import load_model
from vo_clip.search import vectors as vectors_module
from vo_clip.search.calibration import MatchCalibration, load_calibration, write_calibration
from vo_clip.search.catalog import SearchFilter
from vo_clip.search.engine import SearchEngine
from vo_clip.search.index import EmbeddingIndex, build_index
from vo_clip.search.vectors import (AnnSettings, ExactVectors, FaissVectors, build_faiss,
                                    open_vectors, top_rows)

faiss = pytest.importorskip("faiss", reason="missing tool: faiss-cpu (pip install "
                            "'vo_clip[ann]')")


def clustered(n: int, dim: int = 64, clusters: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim))
    points = centres[rng.integers(clusters, size=n)] + 0.4 * rng.standard_normal((n, dim))
    return (points / np.linalg.norm(points, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def ann(tmp_path_factory):
    """8,000 clustered 64-d vectors on disk, their IVF-PQ index, and 40 queries."""
    root = tmp_path_factory.mktemp("ann")
    np.save(root / "embeddings.npy", clustered(8000))
    matrix = np.load(root / "embeddings.npy", mmap_mode="r")
    settings = build_faiss(matrix, root, AnnSettings("ivf-pq").for_rows(len(matrix), 64))
    queries = clustered(40, seed=1)
    return open_vectors(root, settings, matrix), queries


def test_exact_vectors_rank_every_row_and_respect_allowed_rows():
    matrix = clustered(500)
    vectors = ExactVectors(matrix)
    query = matrix[7]
    rows, scores, approximate = vectors.top(query, 5)
    assert not approximate and rows[0] == 7
    np.testing.assert_array_equal(rows, top_rows(matrix @ query, 5))
    np.testing.assert_allclose(scores, matrix[rows] @ query, rtol=1e-6)
    allowed = np.arange(1, 500, 3)
    rows, _, _ = vectors.top(query, 5, allowed_rows=allowed)
    np.testing.assert_array_equal(rows, allowed[top_rows(matrix[allowed] @ query, 5)])


def test_ann_finds_nearly_what_the_exact_scan_finds(ann):
    vectors, queries = ann
    assert isinstance(vectors, FaissVectors) and vectors.approximate
    exact = ExactVectors(vectors.embeddings)
    recalls = []
    for query in queries:
        rows, scores, approximate = vectors.top(query, 10)
        assert approximate and len(rows) == 10
        # the scores are the exact cosines of the rows returned, best first
        np.testing.assert_allclose(scores, vectors.embeddings[rows] @ query, rtol=1e-5)
        assert np.all(np.diff(scores) <= 0)
        recalls.append(len(np.intersect1d(rows, exact.top(query, 10)[0])) / 10)
    assert np.mean(recalls) >= 0.9, recalls


def test_ann_scores_every_row_exactly(ann):
    vectors, queries = ann
    np.testing.assert_array_equal(vectors.scores(queries[0]),
                                  vectors.embeddings @ queries[0])


def test_a_filter_on_the_ann_index_keeps_only_allowed_rows(ann, monkeypatch):
    """The ID-selector path: every hit passes, and a sparse filter still gets k rows."""
    vectors, queries = ann
    monkeypatch.setattr(vectors_module, "EXACT_SUBSET_ROWS", 0)
    for allowed, k in ((np.arange(0, 8000, 2), 10), (np.arange(3, 8000, 201), 9)):
        # 40 scattered rows: the probed lists hold fewer than 9 of them, so it probes more
        rows, scores, approximate = vectors.top(queries[0], k, allowed_rows=allowed)
        assert approximate and len(rows) == k
        assert set(rows.tolist()) <= set(allowed.tolist())
        np.testing.assert_allclose(scores, vectors.embeddings[rows] @ queries[0], rtol=1e-5)


def test_a_small_filter_is_scored_exactly(ann):
    vectors, queries = ann
    allowed = np.arange(0, 8000, 7)  # 1,143 rows: below EXACT_SUBSET_ROWS
    rows, _, approximate = vectors.top(queries[0], 10, allowed_rows=allowed)
    assert not approximate
    np.testing.assert_array_equal(
        rows, ExactVectors(vectors.embeddings).top(queries[0], 10, allowed_rows=allowed)[0])


def test_auto_stays_exact_below_the_threshold():
    assert AnnSettings("auto").for_rows(vectors_module.ANN_THRESHOLD - 1, 512)["kind"] == "none"
    assert AnnSettings("auto").for_rows(vectors_module.ANN_THRESHOLD, 512)["kind"] == "ivf-pq"


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return load_model(str(tiny_model_path))


def grown_archive(root, n):
    """The first rows of a tiny archive of ``n`` are those of any smaller one (same seed)."""
    return write_tiny_archive(root, n=n)


def test_an_ann_index_is_recorded_searched_and_marked_approximate(tmp_path, model):
    archive = grown_archive(tmp_path / "archive", 60)
    built = build_index(archive, model, tmp_path / "index", progress=False,
                        ann=AnnSettings("ivf-pq"))
    manifest = json.loads((tmp_path / "index" / "manifest.json").read_text())
    assert manifest["vectors"]["kind"] == "ivf-pq"
    assert {"nlist", "nprobe", "pq_m", "pq_nbits"} <= set(manifest["vectors"])
    index = EmbeddingIndex.open(tmp_path / "index")
    assert isinstance(index.vectors, FaissVectors) and index.vectors.approximate
    assert index.describe()["vectors"]["kind"] == "ivf-pq"
    # the exact matrix is still there for TAP's similarity columns and --like
    assert index.embeddings.shape == (60, model.embed_dim)
    engine = SearchEngine(index, model)
    hits = engine.search_vector(index.embeddings[5], top=5)
    assert hits.approximate and hits.rows[0] == 5
    filtered = engine.search_vector(index.embeddings[5], top=5,
                                    search_filter=SearchFilter(instrument="WFC3"))
    instruments = index.catalog.fetch(filtered.rows, ["instrument_name"])["instrument_name"]
    assert len(filtered) == 5 and all(str(i).startswith("WFC3") for i in instruments)
    assert built.embedded == 60


def test_adding_previews_extends_the_trained_ann_index(tmp_path, model):
    build_index(grown_archive(tmp_path / "a60", 60), model, tmp_path / "index",
                progress=False, ann=AnnSettings("ivf-pq"))
    before = faiss.read_index(str(tmp_path / "index" / "vectors.faiss"))
    grown = build_index(grown_archive(tmp_path / "a80", 80), model, tmp_path / "index",
                        progress=False)  # no --ann: the index keeps its kind
    assert (grown.embedded, grown.reused) == (20, 60)
    settings = grown.index.manifest.vectors
    assert settings["kind"] == "ivf-pq"
    assert settings["trained_rows"] == 60 and settings["added_rows"] == 20
    after = faiss.read_index(str(tmp_path / "index" / "vectors.faiss"))
    assert after.ntotal == 80
    ivf_before, ivf_after = faiss.downcast_index(before), faiss.downcast_index(after)
    np.testing.assert_array_equal(faiss.vector_to_array(ivf_before.pq.centroids),
                                  faiss.vector_to_array(ivf_after.pq.centroids))
    np.testing.assert_array_equal(ivf_before.quantizer.reconstruct_n(0, ivf_before.nlist),
                                  ivf_after.quantizer.reconstruct_n(0, ivf_after.nlist))
    # the new rows are found through the index
    assert grown.index.vectors.top(grown.index.embeddings[75], 1)[0][0] == 75


def test_a_changed_preview_readds_every_row_without_retraining(tmp_path, model):
    archive = grown_archive(tmp_path / "archive", 60)
    build_index(archive, model, tmp_path / "index", progress=False, ann=AnnSettings("ivf-pq"))
    moments, _ = load_calibration(tmp_path / "index")  # no truth.csv: a fixed calibration
    calibration = MatchCalibration((26.0, -30.0, -17.0, -3.0), 0, 0, 0, "fixed")
    write_calibration(tmp_path / "index", moments, calibration)
    (tmp_path / "archive" / "previews" / "obs003.png").write_bytes(
        (tmp_path / "archive" / "previews" / "obs004.png").read_bytes())
    again = build_index(Archive.open(tmp_path / "archive"), model, tmp_path / "index",
                        progress=False)
    assert again.embedded == 1
    assert again.index.manifest.vectors["trained_rows"] == 60
    assert again.index.manifest.vectors["added_rows"] == 60
    # obs003 now shows obs004 (embedded alone, not in a batch of 32: float32 sums differ)
    np.testing.assert_allclose(again.index.embeddings[3], again.index.embeddings[4], atol=1e-6)


def test_ann_none_goes_back_to_exact(tmp_path, model):
    archive = grown_archive(tmp_path / "archive", 40)
    build_index(archive, model, tmp_path / "index", progress=False, ann=AnnSettings("ivf-pq"))
    exact = build_index(archive, model, tmp_path / "index", progress=False,
                        ann=AnnSettings("none"))
    assert isinstance(exact.index.vectors, ExactVectors) and exact.reused == 40
    assert not (tmp_path / "index" / "vectors.faiss").exists()


def test_a_missing_faiss_file_names_itself(tmp_path, model):
    archive = grown_archive(tmp_path / "archive", 40)
    build_index(archive, model, tmp_path / "index", progress=False, ann=AnnSettings("ivf-pq"))
    (tmp_path / "index" / "vectors.faiss").unlink()
    with pytest.raises(Exception, match="vectors.faiss is damaged: it is missing"):
        EmbeddingIndex.open(tmp_path / "index")


def test_the_cli_builds_and_describes_an_ann_index(tmp_path, tiny_model_path):
    write_tiny_archive(tmp_path / "archive", n=80)  # 80 rows: 2 lists of >= 39
    result = run_cli("index", "--archive", str(tmp_path / "archive"), "--model",
                     str(tiny_model_path), "--out", str(tmp_path / "index"), "--ann", "ivf-pq",
                     "--ann-nlist", "2", "--ann-nprobe", "2", home=tmp_path / "home")
    assert "ivf-pq ANN, nlist 2, nprobe 2" in result.stdout
    env = {**os.environ, "VO_CLIP_HOME": str(tmp_path / "home"),
           "VO_CLIP_INDEX": str(tmp_path / "index"),
           "VO_CLIP_ARCHIVE": str(tmp_path / "archive")}
    info = subprocess.run([sys.executable, "-m", "vo_clip", "info", "--json"], env=env,
                          capture_output=True, text=True, timeout=300, check=True)
    vectors = json.loads(info.stdout)["index"]["vectors"]
    assert vectors["kind"] == "ivf-pq" and vectors["nprobe"] == 2 and vectors["approximate"]
    bad = run_cli("index", "--archive", str(tmp_path / "archive"), "--model",
                  str(tiny_model_path), "--out", str(tmp_path / "index"), "--ann-pq-m", "5",
                  home=tmp_path / "home", check=False)
    assert bad.returncode != 0 and "does not divide" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_tuning_alone_keeps_the_kind_of_the_index(tmp_path, model):
    archive = grown_archive(tmp_path / "archive", 80)
    build_index(archive, model, tmp_path / "index", progress=False, ann=AnnSettings("ivf-pq"))
    tuned = build_index(archive, model, tmp_path / "index", progress=False,
                        ann=AnnSettings(None, nprobe=1))  # e.g. --ann-nprobe 1 alone
    assert tuned.index.manifest.vectors["kind"] == "ivf-pq"
    assert tuned.index.vectors.nprobe == 1 and tuned.reused == 80


def test_the_hnsw_coarse_quantiser_finds_what_ivf_pq_finds(ann, tmp_path):
    ivf_pq, queries = ann
    settings = build_faiss(ivf_pq.embeddings, tmp_path,
                           AnnSettings("hnsw").for_rows(len(ivf_pq), 64))
    hnsw = open_vectors(tmp_path, settings, ivf_pq.embeddings)
    assert "HNSW" in type(faiss.downcast_index(hnsw._ivf.quantizer)).__name__
    exact = ExactVectors(ivf_pq.embeddings)
    recall = np.mean([len(np.intersect1d(hnsw.top(q, 10)[0], exact.top(q, 10)[0])) / 10
                      for q in queries])
    assert recall >= 0.9


@pytest.mark.parametrize("backend", BACKENDS)
def test_tap_ranks_through_the_ann_index_and_says_so(tmp_path, model, request, backend,
                                                     monkeypatch):
    from vo_clip.vo import tap as tap_module

    archive = grown_archive(tmp_path / "archive", 60)
    build_index(archive, model, tmp_path / "index", progress=False, ann=AnnSettings("ivf-pq"))
    moments, _ = load_calibration(tmp_path / "index")  # no truth.csv: a fixed calibration
    calibration = MatchCalibration((26.0, -30.0, -17.0, -3.0), 0, 0, 0, "fixed")
    write_calibration(tmp_path / "index", moments, calibration)
    # 60 rows are below the candidate ceiling: let the small index use candidates anyway
    monkeypatch.setattr(tap_module, "_CANDIDATE_CEILING", 1.0)
    monkeypatch.setattr(tap_module, "_MIN_CANDIDATES", 4)
    monkeypatch.setattr(tap_module, "_CANDIDATE_FACTOR", 2)
    query = ("SELECT TOP 5 obs_id, instrument_name, vo_clip_similarity('q') AS s "
             "FROM ivoa.ObsCore {} ORDER BY s {}")
    with tap_on_backend(request, backend, tmp_path / "index") as tap:
        vector = np.asarray(tap.index.embeddings[5])
        exact = tap.index.embeddings @ vector

        def run(where="", order="DESC"):
            return tap.execute({"LANG": "ADQL", "QUERY": query.format(where, order)},
                               base_url="http://127.0.0.1", query_vectors={"q": vector})

        ranked = run()
        assert ranked.approximate and ranked.rows[0][0] == "obs005"
        rows = [int(r[0][3:]) for r in ranked.rows]
        np.testing.assert_allclose([r[2] for r in ranked.rows], exact[rows], rtol=1e-6)
        document = b"".join(ranked.render()).decode()
        assert 'name="APPROXIMATE"' in document and "scores shown are exact" in document
        filtered = run("WHERE instrument_name LIKE 'WFC3%'")
        assert len(filtered.rows) == 5 and all(r[1].startswith("WFC3") for r in filtered.rows)
        scores = [r[2] for r in filtered.rows]
        assert scores == sorted(scores, reverse=True)
        worst = run(order="ASC")  # ANN finds the nearest rows only: the farthest are exact
        assert not worst.approximate
        assert [int(r[0][3:]) for r in worst.rows] == list(np.argsort(exact, kind="stable")[:5])
        assert 'name="APPROXIMATE"' not in b"".join(worst.render()).decode()
        # vo_clip_match ranks through the ANN index as the similarity does, calibrated
        matched = tap.execute({"LANG": "ADQL", "QUERY": "SELECT TOP 5 obs_id, "
                               "vo_clip_match('q') AS p FROM ivoa.ObsCore ORDER BY p DESC"},
                              base_url="http://127.0.0.1", query_vectors={"q": vector})
        assert matched.approximate
        assert [r[0] for r in matched.rows] == [r[0] for r in ranked.rows]
        mean, std = moments.query_features(vector)
        np.testing.assert_allclose([r[1] for r in matched.rows], calibration.probability(
            exact[rows], float(mean[0]), float(std[0])), rtol=1e-6)
