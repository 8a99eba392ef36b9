"""Gravitational lensing by isothermal mass clumps, evaluated by ray shooting.

Each image pixel is traced back to the source plane through the deflection of one or
more singular isothermal spheres plus an external shear; a source drawn there is seen
as arcs, rings or multiple images, with surface brightness conserved. That is the
physics of every strong-lensing picture HST took, and cheap: one pass over the image
per source clump.
"""

from __future__ import annotations

import numpy as np

from ..primitives import Canvas

__all__ = ["Lens", "draw_lensed_sources"]


class Lens:
    """Isothermal clumps ``(x, y, einstein_radius)`` and an external shear."""

    def __init__(self, clumps, shear=0.0, shear_angle=0.0):
        self.clumps = list(clumps)
        self.shear, self.shear_angle = shear, shear_angle

    def source_plane(self, cv: Canvas):
        """Where each image pixel's light ray started (source-plane x, y)."""
        x, y = cv.xy
        bx, by = x.copy(), y.copy()
        for cx, cy, theta_e in self.clumps:
            dx, dy = x - np.float32(cx), y - np.float32(cy)
            scale = np.float32(theta_e) / np.maximum(np.sqrt(dx * dx + dy * dy), np.float32(0.5))
            bx -= dx * scale
            by -= dy * scale
        if self.shear:
            cx, cy = self.clumps[0][:2]
            c2 = np.float32(self.shear * np.cos(2 * self.shear_angle))
            s2 = np.float32(self.shear * np.sin(2 * self.shear_angle))
            dx, dy = x - np.float32(cx), y - np.float32(cy)
            bx -= c2 * dx + s2 * dy
            by -= s2 * dx - c2 * dy
        return bx, by


def draw_lensed_sources(cv: Canvas, lens: Lens, sources) -> None:
    """Add sources (source-plane x, y, sigma, surface brightness) seen through ``lens``."""
    bx, by = lens.source_plane(cv)
    for sx, sy, sigma, brightness in sources:
        d2 = (bx - np.float32(sx)) ** 2 + (by - np.float32(sy)) ** 2
        cv.image += np.exp(d2 * np.float32(-0.5 / sigma ** 2)) * np.float32(brightness)
