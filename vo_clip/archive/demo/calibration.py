"""Calibration exposures: flats, darks and biases, as raw detector frames.

A large share of any HST archive is calibration: internal flats whose smooth
illumination is pocked by ring-shaped shadows of dust on the optics ("donuts"), darks
covered in hot pixels and cosmic rays with amplifier glow in the corners, biases with
their striping. They show the detector itself, unrotated, with no sky in them; a search
engine must learn to tell them from science.
"""

from __future__ import annotations

import math

import numpy as np

from . import detector as blemish
from .instruments import Detector
from .primitives import fractal_noise, pixel_grid, smoothstep
from .stretch import asinh_stretch, linear_stretch

__all__ = ["render_calibration"]


def render_calibration(det: Detector, exposure, size: int, rng) -> np.ndarray:
    """8-bit preview of a flat, dark or bias frame of ``det``."""
    if exposure.variant == "flat":
        frame, stretch = _flat(det, size, rng), linear_stretch
    elif exposure.variant == "bias":
        frame, stretch = _bias(det, size, rng), asinh_stretch
    else:
        frame, stretch = _dark(det, exposure, size, rng), asinh_stretch
    _cut_chip_gaps(frame, det, size)
    return stretch(frame)


def _flat(det: Detector, size: int, rng) -> np.ndarray:
    """Smooth illumination, vignetting, dust donuts, amplifier steps, pixel grain."""
    x, y = pixel_grid(size)
    half = size / 2
    r2 = ((x - half) ** 2 + (y - half) ** 2) / half ** 2
    level = 1 + rng.uniform(0.01, 0.04) * fractal_noise(size, rng, 4.5)
    level -= rng.uniform(0.0, 0.08) * r2
    a = rng.uniform(0, 2 * np.pi)
    level += rng.uniform(0, 0.05) * (x * math.cos(a) + y * math.sin(a)) / size
    level *= _dust_donuts(size, rng)
    level *= _amplifier_gains(size, rng, 0.004)
    if det.family == "ir" or rng.random() < 0.3:
        streaks = fractal_noise(size, rng, 1.5, stretch=6, angle=rng.uniform(0, math.pi))
        level *= 1 + 0.01 * streaks
    grain = rng.standard_normal((size, size), np.float32) * rng.uniform(0.002, 0.006)
    return level + grain


def _dust_donuts(size: int, rng) -> np.ndarray:
    """Out-of-focus shadows of dust specks: faint rings with a darker rim."""
    x, y = pixel_grid(size)
    shadow = np.ones((size, size), np.float32)
    for _ in range(rng.integers(4, 40)):
        radius = rng.uniform(2, 14) * size / 512
        cx, cy = rng.uniform(0, size, 2)
        half = int(radius * 1.6) + 2
        x0, x1 = max(int(cx) - half, 0), min(int(cx) + half, size)
        y0, y1 = max(int(cy) - half, 0), min(int(cy) + half, size)
        if x0 >= x1 or y0 >= y1:
            continue
        r = np.hypot(x[y0:y1, x0:x1] - cx, y[y0:y1, x0:x1] - cy)
        depth = rng.uniform(0.01, 0.07)
        rim = np.exp(-((r - radius) / (0.2 * radius + 0.5)) ** 2)
        inside = 0.45 * (1 - smoothstep((r - radius) / 1.0))
        shadow[y0:y1, x0:x1] *= 1 - depth * (rim + inside)
    return shadow


def _amplifier_gains(size: int, rng, spread: float) -> np.ndarray:
    """Four readout amplifiers, one per quadrant, never quite matched."""
    gains = (1 + rng.normal(0, spread, (2, 2))).astype(np.float32)
    half = size // 2
    return np.repeat(np.repeat(gains, [half, size - half], axis=0), [half, size - half], axis=1)


def _dark(det: Detector, exposure, size: int, rng) -> np.ndarray:
    """Dark current in noise units: hot pixels, cosmic rays, amplifier glow, striping."""
    frame = rng.standard_normal((size, size), np.float32)
    frame += _amp_glow(size, rng, rng.uniform(2, 40) if det.family == "ir" else rng.uniform(0, 6))
    frame += _striping(size, rng)
    exptime = max(exposure.exptime, 300.0)
    hot = rng.poisson(size * size * rng.uniform(5e-4, 8e-3))
    rows, cols = rng.integers(0, size, hot), rng.integers(0, size, hot)
    frame[rows, cols] += 10 ** rng.uniform(0.6, 2.8, hot).astype(np.float32)
    if det.family == "ccd":
        blemish.add_cosmic_rays(frame, rng, exptime * 3, 1.0)
    return frame


def _bias(det: Detector, size: int, rng) -> np.ndarray:
    """A zero-second readout: read noise, bias striping and column structure."""
    frame = rng.standard_normal((size, size), np.float32)
    frame += _striping(size, rng) * 2
    columns = rng.standard_normal(size, np.float32) * rng.uniform(0.1, 0.6)
    return frame + columns[None, :] + _amp_offsets(size, rng)


def _amp_offsets(size: int, rng) -> np.ndarray:
    return (_amplifier_gains(size, rng, 1.0) - 1) * 0.8


def _amp_glow(size: int, rng, strength: float) -> np.ndarray:
    """Light from the readout amplifiers, brightest in the detector corners."""
    x, y = pixel_grid(size)
    glow = np.zeros((size, size), np.float32)
    scale = size * rng.uniform(0.04, 0.12)
    for cx, cy in ((0, 0), (size, 0), (0, size), (size, size)):
        glow += np.exp(-np.hypot(x - cx, y - cy) / scale)
    return glow * strength


def _striping(size: int, rng) -> np.ndarray:
    """Row-to-row bias jitter ("striping") of CCD readouts."""
    rows = rng.standard_normal(size, np.float32) * rng.uniform(0.05, 0.5)
    return np.repeat(rows[:, None], size, axis=1)


def _cut_chip_gaps(frame: np.ndarray, det: Detector, size: int) -> None:
    """Raw multi-chip frames show each chip; the gap between them stays empty."""
    width = max(2, int(size * 0.012))
    mid = size // 2
    if det.layout == "two_chip":
        frame[mid - width // 2: mid + width - width // 2, :] = np.nan
    elif det.layout in ("wfpc2", "quad"):
        frame[mid - 1: mid + 1, :] = np.nan
        frame[:, mid - 1: mid + 1] = np.nan
