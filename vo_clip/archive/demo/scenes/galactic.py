"""Nearby galaxies: spirals, ellipticals, edge-on discs, dwarfs and mergers."""

from __future__ import annotations

import math

import numpy as np

from ..galaxies import draw_elliptical, draw_field_galaxies, draw_irregular, draw_spiral
from ..primitives import Canvas, fractal_noise, gaussian, power_law_fluxes, sersic, smoothstep
from .base import Look, Scene
from .common import place, plummer_offsets

__all__ = ["dwarf_galaxy", "edge_on_galaxy", "elliptical_galaxy", "merging_galaxies",
           "spiral_galaxy"]


def spiral_galaxy(cv: Canvas, look: Look) -> Scene:
    """A large disc galaxy, grand-design or flocculent, barred or not, at any tilt."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    h = look.radius * rng.uniform(0.12, 0.32)
    flocculent = rng.uniform(0.4, 0.8) if rng.random() < 0.3 else 0.0
    draw_spiral(cv, cx, cy, h, rng.uniform(0.3, 1.2), q=rng.uniform(0.35, 1.0),
                pa=rng.uniform(0, math.pi), dust=rng.uniform(0.5, 1.5) * look.dust,
                bar=rng.random() < 0.4, flocculent=flocculent, bulge=rng.uniform(0.1, 0.6))
    if rng.random() < 0.3:  # a small companion
        draw_field_galaxies(cv, 1, size_scale=6, brightness=4, centre=(cx, cy), spread=2 * h)
    return Scene(field_stars=rng.uniform(0.5, 1.5))


def elliptical_galaxy(cv: Canvas, look: Look) -> Scene:
    """A smooth giant spheroid with its globular clusters; sometimes dust, shells or a jet."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    re = look.radius * rng.uniform(0.06, 0.25)
    pa, q = rng.uniform(0, math.pi), rng.uniform(0.6, 1.0)
    draw_elliptical(cv, cx, cy, re, rng.uniform(0.3, 1.0), q=q, pa=pa, n=rng.uniform(3, 6),
                    boxy=rng.uniform(-0.4, 0.4), extent=40)
    count = int(rng.uniform(30, 300) * cv.size / 512)
    dx, dy = plummer_offsets(rng, count, re * 1.5, look.radius * 2, q, pa)
    cv.add_points(cx + dx, cy + dy, power_law_fluxes(rng, count, 0.1, 1.5, 3.0))
    roll = rng.random()
    if roll < 0.25:
        _central_dust(cv, cx, cy, re, look)
    elif roll < 0.4:
        _shells(cv, cx, cy, re, pa)
    elif roll < 0.5:
        _jet(cv, cx, cy, re)
    for _ in range(rng.integers(0, 4)):  # smaller group members
        ox, oy = place(cv, look, 0.8)
        draw_elliptical(cv, ox, oy, re * rng.uniform(0.1, 0.3), rng.uniform(0.1, 0.6),
                        q=rng.uniform(0.5, 1), pa=rng.uniform(0, math.pi), n=rng.uniform(2, 4))
    return Scene(field_stars=rng.uniform(0.3, 1.0), field_galaxies=1.5)


def _central_dust(cv: Canvas, cx, cy, re, look: Look) -> None:
    """A dusty disc or chaotic dust lanes across the core, silhouetted against the light."""
    rng = cv.rng
    sl, grid = cv.stamp(cx, cy, re * 3)
    r = cv.radius(cx, cy, rng.uniform(0, math.pi), rng.uniform(0.15, 0.5), grid=grid)
    disc = smoothstep((re * rng.uniform(0.3, 1.0) - r) / (re * 0.2 + 1))
    patchy = np.clip(fractal_noise(cv.size, rng, 2.8)[sl] + 0.8, 0, None) * np.exp(-r / re)
    cv.image[sl] *= np.exp(-(disc + 0.3 * patchy) * (rng.uniform(0.5, 1.5) * look.dust))


def _shells(cv: Canvas, cx, cy, re, pa) -> None:
    """Faint sharp-edged arcs on alternating sides: debris of a swallowed companion."""
    rng = cv.rng
    u, v = cv.frame(cx, cy, pa, 0.8)
    r = np.sqrt(u * u + v * v)
    arcs = np.zeros_like(r)
    for k in range(rng.integers(3, 8)):
        radius = re * (2 + 1.2 * k) * rng.uniform(0.9, 1.1)
        side = 1 if k % 2 else -1
        edge = smoothstep((radius - r) / (0.15 * radius))
        arcs += edge * smoothstep(side * u / r.clip(1) * 2) * (r > 0.7 * radius)
    cv.image += arcs * rng.uniform(0.005, 0.03)


def _jet(cv: Canvas, cx, cy, re) -> None:
    """A narrow synchrotron jet of knots from a bright active nucleus."""
    rng = cv.rng
    a = rng.uniform(0, 2 * math.pi)
    t = np.sort(rng.uniform(0.05, 1.0, 12)) * re * rng.uniform(1.5, 4)
    c, s = math.cos(a), math.sin(a)
    cv.add_points(cx + t * c, cy + t * s, rng.uniform(0.5, 4, t.size), blur=0.8)
    cv.add_segments(cx, cy, cx + t[-1] * c, cy + t[-1] * s, 6.0, samples=60, blur=0.8)
    cv.add_points([cx], [cy], [rng.uniform(20, 200)])


def edge_on_galaxy(cv: Canvas, look: Look) -> Scene:
    """A disc seen edge-on: a thin bright plane split by a dust lane, a bulge, maybe a warp."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.08)
    h = look.radius * rng.uniform(0.15, 0.4)
    pa = rng.uniform(0, math.pi)
    along, height = cv.frame(cx, cy, pa)
    sombrero = rng.random() < 0.2  # a huge bulge with the dust lane across it
    z0 = h * rng.uniform(0.04, 0.1) * (1.8 if sombrero else 1.0)
    outer = np.maximum(np.abs(along) - 1.5 * h, 0)
    z = height - rng.uniform(-0.06, 0.06) * outer * outer / h * np.sign(along)
    disc = np.exp(-np.abs(along) / h) / np.cosh(np.clip(z / z0, -30, 30)) ** 2
    bulge_re = h * rng.uniform(0.15, 0.35) * (2.5 if sombrero else 1.0)
    bulge = sersic(cv.radius(cx, cy, pa, rng.uniform(0.55, 0.9)), bulge_re, rng.uniform(2, 4))
    light = disc * rng.uniform(0.5, 1.5) + bulge * rng.uniform(0.1, 0.4)
    lane = gaussian(z - z0 * rng.uniform(-0.8, 0.8), z0 * rng.uniform(0.4, 0.9))
    lane *= np.exp(-np.abs(along) / (1.6 * h))
    lane *= np.clip(1 + 0.5 * fractal_noise(cv.size, rng, 2.8), 0, None)
    cv.image += light * np.exp(-rng.uniform(2, 5) * look.dust * lane)
    _midplane_knots(cv, cx, cy, h, pa, z0)
    return Scene(field_stars=rng.uniform(0.5, 1.5))


def _midplane_knots(cv: Canvas, cx, cy, h, pa, z0) -> None:
    rng = cv.rng
    count = int(rng.uniform(20, 120) * cv.size / 512)
    t, z = rng.laplace(0, h, count), rng.normal(0, z0 * 0.6, count)
    c, s = math.cos(pa), math.sin(pa)
    cv.add_points(cx + t * c - z * s, cy + t * s + z * c,
                  power_law_fluxes(rng, count, 0.1, 1.2, 5), blur=0.8)


def dwarf_galaxy(cv: Canvas, look: Look) -> Scene:
    """A small galaxy resolved into stars: a sparse smooth spheroid or a patchy irregular."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.15)
    size = look.radius * rng.uniform(0.25, 0.8)
    q, pa = rng.uniform(0.4, 0.95), rng.uniform(0, math.pi)
    count = int(rng.uniform(1500, 6000) * (cv.size / 512) ** 2)
    r, phi = rng.gamma(2.0, size / 2.5, count), rng.uniform(0, 2 * math.pi, count)
    dx, dy = r * np.cos(phi), r * np.sin(phi) * q
    c, s = math.cos(pa), math.sin(pa)
    cv.add_points(cx + dx * c - dy * s, cy + dx * s + dy * c,
                  power_law_fluxes(rng, count, 0.05, 1.3, 200) * look.continuum)
    draw_elliptical(cv, cx, cy, size * 0.6, rng.uniform(0.01, 0.05), q=q, pa=pa, n=0.8, extent=4)
    if rng.random() < 0.5:  # irregular: patchy gas and star-forming complexes
        patch = np.clip(fractal_noise(cv.size, rng, 3.0), 0, None)
        cv.image += patch * sersic(cv.radius(cx, cy, pa, q), size * 0.5, 0.8) * 0.08
        for _ in range(rng.integers(2, 7)):
            ox, oy = cx + rng.normal(0, 0.4 * size), cy + rng.normal(0, 0.4 * size * q)
            draw_irregular(cv, ox, oy, size * rng.uniform(0.03, 0.1), rng.uniform(0.2, 1.0))
    return Scene(field_stars=rng.uniform(0.3, 1.0), field_galaxies=1.2)


def merging_galaxies(cv: Canvas, look: Look) -> Scene:
    """Colliding galaxies: distorted discs, long tidal tails, bursts of young clusters."""
    rng = cv.rng
    style = rng.choice(["pair", "pair", "late", "ring"])
    if style == "ring":
        _collisional_ring(cv, look)
        return Scene(field_stars=rng.uniform(0.3, 1.0))
    cx, cy = place(cv, look, 0.1)
    sep = look.radius * rng.uniform(0.08, 0.2 if style == "late" else 0.45)
    a = rng.uniform(0, 2 * math.pi)
    h = look.radius * rng.uniform(0.06, 0.14)
    for sign in (1, -1):
        gx, gy = cx + sign * sep / 2 * math.cos(a), cy + sign * sep / 2 * math.sin(a)
        draw_spiral(cv, gx, gy, h * rng.uniform(0.7, 1.3), rng.uniform(0.3, 1.0),
                    q=rng.uniform(0.4, 1.0), pa=rng.uniform(0, math.pi), dust=look.dust,
                    flocculent=rng.uniform(0.3, 0.8))
        direction = a if sign > 0 else a + math.pi
        _tidal_tail(cv, gx, gy, h, look.radius * rng.uniform(0.5, 1.4), direction)
    _starburst(cv, cx, cy, sep + h)
    return Scene(field_stars=rng.uniform(0.3, 1.0))


def _tidal_tail(cv: Canvas, x0, y0, h, length, angle) -> None:
    """Stars flung out along a curving arc, bunched into knots, thickening and fading."""
    rng = cv.rng
    count = int(30000 * (cv.size / 512) ** 2)
    t = rng.random(count) ** 0.8
    knots = rng.random(count) < 0.35
    centres = rng.random(int(rng.integers(4, 14)))
    t[knots] = np.clip(rng.choice(centres, knots.sum()) + rng.normal(0, 0.015, knots.sum()), 0, 1)
    bend = rng.uniform(0.6, 2.2) * rng.choice([-1, 1])
    theta = angle + bend * t ** rng.uniform(0.7, 1.5)
    radius = h + length * t
    width = h * (0.08 + 0.35 * t) * np.exp(rng.normal(0, 0.4, count))
    x = x0 + radius * np.cos(theta) + rng.normal(0, 1, count) * width
    y = y0 + radius * np.sin(theta) + rng.normal(0, 1, count) * width
    flux = rng.uniform(0.05, 0.25) * length * h * 2 / count * (1.3 - t)
    cv.add_points(x, y, flux, blur=1.5)


def _starburst(cv: Canvas, cx, cy, spread) -> None:
    """Young super star clusters where the gas of the two discs collides."""
    rng = cv.rng
    count = rng.integers(20, 120)
    x, y = cx + rng.normal(0, spread * 0.4, count), cy + rng.normal(0, spread * 0.4, count)
    cv.add_points(x, y, power_law_fluxes(rng, count, 0.3, 1.2, 30), blur=0.9)


def _collisional_ring(cv: Canvas, look: Look) -> None:
    """A small galaxy punched through a disc: an expanding ring of star formation."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    radius = look.radius * rng.uniform(0.3, 0.6)
    pa, q = rng.uniform(0, math.pi), rng.uniform(0.5, 1.0)
    u, v = cv.frame(cx, cy, pa, q)
    r = np.sqrt(u * u + v * v)
    lumpy = np.clip(1 + fractal_noise(cv.size, rng, 2.4), 0, None)
    ring = gaussian(r - radius, 0.08 * radius)
    spokes = (0.5 + 0.5 * np.cos(int(rng.integers(5, 12)) * np.arctan2(v, u))) ** 4
    inner = np.exp(-r / (0.35 * radius)) * (1 + spokes) * (r < radius)
    cv.image += (ring * rng.uniform(0.15, 0.4) + inner * 0.05) * lumpy
    shift, a = radius * rng.uniform(0.15, 0.4), rng.uniform(0, 2 * math.pi)
    draw_elliptical(cv, cx + shift * math.cos(a), cy + shift * math.sin(a), radius * 0.1,
                    rng.uniform(0.3, 1.0), q=q, pa=pa, n=2.5)
    count = int(rng.uniform(60, 250))
    t = rng.uniform(0, 2 * math.pi, count)
    ru, rv = radius * np.cos(t), radius * q * np.sin(t)
    c, s = math.cos(pa), math.sin(pa)
    cv.add_points(cx + ru * c - rv * s, cy + ru * s + rv * c,
                  power_law_fluxes(rng, count, 0.2, 1.2, 20), blur=1.0)
    distance, b = radius * rng.uniform(1.3, 2.0), rng.uniform(0, 2 * math.pi)
    draw_spiral(cv, cx + distance * math.cos(b), cy + distance * math.sin(b), radius * 0.12,
                rng.uniform(0.2, 0.6), q=rng.uniform(0.4, 1), pa=rng.uniform(0, math.pi),
                knots=False)
