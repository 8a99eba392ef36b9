"""A synthetic index of any size: clustered unit vectors and ObsCore rows, no images.

The backend tests and ``benchmarks/catalog_backends.py`` need catalogs with positions,
footprints, instruments, times and proposals at sizes the demo generator would take
hours to render (10^6 rows); only the catalog and the embeddings matter to a TAP
query, so this writes a real index directory (manifest, embeddings, catalog) and no
previews.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from astropy.table import MaskedColumn, Table

_INSTRUMENTS = ["ACS/WFC", "WFC3/UVIS", "WFC3/IR", "WFPC2", "STIS/CCD", "NICMOS/NIC3"]


def synthetic_index(root: Path, rows: int, dim: int = 512, seed: int = 7) -> Path:
    """A real index directory (manifest, embeddings, catalog) of ``rows`` synthetic rows."""
    from vo_clip.search.calibration import MatchCalibration, ScoreMoments, write_calibration
    from vo_clip.search.catalog import Catalog
    from vo_clip.search.index import CATALOG, EMBEDDINGS, MANIFEST

    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    vectors = np.lib.format.open_memmap(root / EMBEDDINGS, mode="w+", dtype=np.float32,
                                        shape=(rows, dim))
    for start in range(0, rows, 100_000):  # clustered, as real embeddings are
        stop = min(rows, start + 100_000)
        chunk = centres[rng.integers(0, 1000, stop - start)]
        chunk += 0.6 * rng.standard_normal(chunk.shape).astype(np.float32)
        vectors[start:stop] = chunk / np.linalg.norm(chunk, axis=1, keepdims=True)
    vectors.flush()
    del vectors
    ra = rng.uniform(0, 360, rows)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, rows)))
    half = 0.05
    regions = [f"Polygon ICRS {r - half:.6f} {d - half:.6f} {r + half:.6f} {d - half:.6f} "
               f"{r + half:.6f} {d + half:.6f} {r - half:.6f} {d + half:.6f}"
               for r, d in zip(ra, np.clip(dec, -89, 89))]
    table = Table({
        "obs_id": [f"syn_{i:08d}" for i in range(rows)],
        "obs_collection": ["HST"] * rows,
        "dataproduct_type": ["image"] * rows,
        "calib_level": np.full(rows, 3),
        # every 37th target unknown: NULLs to order, count and compare
        "target_name": MaskedColumn([f"T{i % 5000}" for i in range(rows)],
                                    mask=[i % 37 == 0 for i in range(rows)]),
        "s_ra": ra, "s_dec": dec, "s_fov": np.full(rows, 0.1), "s_region": regions,
        "t_min": rng.uniform(48000, 60000, rows),
        "instrument_name": [_INSTRUMENTS[i] for i in rng.integers(0, len(_INSTRUMENTS), rows)],
        "proposal_id": [str(5000 + i % 9000) for i in range(rows)],
        "preview": [f"previews/syn_{i:08d}.png" for i in range(rows)],
    })
    table["t_max"] = table["t_min"] + 0.01
    Catalog.build(root / CATALOG, table)
    manifest = {"model": {"fingerprint": "synthetic", "spec": "none"},
                "archive": {"path": str(root), "name": "synthetic"}, "count": rows,
                "embed_dim": dim, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ")}
    (root / MANIFEST).write_text(json.dumps(manifest))
    # vo_clip_match needs a calibration; with no captions to fit one on, fixed
    # coefficients of the demo's magnitude (a row's cluster passes 0.5, the rest not)
    embeddings = np.load(root / EMBEDDINGS, mmap_mode="r")
    write_calibration(root, ScoreMoments.of(embeddings), MatchCalibration(
        (26.0, -30.0, -17.0, -3.0), queries=0, rows=0, matches=0,
        basis="synthetic: fixed coefficients, not fitted"))
    return root
