"""Where proposals point: believable sky positions for each kind of target.

Galactic targets (clusters, nebulae, star-forming regions) crowd the Milky Way's plane,
extragalactic ones avoid it, planets and comets stay near the ecliptic, supernova
remnant rings sit in the Magellanic Clouds. A few well-trodden extragalactic and
Galactic fields are reused by many proposals, as real deep fields and star-forming
complexes are. Positions are ICRS degrees.
"""

from __future__ import annotations

import math

import numpy as np

from .footprint import deproject

__all__ = ["FAMOUS_FIELDS", "ecliptic_to_icrs", "field_centre", "offset"]

# ICRS -> Galactic rotation (Hipparcos); its transpose takes Galactic back to ICRS.
_TO_GALACTIC = np.array([
    [-0.0548755604162154, -0.8734370902348850, -0.4838350155487132],
    [0.4941094278755837, -0.4448296299600112, 0.7469822444972189],
    [-0.8676661490190047, -0.1980763734312015, 0.4559837761750669],
])
_OBLIQUITY = math.radians(23.4392911)

#: Fields that many proposals return to (deep-field-like and star-forming-complex-like).
FAMOUS_FIELDS = {
    "extragalactic": ((189.228, 62.238), (53.162, -27.791), (150.119, 2.206),
                      (214.825, 52.825), (34.406, -5.200), (64.039, -24.073)),
    "galactic": ((83.822, -5.391), (161.265, -59.684), (274.700, -13.807), (266.417, -29.008)),
    "magellanic": ((83.867, -69.270), (84.676, -69.101), (13.187, -72.829)),
}


def _unit(lon_deg, lat_deg) -> np.ndarray:
    lon, lat = math.radians(lon_deg), math.radians(lat_deg)
    return np.array([math.cos(lat) * math.cos(lon), math.cos(lat) * math.sin(lon), math.sin(lat)])


def _angles(vector) -> tuple[float, float]:
    x, y, z = vector
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(max(-1.0, min(1.0, z))))


def galactic_to_icrs(l_deg: float, b_deg: float) -> tuple[float, float]:
    return _angles(_TO_GALACTIC.T @ _unit(l_deg, b_deg))


def ecliptic_to_icrs(lon_deg: float, lat_deg: float) -> tuple[float, float]:
    x, y, z = _unit(lon_deg, lat_deg)
    c, s = math.cos(_OBLIQUITY), math.sin(_OBLIQUITY)
    return _angles((x, y * c - z * s, y * s + z * c))


def _galactic_latitude(ra: float, dec: float) -> float:
    return _angles(_TO_GALACTIC @ _unit(ra, dec))[1]


def field_centre(rng, sky: str, famous_chance: float = 0.0) -> tuple[float, float]:
    """A field centre for a proposal whose targets lie on ``sky``."""
    famous = FAMOUS_FIELDS.get(sky)
    if famous and rng.random() < famous_chance:
        ra, dec = famous[int(rng.integers(len(famous)))]
        return offset(ra, dec, rng.normal(0, 300), rng.normal(0, 300))
    if sky == "galactic":
        return galactic_to_icrs(float(rng.normal(0, 60)) % 360.0, float(rng.normal(0, 4)))
    if sky == "magellanic":
        ra, dec = FAMOUS_FIELDS["magellanic"][int(rng.integers(3))]
        return offset(ra, dec, rng.normal(0, 5000), rng.normal(0, 5000))
    if sky == "ecliptic":
        return ecliptic_to_icrs(float(rng.uniform(0, 360)), float(rng.normal(0, 2)))
    while True:
        ra, dec = _uniform_sphere(rng)
        if sky != "extragalactic" or abs(_galactic_latitude(ra, dec)) > 25:
            return ra, dec


def _uniform_sphere(rng) -> tuple[float, float]:
    return float(rng.uniform(0, 360)), math.degrees(math.asin(rng.uniform(-1, 1)))


def offset(ra: float, dec: float, east_arcsec: float, north_arcsec: float) -> tuple[float, float]:
    """The position ``east_arcsec``/``north_arcsec`` away from (ra, dec) on the tangent plane."""
    return deproject(ra, dec, east_arcsec / 3600.0, north_arcsec / 3600.0)
