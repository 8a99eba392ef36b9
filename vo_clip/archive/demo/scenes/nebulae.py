"""Glowing gas: planetary nebulae, supernova remnants, the interstellar medium."""

from __future__ import annotations

import math

import numpy as np

from ..primitives import Canvas, fractal_noise, gaussian, shell_profile, smoothstep
from .base import BRIGHT_STAR, Look, Scene
from .common import place

__all__ = ["interstellar_medium", "planetary_nebula", "supernova_remnant_ring"]


def planetary_nebula(cv: Canvas, look: Look) -> Scene:
    """A hot central star inside nested shells; lobes, knots, ansae or halo arcs vary."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.08)
    radius = look.radius * rng.uniform(0.12, 0.45)
    pa, q = rng.uniform(0, math.pi), rng.uniform(0.55, 1.0)
    clumps = np.exp(rng.uniform(0.2, 0.7) * fractal_noise(cv.size, rng, 2.6))
    style = rng.choice(["elliptical", "bipolar", "ring", "multishell"])
    if style == "bipolar":  # a dense waist across the axis, lobes along it
        light = _shells(cv, cx, cy, radius * 0.4, pa + math.pi / 2, rng.uniform(0.3, 0.6), clumps)
        light += _bipolar_lobes(cv, cx, cy, radius, pa) * clumps
    else:
        light = _shells(cv, cx, cy, radius, pa, q, clumps)
    if style == "ring":
        _cometary_knots(cv, cx, cy, radius, pa, q)
    elif style == "multishell":
        light += _halo_arcs(cv, cx, cy, radius)
    cv.image += light * rng.uniform(0.5, 3.0)
    if rng.random() < 0.35:
        _ansae(cv, cx, cy, radius, pa)
    star = rng.uniform(20, 600) * (0.3 if look.narrow else 1.0)
    cv.add_points([cx], [cy], [star], bright=BRIGHT_STAR)
    return Scene(field_stars=rng.uniform(0.2, 0.8), field_galaxies=0.3)


def _shells(cv: Canvas, cx, cy, radius, pa, q, clumps):
    """A clumpy limb-brightened inner shell, one side brighter, in a soft faint halo."""
    rng = cv.rng
    u, v = cv.frame(cx, cy, pa, q)
    r = np.sqrt(u * u + v * v)
    inner = shell_profile(r, radius * rng.uniform(0.55, 0.85), radius) * clumps
    lopsided = 1 + rng.uniform(0, 0.6) * u / radius
    halo = rng.uniform(0.03, 0.2) / (1 + (r / (radius * rng.uniform(1.2, 2.2))) ** 4)
    return inner * lopsided + halo


def _bipolar_lobes(cv: Canvas, cx, cy, radius, pa):
    """An hourglass: two lobes along the symmetry axis, pinched at a dusty waist."""
    rng = cv.rng
    length = radius * rng.uniform(1.0, 2.0)
    width = rng.uniform(0.4, 0.9)
    lobes = np.zeros((cv.size, cv.size), np.float32)
    for sign in (1, -1):
        lx = cx + sign * 0.5 * length * math.cos(pa)
        ly = cy + sign * 0.5 * length * math.sin(pa)
        r = cv.radius(lx, ly, pa, width * rng.uniform(0.85, 1.15))
        lobes += shell_profile(r, 0.42 * length, 0.55 * length) * rng.uniform(0.5, 1.0)
    along, _ = cv.frame(cx, cy, pa)
    return lobes * smoothstep(np.abs(along) / (0.3 * radius)) * 0.8


def _cometary_knots(cv: Canvas, cx, cy, radius, pa, q) -> None:
    """Dense knots around the inner rim, each with a faint tail pointing away."""
    rng = cv.rng
    count = int(rng.uniform(60, 400) * cv.size / 512)
    angle = rng.uniform(0, 2 * math.pi, count)
    dist = radius * rng.uniform(0.6, 1.1, count)
    c, s = math.cos(pa), math.sin(pa)
    ux = np.cos(angle) * c - np.sin(angle) * q * s
    uy = np.cos(angle) * s + np.sin(angle) * q * c
    x, y = cx + dist * ux, cy + dist * uy
    flux = rng.uniform(0.2, 1.5, count)
    cv.add_points(x, y, flux, blur=0.7)
    tail = radius * rng.uniform(0.05, 0.15)
    cv.add_segments(x, y, x + ux * tail, y + uy * tail, flux * 0.4, samples=8, blur=0.8)


def _halo_arcs(cv: Canvas, cx, cy, radius):
    """Faint concentric arcs in the halo: episodic mass loss before the nebula formed."""
    rng = cv.rng
    r = cv.radius(cx, cy)
    arcs = np.zeros_like(r)
    for k in range(rng.integers(4, 12)):
        ring = radius * (1.3 + 0.25 * k + rng.uniform(-0.05, 0.05))
        arcs += gaussian(r - ring, 0.02 * radius + 0.7)
    return arcs * np.exp(-r / (2 * radius)) * rng.uniform(0.05, 0.2)


def _ansae(cv: Canvas, cx, cy, radius, pa) -> None:
    """A pair of bright knots on the axis (FLIERs), with faint jets back to the star."""
    rng = cv.rng
    dist = radius * rng.uniform(1.05, 1.6)
    twist = rng.uniform(-0.4, 0.4)
    for sign in (1, -1):
        a = pa + sign * twist
        x, y = cx + sign * dist * math.cos(a), cy + sign * dist * math.sin(a)
        cv.add_points([x], [y], [rng.uniform(3, 15)], blur=1.2)
        cv.add_segments(cx, cy, x, y, rng.uniform(2, 10), samples=30, blur=0.8)


def supernova_remnant_ring(cv: Canvas, look: Look) -> Scene:
    """A stellar blast's remains: SN 1987A-like rings or a limb-brightened shell."""
    if cv.rng.random() < 0.7:
        _triple_ring(cv, look)
    else:
        _balmer_shell(cv, look)
    return Scene(field_stars=cv.rng.uniform(0.6, 2.0), field_galaxies=0.2)


def _triple_ring(cv: Canvas, look: Look) -> None:
    """An inclined equatorial ring beaded with hot spots, two faint outer rings, ejecta."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    radius = look.radius * rng.uniform(0.06, 0.22)
    pa, q = rng.uniform(0, math.pi), math.cos(math.radians(rng.uniform(35, 55)))
    brightness = rng.uniform(0.8, 3.0)
    width = max(0.7, radius * rng.uniform(0.05, 0.1))
    cv.image += gaussian(cv.radius(cx, cy, pa, q) - radius, width) * (brightness * 0.5)
    _hot_spots(cv, cx, cy, radius, pa, q, brightness)
    axis_x, axis_y = -math.sin(pa), math.cos(pa)
    for sign in (1, -1):  # the outer rings sit above and below the equatorial plane
        shift = sign * radius * rng.uniform(0.8, 1.3) * math.sqrt(1 - q * q)
        r_out = cv.radius(cx + axis_x * shift, cy + axis_y * shift, pa, q)
        outer = gaussian(r_out - radius * rng.uniform(2.0, 2.6), width * 0.7)
        cv.image += outer * (brightness * rng.uniform(0.015, 0.08))
    ejecta = cv.radius(cx, cy, rng.uniform(0, math.pi), rng.uniform(0.4, 0.8))
    cv.image += gaussian(ejecta, 0.3 * radius) * rng.uniform(0.1, 0.6)
    for _ in range(rng.integers(0, 3)):
        a, d = rng.uniform(0, 2 * math.pi), radius * rng.uniform(1.5, 3.5)
        cv.add_points([cx + d * math.cos(a)], [cy + d * math.sin(a)],
                      [rng.uniform(100, 2000) * look.continuum], bright=BRIGHT_STAR)


def _hot_spots(cv: Canvas, cx, cy, radius, pa, q, brightness) -> None:
    """Where the blast wave hits the ring: bright beads, often brighter on one side."""
    rng = cv.rng
    count = rng.integers(8, 32)
    t = rng.uniform(0, 2 * math.pi, count)
    lopsided = 1 + rng.uniform(0, 1.2) * np.cos(t - rng.uniform(0, 2 * math.pi))
    u, v = radius * np.cos(t), radius * q * np.sin(t)
    x = cx + u * math.cos(pa) - v * math.sin(pa)
    y = cy + u * math.sin(pa) + v * math.cos(pa)
    cv.add_points(x, y, brightness * rng.uniform(0.5, 3.0, count) * lopsided * radius / 8,
                  blur=0.8)


def _balmer_shell(cv: Canvas, look: Look) -> None:
    """A young remnant's thin, rippled shell, brightest where the shock meets denser gas."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    radius = look.radius * rng.uniform(0.3, 0.7)
    ripples = 1 + 0.05 * fractal_noise(cv.size, rng, 3.0)
    r = cv.radius(cx, cy, rng.uniform(0, math.pi), rng.uniform(0.85, 1.0)) * ripples
    shell = shell_profile(r, radius * rng.uniform(0.9, 0.96), radius)
    along, _ = cv.frame(cx, cy, rng.uniform(0, 2 * math.pi))
    denser_side = np.clip(1 + rng.uniform(0.3, 1.5) * along / radius, 0.1, None)
    filaments = np.clip(1 + 0.8 * fractal_noise(cv.size, rng, 2.4), 0, None)
    cv.image += shell * denser_side * filaments * rng.uniform(0.4, 1.5)


def interstellar_medium(cv: Canvas, look: Look) -> Scene:
    """Gas and dust between the stars: filaments, diffuse glow, dark clouds, reflection."""
    rng = cv.rng
    style = rng.choice(["filaments", "diffuse", "dark_cloud", "reflection"])
    clouds = fractal_noise(cv.size, rng, rng.uniform(3.0, 3.8), stretch=rng.uniform(1, 4),
                           angle=rng.uniform(0, math.pi))
    glow = np.exp(rng.uniform(0.5, 1.2) * clouds)
    light = glow * rng.uniform(0.05, 0.4)
    if style == "filaments":
        strands = fractal_noise(cv.size, rng, 3.4, stretch=rng.uniform(1.5, 4),
                                angle=rng.uniform(0, math.pi), smallest=1.5)
        ridges = np.clip(1 - np.abs(strands), 0, 1) ** 4
        light += ridges * np.clip(glow, 0, 3) * rng.uniform(0.3, 1.2)
    elif style == "reflection":
        light = _reflection(cv, look, glow)
    tau = np.maximum(fractal_noise(cv.size, rng, rng.uniform(3.0, 3.8)) - rng.uniform(0.0, 1.0), 0)
    tau *= rng.uniform(0.8, 3.0) * look.dust
    if style == "dark_cloud":
        tau += _globule(cv, look)
        light *= 0.5
    cv.image += light * np.exp(-tau)
    stars = {"dark_cloud": 4.0, "diffuse": 1.5}.get(str(style), 1.0)
    return Scene(field_stars=stars * rng.uniform(0.6, 1.5), field_galaxies=0.0, extinction=tau)


def _reflection(cv: Canvas, look: Look, glow):
    """Dust lit by a bright star: billows fading with distance from it."""
    rng = cv.rng
    sx, sy = place(cv, look, 0.4)
    cv.add_points([sx], [sy], [rng.uniform(1000, 8000)], bright=BRIGHT_STAR)
    falloff = 1 + (cv.radius(sx, sy) / (0.25 * look.radius)) ** 2
    return glow * rng.uniform(0.5, 2.0) / falloff


def _globule(cv: Canvas, look: Look):
    """A Bok globule: a compact opaque cloud that blots out the stars behind it."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.25)
    radius = look.radius * rng.uniform(0.15, 0.5)
    ragged = 1 + 0.15 * fractal_noise(cv.size, rng, 3.0)
    r = cv.radius(cx, cy, rng.uniform(0, math.pi), rng.uniform(0.5, 1.0)) * ragged
    return rng.uniform(3, 8) * smoothstep((radius - r) / (radius * 0.5))
