"""A bounded load test of the whole service on loopback, and where its time goes.

Starts ``vo-clip serve`` as a subprocess on 127.0.0.1 (its own process, as deployed:
the load generator does not share the server's interpreter), or targets a running
server given with ``--url``. Then it sends ``--requests`` requests from
``--concurrency`` clients, a shuffled mix of

* plain TAP (``SELECT TOP 10 ... WHERE instrument_name = ...``),
* similarity TAP (``vo_clip_similarity('<text>')``, TOP 100, a new text most times, so
  the text tower runs),
* DataLink ``/datalink/links`` documents,
* previews (``/preview/<obs_id>``),

and prints failures, requests per second and p50/p95/p99 per kind and overall, the
server's resident memory (RSS) before, at its peak and after, and where the time went:
the server's own ``/metrics`` (scraped before and after) split into the query stages
(translate, encode, score, sql, render), the rest of the application's work, and the
time outside the application, which on a saturated server is mostly waiting for one of
waitress's worker threads.

The archive served is the demo archive (3,000 observations, built under the default
home on first use, several minutes on 2 cores), or with ``--tiny N`` a demo archive of
N observations generated and indexed under ``--data`` (reused by later runs).

It stops by itself: after ``--requests`` requests or ``--time-limit`` seconds, whichever
comes first, and it only ever talks to 127.0.0.1.

Run: ``python benchmarks/load_test.py [--requests 1000] [--concurrency 50] [--tiny 300]``
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote, urlsplit

import requests

REPO = Path(__file__).resolve().parent.parent

KINDS = ("plain TAP", "similarity TAP", "DataLink", "preview")

WORDS = ["spiral", "elliptical", "galaxy", "nebula", "cluster", "globular", "ring", "bar",
         "dusty", "bright", "faint", "compact", "diffuse", "arcs", "lens", "comet", "planet",
         "star-forming", "edge-on", "merging", "jet", "disk", "shell", "halo"]

INSTRUMENTS = ["ACS/WFC", "WFC3/UVIS", "WFC3/IR", "STIS/CCD", "NICMOS/NIC3", "WFPC2"]

#: The endpoints (``endpoint`` label of /metrics) the mix sends requests to.
ENDPOINTS = {"plain TAP": "tap_sync", "similarity TAP": "tap_sync",
             "DataLink": "datalink_links", "preview": "preview"}
STAGES = ("translate", "encode", "score", "sql", "render")


@dataclass
class Outcome:
    kind: str
    seconds: float
    error: str | None = None


# -- the server ---------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def tiny_index(data: Path, n: int) -> Path:
    """A demo archive of ``n`` observations, indexed with the demo model (made once)."""
    from vo_clip.archive import Archive
    from vo_clip.archive.archive import OBSERVATIONS_FILE
    from vo_clip.archive.demo.generator import build_demo_archive
    from vo_clip.errors import VoClipError
    from vo_clip.ml.model import load_model
    from vo_clip.search.index import EmbeddingIndex, build_index

    root = data / f"demo-{n}"
    index_dir, archive_dir = root / "index", root / "archive"
    try:
        EmbeddingIndex.open(index_dir)
        return index_dir
    except VoClipError:  # not built yet
        pass
    if (archive_dir / OBSERVATIONS_FILE).is_file():
        archive = Archive.open(archive_dir)
    else:
        print(f"generating a {n}-observation demo archive in {archive_dir} ...", flush=True)
        archive = build_demo_archive(archive_dir, n_observations=n,
                                     n_proposals=max(20, n // 8), progress=False)
    print("indexing it with the demo model ...", flush=True)
    build_index(archive, load_model("demo"), index_dir, progress=False)
    return index_dir


def start_server(env_overrides: dict[str, str], threads: int, log_path: Path,
                 ready_within: float) -> tuple[subprocess.Popen, str]:
    """``vo-clip serve`` on a free loopback port; returns once /health answers 200."""
    port = free_port()
    env = {**os.environ, **env_overrides}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    log = open(log_path, "wb")
    server = subprocess.Popen([sys.executable, "-m", "vo_clip", "serve", "--host", "127.0.0.1",
                               "--port", str(port), "--threads", str(threads)],
                              env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + ready_within
    while True:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n"
                             + log_path.read_text()[-3000:])
        try:
            if requests.get(url + "/health", timeout=5).status_code == 200:
                return server, url
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            stop_server(server)
            raise SystemExit(f"the server did not answer /health within {ready_within:.0f} s")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait(timeout=30)


def rss_bytes(pid: int | None) -> int | None:
    """Resident memory of process ``pid`` (Linux /proc), None when unknown."""
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class RssPeak:
    """Samples a process' RSS twice a second in the background; ``peak`` is the most."""

    def __init__(self, pid: int | None):
        self.pid, self.peak = pid, rss_bytes(pid) or 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)

    def _sample(self):
        while not self._stop.wait(0.5):
            self.peak = max(self.peak, rss_bytes(self.pid) or 0)


# -- the load -----------------------------------------------------------------------------

def plan(count: int, dids: list[str], seed: int) -> list[tuple[str, str, dict]]:
    """``count`` requests (kind, path, parameters), the four kinds in equal shares."""
    rng = random.Random(seed)
    requests_planned = []
    for i in range(count):
        kind = KINDS[i % len(KINDS)]
        if kind == "plain TAP":
            query = ("SELECT TOP 10 obs_id, s_ra, s_dec, instrument_name FROM ivoa.ObsCore "
                     f"WHERE instrument_name = '{rng.choice(INSTRUMENTS)}'")
            requests_planned.append((kind, "/tap/sync", {"LANG": "ADQL", "QUERY": query}))
        elif kind == "similarity TAP":
            text = " ".join(rng.sample(WORDS, 3))  # 24*23*22 texts: few repeat
            query = (f"SELECT TOP 100 obs_id, s_ra, s_dec, vo_clip_similarity('{text}') "
                     "AS similarity FROM ivoa.ObsCore ORDER BY similarity DESC")
            requests_planned.append((kind, "/tap/sync", {"LANG": "ADQL", "QUERY": query}))
        elif kind == "DataLink":
            requests_planned.append((kind, "/datalink/links", {"ID": rng.choice(dids)}))
        else:
            obs_id = rng.choice(dids).rpartition("?")[2]
            requests_planned.append((kind, f"/preview/{quote(obs_id, safe='')}", {}))
    rng.shuffle(requests_planned)
    return requests_planned


def check(kind: str, response: requests.Response) -> str | None:
    """Why the response is not a success, or None."""
    if response.status_code != 200:
        return f"HTTP {response.status_code}: {response.text[:200]!r}"
    body = response.content
    if kind.endswith("TAP") and b'name="QUERY_STATUS" value="OK"' not in body:
        return f"no QUERY_STATUS=OK: {body[:200]!r}"
    if kind == "DataLink" and b"#preview" not in body:
        return f"no #preview link: {body[:200]!r}"
    if kind == "preview" and not body.startswith(b"\x89PNG"):
        return f"not a PNG: {body[:40]!r}"
    return None


def run_load(url: str, planned, concurrency: int, time_limit: float,
             timeout: float) -> tuple[list[Outcome], float]:
    """Send ``planned`` from ``concurrency`` threads; the outcomes and the wall time."""
    local = threading.local()
    stop_at = time.monotonic() + time_limit
    outcomes: list[Outcome] = []
    lock = threading.Lock()
    sessions = []

    def send(item):
        if time.monotonic() > stop_at:
            return  # past the time limit: not sent, reported as not sent
        kind, path, params = item
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            with lock:
                sessions.append(session)
        started = time.perf_counter()
        try:
            response = session.get(url + path, params=params, timeout=timeout)
            error = check(kind, response)
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"
        outcome = Outcome(kind, time.perf_counter() - started, error)
        with lock:
            outcomes.append(outcome)

    started = time.perf_counter()
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            list(pool.map(send, planned))
    finally:
        for session in sessions:
            session.close()
    return outcomes, time.perf_counter() - started


# -- the report -----------------------------------------------------------------------------

def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..1) of an ascending list."""
    rank = max(1, -(-len(sorted_values) * q // 1))  # ceil(n q), at least 1
    return sorted_values[int(rank) - 1]


def print_latencies(outcomes: list[Outcome], wall: float) -> None:
    print(f"\n{'kind':<16}{'requests':>9}{'failed':>8}{'req/s':>8}"
          f"{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}")
    for kind in (*KINDS, "overall"):
        chosen = [o for o in outcomes if kind in ("overall", o.kind)]
        if not chosen:
            continue
        times = sorted(o.seconds for o in chosen)
        failed = sum(o.error is not None for o in chosen)
        print(f"{kind:<16}{len(chosen):>9}{failed:>8}{len(chosen) / wall:>8.1f}"
              + "".join(f"{1000 * percentile(times, q):>9.0f}" for q in (0.5, 0.95, 0.99)))


def scrape(url: str) -> dict[tuple, float]:
    """``/metrics`` as {(sample name, sorted labels): value}."""
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url + "/metrics", timeout=60).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def delta(before, after, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def print_where_the_time_goes(before, after, outcomes: list[Outcome], wall: float,
                              threads: int | None) -> None:
    client_total = sum(o.seconds for o in outcomes)
    endpoints = sorted(set(ENDPOINTS.values()))
    in_app = sum(delta(before, after, "vo_clip_request_duration_seconds_sum", endpoint=e)
                 for e in endpoints)
    if not in_app:
        print("\n(the server's /metrics has no request histogram: where the time goes is "
              "unknown)")
        return
    print("\nwhere the time goes (server /metrics, this run only; seconds summed over "
          "requests)")
    print(f"{'':<48}{'total s':>9}{'share':>8}{'count':>7}{'mean ms':>9}")
    rows = []
    staged = 0.0
    for stage in STAGES:
        seconds = count = 0.0
        for endpoint in endpoints:
            seconds += delta(before, after, "vo_clip_stage_duration_seconds_sum",
                             endpoint=endpoint, stage=stage)
            count += delta(before, after, "vo_clip_stage_duration_seconds_count",
                           endpoint=endpoint, stage=stage)
        staged += seconds
        rows.append((f"stage {stage}", seconds, count))
    rows.append(("rest of the app (routing, files, lookups)", in_app - staged, None))
    outside = client_total - in_app
    rows.append(("outside the app (queueing for a thread, HTTP)", outside, None))
    for label, seconds, count in rows:
        mean = f"{1000 * seconds / count:>9.1f}" if count else f"{'':>9}"
        print(f"{label:<48}{seconds:>9.1f}{seconds / client_total:>8.0%}"
              f"{int(count) if count else '':>7}{mean}")
    print(f"{'total as the clients saw it':<48}{client_total:>9.1f}{1:>8.0%}")
    busy = in_app / wall
    of = f" of {threads} worker threads" if threads else ""
    print(f"requests inside the application at once, on average: {busy:.1f}{of}")
    if outside > in_app:
        print("=> most of each request's time is spent waiting outside the application "
              "(for a free server thread), not working")
    for endpoint in endpoints:
        count = delta(before, after, "vo_clip_request_duration_seconds_count",
                      endpoint=endpoint)
        seconds = delta(before, after, "vo_clip_request_duration_seconds_sum",
                        endpoint=endpoint)
        if count:
            print(f"  in the app, {endpoint:<16} {int(count):>5} requests, "
                  f"mean {1000 * seconds / count:7.1f} ms")
    errors = {k: v - before.get(k, 0.0) for k, v in after.items()
              if k[0] == "vo_clip_errors_total" and v - before.get(k, 0.0)}
    for (_, labels), count in sorted(errors.items()):
        print(f"  server errors {dict(labels)}: {int(count)}")


def mib(value: int | None) -> str:
    return "unknown" if value is None else f"{value / 2 ** 20:.0f} MiB"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="A running server (http://127.0.0.1:PORT); "
                        "default: start one")
    parser.add_argument("--pid", type=int, help="With --url: the server's process id, "
                        "for its memory")
    parser.add_argument("--tiny", type=int, metavar="N", help="Serve a generated demo "
                        "archive of N observations instead of the 3,000 of the demo")
    parser.add_argument("--data", type=Path, default=REPO / "bench-data" / "load-test",
                        help="Where --tiny keeps its archive and index, and the server log")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--threads", type=int, default=8,
                        help="The started server's worker threads (vo-clip serve's default)")
    parser.add_argument("--time-limit", type=float, default=900,
                        help="Stop sending after this many seconds")
    parser.add_argument("--timeout", type=float, default=120, help="Per request, seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    server = None
    threads = None
    args.data.mkdir(parents=True, exist_ok=True)
    if args.url:
        host = urlsplit(args.url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("the load test only targets loopback (127.0.0.1)")
        url, pid = args.url.rstrip("/"), args.pid
    else:
        env = {}
        if args.tiny:
            env = {"VO_CLIP_INDEX": str(tiny_index(args.data, args.tiny)),
                   "VO_CLIP_HOME": str(args.data / "home")}
            print(f"serving a {args.tiny}-observation demo archive", flush=True)
        else:
            print("serving the demo archive (vo-clip serve builds it on first use: "
                  "minutes)", flush=True)
        server, url = start_server(env, args.threads, args.data / "server.log",
                                   ready_within=1800)
        pid, threads = server.pid, args.threads
    try:
        ids = requests.get(url + "/tap/sync", timeout=60, params={
            "LANG": "ADQL", "RESPONSEFORMAT": "csv",
            "QUERY": "SELECT TOP 500 obs_publisher_did FROM ivoa.ObsCore"})
        ids.raise_for_status()
        dids = [line.strip() for line in ids.text.splitlines()[1:] if line.strip()]
        planned = plan(args.requests, dids, args.seed)
        rss_before = rss_bytes(pid)
        before = scrape(url)
        print(f"{url}: {len(planned)} requests, {args.concurrency} at a time ...",
              flush=True)
        with RssPeak(pid) as peak:
            outcomes, wall = run_load(url, planned, args.concurrency, args.time_limit,
                                      args.timeout)
        after = scrape(url)
        rss_after = rss_bytes(pid)
    finally:
        if server is not None:
            stop_server(server)

    not_sent = len(planned) - len(outcomes)
    failures = [o for o in outcomes if o.error]
    print(f"\n{len(outcomes)} requests in {wall:.1f} s: {len(outcomes) / wall:.1f} req/s, "
          f"{len(failures)} failed" + (f", {not_sent} not sent (time limit)"
                                       if not_sent else ""))
    for failure in failures[:10]:
        print(f"  {failure.kind}: {failure.error}")
    print_latencies(outcomes, wall)
    print(f"\nserver memory (RSS): before {mib(rss_before)}, peak {mib(peak.peak or None)}, "
          f"after {mib(rss_after)}")
    print_where_the_time_goes(before, after, outcomes, wall, threads)
    if failures or not_sent:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
