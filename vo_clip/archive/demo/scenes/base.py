"""What a scene renderer is told about the exposure, and what it tells the detector model."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["BRIGHT_STAR", "Look", "Scene"]

#: Stars brighter than this (scene units) saturate and may bleed along CCD columns.
BRIGHT_STAR = 60.0


@dataclass(frozen=True)
class Look:
    """The exposure as a scene sees it.

    Scenes draw in preview pixels and centre their target on the aperture (``centre``),
    sizing it against the radius of the footprint's inscribed circle (``radius``). The
    band decides what shines: through a narrow emission-line filter (``narrow``) stars
    and galaxies fade while nebulae do not, dust is less opaque in the infrared
    (``dust`` ~ 1 in the visible), and the far ultraviolet shows planetary aurorae.
    ``exptime`` (seconds) sets how many faint background galaxies show.
    """

    size: int
    pivot_nm: float
    narrow: bool
    exptime: float
    centre: tuple[float, float]
    radius: float

    @property
    def continuum(self) -> float:
        """Brightness of starlight relative to a broad band."""
        return 0.08 if self.narrow else 1.0

    @property
    def dust(self) -> float:
        """Dust optical depth scale: extinction falls roughly as 1/wavelength."""
        return min(2.5, 550.0 / self.pivot_nm)

    @property
    def ultraviolet(self) -> bool:
        return self.pivot_nm < 320


@dataclass(frozen=True)
class Scene:
    """What the detector model should add around a scene.

    ``field_stars`` and ``field_galaxies`` scale the unrelated foreground stars and
    background galaxies; ``streak`` (pixels, x and y) trails them when the telescope
    tracks a moving target; ``extinction`` (optical depth per pixel) hides the field
    stars behind a scene's dust clouds; ``display_soft`` > 0 asks for a more linear
    display stretch (see :func:`..stretch.asinh_stretch`) for bright extended targets.
    """

    field_stars: float = 1.0
    field_galaxies: float = 1.0
    streak: tuple[float, float] = (0.0, 0.0)
    extinction: np.ndarray | None = None
    display_soft: float = 0.0
