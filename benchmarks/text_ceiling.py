"""What the locked text tower lets any image tower reach on the demo model's held-out proposals.

With the text tower (and its projection) locked, training moves only where each preview
lands in the sentence space. So two placements bound what a better image tower could
score, whatever its size, resolution or loss:

* ``own caption``: every preview exactly on its proposal's caption embedding (what a
  perfect alignment would give; retrieval of its own caption is then trivially 1);
* ``kind mean``: every preview on the mean embedding of the *training* captions of its
  scene kind, i.e. a perfect classifier of what the preview shows that knows nothing of
  the proposal behind it.

Both are set beside the model as shipped (or ``--model``), on the same held-out previews
(the model card's split), with the same metrics as ``vo-clip eval``: precision@10 of
PAPERCLIP's ten queries and of the held-out paraphrases, and top-10 % caption→preview
retrieval. It also prints how often the model's previews lie nearest their own kind's
mean (``kind_accuracy``), the part of the image tower these ceilings leave to improve.
Last line: ``ceiling paraphrases_own=A paraphrases_kind=B paraphrases_model=C model=M``.

Run: ``python benchmarks/text_ceiling.py [--model demo]`` (builds the default demo
archive on first use).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vo_clip.archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES
from vo_clip.config import Config
from vo_clip.ml.evaluate import query_precision, read_truth, retrieval_accuracy
from vo_clip.ml.model import load_model
from vo_clip.ml.pairs import archive_pairs
from vo_clip.workspace import ensure_demo_archive


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="model spec (default: demo)")
    args = parser.parse_args(argv)

    archive = ensure_demo_archive(Config.load(), notify=print)
    model = load_model(args.model)
    held_out = model.card.training_data.get("validation_proposals")
    if not held_out:
        print(f"model {args.model} records no held-out proposals", file=sys.stderr)
        return 2
    truth = read_truth(archive)
    pairs = archive_pairs(archive, "summary")
    kinds = np.array([truth.get(obs_id, "") for obs_id in pairs.obs_ids])
    val = np.isin(pairs.proposals, held_out)
    captions, caption_of = np.unique(pairs.captions, return_inverse=True)
    texts = model.encode_text(list(captions))[caption_of]
    kind_means = {kind: unit(texts[~val & (kinds == kind)].mean(0, keepdims=True))[0]
                  for kind in sorted(set(kinds[val]))}
    placements = {
        "own caption": texts[val],
        "kind mean": np.stack([kind_means[kind] for kind in kinds[val]]),
        f"model {args.model}": model.encode_images(pairs.paths[i] for i in np.flatnonzero(val)),
    }
    print(f"{archive.name}: {val.sum()} held-out previews of {len(set(pairs.proposals[val]))} "
          f"proposals, {len(kind_means)} kinds")
    print(f"{'placement':<20} {'paperclip':>9} {'paraphrases':>11} {'top-10%':>8} "
          f"{'matched cos':>11}")
    paraphrases = {}
    for name, images in placements.items():
        paper = np.mean(list(query_precision(model, images, list(kinds[val]),
                                             PAPERCLIP_QUERIES).values()))
        para = np.mean(list(query_precision(model, images, list(kinds[val]),
                                            PARAPHRASE_QUERIES).values()))
        top10 = retrieval_accuracy(texts[val], images, [10])[10]
        matched = np.mean(np.sum(texts[val] * images, 1))
        paraphrases[name] = para
        print(f"{name:<20} {paper:9.3f} {para:11.3f} {top10:8.3f} {matched:11.3f}")
    names = sorted(kind_means)
    nearest = np.array(names)[np.argmax(placements[f"model {args.model}"]
                                        @ np.stack([kind_means[k] for k in names]).T, 1)]
    print(f"kind_accuracy={np.mean(nearest == kinds[val]):.3f} "
          "(the model's previews nearest their own kind's mean caption)")
    own, kind, ours = paraphrases.values()
    print(f"ceiling paraphrases_own={own:.3f} paraphrases_kind={kind:.3f} "
          f"paraphrases_model={ours:.3f} model={args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
