"""Fine-tuning throughput: optimiser steps and training pairs per second.

Times the steps of :func:`vo_clip.ml.train.train` itself (through its ``on_step``
callback), so the figures include augmentation, the forward and backward passes and
the optimiser, and exclude the one-off decoding of previews and the validations. The
first ``--warmup`` steps are left out (allocator and thread-pool start-up).

    python benchmarks/train_throughput.py                          # demo recipe, CPU
    python benchmarks/train_throughput.py --model ViT-B-16:random --recipe paperclip \\
        --steps 5                                                   # the paper's model
    python benchmarks/train_throughput.py --model ViT-B-16:random --recipe paperclip \\
        --device cuda --steps 200 --batch-size 32                   # on a GPU

``ViT-B-16:random`` is ViT-B/16 with random weights: the same computation as fine-tuning
the OpenAI weights, without downloading them. The archive is a demo archive built once
under ./bench-data (or ``--archive``).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from vo_clip.archive import Archive
from vo_clip.archive.archive import OBSERVATIONS_FILE
from vo_clip.archive.demo import build_demo_archive
from vo_clip.ml.model import load_model
from vo_clip.ml.train import RECIPE_BASES, RECIPES, train


def bench_archive(path: Path | None, size: int) -> Archive:
    if path is not None:
        return Archive.open(path)
    root = Path("bench-data") / f"train-archive-{size}"
    if (root / OBSERVATIONS_FILE).is_file():  # written last: the archive is complete
        return Archive.open(root)
    return build_demo_archive(root, n_observations=size, n_proposals=max(10, size // 8),
                              preview_size=256, seed=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="demo")
    parser.add_argument("--model", help="base model spec (default: the recipe's, with "
                                        "ViT-B-16:openai replaced by ViT-B-16:random)")
    parser.add_argument("--archive", type=Path, help="archive (default: a built demo one)")
    parser.add_argument("--observations", type=int, default=400,
                        help="size of the built demo archive")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--accumulation", type=int)
    parser.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()

    archive = bench_archive(args.archive, args.observations)
    spec = args.model or RECIPE_BASES[args.recipe].replace(":openai", ":random")
    model = load_model(spec, device=args.device)
    given = {k: v for k, v in {"batch_size": args.batch_size, "accumulation": args.accumulation,
                               "precision": args.precision}.items() if v is not None}
    settings = replace(RECIPES[args.recipe], max_steps=args.steps + args.warmup,
                       eval_every=0, epochs=1000, **given)
    stamps = []

    def on_step(step, loss):
        if model.device.startswith("cuda"):
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    started = time.perf_counter()
    train(model, archive, settings, on_step=on_step, progress=False)
    total = time.perf_counter() - started
    steps = [b - a for a, b in zip(stamps[args.warmup:], stamps[args.warmup + 1:])]
    median = statistics.median(steps)
    report = {
        "model": spec, "recipe": args.recipe, "device": model.device,
        "gpu": torch.cuda.get_device_name() if model.device.startswith("cuda") else None,
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "batch_size": settings.batch_size, "accumulation": settings.accumulation,
        "precision": settings.precision, "timed_steps": len(steps),
        "median_step_s": round(median, 4), "steps_per_s": round(1 / median, 3),
        "pairs_per_s": round(settings.batch_size / median, 1),
        "whole_run_s (decode + validation + steps)": round(total, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
