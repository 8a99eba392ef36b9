"""How well a similarity score separates right answers from wrong ones, on the demo archive.

For every evaluation query (PAPERCLIP's ten and the held-out paraphrases) every preview
of the full demo archive is scored, and labelled a hit when its scene kind answers the
query (``truth.csv``). Two scores are compared on the same pairs:

* ``cosine``: what ``vo_clip_similarity`` returns;
* ``z``: the cosine in standard deviations above the query's mean over the archive, a
  per-query normalisation that would let one threshold serve every query if queries
  differed mainly in their offset.

It prints, per query set, the area under the ROC curve of each score (the chance that a
random hit outscores a random miss) and the median hit / 99th-percentile miss, and
draws the cosine histograms of hits and misses (``--figure``). Last line:
``scores auc_cosine=A auc_z=Z queries=N``.

Run: ``python benchmarks/score_separation.py [--model demo] [--figure scores.png]``
(the default index is built on first use, as ``vo-clip serve`` would).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

import numpy as np

from vo_clip.archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES
from vo_clip.config import Config
from vo_clip.ml.evaluate import read_truth
from vo_clip.workspace import ensure_demo_archive, open_engine


def auc(scores: np.ndarray, hits: np.ndarray) -> float:
    """Mann-Whitney AUC: P(a random hit scores above a random miss), ties counted half."""
    order = np.argsort(scores, kind="stable")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    # average ranks over ties
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    average = first + (counts - 1) / 2
    ranks[order] = np.repeat(average, counts)
    n_hit = hits.sum()
    n_miss = len(hits) - n_hit
    return float((ranks[hits].sum() - n_hit * (n_hit - 1) / 2) / (n_hit * n_miss))


def scored(model, features, kinds, queries: dict[str, set[str]]):
    vectors = model.encode_text(list(queries))
    cosine, z, hits = [], [], []
    for (_, answers), vector in zip(queries.items(), vectors):
        s = features @ vector
        cosine.append(s)
        z.append((s - s.mean()) / s.std())
        hits.append(np.isin(kinds, sorted(answers)))
    return np.concatenate(cosine), np.concatenate(z), np.concatenate(hits)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--figure", help="write the histograms of hits and misses here (PNG)")
    args = parser.parse_args(argv)

    config = Config.load()
    archive = ensure_demo_archive(config)
    engine = open_engine(replace(config, model=args.model), notify=print)
    model = engine.model
    # the index's own vectors, as every query sees them
    features = np.asarray(engine.index.embeddings, dtype=np.float32)
    truth = read_truth(archive)
    obs_ids = engine.index.catalog.fetch(np.arange(len(features)), ["obs_id"])["obs_id"]
    kinds = np.array([truth[str(obs_id)] for obs_id in obs_ids])
    sets = {"PAPERCLIP's ten": PAPERCLIP_QUERIES, "held-out paraphrases": PARAPHRASE_QUERIES}
    results = {}
    for name, queries in sets.items():
        cosine, z, hits = scored(model, features, kinds, queries)
        results[name] = (cosine, hits)
        print(f"{name} ({len(queries)} queries x {len(archive)} previews): "
              f"AUC cosine {auc(cosine, hits):.3f}, z {auc(z, hits):.3f}; "
              f"cosine of hits p50 {np.median(cosine[hits]):.3f}, "
              f"misses p99 {np.quantile(cosine[~hits], 0.99):.3f}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(results), figsize=(7, 2.6), sharex=True)
        bins = np.linspace(-0.3, 0.6, 61)
        for axis, (name, (cosine, hits)) in zip(axes, results.items()):
            axis.hist(cosine[~hits], bins=bins, density=True, color="#999999", label="misses")
            axis.hist(cosine[hits], bins=bins, density=True, histtype="step", linewidth=1.6,
                      color="#0072B2", label="hits")
            axis.set_title(name, fontsize=9)
            axis.set_xlabel("vo_clip_similarity (cosine)", fontsize=8)
            axis.tick_params(labelsize=7)
        axes[0].set_ylabel("density", fontsize=8)
        axes[0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=200)
        print(f"figure: {args.figure}")
    everything = {**PAPERCLIP_QUERIES, **PARAPHRASE_QUERIES}
    cosine, z, hits = scored(model, features, kinds, everything)
    print(f"scores auc_cosine={auc(cosine, hits):.3f} auc_z={auc(z, hits):.3f} "
          f"queries={len(everything)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
