"""Latency of synchronous TAP queries over HTTP, as a client sees it.

The service runs under waitress on a loopback port in this process; requests go
through a keep-alive ``requests`` session, so each number includes HTTP, parameter
parsing, ADQL translation, text encoding (every similarity query uses a new text, so
the vector cache never helps), scoring, SQL and VOTable writing.

Two catalogs:

* the demo archive (3,000 observations, the shipped demo model), built under the
  default home on first use, as ``vo-clip serve`` would;
* a synthetic catalog of 10^6 random 512-d unit vectors (``search_latency.py`` builds
  it, with its small CLIP as the text encoder).

Targets (issue 4): plain ``SELECT TOP 10`` p50 under 15 ms; similarity ``TOP 100``
p50 under 60 ms on the demo archive and under 250 ms at 10^6 rows, on 2 cores.

Run: ``python benchmarks/tap_latency.py [--sizes 1000000] [--repeats 30]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))

from search_latency import BENCH_ARCHITECTURE, build_bench_index  # noqa: E402

from service import create_app  # noqa: E402
from vo_clip.config import Config  # noqa: E402

WORDS = ["spiral", "elliptical", "galaxy", "nebula", "cluster", "globular", "ring", "bar",
         "dusty", "bright", "faint", "compact", "diffuse", "arcs", "lens", "comet", "planet",
         "star-forming", "edge-on", "merging", "jet", "disk", "shell", "halo"]


def texts(count: int, seed: int = 0) -> list[str]:
    """Distinct three-word descriptions, so every query embeds a new text."""
    import random

    rng = random.Random(seed)
    seen: set[str] = set()
    while len(seen) < count:
        seen.add(" ".join(rng.sample(WORDS, 3)) + f" {seed}")
    return sorted(seen)


QUERIES = {
    "plain SELECT TOP 10": lambda text: (
        "SELECT TOP 10 obs_id, s_ra, s_dec, instrument_name FROM ivoa.ObsCore"),
    "similarity TOP 100": lambda text: (
        f"SELECT TOP 100 obs_id, s_ra, s_dec, vo_clip_similarity('{text}') AS similarity "
        "FROM ivoa.ObsCore ORDER BY similarity DESC"),
    "similarity TOP 100, instrument LIKE": lambda text: (
        f"SELECT TOP 100 obs_id, instrument_name, vo_clip_similarity('{text}') AS similarity "
        "FROM ivoa.ObsCore WHERE instrument_name LIKE 'ACS%' ORDER BY similarity DESC"),
    "similarity TOP 100, 10-degree cone": lambda text: (
        f"SELECT TOP 100 obs_id, vo_clip_similarity('{text}') AS similarity FROM ivoa.ObsCore "
        "WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150, 2, 10)) "
        "ORDER BY similarity DESC"),
}


@contextmanager
def serving(config: Config):
    from waitress.server import create_server

    app = create_app(config)
    app.extensions["vo_clip.tap"]().warm()
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.effective_port}/tap/sync"
    finally:
        server.task_dispatcher.shutdown()
        server.close()
        app.extensions["vo_clip.uws"].close()


def measure(url: str, make_query, repeats: int, seed: int) -> tuple[float, float]:
    """Median and 95th percentile in ms over ``repeats`` requests (after one warm-up)."""
    times = []
    with requests.Session() as session:
        for i, text in enumerate(texts(repeats + 1, seed)):
            start = time.perf_counter()
            response = session.post(url, data={"LANG": "ADQL", "QUERY": make_query(text)})
            elapsed = time.perf_counter() - start
            if response.status_code != 200 or b'value="OK"' not in response.content:
                raise SystemExit(f"query failed: {response.text[:500]}")
            if i:
                times.append(elapsed)
    times.sort()
    return 1000 * statistics.median(times), 1000 * times[int(0.95 * (len(times) - 1))]


def report(name: str, config: Config, repeats: int) -> None:
    with serving(config) as url:
        for seed, (label, make_query) in enumerate(QUERIES.items()):
            p50, p95 = measure(url, make_query, repeats, seed)  # new texts for each query
            print(f"  {name:<16} {label:<38} p50 {p50:8.1f} ms   p95 {p95:8.1f} ms",
                  flush=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--data", type=Path, default=Path("bench-data"))
    args = parser.parse_args(argv)

    from vo_clip.workspace import ensure_index

    demo = Config.load()
    print("opening the demo index (built on first use) ...", flush=True)
    ensure_index(demo, progress=False)
    report("demo (3,000)", demo, args.repeats)

    from vo_clip.ml.model import create_model, load_model

    model_path = args.data / "bench-model.safetensors"
    if not model_path.is_file():
        args.data.mkdir(parents=True, exist_ok=True)
        create_model(BENCH_ARCHITECTURE, seed=0, name="benchmark model").save(model_path)
    model = load_model(str(model_path))
    for n in args.sizes:
        print(f"building/opening the {n:,}-row synthetic index ...", flush=True)
        index = build_bench_index(args.data / f"index-{n}", n, model)
        config = Config(home=args.data / "home", index=index.root, model=str(model_path))
        report(f"synthetic {n:,}", config, args.repeats)


if __name__ == "__main__":
    main()
