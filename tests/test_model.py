"""The model façade: checkpoints, specs, encodings and the errors a user sees."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_ARCHITECTURE

from vo_clip.errors import CheckpointError, ModelUnavailableError, QueryError
from vo_clip.ml.checkpoint import read_card
from vo_clip.ml.model import create_model, load_model


def test_checkpoint_round_trip_keeps_card_and_embeddings(tiny_archive, tmp_path):
    model = create_model(TINY_ARCHITECTURE, seed=3, name="round trip")
    path = tmp_path / "m.safetensors"
    card = model.save(path, training_data={"pairs": 12}, metrics={"top10": 0.5})
    assert read_card(path) == card
    assert card.embed_dim == 32 and card.metrics == {"top10": 0.5}
    assert len(card.fingerprint) == 64 and card.created.endswith("Z")
    loaded = load_model(str(path))
    assert loaded.fingerprint == card.fingerprint
    images = [tiny_archive.preview_path(i) for i in range(5)]
    np.testing.assert_array_equal(loaded.encode_images(images), model.encode_images(images))
    np.testing.assert_array_equal(loaded.encode_text(["ring nebula"]),
                                  model.encode_text(["ring nebula"]))


def test_half_precision_checkpoint_is_smaller_and_close(tiny_archive, tmp_path):
    model = create_model(TINY_ARCHITECTURE, seed=3)
    full, half = tmp_path / "full.safetensors", tmp_path / "half.safetensors"
    model.save(full)
    model.save(half, half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    images = [tiny_archive.preview_path(i) for i in range(4)]
    np.testing.assert_allclose(load_model(str(half)).encode_images(images),
                               model.encode_images(images), atol=2e-3)


def test_embeddings_are_unit_deterministic_and_batch_independent(tiny_archive):
    model = create_model(TINY_ARCHITECTURE, seed=0)
    images = [tiny_archive.preview_path(i) for i in range(10)]
    one_batch = model.encode_images(images, batch_size=16)
    small_batches = model.encode_images(images, batch_size=3)
    assert one_batch.dtype == np.float32 and one_batch.shape == (10, 32)
    np.testing.assert_allclose(np.linalg.norm(one_batch, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(one_batch, small_batches, atol=1e-6)
    texts = model.encode_text(["a", "globular cluster", "comet with a long tail"])
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(texts, model.encode_text(["a", "globular cluster",
                                                            "comet with a long tail"]))


def test_same_seed_same_fingerprint_other_seed_differs():
    a = create_model(TINY_ARCHITECTURE, seed=0).fingerprint
    assert a == create_model(TINY_ARCHITECTURE, seed=0).fingerprint
    assert a != create_model(TINY_ARCHITECTURE, seed=1).fingerprint


def test_empty_text_is_a_query_error():
    with pytest.raises(QueryError, match="empty"):
        create_model(TINY_ARCHITECTURE).encode_text([" "])


def test_unfetchable_pretrained_weights_say_what_to_download():
    with pytest.raises(ModelUnavailableError) as info:
        load_model("ViT-B-16:openai")
    message = str(info.value)
    assert "ViT-B-16:openai" in message
    assert "https://huggingface.co/timm/vit_base_patch16_clip_224.openai/" in message
    assert "--model 'ViT-B-16:/path/to/" in message
    assert "\n" not in message


def test_unfetchable_hub_model_says_what_to_download():
    with pytest.raises(ModelUnavailableError, match="https://huggingface.co/someone/paperclip"):
        load_model("hf-hub:someone/paperclip")


@pytest.mark.parametrize("spec, match", [
    ("ViT-B-16", "names no weights"),
    ("NoSuchArch:openai", "unknown open_clip architecture"),
    ("ViT-B-16:no_such_tag", "neither a pretrained tag"),
    ("/no/such/model.safetensors", "does not exist"),
    ("", "no model"),
])
def test_bad_specs_raise_checkpoint_errors(spec, match):
    with pytest.raises(CheckpointError, match=match):
        load_model(spec)


def test_files_that_are_not_checkpoints(tmp_path):
    from safetensors.torch import save_file

    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(CheckpointError, match="not a vo_clip checkpoint"):
        load_model(str(junk))
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="without a vo_clip model card"):
        load_model(str(bare))
    empty_dir = tmp_path / "somedir"
    empty_dir.mkdir()
    with pytest.raises(CheckpointError, match="neither a Hugging Face CLIP directory"):
        load_model(str(empty_dir))


def test_architecture_with_local_weights_file(tmp_path):
    """ARCH:/path loads open_clip weights from disk, as the download hint tells users."""
    import open_clip  # the test builds a registry model to save its weights

    arch = "RN50"
    torch.manual_seed(0)
    reference = open_clip.create_model(arch)
    weights = tmp_path / "rn50.pt"
    torch.save(reference.state_dict(), weights)
    model = load_model(f"{arch}:{weights}")
    assert model.card.base == f"{arch}:{weights}" and model.embed_dim == 1024
    assert model.fingerprint == load_model(f"{arch}:{weights}").fingerprint


def test_hf_clip_directory_loads_through_the_facade(tmp_path):
    """A transformers CLIP directory (PAPERCLIP's format) gives the same text embedding."""
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": 49408, "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": 1, "num_attention_heads": 2,
                     "max_position_embeddings": 77, "eos_token_id": 49407},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                       "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=16)
    hf = CLIPModel(config).eval()
    hf.save_pretrained(tmp_path / "hf")
    model = load_model(str(tmp_path / "hf"))
    import open_clip

    tokens = open_clip.tokenize(["a spiral galaxy with a bar"])
    with torch.no_grad():
        out = hf.get_text_features(input_ids=tokens)
    expected = getattr(out, "pooler_output", out)
    expected = torch.nn.functional.normalize(expected, dim=-1).numpy()
    np.testing.assert_allclose(model.encode_text(["a spiral galaxy with a bar"]), expected,
                               atol=1e-5)
    assert model.card.base.startswith("hf-transformers:")
