"""The demo model: its card, its verified text tower, and training that reproduces."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import assert_one_line_error, run_cli

from vo_clip.archive.demo import build_demo_archive
from vo_clip.errors import ModelUnavailableError
from vo_clip.ml.checkpoint import read_card
from vo_clip.ml.demo_model import DEMO_CHECKPOINT
from vo_clip.ml.towers import KNOWN_TOWERS, MINILM, MPNET, verify_tower


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("small-demo") / "archive"
    return build_demo_archive(root, n_observations=80, n_proposals=20, preview_size=96,
                              seed=5, progress=False)


def test_shipped_checkpoint_is_small_and_holds_only_what_was_trained():
    from safetensors import safe_open

    assert DEMO_CHECKPOINT.stat().st_size < 25e6
    with safe_open(str(DEMO_CHECKPOINT), framework="pt") as handle:
        keys = list(handle.keys())
        projection = handle.get_tensor("text.proj.weight").float()
    assert any(k.startswith("visual.") for k in keys)
    assert "text.proj.weight" in keys and "logit_scale" in keys
    assert not any(k.startswith("text.transformer.") for k in keys)
    card = read_card(DEMO_CHECKPOINT)
    assert card.external == {"text.transformer": KNOWN_TOWERS[MPNET]}
    assert card.training_data["validation_proposals"]
    # the locked projection is the identity: queries live in all-mpnet-base-v2's own space
    assert torch.equal(projection, torch.eye(768))
    assert card.training_data["settings"]["freeze"] == ["text"]


def test_card_records_paperclip_metrics_that_meet_the_bar():
    metrics = read_card(DEMO_CHECKPOINT).metrics
    trained, untrained = metrics["trained"], metrics["untrained_image_tower"]
    assert trained["split"] == "validation" and trained["proposals"] >= 70
    assert trained["retrieval_accuracy"]["10"] >= 0.75         # random: 0.10
    assert trained["mean_queries_precision_at_10"] >= 0.9       # issue 16's bar
    assert abs(trained["shuffled_caption_accuracy"]["10"] - 0.10) < 0.05
    assert untrained["retrieval_accuracy"]["10"] < 0.2
    assert untrained["mean_queries_precision_at_10"] < 0.3
    assert trained["similarity"]["matched"]["mean"] > trained["similarity"]["shuffled"]["mean"]


def test_text_tower_is_verified_byte_for_byte(tmp_path):
    verify_tower.cache_clear()
    wrong_size = tmp_path / "short"
    wrong_size.mkdir()
    (wrong_size / "model.safetensors").write_bytes(b"0" * 100)
    with pytest.raises(ModelUnavailableError, match="not the official"):
        verify_tower(str(wrong_size), MINILM)
    same_size = tmp_path / "forged"
    same_size.mkdir()
    with open(same_size / "model.safetensors", "wb") as fh:
        fh.truncate(KNOWN_TOWERS[MINILM]["size"])
    with pytest.raises(ModelUnavailableError, match="differs from the official"):
        verify_tower(str(same_size), MINILM)


def test_training_is_reproducible_and_learns(small_demo):
    from dataclasses import replace

    from vo_clip.ml.demo_model import create_demo_model
    from vo_clip.ml.train import DEMO_RECIPE, train

    settings = replace(DEMO_RECIPE, epochs=2, batch_size=16, warmup_steps=2, seed=1)
    runs = []
    for _ in range(2):
        model = create_demo_model(seed=1)
        result = train(model, small_demo, settings, progress=False)
        runs.append((model.module.state_dict(), result))
    (first, result), (second, again) = runs
    assert result.history == again.history
    for name, tensor in first.items():
        np.testing.assert_array_equal(tensor.numpy(), second[name].numpy(), err_msg=name)
    assert [h["step"] for h in result.history] == [0, result.steps // 2, result.steps]
    # the text side, projection included, is exactly the sentence encoder's
    assert torch.equal(first["text.proj.weight"], torch.eye(768))
    assert result.history[-1]["train_loss"] < result.history[1]["train_loss"] * 1.05
    assert result.val_pairs > 0 and result.train_pairs > result.val_pairs


def test_train_and_eval_commands(small_demo, tmp_path):
    out = tmp_path / "model.safetensors"
    trained = run_cli("train", "--recipe", "demo", "--archive", str(small_demo.root),
                      "--out", str(out), "--epochs", "1", "--batch-size", "16",
                      "--refit-ridge", "0.3", home=tmp_path)
    assert "(epoch 1)" in trained.stdout
    assert "refit the image output (ridge 0.3)" in trained.stdout
    card = read_card(out)
    assert card.training_data["refit"]["ridge"] == 0.3
    assert card.training_data["settings"]["epochs"] == 1
    assert card.training_data["settings"]["lock_text"] is True  # the demo recipe: LiT
    assert card.base == "demo:untrained"
    assert card.training_data["archive_fingerprint"] == small_demo.fingerprint
    report = tmp_path / "report.json"
    compared = run_cli("eval", "--archive", str(small_demo.root), "--model", str(out),
                       "--model", "demo:untrained", "--report", str(report), home=tmp_path)
    assert "retrieval top 10%" in compared.stdout and "demo:untrained" in compared.stdout
    reports = json.loads(report.read_text())
    assert set(reports) == {str(out), "demo:untrained"}
    held_out = set(card.training_data["validation_proposals"])
    assert reports[str(out)]["proposals"] == len(held_out)
    assert set(reports[str(out)]["queries"]) >= {"globular cluster", "comets", "SN 1987A"}


def test_the_paperclip_recipe_names_weights_that_must_be_downloaded(small_demo, tmp_path):
    result = run_cli("train", "--archive", str(small_demo.root), "--out",
                     str(tmp_path / "model.safetensors"), home=tmp_path, check=False)
    assert_one_line_error(result, "ViT-B-16:openai")


def test_eval_of_a_missing_model_fails_in_one_line(small_demo, tmp_path):
    result = run_cli("eval", "--archive", str(small_demo.root), "--model",
                     str(tmp_path / "nope.safetensors"), home=tmp_path, check=False)
    assert_one_line_error(result, "does not exist")
