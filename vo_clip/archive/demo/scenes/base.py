"""What a scene renderer is told about the exposure, and what it tells the detector model."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Look", "Scene"]


@dataclass(frozen=True)
class Look:
    """The exposure as a scene sees it.

    Scenes draw in preview pixels, so they need the preview size and the pixel scale
    only to keep physical sizes plausible; the band decides what shines: through a
    narrow emission-line filter (``narrow``) stars and galaxies fade while nebulae do
    not, and dust is less opaque in the infrared (``dust`` ~ 1 in the visible).
    """

    size: int
    scale_arcsec: float
    pivot_nm: float
    narrow: bool
    family: str
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

    @property
    def infrared(self) -> bool:
        return self.pivot_nm > 1000


@dataclass(frozen=True)
class Scene:
    """What the detector model should add around a scene.

    ``field_stars`` and ``field_galaxies`` scale the unrelated foreground stars and
    background galaxies; ``streak`` (pixels, x and y) trails them when the telescope
    tracks a moving target.
    """

    field_stars: float = 1.0
    field_galaxies: float = 1.0
    streak: tuple[float, float] = (0.0, 0.0)
