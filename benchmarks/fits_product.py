"""Time to make one observation's FITS product (``/products/{obs_id}.fits``) from a preview.

DataLink's ``#this`` link of a demo observation is made on request, so its cost is the
latency a user clicking it in TOPCAT or Aladin sees. This prints the median and best of
``--repeats`` runs for a 512-px preview drawn the demo archive's way (footprint lit, black
outside), per instrument.

    python benchmarks/fits_product.py [--repeats 15]

Target: under 100 ms for a 512-px preview (the unit tests used to assert it; timings on
shared cores belong here).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from vo_clip.archive.demo.footprint import PreviewGeometry, fov_diameter_deg, stcs_polygon
from vo_clip.archive.demo.instruments import detector
from vo_clip.archive.demo.primitives import pixel_grid
from vo_clip.archive.fits_product import preview_fits

SIZE = 512


def demo_like_preview(folder: Path, instrument: str, ra: float, dec: float) -> tuple[Path, dict]:
    """A preview and the ObsCore row that goes with it, as the demo archive makes them."""
    det = detector(instrument)
    geometry = PreviewGeometry(det, 12.0, SIZE, margin=0.04)
    pixels = np.where(geometry.chip_map(*pixel_grid(SIZE)) >= 0, 120, 0).astype(np.uint8)
    path = folder / f"{instrument.replace('/', '_')}.png"
    Image.fromarray(pixels, mode="L").save(path)
    row = {"obs_id": "bench", "s_ra": ra, "s_dec": dec, "s_fov": fov_diameter_deg(det),
           "s_region": stcs_polygon(ra, dec, det, 12.0), "instrument_name": instrument,
           "target_name": "BENCH", "facility_name": "HST", "obs_collection": "HST",
           "t_min": 56721.49, "t_max": 56721.52, "t_exptime": 2406.9, "calib_level": 3}
    return path, row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for instrument in ["ACS/WFC", "WFC3/UVIS", "WFPC2"]:
            path, row = demo_like_preview(Path(tmp), instrument, 83.8, -5.4)
            preview_fits(path, row)  # warm caches
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                preview_fits(path, row)
                times.append(time.perf_counter() - start)
            print(f"{instrument:10s} {SIZE}-px preview -> FITS: median "
                  f"{1000 * statistics.median(times):.1f} ms, best {1000 * min(times):.1f} ms "
                  f"({args.repeats} runs)")


if __name__ == "__main__":
    main()
