"""The blemishes a real HST detector adds to every exposure.

These are what tell an astronomer at a glance that a picture came from Hubble rather
than from a drawing program: cosmic-ray hits that survived rejection, hot pixels that
multiply as a CCD ages in orbit, saturated stars bleeding along the CCD columns, the
WFC3/IR "blobs" and its dead corner, the FOC's grid of reseau marks, and the photon
noise that grains every faint region. Values are in electrons of a preview pixel.
"""

from __future__ import annotations

import numpy as np

from .footprint import PreviewGeometry, detector_to_pixels
from .instruments import Detector
from .primitives import deposit, pixel_grid

__all__ = [
    "add_bleed_trails",
    "add_cosmic_rays",
    "add_hot_pixels",
    "add_noise",
    "apply_ir_blemishes",
    "apply_reseau",
]


def add_bleed_trails(image, stars, geometry: PreviewGeometry, saturation: float,
                     peak_fraction: float) -> None:
    """Saturate bright stars and let their excess charge run along the columns."""
    size = image.shape[0]
    cx, cy = geometry.column_direction()
    for x, y, flux in stars:
        excess = flux * peak_fraction / saturation
        if excess <= 1:
            continue
        half = min(size / 5, 1.5 * excess ** 0.6)
        t = np.linspace(-half, half, int(4 * half) + 2)
        cols = np.rint(x + cx * t).astype(int)
        rows = np.rint(y + cy * t).astype(int)
        ok = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
        image[rows[ok], cols[ok]] = np.maximum(image[rows[ok], cols[ok]], saturation)
    np.minimum(image, saturation, out=image)


def add_cosmic_rays(image, rng, exptime: float, sigma: float) -> None:
    """Hits from charged particles: sharp dots and short streaks, untouched by the PSF."""
    size = image.shape[0]
    left = 10 ** rng.uniform(-2.3, -0.3)  # fraction that survived CR rejection
    count = min(rng.poisson(400 * (exptime / 1000) ** 0.5 * left * (size / 512) ** 2), 3000)
    if count == 0:
        return
    length = np.minimum(rng.exponential(1.2, count) * size / 512, 18)
    angle = rng.uniform(0, np.pi, count)
    energy = sigma * 10 ** rng.uniform(0.8, 2.6, count) * (1 + length)
    x0, y0 = rng.uniform(0, size, count), rng.uniform(0, size, count)
    steps = (np.arange(6) + 0.5) / 6
    xs = x0[:, None] + np.cos(angle)[:, None] * length[:, None] * steps
    ys = y0[:, None] + np.sin(angle)[:, None] * length[:, None] * steps
    deposit(image, xs.ravel(), ys.ravel(), np.repeat(energy / 6, 6))


def add_hot_pixels(image, rng, sigma: float, age_cycles: int, geometry: PreviewGeometry) -> None:
    """Radiation-damaged pixels, more every year in orbit, and the odd warm column."""
    size = image.shape[0]
    count = rng.poisson(size * size * 1.5e-4 * (1 + age_cycles / 4))
    rows, cols = rng.integers(0, size, count), rng.integers(0, size, count)
    image[rows, cols] += sigma * 10 ** rng.uniform(0.5, 2.3, count)
    if rng.random() < 0.08:
        cx, cy = geometry.column_direction()
        x, y = rng.uniform(0, size, 2)
        t = np.linspace(-size, size, 4 * size)
        deposit(image, x + cx * t, y + cy * t, np.full(t.size, sigma * rng.uniform(1, 4) / 2))


def apply_ir_blemishes(signal, rng, geometry: PreviewGeometry, det: Detector) -> None:
    """WFC3/IR's low-sensitivity "blobs" and the dead region in one corner."""
    x, y = pixel_grid(signal.shape[0])
    width, height = det.size_arcsec
    blob_radius = 1.3 / geometry.scale
    for _ in range(rng.integers(6, 20)):
        u, v = rng.uniform(-0.45, 0.45) * width, rng.uniform(-0.45, 0.45) * height
        bx, by = detector_to_pixels(geometry, u, v)
        r = np.hypot(x - bx, y - by)
        signal *= 1 - rng.uniform(0.01, 0.04) * (r < blob_radius * rng.uniform(0.7, 1.5))
    dx, dy = detector_to_pixels(geometry, -0.47 * width, -0.5 * height)
    signal[np.hypot(x - dx, y - dy) < 0.055 * width / geometry.scale] = 0


def apply_reseau(signal, geometry: PreviewGeometry, det: Detector) -> None:
    """The FOC's etched grid of reseau marks, dark dots fixed on the detector."""
    width, height = det.size_arcsec
    marks = np.linspace(-0.47, 0.47, 17)
    u, v = np.meshgrid(marks * width, marks * height)
    cols, rows = detector_to_pixels(geometry, u.ravel(), v.ravel())
    size = signal.shape[0]
    for dx in (0, 1):
        for dy in (0, 1):
            c, r = np.floor(cols).astype(int) + dx, np.floor(rows).astype(int) + dy
            ok = (c >= 0) & (c < size) & (r >= 0) & (r < size)
            signal[r[ok], c[ok]] *= 0.15


def add_noise(image, rng, family: str, read_noise: float) -> np.ndarray:
    """Photon noise (counted photons for MAMA/FOC, Gaussian-approximated otherwise)."""
    if family in ("mama", "foc"):
        return rng.poisson(np.maximum(image, 0)).astype(np.float32)
    variance = np.maximum(image, 0) + np.float32(read_noise ** 2)
    return image + rng.standard_normal(image.shape, np.float32) * np.sqrt(variance)

