"""What one hostile request costs the service: wall time, CPU time and peak memory.

Each case runs in a fresh Python process (so that its peak RSS is its own) on a
synthetic catalog (``search_latency.py`` builds it; 3,000 rows by default, the size of
the demo archive) with the benchmark CLIP as the text encoder, through
``TapService.execute`` or ``read_query_image`` as the service calls them:

* ``concat``: strings concatenated exponentially through nested derived tables;
* ``or-chain``: a WHERE of 7,000 ORed equalities;
* ``texts``: one query comparing with 1,000 distinct texts (each one is embedded);
* ``cross-join``: a 3-way self cross join of ivoa.ObsCore, run as a sync query;
* ``fits-bomb``: a tile-compressed FITS upload of 16384 x 8192 32-bit zeros (517 kB).

It prints, per case, the median over ``--repeats`` runs of the wall and CPU seconds and
the peak RSS above the process' baseline, and how the request ended. Run it on a
checkout before and after a change to compare (``PYTHONPATH=checkout``).

Run: ``python benchmarks/hostile_queries.py [--rows 3000] [--repeats 3] [--cases ...]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def concat_query(levels: int = 10, top: int = 50) -> str:
    query = "SELECT obs_id AS s FROM ivoa.ObsCore"
    for level in range(levels):
        query = f"SELECT s||s||s||s AS s FROM ({query}) AS t{level}"
    return query.replace("SELECT", f"SELECT TOP {top}", 1)


CASES = {
    "concat": concat_query(),
    "or-chain": "SELECT obs_id FROM ivoa.ObsCore WHERE " + " OR ".join(
        f"s_ra={i}" for i in range(7000)),
    "texts": "SELECT TOP 1 " + ", ".join(
        f"vo_clip_similarity('description number {i}') AS s{i}" for i in range(1000))
    + " FROM ivoa.ObsCore",
    "cross-join": "SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c",
    "fits-bomb": None,
}


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _fits_bomb(data_dir: Path) -> bytes:
    """16384 x 8192 int32 zeros, tile-compressed (made once, then read from disk)."""
    path = data_dir / "bomb.fits"
    if not path.is_file():
        import numpy as np
        from astropy.io import fits

        data_dir.mkdir(parents=True, exist_ok=True)
        pixels = np.zeros((8192, 16384), np.int32)
        fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(
            pixels, compression_type="GZIP_1", tile_shape=(512, 16384))]).writeto(path)
    return path.read_bytes()


def run_case(name: str, rows: int, data_dir: Path) -> dict:
    """One case in this process: set up, note the baseline peak, run, measure."""
    sys.path.insert(0, str(HERE))
    from search_latency import BENCH_ARCHITECTURE, build_bench_index

    from vo_clip.ml.model import create_model, load_model
    from vo_clip.search.engine import SearchEngine
    from vo_clip.vo.image_query import read_query_image
    from vo_clip.vo.tap import TapService

    model_path = data_dir / "bench-model.safetensors"
    if not model_path.is_file():
        data_dir.mkdir(parents=True, exist_ok=True)
        create_model(BENCH_ARCHITECTURE, seed=0, name="benchmark model").save(model_path)
    model = load_model(str(model_path))
    index = build_bench_index(data_dir / f"index-{rows}", rows, model)
    engine = SearchEngine(index, model)
    tap = TapService(index, engine=lambda: engine)
    tap.warm()
    bomb = _fits_bomb(data_dir) if name == "fits-bomb" else b""
    baseline = _peak_mb()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        if name == "fits-bomb":
            read_query_image(bomb, "bomb.fits")
            outcome = "decoded"
        else:
            result = tap.execute({"LANG": "ADQL", "QUERY": CASES[name]},
                                 base_url="http://127.0.0.1")
            outcome = f"{len(result.rows)} rows"
    except Exception as exc:  # noqa: BLE001 - the outcome is what we report
        limit = getattr(exc, "limit", None)
        outcome = f"{type(exc).__name__}{f' [{limit}]' if limit else ''}: {str(exc)[:90]}"
    return {"wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
            "rss": _peak_mb() - baseline, "outcome": outcome,
            "input_kb": len(bomb or (CASES[name] or "").encode()) / 1024}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=3000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--timeout", type=float, default=120,
                        help="seconds after which a case is reported as unanswered")
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(json.dumps(run_case(args.one, args.rows, args.data)))
        return
    for name in args.cases:
        runs = []
        for _ in range(args.repeats):
            try:
                done = subprocess.run(
                    [sys.executable, __file__, "--one", name, "--rows", str(args.rows),
                     "--data", str(args.data)], capture_output=True, text=True,
                    timeout=args.timeout, env=os.environ)
            except subprocess.TimeoutExpired:
                runs.append(None)
                break
            if done.returncode != 0:
                raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
            runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
        if runs[-1] is None:
            print(f"{name:<11} no answer within {args.timeout:g} s", flush=True)
            continue
        print(f"{name:<11} input {runs[0]['input_kb']:7.1f} kB  "
              f"wall {statistics.median(r['wall'] for r in runs):7.2f} s  "
              f"cpu {statistics.median(r['cpu'] for r in runs):7.2f} s  "
              f"peak RSS +{statistics.median(r['rss'] for r in runs):6.0f} MB  "
              f"{runs[-1]['outcome']}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
