"""HST's point-spread function as it appears in a preview.

What makes a Hubble image recognisable at a glance is mostly here: a sharp core, a faint
halo, and four diffraction spikes from the secondary-mirror spider, fixed to the
telescope and therefore rotating with the detector in a north-up preview. Before the
1993 servicing mission the primary mirror's spherical aberration spread most of a
star's light into a wide halo (``aberrated``). The PSF is applied as one FFT
convolution of the whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["PSF", "convolve"]


@dataclass(frozen=True)
class PSF:
    """Shape parameters in preview pixels.

    ``spike_fraction`` of the light goes into the spikes and ``halo_fraction`` into a
    Moffat-like halo of radius ``halo_radius``; the rest is the core.
    """

    fwhm: float
    spike_angle_deg: float
    spike_fraction: float = 0.02
    halo_fraction: float = 0.05
    halo_radius: float = 3.0
    spike_width: float = 0.45

    def kernel(self, size: int) -> np.ndarray:
        """The PSF on a periodic ``size``×``size`` grid centred on pixel (0, 0), sum 1."""
        dx, dy = _wrapped(size)
        r2 = dx * dx + dy * dy
        sigma = max(self.fwhm, 0.6) / 2.355
        core = np.exp(r2 * np.float32(-0.5 / sigma ** 2))
        halo = (1 + r2 * np.float32(1 / self.halo_radius ** 2)) ** np.float32(-1.6)
        spikes = self._spikes(dx, dy)
        parts = [(core, 1 - self.halo_fraction - self.spike_fraction),
                 (halo, self.halo_fraction), (spikes, self.spike_fraction)]
        total = np.zeros((size, size), np.float32)
        for image, weight in parts:
            total += image * np.float32(weight / image.sum())
        return total

    def _spikes(self, dx, dy) -> np.ndarray:
        a = np.radians(self.spike_angle_deg)
        c, s = np.float32(np.cos(a)), np.float32(np.sin(a))
        along1, along2 = dx * c + dy * s, dy * c - dx * s
        width = np.float32(-0.5 / max(self.spike_width, 0.35 * self.fwhm) ** 2)
        scale = np.float32(1 / max(self.fwhm, 1.0))
        arm1 = np.exp(along2 * along2 * width) * (1 + np.abs(along1) * scale) ** np.float32(-1.7)
        arm2 = np.exp(along1 * along1 * width) * (1 + np.abs(along2) * scale) ** np.float32(-1.7)
        return arm1 + arm2


@lru_cache(maxsize=4)
def _wrapped(size: int) -> tuple[np.ndarray, np.ndarray]:
    offsets = np.fft.fftfreq(size, 1.0 / size).astype(np.float32)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    return dx, dy


def convolve(image: np.ndarray, psf: PSF) -> np.ndarray:
    """``image`` seen through ``psf`` (periodic edges: the footprint mask hides them)."""
    size = image.shape[0]
    transfer = np.fft.rfft2(psf.kernel(size))
    return np.fft.irfft2(np.fft.rfft2(image) * transfer, s=image.shape).astype(np.float32)
