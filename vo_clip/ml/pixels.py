"""Images to model inputs, fast: decoding in threads, normalising once per batch.

Embedding an archive is bound by decoding previews, not by the model, as soon as a GPU
runs the model. So :meth:`~vo_clip.ml.model.ClipModel.encode_images` decodes ahead of
the model in a pool of threads, and this module holds that pipeline:

* **threads, not DataLoader processes**: Pillow releases the GIL while it decodes and
  resizes, so threads use the cores as processes would (``benchmarks/embed_throughput.py``
  measures both), and they take any iterable (``build_index`` streams a generator of
  paths), cost no process start-up on a one-image query, and let a bad file raise the
  project's one-line :class:`~vo_clip.errors.QueryError` rather than a worker traceback;
* **uint8 out of the workers**: the PIL stages of the open_clip transform (resize,
  crop) run per image; conversion to float and normalisation run once per batch, on the
  model's device. That copies a quarter of the bytes to a GPU and avoids per-image
  tensor operations (on a CPU, each tiny torch operation can cost milliseconds while
  the intra-op threads wake up). On the CPU the batch operations are torchvision's
  ``ToTensor`` + ``Normalize`` in the same float32 order, so vectors are bit-identical
  to transforming one image at a time;
* **grayscale stays grayscale until after the resize**: Pillow resamples each band
  alike, so resizing ``L`` and then converting to RGB gives the same pixels as the
  reverse order for a third of the work (previews are grayscale).
"""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from typing import Callable, Iterable, Iterator

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import Normalize, ToTensor

from ..errors import QueryError

__all__ = ["Preprocess", "decoded_batches", "embedding_settings", "read_image"]

#: Batch size by device type: a GPU needs large batches to be busy; on the CPU 32 keeps
#: the vectors of indexes built before identical (batch size changes float summation).
DEFAULT_BATCH_SIZE = {"cuda": 256, "cpu": 32}
#: Decoding threads at most: at ~3 ms per 512-px preview on one core, 8 threads can feed
#: ~2,500 previews/s to a GPU, past the 1,000/s wanted of one H100 on ViT-B-16.
MAX_WORKERS = 8
#: Modes the resize and crop treat band by band, so they may stay unconverted until after.
BANDWISE_MODES = ("L", "RGB")


def embedding_settings(device: str, batch_size: int | None = None,
                       workers: int | None = None, *,
                       cpus: int | None = None) -> tuple[int, int]:
    """``(batch_size, workers)`` for embedding images on ``device``; given values win.

    Workers default to one decoding thread per core, at most 8, on any device: a GPU
    must never wait for decoding, and on the CPU the threads overlap Pillow's work with
    the forward pass: on 2 cores, the demo model embedded fastest with 2 threads (ahead
    of 0, 1 and 4), and ViT-B-16, where the model dominates, did not care
    (``benchmarks/embed_throughput.py``).

    Raises
    ------
    ValueError
        If ``batch_size`` is below 1 or ``workers`` below 0.
    """
    kind = torch.device(device).type
    cpus = cpus or _cpu_count()
    if batch_size is None:
        batch_size = DEFAULT_BATCH_SIZE.get(kind, DEFAULT_BATCH_SIZE["cpu"])
    if workers is None:
        workers = min(MAX_WORKERS, cpus)
    if batch_size < 1 or workers < 0:
        raise ValueError(f"batch_size must be >= 1 and workers >= 0, not {batch_size}, "
                         f"{workers}")
    return batch_size, workers


def _cpu_count() -> int:
    """Cores this process may use (a container's share, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def read_image(source, keep: tuple[str, ...] = ()) -> Image.Image:
    """A decoded PIL image from a path or an image, converted to RGB unless in ``keep``.

    Raises
    ------
    QueryError
        If the file is missing or not an image PIL can read; the message names it.
    """
    if isinstance(source, Image.Image):
        return source if source.mode in keep else source.convert("RGB")
    try:
        with Image.open(source) as image:
            image.load()  # decode now: a truncated file fails here, not in a later stage
            return image if image.mode in keep else image.convert("RGB")
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise QueryError(f"cannot read image {source}: {exc}") from exc


class Preprocess:
    """A model's image transform, split into per-image PIL stages and per-batch tensor work.

    An open_clip eval transform ends in ``ToTensor`` and ``Normalize``; those two move to
    :meth:`batch`. Any other transform is applied whole, per image, as a fallback.
    """

    def __init__(self, transform: Callable):
        steps = list(getattr(transform, "transforms", []))
        split = (len(steps) >= 2 and isinstance(steps[-2], ToTensor)
                 and isinstance(steps[-1], Normalize))
        self._whole = None if split else transform
        self._stages = steps[:-2] if split else []
        self._mean = steps[-1].mean if split else None
        self._std = steps[-1].std if split else None

    def decode(self, source) -> np.ndarray | torch.Tensor:
        """uint8 pixels ``[H, W, 3]`` of one image, resized and cropped (thread-safe)."""
        if self._whole is not None:
            return self._whole(read_image(source))
        image = read_image(source, keep=BANDWISE_MODES)
        for stage in self._stages:
            image = stage(image)
        return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))

    def batch(self, decoded: list, device: str) -> torch.Tensor:
        """float32 ``[N, 3, H, W]`` model inputs on ``device`` from :meth:`decode` outputs.

        For a GPU the pixels are stacked into pinned memory and copied without blocking,
        so the copy queues behind the previous batch's forward pass.
        """
        cuda = torch.device(device).type == "cuda"
        if self._whole is not None:
            return torch.stack(decoded).to(device, non_blocking=cuda)
        pixels = torch.empty((len(decoded), *decoded[0].shape), dtype=torch.uint8,
                             pin_memory=cuda)
        np.stack(decoded, out=pixels.numpy())
        pixels = pixels.to(device, non_blocking=cuda).permute(0, 3, 1, 2).contiguous()
        mean = torch.as_tensor(self._mean, dtype=torch.float32, device=device)
        std = torch.as_tensor(self._std, dtype=torch.float32, device=device)
        # exactly torchvision's to_tensor (float, then / 255) and normalize (- mean, / std)
        return pixels.float().div_(255).sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1))


def decoded_batches(images: Iterable, decode: Callable, batch_size: int,
                    workers: int) -> Iterator[list]:
    """Lists of ``decode(image)``, ``batch_size`` at a time, in the order of ``images``.

    With ``workers`` threads, up to two batches are decoded ahead, so the next batch is
    being decoded while the caller runs the model on this one; ``images`` is consumed
    lazily (a generator works). With 0 workers, decoding happens in the calling thread.
    An exception raised by ``decode`` reaches the caller unchanged.
    """
    items = iter(images)
    if workers == 0:
        while chunk := list(islice(items, batch_size)):
            yield [decode(image) for image in chunk]
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="vo-clip-decode")
    pending: deque = deque()
    try:
        while True:
            room = 2 * batch_size - len(pending)
            pending.extend(pool.submit(decode, image) for image in islice(items, room))
            if not pending:
                return
            yield [pending.popleft().result() for _ in range(min(batch_size, len(pending)))]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
