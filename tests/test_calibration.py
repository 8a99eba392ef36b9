"""The match probability: its pieces are exact, it ranks as the cosine does, it is fitted
only where the archive says what its previews show, and only on training proposals."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_ARCHITECTURE

from vo_clip.archive.demo import build_demo_archive
from vo_clip.ml.model import create_model, load_model
from vo_clip.ml.pairs import archive_pairs
from vo_clip.search.calibration import (MatchCalibration, ScoreMoments, fit_logistic,
                                        fit_match_calibration, load_calibration)
from vo_clip.search.index import EmbeddingIndex, build_index
from vo_clip.vo.faults import UsageFault
from vo_clip.vo.tap import TapService


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(n, d)) + 0.5  # not centred
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_query_moments_are_the_mean_and_spread_of_its_cosines():
    rows, queries = unit_rows(500, 16, 0), unit_rows(7, 16, 1)
    mean, std = ScoreMoments.of(rows).query_features(queries)
    cosines = queries.astype(np.float64) @ rows.T.astype(np.float64)
    np.testing.assert_allclose(mean, cosines.mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(std, cosines.std(axis=1), atol=1e-6)


def test_moments_of_a_sample_stay_close_to_the_full_ones():
    rows, queries = unit_rows(4000, 16, 2), unit_rows(5, 16, 3)
    full = ScoreMoments.of(rows).query_features(queries)
    sampled = ScoreMoments.of(rows, sample=1000).query_features(queries)
    np.testing.assert_allclose(sampled[0], full[0], atol=0.01)
    np.testing.assert_allclose(sampled[1], full[1], rtol=0.1)


def test_newton_recovers_a_known_logistic_model():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(200_000, 3))
    truth = np.array([2.0, -1.0, 0.5, -0.7])
    y = rng.random(len(x)) < 1 / (1 + np.exp(-(x @ truth[:3] + truth[3])))
    np.testing.assert_allclose(fit_logistic(x, y), truth, atol=0.05)


def test_probability_ranks_as_the_cosine_and_is_bounded():
    calibration = MatchCalibration((26.0, -30.0, -17.0, -3.0), 1, 1, 1, "test")
    cosines = np.random.default_rng(5).uniform(-0.3, 0.6, 1000)
    p = calibration.probability(cosines, 0.05, 0.04)
    assert np.all((p >= 0) & (p <= 1))
    assert np.array_equal(np.argsort(-p, kind="stable"), np.argsort(-cosines, kind="stable"))


def test_roc_auc_counts_ties_half_and_matches_its_definition():
    from vo_clip.ml.evaluate import roc_auc

    rng = np.random.default_rng(9)
    scores = rng.integers(0, 5, 300).astype(float)  # many ties
    hits = rng.random(300) < 0.3
    pairs = scores[hits][:, None] - scores[~hits][None, :]
    expected = ((pairs > 0).sum() + 0.5 * (pairs == 0).sum()) / pairs.size
    assert roc_auc(scores, hits) == pytest.approx(expected)
    with pytest.raises(ValueError, match="both hits and misses"):
        roc_auc(scores, np.zeros(300, bool))


def test_fit_refuses_labels_with_nothing_to_learn():
    rows, captions = unit_rows(20, 8, 6), unit_rows(3, 8, 7)
    moments = ScoreMoments.of(rows)
    for labels in (np.zeros((3, 20), bool), np.ones((3, 20), bool)):
        with pytest.raises(ValueError, match="matching and non-matching"):
            fit_match_calibration(captions, labels, rows, moments, basis="")
    with pytest.raises(ValueError, match="labels are"):
        fit_match_calibration(captions, np.zeros((2, 20), bool), rows, moments, basis="")


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    return build_demo_archive(tmp_path_factory.mktemp("calibration") / "archive",
                              n_observations=80, n_proposals=16, preview_size=48, workers=1,
                              progress=False)


def test_an_index_of_a_labelled_archive_is_calibrated_on_training_proposals_only(
        small_demo, tmp_path):
    pairs = archive_pairs(small_demo)
    held_out = sorted(set(pairs.proposals))[:4]
    path = tmp_path / "model.safetensors"
    create_model(TINY_ARCHITECTURE, seed=0, name="tiny").save(
        path, training_data={"validation_proposals": held_out})
    index = build_index(small_demo, load_model(str(path)), tmp_path / "index",
                        progress=False).index
    calibration = index.calibration
    training = ~np.isin(pairs.proposals, held_out)
    assert calibration is not None
    assert calibration.rows == int(training.sum())
    assert calibration.queries == len(set(pairs.proposals[training]))
    assert "truth.csv" in calibration.basis
    assert index.describe()["match_calibration"]["rows"] == calibration.rows
    # the probability of a query is the calibration applied to its exact cosines
    vector = unit_rows(1, index.manifest.embed_dim, 8)[0]
    cosines = np.asarray(index.embeddings) @ vector
    p = index.match_probability(vector, cosines)
    mean, std = cosines.astype(np.float64).mean(), cosines.astype(np.float64).std()
    np.testing.assert_allclose(p, calibration.probability(cosines, mean, std), atol=1e-5)
    # a reopened index reads the same fit
    assert EmbeddingIndex.open(index.root).calibration == calibration


def test_an_index_without_truth_has_moments_but_no_probability(tiny_index):
    moments, calibration = load_calibration(tiny_index)
    assert moments is not None and calibration is None
    index = EmbeddingIndex.open(tiny_index)
    assert index.match_probability(np.ones(index.manifest.embed_dim), np.zeros(3)) is None
    service = TapService(index)
    assert not service.match_calibrated
    with pytest.raises(UsageFault, match="vo_clip_match: this service's index has no match"):
        service.execute({"LANG": "ADQL", "QUERY": "SELECT TOP 3 obs_id, "
                         "vo_clip_match('a galaxy') AS p FROM ivoa.ObsCore ORDER BY p DESC"},
                        base_url="http://127.0.0.1")

