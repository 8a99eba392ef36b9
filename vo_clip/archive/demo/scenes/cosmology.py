"""The distant universe: deep fields, high-redshift emitters, clusters and lenses."""

from __future__ import annotations

import numpy as np

from ..galaxies import draw_elliptical, draw_field_galaxies, draw_spiral
from ..primitives import Canvas, power_law_fluxes
from .base import BRIGHT_STAR, Look, Scene
from .common import place, plummer_offsets
from .lensing import Lens, draw_lensed_sources

__all__ = ["dark_matter_cluster_lensing", "deep_field", "galaxy_cluster",
           "lyman_alpha_high_z", "strong_lensing"]


def deep_field(cv: Canvas, look: Look) -> Scene:
    """Hundreds of galaxies of every size and shape, a few stars, dark sky between."""
    rng = cv.rng
    count = int(rng.uniform(150, 500) * (cv.size / 512) ** 2)
    draw_field_galaxies(cv, count, size_scale=rng.uniform(1.0, 1.8),
                        brightness=rng.uniform(0.6, 1.5))
    for _ in range(rng.integers(1, 6)):
        x, y = place(cv, look, 0.8)
        h = look.radius * rng.uniform(0.02, 0.07)
        if rng.random() < 0.6:
            draw_spiral(cv, x, y, h, rng.uniform(0.1, 0.5), q=rng.uniform(0.2, 1.0),
                        pa=rng.uniform(0, np.pi), dust=look.dust)
        else:
            draw_elliptical(cv, x, y, h * 0.7, rng.uniform(0.1, 0.4), q=rng.uniform(0.5, 1.0),
                            pa=rng.uniform(0, np.pi), n=4)
    return Scene(field_stars=rng.uniform(0.2, 0.8), field_galaxies=0.0)


def lyman_alpha_high_z(cv: Canvas, look: Look) -> Scene:
    """Tiny faint compact sources in a dark, noisy field; a few with diffuse halos."""
    rng = cv.rng
    count = int(rng.uniform(150, 500) * (cv.size / 512) ** 2)
    x, y = rng.uniform(0, cv.size, count), rng.uniform(0, cv.size, count)
    if rng.random() < 0.5:  # a protocluster: an overdensity of emitters
        cx, cy = place(cv, look, 0.4)
        dx, dy = plummer_offsets(rng, count // 2, look.radius * 0.15, look.radius)
        x[: count // 2], y[: count // 2] = cx + dx, cy + dy
    cv.add_points(x, y, power_law_fluxes(rng, count, 0.06, 1.3, 3.0), blur=0.7)
    for _ in range(rng.integers(1, 6)):
        hx, hy = place(cv, look, 0.7)
        halo = cv.radius(hx, hy, rng.uniform(0, np.pi), rng.uniform(0.5, 1.0))
        scale = look.radius * rng.uniform(0.01, 0.04)
        cv.image += np.exp(-halo / np.float32(scale)) * np.float32(rng.uniform(0.02, 0.1))
        cv.add_points([hx], [hy], [rng.uniform(0.3, 2)], blur=0.7)
    draw_field_galaxies(cv, int(rng.uniform(5, 25)), brightness=0.3 * look.continuum ** 0.5,
                        size_scale=0.8)
    return Scene(field_stars=rng.uniform(0.1, 0.5), field_galaxies=0.0)


def strong_lensing(cv: Canvas, look: Look) -> Scene:
    """A massive galaxy bending a background galaxy into arcs, a ring or four images."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.08)
    re = look.radius * rng.uniform(0.025, 0.07)
    theta_e = re * rng.uniform(1.2, 3.0)
    draw_elliptical(cv, cx, cy, re, rng.uniform(0.5, 2.0), q=rng.uniform(0.6, 1),
                    pa=rng.uniform(0, np.pi), n=4, extent=20)
    lens = Lens([(cx, cy, theta_e)], shear=rng.uniform(0, 0.15), shear_angle=rng.uniform(0, np.pi))
    sources = []
    for _ in range(rng.integers(1, 4)):
        sx = cx + rng.normal(0, 0.15 * theta_e)
        sy = cy + rng.normal(0, 0.15 * theta_e)
        size = theta_e * rng.uniform(0.05, 0.15)
        sources += _clumpy_source(rng, sx, sy, size, rng.uniform(0.3, 1.5))
    if rng.random() < 0.3:  # a lensed quasar: a point source splits into bright images
        qx, qy = cx + rng.normal(0, 0.1 * theta_e), cy + rng.normal(0, 0.1 * theta_e)
        sources.append((qx, qy, 0.35, 40.0))
    draw_lensed_sources(cv, lens, sources)
    return Scene(field_stars=rng.uniform(0.2, 0.8), field_galaxies=1.5)


def _clumpy_source(rng, sx, sy, size, brightness):
    """A star-forming background galaxy: a few knots in the source plane."""
    clumps = [(sx, sy, size, brightness)]
    for _ in range(rng.integers(0, 4)):
        clumps.append((sx + rng.normal(0, size), sy + rng.normal(0, size),
                       size * rng.uniform(0.2, 0.5), brightness * rng.uniform(1, 3)))
    return clumps


def galaxy_cluster(cv: Canvas, look: Look) -> Scene:
    """A rich cluster: a giant central elliptical, dozens of members, little lensing."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.15)
    core = look.radius * rng.uniform(0.15, 0.4)
    _cluster_members(cv, look, cx, cy, int(rng.uniform(30, 120)), core)
    if rng.random() < 0.3:
        lens = Lens([(cx, cy, look.radius * rng.uniform(0.05, 0.12))])
        draw_lensed_sources(cv, lens, [(cx + rng.normal(0, 10), cy + rng.normal(0, 10), 1.5, 0.3)])
    return Scene(field_stars=rng.uniform(0.2, 0.8), field_galaxies=1.0)


def _cluster_members(cv: Canvas, look: Look, cx, cy, count, core) -> None:
    """The brightest cluster galaxy with its diffuse halo, then the member galaxies."""
    rng = cv.rng
    re = look.radius * rng.uniform(0.04, 0.1)
    pa = rng.uniform(0, np.pi)
    draw_elliptical(cv, cx, cy, re, rng.uniform(0.5, 1.5), q=rng.uniform(0.6, 0.9), pa=pa,
                    n=rng.uniform(4, 6), extent=30)
    draw_elliptical(cv, cx, cy, look.radius * rng.uniform(0.3, 0.6), rng.uniform(0.005, 0.02),
                    q=0.8, pa=pa, n=1.0, extent=4)
    count = int(count * (cv.size / 512) ** 0.5) + 3
    dx, dy = plummer_offsets(rng, count, core, look.radius * 2)
    sizes = power_law_fluxes(rng, count, look.radius * 0.01, 1.5, look.radius * 0.05)
    for x, y, size in zip(cx + dx, cy + dy, sizes):
        if rng.random() < 0.8:
            draw_elliptical(cv, x, y, size, rng.uniform(0.2, 1.0), q=rng.uniform(0.5, 1),
                            pa=rng.uniform(0, np.pi), n=rng.uniform(2.5, 4.5), extent=10)
        else:
            draw_spiral(cv, x, y, size * 1.5, rng.uniform(0.1, 0.5), q=rng.uniform(0.3, 1),
                        pa=rng.uniform(0, np.pi), knots=False)


def dark_matter_cluster_lensing(cv: Canvas, look: Look) -> Scene:
    """A massive cluster whose unseen mass stretches many background galaxies into arcs."""
    rng = cv.rng
    cx, cy = place(cv, look, 0.1)
    clumps = [(cx, cy, look.radius * rng.uniform(0.12, 0.28))]
    _cluster_members(cv, look, cx, cy, int(rng.uniform(60, 180)), look.radius * 0.25)
    if rng.random() < 0.4:  # a merging cluster with two mass peaks
        ox, oy = place(cv, look, 0.5)
        clumps.append((ox, oy, look.radius * rng.uniform(0.05, 0.15)))
        _cluster_members(cv, look, ox, oy, int(rng.uniform(20, 60)), look.radius * 0.12)
    lens = Lens(clumps, shear=rng.uniform(0.05, 0.25), shear_angle=rng.uniform(0, np.pi))
    sources = []
    for _ in range(int(rng.uniform(12, 30))):
        radius = clumps[0][2] * rng.uniform(0.3, 1.3)
        a = rng.uniform(0, 2 * np.pi)
        size = look.radius * rng.uniform(0.004, 0.015)
        sources += _clumpy_source(rng, cx + radius * np.cos(a), cy + radius * np.sin(a), size,
                                  rng.uniform(0.1, 0.8))
    draw_lensed_sources(cv, lens, sources)
    for _ in range(rng.integers(0, 3)):
        x, y = place(cv, look, 0.9)
        cv.add_points([x], [y], [rng.uniform(100, 3000)], bright=BRIGHT_STAR)
    return Scene(field_stars=rng.uniform(0.2, 0.6), field_galaxies=1.5)
