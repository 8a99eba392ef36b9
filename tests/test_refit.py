"""The closed-form refit of the image tower's output onto the caption space.

Small random CLIPs of both tower shapes open_clip builds (a ViT, and the ModifiedResNet
the demo model uses) are refit on a small demo archive: the folded weights must embed
exactly as the map says, and the fitted map must bring previews nearer their captions.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURE

from vo_clip.archive.demo import build_demo_archive
from vo_clip.errors import VoClipError
from vo_clip.ml.model import create_model
from vo_clip.ml.pairs import archive_pairs, caption_embeddings, split_by_proposal
from vo_clip.ml.refit import refit_image_projection, ridge_map, training_pairs

#: The demo model's tower shape (ModifiedResNet with attention pooling), at toy size.
TINY_RESNET = {**TINY_ARCHITECTURE,
               "vision_cfg": {"layers": [1, 1, 1, 1], "width": 8, "image_size": 32}}


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    return build_demo_archive(tmp_path_factory.mktemp("refit") / "archive", n_observations=60,
                              n_proposals=12, preview_size=32, seed=3, progress=False)


def test_ridge_map_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(200, 16))
    truth = rng.normal(size=(16, 16))
    assert np.allclose(ridge_map(images, images @ truth, 1e-12), truth, atol=1e-6)
    # Shrinkage pulls the map towards zero, the more the larger the ridge.
    norms = [np.linalg.norm(ridge_map(images, images @ truth, r)) for r in (0.01, 1, 100)]
    assert norms[0] > norms[1] > norms[2]


@pytest.mark.parametrize("architecture", [TINY_ARCHITECTURE, TINY_RESNET],
                         ids=["vit", "modified-resnet"])
def test_refit_folds_the_map_into_the_tower(archive, architecture):
    model = create_model(architecture, seed=0, name="tiny", device="cpu")
    pairs = archive_pairs(archive)
    trained_on = ~split_by_proposal(pairs.proposals, 0.25, 0)
    train_pairs = pairs.subset(trained_on)
    before = model.encode_images(pairs.paths)
    captions = caption_embeddings(model, train_pairs.captions)
    fitted = model.encode_images(train_pairs.paths)

    refit = refit_image_projection(model, train_pairs, 0.1)

    expected = before @ ridge_map(fitted, captions, 0.1)
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    after = model.encode_images(pairs.paths)
    # Every preview, held-out ones included, moves exactly as the map says.
    assert np.allclose(after, expected, atol=1e-5)
    assert refit.pairs == len(train_pairs) and refit.ridge == 0.1
    # On the pairs it was fitted to, previews come nearer their captions.
    assert refit.matched_cosine_after > refit.matched_cosine_before
    assert np.mean(np.sum(after[trained_on] * captions, 1)) == pytest.approx(
        refit.matched_cosine_after, abs=1e-5)


def test_training_pairs_leave_out_the_held_out_proposals(archive):
    pairs = archive_pairs(archive)
    held_out = sorted(set(pairs.proposals[:10].tolist()))
    train = training_pairs(archive, {"validation_proposals": held_out,
                                     "settings": {"captions": "summary"}})
    assert len(train) == int((~np.isin(pairs.proposals, held_out)).sum())
    assert not set(train.proposals.tolist()) & set(held_out)


@pytest.mark.parametrize("ridge", [0.0, -1.0, float("nan")])
def test_a_ridge_that_is_not_positive_is_refused(archive, ridge):
    model = create_model(TINY_ARCHITECTURE, seed=0, name="tiny", device="cpu")
    with pytest.raises(VoClipError, match="must be positive"):
        refit_image_projection(model, archive_pairs(archive), ridge)


def test_an_unknown_tower_is_refused(archive):
    model = SimpleNamespace(module=SimpleNamespace(visual=torch.nn.Identity()))
    with pytest.raises(VoClipError, match="cannot refit the output of a Identity"):
        refit_image_projection(model, archive_pairs(archive), 0.1)
