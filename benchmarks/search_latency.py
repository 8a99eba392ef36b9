"""Search latency of the exact index, against a plain numpy baseline, in one run.

Builds (once, under ./bench-data) indexes of 10^5 and 10^6 random 512-d unit vectors
with a synthetic catalog, then prints median latencies of:

* the numpy baseline: float32 matrix–vector product + argpartition (top 10);
* SearchEngine.search_vector, unfiltered and with catalog filters (one instrument,
  ~25% of rows; a 5-degree cone, ~0.2% of rows);
* ``vo-clip query "text"`` end to end (a new process: imports, model load, text
  encoding, search, output), after a warm-up run, on the 10^5 index.

    python benchmarks/search_latency.py [--sizes 100000 1000000] [--repeats 15]

The acceptance check from the core issue is printed at the end: exact search over
10^6 vectors within 1.5x of the baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
from astropy.table import Table

from vo_clip.search.catalog import Catalog, SearchFilter
from vo_clip.search.engine import SearchEngine, top_k
from vo_clip.search.index import CATALOG, EMBEDDINGS, MANIFEST, EmbeddingIndex, IndexManifest
from vo_clip.timestamps import utc_seconds

DIM = 512
INSTRUMENTS = np.array(["ACS/WFC", "WFC3/UVIS", "WFC3/IR", "STIS/CCD"])
#: A small CLIP with 512-d embeddings, so end-to-end timings exercise a real model.
BENCH_ARCHITECTURE = {
    "embed_dim": DIM,
    "vision_cfg": {"image_size": 64, "patch_size": 16, "width": 256, "layers": 4, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4},
}


def build_bench_index(root: Path, n: int, model) -> EmbeddingIndex:
    """A random-vector index of ``n`` rows whose manifest names ``model``."""
    if (root / MANIFEST).is_file():
        index = EmbeddingIndex.open(root)
        if index.manifest.model_fingerprint == model.fingerprint:
            return index
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(n)
    matrix = np.lib.format.open_memmap(root / EMBEDDINGS, mode="w+", dtype=np.float32,
                                       shape=(n, DIM))
    for start in range(0, n, 100_000):
        block = rng.standard_normal((min(100_000, n - start), DIM), dtype=np.float32)
        matrix[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    matrix.flush()
    del matrix
    table = Table({"obs_id": [f"bench{i:07d}" for i in range(n)],
                   "instrument_name": INSTRUMENTS[rng.integers(0, 4, n)],
                   "s_ra": rng.uniform(0, 360, n), "s_dec": rng.uniform(-90, 90, n)})
    Catalog.build(root / CATALOG, table)
    manifest = IndexManifest(
        model={"name": model.card.name, "fingerprint": model.fingerprint,
               "base": model.card.base, "spec": model.spec},
        archive={"name": f"random-{n}", "path": str(root), "fingerprint": ""},
        count=n, embed_dim=DIM,
        created=utc_seconds())
    (root / MANIFEST).write_text(json.dumps(asdict(manifest), indent=2))
    return EmbeddingIndex.open(root)


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up: page in the memory map, fill caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def bench_size(index: EmbeddingIndex, repeats: int) -> dict[str, float]:
    engine = SearchEngine(index)
    vector = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    vector /= np.linalg.norm(vector)
    resident = np.load(index.root / EMBEDDINGS)  # the baseline gets an in-memory array

    def baseline():
        scores = resident @ vector
        best = np.argpartition(-scores, 9)[:10]
        return best[np.argsort(-scores[best])]

    acs = SearchFilter(instrument="ACS")
    cone = SearchFilter(cone=(150.0, 2.0, 5.0))
    assert list(engine.search_vector(vector, top=10).rows) == list(top_k(resident @ vector, 10))
    return {
        "numpy baseline": median_ms(baseline, repeats),
        "engine, exact": median_ms(lambda: engine.search_vector(vector, top=10), repeats),
        "engine, instrument filter": median_ms(
            lambda: engine.search_vector(vector, top=10, search_filter=acs), repeats),
        "engine, 5-degree cone": median_ms(
            lambda: engine.search_vector(vector, top=10, search_filter=cone), repeats),
    }


def bench_cli(index: EmbeddingIndex, model_path: Path, repeats: int) -> float:
    command = [sys.executable, "-m", "vo_clip", "query", "a barred spiral galaxy",
               "--index", str(index.root), "--model", str(model_path), "--top", "10"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return median_ms(lambda: subprocess.run(command, check=True, capture_output=True, env=env),
                     repeats)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args(argv)

    from vo_clip.ml.model import create_model, load_model

    model_path = args.data / "bench-model.safetensors"
    if not model_path.is_file():
        create_model(BENCH_ARCHITECTURE, seed=0, name="benchmark model").save(model_path)
    model = load_model(str(model_path))

    results = {}
    for n in args.sizes:
        print(f"building/opening the {n:,}-vector index ...", flush=True)
        index = build_bench_index(args.data / f"index-{n}", n, model)
        results[n] = bench_size(index, args.repeats)
        for name, ms in results[n].items():
            print(f"  n={n:>9,}  {name:<28} median {ms:8.2f} ms")
    cli_n = min(args.sizes)
    cli_ms = bench_cli(EmbeddingIndex.open(args.data / f"index-{cli_n}"), model_path,
                       args.cli_repeats)
    print(f"  n={cli_n:>9,}  {'vo-clip query (new process)':<28} median {cli_ms:8.2f} ms")
    largest = max(args.sizes)
    ratio = results[largest]["engine, exact"] / results[largest]["numpy baseline"]
    verdict = "PASS" if ratio <= 1.5 else "FAIL"
    print(f"exact search / numpy baseline at n={largest:,}: {ratio:.2f}x "
          f"(target <= 1.5x): {verdict}")


if __name__ == "__main__":
    main()
