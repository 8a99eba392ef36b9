"""The model façade: the only module of vo_clip that imports open_clip.

Everything else asks this module for unit vectors: :meth:`ClipModel.encode_text` and
:meth:`ClipModel.encode_images` return float32 numpy arrays whose rows have norm 1, so a
dot product is a cosine similarity. A model is named by a *spec* string:

``PATH.safetensors``
    a vo_clip checkpoint (weights + model card), as written by :meth:`ClipModel.save`;
``DIR``
    a Hugging Face transformers CLIP directory (the format PAPERCLIP trained in,
    converted on load) or an open_clip directory with ``open_clip_config.json``;
``hf-hub:ORG/REPO``
    either of the two directory formats, fetched from the Hugging Face hub;
``demo`` / ``demo:untrained``
    the demo model shipped in the package (see :mod:`vo_clip.ml.demo_model`), or its
    architecture with the image tower untrained (the evaluation's baseline);
``ARCH:TAG`` / ``ARCH:/path/weights``
    an open_clip architecture with a pretrained tag (``ViT-B-16:openai``, the base
    PAPERCLIP fine-tuned) or with a local weights file; ``ARCH:random`` initialises
    the architecture randomly (seeded) as an untrained baseline.

When weights must be fetched and cannot be, :class:`ModelUnavailableError` says in one
sentence what to download and how to load it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from open_clip.model import CLIP, CustomTextCLIP, set_model_preprocess_cfg
from open_clip.transform import PreprocessCfg, image_transform_v2
from PIL import Image
from tqdm.auto import tqdm

from ..errors import CheckpointError, ModelUnavailableError
from .card import ModelCard
from .checkpoint import fingerprint, load_checkpoint, save_checkpoint
from .convert import hf_clip_to_open_clip, is_hf_clip_dir, read_hf_clip_dir
from .pixels import Preprocess, decoded_batches, embedding_settings, read_image
from .text_query import _FEW_TEXTS, _query_threads, checked_texts

__all__ = [
    "ClipModel",
    "context_length",
    "create_model",
    "has_frozen_text_trunk",
    "load_image",
    "load_model",
    "resolve_device",
    "text_projection",
    "text_trunk_features",
    "token_counter",
]

log = logging.getLogger(__name__)

_HUB_PREFIX = "hf-hub:"

# open_clip knows a Hugging Face text tower by its model_type; MPNet (the demo model's
# all-mpnet-base-v2) is not among them. Its config names its sizes as BERT's does.
open_clip.hf_model.arch_dict.setdefault("mpnet", {
    "config_names": {"context_length": "max_position_embeddings", "vocab_size": "vocab_size",
                     "width": "hidden_size", "heads": "num_attention_heads",
                     "layers": "num_hidden_layers", "layer_attr": "layer",
                     "token_embeddings_attr": "embeddings"},
    "pooler": "mean_pooler",
})


class ClipModel:
    """A CLIP model ready to embed text and images, with the card that describes it."""

    def __init__(self, module: torch.nn.Module, card: ModelCard, *, device: str = "auto",
                 tokenizer=None):
        self.device = resolve_device(device)
        self.module = module.to(self.device).eval()
        self.card = card
        self._tokenizer = tokenizer or _tokenizer_for(card.architecture)
        self._transform = image_transform_v2(_preprocess_cfg(card.preprocess), is_train=False)
        self._preprocess = Preprocess(self._transform)
        self._fingerprint = card.fingerprint or None
        self.spec: str | None = None  # how load_model was asked for it; an index records it

    @property
    def fingerprint(self) -> str:
        """Identity of the weights: checkpoints carry it; other sources get it computed."""
        if self._fingerprint is None:
            self._fingerprint = fingerprint(self.module.state_dict())
        return self._fingerprint

    def weights_changed(self) -> None:
        """Say that the weights were changed in place (trained): the fingerprint is redone."""
        self._fingerprint = None

    @property
    def embed_dim(self) -> int:
        return self.card.embed_dim

    def tokenize(self, texts: Sequence[str]) -> torch.Tensor:
        return self._tokenizer(list(texts))

    @torch.inference_mode()
    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors for ``texts``, one row each.

        Raises
        ------
        QueryError
            If a text is empty or only whitespace.
        """
        texts = checked_texts(texts)
        # A query's few texts run on one intra-op thread (see text_query._QueryThreads:
        # on busy cores two spinning threads took 2.5 s per query where one took 0.37 s;
        # open_clip's unpacked products gain nothing from two sleeping ones either).
        with _query_threads(self.device == "cpu" and len(texts) <= _FEW_TEXTS,
                            parallel=False):
            out = [
                self._to_numpy(self.module.encode_text(
                    self._trimmed(self._tokenizer(texts[i:i + batch_size])).to(self.device),
                    normalize=True))
                for i in range(0, len(texts), batch_size)
            ]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def _trimmed(self, tokens: torch.Tensor) -> torch.Tensor:
        """A Hugging Face tower's tokens cut after the batch's last real token.

        Such a tower masks padding out of attention and pooling, so the cut changes only
        float32 rounding, and a short query stops paying for the whole context (12 MPNet
        layers over 128 positions instead of 5). CLIP's own text transformer pools at
        the end-of-text token over a fixed-length causal mask: its tokens stay as they are.
        """
        config = getattr(getattr(self.module, "text", None), "config", None)
        pad = getattr(config, "pad_token_id", None)
        if pad is None:
            return tokens
        keep = int((tokens != pad).sum(dim=1).max()) if len(tokens) else 0
        return tokens[:, :max(keep, 1)]

    @torch.inference_mode()
    def encode_images(self, images: Iterable, *, batch_size: int | None = None,
                      workers: int | None = None, progress: str | None = None,
                      total: int | None = None) -> np.ndarray:
        """Unit vectors for ``images`` (PIL images or paths, any iterable), one row each.

        Rows are in input order. ``workers`` threads decode ahead of the model (0: in
        this thread); ``batch_size`` and ``workers`` default by device (see
        :func:`~vo_clip.ml.pixels.embedding_settings`). On a GPU the forward pass runs
        under bf16/fp16 autocast; on the CPU it is float32, and the vectors are
        bit-identical to applying the open_clip transform image by image (how indexes
        were built before). ``progress`` names a progress bar; it is shown only when given.

        Raises
        ------
        QueryError
            If an image cannot be read (the message names the file).
        """
        batch_size, workers = embedding_settings(self.device, batch_size, workers)
        out, previous = [], None
        with tqdm(total=total, desc=progress, unit="img", disable=progress is None) as bar:
            for decoded in decoded_batches(images, self._preprocess.decode, batch_size, workers):
                pixels = self._preprocess.batch(decoded, self.device)
                current = _fetch_later(self._encode_batch(pixels))
                if previous is not None:
                    out.append(previous())  # the batch before: its forward pass is done
                previous = current
                bar.update(len(decoded))
            if previous is not None:
                out.append(previous())
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def _encode_batch(self, pixels: torch.Tensor) -> torch.Tensor:
        """Unit float32 features of model inputs already on the device."""
        with _autocast(self.device):
            features = self.module.encode_image(pixels)
        return F.normalize(features.float(), dim=-1)  # in float32 whatever autocast used

    @staticmethod
    def _to_numpy(features: torch.Tensor) -> np.ndarray:
        return features.float().cpu().numpy().astype(np.float32, copy=False)

    def save(self, path: str | os.PathLike, *, half: bool = False, **card_changes) -> ModelCard:
        """Write a checkpoint; the parts named in ``card.external`` are left out of it."""
        skip = tuple(f"{tower}." for tower in self.card.external)
        state = {k: v for k, v in self.module.state_dict().items() if not k.startswith(skip)}
        card = dataclasses.replace(self.card, **card_changes)
        self.card = save_checkpoint(path, state, card, half=half)
        self._fingerprint = self.card.fingerprint
        return self.card


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when a GPU is usable, else ``cpu``."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def load_image(source) -> Image.Image:
    """An RGB PIL image from a path or an image; previews are often grayscale.

    Raises
    ------
    QueryError
        If the file is missing or not an image PIL can read.
    """
    return read_image(source)


def _autocast(device: str):
    """bf16 autocast on a GPU that has it, else fp16; nothing on the CPU (exact float32)."""
    if torch.device(device).type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _fetch_later(features: torch.Tensor):
    """A callable returning ``features`` as a float32 numpy array.

    From a GPU the copy to pinned host memory starts now without blocking and is waited
    for only when called, so the next batch's upload and forward pass queue up first and
    the GPU does not idle while the host prepares it.
    """
    if not features.is_cuda:
        array = features.numpy()
        return lambda: array
    host = torch.empty(features.shape, dtype=torch.float32, pin_memory=True)
    host.copy_(features, non_blocking=True)
    copied = torch.cuda.Event()
    copied.record()

    def result() -> np.ndarray:
        copied.synchronize()
        return host.numpy()

    return result


# -- construction ----------------------------------------------------------------------

def create_model(architecture: dict, preprocess: dict | None = None, *, seed: int = 0,
                 name: str = "random", device: str = "auto") -> ClipModel:
    """A randomly initialised model of ``architecture`` (an open_clip model config).

    Seeded, so two calls give the same weights: the untrained baseline of an evaluation
    and the tiny models of the test-suite rely on that.
    """
    torch.manual_seed(seed)
    module = _instantiate(architecture, pretrained_text=True)
    preprocess = _complete_preprocess(preprocess, architecture)
    card = ModelCard(name=name, architecture=architecture, preprocess=preprocess,
                     base=f"random(seed={seed})")
    return ClipModel(module, card, device=device)


def load_model(spec: str, *, device: str = "auto", cache_dir: str | None = None) -> ClipModel:
    """Load the model named by ``spec`` (see the module docstring for the forms).

    Raises
    ------
    CheckpointError
        If a local path is neither a vo_clip checkpoint nor a known model directory.
    ModelUnavailableError
        If weights must be downloaded and cannot be.
    """
    spec = str(spec).strip()
    if not spec:
        raise CheckpointError("no model given", hint="pass --model SPEC")
    if spec in ("demo", "demo:untrained"):
        return _load_demo(spec, device)
    path = Path(spec).expanduser()
    if path.exists():
        model = (_load_vo_clip_checkpoint(path, device) if path.is_file()
                 else _load_model_dir(path, spec, device))
        model.spec = str(path.resolve())
        return model
    if spec.startswith(_HUB_PREFIX):
        model = _load_model_dir(_fetch_hub_repo(spec[len(_HUB_PREFIX):], cache_dir), spec, device)
    elif ":" in spec:
        arch, tag = spec.split(":", 1)
        model = _load_architecture(arch, tag, device, cache_dir)
    else:
        model = None
    if model is not None:
        model.spec = spec
        return model
    if "/" in spec or spec.endswith((".safetensors", ".pt", ".bin")):
        raise CheckpointError(f"model file {spec} does not exist")
    raise CheckpointError(
        f"model spec {spec!r} names no weights",
        hint=f"use {spec}:TAG (one of {_tags(spec) or 'the open_clip pretrained tags'}), "
             f"{spec}:/path/to/weights, or a checkpoint path",
    )


def _load_demo(spec: str, device: str) -> ClipModel:
    from .demo_model import DEMO_CHECKPOINT, create_demo_model

    if spec == "demo:untrained":
        model = create_demo_model(device=device)
    elif not DEMO_CHECKPOINT.is_file():
        raise ModelUnavailableError(f"the demo model is missing from this installation "
                                    f"({DEMO_CHECKPOINT})", hint="vo-clip demo --retrain-model")
    else:
        model = _load_vo_clip_checkpoint(DEMO_CHECKPOINT, device)
    model.spec = spec
    return model


def _load_vo_clip_checkpoint(path: Path, device: str) -> ClipModel:
    card, state = load_checkpoint(path)
    try:
        module = _instantiate(card.architecture,
                              pretrained_text=any(k.startswith("text") for k in card.external))
        missing, unexpected = module.load_state_dict(state, strict=False)
    except (RuntimeError, KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path} does not match the architecture in its card: {exc}") from exc
    external = tuple(f"{tower}." for tower in card.external)
    missing = [k for k in missing if not k.startswith(external)]
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not match its card: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    return ClipModel(module, card, device=device)


def _load_model_dir(path: Path, spec: str, device: str) -> ClipModel:
    if is_hf_clip_dir(path):
        hf_config, hf_state, preprocessor = read_hf_clip_dir(path)
        architecture, preprocess, state = hf_clip_to_open_clip(hf_config, hf_state, preprocessor)
        module = _instantiate(architecture)
        module.load_state_dict(state, strict=True)
        card = ModelCard(name=path.name, architecture=architecture, preprocess=preprocess,
                         base=f"hf-transformers:{spec}")
        return ClipModel(module, card, device=device)
    config_path = path / "open_clip_config.json"
    if not config_path.is_file():
        raise CheckpointError(
            f"{path} is neither a Hugging Face CLIP directory (config.json with model_type "
            f"'clip') nor an open_clip directory (open_clip_config.json)"
        )
    config = json.loads(config_path.read_text())
    try:
        module = open_clip.create_model(f"local-dir:{path}", require_pretrained=True)
    except (RuntimeError, ValueError, FileNotFoundError) as exc:
        raise CheckpointError(f"cannot load the open_clip model in {path}: {exc}") from exc
    card = ModelCard(name=path.name, architecture=config["model_cfg"],
                     preprocess=_complete_preprocess(config.get("preprocess_cfg"),
                                                     config["model_cfg"]),
                     base=f"open_clip:{spec}")
    return ClipModel(module, card, device=device,
                     tokenizer=open_clip.get_tokenizer(f"local-dir:{path}"))


def _load_architecture(arch: str, tag: str, device: str, cache_dir: str | None) -> ClipModel:
    architecture = open_clip.get_model_config(arch)
    if architecture is None:
        raise CheckpointError(
            f"unknown open_clip architecture {arch!r}",
            hint="run python -c 'import open_clip; print(open_clip.list_models())'",
        )
    if tag == "random":
        return create_model(architecture, name=arch, device=device)
    tag_cfg = open_clip.get_pretrained_cfg(arch, tag)
    if tag_cfg:
        weights = _fetch_tag_weights(arch, tag, tag_cfg, cache_dir)
    elif Path(tag).expanduser().is_file():
        weights, tag_cfg = str(Path(tag).expanduser()), {}
    else:
        raise CheckpointError(
            f"{tag!r} is neither a pretrained tag of {arch} nor a weights file",
            hint=f"tags of {arch}: {_tags(arch) or 'none'}",
        )
    quick_gelu = bool(tag_cfg.get("quick_gelu", architecture.get("quick_gelu", False)))
    try:
        module = open_clip.create_model(arch, pretrained=weights, force_quick_gelu=quick_gelu)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise CheckpointError(f"{weights} does not hold {arch} weights: {exc}") from exc
    architecture = {**architecture, "quick_gelu": quick_gelu}
    preprocess = _complete_preprocess(
        {k: tag_cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in tag_cfg},
        architecture)
    card = ModelCard(name=f"{arch} ({Path(tag).name})", architecture=architecture,
                     preprocess=preprocess, base=f"{arch}:{tag}")
    return ClipModel(module, card, device=device, tokenizer=open_clip.get_tokenizer(arch))


# -- fetching (the network edge) --------------------------------------------------------

def _fetch_tag_weights(arch: str, tag: str, tag_cfg: dict, cache_dir: str | None) -> str:
    try:
        return open_clip.download_pretrained(tag_cfg, cache_dir=cache_dir)
    except Exception as exc:  # hub, HTTP and offline errors all mean "not fetchable"
        where = _download_location(tag_cfg)
        raise ModelUnavailableError(
            f"weights for {arch}:{tag} are not on this machine and cannot be fetched "
            f"({type(exc).__name__}); download {where} and load it with "
            f"--model '{arch}:/path/to/{where.rsplit('/', 1)[-1]}'"
        ) from exc


def _fetch_hub_repo(repo: str, cache_dir: str | None) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo, cache_dir=cache_dir))
    except Exception as exc:  # offline, missing repo, HTTP errors: all "not fetchable"
        raise ModelUnavailableError(
            f"model {repo} cannot be fetched from the Hugging Face hub "
            f"({type(exc).__name__}); download the files of https://huggingface.co/{repo} "
            f"into a directory and pass that directory as --model"
        ) from exc


def _download_location(tag_cfg: dict) -> str:
    """The URL a person can fetch the weights of a pretrained tag from."""
    hub = tag_cfg.get("hf_hub", "")
    if hub:
        # open_clip writes 'org/repo/' for the default file name and 'org/repo/file' otherwise
        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        return f"https://huggingface.co/{repo}/resolve/main/{filename}"
    return tag_cfg.get("url", "the weights file")


def _tags(arch: str) -> str:
    try:
        return ", ".join(open_clip.list_pretrained_tags_by_model(arch))
    except (KeyError, ValueError):
        return ""


# -- open_clip plumbing -----------------------------------------------------------------

def _instantiate(architecture: dict, *, pretrained_text: bool = False) -> torch.nn.Module:
    """Build the open_clip module for ``architecture`` without its model registry.

    ``pretrained_text`` loads a Hugging Face text tower's own weights (a fresh model, or
    a checkpoint that leaves the tower out); otherwise the checkpoint supplies them.
    """
    cfg = copy.deepcopy(architecture)
    text_cfg = cfg.get("text_cfg", {})
    custom_text = cfg.pop("custom_text", False) or "hf_model_name" in text_cfg
    if "hf_model_name" in text_cfg:
        from .towers import resolve_text_tower

        text_cfg["hf_model_name"] = resolve_text_tower(text_cfg["hf_model_name"])
        text_cfg["hf_model_pretrained"] = pretrained_text
    with _quiet_transformers():
        module = (CustomTextCLIP if custom_text else CLIP)(**cfg)
    set_model_preprocess_cfg(module, _complete_preprocess(None, architecture))
    return module


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' load reports and progress bars while a tower loads."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _complete_preprocess(preprocess: dict | None, architecture: dict) -> dict:
    size = architecture["vision_cfg"].get("image_size", 224)
    base = {"size": size, "mean": list(open_clip.OPENAI_DATASET_MEAN),
            "std": list(open_clip.OPENAI_DATASET_STD), "interpolation": "bicubic",
            "resize_mode": "shortest", "fill_color": 0, "mode": "RGB"}
    base.update({k: (list(v) if isinstance(v, tuple) else v)
                 for k, v in (preprocess or {}).items()})
    return base


def _preprocess_cfg(preprocess: dict) -> PreprocessCfg:
    known = PreprocessCfg.__dataclass_fields__
    values = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in preprocess.items() if k in known}
    return PreprocessCfg(**values)


def _tokenizer_for(architecture: dict):
    text_cfg = architecture.get("text_cfg", {})
    context_length = text_cfg.get("context_length", 77)
    if text_cfg.get("hf_tokenizer_name"):
        from .towers import resolve_text_tower

        return open_clip.tokenizer.HFTokenizer(
            resolve_text_tower(text_cfg["hf_tokenizer_name"]), context_length=context_length,
            tokenizer_mode=text_cfg.get("tokenizer_mode"))
    return open_clip.SimpleTokenizer(context_length=context_length)


# -- what training needs from the towers --------------------------------------------------

def has_frozen_text_trunk(model: ClipModel) -> bool:
    """Whether the text tower splits into a pretrained trunk and a trainable projection."""
    return isinstance(getattr(model.module, "text", None), open_clip.hf_model.HFTextEncoder)


@torch.inference_mode()
def text_trunk_features(model: ClipModel, texts: Sequence[str], *,
                        batch_size: int = 64) -> torch.Tensor:
    """Pooled outputs of the pretrained text trunk, before the projection.

    With the trunk locked (LiT), these never change during training, so computing them
    once replaces the costliest part of every training step. Texts go through in order
    of length and each batch is cut after its longest text's last token: attention and
    pooling mask padding out, so only float32 rounding changes, and the demo archive's
    captions (median 33 of 128 tokens) cost a quarter of the padded forward passes.
    """
    text = model.module.text
    pad = text.config.pad_token_id
    tokens = model.tokenize(list(texts))
    lengths = (tokens != pad).sum(dim=1)
    order = torch.argsort(lengths, descending=True, stable=True)
    out = torch.empty(len(texts), text.config.hidden_size)
    with torch.no_grad():  # not inference mode: training saves these for the backward pass
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            keep = int(lengths[rows].max())
            batch = tokens[rows, :keep].to(model.device)
            mask = (batch != pad).long()
            hidden = text.transformer(input_ids=batch, attention_mask=mask)
            out[rows] = text.pooler(hidden, mask).float().cpu()
    return out


def text_projection(model: ClipModel) -> torch.nn.Module:
    """The trainable head on top of :func:`text_trunk_features`."""
    return model.module.text.proj


def token_counter(model: ClipModel):
    """``word -> number of tokens`` for the model's tokenizer, without start/end tokens.

    Both open_clip's BPE and WordPiece tokenize whitespace-separated words independently,
    so a text's token count is the sum over its words: word sub-sampling can fill the
    context exactly without tokenizing every candidate subset.
    """
    tokenizer = model._tokenizer
    if isinstance(tokenizer, open_clip.tokenizer.HFTokenizer):
        def count(word: str) -> int:
            return len(tokenizer.tokenizer.encode(word, add_special_tokens=False))
    else:
        def count(word: str) -> int:
            return len(tokenizer.encode(word))
    return count


def context_length(model: ClipModel) -> int:
    """Tokens a caption may use, start and end tokens included."""
    return int(model.card.architecture.get("text_cfg", {}).get("context_length", 77))
