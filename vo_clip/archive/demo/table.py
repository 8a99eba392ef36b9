"""The observations table: ObsCore 1.1 columns plus the HST extras, one row per plan entry.

Columns follow :mod:`vo_clip.archive.columns` exactly. ``obs_publisher_did``,
``access_url`` and ``access_format`` are left to the service, which knows its own
identifiers and URLs; ``product_url`` is absent because the demo's science product is
generated on request. Values are rounded to fixed precision so the ECSV file is
byte-for-byte reproducible.
"""

from __future__ import annotations

import math

import numpy as np
from astropy.table import MaskedColumn, Table

from ..columns import all_columns
from .footprint import drizzled_shape, fov_diameter_deg, stcs_polygon
from .instruments import detector
from .plan import Observation

__all__ = ["LEFT_TO_SERVICE", "observations_table", "preview_name"]

#: Columns the service fills in from its configuration, and the on-request product URL.
LEFT_TO_SERVICE = ("obs_publisher_did", "access_url", "access_format", "product_url")

_DTYPES = {"short": np.int16, "int": np.int32, "long": np.int64, "double": np.float64,
           "float": np.float32}


def preview_name(obs_id: str) -> str:
    return f"previews/{obs_id}.png"


def observations_table(observations: list[Observation]) -> Table:
    """The archive table of ``observations``, columns in ObsCore-then-HST order."""
    rows = [_row(obs) for obs in observations]
    table = Table()
    for col in all_columns():
        if col.name in LEFT_TO_SERVICE:
            continue
        values = [row[col.name] for row in rows]
        if col.name == "pol_states":
            table[col.name] = MaskedColumn([""] * len(values), dtype=str, mask=[True] * len(values))
        elif col.numpy_kind == "U":
            table[col.name] = np.array(values, dtype=str)
        else:
            table[col.name] = np.array(values, dtype=_DTYPES[col.datatype])
    return table


def _row(obs: Observation) -> dict:
    det = detector(obs.exposure.detector)
    flt = det.filter(obs.exposure.filter)
    xel1, xel2 = drizzled_shape(det, obs.exposure.angle_deg)
    caption = obs.proposal.caption
    return {
        "dataproduct_type": "image",
        "calib_level": 2 if obs.kind == "calibration_frame" else 3,
        "obs_collection": "HST",
        "obs_id": obs.obs_id,
        "access_estsize": math.ceil(xel1 * xel2 * 4 * 3 / 1024) + 30,
        "target_name": obs.target_name,
        "s_ra": round(obs.ra, 7),
        "s_dec": round(obs.dec, 7),
        "s_fov": round(fov_diameter_deg(det), 6),
        "s_region": stcs_polygon(obs.ra, obs.dec, det, obs.exposure.angle_deg),
        "s_resolution": round(det.fwhm_arcsec(flt), 3),
        "s_xel1": xel1,
        "s_xel2": xel2,
        "t_min": obs.t_min,
        "t_max": obs.t_max,
        "t_exptime": obs.exposure.exptime,
        "t_resolution": obs.exposure.exptime,
        "t_xel": 1,
        "em_min": float(f"{flt.lo_nm:g}e-9"),
        "em_max": float(f"{flt.hi_nm:g}e-9"),
        "em_res_power": math.nan,
        "em_xel": 1,
        "o_ucd": "phot.flux.density",
        "pol_states": None,
        "pol_xel": 1,
        "facility_name": "HST",
        "instrument_name": det.name,
        "proposal_id": obs.proposal.proposal_id,
        "proposal_cycle": obs.proposal.cycle,
        "proposal_title": caption.title,
        "proposal_pi": caption.pi,
        "proposal_abstract": caption.abstract,
        "summary_objects": "; ".join(caption.objects),
        "summary_use_cases": "; ".join(caption.use_cases),
        "filters": flt.name,
        "preview": preview_name(obs.obs_id),
    }
