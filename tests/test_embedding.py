"""Batched image embedding: decoding threads, exact CPU results, order, errors, defaults."""

from __future__ import annotations

import itertools
import random
import threading
import time

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import TINY_ARCHITECTURE, assert_one_line_error, run_cli, write_tiny_archive
from PIL import Image

from vo_clip.errors import QueryError
from vo_clip.ml.model import create_model, load_image, load_model
from vo_clip.ml.pixels import Preprocess, decoded_batches, embedding_settings


@pytest.fixture(scope="module")
def models():
    """The tiny ViT (32 px: previews shrink) and the demo ResNet (96 px: they grow)."""
    return {"tiny": create_model(TINY_ARCHITECTURE, seed=0), "demo": load_model("demo")}


@torch.inference_mode()
def per_image_vectors(model, images, batch_size: int = 32) -> np.ndarray:
    """The reference: the whole open_clip transform on each image, as before batching."""
    out = []
    for start in range(0, len(images), batch_size):
        pixels = torch.stack([model._transform(load_image(image))
                              for image in images[start:start + batch_size]])
        out.append(model.module.encode_image(pixels, normalize=True).numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("name", ["tiny", "demo"])
@pytest.mark.parametrize("workers", [0, 1, 3])
def test_vectors_are_bit_identical_to_per_image_preprocessing(models, tiny_archive, name,
                                                              workers):
    model = models[name]
    paths = [tiny_archive.preview_path(i) for i in range(12)]
    for batch_size in (32, 5):  # one batch, and batches that split the input
        np.testing.assert_array_equal(
            model.encode_images(paths, batch_size=batch_size, workers=workers),
            per_image_vectors(model, paths, batch_size))


def test_any_image_mode_and_mixed_sources_match(models, tiny_archive):
    """Grayscale is resized before its RGB conversion: other modes still match exactly."""
    model = models["demo"]
    gray = Image.open(tiny_archive.preview_path(3))
    rgb = Image.merge("RGB", [gray.convert("L"), gray.rotate(90), gray.transpose(0)])
    images = [gray, rgb, rgb.convert("RGBA"), rgb.convert("P"), gray.convert("I;16"),
              gray.convert("1"), tiny_archive.preview_path(4), gray.resize((31, 70))]
    np.testing.assert_array_equal(model.encode_images(images, workers=2),
                                  per_image_vectors(model, images))


def test_order_survives_out_of_order_decoding():
    def slow_identity(item):
        time.sleep(random.uniform(0, 0.01))
        return item

    batches = list(decoded_batches(range(23), slow_identity, batch_size=4, workers=4))
    assert [len(b) for b in batches] == [4, 4, 4, 4, 4, 3]
    assert list(itertools.chain(*batches)) == list(range(23))


def test_input_is_consumed_lazily():
    """An endless generator works: at most two batches are decoded ahead."""
    batches = decoded_batches(itertools.count(), lambda x: x, batch_size=3, workers=2)
    assert next(batches) == [0, 1, 2]
    batches.close()


def test_a_generator_with_a_progress_bar(models, tiny_archive, capsys):
    model = models["tiny"]
    paths = [tiny_archive.preview_path(i) for i in range(7)]
    vectors = model.encode_images((p for p in paths), batch_size=3, total=7,
                                  progress="embedding previews")
    np.testing.assert_array_equal(vectors, model.encode_images(paths, batch_size=3))
    assert "embedding previews" in capsys.readouterr().err
    empty = model.encode_images(iter([]))
    assert empty.shape == (0, 32) and empty.dtype == np.float32


@pytest.mark.parametrize("content", [b"not a png at all", "truncated"])
@pytest.mark.parametrize("workers", [0, 2])
def test_an_unreadable_image_is_one_line_naming_the_file(models, tiny_archive, tmp_path,
                                                         content, workers):
    bad = tmp_path / "broken.png"
    good = tiny_archive.preview_path(0).read_bytes()
    bad.write_bytes(good[:len(good) // 2] if content == "truncated" else content)
    paths = [tiny_archive.preview_path(i) for i in range(9)] + [bad]
    with pytest.raises(QueryError) as info:
        models["tiny"].encode_images(paths, batch_size=4, workers=workers)
    assert "broken.png" in str(info.value) and "\n" not in str(info.value)
    assert not [t for t in threading.enumerate() if t.name.startswith("vo-clip-decode")]


def test_vo_clip_index_reports_a_broken_preview_in_one_line(tiny_model_path, tmp_path):
    archive = write_tiny_archive(tmp_path / "archive", n=6)
    archive.preview_path(4).write_bytes(b"\x89PNG garbage")
    result = run_cli("index", "--archive", str(archive.root), "--model", str(tiny_model_path),
                     "--workers", "2", home=tmp_path / "home", check=False)
    bar = "embedding previews:"  # the progress bar also writes to stderr, up to the error
    result.stderr = "\n".join(line for line in result.stderr.splitlines()
                               if not line.startswith(bar))
    assert_one_line_error(result, "cannot read image", archive.preview_path(4).name)


def test_index_passes_batch_size_and_workers(tiny_archive, tiny_model_path, tiny_index,
                                             tmp_path):
    from vo_clip.search.index import EmbeddingIndex, build_index

    model = load_model(str(tiny_model_path))
    seen = []
    encode = model.encode_images

    def recording(images, **options):
        seen.append({k: options[k] for k in ("batch_size", "workers")})
        return encode(images, **options)

    model.encode_images = recording
    built = build_index(tiny_archive, model, tmp_path / "index", batch_size=32, workers=3,
                        progress=False)
    assert seen == [{"batch_size": 32, "workers": 3}]
    np.testing.assert_array_equal(built.index.embeddings,
                                  EmbeddingIndex.open(tiny_index).embeddings)


def test_index_help_documents_the_options():
    from vo_clip.cli import cli

    text = CliRunner().invoke(cli, ["index", "--help"], terminal_width=200).output
    assert "--workers" in text and "256 on a GPU, 32 on the CPU" in text


@pytest.mark.parametrize("device, cpus, expected", [
    ("cpu", 2, (32, 2)),
    ("cpu", 64, (32, 8)),
    ("cuda", 16, (256, 8)),
    ("cuda:1", 4, (256, 4)),
    ("cuda", 1, (256, 1)),
])
def test_default_settings_follow_the_device(device, cpus, expected):
    assert embedding_settings(device, cpus=cpus) == expected


def test_given_settings_win_and_are_checked():
    assert embedding_settings("cuda", 64, 0, cpus=16) == (64, 0)
    assert embedding_settings("cpu", None, 5) == (32, 5)
    with pytest.raises(ValueError):
        embedding_settings("cpu", 0)
    with pytest.raises(ValueError):
        embedding_settings("cpu", workers=-1)


def test_an_unsplittable_transform_is_applied_whole(models, tiny_archive):
    """A transform without ToTensor + Normalize at its end still gives the same inputs."""
    model = models["demo"]
    paths = [tiny_archive.preview_path(i) for i in range(3)]
    split, whole = model._preprocess, Preprocess(lambda image: model._transform(image))
    torch.testing.assert_close(whole.batch([whole.decode(p) for p in paths], "cpu"),
                               split.batch([split.decode(p) for p in paths], "cpu"),
                               rtol=0, atol=0)
