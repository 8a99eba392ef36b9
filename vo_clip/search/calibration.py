"""A match probability for text queries: the cosine turned into a calibrated chance.

Raw cosines do not read the same from one query to the next: a query in the captions'
words lifts every preview a little, a metaphor far from them lifts none, so a hit of one
query can score below a miss of another. What moves between queries is mostly where the
query's scores over the archive sit and how wide they spread, and both follow from the
query vector alone: over the index's unit rows ``p``, the mean of ``q·p`` is ``q·μ`` and
its variance ``qᵀΣq``, with ``μ`` and ``Σ`` the rows' mean and covariance (kept with the
index, so every backend, exact or approximate, gets them without scoring every row).

The probability is a logistic model of those three numbers,

    P(match) = σ(a·cos + b·q·μ + c·sqrt(qᵀΣq) + d),

fitted where the answer is known: the captions of the proposals the model was trained on
stand in for queries, and a preview matches when it shows the same kind of scene
(``truth.csv``; proposals the model card holds out are left out of the fit, so the
evaluation on them stays clean). For one query it is an increasing function of the
cosine, so it ranks exactly as the cosine does; across queries it is comparable, which
the cosine is not. An archive without ``truth.csv`` (or without captions) has the
moments but no fit, and its queries carry no probability.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

__all__ = ["MatchCalibration", "ScoreMoments", "calibrate_index", "fit_logistic",
           "fit_match_calibration", "load_calibration", "write_calibration"]

MOMENTS_FILE = "score_moments.npz"
CALIBRATION_FILE = "match_calibration.json"

#: Rows beyond this many are sampled (seeded) for the moments: their error is then far
#: below the spread between queries, and the covariance costs O(n·d²).
MOMENTS_SAMPLE = 200_000


@dataclass(frozen=True)
class ScoreMoments:
    """Mean vector and covariance of an index's unit rows (float64 in memory, float32 on
    disk: a query's moments then cost one matrix-vector product, no conversion)."""

    mean: np.ndarray  # (d,)
    covariance: np.ndarray  # (d, d)

    def __post_init__(self):
        object.__setattr__(self, "mean", np.asarray(self.mean, dtype=np.float64))
        object.__setattr__(self, "covariance", np.asarray(self.covariance, dtype=np.float64))

    @classmethod
    def of(cls, rows: np.ndarray, *, sample: int = MOMENTS_SAMPLE, seed: int = 0) -> "ScoreMoments":
        rows = np.asarray(rows)
        if len(rows) > sample:
            picked = np.sort(np.random.default_rng(seed).choice(len(rows), sample, replace=False))
            rows = rows[picked]
        rows = np.asarray(rows, dtype=np.float64)
        mean = rows.mean(axis=0)
        centred = rows - mean
        covariance = centred.T @ centred / len(rows)
        # as stored: float32, so a fresh fit and a reopened index give the same numbers
        return cls(mean.astype(np.float32), covariance.astype(np.float32))

    def query_features(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each query's mean and standard deviation of its cosines over the rows."""
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        mean = vectors @ self.mean
        variance = np.sum((vectors @ self.covariance) * vectors, axis=1)
        return mean, np.sqrt(np.maximum(variance, 0.0))


@dataclass(frozen=True)
class MatchCalibration:
    """The fitted logistic model and what it was fitted on."""

    coefficients: tuple[float, float, float, float]  # a (cosine), b (mean), c (std), d
    queries: int  # captions used as queries
    rows: int  # previews scored against each
    matches: int  # (caption, preview) pairs of the same kind
    basis: str

    def probability(self, cosines: np.ndarray, query_mean: float,
                    query_std: float) -> np.ndarray:
        """P(match) of one query's ``cosines`` (any shape).

        In float64: float32 would round probabilities near 1 to ties that the cosines
        do not have, and ``ORDER BY`` the probability would then not rank as they do.
        """
        a, b, c, d = self.coefficients
        logit = a * np.asarray(cosines, dtype=np.float64) + (b * query_mean + c * query_std + d)
        return _sigmoid(logit)


def fit_logistic(features: np.ndarray, labels: np.ndarray, *, iterations: int = 50,
                 ridge: float = 1e-6) -> np.ndarray:
    """Weights (last one the intercept) of a logistic regression, by Newton's method.

    Four features and a million rows need no optimiser library: each Newton step is a
    5×5 solve, and the log-likelihood of a logistic model is concave, so it converges
    from zero in a handful of steps.
    """
    x = np.column_stack([np.asarray(features, dtype=np.float64), np.ones(len(features))])
    y = np.asarray(labels, dtype=np.float64)
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = _sigmoid(x @ w)
        gradient = x.T @ (y - p)
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(x.shape[1])
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.max(np.abs(step)) < 1e-9:
            break
    return w


def fit_match_calibration(caption_vectors: np.ndarray, labels: np.ndarray,
                          row_vectors: np.ndarray, moments: ScoreMoments, *,
                          basis: str) -> MatchCalibration:
    """Fit P(match) on captions as queries against previews whose kinds are known.

    ``labels[i, j]`` says whether preview ``j`` matches caption ``i``.

    Raises
    ------
    ValueError
        If no pair matches or every pair does: the model would have nothing to learn.
    """
    caption_vectors = np.asarray(caption_vectors, dtype=np.float32)
    row_vectors = np.asarray(row_vectors, dtype=np.float32)
    cosines = caption_vectors @ row_vectors.T
    labels = np.asarray(labels, dtype=bool)
    if labels.shape != cosines.shape:
        raise ValueError(f"labels are {labels.shape}, the captions and previews "
                         f"{cosines.shape}")
    matches = int(labels.sum())
    if matches == 0 or matches == labels.size:
        raise ValueError("the captions and previews must include both matching and "
                         "non-matching kinds")
    mean, std = moments.query_features(caption_vectors)
    features = np.column_stack([cosines.ravel(), np.repeat(mean, cosines.shape[1]),
                                np.repeat(std, cosines.shape[1])])
    weights = fit_logistic(features, labels.ravel())
    return MatchCalibration(tuple(float(w) for w in weights), queries=len(caption_vectors),
                            rows=len(row_vectors), matches=matches, basis=basis)


def calibrate_index(archive, model, matrix: np.ndarray
                    ) -> tuple[ScoreMoments, MatchCalibration | None]:
    """The moments of ``matrix`` (the index's rows) and, where the archive can say what
    its previews show, the match probability fitted on the model's training proposals.

    A caption's matches are the previews showing any kind its proposal observed (a
    proposal's caption speaks of all its targets: a deep field and the Lyman-alpha
    emitters in it). Fitted only on previews of training proposals against their
    captions, so nothing of the proposals the model card holds out enters it.
    """
    from ..errors import ArchiveError
    from ..ml.evaluate import read_truth
    from ..ml.pairs import archive_pairs

    moments = ScoreMoments.of(matrix)
    truth = read_truth(archive)
    if truth is None:
        return moments, None
    try:
        pairs = archive_pairs(archive)
    except ArchiveError:  # no captions to stand in for queries
        return moments, None
    held_out = set(model.card.training_data.get("validation_proposals") or ())
    kinds_of: dict[str, set[str]] = {}
    caption_of: dict[str, str] = {}
    rows, row_kinds = [], []
    for row, obs_id, proposal, caption in zip(pairs.rows, pairs.obs_ids, pairs.proposals,
                                              pairs.captions):
        if proposal in held_out or obs_id not in truth:
            continue
        kinds_of.setdefault(proposal, set()).add(truth[obs_id])
        caption_of.setdefault(proposal, caption)
        rows.append(row)
        row_kinds.append(truth[obs_id])
    proposals = sorted(caption_of)
    if len(proposals) < 2:
        return moments, None
    captions = model.encode_text([caption_of[p] for p in proposals])
    row_kinds = np.array(row_kinds)
    labels = np.array([np.isin(row_kinds, sorted(kinds_of[p])) for p in proposals])
    basis = (f"{len(proposals)} training proposals' captions as queries against their "
             f"{len(rows)} previews, a match being a preview of a kind the proposal "
             "observed (truth.csv)")
    try:
        calibration = fit_match_calibration(captions, labels, np.asarray(matrix)[rows],
                                            moments, basis=basis)
    except ValueError:
        return moments, None
    return moments, calibration


def write_calibration(root: Path, moments: ScoreMoments,
                      calibration: MatchCalibration | None) -> None:
    """Store the moments (always) and the fit (when there is one) in an index directory."""
    np.savez(root / MOMENTS_FILE, mean=moments.mean.astype(np.float32),
             covariance=moments.covariance.astype(np.float32))
    if calibration is not None:
        (root / CALIBRATION_FILE).write_text(json.dumps(asdict(calibration), indent=2) + "\n")


def load_calibration(root: Path) -> tuple[ScoreMoments | None, MatchCalibration | None]:
    """What :func:`write_calibration` stored; (None, None) for an index made before it.

    A damaged file counts as absent: queries then simply carry no probability.
    """
    try:
        with np.load(root / MOMENTS_FILE, allow_pickle=False) as stored:
            moments = ScoreMoments(stored["mean"], stored["covariance"])
    except (OSError, ValueError, KeyError, EOFError):
        return None, None
    try:
        fitted = json.loads((root / CALIBRATION_FILE).read_text())
        fitted["coefficients"] = tuple(float(c) for c in fitted["coefficients"])
        calibration = MatchCalibration(**fitted)
    except (OSError, ValueError, TypeError, KeyError):
        calibration = None
    return moments, calibration


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # σ(x) without overflow
