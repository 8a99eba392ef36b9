"""The same sync TAP queries on both catalog backends, side by side: SQLite and PostgreSQL.

For each catalog size (the demo's 3,000 rows and 10^6 by default) this writes a
synthetic index (clustered unit vectors, ObsCore rows with positions, instruments,
times and footprints), loads its catalog into PostgreSQL + pgsphere with
``vo-clip postgres load``'s loader, and runs each query ``--repeats`` times on the two
backends in alternation, through :meth:`TapService.execute` (translation, scoring,
SQL and rendering included; the text's vector is given, so no model runs). It prints
the median and 95th percentile in ms per backend, their ratio, and the load average.

Issue 14's goals: PostgreSQL within 2x of SQLite on the plain queries; similarity
TOP 10 p50 at 10^6 rows <= 250 ms on 2 cores.

Run: ``python benchmarks/catalog_backends.py [--rows 3000,1000000] [--repeats 20]
[--dsn postgresql://...]``. Without ``--dsn`` a throwaway cluster is started in a
temporary folder (as the tests do: PostgreSQL 15 and pgsphere must be installed).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the tests' throwaway cluster and synthetic index

from synthetic_index import synthetic_index  # noqa: E402

TEXT = "a synthetic query"
SIMILAR = f"vo_clip_similarity('{TEXT}')"
QUERIES = {
    "plain TOP 10": "SELECT TOP 10 obs_id, s_ra, s_dec FROM ivoa.ObsCore",
    "1 deg cone": ("SELECT obs_id, s_ra, s_dec FROM ivoa.ObsCore WHERE 1 = CONTAINS("
                   "POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.0, 2.0, 1.0))"),
    "COUNT by instrument": ("SELECT instrument_name, COUNT(*) AS n FROM ivoa.ObsCore "
                            "GROUP BY instrument_name"),
    "TOP 1000 *": "SELECT TOP 1000 * FROM ivoa.ObsCore",
    "similarity TOP 10": (f"SELECT TOP 10 obs_id, {SIMILAR} AS s FROM ivoa.ObsCore "
                          "ORDER BY s DESC"),
    "similarity TOP 100": (f"SELECT TOP 100 obs_id, {SIMILAR} AS s FROM ivoa.ObsCore "
                           "ORDER BY s DESC"),
    "similarity TOP 10, instrument": (
        f"SELECT TOP 10 obs_id, {SIMILAR} AS s FROM ivoa.ObsCore "
        "WHERE instrument_name LIKE 'WFC3%' ORDER BY s DESC"),
    "similarity TOP 100, cone": (
        f"SELECT TOP 100 obs_id, {SIMILAR} AS s FROM ivoa.ObsCore WHERE 1 = CONTAINS("
        "POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 150.0, 2.0, 20.0)) ORDER BY s DESC"),
}
def services(index_root: Path, dsn: str):
    """(SQLite TapService, PostgreSQL TapService) over the same index."""
    from vo_clip.search.backends.postgres import PostgresBackend
    from vo_clip.search.backends.postgres_load import load_catalog
    from vo_clip.search.index import CATALOG, EmbeddingIndex
    from vo_clip.vo.schema import published_tables
    from vo_clip.vo.tap import TapService
    from vo_clip.vo.tap_schema import tap_schema_rows

    tables = published_tables()
    started = time.perf_counter()
    load_catalog(dsn, index_root / CATALOG, tables=tables,
                 tap_schema_rows=tap_schema_rows(tables), progress=False)
    loaded = time.perf_counter() - started
    index = EmbeddingIndex.open(index_root)
    sqlite = TapService(index)
    postgres = TapService(index, catalog=lambda t, r: PostgresBackend(
        dsn, tables=t, tap_schema_rows=r, expected_rows=len(index)))
    return sqlite, postgres, loaded


def timed(tap, query: str, vector: np.ndarray) -> float:
    started = time.perf_counter()
    result = tap.execute({"LANG": "ADQL", "QUERY": query, "MAXREC": "100000"},
                         base_url="http://127.0.0.1:8000", query_vectors={TEXT: vector})
    b"".join(result.render())
    return (time.perf_counter() - started) * 1000


def compare(rows: int, dsn: str, repeats: int, work: Path) -> None:
    started = time.perf_counter()
    root = synthetic_index(work / f"index-{rows}", rows)
    built = time.perf_counter() - started
    sqlite, postgres, loaded = services(root, dsn)
    print(f"\n{rows:,} rows: synthetic index written in {built:.0f} s, loaded into "
          f"PostgreSQL in {loaded:.0f} s  (load {_load()})")
    print(f"  {'query':<32} {'SQLite p50':>10} {'p95':>8} {'PG p50':>9} {'p95':>8} "
          f"{'PG/SQLite':>9}")
    rng = np.random.default_rng(1)
    for label, query in QUERIES.items():
        times = {"sqlite": [], "postgres": []}
        for attempt in range(repeats + 2):
            vector = sqlite.index.embeddings[int(rng.integers(0, rows))]
            for name, tap in (("sqlite", sqlite), ("postgres", postgres))[::1 - 2 * (attempt % 2)]:
                elapsed = timed(tap, query, np.asarray(vector))
                if attempt >= 2:  # two warm-up rounds: caches, connections, plans
                    times[name].append(elapsed)
        s50, p50 = statistics.median(times["sqlite"]), statistics.median(times["postgres"])
        print(f"  {label:<32} {s50:10.1f} {_p95(times['sqlite']):8.1f} {p50:9.1f} "
              f"{_p95(times['postgres']):8.1f} {p50 / s50:9.2f}", flush=True)
    postgres.catalog.close()


def _p95(values: list[float]) -> float:
    return float(np.percentile(values, 95))


def _load() -> str:
    return "%.2f %.2f %.2f" % os.getloadavg()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="3000,1000000",
                        help="comma-separated catalog sizes (default: 3000,1000000)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dsn", help="an existing server's admin DSN (default: a "
                                      "throwaway cluster)")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    print(f"catalog backends side by side, {os.cpu_count()} cores, load {_load()}")
    with tempfile.TemporaryDirectory(prefix="vo_clip_backends_") as work:
        if args.dsn:
            for rows in sizes:
                compare(rows, args.dsn, args.repeats, Path(work))
            return
        import postgres_cluster

        with postgres_cluster.postgres_server() as server:
            for rows in sizes:
                with server.database() as database:
                    compare(rows, database.dsn, args.repeats, Path(work))


if __name__ == "__main__":
    main()
