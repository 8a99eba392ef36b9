"""Convert Hugging Face transformers CLIP checkpoints into the open_clip layout.

PAPERCLIP (Mishra-Sharma, Song & Thaler 2024, arXiv:2403.08851) fine-tuned
CLIP on Hubble proposal abstracts and observation images with the Hugging Face
``transformers`` ``CLIPModel``, so its checkpoints are HF directories
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin`` +
``preprocessor_config.json``). The service runs every model through open_clip,
so those weights have to be renamed and reshaped once, here, rather than
teaching the service a second model stack.

The conversion is exact (same float32 numbers) under these conditions, which
are checked where a config can state them:

* both towers use the same activation, ``quick_gelu`` or exact ``gelu``
  (open_clip has one ``quick_gelu`` switch for the whole model);
* every layer norm uses eps 1e-5, the value open_clip hard-codes;
* the text is pooled at the same position. open_clip pools at
  ``argmax(token id)``; HF pools at ``argmax(token id)`` when the config's
  ``eos_token_id`` is 2 (configs older than transformers PR #24773) and
  otherwise at the first position holding ``eos_token_id``. The two agree
  whenever ``eos_token_id`` is the largest token id in each sequence
  (``torch.argmax`` returns the first maximum, so a repeated EOT is handled
  the same way), which always holds for the CLIP BPE tokenizer
  (EOT = 49407 = vocab_size - 1). A tokenizer with extra tokens above EOT
  would break this, and the conversion cannot detect it from the weights.

This module deliberately does not import open_clip (only
``vo_clip.ml.model`` does); it only produces a config dict and a state dict
that ``open_clip.model.CLIP(**model_cfg).load_state_dict(sd, strict=True)``
accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch

__all__ = ["read_hf_clip_dir", "is_hf_clip_dir", "hf_clip_to_open_clip"]

OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# HF CLIPTextConfig / CLIPVisionConfig defaults: old config.json files omit
# values equal to the defaults, so they have to be filled in here.
_HF_TEXT_DEFAULTS = {
    "vocab_size": 49408, "hidden_size": 512, "intermediate_size": 2048,
    "num_hidden_layers": 12, "num_attention_heads": 8,
    "max_position_embeddings": 77, "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
}
_HF_VISION_DEFAULTS = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "num_channels": 3, "image_size": 224,
    "patch_size": 32, "hidden_act": "quick_gelu", "layer_norm_eps": 1e-5,
}
# HF activation name -> open_clip ``quick_gelu`` flag. HF "gelu" is the exact
# erf GELU, the same as open_clip's nn.GELU; the tanh variants are not.
_ACTIVATIONS = {"quick_gelu": True, "gelu": False}
_OPEN_CLIP_LN_EPS = 1e-5
# PIL resample codes used by HF image processors -> open_clip names.
_RESAMPLE = {2: "bilinear", 3: "bicubic"}

# (HF suffix, open_clip suffix) inside one encoder layer; q/k/v are separate.
_BLOCK_KEYS = (
    ("self_attn.out_proj.weight", "attn.out_proj.weight"),
    ("self_attn.out_proj.bias", "attn.out_proj.bias"),
    ("layer_norm1.weight", "ln_1.weight"),
    ("layer_norm1.bias", "ln_1.bias"),
    ("layer_norm2.weight", "ln_2.weight"),
    ("layer_norm2.bias", "ln_2.bias"),
    ("mlp.fc1.weight", "mlp.c_fc.weight"),
    ("mlp.fc1.bias", "mlp.c_fc.bias"),
    ("mlp.fc2.weight", "mlp.c_proj.weight"),
    ("mlp.fc2.bias", "mlp.c_proj.bias"),
)
_VISION_KEYS = (
    ("vision_model.embeddings.class_embedding", "visual.class_embedding"),
    ("vision_model.embeddings.patch_embedding.weight", "visual.conv1.weight"),
    ("vision_model.embeddings.position_embedding.weight", "visual.positional_embedding"),
    ("vision_model.pre_layrnorm.weight", "visual.ln_pre.weight"),
    ("vision_model.pre_layrnorm.bias", "visual.ln_pre.bias"),
    ("vision_model.post_layernorm.weight", "visual.ln_post.weight"),
    ("vision_model.post_layernorm.bias", "visual.ln_post.bias"),
)
_TEXT_KEYS = (
    ("text_model.embeddings.token_embedding.weight", "token_embedding.weight"),
    ("text_model.embeddings.position_embedding.weight", "positional_embedding"),
    ("text_model.final_layer_norm.weight", "ln_final.weight"),
    ("text_model.final_layer_norm.bias", "ln_final.bias"),
    ("logit_scale", "logit_scale"),
)
# Non-persistent in current transformers but saved by older versions; they
# only hold arange() and open_clip has no counterpart.
_IGNORED_KEYS = (
    "text_model.embeddings.position_ids",
    "vision_model.embeddings.position_ids",
)


def read_hf_clip_dir(
    path: str | os.PathLike,
) -> tuple[dict, dict[str, torch.Tensor], dict | None]:
    """Load the three parts of a local HF CLIP directory without transformers.

    Reading the files directly keeps the conversion independent of the
    installed transformers version and never touches the network.
    ``model.safetensors`` is preferred because it cannot execute code; the
    pickle fallback is loaded with ``weights_only=True`` for the same reason.

    Parameters
    ----------
    path : str or os.PathLike
        Directory written by ``CLIPModel.save_pretrained``.

    Returns
    -------
    config : dict
        Parsed ``config.json``.
    state_dict : dict of str to torch.Tensor
        The weights, on the CPU.
    preprocessor_config : dict or None
        Parsed ``preprocessor_config.json``, None when the file is absent.

    Raises
    ------
    FileNotFoundError
        If ``config.json`` or a single-file weights file is missing (sharded
        checkpoints are not supported; CLIP checkpoints fit in one file).
    """
    root = Path(path)
    config = json.loads((root / "config.json").read_text(encoding="utf-8"))
    if (root / "model.safetensors").is_file():
        from safetensors.torch import load_file

        state_dict = load_file(root / "model.safetensors", device="cpu")
    elif (root / "pytorch_model.bin").is_file():
        state_dict = torch.load(
            root / "pytorch_model.bin", map_location="cpu", weights_only=True
        )
    else:
        raise FileNotFoundError(
            f"{root}: no model.safetensors or pytorch_model.bin "
            "(sharded checkpoints are not supported)"
        )
    pre_path = root / "preprocessor_config.json"
    preprocessor = (
        json.loads(pre_path.read_text(encoding="utf-8")) if pre_path.is_file() else None
    )
    return config, state_dict, preprocessor


def is_hf_clip_dir(path: str | os.PathLike) -> bool:
    """Tell an HF CLIP directory apart from an open_clip checkpoint.

    Callers use this to pick a loader, so it must never raise on arbitrary
    paths; anything unreadable is simply not an HF CLIP directory.

    Parameters
    ----------
    path : str or os.PathLike
        Candidate checkpoint location.

    Returns
    -------
    bool
        True when ``path`` is a directory whose ``config.json`` declares
        ``"model_type": "clip"``.
    """
    config_path = Path(path) / "config.json"
    if not config_path.is_file():
        return False
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(config, dict) and config.get("model_type") == "clip"


def hf_clip_to_open_clip(
    hf_config: dict,
    hf_state_dict: Mapping[str, torch.Tensor],
    preprocessor_config: dict | None = None,
) -> tuple[dict, dict, dict[str, torch.Tensor]]:
    """Translate an HF ``CLIPModel`` checkpoint into open_clip's terms.

    The result is checked for exactness where the config allows it (see the
    module docstring), because a model that loads but computes slightly
    different embeddings would silently degrade search results.

    Parameters
    ----------
    hf_config : dict
        Parsed HF ``config.json`` of a ``CLIPModel``.
    hf_state_dict : Mapping of str to torch.Tensor
        The HF weights; tensors are reused, not copied, where no reshaping
        is needed.
    preprocessor_config : dict, optional
        Parsed HF ``preprocessor_config.json``; OpenAI CLIP defaults when None.

    Returns
    -------
    model_cfg : dict
        Keyword arguments for ``open_clip.model.CLIP``.
    preprocess_cfg : dict
        open_clip preprocess config (size, mean, std, interpolation,
        resize_mode).
    state_dict : dict of str to torch.Tensor
        Weights that load into ``CLIP(**model_cfg)`` with ``strict=True``.

    Raises
    ------
    ValueError
        If the config is not a CLIP config, asks for something open_clip
        cannot reproduce exactly, or the weights have a missing or
        unexpected key (named in the message).
    """
    model_cfg = _model_cfg(hf_config)
    preprocess_cfg = _preprocess_cfg(
        preprocessor_config, model_cfg["vision_cfg"]["image_size"]
    )
    state_dict = _convert_state_dict(
        hf_state_dict,
        model_cfg["vision_cfg"]["layers"],
        model_cfg["text_cfg"]["layers"],
    )
    return model_cfg, preprocess_cfg, state_dict


def _tower_configs(hf_config: dict) -> tuple[dict, dict]:
    """Merge defaults, ``*_config`` and legacy ``*_config_dict`` like HF does.

    HF gives ``text_config_dict`` precedence over ``text_config``; old
    checkpoints carry both, so the same precedence is kept here.
    """
    if hf_config.get("model_type") != "clip":
        raise ValueError(
            f"not an HF CLIP config: model_type={hf_config.get('model_type')!r}"
        )
    towers = []
    for name, defaults in (("text", _HF_TEXT_DEFAULTS), ("vision", _HF_VISION_DEFAULTS)):
        merged = dict(defaults)
        merged.update(hf_config.get(f"{name}_config") or {})
        merged.update(hf_config.get(f"{name}_config_dict") or {})
        towers.append(merged)
    return towers[0], towers[1]


def _check_tower(name: str, cfg: dict) -> bool:
    """Reject tower settings open_clip would silently compute differently.

    Returns the open_clip ``quick_gelu`` flag for this tower.
    """
    eps = cfg["layer_norm_eps"]
    if eps is not None and float(eps) != _OPEN_CLIP_LN_EPS:
        raise ValueError(
            f"{name}_config.layer_norm_eps={eps} is not supported: open_clip's "
            f"CLIP uses LayerNorm eps={_OPEN_CLIP_LN_EPS}"
        )
    act = cfg["hidden_act"]
    if act not in _ACTIVATIONS:
        raise ValueError(
            f"{name}_config.hidden_act={act!r} is not supported; "
            f"expected one of {sorted(_ACTIVATIONS)}"
        )
    width, heads, mlp = cfg["hidden_size"], cfg["num_attention_heads"], cfg["intermediate_size"]
    if width % heads or int(width * (mlp / width)) != mlp:
        raise ValueError(
            f"{name}_config: hidden_size={width}, num_attention_heads={heads}, "
            f"intermediate_size={mlp} cannot be expressed as open_clip "
            "head_width/heads and mlp_ratio"
        )
    return _ACTIVATIONS[act]


def _model_cfg(hf_config: dict) -> dict:
    """Build open_clip ``CLIP`` kwargs; sizes come from the config, not guesses."""
    text, vision = _tower_configs(hf_config)
    quick_text, quick_vision = _check_tower("text", text), _check_tower("vision", vision)
    if quick_text != quick_vision:
        raise ValueError(
            "text and vision towers use different activations "
            f"({text['hidden_act']!r} vs {vision['hidden_act']!r}); open_clip "
            "has a single quick_gelu switch for both"
        )
    if vision["num_channels"] != 3:
        raise ValueError(f"vision_config.num_channels={vision['num_channels']}; open_clip needs 3")
    return {
        "embed_dim": hf_config.get("projection_dim", 512),
        "quick_gelu": quick_vision,
        "vision_cfg": {
            "image_size": _size(vision["image_size"]),
            "patch_size": _size(vision["patch_size"]),
            "width": vision["hidden_size"],
            "layers": vision["num_hidden_layers"],
            "head_width": vision["hidden_size"] // vision["num_attention_heads"],
            "mlp_ratio": vision["intermediate_size"] / vision["hidden_size"],
        },
        "text_cfg": {
            "context_length": text["max_position_embeddings"],
            "vocab_size": text["vocab_size"],
            "width": text["hidden_size"],
            "heads": text["num_attention_heads"],
            "layers": text["num_hidden_layers"],
            "mlp_ratio": text["intermediate_size"] / text["hidden_size"],
        },
    }


def _size(value) -> int | tuple[int, int]:
    """Normalise an HF size (int, list or dict) to open_clip's int or (h, w)."""
    if isinstance(value, Mapping):
        if "shortest_edge" in value:
            return int(value["shortest_edge"])
        value = (value["height"], value["width"])
    if isinstance(value, (list, tuple)):
        height, width = (int(v) for v in value)
        return height if height == width else (height, width)
    return int(value)


def _preprocess_cfg(pre: dict | None, image_size) -> dict:
    """Map the HF image processor onto open_clip's resize-crop-normalise.

    HF resizes the short side to ``size["shortest_edge"]`` (open_clip
    ``shortest``) or straight to ``size["height"/"width"]`` (open_clip
    ``squash``), then centre-crops. open_clip resizes straight to the crop
    size, so a processor that resizes to something else, or skips a step,
    cannot be reproduced and is rejected instead of approximated.
    """
    cfg = {"size": image_size, "mean": OPENAI_CLIP_MEAN, "std": OPENAI_CLIP_STD,
           "interpolation": "bicubic", "resize_mode": "shortest"}
    if pre is None:
        return cfg
    raw_size = pre.get("size", pre.get("crop_size", image_size))
    squash = isinstance(raw_size, Mapping) and "shortest_edge" not in raw_size
    resize, crop = _size(raw_size), _size(pre.get("crop_size", raw_size))
    needed = ("do_resize", "do_normalize") + (() if squash else ("do_center_crop",))
    skipped = [k for k in needed if pre.get(k) is False]
    if skipped or crop != image_size or resize != crop:
        raise ValueError(
            f"preprocessor_config not expressible in open_clip: skipped={skipped}, "
            f"resize={resize}, crop={crop}, model image_size={image_size}"
        )
    resample = pre.get("resample", 3)
    if resample not in _RESAMPLE:
        raise ValueError(f"preprocessor_config.resample={resample!r} is not supported")
    cfg.update(mean=tuple(pre.get("image_mean", OPENAI_CLIP_MEAN)),
               std=tuple(pre.get("image_std", OPENAI_CLIP_STD)),
               interpolation=_RESAMPLE[resample],
               resize_mode="squash" if squash else "shortest")
    return cfg


def _convert_state_dict(
    hf_state_dict: Mapping[str, torch.Tensor], vision_layers: int, text_layers: int
) -> dict[str, torch.Tensor]:
    """Rename and reshape every HF tensor, accounting for each one.

    Every key must be consumed exactly once so that a non-CLIP checkpoint, or
    one whose layer count disagrees with its config, fails here with the
    offending key named instead of loading half a model.
    """
    pending = {k: v for k, v in hf_state_dict.items() if k not in _IGNORED_KEYS}

    def take(key: str) -> torch.Tensor:
        try:
            return pending.pop(key)
        except KeyError:
            raise ValueError(f"HF CLIP state dict is missing key {key!r}") from None

    out = {oc: take(hf) for hf, oc in _VISION_KEYS + _TEXT_KEYS}
    out["visual.proj"] = take("visual_projection.weight").t().contiguous()
    out["text_projection"] = take("text_projection.weight").t().contiguous()
    towers = (("vision_model", "visual.", vision_layers), ("text_model", "", text_layers))
    for hf_tower, oc_tower, n_layers in towers:
        for i in range(n_layers):
            hf = f"{hf_tower}.encoder.layers.{i}."
            oc = f"{oc_tower}transformer.resblocks.{i}."
            for kind in ("weight", "bias"):
                qkv = [take(f"{hf}self_attn.{p}_proj.{kind}") for p in "qkv"]
                out[f"{oc}attn.in_proj_{kind}"] = torch.cat(qkv, dim=0)
            out.update({oc + o: take(hf + h) for h, o in _BLOCK_KEYS})
    if pending:
        raise ValueError(
            f"unexpected keys in HF CLIP state dict: {sorted(pending)[:10]}"
            + (f" (+{len(pending) - 10} more)" if len(pending) > 10 else "")
        )
    return out
