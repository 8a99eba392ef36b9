"""The unrelated sky around every target: foreground stars and background galaxies.

Real previews are never empty around their target: the Milky Way's stars crowd
low-latitude fields, distant galaxies speckle every deep exposure, and when HST tracks
a planet or a comet the stars trail into short streaks. How many appear depends on
where the target lies (its kind's sky) and how deep the exposure is.
"""

from __future__ import annotations

import numpy as np

from .galaxies import draw_field_galaxies
from .primitives import Canvas, power_law_fluxes
from .scenes.base import BRIGHT_STAR, Look, Scene

__all__ = ["BRIGHT_STAR", "add_field"]

#: Typical numbers of stars and galaxies in a preview, by the kind of sky.
_STARS = {"galactic": 400, "magellanic": 300, "extragalactic": 12, "ecliptic": 25,
          "anywhere": 20}
_GALAXIES = {"galactic": 2, "magellanic": 8, "extragalactic": 40, "ecliptic": 15,
             "anywhere": 10}


def add_field(cv: Canvas, look: Look, scene: Scene, sky: str) -> None:
    """Draw the field population of a ``sky``-type position into ``cv``."""
    rng = cv.rng
    depth = np.clip(np.log10(max(look.exptime, 1.0)) / 3.0, 0.3, 1.6)
    n_stars = rng.poisson(_STARS[sky] * scene.field_stars * rng.lognormal(0, 0.7))
    n_galaxies = rng.poisson(_GALAXIES[sky] * scene.field_galaxies * depth * rng.lognormal(0, 0.5))
    _add_stars(cv, look, min(n_stars, 6000), scene)
    draw_field_galaxies(cv, min(n_galaxies, 400), brightness=look.continuum ** 0.5)


def _add_stars(cv: Canvas, look: Look, count: int, scene: Scene) -> None:
    rng = cv.rng
    if count == 0:
        return
    x, y = rng.uniform(-4, cv.size + 4, count), rng.uniform(-4, cv.size + 4, count)
    flux = power_law_fluxes(rng, count, 0.05, 0.75, 3000.0) * look.continuum
    if scene.extinction is not None:
        behind = rng.random(count) < 0.85
        cols = np.clip(x.astype(int), 0, cv.size - 1)
        rows = np.clip(y.astype(int), 0, cv.size - 1)
        flux[behind] *= np.exp(-scene.extinction[rows[behind], cols[behind]])
    streak = scene.streak
    if streak == (0.0, 0.0):
        cv.add_points(x, y, flux, bright=BRIGHT_STAR)
        return
    sx, sy = streak
    cv.add_segments(x - sx / 2, y - sy / 2, x + sx / 2, y + sy / 2, flux,
                    samples=max(4, int(np.hypot(sx, sy) * 1.5)))
