"""The ONNX Runtime text encoder (vo_clip/ml/text_onnx.py): the service's encoder for new
TAP texts, checked against the full open_clip model for both tower types it runs."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from vo_clip.config import Config
from vo_clip.errors import QueryError
from vo_clip.ml import text_onnx
from vo_clip.ml.model import create_model, load_model
from vo_clip.ml.text_onnx import OnnxTextEncoder
from vo_clip.ml.text_query import TextEncoder, load_text_encoder, text_encoder_of
from vo_clip.ml.towers import KNOWN_TOWERS, MINILM

#: Short and long (truncated at the context length), HTML entities, non-ASCII, one word.
TEXTS = [
    "spiral galaxy",
    "barred spiral galaxy with a star-forming ring",
    "  a globular   cluster &amp; its &lt;halo&gt;\n",
    "CafÃ© naïve — Ångström Ω 星系",
    "HST WFC3/UVIS F555W, 2x1200 s",
    " ".join(["gravitational lens arcs around a massive cluster"] * 30),
    "comet",
]

#: A BERT text tower (all-MiniLM-L6-v2) with a trained-size projection 384 -> 256.
MINILM_ARCHITECTURE = {
    "embed_dim": 256,
    "vision_cfg": {"layers": [1, 1, 1, 1], "width": 32, "image_size": 64},
    "text_cfg": {"hf_model_name": MINILM, "hf_tokenizer_name": MINILM,
                 "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear",
                 "context_length": 128},
}


@pytest.fixture(scope="module")
def demo():
    full = load_model("demo", device="cpu")
    return full, load_text_encoder("demo", backend="onnx", trim=True)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    path = tmp_path_factory.mktemp("minilm") / "minilm.safetensors"
    model = create_model(MINILM_ARCHITECTURE, {"mean": [0.1] * 3, "std": [0.2] * 3}, seed=0,
                         name="minilm test model", device="cpu")
    model.card = dataclasses.replace(model.card,
                                     external={"text.transformer": KNOWN_TOWERS[MINILM]})
    model.save(path, half=True)
    del model
    return load_model(str(path), device="cpu"), path


def _batches(texts):
    return [[t] for t in texts] + [texts]


def test_demo_vectors_are_the_models_within_float32_rounding(demo):
    """Stated tolerance: 1e-5 per component (measured: under 4e-7), one text at a time
    and in a batch, trimmed and padded to the context length."""
    full, fast = demo
    assert isinstance(fast, OnnxTextEncoder) and fast.trim
    assert fast.fingerprint == full.fingerprint
    padded = load_text_encoder("demo", backend="onnx")
    assert not padded.trim
    for batch in _batches(TEXTS):
        expected = full.encode_text(batch)
        for encoder in (fast, padded):
            got = encoder.encode_text(batch)
            assert got.dtype == np.float32 and got.shape == (len(batch), 768)
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
            np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=0, atol=1e-6)


def test_encoder_of_the_loaded_model_matches_it(demo):
    full, _ = demo
    encoder = text_encoder_of(full, backend="onnx")
    assert isinstance(encoder, OnnxTextEncoder) and encoder.trim
    assert (encoder.fingerprint, encoder.spec) == (full.fingerprint, full.spec)
    # the session reads the model's own tensors: nothing was copied to build it
    weight = full.module.text.transformer.state_dict()["encoder.layer.0.attention.attn.q.weight"]
    assert np.shares_memory(encoder._arrays["encoder.layer.0.attention.attn.q.weight"],
                            weight.numpy())
    for batch in _batches(TEXTS):
        np.testing.assert_allclose(encoder.encode_text(batch), full.encode_text(batch),
                                   rtol=0, atol=1e-5)


def test_bert_tower_vectors_are_the_models(minilm):
    """A BERT tower and a projection that is not the identity: within 1e-5 as well."""
    full, path = minilm
    encoder = load_text_encoder(str(path), backend="onnx", trim=True)
    assert isinstance(encoder, OnnxTextEncoder)
    assert encoder.fingerprint == full.fingerprint
    for batch in _batches(TEXTS):
        got = encoder.encode_text(batch)
        assert got.shape == (len(batch), 256)
        np.testing.assert_allclose(got, full.encode_text(batch), rtol=0, atol=1e-5)


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_refused(demo, text):
    with pytest.raises(QueryError, match="empty"):
        demo[1].encode_text(["comet", text])


def test_concurrent_service_threads_get_their_own_vectors(demo):
    _, fast = demo
    expected = {text: fast.encode_text([text])[0] for text in TEXTS}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda t: fast.encode_text([t])[0], TEXTS * 3))
    for text, vector in zip(TEXTS * 3, got):
        np.testing.assert_array_equal(vector, expected[text])


def test_no_onnx_encoder_without_onnxruntime_or_for_other_towers(demo, tiny_model_path,
                                                                 monkeypatch):
    full, _ = demo
    assert text_encoder_of(load_model(str(tiny_model_path), device="cpu"),
                           backend="onnx") is None  # open_clip's own text tower
    assert load_text_encoder("demo", backend="onnx", device="cuda") is None
    monkeypatch.setattr(text_onnx, "onnx_runtime_available", lambda: False)
    assert load_text_encoder("demo", backend="onnx") is None
    assert text_encoder_of(full, backend="onnx") is None


@pytest.fixture(scope="module")
def demo_index(tiny_archive, demo, tmp_path_factory):
    from vo_clip.search.index import build_index

    out = tmp_path_factory.mktemp("onnx-index") / "index"
    build_index(tiny_archive, demo[0], out, progress=False)
    return out


def _tap_top5(service):
    return service.execute({"LANG": "ADQL", "QUERY": (
        "SELECT TOP 5 obs_id, vo_clip_similarity('spiral galaxy') AS s FROM ivoa.ObsCore "
        "ORDER BY s DESC")}, base_url="http://127.0.0.1/")


def test_tap_ranks_with_the_onnx_encoder_as_the_model_does(demo_index, tiny_archive, demo,
                                                           tmp_path):
    from vo_clip.workspace import open_tap

    full, _ = demo
    service = open_tap(Config(home=tmp_path, index=demo_index, model="demo", device="cpu"))
    engine = service.engine()
    assert isinstance(engine.text_encoder, OnnxTextEncoder) and engine.text_encoder.trim
    scores = engine.index.embeddings @ full.encode_text(["spiral galaxy"])[0]
    best = np.argsort(-scores, kind="stable")[:5]
    result = _tap_top5(service)
    assert [row[0] for row in result.rows] == [tiny_archive.obs_ids[i] for i in best]
    np.testing.assert_allclose([row[1] for row in result.rows], scores[best], atol=1e-6)


def test_tap_falls_back_to_the_torch_encoder_without_onnxruntime(demo_index, tiny_archive,
                                                                 tmp_path, monkeypatch):
    from vo_clip.workspace import open_tap

    monkeypatch.setattr(text_onnx, "onnx_runtime_available", lambda: False)
    service = open_tap(Config(home=tmp_path, index=demo_index, model="demo", device="cpu"))
    engine = service.engine()
    assert isinstance(engine.text_encoder, TextEncoder) and not engine.text_encoder.bf16
    assert len(_tap_top5(service).rows) == 5
