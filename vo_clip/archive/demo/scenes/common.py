"""Helpers several scene renderers share: where to put the target, star clusters."""

from __future__ import annotations

import numpy as np

from ..primitives import Canvas, power_law_fluxes
from .base import BRIGHT_STAR, Look

__all__ = ["add_star_cluster", "place", "plummer_offsets", "random_unit"]


def place(cv: Canvas, look: Look, spread: float = 0.15) -> tuple[float, float]:
    """A target position near the aperture, as observers centre their targets."""
    cx, cy = look.centre
    return (cx + cv.rng.normal(0, spread * look.radius),
            cy + cv.rng.normal(0, spread * look.radius))


def random_unit(rng) -> tuple[float, float]:
    a = rng.uniform(0, 2 * np.pi)
    return float(np.cos(a)), float(np.sin(a))


def plummer_offsets(rng, count: int, core: float, cutoff: float, q: float = 1.0, pa: float = 0.0):
    """Offsets of stars following a Plummer sphere: dense core, long thin envelope."""
    u = rng.uniform(0.001, 0.999, count)
    r = core / np.sqrt(u ** (-2.0 / 3.0) - 1.0)
    r = np.where(r > cutoff, rng.uniform(0, cutoff, count), r)
    phi = rng.uniform(0, 2 * np.pi, count)
    dx, dy = r * np.cos(phi), r * np.sin(phi) * q
    c, s = np.cos(pa), np.sin(pa)
    return dx * c - dy * s, dx * s + dy * c


def add_star_cluster(cv: Canvas, cx, cy, count: int, core: float, *, brightest=2000.0,
                     faintest=0.05, slope=0.9, cutoff=None, q=1.0, pa=0.0, scale=1.0) -> None:
    """A resolved star cluster: ``count`` stars, Plummer-distributed about (cx, cy)."""
    dx, dy = plummer_offsets(cv.rng, count, core, cutoff or 30 * core, q, pa)
    fluxes = power_law_fluxes(cv.rng, count, faintest, slope, brightest) * scale
    cv.add_points(cx + dx, cy + dy, fluxes, bright=BRIGHT_STAR)
