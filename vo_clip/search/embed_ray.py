"""Embedding on Ray: a Ray Data actor pool of model replicas, merged into one index.

``vo-clip index --engine ray [--ray-address ADDR]`` hands the previews to embed to
:func:`embed_rows`. Their rows are cut into the batches the single-process path would
use (``batch_size`` consecutive rows of the to-do list), one dataset item per batch; a
pool of :class:`_Embedder` actors (one model replica each; one GPU each where the
cluster has GPUs, else one CPU) reads each batch's previews from the archive and
returns ``(row, vector)`` blocks. The driver streams these blocks back and writes each
into ``embeddings.npy`` at its row, so the index format is unchanged and no shared
scratch directory is needed for the results (the archive itself must be readable at
the same path on every node, as it is for any worker).

Why the vectors are identical to the single-process path: the same model file, the same
batches (the batch composition changes float32 sums), the same batched CPU
preprocessing and, on the CPU, the driver's intra-op thread count (the summation order
depends on it); ``tests/test_embed_ray.py`` compares them with ``np.array_equal``.

Failures: Ray Data restarts a dead actor and runs its batch again; rows are keys, so a
batch that ran twice writes the same row twice, never a second row. The driver counts
every row it receives and fails if one is missing, so a build never swaps in an index
with holes. For the test of that, ``VO_CLIP_RAY_FAIL_ONCE=PATH`` makes the first actor to
see no file at PATH create it and exit (a crashed worker): test scaffolding only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..errors import VoClipError
from ..ml.pixels import embedding_settings

__all__ = ["embed_rows"]

FAIL_ONCE_ENV = "VO_CLIP_RAY_FAIL_ONCE"


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


class RayUnavailableError(VoClipError):
    """The Ray engine was asked for but Ray cannot run it."""


class _Embedder:
    """One model replica: embeds one batch of previews per call."""

    def __init__(self, spec: str, fingerprint: str, device: str, batch_size: int,
                 workers: int, fail_once: str | None, threads: int):
        import torch

        from ..ml.model import load_model

        # Ray sets OMP_NUM_THREADS to the actor's one CPU, and float32 convolutions sum
        # in another order on another thread count: run on the driver's count instead,
        # or an actor's vectors differ from the single-process ones in the last bit.
        if device == "cpu":
            torch.set_num_threads(threads)
        self.model = load_model(spec, device=device)
        if self.model.fingerprint != fingerprint:
            raise RuntimeError(f"model {spec} loads as {self.model.fingerprint[:12]} on this "
                               f"node, not {fingerprint[:12]}")
        self.batch_size, self.workers, self.fail_once = batch_size, workers, fail_once

    def __call__(self, batch: dict) -> dict:
        rows = np.concatenate(list(batch["rows"])).astype(np.int64)
        paths = [str(p) for item in batch["paths"] for p in item]
        if self.fail_once and not os.path.exists(self.fail_once):
            Path(self.fail_once).touch()
            os._exit(1)  # a crashed worker, mid-batch (VO_CLIP_RAY_FAIL_ONCE)
        vectors = self.model.encode_images(paths, batch_size=self.batch_size,
                                           workers=self.workers)
        return {"row": rows, "vector": vectors}


def embed_rows(archive, model, rows: list[int], matrix: np.ndarray, *,
               batch_size: int | None = None, workers: int | None = None,
               address: str | None = None, actors: int | None = None,
               progress: bool = True) -> None:
    """Embed the previews of ``rows`` of ``archive`` on Ray into ``matrix[rows]``.

    Connects to the cluster at ``address`` (``auto`` finds a running one), or starts a
    local Ray when none is running; a Ray already initialised in this process is used
    as it is. ``actors`` defaults to one per GPU, or one per CPU without GPUs.

    Raises
    ------
    RayUnavailableError
        If Ray is not installed, or the model has no spec a replica could load it by.
    VoClipError
        If some rows came back missing.
    """
    try:
        import ray
    except ImportError:
        raise RayUnavailableError("the Ray engine needs Ray, which is not installed",
                                  hint="pip install 'vo_clip[ray]'") from None
    if not model.spec:
        raise RayUnavailableError("the Ray engine loads the model on every node by its spec, "
                                  "and this model has none",
                                  hint="give --model as a file, directory or ARCH:TAG")
    if not ray.is_initialized():
        ray.init(address=address, logging_level=logging.WARNING, include_dashboard=False,
                 log_to_driver=True)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # ours counts previews across the cluster
    context.print_on_execution_start = False
    resources = ray.cluster_resources()
    gpus = int(resources.get("GPU", 0))
    device = "cuda" if gpus else "cpu"
    batch_size, workers = embedding_settings(device, batch_size, workers, cpus=1)
    actors = actors or max(1, gpus or int(resources.get("CPU", 1)))
    batches = [{"rows": np.asarray(rows[i:i + batch_size], dtype=np.int64),
                "paths": [str(archive.preview_path(r)) for r in rows[i:i + batch_size]]}
               for i in range(0, len(rows), batch_size)]
    dataset = ray.data.from_items(batches, override_num_blocks=min(len(batches), 4 * actors))
    embedded = dataset.map_batches(
        _Embedder, batch_size=1, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0, num_cpus=0 if gpus else 1,
        fn_constructor_kwargs={"spec": model.spec, "fingerprint": model.fingerprint,
                               "device": device, "batch_size": batch_size,
                               "workers": workers,
                               "fail_once": os.environ.get(FAIL_ONCE_ENV),
                               "threads": _torch_threads()})
    received = np.zeros(len(matrix), dtype=np.int32)
    with tqdm(total=len(rows), desc=f"embedding previews on Ray ({actors} actors)",
              unit="preview", disable=not progress, smoothing=0) as bar:
        for block in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            block_rows = np.asarray(block["row"], dtype=np.int64)
            matrix[block_rows] = block["vector"]
            received[block_rows] += 1
            bar.update(len(block_rows))
    missing = np.setdiff1d(np.asarray(rows, dtype=np.int64), np.flatnonzero(received))
    if len(missing):
        raise VoClipError(f"Ray returned no vector for {len(missing)} previews "
                          f"(first: row {missing[0]})", hint="run vo-clip index again")
