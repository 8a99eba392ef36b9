"""PAPERCLIP's evaluation of an image–text model on an archive.

* **Retrieval accuracy against the retrieval fraction k %**: for each held-out caption,
  is its own preview among the top k % of all held-out previews? Random ranking scores
  about k/100, so the curve's lift over the diagonal is what the model learned. The
  report keeps the headline fractions (:data:`K_PERCENTS`) and the whole curve, k = 1 to
  100 %, which costs nothing more: both come from one rank per caption.
* **Similarity distributions** of matched caption–preview pairs against shuffled pairs.
* **The shuffled-caption baseline**: the same accuracy with captions permuted across
  proposals, which must stay near chance; if not, the metric leaks.
* **Query precision**: for named queries with the scene kinds that answer them (the
  demo archive ships ground truth), the fraction of the top 10 previews of a right kind.
* **Top-k image retrieval**: the ``k`` best previews for each of a list of queries, as
  PAPERCLIP shows them; with ground truth, whether each one's kind answers its query.

Everything here is numpy on embeddings; the model is only asked to encode. The report is
a JSON-ready dict; :mod:`vo_clip.ml.plots` draws it.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import ArchiveError, QueryError
from .pairs import archive_pairs, split_by_proposal

__all__ = ["CURVE_K_PERCENTS", "K_PERCENTS", "SIMILARITY_BINS", "accuracy_at", "chance_accuracy",
           "evaluate", "query_precision", "read_query_file", "read_truth", "retrieval_accuracy",
           "retrieval_ranks", "roc_auc", "similarity_summary", "top_k_retrieval", "vector_precision"]

#: The retrieval fractions reported as headline numbers (and in model cards).
K_PERCENTS = (1, 2, 5, 10, 20, 30, 50)
#: Every whole percent: the retrieval curve is smooth at this step for any split size.
CURVE_K_PERCENTS = tuple(range(1, 101))
#: Histogram edges of cosine similarities: 0.02 wide, fine enough for a few hundred pairs.
SIMILARITY_BINS = np.linspace(-1, 1, 101)


def retrieval_ranks(text_features: np.ndarray, image_features: np.ndarray) -> np.ndarray:
    """For each caption ``i``, how many previews score strictly above its own preview ``i``.

    Ties count in the caption's favour, so identical previews do not penalise it.
    """
    sims = text_features @ image_features.T
    own = np.diag(sims)
    return (sims > own[:, None]).sum(axis=1)


def accuracy_at(ranks: np.ndarray, ks: Sequence[int]) -> dict[int, float]:
    """Fraction of ``ranks`` within the top ``k`` % of ``len(ranks)`` previews, per ``k``."""
    n = len(ranks)
    return {k: float(np.mean(ranks < _cutoff(k, n))) for k in ks}


def chance_accuracy(n: int, ks: Sequence[int]) -> dict[int, float]:
    """What a random ranking of ``n`` previews scores at each ``k`` (about ``k``/100)."""
    return {k: _cutoff(k, n) / n for k in ks}


def _cutoff(k: int, n: int) -> int:
    """How many of ``n`` previews the top ``k`` % holds: at least one, rounded up."""
    return max(1, math.ceil(k * n / 100))


def retrieval_accuracy(text_features: np.ndarray, image_features: np.ndarray,
                       ks=K_PERCENTS) -> dict[int, float]:
    """Fraction of captions whose own preview ranks within the top ``k`` % (row i ↔ i)."""
    return accuracy_at(retrieval_ranks(text_features, image_features), ks)


def similarity_summary(values: np.ndarray, bins: np.ndarray) -> dict:
    """Mean, spread and histogram of cosine similarities: what the distribution plot needs."""
    histogram, _ = np.histogram(values, bins=bins)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
            "histogram": histogram.tolist()}


def query_precision(model, image_features: np.ndarray, kinds: list[str],
                    queries: dict[str, set[str]], *, top: int = 10) -> dict[str, float]:
    """For each query, the fraction of its ``top`` previews whose kind answers it."""
    vectors = model.encode_text(list(queries))
    precision = vector_precision(vectors, list(queries.values()), image_features, kinds, top=top)
    return dict(zip(queries, precision))


def vector_precision(vectors: np.ndarray, accepted: Sequence[set[str]],
                     image_features: np.ndarray, kinds: Sequence[str], *,
                     top: int = 10) -> list[float]:
    """:func:`query_precision` for query vectors already embedded (or mapped) by the caller."""
    out = []
    for row, kinds_ok in zip(vectors @ image_features.T, accepted):
        best = np.argsort(-row, kind="stable")[:top]
        out.append(float(np.mean([kinds[i] in kinds_ok for i in best])))
    return out


def top_k_retrieval(model, image_features: np.ndarray, obs_ids: Sequence[str],
                    queries: Mapping[str, set[str] | None], *, k: int = 5,
                    truth: Mapping[str, str] | None = None) -> list[dict]:
    """The ``k`` best previews of ``image_features`` for each query, best first.

    Parameters
    ----------
    queries : mapping
        Query text → the kinds that answer it, or ``None`` where nobody knows.
    truth : mapping, optional
        ``obs_id → kind``; with it every hit names its kind, and — where the query's
        kinds are known — whether it ``answers`` the query.

    Returns
    -------
    list of dict
        One entry per query, in the given order: ``query``, ``kinds`` (when known) and
        ``hits``, each hit ``{"obs_id", "score"[, "kind"[, "answers"]]}``.
    """
    texts = list(queries)
    scores = model.encode_text(texts) @ image_features.T if texts else np.zeros((0, 0))
    k = min(k, len(obs_ids))
    out = []
    for text, row in zip(texts, scores):
        accepted = queries[text]
        entry: dict = {"query": text}
        if accepted is not None and truth is not None:
            entry["kinds"] = sorted(accepted)
        entry["hits"] = [_hit(obs_ids[i], row[i], truth, accepted)
                         for i in np.argsort(-row, kind="stable")[:k]]
        out.append(entry)
    return out


def _hit(obs_id: str, score: float, truth, accepted) -> dict:
    hit = {"obs_id": obs_id, "score": round(float(score), 4)}
    if truth is not None:
        hit["kind"] = truth.get(obs_id, "")
        if accepted is not None:
            hit["answers"] = hit["kind"] in accepted
    return hit


def roc_auc(scores: np.ndarray, hits: np.ndarray) -> float:
    """Area under the ROC curve: P(a random hit scores above a random miss), ties half.

    Computed from ranks (Mann-Whitney), so scores on any scale compare.
    """
    scores = np.asarray(scores, dtype=np.float64)
    hits = np.asarray(hits, dtype=bool)
    n_hit = int(hits.sum())
    n_miss = len(hits) - n_hit
    if n_hit == 0 or n_miss == 0:
        raise ValueError("the AUC needs both hits and misses")
    order = np.argsort(scores, kind="stable")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts - 1) / 2, counts)  # tied scores: mean rank
    return float((ranks[hits].sum() - n_hit * (n_hit - 1) / 2) / (n_hit * n_miss))


def read_truth(archive) -> dict[str, str] | None:
    """``obs_id → kind`` from the archive's ``truth.csv``, if it has one."""
    path = Path(archive.root) / "truth.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return {row["obs_id"]: row["kind"] for row in csv.DictReader(fh)}


def read_query_file(path: str | Path) -> list[str]:
    """Queries from a text file, one a line; blank lines and ``#`` comments are skipped.

    Raises
    ------
    QueryError
        If the file is missing, unreadable, or holds no query.
    """
    path = Path(path).expanduser()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise QueryError(f"queries file {path} does not exist",
                         hint="pass a text file with one query a line") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryError(f"cannot read queries file {path}: {exc}") from None
    queries = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not queries:
        raise QueryError(f"queries file {path} holds no query",
                         hint="write one query a line")
    return list(dict.fromkeys(queries))  # a repeated line would repeat a plot row


def evaluate(model, archive, *, split: str = "validation", captions: str = "summary",
             queries: dict[str, set[str]] | None = None,
             paraphrases: dict[str, set[str]] | None = None,
             retrieval_queries: Mapping[str, set[str] | None] | Sequence[str] | None = None,
             top_k: int = 5, validation_proposals: Sequence[str] | None = None,
             seed: int = 0, val_fraction: float = 0.2, progress: bool = False) -> dict:
    """The evaluation report of ``model`` on ``archive`` (a JSON-ready dict).

    Parameters
    ----------
    split : {"validation", "all"}
        ``validation`` uses held-out proposals: ``validation_proposals`` if given, else
        those the model card says were held out in training, else (or when none of them
        is in this archive) a proposal split drawn with ``seed``. ``all`` uses every
        observation. ``split_basis`` in the report says which.
    queries, paraphrases : dict, optional
        Query text → accepted kinds, scored against ``truth.csv`` when the archive has one.
    retrieval_queries : mapping or sequence of str, optional
        Queries whose ``top_k`` previews the report lists (``top_k_retrieval``); a mapping
        gives the kinds that answer each (``None`` for unknown).
    validation_proposals : sequence of str, optional
        The held-out proposals to use, so that several models are compared on the same
        previews even when only one of them records a split.

    Raises
    ------
    ArchiveError
        If fewer than two pairs remain to rank.
    """
    pairs, split_basis = _evaluated_pairs(model, archive, split, captions,
                                          validation_proposals, seed, val_fraction)
    image_features = model.encode_images(pairs.paths, progress="embedding previews"
                                         if progress else None, total=len(pairs))
    text_features = model.encode_text(pairs.captions)
    shuffled = np.random.default_rng(seed).permutation(len(pairs))
    matched_ranks = retrieval_ranks(text_features, image_features)
    shuffled_ranks = retrieval_ranks(text_features[shuffled], image_features)
    report = {
        "model": model.card.name, "model_fingerprint": model.fingerprint,
        "archive": archive.name, "split": split, "split_basis": split_basis,
        "captions": captions,
        "pairs": len(pairs), "proposals": int(len(set(pairs.proposals.tolist()))),
        "retrieval_accuracy": _keyed(accuracy_at(matched_ranks, K_PERCENTS)),
        "shuffled_caption_accuracy": _keyed(accuracy_at(shuffled_ranks, K_PERCENTS)),
        "chance_accuracy": _keyed(chance_accuracy(len(pairs), K_PERCENTS)),
        "retrieval_curve": _curve(matched_ranks, shuffled_ranks),
        "similarity": {
            "bins": SIMILARITY_BINS.round(3).tolist(),
            "matched": similarity_summary(np.sum(text_features * image_features, 1),
                                          SIMILARITY_BINS),
            "shuffled": similarity_summary(
                np.sum(text_features[shuffled] * image_features, 1), SIMILARITY_BINS)},
    }
    truth = read_truth(archive)
    if truth is not None:
        kinds = [truth.get(obs_id, "") for obs_id in pairs.obs_ids]
        for name, named in (("queries", queries), ("paraphrases", paraphrases)):
            if named:
                precision = query_precision(model, image_features, kinds, named)
                report[name] = {q: round(p, 3) for q, p in precision.items()}
                report[f"mean_{name}_precision_at_10"] = round(float(np.mean(
                    list(precision.values()))), 4)
    if retrieval_queries:
        if not isinstance(retrieval_queries, Mapping):
            retrieval_queries = dict.fromkeys(retrieval_queries)
        report["top_k_retrieval"] = {"k": top_k, "queries": top_k_retrieval(
            model, image_features, pairs.obs_ids, retrieval_queries, k=top_k, truth=truth)}
    return report


def _evaluated_pairs(model, archive, split, captions, validation_proposals, seed,
                     val_fraction):
    """The pairs to evaluate on, and a phrase saying how they were chosen."""
    pairs = archive_pairs(archive, captions)
    if split == "validation":
        held_out = (validation_proposals if validation_proposals is not None
                    else model.card.training_data.get("validation_proposals"))
        mask = np.isin(pairs.proposals, list(held_out or ()))
        if mask.any():
            basis = ("the given held-out proposals" if validation_proposals is not None
                     else "the model card's held-out proposals")
        else:
            mask = split_by_proposal(pairs.proposals, val_fraction, seed)
            basis = f"a random {val_fraction:.0%} of the proposals (seed {seed})"
        pairs = pairs.subset(mask)
    else:
        basis = "every observation with a caption"
    if len(pairs) < 2:
        raise ArchiveError(f"only {len(pairs)} image-caption pair(s) of archive {archive.name} "
                           f"to evaluate on; ranking needs at least 2",
                           hint="use --split all, or a larger archive")
    return pairs, basis


def _curve(matched_ranks: np.ndarray, shuffled_ranks: np.ndarray) -> dict:
    """Accuracy at every whole k %, matched and shuffled, with the chance line."""
    n = len(matched_ranks)
    return {"k_percent": list(CURVE_K_PERCENTS),
            "matched": _rounded(accuracy_at(matched_ranks, CURVE_K_PERCENTS)),
            "shuffled": _rounded(accuracy_at(shuffled_ranks, CURVE_K_PERCENTS)),
            "chance": _rounded(chance_accuracy(n, CURVE_K_PERCENTS))}


def _rounded(values: dict[int, float]) -> list[float]:
    return [round(v, 4) for v in values.values()]


def _keyed(values: dict[int, float]) -> dict[str, float]:
    return {str(k): round(v, 4) for k, v in values.items()}
