"""How well a similarity score separates right answers from wrong ones, on the demo archive.

For every evaluation query (PAPERCLIP's ten and the held-out paraphrases) every preview
of the full demo archive is scored, and labelled a hit when its scene kind answers the
query (``truth.csv``). Three scores are compared on the same pairs:

* ``cosine``: what ``vo_clip_similarity`` returns;
* ``z``: the cosine in standard deviations above the query's mean over the archive, a
  per-query normalisation that would let one threshold serve every query if queries
  differed mainly in their offset;
* ``match``: what ``vo_clip_match`` returns, the probability the index's calibration
  (:mod:`vo_clip.search.calibration`, fitted on the training proposals' captions) gives.
  None of these queries entered its fit.

It prints, per query set, the area under the ROC curve of each score (the chance that a
random hit outscores a random miss), the median hit / 99th-percentile miss of the
cosine, how many pairs pass ``match > 0.5`` and how many of those are hits, and the
reliability of ``match`` (in each probability bin, the fraction that are hits); and it
draws the histograms of hits and misses of the cosine and of ``match`` (``--figure``).
Last line: ``scores auc_cosine=A auc_z=Z auc_match=M queries=N``.

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
from vo_clip.ml.evaluate import roc_auc as auc
from vo_clip.workspace import ensure_demo_archive, open_engine


BINS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)


def scored(engine, features, kinds, queries: dict[str, set[str]]):
    """Cosine, z, match probability and hit flag of every (query, preview) pair."""
    vectors = engine.model.encode_text(list(queries))
    cosine, z, match, hits = [], [], [], []
    for (_, answers), vector in zip(queries.items(), vectors):
        s = features @ vector
        cosine.append(s)
        z.append((s - s.mean()) / s.std())
        match.append(engine.index.match_probability(vector, s))
        hits.append(np.isin(kinds, sorted(answers)))
    return (np.concatenate(cosine), np.concatenate(z), np.concatenate(match),
            np.concatenate(hits))


def reliability(match: np.ndarray, hits: np.ndarray) -> str:
    """In each bin of the probability: how many pairs, and the fraction that are hits."""
    parts = []
    for low, high in zip(BINS, BINS[1:]):
        inside = (match >= low) & ((match < high) if high < 1 else (match <= high))
        share = f"{hits[inside].mean():.2f}" if inside.any() else "-"
        parts.append(f"[{low:.1f},{high:.1f}] {share} of {inside.sum()}")
    return "; ".join(parts)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="demo")
    parser.add_argument("--figure", help="write the histograms of hits and misses here (PNG)")
    args = parser.parse_args(argv)

    config = Config.load()
    archive = ensure_demo_archive(config)
    engine = open_engine(replace(config, model=args.model), notify=print)
    if engine.index.calibration is None:
        print(f"the index in {engine.index.root} has no match calibration: rebuild it "
              "with 'vo-clip index' (the archive needs truth.csv)", file=sys.stderr)
        return 2
    print(f"calibration: {engine.index.calibration.basis}")
    # the index's own vectors, as every query sees them
    features = np.asarray(engine.index.embeddings, dtype=np.float32)
    truth = read_truth(archive)
    obs_ids = engine.index.catalog.fetch(np.arange(len(features)), ["obs_id"])["obs_id"]
    kinds = np.array([truth[str(obs_id)] for obs_id in obs_ids])
    sets = {"PAPERCLIP's ten": PAPERCLIP_QUERIES, "held-out paraphrases": PARAPHRASE_QUERIES}
    results = {}
    for name, queries in sets.items():
        cosine, z, match, hits = scored(engine, features, kinds, queries)
        results[name] = (cosine, match, hits)
        likely = match > 0.5
        print(f"{name} ({len(queries)} queries x {len(archive)} previews): "
              f"AUC cosine {auc(cosine, hits):.3f}, z {auc(z, hits):.3f}, "
              f"match {auc(match, hits):.3f}; "
              f"cosine of hits p50 {np.median(cosine[hits]):.3f}, "
              f"misses p99 {np.quantile(cosine[~hits], 0.99):.3f}; "
              f"match > 0.5: {likely.sum()} pairs, {hits[likely].mean():.2f} hits")
        print(f"  match reliability: {reliability(match, hits)}")
    if args.figure:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(2, len(results), figsize=(7, 4.8))
        panels = (("vo_clip_similarity (cosine)", 0, np.linspace(-0.3, 0.6, 61)),
                  ("vo_clip_match (probability)", 1, np.linspace(0, 1, 41)))
        for row, (label, which, bins) in enumerate(panels):
            for axis, (name, scores) in zip(axes[row], results.items()):
                values, hits = scores[which], scores[2]
                axis.hist(values[~hits], bins=bins, density=True, color="#999999",
                          label="misses")
                axis.hist(values[hits], bins=bins, density=True, histtype="step",
                          linewidth=1.6, color="#0072B2", label="hits")
                if which == 1:
                    axis.set_yscale("log")
                axis.set_title(name, fontsize=9)
                axis.set_xlabel(label, fontsize=8)
                axis.tick_params(labelsize=7)
            axes[row][0].set_ylabel("density", fontsize=8)
        axes[0][0].legend(fontsize=7, frameon=False)
        fig.tight_layout()
        fig.savefig(args.figure, dpi=200)
        print(f"figure: {args.figure}")
    everything = {**PAPERCLIP_QUERIES, **PARAPHRASE_QUERIES}
    cosine, z, match, hits = scored(engine, features, kinds, everything)
    print(f"scores auc_cosine={auc(cosine, hits):.3f} auc_z={auc(z, hits):.3f} "
          f"auc_match={auc(match, hits):.3f} queries={len(everything)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
