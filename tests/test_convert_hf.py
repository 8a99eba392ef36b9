"""HF CLIPModel -> open_clip conversion must reproduce the HF embeddings exactly.

A tiny random CLIPModel is built in memory (no hub access), saved the way
PAPERCLIP checkpoints are saved, converted, and both models are run on the
same inputs.
"""

import json

import open_clip
import pytest
import torch
import transformers

from vo_clip.ml.convert import hf_clip_to_open_clip, is_hf_clip_dir, read_hf_clip_dir

VOCAB = 1000
EOT = VOCAB - 1  # largest id, as in the CLIP BPE vocabulary
CONTEXT = 16


def _hf_model(hidden_act: str = "quick_gelu", seed: int = 0):
    """A small random CLIPModel whose EOT is the largest token id."""
    torch.manual_seed(seed)
    config = transformers.CLIPConfig(
        vision_config=dict(
            image_size=32, patch_size=8, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128, hidden_act=hidden_act,
        ),
        text_config=dict(
            vocab_size=VOCAB, max_position_embeddings=CONTEXT, hidden_size=48,
            num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
            hidden_act=hidden_act, bos_token_id=EOT - 1, eos_token_id=EOT,
            pad_token_id=0,
        ),
        projection_dim=24,
        logit_scale_init_value=3.1,
    )
    return transformers.CLIPModel(config).eval()


def _features(output) -> torch.Tensor:
    """transformers 5.x returns an output object, 4.x a tensor."""
    return output if isinstance(output, torch.Tensor) else output.pooler_output


def _token_ids() -> torch.Tensor:
    """Rows of random tokens, then EOT, then 0 padding; one row fills the context."""
    gen = torch.Generator().manual_seed(1)
    rows = []
    for length in (3, 9, CONTEXT - 1):
        body = torch.randint(1, EOT - 1, (length,), generator=gen)
        pad = torch.zeros(CONTEXT - length - 1, dtype=torch.long)
        rows.append(torch.cat([body, torch.tensor([EOT]), pad]))
    return torch.stack(rows)


def _converted(tmp_path, hf_model):
    hf_model.save_pretrained(tmp_path)
    model_cfg, preprocess_cfg, state_dict = hf_clip_to_open_clip(*read_hf_clip_dir(tmp_path))
    oc_model = open_clip.model.CLIP(**model_cfg)
    oc_model.load_state_dict(state_dict, strict=True)
    return model_cfg, preprocess_cfg, oc_model.eval()


@pytest.mark.parametrize("hidden_act, quick_gelu", [("quick_gelu", True), ("gelu", False)])
def test_open_clip_matches_hf(tmp_path, hidden_act, quick_gelu):
    hf_model = _hf_model(hidden_act)
    model_cfg, preprocess_cfg, oc_model = _converted(tmp_path, hf_model)

    assert model_cfg["quick_gelu"] is quick_gelu
    assert model_cfg["embed_dim"] == 24
    assert preprocess_cfg["size"] == 32
    assert preprocess_cfg["resize_mode"] == "shortest"

    pixels = torch.randn(3, 3, 32, 32, generator=torch.Generator().manual_seed(2))
    tokens = _token_ids()
    with torch.no_grad():
        hf_image = _features(hf_model.get_image_features(pixel_values=pixels))
        hf_text = _features(hf_model.get_text_features(input_ids=tokens))
        oc_image = oc_model.encode_image(pixels)
        oc_text = oc_model.encode_text(tokens)

    assert oc_image.shape == (3, 24) and oc_text.shape == (3, 24)
    torch.testing.assert_close(oc_image, hf_image, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(oc_text, hf_text, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(oc_model.logit_scale.detach(), hf_model.logit_scale.detach())


def test_preprocessor_config_and_bin_fallback(tmp_path):
    hf_model = _hf_model()
    # Older transformers saved the position_ids buffers; they must be dropped.
    legacy = dict(hf_model.state_dict())
    legacy["text_model.embeddings.position_ids"] = torch.arange(CONTEXT)[None]
    legacy["vision_model.embeddings.position_ids"] = torch.arange(17)[None]
    torch.save(legacy, tmp_path / "pytorch_model.bin")
    hf_model.config.to_json_file(tmp_path / "config.json")
    mean, std = [0.1, 0.2, 0.3], [0.4, 0.5, 0.6]
    transformers.CLIPImageProcessor(
        size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
        image_mean=mean, image_std=std,
    ).save_pretrained(tmp_path)

    config, state_dict, preprocessor = read_hf_clip_dir(tmp_path)
    model_cfg, preprocess_cfg, converted = hf_clip_to_open_clip(config, state_dict, preprocessor)
    open_clip.model.CLIP(**model_cfg).load_state_dict(converted, strict=True)

    assert preprocess_cfg == {
        "size": 32, "mean": tuple(mean), "std": tuple(std),
        "interpolation": "bicubic", "resize_mode": "shortest",
    }


def test_bad_checkpoints_raise(tmp_path):
    hf_model = _hf_model()
    config = hf_model.config.to_dict()
    state_dict = dict(hf_model.state_dict())

    extra = dict(state_dict, **{"text_model.pooler.dense.weight": torch.zeros(2)})
    with pytest.raises(ValueError, match=r"text_model\.pooler\.dense\.weight"):
        hf_clip_to_open_clip(config, extra)

    missing = dict(state_dict)
    del missing["vision_model.encoder.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(ValueError, match=r"vision_model\.encoder\.layers\.1\.self_attn\.k_proj\.bias"):
        hf_clip_to_open_clip(config, missing)

    other_eps = json.loads(json.dumps(config))
    other_eps["vision_config"]["layer_norm_eps"] = 1e-6
    with pytest.raises(ValueError, match="layer_norm_eps"):
        hf_clip_to_open_clip(other_eps, state_dict)

    assert not is_hf_clip_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "siglip"}))
    assert not is_hf_clip_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "clip"}))
    assert is_hf_clip_dir(tmp_path)
