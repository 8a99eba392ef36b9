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

``--probes`` also asks whether the locked space could be bent without retraining the
tower: linear maps fitted to the *training* captions' kinds (whitening the scatter
within a kind, or removing its largest directions, or the largest principal components
of all captions), applied to captions and queries alike, and query templates
("Hubble images of ...") wrapped around every query; each is scored with both
placements.

``--image-probes`` asks how much of the gap is the image tower's and how much its
placement's: a least-squares linear classifier of the scene kind, fitted on the training
previews' embeddings, read on the held-out ones (what the tower carries), and the
model's embeddings placed again after training — by the ridge refit onto the training
captions that ``vo-clip train --refit-ridge`` applies (:mod:`vo_clip.ml.refit`), at
several ridges, and by the mean caption of each preview's nearest training previews.

Run: ``python benchmarks/text_ceiling.py [--model demo] [--probes] [--image-probes]``
(builds the default demo archive on first use).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from vo_clip.archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES
from vo_clip.config import Config
from vo_clip.ml.evaluate import (query_precision, read_truth, retrieval_accuracy,
                                 vector_precision)
from vo_clip.ml.model import load_model
from vo_clip.ml.pairs import archive_pairs, caption_embeddings
from vo_clip.ml.refit import ridge_map
from vo_clip.workspace import ensure_demo_archive


def unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


TEMPLATES = ("{}.", "Hubble images of {}.", "an astronomical image of {}", "objects: {}.",
             "astronomy: {}", "A Hubble Space Telescope programme to observe {}.")


def kind_means(texts: np.ndarray, kinds: np.ndarray, val: np.ndarray) -> dict[str, np.ndarray]:
    """The unit mean of each held-out kind's *training* captions in ``texts``."""
    return {kind: unit(texts[~val & (kinds == kind)].mean(0, keepdims=True))[0]
            for kind in sorted(set(kinds[val]))}


def kind_mean_placements(texts: np.ndarray, kinds: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Each held-out preview on its kind's mean caption: a perfect classifier's placement."""
    means = kind_means(texts, kinds, val)
    return np.stack([means[kind] for kind in kinds[val]])


def probe_reshaped_spaces(model, texts: np.ndarray, kinds: np.ndarray, val: np.ndarray) -> None:
    """Score both placements after linear maps of the space, and with query templates."""
    sets = {"paperclip": PAPERCLIP_QUERIES, "paraphrases": PARAPHRASE_QUERIES}
    train = texts[~val]
    centre = train.mean(0)
    within = np.zeros((texts.shape[1],) * 2)
    for kind in set(kinds[~val]):
        rows = train[kinds[~val] == kind]
        rows = rows - rows.mean(0)
        within += rows.T @ rows
    values, axes = np.linalg.eigh(within / len(train))
    _, principal = np.linalg.eigh(np.cov((train - centre).T))

    def whiten(shrink):
        matrix = axes @ np.diag(1 / np.sqrt(values + shrink * values.max())) @ axes.T
        return lambda x: (x - centre) @ matrix

    def remove(directions):
        return lambda x: (x - centre) - (x - centre) @ directions @ directions.T

    def row(name, mapped_texts, encode):
        places = (kind_mean_placements(mapped_texts, kinds, val), mapped_texts[val])
        cells = [np.mean(vector_precision(encode(list(queries)), list(queries.values()),
                                          place, list(kinds[val])))
                 for place in places for queries in sets.values()]
        print(f"{name:<50} " + " ".join(f"{c:10.3f}" for c in cells))

    maps = {"centred": lambda x: x - centre,
            "whiten within-kind, shrink 0.1": whiten(0.1),
            "whiten within-kind, shrink 0.01": whiten(0.01),
            "drop 20 within-kind directions": remove(axes[:, -20:]),
            "drop top principal component": remove(principal[:, -1:])}
    print(f"{'linear map of the space (identity: above)':<50} {'kind mean':>21} "
          f"{'own caption':>21}")
    print(f"{'':<50} {'paperclip':>10} {'paraphr.':>10} {'paperclip':>10} {'paraphr.':>10}")
    for name, transform in maps.items():
        row(name, unit(transform(texts)),
            lambda queries, transform=transform: unit(transform(model.encode_text(queries))))
    print("query template")
    for template in TEMPLATES:
        row(template, texts,
            lambda queries, template=template: model.encode_text(
                [template.format(q) for q in queries]))


def probe_image_placements(model, pairs, texts: np.ndarray, kinds: np.ndarray, val: np.ndarray,
                           held_out_images: np.ndarray, score) -> None:
    """The kind a linear probe reads off the embeddings, and placements fitted after training."""
    train_images = model.encode_images(pairs.paths[i] for i in np.flatnonzero(~val))
    names = sorted(set(kinds))
    one_hot = (kinds[~val][:, None] == np.array(names)[None, :]).astype(float)
    read = np.array(names)[np.argmax(held_out_images @ ridge_map(train_images, one_hot, 1e-3),
                                     1)]
    print(f"linear_probe_kind_accuracy={np.mean(read == kinds[val]):.3f} (a least-squares "
          "classifier of the kind, fitted on the training previews' embeddings)")
    for ridge in (0.03, 0.1, 0.3, 1.0):
        score(f"ridge refit {ridge}",
              unit(held_out_images @ ridge_map(train_images, texts[~val], ridge)))
    similar = held_out_images @ train_images.T
    nearest = np.argsort(-similar, axis=1, kind="stable")[:, :10]
    weights = np.exp(10 * np.take_along_axis(similar, nearest, 1))
    score("10-NN captions",
          unit(np.einsum("nk,nkd->nd", weights, texts[~val][nearest])))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo", help="model spec (default: demo)")
    parser.add_argument("--probes", action="store_true",
                        help="also score linear maps of the sentence space and query templates")
    parser.add_argument("--image-probes", action="store_true",
                        help="also probe the image embeddings: a linear kind classifier, and "
                             "placements fitted after training (ridge refit, nearest previews)")
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
    texts = caption_embeddings(model, pairs.captions)
    means = kind_means(texts, kinds, val)
    placements = {
        "own caption": texts[val],
        "kind mean": kind_mean_placements(texts, kinds, val),
        f"model {args.model}": model.encode_images(pairs.paths[i] for i in np.flatnonzero(val)),
    }
    print(f"{archive.name}: {val.sum()} held-out previews of {len(set(pairs.proposals[val]))} "
          f"proposals, {len(means)} kinds")
    print(f"{'placement':<20} {'paperclip':>9} {'paraphrases':>11} {'top-10%':>8} "
          f"{'matched cos':>11}")
    paraphrases = {}

    def score(name, images):
        paper = np.mean(list(query_precision(model, images, list(kinds[val]),
                                             PAPERCLIP_QUERIES).values()))
        para = np.mean(list(query_precision(model, images, list(kinds[val]),
                                            PARAPHRASE_QUERIES).values()))
        top10 = retrieval_accuracy(texts[val], images, [10])[10]
        matched = np.mean(np.sum(texts[val] * images, 1))
        print(f"{name:<20} {paper:9.3f} {para:11.3f} {top10:8.3f} {matched:11.3f}")
        return para

    for name, images in placements.items():
        paraphrases[name] = score(name, images)
    if args.image_probes:
        probe_image_placements(model, pairs, texts, kinds, val,
                               placements[f"model {args.model}"], score)
    if args.probes:
        probe_reshaped_spaces(model, texts, kinds, val)
    names = list(means)
    nearest = np.array(names)[np.argmax(placements[f"model {args.model}"]
                                        @ np.stack(list(means.values())).T, 1)]
    print(f"kind_accuracy={np.mean(nearest == kinds[val]):.3f} "
          "(the model's previews nearest their own kind's mean caption)")
    own, kind, ours = paraphrases.values()
    print(f"ceiling paraphrases_own={own:.3f} paraphrases_kind={kind:.3f} "
          f"paraphrases_model={ours:.3f} model={args.model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
