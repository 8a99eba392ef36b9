"""Moving targets in our planetary system: comets and the giant planets.

HST tracks these as they move, so background stars trail into streaks; exposures are
short, so the sky is black and the planet fills the dynamic range.
"""

from __future__ import annotations

import math

import numpy as np

from ..primitives import Canvas, fractal_noise, gaussian, smoothstep
from .base import Look, Scene
from .common import place

__all__ = ["comet", "giant_planet"]


def comet(cv: Canvas, look: Look) -> Scene:
    """A nucleus in a bright coma, dust and ion tails; sometimes split into fragments."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.15)
    tail_angle = rng.uniform(0, 2 * math.pi)
    activity = rng.uniform(0.3, 1.0)
    if rng.random() < 0.15:  # a comet broken into a string of fragments
        spacing = look.radius * rng.uniform(0.05, 0.15)
        a = tail_angle + rng.uniform(-0.5, 0.5)
        for k in range(rng.integers(3, 10)):
            x, y = cx + k * spacing * math.cos(a), cy + k * spacing * math.sin(a)
            _coma_and_tails(cv, look, x, y, tail_angle, activity * rng.uniform(0.1, 0.5))
    else:
        _coma_and_tails(cv, look, cx, cy, tail_angle, activity)
    motion = rng.uniform(0, 2 * math.pi)
    trail = rng.uniform(4, 60) * cv.size / 512
    return Scene(field_stars=rng.uniform(0.5, 2.0), field_galaxies=0.3,
                 streak=(trail * math.cos(motion), trail * math.sin(motion)))


def _coma_and_tails(cv: Canvas, look: Look, cx, cy, tail_angle, activity) -> None:
    rng = cv.rng
    coma = look.radius * rng.uniform(0.05, 0.4) * activity
    along, across = cv.frame(cx, cy, tail_angle)
    r = np.sqrt(along * along + across * across)
    core = max(0.8, coma * 0.03)
    glow = core / (r + core) * np.exp(-r / (coma + 1))
    spiral = np.cos(int(rng.integers(1, 4)) * np.arctan2(across, along) + r / (coma * 0.3 + 1))
    jets = 1 + rng.uniform(0, 0.6) * spiral * np.exp(-r / (coma * 0.5 + 1))
    cv.image += glow * jets * rng.uniform(4, 20)
    behind = np.clip(along, 0, None)
    length = look.radius * rng.uniform(0.5, 2.5) * activity
    bent = across - rng.uniform(-0.4, 0.4) * along * along / (length + 1)
    width = coma * 0.6 + 2 + behind * math.tan(rng.uniform(0.1, 0.4))
    fading = smoothstep(along / (coma * 0.3 + 1)) / (1 + behind / length) ** 2
    dust = gaussian(bent / width, 1.0) * fading
    cv.image += dust * (rng.uniform(0.3, 1.0) * (0.4 + activity))
    if rng.random() < 0.4:
        streamers = fractal_noise(cv.size, rng, 3.0, stretch=12, angle=tail_angle + math.pi / 2)
        rays = np.clip(streamers, 0, None)
        ion = gaussian(across, coma * 0.3 + 2) * np.exp(-behind / (2 * length)) * (along > 0)
        cv.image += ion * rays * rng.uniform(0.05, 0.3)


_TILTS = {"ringed": (0.08, 0.47), "aurora": (0.2, 0.45), "banded": (0.04, 0.24),
          "ice": (0.04, 0.24)}


def giant_planet(cv: Canvas, look: Look) -> Scene:
    """A banded gas giant, a giant with a broad ring system, an ice giant or UV aurorae."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.08)
    style = str(rng.choice(["banded", "ringed", "ice"], p=[0.45, 0.4, 0.15]))
    if look.ultraviolet and rng.random() < 0.7:
        style = "aurora"
    radius = look.radius * rng.uniform(0.25, 0.55) * (0.6 if style == "ringed" else 1.0)
    tilt = rng.uniform(*_TILTS[style]) * rng.choice([-1, 1])
    disc = _PlanetDisc(cv, cx, cy, radius, rng.uniform(0, math.pi), tilt,
                       0.98 if style == "ice" else rng.uniform(0.9, 0.94))
    albedo = rng.uniform(8, 30)
    if style == "aurora":
        shade = disc.aurora(rng)
    else:
        shade = disc.banded(rng, {"ice": 0.05, "ringed": 0.25}.get(style, 0.5))
    light = disc.inside * disc.mu ** rng.uniform(0.25, 0.6) * shade * albedo
    if style == "ringed":
        light = disc.with_rings(rng, light, albedo)
    cv.image[disc.slice] += light
    _moons(cv, cx, cy, radius, disc.angle, albedo)
    return Scene(field_stars=0.05, field_galaxies=0.0, display_soft=rng.uniform(0.05, 0.3))


class _PlanetDisc:
    """Sphere coordinates over the planet's stamp: limb (mu), latitude, longitude.

    The observer looks down the z axis; ``tilt`` is the planet's sub-observer latitude
    (the opening angle of a ring system), ``angle`` the position angle of the equator.
    """

    def __init__(self, cv: Canvas, cx, cy, radius, angle, tilt, flattening):
        self.slice, grid = cv.stamp(cx, cy, radius * 2.6)
        self.cv, self.radius, self.angle, self.tilt = cv, radius, angle, tilt
        u, v = cv.frame(cx, cy, angle, flattening, grid=grid)
        self.u, self.v = cv.frame(cx, cy, angle, 1.0, grid=grid)
        x, y = u / radius, v / radius
        rho2 = x * x + y * y
        self.inside = (rho2 < 1).astype(np.float32)
        self.mu = np.sqrt(np.clip(1 - rho2, 0, 1))
        cb, sb = math.cos(tilt), math.sin(tilt)
        self.latitude = np.arcsin(np.clip(y * cb + self.mu * sb, -1, 1))
        self.longitude = np.arctan2(x, self.mu * cb - y * sb)
        self.xyz = (x, y, self.mu)

    def banded(self, rng, contrast: float):
        """Zonal belts and zones with turbulent edges, a few ovals, darker poles."""
        lat = self.latitude
        turbulence = fractal_noise(self.cv.size, rng, 3.0, stretch=8, angle=self.angle)[self.slice]
        wavy = lat + 0.03 * turbulence
        shade = np.ones_like(lat)
        for _ in range(rng.integers(5, 12)):
            centre, width = rng.uniform(-1.1, 1.1), rng.uniform(0.03, 0.12)
            shade += rng.uniform(-1, 0.6) * contrast * gaussian(wavy - centre, width)
        for _ in range(rng.integers(0, 4)):
            lat0, lon0 = rng.uniform(-0.6, 0.6), rng.uniform(-0.9, 0.9)
            size = rng.uniform(0.03, 0.12)
            oval = gaussian(lat - lat0, size) * gaussian(self.longitude - lon0, 2 * size)
            shade += oval * (float(rng.choice([-0.5, 0.4])) * (contrast + 0.1))
        polar = smoothstep((np.abs(lat) - 0.9) / 0.4)
        return np.clip(shade * (1 - 0.4 * polar), 0.05, None)

    def aurora(self, rng):
        """Far-ultraviolet view: a dim disc and bright auroral ovals round the magnetic poles."""
        x, y, z = self.xyz
        shade = np.full_like(x, 0.04)
        for sign in (1, -1):
            tip = math.radians(rng.uniform(5, 15))
            px, py, pz = math.sin(tip), math.cos(self.tilt) * sign, math.sin(self.tilt) * sign
            colatitude = np.arccos(np.clip(x * px + y * py + z * pz, -1, 1))
            oval = gaussian(colatitude - rng.uniform(0.2, 0.35), rng.uniform(0.03, 0.06))
            shade += oval * rng.uniform(0.5, 2) / np.maximum(z, 0.3)
        return shade

    def with_rings(self, rng, planet_light, albedo):
        """Broad rings with divisions: hidden behind the planet, shadowing it in front."""
        opening = abs(math.sin(self.tilt))
        side = math.copysign(1.0, self.tilt)
        ring = _ring_profile(np.hypot(self.u, self.v / opening) / self.radius)
        shadow_offset = 0.08 * self.radius * side
        shadow = _ring_profile(np.hypot(self.u, (self.v + shadow_offset) / opening) / self.radius)
        on_disc = self.inside > 0
        far = (self.v * side > 0) & on_disc
        front = (self.v * side <= 0) & on_disc
        shadowed = planet_light * (1 - 0.7 * shadow) * (1 - 0.5 * ring)
        planet = np.where(front, shadowed, planet_light)
        return planet + ring * ~far * (albedo * rng.uniform(0.6, 1.0))


def _ring_profile(r):
    """Brightness against radius (planet radii): faint inner ring, bright broad ring,
    a dark division, a moderate outer ring cut by a narrow gap."""
    def band(lo, hi, soft_lo, soft_hi):
        return smoothstep((r - lo) / soft_lo) * (1 - smoothstep((r - hi) / soft_hi))

    rings = 0.2 * band(1.24, 1.52, 0.03, 0.02) + 0.9 * band(1.52, 1.95, 0.02, 0.01) \
        + 0.6 * band(2.02, 2.27, 0.01, 0.01)
    return rings * (1 - gaussian(r - 2.21, 0.004)) * (1 + 0.1 * np.sin(r * 180))


def _moons(cv: Canvas, cx, cy, radius, angle, albedo) -> None:
    """Moons near the equatorial plane: small bright dots beside the planet."""
    rng = cv.rng
    count = rng.integers(0, 5)
    dist = radius * rng.uniform(1.3, 4.0, count) * rng.choice([-1, 1], count)
    off = radius * rng.normal(0, 0.08, count)
    c, s = math.cos(angle), math.sin(angle)
    cv.add_points(cx + dist * c - off * s, cy + dist * s + off * c,
                  albedo * radius ** 2 * rng.uniform(0.0005, 0.004, count), blur=0.6)
