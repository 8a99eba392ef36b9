"""Latency of a text query, side by side: new CLI process, text encoding, TAP on the demo.

Three measurements in one run, each with the load average printed next to it (the
2-core box this was written on is shared: compare medians and ratios, not absolutes):

1. a new process answering a text query against the existing demo index: the real
   ``vo-clip query TEXT`` (text tower only, :mod:`vo_clip.ml.text_query`) and the same
   search through the full open_clip model, as ``vo-clip query`` did before;
2. one new text's encoding in ms: the full model on the main thread and on a worker
   thread, the torch text-only encoder padded to 128 tokens and trimmed, each on the
   threads a query's few texts get (two where OpenMP's waiting threads sleep, as under
   ``vo-clip serve``, which this benchmark mirrors), and the ONNX Runtime encoder the
   TAP service uses (one thread);
3. synchronous TAP similarity queries over HTTP on the demo index, p50 and p95, with
   the service's encoder (ONNX Runtime), the torch trimmed encoder (before it) and the
   full model's ``encode_text`` (before that), side by side per query; every request
   uses a new text, so the service's vector cache never helps.

Issue 16's targets: ``vo-clip query`` <= 1.5 s, TAP similarity p50 <= 60 ms, on 2 cores
at low load.

Run: ``VO_CLIP_HOME=... python benchmarks/query_latency.py [--processes 5] [--repeats 30]``
(the demo index is built under the home on first use, as ``vo-clip serve`` would).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from tap_latency import QUERIES, measure  # noqa: E402

from vo_clip.config import Config  # noqa: E402

TEXT = "barred spiral galaxy with a star-forming ring"

#: The search ``vo-clip query TEXT`` runs, in a new process, with either kind of encoder.
_SEARCH = """
import sys
from vo_clip.config import Config
from vo_clip.search.engine import Query
from vo_clip.workspace import open_engine
engine = open_engine(Config.load(), text_only=sys.argv[1] == "1")
hits = engine.search(Query(text=sys.argv[2]), top=10)
print(engine.table(hits, None)["obs_id"][0])
"""


def load() -> str:
    return "load %.2f %.2f %.2f" % os.getloadavg()


def new_process_seconds(command: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=os.environ.copy())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cli(runs: int) -> None:
    print(f"new process, text query against the demo index, median of {runs} ({load()})")
    rows = {
        "vo-clip query TEXT": [sys.executable, "-m", "vo_clip", "query", TEXT],
        "same search, text tower only": [sys.executable, "-c", _SEARCH, "1", TEXT],
        "same search, full open_clip model": [sys.executable, "-c", _SEARCH, "0", TEXT],
    }
    for label, command in rows.items():
        print(f"  {label:<36} {new_process_seconds(command, runs):6.2f} s   ({load()})",
              flush=True)


def encode_ms(encode, repeats: int, *, worker: bool) -> float:
    def run(out):
        for i in range(repeats + 1):
            start = time.perf_counter()
            encode([f"{TEXT} {i}"])
            out.append(1000 * (time.perf_counter() - start))

    times: list[float] = []
    if worker:
        thread = threading.Thread(target=run, args=(times,))
        thread.start()
        thread.join()
    else:
        run(times)
    return statistics.median(times[1:])


def encoding(repeats: int) -> None:
    from vo_clip.ml.model import load_model
    from vo_clip.ml.text_query import load_text_encoder, text_encoder_of

    full = load_model("demo", device="cpu")
    padded, trimmed = load_text_encoder("demo"), text_encoder_of(full)
    onnx = text_encoder_of(full, backend="onnx")
    print(f"one new text's encoding, median of {repeats} ({load()})")
    rows = [("full model, main thread", full.encode_text, False),
            ("full model, worker thread", full.encode_text, True),
            ("text tower only, padded, main thread", padded.encode_text, False),
            ("torch trimmed, main thread", trimmed.encode_text, False),
            ("torch trimmed, worker thread", trimmed.encode_text, True)]
    if onnx is not None:  # the service's encoder (TAP)
        rows += [("ONNX Runtime (TAP), main thread", onnx.encode_text, False),
                 ("ONNX Runtime (TAP), worker thread", onnx.encode_text, True)]
    for label, encode, worker in rows:
        print(f"  {label:<38} {encode_ms(encode, repeats, worker=worker):7.1f} ms   "
              f"({load()})", flush=True)


def tap(repeats: int) -> None:
    from service import create_app
    from waitress.server import create_server

    app = create_app(Config.load())
    service = app.extensions["vo_clip.tap"]()
    service.warm()
    engine = service.engine()
    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}/tap/sync"
    print(f"sync TAP over HTTP on the demo index, {repeats} new texts each ({load()})")
    quick = engine.text_encoder
    from vo_clip.ml.text_query import text_encoder_of

    encoders = {f"{type(quick).__name__}": quick,  # what the service uses now
                "torch TextEncoder": text_encoder_of(engine.model, backend="torch"),
                "full model": engine.model}  # what the service encoded texts with before
    try:
        for seed, (label, make_query) in enumerate(QUERIES.items()):
            if not label.startswith("similarity"):
                continue
            for rank, (name, encoder) in enumerate(encoders.items()):  # side by side
                engine.text_encoder = encoder
                p50, p95 = measure(url, make_query, repeats, seed + 10 * rank)
                print(f"  {name:<18} {label:<36} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms   "
                      f"({load()})", flush=True)
        print(f"  in process (TapService.execute), similarity TOP 10, medians ({load()})")
        for rank, (name, encoder) in enumerate(encoders.items()):
            engine.text_encoder = encoder
            parts = _parts(service, repeats, seed=100 + rank)  # texts no run above used
            print(f"  {name:<18} " + "  ".join(f"{k} {v:6.1f} ms" for k, v in parts.items()),
                  flush=True)
    finally:
        engine.text_encoder = quick
        server.task_dispatcher.shutdown()
        server.close()
        app.extensions["vo_clip.uws"].close()


def _parts(service, repeats: int, seed: int) -> dict[str, float]:
    """Median ms of each stage the service times (translation cached) and of translating."""
    from tap_latency import texts

    from vo_clip.vo.adql import translate

    stages: dict[str, list[float]] = {}
    for text in texts(repeats, seed):
        query = (f"SELECT TOP 10 obs_id, vo_clip_similarity('{text}') AS s "
                 "FROM ivoa.ObsCore ORDER BY s DESC")
        start = time.perf_counter()
        translate(query)
        stages.setdefault("uncached ADQL translation", []).append(time.perf_counter() - start)
        result = service.execute({"LANG": "ADQL", "QUERY": query}, base_url="http://x/")
        for key, seconds in result.timings.items():
            stages.setdefault(key, []).append(seconds)
    return {k: 1000 * statistics.median(v) for k, v in stages.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args(argv)
    from vo_clip.openmp import sleep_while_waiting

    passive = sleep_while_waiting()  # as `vo-clip serve` does, before torch loads
    print(f"{os.cpu_count()} cores, {load()}, OpenMP's waiting threads "
          f"{'sleep' if passive else 'spin'} (OMP_WAIT_POLICY "
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')})")
    cli(args.processes)
    encoding(args.repeats)
    tap(args.repeats)


if __name__ == "__main__":
    main()
