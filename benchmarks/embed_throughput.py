"""Image-embedding throughput of ``ClipModel.encode_images``, in images per second.

For each ``--workers`` value (0 decodes in the calling thread, the sequential baseline;
``auto`` is the device default), prints:

* decode only: previews read, resized and cropped to uint8 pixels by the thread pool
  that ``encode_images`` uses, and by a torch DataLoader with as many worker
  processes, the alternative the pool was chosen over;
* model only: forward passes on pre-decoded inputs already on the device;
* end to end: ``encode_images`` on preview paths, as ``vo-clip index`` runs it, and
  the baseline it replaced: the whole open_clip transform applied image by image in
  the calling thread, then the same batched forward pass.

Each measurement runs one untimed warm-up batch first. Previews come from the demo
archive (``--archive``, default HOME/demo-archive); without one, 512-px grayscale PNGs
are synthesised into a temporary directory.

    python benchmarks/embed_throughput.py [--model demo] [--device auto]
        [--batch-size N] [--workers 0 auto] [--images 1024] [--repeats 1]
    python benchmarks/embed_throughput.py --engine ray [--ray-address ADDR]
        [--ray-actors N]     # vo-clip index --engine ray's path, previews/s across Ray

With ``--engine ray`` it times :func:`vo_clip.search.embed_ray.embed_rows` (what
``vo-clip index --engine ray`` runs) on the same previews: once including the start of
the actor pool (every index build pays it) and, with ``--repeats`` > 1, the median.
Without ``--ray-address`` it starts a local Ray on every core.

On a GPU, the issue's target is printed at the end: at least 1,000 previews per
second embedded end to end on one H100 (ViT-B-16).
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from vo_clip.config import Config
from vo_clip.ml.model import load_image, load_model
from vo_clip.ml.pixels import decoded_batches, embedding_settings

TARGET_GPU = 1000  # previews per second end to end on one H100 (the target)


def preview_paths(archive: Path | None, n: int, scratch: Path) -> list[Path]:
    """``n`` preview paths: the archive's (cycled if it holds fewer), else synthetic."""
    archive = archive or Config.load().archive_dir
    found = sorted((archive / "previews").glob("*.png")) if archive.is_dir() else []
    if not found:
        print(f"no previews in {archive}: synthesising {min(n, 256)} 512-px PNGs")
        found = synthesise(scratch, min(n, 256))
    return list(itertools.islice(itertools.cycle(found), n))


def synthesise(root: Path, n: int) -> list[Path]:
    """Grayscale 512-px previews, a blob on noise: decoded like the demo archive's."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512]
    paths = []
    for i in range(n):
        cx, cy, width = rng.uniform(64, 448, 2).tolist() + [rng.uniform(10, 80)]
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width ** 2))
        pixels = np.clip(255 * (0.7 * blob + 0.3 * rng.random((512, 512))), 0, 255)
        paths.append(root / f"synthetic{i:04d}.png")
        Image.fromarray(pixels.astype(np.uint8), mode="L").save(paths[-1])
    return paths


def rate(fn, n: int, repeats: int) -> float:
    """Median images per second of ``fn()`` processing ``n`` images."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return n / statistics.median(times)


def decode_threads(model, paths, batch_size: int, workers: int) -> None:
    for _ in decoded_batches(paths, model._preprocess.decode, batch_size, workers):
        pass


class _Previews(torch.utils.data.Dataset):
    """The same per-image decoding, as a map-style dataset for DataLoader processes."""

    def __init__(self, model, paths):
        self.decode, self.paths = model._preprocess.decode, paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return self.decode(self.paths[i])


def decode_processes(model, paths, batch_size: int, workers: int) -> None:
    warnings.filterwarnings("ignore", message="This DataLoader will create")  # > cores: meant
    loader = torch.utils.data.DataLoader(_Previews(model, paths), batch_size=batch_size,
                                         num_workers=workers, collate_fn=list)
    for _ in loader:
        pass


@torch.inference_mode()
def per_image_baseline(model, paths, batch_size: int) -> None:
    """The pipeline before batched preprocessing: transform per image, in this thread."""
    for start in range(0, len(paths), batch_size):
        pixels = torch.stack([model._transform(load_image(p))
                              for p in paths[start:start + batch_size]])
        model._encode_batch(pixels.to(model.device)).cpu()


def model_only(model, paths, batch_size: int, n: int):
    """A callable running ``ceil(n / batch_size)`` forward passes on one decoded batch."""
    decoded = [model._preprocess.decode(p) for p in paths[:batch_size]]
    pixels = model._preprocess.batch(decoded, model.device)

    @torch.inference_mode()
    def run():
        for _ in range(math.ceil(n / batch_size)):
            features = model._encode_batch(pixels)
        features.cpu()  # waits for the GPU

    run()  # warm-up
    return run


def bench_workers(model, paths, batch_size: int, workers: int, repeats: int) -> dict:
    warm = paths[:batch_size]
    decode_threads(model, warm, batch_size, workers)
    model.encode_images(warm, batch_size=batch_size, workers=workers)
    n = len(paths)
    results = {
        "decode only, threads": rate(
            lambda: decode_threads(model, paths, batch_size, workers), n, repeats),
        "end to end": rate(
            lambda: model.encode_images(paths, batch_size=batch_size, workers=workers),
            n, repeats),
    }
    if workers:
        decode_processes(model, warm, batch_size, workers)
        results["decode only, DataLoader processes"] = rate(
            lambda: decode_processes(model, paths, batch_size, workers), n, repeats)
    return results


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="demo",
                        help="model spec, e.g. demo or ViT-B-16:random (random weights)")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--batch-size", type=int, help="default: the device's default")
    parser.add_argument("--workers", nargs="+", default=["0", "auto"],
                        help="decoding threads to compare; 0 = sequential, auto = default")
    parser.add_argument("--images", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--archive", type=Path, help="default: HOME/demo-archive")
    parser.add_argument("--engine", choices=["local", "ray"], default="local")
    parser.add_argument("--ray-address", help="Ray cluster (default: a local Ray)")
    parser.add_argument("--ray-actors", type=int, help="model replicas (default: per GPU/CPU)")
    args = parser.parse_args(argv)
    if args.engine == "ray":
        return bench_ray(args)

    model = load_model(args.model, device=args.device)
    batch_size, auto_workers = embedding_settings(model.device, args.batch_size)
    gpu = torch.cuda.get_device_name() if model.device.startswith("cuda") else "-"
    print(f"model {args.model} ({model.card.name}), device {model.device} {gpu}, "
          f"{torch.get_num_threads()} torch threads, batch {batch_size}, "
          f"{args.images} images")
    with tempfile.TemporaryDirectory() as scratch:
        paths = preview_paths(args.archive, args.images, Path(scratch))
        forward = rate(model_only(model, paths, batch_size, args.images), args.images,
                       args.repeats)
        print(f"  {'model only (pre-decoded)':<44} {forward:9.1f} img/s")
        per_image_baseline(model, paths[:batch_size], batch_size)
        before = rate(lambda: per_image_baseline(model, paths, batch_size), args.images,
                      args.repeats)
        print(f"  {'end to end, per-image transform (before)':<44} {before:9.1f} img/s")
        end_to_end = 0.0
        for value in args.workers:
            workers = auto_workers if value == "auto" else int(value)
            for name, speed in bench_workers(model, paths, batch_size, workers,
                                             args.repeats).items():
                label = f"{name}, workers={workers}"
                print(f"  {label:<44} {speed:9.1f} img/s", flush=True)
                if name == "end to end":
                    end_to_end = max(end_to_end, speed)
    if model.device.startswith("cuda"):
        verdict = "PASS" if end_to_end >= TARGET_GPU else "FAIL"
        print(f"best end to end: {end_to_end:.0f} img/s (target >= {TARGET_GPU} on one H100, "
              f"ViT-B-16): {verdict}")


class _PreviewPaths:
    """The one thing embed_rows asks of an archive: where row i's preview is."""

    def __init__(self, paths):
        self.paths = paths

    def preview_path(self, row: int) -> Path:
        return self.paths[row]


def bench_ray(args) -> None:
    import ray

    from vo_clip.search.embed_ray import embed_rows

    model = load_model(args.model, device="cpu")  # the driver only needs the fingerprint
    if args.ray_address:
        ray.init(address=args.ray_address)
    else:
        ray.init(include_dashboard=False)
    resources = ray.cluster_resources()
    print(f"model {args.model} ({model.card.name}) on Ray: {resources.get('CPU', 0):.0f} CPUs, "
          f"{resources.get('GPU', 0):.0f} GPUs, {args.images} images")
    with tempfile.TemporaryDirectory() as scratch:
        paths = preview_paths(args.archive, args.images, Path(scratch))
        matrix = np.zeros((len(paths), model.embed_dim), np.float32)
        rows = list(range(len(paths)))
        rates = []
        for _ in range(max(1, args.repeats)):
            start = time.perf_counter()
            embed_rows(_PreviewPaths(paths), model, rows, matrix, batch_size=args.batch_size,
                       actors=args.ray_actors, progress=False)
            rates.append(len(paths) / (time.perf_counter() - start))
    print(f"  {'end to end on Ray, incl. actor start':<44} {rates[0]:9.1f} previews/s")
    if len(rates) > 1:
        print(f"  {'median of ' + str(len(rates)) + ' runs':<44} "
              f"{statistics.median(rates):9.1f} previews/s")
    ray.shutdown()


if __name__ == "__main__":
    main()
