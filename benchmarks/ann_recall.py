"""Recall and latency of the faiss ANN index against the exact scan, on the same queries.

Real embeddings cluster, so the vectors are not uniform noise: a mixture of
``--clusters`` Gaussian clusters on the unit sphere, of unequal sizes (Dirichlet
weights) and spreads (a cosine of about 0.6–0.8 to their centre), 512-d. Like real
embeddings, whose intrinsic dimension is far below 512, each cluster varies mostly
along its own ``--intrinsic``-dimensional subspace (85% of its variance), plus
isotropic noise; iid 512-d noise would make every member of a cluster equidistant
from every other, which no trained encoder produces. Queries are
data points moved by a smaller noise, so they land near the data as a ``--like`` or
text query would. The vectors go to an ``embeddings.npy`` in a scratch directory (they
are memory-mapped, as in an index), the ANN index is built with the code
``vo-clip index --ann`` runs (:func:`vo_clip.search.vectors.build_faiss`) and opened
memory-mapped; each query is timed alone (one query per call, as the service asks).

    python benchmarks/ann_recall.py --quick          # 10^6 vectors, 3-5 min on 2 cores
    python benchmarks/ann_recall.py --threads 2      # 10^7 vectors: 20 GB on disk, ~35 min
        [--vectors N] [--kind ivf-pq|hnsw] [--nlist L] [--nprobe P] [--threads 1]
        [--queries 200] [--clusters 3000] [--dir SCRATCH]

With several ``--nprobe`` values, the summary lines are those of the index's default
(nlist/64, at least 16) when it is among them. ``--threads`` limits both faiss
(``omp_set_num_threads``) and numpy's BLAS, so ANN and exact run on the same number
of cores. The last line is
``ann recall@10=R p50_ms=A exact_p50_ms=E vectors=N``.
"""

from __future__ import annotations

import argparse
import contextlib
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vo_clip.search.vectors import AnnSettings, ExactVectors, build_faiss, open_vectors

GOAL_RECALL, GOAL_SPEEDUP, GOAL_P50_10M = 0.95, 5.0, 10.0
K = 10


def clustered(path: Path, n: int, dim: int, clusters: int, seed: int, intrinsic: int,
              chunk: int = 100_000) -> np.ndarray:
    """``n`` unit vectors from a mixture of Gaussian clusters, written to ``path``."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    weights = rng.dirichlet(np.full(clusters, 2.0))
    # per-dimension spread: |noise|^2 ~ dim*s^2, cosine to the centre 1/sqrt(1+dim*s^2)
    spread = rng.uniform(0.6, 1.3, clusters).astype(np.float32)
    bases = rng.standard_normal((clusters, intrinsic, dim)).astype(np.float32)
    bases /= np.linalg.norm(bases, axis=2, keepdims=True)
    matrix = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, dim))
    first = 0  # rows come cluster by cluster: neither index depends on the row order
    for cluster, count in enumerate(rng.multinomial(n, weights)):
        for start in range(0, count, chunk):
            m = min(chunk, count - start)
            along = (rng.standard_normal((m, intrinsic), dtype=np.float32) @ bases[cluster]
                     ) * np.float32(np.sqrt(0.85 / intrinsic))
            around = rng.standard_normal((m, dim), dtype=np.float32) * np.float32(
                np.sqrt(0.15 / dim))
            block = centres[cluster] + spread[cluster] * (along + around)
            block /= np.linalg.norm(block, axis=1, keepdims=True)
            matrix[first:first + m] = block
            first += m
    matrix.flush()
    del matrix
    return np.load(path, mmap_mode="r")


def near_queries(matrix: np.ndarray, count: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed + 1)
    rows = np.sort(rng.choice(len(matrix), size=count, replace=False))
    queries = matrix[rows] + 0.5 / np.sqrt(matrix.shape[1]) * rng.standard_normal(
        (count, matrix.shape[1]), dtype=np.float32)
    return (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)


def true_top(matrix: np.ndarray, queries: np.ndarray, chunk: int = 200_000) -> np.ndarray:
    """The exact top-K rows of every query, by chunked matrix products."""
    best_rows = np.zeros((len(queries), 0), np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    for first in range(0, len(matrix), chunk):
        scores = queries @ np.asarray(matrix[first:first + chunk]).T
        rows = np.broadcast_to(np.arange(first, first + scores.shape[1]), scores.shape)
        best_scores = np.concatenate([best_scores, scores], axis=1)
        best_rows = np.concatenate([best_rows, rows], axis=1)
        keep = np.argsort(-best_scores, axis=1, kind="stable")[:, :K]
        best_scores = np.take_along_axis(best_scores, keep, 1)
        best_rows = np.take_along_axis(best_rows, keep, 1)
    return best_rows


def timed(vectors, queries) -> tuple[list[np.ndarray], list[float]]:
    found, times = [], []
    vectors.top(queries[0], K)  # warm-up
    for query in queries:
        start = time.perf_counter()
        rows, _, _ = vectors.top(query, K)
        times.append((time.perf_counter() - start) * 1000)
        found.append(rows)
    return found, times


def limited_threads(threads: int):
    import faiss

    faiss.omp_set_num_threads(threads)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=threads)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10^6 vectors (default 10^7)")
    parser.add_argument("--vectors", type=int)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--clusters", type=int, default=3000)
    parser.add_argument("--intrinsic", type=int, default=24,
                        help="dimensions along which each cluster mostly varies")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--exact-queries", type=int, default=30,
                        help="queries timed on the exact scan (each reads every row)")
    parser.add_argument("--kind", default="ivf-pq", choices=["ivf-pq", "hnsw"])
    parser.add_argument("--nlist", type=int)
    parser.add_argument("--nprobe", type=int, nargs="+",
                        help="nprobe values to compare (default: the index default)")
    parser.add_argument("--refine", type=int, help="candidates re-ranked per wanted row")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="scratch directory (default: a temporary one)")
    args = parser.parse_args(argv)
    n = args.vectors or (10 ** 6 if args.quick else 10 ** 7)

    with tempfile.TemporaryDirectory(dir=args.dir) as scratch, limited_threads(args.threads):
        root = Path(scratch)
        t0 = time.perf_counter()
        matrix = clustered(root / "embeddings.npy", n, args.dim, args.clusters, args.seed,
                           args.intrinsic)
        queries = near_queries(matrix, args.queries, args.seed)
        t1 = time.perf_counter()
        truth = true_top(matrix, queries)
        t2 = time.perf_counter()
        print(f"{n} vectors x {args.dim}, {args.clusters} clusters: generated in "
              f"{t1 - t0:.0f} s, exact top-{K} of {args.queries} queries in {t2 - t1:.0f} s; "
              f"{args.threads} thread(s)", flush=True)

        exact_found, exact_times = timed(ExactVectors(matrix), queries[:args.exact_queries])
        assert all(np.array_equal(np.sort(a), np.sort(b))
                   for a, b in zip(exact_found, truth)), "the exact scan disagrees with itself"
        exact_p50 = statistics.median(exact_times)
        print(f"exact: p50 {exact_p50:.1f} ms over {len(exact_times)} queries", flush=True)

        settings = AnnSettings(args.kind, nlist=args.nlist).for_rows(n, args.dim)
        t3 = time.perf_counter()
        built = build_faiss(matrix, root, settings)
        t4 = time.perf_counter()
        vectors = open_vectors(root, built, matrix)
        vectors.refine_factor = args.refine or vectors.refine_factor
        size = (root / "vectors.faiss").stat().st_size / 2 ** 20
        print(f"{args.kind}: nlist {built['nlist']}, PQ {built['pq_m']}x{built['pq_nbits']} "
              f"bits, {vectors.refine_factor * K} candidates re-ranked, trained on "
              f"{built['training_sample']} of its rows; built in {t4 - t3:.0f} s, "
              f"{size:.0f} MiB", flush=True)
        default_nprobe, results = vectors.nprobe, {}
        for nprobe in args.nprobe or [default_nprobe]:
            vectors.nprobe = nprobe
            found, times = timed(vectors, queries)
            recall = float(np.mean([len(np.intersect1d(f, t)) / K
                                    for f, t in zip(found, truth)]))
            p50 = statistics.median(times)
            print(f"  nprobe {nprobe:>4}: recall@{K} {recall:.3f}, p50 {p50:.2f} ms, "
                  f"p95 {np.percentile(times, 95):.2f} ms, {exact_p50 / p50:.0f}x faster "
                  f"than exact", flush=True)
            results[nprobe] = recall, p50
        # the summary is the index's default nprobe when it was measured, else the last
        recall, p50 = results.get(default_nprobe, results[nprobe])
        speedup = exact_p50 / p50
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        goals = [f"recall {'>=' if recall >= GOAL_RECALL else '<'} {GOAL_RECALL}",
                 f"{speedup:.0f}x {'>=' if speedup >= GOAL_SPEEDUP else '<'} {GOAL_SPEEDUP:.0f}x"]
        if n >= 10 ** 7:
            goals.append(f"p50 {'<=' if p50 <= GOAL_P50_10M else '>'} {GOAL_P50_10M} ms")
        print(f"peak RSS {peak:.1f} GiB; goals: {', '.join(goals)}; "
              f"total {time.perf_counter() - t0:.0f} s")
        print(f"ann recall@10={recall:.3f} p50_ms={p50:.2f} exact_p50_ms={exact_p50:.1f} "
              f"vectors={n}")


if __name__ == "__main__":
    main()
