"""Where a detector lands on the sky and in its preview.

One description of each footprint (chip rectangles in detector arcseconds) feeds both
the ObsCore geometry columns and the preview, so the rotated outline in ``s_region`` is
the shape a user sees with black corners in the PNG. HST previews are drizzled onto a
north-up grid; the detector therefore appears rotated by the telescope's orientation,
with the ACS/WFC or WFC3/UVIS chip gap as a dark band across it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .instruments import Detector

__all__ = [
    "Footprint",
    "PreviewGeometry",
    "deproject",
    "detector_to_pixels",
    "drizzled_shape",
    "fov_diameter_deg",
    "footprint",
    "stcs_polygon",
]

Rect = tuple[float, float, float, float]  # u0, u1, v0, v1 in arcsec


@dataclass(frozen=True)
class Footprint:
    """Chips (light-sensitive rectangles), gaps between them and the outer outline."""

    chips: tuple[Rect, ...]
    gaps: tuple[Rect, ...]
    outline: tuple[tuple[float, float], ...]


@lru_cache(maxsize=None)
def footprint(det: Detector) -> Footprint:
    """The footprint of ``det`` in detector arcseconds, centred on the aperture."""
    width, height = det.size_arcsec
    w, h = width / 2, height / 2
    box = ((-w, -h), (w, -h), (w, h), (-w, h))
    if det.layout == "two_chip":
        g = det.gap_arcsec / 2
        return Footprint(((-w, w, g, h), (-w, w, -h, -g)), ((-w, w, -g, g),), box)
    if det.layout == "quad":
        return Footprint(((-w, 0, 0, h), (0, w, 0, h), (-w, 0, -h, 0), (0, w, -h, 0)), (), box)
    if det.layout == "wfpc2":
        pc = 0.455 * w  # the Planetary Camera: 800 pixels of 0.0455 arcsec
        chips = ((0, pc, 0, pc), (-w, 0, 0, w), (-w, 0, -w, 0), (0, w, -w, 0))
        outline = ((-w, -w), (w, -w), (w, 0), (pc, 0), (pc, pc), (0, pc), (0, w), (-w, w))
        return Footprint(chips, (), outline)
    return Footprint(((-w, w, -h, h),), (), box)


def _to_sky(u, v, angle_deg: float):
    """Detector arcsec (u, v) to (east, north) arcsec for a telescope orientation."""
    a = math.radians(angle_deg)
    c, s = math.cos(a), math.sin(a)
    return u * c - v * s, u * s + v * c


def _from_sky(east, north, angle_deg: float):
    a = math.radians(angle_deg)
    c, s = np.float32(math.cos(a)), np.float32(math.sin(a))
    return east * c + north * s, north * c - east * s


def fov_diameter_deg(det: Detector) -> float:
    """ObsCore ``s_fov``: diameter of the circle about the aperture that holds the footprint."""
    radius = max(math.hypot(u, v) for u, v in footprint(det).outline)
    return 2 * radius / 3600.0


def drizzled_shape(det: Detector, angle_deg: float) -> tuple[int, int]:
    """Pixels of a north-up drizzled product holding the rotated footprint."""
    east, north = zip(*(_to_sky(u, v, angle_deg) for u, v in footprint(det).outline))
    return (math.ceil((max(east) - min(east)) / det.scale),
            math.ceil((max(north) - min(north)) / det.scale))


def stcs_polygon(ra: float, dec: float, det: Detector, angle_deg: float) -> str:
    """STC-S polygon of the rotated footprint about (ra, dec), degrees.

    Vertices run counter-clockwise as seen on the sky (east to the left), as DALI
    asks, through a gnomonic projection about the aperture centre.
    """
    points = [_to_sky(u, v, angle_deg) for u, v in footprint(det).outline]
    area = sum(-e1 * n2 + e2 * n1 for (e1, n1), (e2, n2) in zip(points, points[1:] + points[:1]))
    if area < 0:
        points.reverse()
    coords = []
    for east, north in points:
        v_ra, v_dec = deproject(ra, dec, east / 3600.0, north / 3600.0)
        coords.append(f"{v_ra:.7f} {v_dec:.7f}")
    return "Polygon ICRS " + " ".join(coords)


def deproject(ra0: float, dec0: float, xi_deg: float, eta_deg: float) -> tuple[float, float]:
    """Inverse gnomonic projection: tangent-plane offsets to (ra, dec), degrees."""
    xi, eta = math.radians(xi_deg), math.radians(eta_deg)
    d0 = math.radians(dec0)
    denom = math.cos(d0) - eta * math.sin(d0)
    ra = ra0 + math.degrees(math.atan2(xi, denom))
    dec = math.degrees(math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, denom)))
    return ra % 360.0, dec


class PreviewGeometry:
    """How a rotated footprint sits in a square preview.

    The preview is north up, east left, and just large enough (plus ``margin``) to hold
    the rotated footprint, as MAST's drizzled previews are.
    """

    def __init__(self, det: Detector, angle_deg: float, size: int, margin: float = 0.04):
        self.det, self.angle, self.size = det, angle_deg, size
        fp = footprint(det)
        east, north = zip(*(_to_sky(u, v, angle_deg) for u, v in fp.outline))
        self.centre = ((max(east) + min(east)) / 2, (max(north) + min(north)) / 2)
        extent = max(max(east) - min(east), max(north) - min(north))
        self.scale = extent * (1 + margin) / size  # arcsec per preview pixel

    def to_pixels(self, east, north):
        """(column, row) of sky offsets (arcsec east, north of the aperture)."""
        half = (self.size - 1) / 2
        return (half - (east - self.centre[0]) / self.scale,
                half - (north - self.centre[1]) / self.scale)

    def detector_uv(self, x, y):
        """Detector arcsec of preview pixel coordinates."""
        half = (self.size - 1) / 2
        east = np.float32(self.centre[0]) - (x - np.float32(half)) * np.float32(self.scale)
        north = np.float32(self.centre[1]) - (y - np.float32(half)) * np.float32(self.scale)
        return _from_sky(east, north, self.angle)

    def chip_map(self, x, y) -> np.ndarray:
        """Per pixel: chip number, -1 outside the footprint, -2 in a chip gap."""
        u, v = self.detector_uv(x, y)
        chips = np.full(u.shape, -1, np.int8)
        fp = footprint(self.det)
        for number, (u0, u1, v0, v1) in enumerate(fp.chips):
            chips[(u >= u0) & (u < u1) & (v >= v0) & (v < v1)] = number
        for u0, u1, v0, v1 in fp.gaps:
            chips[(u >= u0) & (u < u1) & (v >= v0) & (v < v1)] = -2
        return chips

    def column_direction(self) -> tuple[float, float]:
        """Unit vector in the preview along the detector columns (charge bleeds along it)."""
        east, north = _to_sky(0.0, 1.0, self.angle)
        return -east, -north

    @property
    def aperture_pixels(self) -> tuple[float, float]:
        return self.to_pixels(0.0, 0.0)


def detector_to_pixels(geometry: PreviewGeometry, u, v):
    """Preview (column, row) of detector arcsec (u, v)."""
    east, north = _to_sky(np.asarray(u, np.float64), np.asarray(v, np.float64), geometry.angle)
    return geometry.to_pixels(east, north)
