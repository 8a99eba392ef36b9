"""The text-only encoder of the demo model: same tokens, same vectors, same query results."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from vo_clip.config import Config
from vo_clip.errors import QueryError
from vo_clip.ml import text_query
from vo_clip.ml.model import create_model, load_model
from vo_clip.ml.text_numpy import NumpyTextEncoder
from vo_clip.ml.text_query import (TextEncoder, TowerText, bf16_matmul_is_native,
                                   load_text_encoder, text_encoder_of)
from vo_clip.ml.towers import KNOWN_TOWERS, MPNET, resolve_text_tower

TEXTS = [
    "spiral galaxy",
    "barred spiral galaxy with a star-forming ring",
    "  a globular   cluster &amp; its &lt;halo&gt;\n",
    "CafÃ© naïve — Ångström Ω 星系",
    "HST WFC3/UVIS F555W, 2x1200 s",
    " ".join(["gravitational lens arcs around a massive cluster"] * 30),  # > 128 tokens
    "comet",
    "an edge-on disk galaxy with a dust lane",
    "merging galaxies with tidal tails",
    "planetary nebula",
    "supernova remnant filaments",
    "quasar host galaxy",
]


@pytest.fixture(scope="module")
def models():
    return load_model("demo", device="cpu"), load_text_encoder("demo", device="cpu", trim=True)


@pytest.fixture
def threads():
    before = torch.get_num_threads()
    yield torch.set_num_threads
    torch.set_num_threads(before)


def test_tokens_are_open_clips(models):
    full, fast = models
    assert torch.equal(fast.tokenize(TEXTS), full.tokenize(TEXTS))
    assert fast.tokenize(TEXTS).shape == (len(TEXTS), 128)


@pytest.mark.parametrize("count", [1, 2])
def test_vectors_are_within_float32_rounding_of_the_models(models, threads, count):
    """Stated tolerance: 1e-6 per component (measured: under 2e-7). The encoder runs the
    model's mathematics in quicker forms (products with the weights on the left, query,
    key and value in one product, fused attention), so only the rounding differs."""
    full, fast = models
    threads(count)
    # More than a few texts: both run on `count` threads.
    np.testing.assert_allclose(fast.encode_text(TEXTS), full.encode_text(TEXTS),
                               rtol=0, atol=1e-6)
    for text in TEXTS[:3]:  # one text: both run on the threads a query's few texts get
        np.testing.assert_allclose(fast.encode_text([text]), full.encode_text([text]),
                                   rtol=0, atol=1e-6)


def test_unpacked_weights_give_the_same_vectors(models, monkeypatch):
    """Where torch cannot pack weights for oneDNN the encoder multiplies with F.linear."""
    full, fast = models
    if torch.backends.mkldnn.is_available():  # every x86 and arm64 wheel: the quick form
        assert fast._packed
    monkeypatch.setattr(text_query, "_can_pack", lambda: False)
    plain = text_encoder_of(full)
    assert not plain._packed
    # shared with the model, but for the joined query-key-value products
    assert (plain._products["encoder.layer.0.output.dense"][0].data_ptr()
            == full.module.text.transformer.encoder.layer[0].output.dense.weight.data_ptr())
    for batch in [[TEXTS[1]], TEXTS]:
        got = plain.encode_text(batch)
        np.testing.assert_allclose(got, full.encode_text(batch), rtol=0, atol=1e-6)
        np.testing.assert_allclose(got, fast.encode_text(batch), rtol=0, atol=1e-6)


@pytest.mark.parametrize("policy, expected", [(None, 1), ("ACTIVE", 1), ("passive", 2)])
def test_a_few_texts_run_on_two_threads_only_where_waiting_threads_sleep(
        models, threads, monkeypatch, policy, expected):
    """OpenMP's spinning threads made two-thread queries 10x slower on a busy core."""
    _, fast = models
    if not fast._packed:
        expected = 1
    if policy is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", policy)
    threads(2)
    seen = []
    forward = fast._forward

    def spy(ids):
        seen.append(torch.get_num_threads())
        return forward(ids)

    monkeypatch.setattr(fast, "_forward", spy)
    fast.encode_text(["globular cluster"])
    fast.encode_text(TEXTS)  # more than a few: the process's setting
    assert seen == [expected, 2]
    assert torch.get_num_threads() == 2
    # open_clip's own (unpacked) products gained nothing from a second thread
    full = models[0]
    encode = full.module.encode_text

    def spy_full(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return encode(*args, **kwargs)

    monkeypatch.setattr(full.module, "encode_text", spy_full)
    full.encode_text(["globular cluster"])
    assert seen[-1] == 1 and torch.get_num_threads() == 2


def test_serving_asks_openmp_threads_to_sleep_unless_told_or_too_late(tmp_path):
    """OpenMP reads its policy when torch loads it: set before, reported after."""
    import os
    import subprocess
    import sys

    def run(code, **env):
        base = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
        result = subprocess.run([sys.executable, "-c", "import os\n"
                                 "from vo_clip.openmp import sleep_while_waiting\n" + code],
                                capture_output=True, text=True, env={**base, **env},
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    show = "print(sleep_while_waiting(), os.environ.get('OMP_WAIT_POLICY'))"
    assert run(show) == ["True", "PASSIVE"]
    assert run(show, OMP_WAIT_POLICY="ACTIVE") == ["False", "ACTIVE"]  # the user's choice
    assert run("import torch\n" + show) == ["False", "None"]  # torch came first


def test_one_text_on_one_thread_is_within_float32_rounding_of_two(models, threads):
    """The stated tolerance: 1e-6 per component (measured: under 2e-7) on unit vectors."""
    full, fast = models
    threads(2)
    for text in TEXTS:
        got, expected = fast.encode_text([text]), full.encode_text([text])
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-6)
    assert torch.get_num_threads() == 2  # put back after a one-text call


@pytest.mark.parametrize("text", ["", "   \n"])
def test_empty_text_is_refused(models, text):
    with pytest.raises(QueryError, match="empty"):
        models[1].encode_text([text])


def test_only_checkpoints_with_a_bert_text_tower_qualify(tiny_model_path, tmp_path):
    assert load_text_encoder(str(tiny_model_path)) is None  # open_clip's own text tower
    assert load_text_encoder("ViT-B-16:openai") is None
    assert load_text_encoder(str(tmp_path)) is None
    assert load_text_encoder("demo", device="cuda") is None
    encoder = load_text_encoder("demo")
    assert isinstance(encoder, TextEncoder)
    assert encoder.fingerprint == load_model("demo", device="cpu").fingerprint


@pytest.fixture(scope="module")
def demo_index(tiny_archive, models, tmp_path_factory):
    from vo_clip.search.index import build_index

    out = tmp_path_factory.mktemp("demo-index") / "index"
    build_index(tiny_archive, models[0], out, progress=False)
    return out


def test_text_only_engine_answers_like_the_full_model(demo_index, tmp_path):
    from vo_clip.search.engine import Query
    from vo_clip.workspace import open_engine

    config = Config(home=tmp_path, index=demo_index, model="demo", device="cpu")
    quick = open_engine(config, text_only=True)
    full = open_engine(config)
    assert isinstance(quick.model, NumpyTextEncoder)
    assert not isinstance(full.model, TowerText)
    for text in TEXTS[:4]:
        got = quick.search(Query(text=text), top=10)
        expected = full.search(Query(text=text), top=10)
        assert got.rows.tolist() == expected.rows.tolist()
        np.testing.assert_allclose(got.scores, expected.scores, rtol=0, atol=1e-5)


def test_cli_text_query_ranks_like_the_full_model(demo_index, tiny_archive, models, tmp_path):
    full = models[0]
    text = "a bright round galaxy in the middle of the field"
    result = run_cli("query", text, "--index", str(demo_index), "--model", "demo", "--top", "8",
                     "--format", "csv", home=tmp_path)
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    images = full.encode_images([tiny_archive.preview_path(i) for i in range(len(tiny_archive))])
    scores = images @ full.encode_text([text])[0]
    expected = np.argsort(-scores, kind="stable")[:8]
    assert [r["obs_id"] for r in rows] == [tiny_archive.obs_ids[i] for i in expected]
    np.testing.assert_allclose([float(r["similarity"]) for r in rows], scores[expected],
                               atol=1e-5)


def test_trimmed_tokens_are_within_float32_rounding(models):
    full, _ = models
    trimmed = text_encoder_of(full)
    assert trimmed.trim
    # shares the model's weights rather than copying them
    assert (trimmed._projection.data_ptr()
            == full.module.text.proj.weight.data_ptr())
    for batch in ([t] for t in TEXTS):
        np.testing.assert_allclose(trimmed.encode_text(batch), full.encode_text(batch),
                                   rtol=0, atol=1e-6)
    np.testing.assert_allclose(trimmed.encode_text(TEXTS), full.encode_text(TEXTS),
                               rtol=0, atol=1e-6)


def test_no_quick_encoder_for_a_model_without_a_bert_tower(tiny_model_path):
    assert text_encoder_of(load_model(str(tiny_model_path), device="cpu")) is None


def test_tap_encodes_new_texts_with_the_trimmed_encoder(demo_index, tiny_archive, models,
                                                        tmp_path):
    from vo_clip.workspace import open_tap

    config = Config(home=tmp_path, index=demo_index, model="demo", device="cpu")
    service = open_tap(config)
    engine = service.engine()
    # ONNX Runtime's encoder where it is installed (tests/test_text_onnx.py), else torch's
    assert isinstance(engine.text_encoder, TowerText) and engine.text_encoder.trim
    # float32: the page and TAP must rank exactly as `vo-clip query` does
    assert not engine.text_encoder.bf16
    result = service.execute({"LANG": "ADQL", "QUERY": (
        "SELECT TOP 5 obs_id, vo_clip_similarity('spiral galaxy') AS s FROM ivoa.ObsCore "
        "ORDER BY s DESC")}, base_url="http://127.0.0.1/")
    full = models[0]
    scores = engine.index.embeddings @ full.encode_text(["spiral galaxy"])[0]
    best = np.argsort(-scores, kind="stable")[:5]
    assert [row[0] for row in result.rows] == [tiny_archive.obs_ids[i] for i in best]
    np.testing.assert_allclose([row[1] for row in result.rows], scores[best], atol=1e-6)


def test_concurrent_queries_put_the_thread_setting_back(models, threads):
    """Service threads overlap: the last one out restores the process-wide setting."""
    from concurrent.futures import ThreadPoolExecutor

    _, fast = models
    threads(2)
    texts = TEXTS[:6] * 4
    with ThreadPoolExecutor(4) as pool:
        vectors = list(pool.map(lambda text: fast.encode_text([text]), texts))
    assert torch.get_num_threads() == 2
    threads(text_query.few_text_threads(2))  # what each of them ran on
    for text, vector in zip(texts, vectors):
        assert np.array_equal(vector, fast.encode_text([text]))


def test_a_text_query_process_imports_no_open_clip_nor_torch(demo_index, tmp_path):
    """What made a new `vo-clip query` slow: open_clip, torchvision, transformers, torch."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from vo_clip.config import Config\n"
        "from vo_clip.search.engine import Query\n"
        "from vo_clip.workspace import open_engine\n"
        f"config = Config(home={str(tmp_path)!r}, index={str(demo_index)!r}, model='demo',"
        " device='cpu')\n"
        "engine = open_engine(config, text_only=True)\n"
        "assert len(engine.search(Query(text='spiral galaxy'), top=3).rows) == 3\n"
        "print(sorted(m for m in ('open_clip', 'torchvision', 'transformers', 'torch')"
        " if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ}, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- an MPNet text tower (all-mpnet-base-v2, the demo model's next one) -------------------

#: The demo model's architecture with all-mpnet-base-v2 as its text tower.
MPNET_ARCHITECTURE = {
    "embed_dim": 768,
    "vision_cfg": {"layers": [1, 1, 1, 1], "width": 32, "image_size": 96},
    "text_cfg": {"hf_model_name": MPNET, "hf_tokenizer_name": MPNET,
                 "hf_pooler_type": "mean_pooler", "hf_proj_type": "linear",
                 "context_length": 128},
}
#: Short texts of different lengths: padded to the longest, trimming cuts the rest.
SHORT_TEXTS = ["globular cluster", "comet", "barred spiral galaxy with a star-forming ring",
               "  a globular   cluster &amp; its &lt;halo&gt;\n", "CafÃ© naïve — Ångström Ω 星系"]
LONG_TEXT = TEXTS[5]  # more than 128 tokens: truncated at the context length


@pytest.fixture(scope="module")
def mpnet(tmp_path_factory):
    """A checkpoint with the MPNet tower left out of it (as the demo checkpoint leaves its
    tower out), as open_clip loads it, as the fast path loads it, and trimmed."""
    path = tmp_path_factory.mktemp("mpnet") / "mpnet.safetensors"
    model = create_model(MPNET_ARCHITECTURE, {"mean": [0.1] * 3, "std": [0.2] * 3}, seed=0,
                         name="mpnet test model", device="cpu")
    model.card = dataclasses.replace(model.card,
                                     external={"text.transformer": KNOWN_TOWERS[MPNET]})
    model.save(path, half=True)
    del model
    full = load_model(str(path), device="cpu")
    return full, load_text_encoder(str(path), trim=True), text_encoder_of(full)


def test_mpnet_tokens_are_open_clips(mpnet):
    full, fast, _ = mpnet
    texts = [*SHORT_TEXTS, LONG_TEXT]
    tokens = fast.tokenize(texts)
    assert torch.equal(tokens, full.tokenize(texts))
    assert tokens.shape == (len(texts), 128)
    assert (tokens[:-1] == 1).any(dim=1).all()  # padded with MPNet's <pad>
    assert not (tokens[-1] == 1).any()  # truncated, ending in </s>
    assert tokens[-1, -1] == 2


@pytest.mark.parametrize("count", [1, 2])
def test_mpnet_vectors_are_open_clips(mpnet, threads, count):
    """Stated tolerance: 1e-6 per component (measured: under 2e-7), on one thread and
    on two, for one text, a few and more than a few."""
    full, fast, _ = mpnet
    assert isinstance(fast, TextEncoder) and fast.trim  # as the model's own encode_text
    assert fast.fingerprint == full.fingerprint
    threads(count)
    batches = [["globular cluster"], [LONG_TEXT], SHORT_TEXTS, [*SHORT_TEXTS, LONG_TEXT],
               TEXTS]  # TEXTS: more than a few texts, so both run on `count` threads
    for batch in batches:
        got, expected = fast.encode_text(batch), full.encode_text(batch)
        assert got.shape == expected.shape == (len(batch), 768)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=0, atol=1e-6)


def test_mpnet_trimmed_tokens_are_within_float32_rounding(mpnet):
    """Trimming keeps each text's tokens and positions; the relative position bias
    depends only on those, so only the rounding changes."""
    full, fast, trimmed = mpnet
    assert trimmed.trim  # and shares the model's weights:
    assert trimmed._projection.data_ptr() == full.module.text.proj.weight.data_ptr()
    untrimmed = text_encoder_of(full, trim=False)
    for batch in [["globular cluster"], SHORT_TEXTS, [LONG_TEXT], [*SHORT_TEXTS, LONG_TEXT]]:
        expected = fast.encode_text(batch)
        assert np.array_equal(trimmed.encode_text(batch), expected)
        np.testing.assert_allclose(untrimmed.encode_text(batch), expected, rtol=0, atol=1e-6)
    assert trimmed.tokenize(SHORT_TEXTS).shape[1] == 128  # cut in the forward pass, not here


@pytest.mark.skipif(not bf16_matmul_is_native(), reason="this CPU emulates bfloat16")
def test_mpnet_bf16_products_are_within_the_stated_tolerance(mpnet):
    """bfloat16 matrix products: within 2e-3 per component and a cosine of 0.9999 of the
    float32 vectors (measured: 8e-4 and 0.99998), and the ranking of a small archive of
    texts is the float32 one."""
    full, fast, _ = mpnet
    half = text_encoder_of(full, bf16=True)
    assert half.bf16 and not fast.bf16
    texts = [*SHORT_TEXTS, LONG_TEXT, *TEXTS]
    got, expected = half.encode_text(texts), fast.encode_text(texts)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-3)
    assert (got * expected).sum(axis=1).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=0, atol=1e-6)
    for text in SHORT_TEXTS:
        one, reference = half.encode_text([text])[0], fast.encode_text([text])[0]
        assert np.argsort(-(expected @ one))[:3].tolist() == np.argsort(
            -(expected @ reference))[:3].tolist()


def test_only_bert_and_mpnet_towers_with_their_settings_qualify(mpnet, tmp_path):
    """A tower type or MPNet bucket count the fast path does not run loads the full model."""
    card = mpnet[0].card
    source = Path(resolve_text_tower(MPNET))
    assert text_query._fast_tower(card) == source
    config = json.loads((source / "config.json").read_text())
    (tmp_path / "tokenizer.json").write_bytes((source / "tokenizer.json").read_bytes())
    for change, qualifies in [({}, True), ({"model_type": "roberta"}, False),
                              ({"relative_attention_num_buckets": 64}, False),
                              ({"hidden_act": "gelu_new"}, False)]:
        (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
        text_cfg = {**card.architecture["text_cfg"], "hf_model_name": f"path:{tmp_path}",
                    "hf_tokenizer_name": f"path:{tmp_path}"}
        other = dataclasses.replace(
            card, architecture={**card.architecture, "text_cfg": text_cfg})
        assert (text_query._fast_tower(other) == tmp_path) is qualifies, change


# -- the numpy encoder (a text query process without torch) -------------------------------

def test_numpy_erf_is_within_its_stated_error():
    import math

    from vo_clip.ml.text_numpy import erf

    x = np.concatenate([np.linspace(-8, 8, 400_001), [0.0, -0.0, 4.5, -4.5, 1e-300, 40.0]])
    expected = np.array([math.erf(v) for v in x])
    assert np.abs(erf(x) - expected).max() <= 2.1e-10
    assert erf(np.array([np.inf, -np.inf])).tolist() == [1, -1]


def test_numpy_relative_buckets_are_the_torch_ones():
    from vo_clip.ml.text_numpy import relative_buckets

    for length in range(1, 515):
        assert np.array_equal(relative_buckets(length),
                              text_query._relative_buckets(length).numpy()), length


@pytest.fixture(scope="module")
def numpy_demo():
    encoder = load_text_encoder("demo", backend="numpy", trim=True)
    assert isinstance(encoder, NumpyTextEncoder) and encoder.trim
    return encoder


def test_numpy_encoder_matches_the_demo_model(models, numpy_demo, threads):
    """Stated tolerance: 1e-5 per component (measured: 2.4e-7 for one text and a batch,
    against the full model and the torch encoder)."""
    full, fast = models
    assert numpy_demo.fingerprint == full.fingerprint
    assert np.array_equal(numpy_demo.tokenize(TEXTS), full.tokenize(TEXTS).numpy())
    threads(1)
    for batch in [[t] for t in TEXTS] + [TEXTS]:
        got = numpy_demo.encode_text(batch)
        assert got.dtype == np.float32 and got.shape == (len(batch), full.embed_dim)
        np.testing.assert_allclose(got, full.encode_text(batch), rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, fast.encode_text(batch), rtol=0, atol=1e-5)
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, rtol=0, atol=1e-6)


def test_mapped_tensors_are_the_files_tensors(tmp_path):
    from safetensors.numpy import load_file, save_file

    from vo_clip.ml.text_numpy import mapped_tensors

    tower = Path(resolve_text_tower(MPNET)) / "model.safetensors"
    mapped, read = mapped_tensors(tower), load_file(str(tower))
    assert sorted(mapped) == sorted(read)
    for name, tensor in read.items():
        assert mapped[name].dtype == tensor.dtype and np.array_equal(mapped[name], tensor)
        assert not mapped[name].flags.writeable  # the file is never written through them
    small = {"a": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.ones(3, np.int64)}
    save_file(small, str(tmp_path / "small.safetensors"), metadata={"format": "np"})
    got = mapped_tensors(tmp_path / "small.safetensors")
    assert {k: v.tolist() for k, v in got.items()} == {k: v.tolist() for k, v in small.items()}


def test_numpy_encoder_untrimmed_is_within_float32_rounding(numpy_demo):
    untrimmed = load_text_encoder("demo", backend="numpy")
    assert not untrimmed.trim
    np.testing.assert_allclose(untrimmed.encode_text(TEXTS[:4]), numpy_demo.encode_text(TEXTS[:4]),
                               rtol=0, atol=1e-6)


def test_numpy_encoder_matches_an_mpnet_model(mpnet, tmp_path):
    """Stated tolerance: 1e-5 per component (measured: 1.8e-7 against the full model,
    texts one at a time and in batches)."""
    full, fast, _ = mpnet
    checkpoint = Path(fast.spec)
    encoder = load_text_encoder(str(checkpoint), backend="numpy", trim=True)
    assert encoder.fingerprint == full.fingerprint
    for batch in [["globular cluster"], [LONG_TEXT], SHORT_TEXTS, [*SHORT_TEXTS, LONG_TEXT]]:
        got = encoder.encode_text(batch)
        assert got.shape == (len(batch), 768)
        np.testing.assert_allclose(got, full.encode_text(batch), rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, fast.encode_text(batch), rtol=0, atol=1e-5)
