"""PAPERCLIP's evaluation of an image–text model on an archive.

* **Retrieval accuracy against the retrieval fraction k %**: for each held-out caption,
  is its own preview among the top k % of all held-out previews? Random ranking scores
  k/100, so the curve's lift over the diagonal is what the model learned.
* **Similarity distributions** of matched caption–preview pairs against shuffled pairs.
* **The shuffled-caption baseline**: the same accuracy with captions permuted across
  proposals, which must stay near chance; if not, the metric leaks.
* **Query precision**: for named queries with the scene kinds that answer them (the
  demo archive ships ground truth), the fraction of the top 10 previews of a right kind.

Everything here is numpy on embeddings; the model is only asked to encode.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from .pairs import archive_pairs, split_by_proposal

__all__ = ["K_PERCENTS", "evaluate", "query_precision", "read_truth", "retrieval_accuracy",
           "similarity_summary"]

K_PERCENTS = (1, 2, 5, 10, 20, 30, 50)


def retrieval_accuracy(text_features: np.ndarray, image_features: np.ndarray,
                       ks=K_PERCENTS) -> dict[int, float]:
    """Fraction of captions whose own preview ranks within the top ``k`` % (row i ↔ i)."""
    sims = text_features @ image_features.T
    own = np.diag(sims)
    ranks = (sims > own[:, None]).sum(axis=1)  # previews strictly better than the own one
    n = len(own)
    return {k: float(np.mean(ranks < max(1, math.ceil(k * n / 100)))) for k in ks}


def similarity_summary(values: np.ndarray, bins: np.ndarray) -> dict:
    histogram, _ = np.histogram(values, bins=bins)
    return {"mean": round(float(values.mean()), 4), "std": round(float(values.std()), 4),
            "histogram": histogram.tolist()}


def query_precision(model, image_features: np.ndarray, kinds: list[str],
                    queries: dict[str, set[str]], *, top: int = 10) -> dict[str, float]:
    """For each query, the fraction of its ``top`` previews whose kind answers it."""
    vectors = model.encode_text(list(queries))
    scores = vectors @ image_features.T
    out = {}
    for (query, accepted), row in zip(queries.items(), scores):
        best = np.argsort(-row, kind="stable")[:top]
        out[query] = float(np.mean([kinds[i] in accepted for i in best]))
    return out


def read_truth(archive) -> dict[str, str] | None:
    """``obs_id → kind`` from the archive's ``truth.csv``, if it has one."""
    path = Path(archive.root) / "truth.csv"
    if not path.is_file():
        return None
    with open(path, newline="") as fh:
        return {row["obs_id"]: row["kind"] for row in csv.DictReader(fh)}


def evaluate(model, archive, *, split: str = "validation", captions: str = "summary",
             queries: dict[str, set[str]] | None = None,
             paraphrases: dict[str, set[str]] | None = None,
             seed: int = 0, val_fraction: float = 0.2, progress: bool = False) -> dict:
    """The evaluation report of ``model`` on ``archive`` (a JSON-ready dict).

    Parameters
    ----------
    split : {"validation", "all"}
        ``validation`` uses the proposals the model card says were held out in training,
        or else a proposal split drawn with ``seed``; ``all`` uses every observation.
    queries, paraphrases : dict, optional
        Query text → accepted kinds, scored against ``truth.csv`` when the archive has one.
    """
    pairs = archive_pairs(archive, captions)
    if split == "validation":
        held_out = model.card.training_data.get("validation_proposals")
        mask = (np.isin(pairs.proposals, held_out) if held_out
                else split_by_proposal(pairs.proposals, val_fraction, seed))
        pairs = pairs.subset(mask)
    image_features = model.encode_images(pairs.paths, progress="embedding previews"
                                         if progress else None, total=len(pairs))
    text_features = model.encode_text(pairs.captions)
    shuffled = np.random.default_rng(seed).permutation(len(pairs))
    bins = np.linspace(-1, 1, 41)
    report = {
        "model": model.card.name, "model_fingerprint": model.fingerprint,
        "archive": archive.name, "split": split, "captions": captions,
        "pairs": len(pairs), "proposals": int(len(set(pairs.proposals.tolist()))),
        "retrieval_accuracy": _keyed(retrieval_accuracy(text_features, image_features)),
        "shuffled_caption_accuracy": _keyed(
            retrieval_accuracy(text_features[shuffled], image_features)),
        "chance_accuracy": {str(k): k / 100 for k in K_PERCENTS},
        "similarity": {
            "bins": bins.round(3).tolist(),
            "matched": similarity_summary(np.sum(text_features * image_features, 1), bins),
            "shuffled": similarity_summary(
                np.sum(text_features[shuffled] * image_features, 1), bins)},
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
    return report


def _keyed(values: dict[int, float]) -> dict[str, float]:
    return {str(k): round(v, 4) for k, v in values.items()}
