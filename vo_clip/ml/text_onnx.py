"""The text-query encoder on ONNX Runtime: the service's encoder for new TAP texts.

A similarity TAP query spends most of its time encoding its text: on the 2-core box
the torch encoder (:class:`~vo_clip.ml.text_query.TextEncoder`, weights packed for
oneDNN) took 45-80 ms per new text with all-mpnet-base-v2, where the goal for the
whole query is 60 ms. ONNX Runtime's CPU kernels (MLAS) ran the same float32 forward
pass in 42-45 ms on one thread beside a two-thread training run, where the torch
encoder took 78 ms (``benchmarks/query_latency.py`` measures both side by side).

The graph is written here with ``onnx.helper``, operation for operation the forward
pass of :class:`~vo_clip.ml.text_numpy.NumpyTextEncoder` (embeddings, per layer the
query, key and value products, scaled scores plus MPNet's relative position bias and
the padding mask, softmax, output product, residual and layer norm, exact GELU; mean
pooling, projection, normalisation). No exporter and no model file: the weights stay
where they are (the tower's memory-mapped safetensors, or the service model's torch
tensors) and reach the session as external initializers, shared, not serialised. What
depends only on the token ids (MPNet's positions and relative position bias, the
padding mask, the pooling weights) is computed in numpy and fed as inputs. Everything
runs in float32, so the vectors agree with the torch encoder and the full model to
float32 rounding: within 1e-5 per component, tested for BERT and MPNet towers.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from .text_numpy import relative_buckets
from .text_query import _MPNET_PADDING_IDX, TowerText

__all__ = ["OnnxTextEncoder", "onnx_runtime_available"]

#: The opset of the graph: LayerNormalization is in the default domain from 17 on.
_OPSET = 17


def onnx_runtime_available() -> bool:
    """Whether ``onnxruntime`` and ``onnx`` import (both are dependencies of vo_clip;
    a stripped environment falls back to the torch encoder)."""
    import importlib

    try:
        for name in ("onnx", "onnxruntime"):
            importlib.import_module(name)
    except ImportError:
        return False
    return True


class OnnxTextEncoder(TowerText):
    """Unit vectors for texts, like :class:`~vo_clip.ml.text_query.TextEncoder`'s, from
    an ONNX Runtime session over the same weights.

    ``weights`` maps the tower's tensor names to float32 arrays (memory-mapped or views
    of torch tensors: neither is copied for the session, which keeps references to
    them); ``projection`` is the (embed_dim, hidden) text projection. ``threads`` is the
    session's intra-op thread count: one by default, since a query's few tokens gave a
    second thread nothing to share (81 against 45 ms beside a busy core), and its
    threads never spin, so a busy core cannot hold a query up. ``trim`` as for
    :class:`~vo_clip.ml.text_query.TextEncoder`. There is no bfloat16 form.
    """

    bf16 = False

    def __init__(self, card, tower: Path, weights: dict, projection, *, trim: bool = False,
                 threads: int = 1):
        super().__init__(card, tower, trim=trim)
        import onnxruntime as ort

        self._kind = self._config["model_type"]
        self._heads = int(self._config["num_attention_heads"])
        self._layers = int(self._config["num_hidden_layers"])
        self._hidden = int(self._config["hidden_size"])
        arrays = {name: np.ascontiguousarray(w, dtype=np.float32)
                  for name, w in weights.items() if name in self._used_names()}
        arrays["text.proj.weight"] = np.ascontiguousarray(projection, dtype=np.float32)
        if self._kind == "mpnet":
            self._position_bias = arrays["encoder.relative_attention_bias.weight"]
        graph = _graph(self._kind, self._config, arrays)
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        names = [name for name in arrays if name in _initializer_names(graph)]
        # the OrtValues wrap the arrays' memory: both stay referenced as long as the session
        self._arrays = arrays
        self._values = [ort.OrtValue.ortvalue_from_numpy(arrays[name]) for name in names]
        options.add_external_initializers(names, self._values)
        self._session = ort.InferenceSession(graph.SerializeToString(), options,
                                             providers=["CPUExecutionProvider"])
        self.threads = options.intra_op_num_threads

    def tokenize(self, texts: Sequence[str]) -> np.ndarray:
        """Token ids as open_clip's ``HFTokenizer`` makes them, int64."""
        return self.token_ids(texts)

    def _running(self, *, few: bool):
        return contextlib.nullcontext()

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        mask = ids != self._pad_id
        if self.trim:  # padding changes nothing but the float32 rounding (masked out)
            keep = int(mask.sum(-1).max())
            ids, mask = ids[:, :keep], mask[:, :keep]
        length = ids.shape[1]
        if self._kind == "mpnet":
            real = (ids != _MPNET_PADDING_IDX).astype(np.int64)
            positions = np.cumsum(real, axis=1) * real + _MPNET_PADDING_IDX
            bias = self._position_bias[relative_buckets(length)]  # (query, key, heads)
            extra = {"bias": np.ascontiguousarray(bias.transpose(2, 0, 1)[None])}
        else:
            positions = np.broadcast_to(np.arange(length, dtype=np.int64), ids.shape)
            extra = {}
        additive = np.where(mask, np.float32(0), np.finfo(np.float32).min).astype(np.float32)
        weight = mask.astype(np.float32)[..., None]
        feeds = {"ids": np.ascontiguousarray(ids, dtype=np.int64),
                 "positions": np.ascontiguousarray(positions, dtype=np.int64),
                 "additive": additive[:, None, None, :], "pool": weight,
                 "count": weight.sum(axis=1), **extra}
        return self._session.run(["vectors"], feeds)[0]

    def _used_names(self) -> set[str]:
        """The tower's tensors the graph reads (BERT's pooler, for one, is not)."""
        if self._kind == "mpnet":
            q, k, v, o, norm = _MPNET_NAMES
            names = {"embeddings.word_embeddings.weight",
                     "embeddings.position_embeddings.weight",
                     "encoder.relative_attention_bias.weight"}
        else:
            q, k, v, o, norm = _BERT_NAMES
            names = {"embeddings.word_embeddings.weight",
                     "embeddings.position_embeddings.weight",
                     "embeddings.token_type_embeddings.weight"}
        names |= {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}
        for layer in range(self._layers):
            p = f"encoder.layer.{layer}"
            for part in (q, k, v, o, "intermediate.dense", "output.dense"):
                names |= {f"{p}.{part}.weight", f"{p}.{part}.bias"}
            for part in (norm, "output.LayerNorm"):
                names |= {f"{p}.{part}.weight", f"{p}.{part}.bias"}
        return names


_MPNET_NAMES = ("attention.attn.q", "attention.attn.k", "attention.attn.v",
                "attention.attn.o", "attention.LayerNorm")
_BERT_NAMES = ("attention.self.query", "attention.self.key", "attention.self.value",
               "attention.output.dense", "attention.output.LayerNorm")


def _initializer_names(graph) -> set[str]:
    return {t.name for t in graph.graph.initializer}


def _graph(kind: str, config: dict, arrays: dict):
    """The forward pass as an ONNX model whose large initializers are placeholders,
    filled from ``arrays`` by the session (external initializers)."""
    from onnx import TensorProto, helper, numpy_helper

    heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    size = hidden // heads
    eps = float(config.get("layer_norm_eps", 1e-12))
    nodes, initializers = [], []
    counter = iter(range(10**9))

    def fresh(stem: str) -> str:
        return f"{stem}_{next(counter)}"

    def op(kind_: str, inputs: list[str], **attributes) -> str:
        out = fresh(kind_.lower())
        nodes.append(helper.make_node(kind_, inputs, [out], **attributes))
        return out

    def external(name: str) -> str:
        array = arrays[name]
        placeholder = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=array.shape,
                                  data_location=TensorProto.EXTERNAL)
        entry = placeholder.external_data.add()
        entry.key, entry.value = "location", "session-external-initializer"
        initializers.append(placeholder)
        return name

    def constant(value, dtype) -> str:
        name = fresh("const")
        initializers.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def dense(x: str, name: str) -> str:
        # MatMul against the (out, in) weight transposed: ORT folds the transpose of an
        # initializer into its prepacked copy once, at session start
        weight_t = op("Transpose", [external(f"{name}.weight")], perm=[1, 0])
        return op("Add", [op("MatMul", [x, weight_t]), external(f"{name}.bias")])

    def norm(x: str, name: str) -> str:
        return op("LayerNormalization", [x, external(f"{name}.weight"),
                                         external(f"{name}.bias")], axis=-1, epsilon=eps)

    def gelu(x: str) -> str:  # torch's exact GELU: x·Φ(x), with erf
        scaled = op("Mul", [x, constant(1.0 / math.sqrt(2.0), np.float32)])
        one_plus = op("Add", [op("Erf", [scaled]), constant(1.0, np.float32)])
        return op("Mul", [op("Mul", [x, one_plus]), constant(0.5, np.float32)])

    heads_shape = constant([0, 0, heads, size], np.int64)
    merged_shape = constant([0, 0, hidden], np.int64)

    def split(t: str, perm: list[int]) -> str:  # (batch, len, hidden) -> heads, permuted
        return op("Transpose", [op("Reshape", [t, heads_shape])], perm=perm)

    x = op("Add", [op("Gather", [external("embeddings.word_embeddings.weight"), "ids"]),
                   op("Gather", [external("embeddings.position_embeddings.weight"),
                                 "positions"])])
    if kind == "mpnet":
        names = _MPNET_NAMES
    else:
        names = _BERT_NAMES
        token_type = op("Gather", [external("embeddings.token_type_embeddings.weight"),
                                   constant(0, np.int64)])
        x = op("Add", [x, token_type])
    x = norm(x, "embeddings.LayerNorm")
    q_name, k_name, v_name, o_name, attention_norm = names
    root = constant(math.sqrt(size), np.float32)
    for layer in range(int(config["num_hidden_layers"])):
        p = f"encoder.layer.{layer}"
        q = split(dense(x, f"{p}.{q_name}"), [0, 2, 1, 3])   # (b, h, len, size)
        k = split(dense(x, f"{p}.{k_name}"), [0, 2, 3, 1])   # (b, h, size, len)
        v = split(dense(x, f"{p}.{v_name}"), [0, 2, 1, 3])
        scores = op("Div", [op("MatMul", [q, k]), root])
        if kind == "mpnet":
            scores = op("Add", [scores, "bias"])
        scores = op("Add", [scores, "additive"])
        a = op("MatMul", [op("Softmax", [scores], axis=-1), v])
        a = op("Reshape", [op("Transpose", [a], perm=[0, 2, 1, 3]), merged_shape])
        x = norm(op("Add", [dense(a, f"{p}.{o_name}"), x]), f"{p}.{attention_norm}")
        h = gelu(dense(x, f"{p}.intermediate.dense"))
        x = norm(op("Add", [dense(h, f"{p}.output.dense"), x]), f"{p}.output.LayerNorm")
    pooled = op("Div", [op("ReduceSum", [op("Mul", [x, "pool"]), constant([1], np.int64)],
                           keepdims=0), "count"])
    projection_t = op("Transpose", [external("text.proj.weight")], perm=[1, 0])
    projected = op("MatMul", [pooled, projection_t])
    length = op("ReduceL2", [projected], axes=[-1], keepdims=1)  # axes: an attribute in 17
    nodes.append(helper.make_node(
        "Div", [projected, op("Max", [length, constant(1e-12, np.float32)])], ["vectors"]))

    float_in = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "length"]),
              helper.make_tensor_value_info("positions", TensorProto.INT64,
                                            ["batch", "length"]),
              helper.make_tensor_value_info("additive", float_in, ["batch", 1, 1, "length"]),
              helper.make_tensor_value_info("pool", float_in, ["batch", "length", 1]),
              helper.make_tensor_value_info("count", float_in, ["batch", 1])]
    if kind == "mpnet":
        inputs.append(helper.make_tensor_value_info("bias", float_in,
                                                    [1, heads, "length", "length"]))
    outputs = [helper.make_tensor_value_info("vectors", float_in,
                                             ["batch", arrays["text.proj.weight"].shape[0]])]
    graph = helper.make_graph(nodes, "vo_clip text tower", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)],
                             producer_name="vo_clip")
