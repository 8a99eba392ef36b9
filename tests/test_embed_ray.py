"""Embedding on Ray: the same vectors as one process, reruns, a crashed worker, the CLI."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import write_tiny_archive

from vo_clip.cli import cli
from vo_clip.ml.model import load_model
from vo_clip.search.embed_ray import FAIL_ONCE_ENV
from vo_clip.search.index import build_index

ray = pytest.importorskip("ray", reason="missing tool: ray (pip install 'vo_clip[ray]')")

pytestmark = [pytest.mark.ray, pytest.mark.slow]


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tiny_model_path):
    return load_model(str(tiny_model_path))


def test_ray_vectors_equal_the_single_process_ones_and_reruns_embed_only_new(tmp_path,
                                                                             model):
    small = write_tiny_archive(tmp_path / "small", n=40)
    grown = write_tiny_archive(tmp_path / "grown", n=52)  # the same 40 rows, then 12
    local = build_index(grown, model, tmp_path / "local", progress=False, batch_size=8)
    first = build_index(small, model, tmp_path / "ray", progress=False, batch_size=8,
                        engine="ray")
    assert first.embedded == 40
    np.testing.assert_array_equal(first.index.embeddings, local.index.embeddings[:40])
    again = build_index(grown, model, tmp_path / "ray", progress=False, batch_size=8,
                        engine="ray")
    assert (again.embedded, again.reused) == (12, 40)
    # the 12 new rows made the same 2 batches (8 + 4) as in the single-process build
    np.testing.assert_array_equal(again.index.embeddings, local.index.embeddings)
    assert again.index.catalog.fetch(np.arange(52), ["obs_id"])["obs_id"].tolist() == \
        grown.obs_ids


def test_a_crashed_worker_is_retried_without_losing_or_repeating_a_row(tmp_path, model,
                                                                       monkeypatch):
    archive = write_tiny_archive(tmp_path / "archive", n=36)
    marker = tmp_path / "crashed-once"
    monkeypatch.setenv(FAIL_ONCE_ENV, str(marker))
    built = build_index(archive, model, tmp_path / "ray", progress=False, batch_size=6,
                        engine="ray")
    assert marker.exists()  # one actor did exit in the middle of a batch
    monkeypatch.delenv(FAIL_ONCE_ENV)
    reference = build_index(archive, model, tmp_path / "local", progress=False, batch_size=6)
    assert built.embedded == 36 and len(built.index) == 36
    np.testing.assert_array_equal(built.index.embeddings, reference.index.embeddings)


def test_vo_clip_index_engine_ray(tmp_path, tiny_model_path):
    write_tiny_archive(tmp_path / "archive", n=20)
    result = CliRunner().invoke(cli, [
        "--home", str(tmp_path / "home"), "index", "--archive", str(tmp_path / "archive"),
        "--model", str(tiny_model_path), "--out", str(tmp_path / "index"),
        "--engine", "ray", "--ray-actors", "1"])
    assert result.exit_code == 0, result.output
    assert "indexed 20 observations" in result.output and "(20 embedded, 0 reused" in \
        result.output
    assert "preview/s" in result.output  # the progress bar counts previews per second
