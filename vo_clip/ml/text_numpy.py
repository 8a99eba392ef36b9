"""The text-query encoder in numpy: :class:`~vo_clip.ml.text_query.TextEncoder`'s forward
pass without torch.

The torch encoder spared a new ``vo-clip query`` process open_clip, but importing torch
itself still took ~2 s of its ~4 s on two busy cores, for a forward pass of tens of
milliseconds. This one maps the same weights into numpy arrays (:func:`mapped_tensors`)
and runs the same operations in the same order: embeddings, then per layer the query, key
and value products, scaled scores (MPNet adds its relative position bias), the padding
mask, softmax, the output product, residual and layer norm, the exact (erf) GELU; then
mean pooling over the real tokens, the projection and normalisation. Matrix products
and everything else run in float32, as torch does; only the erf of the GELU is computed
in float64 (numpy has none), from :data:`_ERF`. What differs is the summation order of
the products (OpenBLAS against oneDNN/MKL), so the vectors agree with the torch encoder
and the full model to float32 rounding: within 1e-5 per component, tested for BERT
(the demo model) and MPNet towers.
"""

from __future__ import annotations

import contextlib
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from numpy.polynomial import Chebyshev

from .text_query import _MPNET_BUCKETS, _MPNET_MAX_DISTANCE, _MPNET_PADDING_IDX, TowerText

__all__ = ["NumpyTextEncoder", "erf", "gelu", "load_numpy_encoder", "mapped_tensors",
           "relative_buckets"]

#: Beyond this |x|, erf(x) is ±1 to within erfc(4.5) = 2.0e-10.
_ERF_EDGE = 4.5
#: erf on [0, 4.5]: the degree-26 Chebyshev interpolant of the C library's ``math.erf``
#: (27 calls at import, no copied coefficients). Measured against ``math.erf`` on 200,001
#: points of [0, 4.5]: within 3e-11, so :func:`erf` is within 2.1e-10 everywhere, far
#: below float32's 6e-8 rounding of the GELU it feeds.
_ERF = Chebyshev.interpolate(lambda t: np.array([math.erf(v) for v in t]), 26,
                             domain=[0.0, _ERF_EDGE])


def load_numpy_encoder(card, tower: Path, checkpoint: Path, *,
                       trim: bool = False) -> "NumpyTextEncoder":
    """The numpy encoder of ``card``'s tower (directory ``tower``) and ``checkpoint``'s
    projection; only the projection is read from the checkpoint, not its image tower."""
    from safetensors import safe_open

    with safe_open(str(checkpoint), framework="numpy") as handle:
        projection = handle.get_tensor("text.proj.weight")
    weights = mapped_tensors(tower / "model.safetensors")
    return NumpyTextEncoder(card, tower, weights, projection, trim=trim)


#: numpy's dtype of each safetensors dtype a text tower may hold.
_SAFETENSORS_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
                       "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}


def mapped_tensors(path: Path) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file as read-only numpy views of its memory map.

    ``safe_open(...).get_tensor`` copies each tensor: 0.36 s for all-mpnet-base-v2's
    438 MB in a new query process, which then reads only a few rows of the 94 MB word
    embeddings. Mapped, the pages come from the page cache as the forward pass touches
    them. The layout is the format's own: an 8-byte little-endian header length, a JSON
    header giving each tensor's dtype, shape and byte range after the header. A dtype
    numpy has no name for here (bfloat16) is read by ``safetensors`` instead.
    """
    import json

    mapped = np.memmap(path, dtype=np.uint8, mode="r")
    size = int(np.frombuffer(mapped[:8], dtype="<u8")[0])
    header = json.loads(bytes(mapped[8:8 + size]))
    header.pop("__metadata__", None)
    if any(entry["dtype"] not in _SAFETENSORS_DTYPES for entry in header.values()):
        from safetensors.numpy import load_file

        return load_file(str(path))
    start = 8 + size
    tensors = {}
    for name, entry in header.items():
        begin, end = entry["data_offsets"]
        dtype = np.dtype(_SAFETENSORS_DTYPES[entry["dtype"]])
        tensor = np.ndarray(entry["shape"], dtype=dtype, buffer=mapped, offset=start + begin)
        if tensor.nbytes != end - begin:
            raise ValueError(f"{path}: tensor {name} does not fill its byte range")
        tensors[name] = tensor
    return tensors


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, float64, within 2.1e-10 of ``math.erf`` (see :data:`_ERF`)."""
    a = np.abs(np.asarray(x, dtype=np.float64))
    y = np.where(a < _ERF_EDGE, _ERF(np.minimum(a, _ERF_EDGE)), 1.0)
    return np.copysign(y, x)


def gelu(x: np.ndarray) -> np.ndarray:
    """torch's default (exact) GELU, x·Φ(x), in float64 and back to ``x``'s dtype."""
    wide = x.astype(np.float64)
    return (0.5 * wide * (1.0 + erf(wide * (1.0 / math.sqrt(2.0))))).astype(x.dtype)


def relative_buckets(length: int) -> np.ndarray:
    """MPNet's bucket of key position j relative to query position i, (i, j), int64.

    The same rule and the same float32 steps as the torch encoder's ``_relative_buckets``
    (transformers' ``relative_position_bucket``), so the logarithm rounds alike at the
    buckets' edges (tested equal for every length up to 514).
    """
    place = np.arange(length, dtype=np.int64)
    distance = place[:, None] - place[None, :]  # query - key: positive for earlier keys
    half = _MPNET_BUCKETS // 2
    bucket = (distance < 0).astype(np.int64) * half
    distance = np.abs(distance)
    exact = half // 2
    # distance 0 takes the exact branch below; 1 keeps the logarithm finite there
    ratio = np.maximum(distance, 1).astype(np.float32) / np.float32(exact)
    scale = np.float32(math.log(_MPNET_MAX_DISTANCE / exact))
    wide = exact + (np.log(ratio) / scale * np.float32(half - exact)).astype(np.int64)
    wide = np.minimum(wide, half - 1)
    return bucket + np.where(distance < exact, distance, wide)


class NumpyTextEncoder(TowerText):
    """Unit vectors for texts, like :class:`~vo_clip.ml.text_query.TextEncoder`'s, from
    numpy operations: a process using it imports no torch (see the module docstring).

    ``trim`` as for :class:`~vo_clip.ml.text_query.TextEncoder`. There is no bfloat16
    form: numpy has no bfloat16 products.
    """

    bf16 = False

    def __init__(self, card, tower: Path, weights: dict, projection, *, trim: bool = False):
        super().__init__(card, tower, trim=trim)
        self._weights = {name: np.asarray(w, dtype=np.float32) for name, w in weights.items()}
        self._projection = np.asarray(projection, dtype=np.float32)
        self._eps = np.float32(self._config.get("layer_norm_eps", 1e-12))

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids as open_clip's ``HFTokenizer`` makes them, int64."""
        return self.token_ids(texts)

    def _running(self, *, few: bool):
        return _blas_one_thread(few)

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        return self._forward(ids)

    # -- the forward pass -------------------------------------------------------------
    def _forward(self, ids: np.ndarray) -> np.ndarray:
        mask = ids != self._pad_id
        if self.trim:  # padding changes nothing but the float32 rounding (masked out)
            keep = int(mask.sum(-1).max())
            ids, mask = ids[:, :keep], mask[:, :keep]
        if self._config["model_type"] == "mpnet":
            x = self._mpnet(ids, mask)
        else:
            x = self._bert(ids, mask)
        weight = mask.astype(np.float32)[..., None]
        pooled = (x * weight).sum(axis=1) / weight.sum(axis=1)
        projected = pooled @ self._projection.T
        norm = np.sqrt((projected * projected).sum(axis=-1, keepdims=True))
        return projected / np.maximum(norm, np.float32(1e-12))

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        """Layer norm over the last axis: biased variance, eps inside the root (torch's)."""
        mean = x.mean(axis=-1, keepdims=True)
        centred = x - mean
        variance = (centred * centred).mean(axis=-1, keepdims=True)
        w = self._weights
        return centred / np.sqrt(variance + self._eps) * w[f"{name}.weight"] + w[f"{name}.bias"]

    def _dense(self, x: np.ndarray, name: str) -> np.ndarray:
        w = self._weights
        return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]

    def _layers(self, x, names, scores_of):
        """The encoder layers; ``scores_of(q, k)`` gives the masked attention scores."""
        cfg = self._config
        heads = cfg["num_attention_heads"]
        batch, length, _ = x.shape

        def split(t):  # (batch, length, hidden) -> (batch, heads, length, size)
            return t.reshape(batch, length, heads, -1).transpose(0, 2, 1, 3)

        q_name, k_name, v_name, o_name, attention_norm = names
        for layer in range(cfg["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"
            q = split(self._dense(x, f"{p}.{q_name}"))
            k = split(self._dense(x, f"{p}.{k_name}"))
            v = split(self._dense(x, f"{p}.{v_name}"))
            a = _softmax(scores_of(q, k)) @ v
            a = a.transpose(0, 2, 1, 3).reshape(batch, length, -1)
            x = self._norm(self._dense(a, f"{p}.{o_name}") + x, f"{p}.{attention_norm}")
            h = gelu(self._dense(x, f"{p}.intermediate.dense"))
            x = self._norm(self._dense(h, f"{p}.output.dense") + x, f"{p}.output.LayerNorm")
        return x

    def _bert(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden states of transformers' ``BertModel`` (token type 0 throughout;
        padded keys get no weight, as with SDPA's boolean mask)."""
        w, cfg = self._weights, self._config
        size = cfg["hidden_size"] // cfg["num_attention_heads"]
        length = ids.shape[1]
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.token_type_embeddings.weight"][0]
        x = x + w["embeddings.position_embeddings.weight"][:length][None]
        x = self._norm(x, "embeddings.LayerNorm")
        attend = mask[:, None, None, :]
        scale = np.float32(size ** -0.5)

        def scores_of(q, k):
            return np.where(attend, (q @ k.transpose(0, 1, 3, 2)) * scale, -np.inf)

        return self._layers(x, ("attention.self.query", "attention.self.key",
                                "attention.self.value", "attention.output.dense",
                                "attention.output.LayerNorm"), scores_of)

    def _mpnet(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """The last hidden states of transformers' ``MPNetModel``: positions count the
        real tokens from ``padding_idx + 1``, every layer adds the relative position bias
        to its scaled scores, then the float32 minimum at padded keys."""
        w, cfg = self._weights, self._config
        size = cfg["hidden_size"] // cfg["num_attention_heads"]
        length = ids.shape[1]
        real = (ids != _MPNET_PADDING_IDX).astype(np.int64)
        positions = np.cumsum(real, axis=1) * real + _MPNET_PADDING_IDX
        x = w["embeddings.word_embeddings.weight"][ids]
        x = x + w["embeddings.position_embeddings.weight"][positions]
        x = self._norm(x, "embeddings.LayerNorm")
        bias = w["encoder.relative_attention_bias.weight"][relative_buckets(length)]
        bias = bias.transpose(2, 0, 1)[None]  # (1, heads, query, key)
        additive = np.where(mask, np.float32(0), np.finfo(np.float32).min).astype(
            np.float32)[:, None, None, :]
        root = np.float32(math.sqrt(size))

        def scores_of(q, k):
            return (q @ k.transpose(0, 1, 3, 2)) / root + bias + additive

        return self._layers(x, ("attention.attn.q", "attention.attn.k", "attention.attn.v",
                                "attention.attn.o", "attention.LayerNorm"), scores_of)


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class _BlasOneThread:
    """Run a few texts' products on one OpenBLAS thread (threadpoolctl, when installed).

    Measured on the 2-core box at load 2.5-3.4, the demo model's forward pass for one
    short query in a fresh process: a median 20 ms on one OpenBLAS thread, 430 ms on
    OpenBLAS's default two (its threads spin and wait for the busy core at each of the
    ~40 small products). One text is too little work to share. Setting the limit costs
    under 2 ms and threadpoolctl's import 3 ms. The limit is process-wide, so overlapping
    users (service threads) are counted and the last one out lifts it.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._users = 0
        self._limit = None

    @contextlib.contextmanager
    def __call__(self, wanted: bool):
        if not wanted:
            yield
            return
        with self._lock:
            if self._users == 0:
                self._limit = _limit_blas(1)
            self._users += 1
        try:
            yield
        finally:
            with self._lock:
                self._users -= 1
                if self._users == 0 and self._limit is not None:
                    self._limit.restore_original_limits()
                    self._limit = None


def _limit_blas(threads: int):
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return None
    return threadpool_limits(limits=threads, user_api="blas")


_blas_one_thread = _BlasOneThread()
