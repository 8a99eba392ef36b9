"""Text queries without open_clip: the text half of a checkpoint whose text tower is a
BERT or an MPNet.

A new ``vo-clip query "text"`` process spent most of its time importing: open_clip
pulls in torchvision (and through it torch._dynamo), transformers its auto-model
machinery, some 10-25 s on two busy cores, although a text query runs only the text
tower. For a vo_clip checkpoint whose text tower is a BERT encoder from Hugging Face
(all-MiniLM-L6-v2) or an MPNet one (all-mpnet-base-v2), :func:`load_text_encoder`
builds that tower from torch operations alone, reading the tower's safetensors and the
checkpoint's projection directly, and tokenizes with the ``tokenizers`` library.

It computes what :meth:`vo_clip.ml.model.ClipModel.encode_text` computes (open_clip's
``HFTextEncoder`` over transformers' ``BertModel`` or ``MPNetModel``, whose attention
adds a relative position bias; then mean pooling, linear projection, normalisation)
in forms quicker for a query's few tokens: the weights packed for oneDNN, query, key
and value in one product, attention in one fused kernel. Only the float32 rounding
differs (within 1e-6 per component; the tests compare the two). Anything else
(another tower type, a model directory, an open_clip architecture) returns ``None``
and the caller loads the full model.
"""

from __future__ import annotations

import contextlib
import functools
import html
import json
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import QueryError
from ..openmp import few_text_threads

__all__ = ["TextEncoder", "TowerText", "checked_texts", "load_text_encoder", "text_encoder_of"]

#: Up to this many texts are a query's few (see :class:`_QueryThreads`).
_FEW_TEXTS = 8

#: The Hugging Face text tower types :class:`TextEncoder` runs.
_FAST_TYPES = ("bert", "mpnet")
#: transformers' ``MPNetEmbeddings.padding_idx``: fixed there, not read from the config.
_MPNET_PADDING_IDX = 1
#: transformers' ``MPNetEncoder`` always buckets relative positions this way (its
#: ``compute_position_bias`` and ``relative_position_bucket`` defaults).
_MPNET_BUCKETS, _MPNET_MAX_DISTANCE = 32, 128


def load_text_encoder(spec: str, *, device: str = "cpu", trim: bool = False,
                      bf16: bool = False, backend: str = "torch"):
    """The text encoder of the checkpoint named by ``spec``, or None if it has no fast form.

    Only the demo model and vo_clip checkpoint files qualify, on the CPU, when their
    card names a BERT or MPNet text tower with mean pooling and a linear projection.
    ``trim`` and ``bf16`` (see :class:`TextEncoder`) trade bit-identity for speed.
    ``backend="numpy"`` gives a :class:`~vo_clip.ml.text_numpy.NumpyTextEncoder`, whose
    process never imports torch (~2 s of a new query process on two busy cores), and
    ``backend="onnx"`` a :class:`~vo_clip.ml.text_onnx.OnnxTextEncoder` (None without
    onnxruntime); both take ``device="auto"`` as the CPU, since asking whether there is
    a GPU would import torch, and one text is quicker on the CPU than CUDA's start-up.
    """
    if device not in ("cpu", "auto") or backend not in ("torch", "numpy", "onnx"):
        return None
    checkpoint = _checkpoint_path(spec)
    if checkpoint is None:
        return None
    from .checkpoint import read_card

    card = read_card(checkpoint)
    tower = _fast_tower(card)
    if tower is None:
        return None
    if backend == "numpy":
        from .text_numpy import load_numpy_encoder

        encoder = load_numpy_encoder(card, tower, checkpoint, trim=trim)
        encoder.spec = spec
        return encoder
    if backend == "onnx":
        from .text_onnx import onnx_runtime_available

        if not onnx_runtime_available():
            return None
        from safetensors import safe_open

        from .text_numpy import mapped_tensors
        from .text_onnx import OnnxTextEncoder

        with safe_open(str(checkpoint), framework="numpy") as handle:
            projection = handle.get_tensor("text.proj.weight")
        encoder = OnnxTextEncoder(card, tower, mapped_tensors(tower / "model.safetensors"),
                                  projection, trim=trim)
        encoder.spec = spec
        return encoder
    import torch  # a GPU build would pick CUDA for 'auto'; this path is for the CPU only

    if device == "auto" and torch.cuda.is_available():
        return None
    from safetensors.torch import load_file

    projection = load_file(str(checkpoint))["text.proj.weight"].float()
    weights = {k: v.float() for k, v in load_file(str(tower / "model.safetensors")).items()}
    encoder = TextEncoder(card, tower, weights, projection, trim=trim, bf16=bf16)
    encoder.spec = spec
    return encoder


def text_encoder_of(model, *, trim: bool = True, bf16: bool = False,
                    backend: str = "torch") -> "TowerText | None":
    """A text encoder reading ``model``'s weights (no copy), or None if none fits.

    The service keeps the full model (image queries, DataLink descriptions) and encodes
    TAP text queries with this one, trimmed: ~5x quicker per new text on the 2-core box.
    ``backend="onnx"`` gives an :class:`~vo_clip.ml.text_onnx.OnnxTextEncoder` (None
    without onnxruntime), ``"torch"`` a :class:`TextEncoder`.
    """
    if getattr(model, "device", "cpu") != "cpu" or backend not in ("torch", "onnx"):
        return None
    tower = _fast_tower(model.card)
    text = getattr(model.module, "text", None)
    if tower is None or text is None or not hasattr(text, "transformer"):
        return None
    weights = {k: v.float() for k, v in text.transformer.state_dict().items()}
    if backend == "onnx":
        from .text_onnx import OnnxTextEncoder, onnx_runtime_available

        if not onnx_runtime_available():
            return None
        encoder = OnnxTextEncoder(model.card, tower,
                                  {k: v.numpy() for k, v in weights.items()},
                                  text.proj.weight.detach().float().numpy(), trim=trim)
        encoder.fingerprint, encoder.spec = model.fingerprint, model.spec
        return encoder
    encoder = TextEncoder(model.card, tower, weights, text.proj.weight.detach().float(),
                          trim=trim, bf16=bf16)
    encoder.fingerprint, encoder.spec = model.fingerprint, model.spec
    return encoder


def _fast_tower(card) -> Path | None:
    """The directory of the card's text tower, if it is a BERT or MPNet this module runs."""
    text_cfg = card.architecture.get("text_cfg", {})
    if (not card.fingerprint or text_cfg.get("hf_pooler_type") != "mean_pooler"
            or text_cfg.get("hf_proj_type") != "linear"
            or text_cfg.get("hf_model_name") != text_cfg.get("hf_tokenizer_name")
            or text_cfg.get("tokenizer_mode") or "text.transformer" not in card.external):
        return None
    from .towers import resolve_text_tower

    tower = Path(resolve_text_tower(text_cfg["hf_model_name"]))
    config = json.loads((tower / "config.json").read_text())
    kind = config.get("model_type")
    if (kind not in _FAST_TYPES or config.get("hidden_act") != "gelu"
            or not (tower / "tokenizer.json").is_file()):
        return None
    if kind == "bert" and config.get("position_embedding_type", "absolute") != "absolute":
        return None
    if (kind == "mpnet"
            and config.get("relative_attention_num_buckets", 32) != _MPNET_BUCKETS):
        return None
    return tower


def _checkpoint_path(spec: str) -> Path | None:
    if spec == "demo":
        from .demo_model import DEMO_CHECKPOINT

        return DEMO_CHECKPOINT if DEMO_CHECKPOINT.is_file() else None
    path = Path(spec).expanduser()
    return path if path.is_file() and path.suffix == ".safetensors" else None



def checked_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, refused if one is empty: an empty query ranks nothing."""
    texts = list(texts)
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise QueryError("the text query is empty", hint="describe what to look for")
    return texts


class TowerText:
    """What the torch and numpy text encoders share: the card, the tower's config and
    open_clip's tokenization, and what a :class:`~vo_clip.search.engine.SearchEngine`
    asks of a model for a text query (``fingerprint``, ``card``, ``embed_dim``)."""

    def __init__(self, card, tower: Path, *, trim: bool = False):
        from tokenizers import Tokenizer

        config = json.loads((tower / "config.json").read_text())
        context_length = int(card.architecture["text_cfg"].get("context_length", 77))

        self.card = card
        self.trim = trim
        self.fingerprint = card.fingerprint
        self.device = "cpu"
        self.spec: str | None = None
        self._config = config
        self._pad_id = int(config.get("pad_token_id", 0))
        self._tokenizer = Tokenizer.from_file(str(tower / "tokenizer.json"))
        self._tokenizer.enable_truncation(context_length)
        self._tokenizer.enable_padding(length=context_length, pad_id=self._pad_id)

    @property
    def embed_dim(self) -> int:
        return self.card.embed_dim

    def token_ids(self, texts: Sequence[str]) -> np.ndarray:
        """int64 token ids as open_clip's ``HFTokenizer`` makes them (same cleaning, padding)."""
        encodings = self._tokenizer.encode_batch([_clean(t) for t in texts])
        return np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(texts), -1)

    def encode_text(self, texts: Sequence[str], *, batch_size: int = 64) -> np.ndarray:
        """Unit vectors for ``texts``, one row each, float32.

        Raises
        ------
        QueryError
            If a text is empty or only whitespace.
        """
        texts = checked_texts(texts)
        with self._running(few=len(texts) <= _FEW_TEXTS):
            out = [self._vectors(self.tokenize(texts[i:i + batch_size]))
                   for i in range(0, len(texts), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, self.embed_dim), np.float32)

    def _running(self, *, few: bool):
        """The context a batch runs in (threads, autograd): each backend says."""
        raise NotImplementedError

    def _vectors(self, ids) -> np.ndarray:
        """float32 unit vectors for a batch of token ids."""
        raise NotImplementedError


class TextEncoder(TowerText):
    """Unit vectors for texts, like :class:`~vo_clip.ml.model.ClipModel`'s, from a BERT or
    MPNet tower.

    It has what a :class:`~vo_clip.search.engine.SearchEngine` asks of a model for a text
    query: ``encode_text``, ``fingerprint``, ``card`` and ``embed_dim``. Its weights are
    packed for oneDNN where this torch can (:func:`_layer_products`: ~1.7x quicker per
    query on two threads), a copy the size of the tower. With ``trim`` the tokens are
    cut after the longest text's last one instead of padded to the context length:
    attention and pooling mask padding out (and MPNet's relative position bias depends
    only on the positions kept), so only the float32 rounding changes (within 1e-6 per
    component, tested), and a short query runs ~3x quicker. With ``bf16``, on a CPU that
    multiplies bfloat16 natively (:func:`bf16_matmul_is_native`; otherwise the flag is
    ignored), the layers' matrix products run in bfloat16 and the rest in float32:
    within 2e-3 per component and a cosine of 0.9999 of the float32 vector (tested),
    ~1.6x quicker for all-mpnet-base-v2 on a 2-core AVX-512 machine.
    """

    def __init__(self, card, tower: Path, weights: dict, projection, *, trim: bool = False,
                 bf16: bool = False):
        super().__init__(card, tower, trim=trim)
        import torch

        self._weights = weights
        self._projection = projection
        self.bf16 = bf16 and bf16_matmul_is_native()
        self._packed = not self.bf16 and _can_pack()
        self._products = _layer_products(weights, self._config,
                                         torch.bfloat16 if self.bf16 else torch.float32,
                                         pack=self._packed)

    def tokenize(self, texts: Sequence[str]):
        """Token ids as open_clip's ``HFTokenizer`` makes them (same cleaning, padding)."""
        import torch

        return torch.from_numpy(self.token_ids(texts))

    @contextlib.contextmanager
    def _running(self, *, few: bool):
        import torch

        with torch.inference_mode(), _query_threads(few, parallel=self._packed):
            yield

    def _vectors(self, ids) -> np.ndarray:
        return self._forward(ids).numpy().astype(np.float32, copy=False)

    def _forward(self, ids):
        import torch.nn.functional as F

        mask = (ids != self._pad_id).long()
        if self.trim:  # padding changes nothing but the float32 rounding (masked out)
            keep = int(mask.sum(-1).max())
            ids, mask = ids[:, :keep], mask[:, :keep]
        if self._config["model_type"] == "mpnet":
            x = self._mpnet(ids, mask)
        else:
            x = self._bert(ids, mask)
        pooled = (x * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(-1, keepdim=True)
        return F.normalize(F.linear(pooled, self._projection), dim=-1)

    def _layer_ops(self):
        import torch
        import torch.nn.functional as F

        w, cfg = self._weights, self._config
        eps = cfg.get("layer_norm_eps", 1e-12)
        hidden = cfg["hidden_size"]
        products, packed = self._products, self._packed

        def norm(x, name):
            return F.layer_norm(x, (hidden,), w[f"{name}.weight"], w[f"{name}.bias"], eps)

        def dense(x, name):
            weight, bias = products[name]
            if packed:
                return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
            return F.linear(x.to(weight.dtype), weight, bias).to(x.dtype)

        return norm, dense

    def _bert(self, ids, mask):
        """The last hidden states of transformers' ``BertModel`` (SDPA attention)."""
        import torch
        import torch.nn.functional as F

        w, cfg = self._weights, self._config
        norm, dense = self._layer_ops()
        size = cfg["hidden_size"] // cfg["num_attention_heads"]
        batch, length = ids.shape
        positions = torch.arange(length)
        x = F.embedding(ids, w["embeddings.word_embeddings.weight"])
        x = x + F.embedding(torch.zeros_like(ids), w["embeddings.token_type_embeddings.weight"])
        x = x + F.embedding(positions, w["embeddings.position_embeddings.weight"])[None]
        x = norm(x, "embeddings.LayerNorm")
        attend = mask.bool()[:, None, None, :].expand(batch, 1, length, length)
        for layer in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"

            def split(t):
                return t.reshape(batch, length, -1, size).transpose(1, 2)

            q, k, v = map(split, dense(x, f"{p}.attention.self.qkv").chunk(3, dim=-1))
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attend, dropout_p=0.0,
                                               scale=size ** -0.5, is_causal=False)
            a = a.transpose(1, 2).contiguous().reshape(batch, length, -1).contiguous()
            x = norm(dense(a, f"{p}.attention.output.dense") + x,
                     f"{p}.attention.output.LayerNorm")
            h = F.gelu(dense(x, f"{p}.intermediate.dense"))
            x = norm(dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x

    def _mpnet(self, ids, mask):
        """The last hidden states of transformers' ``MPNetModel`` (its eager attention).

        Positions count the non-padding tokens from ``padding_idx + 1`` (padding sits at
        ``padding_idx``); there are no token-type embeddings; every layer adds the same
        bias, looked up by the bucket of each key's position relative to the query's, to
        its scaled scores before the padding mask.
        """
        import torch
        import torch.nn.functional as F

        w, cfg = self._weights, self._config
        norm, dense = self._layer_ops()
        heads = cfg["num_attention_heads"]
        size = cfg["hidden_size"] // heads
        batch, length = ids.shape
        real = ids.ne(_MPNET_PADDING_IDX).int()
        positions = (torch.cumsum(real, dim=1).type_as(real) * real).long() + _MPNET_PADDING_IDX
        x = F.embedding(ids, w["embeddings.word_embeddings.weight"])
        x = x + F.embedding(positions, w["embeddings.position_embeddings.weight"])
        x = norm(x, "embeddings.LayerNorm")
        bias = F.embedding(_relative_buckets(length),
                           w["encoder.relative_attention_bias.weight"])
        bias = bias.permute(2, 0, 1).unsqueeze(0)  # (1, heads, query, key)
        if not bool(mask.all()):  # padding: a large negative score, as transformers adds
            bias = bias + torch.zeros(mask.shape, dtype=x.dtype).masked_fill_(
                ~mask.bool(), torch.finfo(x.dtype).min)[:, None, None, :]
        for layer in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"

            def split(t):
                return t.reshape(batch, length, -1, size).transpose(1, 2)

            q, k, v = map(split, dense(x, f"{p}.attention.attn.qkv").chunk(3, dim=-1))
            # softmax(q k^T / sqrt(size) + bias) v, as transformers' eager attention
            # writes it out, in one fused kernel
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, dropout_p=0.0,
                                               scale=size ** -0.5, is_causal=False)
            a = a.transpose(1, 2).reshape(batch, length, heads * size)
            x = norm(dense(a, f"{p}.attention.attn.o") + x, f"{p}.attention.LayerNorm")
            h = F.gelu(dense(x, f"{p}.intermediate.dense"))
            x = norm(dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x


def _layer_products(weights: dict, config: dict, dtype, *, pack: bool) -> dict:
    """Each dense layer's (weight, bias) in ``dtype``, by layer name, with each
    attention's query, key and value layers joined into one ``qkv`` product (a query
    has few rows: one call streams the three weights at once).

    With ``pack`` each weight is reordered into oneDNN's blocked layout for this CPU
    and its instruction set, as torch's compiler prepacks a frozen model's linear
    layers. Measured on the 2-core AMD EPYC (AVX2) with all-mpnet-base-v2, one query:
    55-60 ms on one thread against 64-67 unpacked, 36-40 ms on two against 54-83
    (``F.linear`` there runs on MKL, which scales badly for a few rows). Packed weights
    are a copy (340 MB for all-mpnet-base-v2); unpacked float32 ones are shared, but
    for the joined ``qkv`` (85 MB).
    """
    import torch

    def pair(names):
        def joined(kind):
            parts = [weights[f"{n}.{kind}"] for n in names]
            return (torch.cat(parts) if len(parts) > 1 else parts[0]).to(dtype)

        weight = joined("weight")
        if pack:
            weight = torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_ROWS)
        return weight, joined("bias")

    if config["model_type"] == "mpnet":
        attention, qkv = "attention.attn", ("q", "k", "v")
    else:
        attention, qkv = "attention.self", ("query", "key", "value")
    joined = tuple(f".{attention}.{part}" for part in qkv)
    products = {}
    for name, tensor in weights.items():
        stem = name.removesuffix(".weight")
        if (name.endswith(".weight") and tensor.dim() == 2 and "embeddings" not in name
                and "relative" not in name and f"{stem}.bias" in weights
                and not stem.endswith(joined)):
            products[stem] = pair([stem])
    for layer in range(config["num_hidden_layers"]):
        prefix = f"encoder.layer.{layer}.{attention}"
        products[f"{prefix}.qkv"] = pair([f"{prefix}.{part}" for part in qkv])
    return products


#: The rows oneDNN lays packed weights out for: a query's tokens (median caption: 33).
_PACK_ROWS = 16


@functools.cache
def _can_pack() -> bool:
    """Whether this torch packs weights for oneDNN, tried once on a small product.

    The two operations are private ones, those torch's compiler prepacks a frozen
    model's linear layers with (``torch._inductor.fx_passes.mkldnn_fusion``); where
    they are missing or fail, the encoder multiplies with ``F.linear``.
    """
    import torch
    import torch.nn.functional as F

    try:
        weight, bias, x = torch.randn(24, 8), torch.randn(24), torch.randn(2, 3, 8)
        got = torch.ops.mkldnn._linear_pointwise(
            x, torch.ops.mkldnn._reorder_linear_weight(weight, _PACK_ROWS), bias,
            "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return bool(torch.allclose(got, F.linear(x, weight, bias), atol=1e-5))


def bf16_matmul_is_native() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX).

    Where it does, a query's 72 matrix products (MPNet: 12 layers of 6) read half the
    bytes and run ~1.6x quicker; elsewhere oneDNN emulates bfloat16 and is slower than
    float32, so the encoder stays in float32.
    """
    import torch

    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def _relative_buckets(length: int):
    """MPNet's (T5's) bucket of key position j relative to query position i, (i, j).

    Half the buckets are for keys before the query, half for keys after it; within a
    half, distances under a quarter of the buckets have one bucket each and longer ones
    share logarithmically wider buckets up to the maximum distance. Computed with
    transformers' operations (``relative_position_bucket``), so the float logarithm
    rounds the same way at each bucket's edge.
    """
    import torch

    place = torch.arange(length, dtype=torch.long)
    distance = place[:, None] - place[None, :]  # query - key: positive for earlier keys
    half = _MPNET_BUCKETS // 2
    bucket = (distance < 0).to(torch.long) * half
    distance = torch.abs(distance)
    exact = half // 2
    wide = exact + (torch.log(distance.float() / exact) / math.log(_MPNET_MAX_DISTANCE / exact)
                    * (half - exact)).to(torch.long)
    wide = torch.min(wide, torch.full_like(wide, half - 1))
    return bucket + torch.where(distance < exact, distance, wide)


class _QueryThreads:
    """Run a few texts' forward pass on the intra-op threads :func:`few_text_threads`
    allows: one, or two where OpenMP's waiting threads sleep and the weights are packed
    for oneDNN (``F.linear`` on MKL ran no quicker on two: 54-83 against 64-67 ms).

    Measured on the 2-core box at load 2-3: one query's forward pass from a process's
    main thread took a median 0.9 s with torch's default two intra-op threads, whose
    OpenMP team spins for a busy core at every one of its ~70 small operations, and
    30 ms with one, as fast as from a worker thread (:mod:`vo_clip.openmp`). The setting
    is process-wide, so overlapping users (service threads) are counted and the last one
    out puts the previous value back.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._before = self._threads = 1

    @contextlib.contextmanager
    def __call__(self, wanted: bool, *, parallel: bool = True):
        """``parallel=False``: one thread even where waits sleep (unpacked products
        gained nothing from a second thread; overlapping users share the first's)."""
        import torch

        if not wanted:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._before = torch.get_num_threads()
                self._threads = few_text_threads(self._before) if parallel else 1
                if self._threads != self._before:
                    torch.set_num_threads(self._threads)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._threads != self._before:
                    torch.set_num_threads(self._before)


_query_threads = _QueryThreads()


def _clean(text: str) -> str:
    """open_clip's 'whitespace' cleaning: ftfy, HTML entities, collapsed whitespace."""
    import ftfy

    text = html.unescape(html.unescape(ftfy.fix_text(text))).strip()
    return " ".join(text.split()).strip()
