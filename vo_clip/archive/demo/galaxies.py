"""Galaxies of every size, shared by the scenes that need them.

The same few recipes draw the target of a spiral-galaxy programme, the members of a
cluster, the partners of a merger and the hundreds of specks of a deep field, so that
a spiral looks like a spiral whether it fills the frame or covers ten pixels.
Surface brightnesses are in scene units (about 1 for the brightest nebular or stellar
features); sizes are preview pixels.
"""

from __future__ import annotations

import math

import numpy as np

from .primitives import Canvas, fractal_noise, power_law_fluxes, sersic, smoothstep

__all__ = [
    "draw_elliptical",
    "draw_field_galaxies",
    "draw_irregular",
    "draw_spiral",
    "spiral_arms",
]


def draw_elliptical(cv: Canvas, cx, cy, re, ie, *, q=0.8, pa=0.0, n=4.0, boxy=0.0,
                    extent=8.0) -> None:
    """A smooth spheroid; ``boxy`` > 0 squares its isophotes, < 0 makes them discy."""
    box = cv.stamp(cx, cy, min(extent * re + 3, 1.5 * cv.size))
    if box is None:
        return
    sl, grid = box
    u, v = cv.frame(cx, cy, pa, q, grid=grid)
    power = 2.0 + boxy
    r = (np.abs(u) ** power + np.abs(v) ** power) ** (1 / power)
    cv.image[sl] += ie * sersic(r, re, n)


def spiral_arms(r, phi, *, arms, pitch_deg, phase, sharpness, start):
    """Logarithmic spiral arm pattern in 0..1 over a galaxy's plane."""
    winding = 1.0 / math.tan(math.radians(pitch_deg))
    angle = int(arms) * (phi - winding * np.log(np.maximum(r, 0.5) / start))
    return (0.5 + 0.5 * np.cos(angle + phase)) ** sharpness


def draw_spiral(cv: Canvas, cx, cy, h, ie, *, q=0.9, pa=0.0, dust=1.0, knots=True,
                bar=False, flocculent=0.0, bulge=0.3) -> None:
    """A disc galaxy: bulge, exponential disc, arms, dust lanes, star-forming knots.

    ``h`` is the disc scale length; ``q`` the apparent axis ratio (inclination);
    ``flocculent`` blends the grand-design pattern with patchy turbulence.
    """
    rng = cv.rng
    box = cv.stamp(cx, cy, min(6 * h + 3, 1.5 * cv.size))
    if box is None:
        return
    sl, grid = box
    u, v = cv.frame(cx, cy, pa, q, grid=grid)
    r = np.sqrt(u * u + v * v)
    phi = np.arctan2(v, u)
    bar_len = h * rng.uniform(1.0, 2.0) if bar else 0.0
    pattern = dict(arms=rng.choice([2, 2, 2, 3, 4]), pitch_deg=rng.uniform(10, 28),
                   sharpness=rng.uniform(2, 6), start=max(bar_len, 0.4 * h))
    phase = rng.uniform(0, 2 * np.pi)
    arm = spiral_arms(r, phi, phase=phase, **pattern)
    lane = spiral_arms(r, phi, phase=phase - 0.45, **{**pattern, "sharpness": 8})
    if flocculent > 0:
        patch = np.clip(0.5 + 0.4 * fractal_noise(cv.size, rng, 2.6)[sl], 0, 1)
        arm = (1 - flocculent) * arm + flocculent * patch
        lane = (1 - flocculent) * lane + flocculent * (1 - patch) ** 3
    inner = smoothstep((r - 0.6 * bar_len) / (0.6 * h + 1e-3)) if bar else 1.0
    light = ie * np.exp(-r / h) * (0.35 + 1.6 * arm * inner)
    if bar:
        light += _bar(cv, cx, cy, pa, q, bar_len, ie, grid)
    re_bulge = 0.25 * h * rng.uniform(0.6, 1.4)
    bulge_r = cv.radius(cx, cy, pa, min(1.0, q + 0.3), grid=grid)
    light += ie * bulge * 6 * sersic(bulge_r, re_bulge, rng.uniform(2, 4))
    tau = lane * np.exp(-r / (2.5 * h)) * smoothstep(r / (0.5 * h))
    cv.image[sl] += light * np.exp(-dust * 1.6 * tau)
    if knots:
        _star_forming_knots(cv, cx, cy, h, ie, q, pa)


def _bar(cv, cx, cy, pa, q, length, ie, grid):
    """A bar: a flat elongated bulge whose ends the arms start from."""
    rng = cv.rng
    u, v = cv.frame(cx, cy, pa, q, grid=grid)
    angle = rng.uniform(0, math.pi)
    c, s = math.cos(angle), math.sin(angle)
    along, across = u * c + v * s, (v * c - u * s) / rng.uniform(0.2, 0.35)
    return ie * 1.2 * sersic(np.sqrt(along * along + across * across), 0.55 * length, 0.6)


def _star_forming_knots(cv: Canvas, cx, cy, h, ie, q, pa) -> None:
    """HII regions and young clusters strung along the arms."""
    rng = cv.rng
    count = int(np.clip(h * 6, 8, 400))
    r = rng.gamma(2.0, h, count) * 1.1
    phi = rng.uniform(-np.pi, np.pi, count)
    arms = rng.choice([2, 2, 3])
    pattern = 0.5 + 0.5 * np.cos(arms * (phi - np.log(np.maximum(r, 1) / h) * 2.5))
    keep = pattern > rng.random(count)
    r, phi = r[keep], phi[keep]
    u, v = r * np.cos(phi), r * np.sin(phi) * q
    c, s = np.cos(pa), np.sin(pa)
    x, y = cx + u * c - v * s, cy + u * s + v * c
    fluxes = power_law_fluxes(rng, x.size, 0.15 * ie, 1.3, 40 * ie)
    cv.add_points(x, y, fluxes, blur=max(0.6, min(1.6, h / 25)))


def draw_irregular(cv: Canvas, cx, cy, size, ie, *, clumps=None) -> None:
    """A clumpy irregular galaxy: a patchy low-surface-brightness body with bright knots."""
    rng = cv.rng
    q, pa = rng.uniform(0.4, 0.9), rng.uniform(0, np.pi)
    draw_elliptical(cv, cx, cy, size, ie * 0.5, q=q, pa=pa, n=rng.uniform(0.6, 1.2), extent=4)
    count = clumps if clumps is not None else rng.integers(3, 9)
    x = cx + rng.normal(0, 0.6 * size, count)
    y = cy + rng.normal(0, 0.6 * size, count)
    cv.add_points(x, y, power_law_fluxes(rng, count, ie * size, 1.0, ie * size * 20),
                  blur=max(0.6, size / 6))


def draw_field_galaxies(cv: Canvas, count: int, *, brightness=1.0, size_scale=1.0,
                        centre=None, spread=None) -> None:
    """Unrelated galaxies of all types: most tiny and faint, a few resolved spirals."""
    rng = cv.rng
    if count <= 0:
        return
    if centre is None:
        x, y = rng.uniform(0, cv.size, count), rng.uniform(0, cv.size, count)
    else:
        x, y = centre[0] + rng.normal(0, spread, count), centre[1] + rng.normal(0, spread, count)
    re = np.exp(rng.normal(0.0, 0.7, count)) * size_scale * cv.size / 512
    ie = np.exp(rng.normal(np.log(0.04), 0.8, count)) * brightness
    tiny = re < 1.2
    cv.add_points(x[tiny], y[tiny], ie[tiny] * 12 * re[tiny] ** 2, blur=0.9)
    for xi, yi, ri, ii in zip(x[~tiny], y[~tiny], re[~tiny], ie[~tiny]):
        _one_field_galaxy(cv, xi, yi, ri, ii)


def _one_field_galaxy(cv: Canvas, x, y, re, ie) -> None:
    rng = cv.rng
    roll = rng.random()
    if roll < 0.3:
        draw_elliptical(cv, x, y, re, ie, q=rng.uniform(0.5, 1.0), pa=rng.uniform(0, np.pi),
                        n=rng.uniform(2.5, 4.5), extent=6)
    elif roll < 0.8 or re < 3:
        q = rng.uniform(0.15, 1.0)
        draw_elliptical(cv, x, y, re, ie, q=q, pa=rng.uniform(0, np.pi), n=rng.uniform(0.7, 1.3),
                        extent=5)
        if q > 0.5 and re > 2.5:
            draw_elliptical(cv, x, y, re * 0.25, ie * 3, q=min(1, q + 0.2), n=3, extent=4)
    elif roll < 0.92:
        draw_spiral(cv, x, y, re, ie * 1.5, q=rng.uniform(0.3, 1.0), pa=rng.uniform(0, np.pi),
                    knots=re > 4, dust=0.6)
    else:
        draw_irregular(cv, x, y, re, ie)
