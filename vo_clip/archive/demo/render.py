"""From a scene to an HST-looking 8-bit preview.

The pipeline follows the light: scene and field in sky units, the exposure level in
electrons, the PSF, saturation, the detector's blemishes, photon and read noise, the
footprint and its chip gap, then the asinh stretch MAST previews use and a grayscale
PNG. Every random choice comes from the one generator seeded for the observation, so a
preview depends on its seed alone, never on which worker drew it.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from . import detector as blemish
from .calibration import render_calibration
from .field import add_field
from .footprint import PreviewGeometry
from .instruments import Detector, detector
from .kinds import PROFILES
from .primitives import Canvas, pixel_grid
from .psf import PSF, convolve
from .scenes import SCENES
from .scenes.base import Look
from .stretch import asinh_stretch

__all__ = ["Exposure", "render_preview", "write_png"]

#: Spikes sit at 45 degrees to the detector axes (differs a little by camera).
_SPIKE_OFFSET = {"WFPC2": 40.0, "WFPC/WF": 40.0, "WFC3/IR": 45.0, "NICMOS/NIC2": 38.0,
                 "NICMOS/NIC3": 38.0}


@dataclass(frozen=True)
class Exposure:
    """What the preview of one observation shows and through what.

    ``variant`` names the kind of calibration exposure (``flat``, ``dark``, ``bias``).
    """

    kind: str
    detector: str
    filter: str
    angle_deg: float
    exptime: float
    cycle: int
    variant: str = ""


def render_preview(exposure: Exposure, size: int, seed) -> np.ndarray:
    """The 8-bit preview of ``exposure``, ``size`` pixels square."""
    rng = np.random.default_rng(seed)
    det = detector(exposure.detector)
    if exposure.kind == "calibration_frame":
        return render_calibration(det, exposure, size, rng)
    geometry = PreviewGeometry(det, exposure.angle_deg, size, margin=rng.uniform(0.01, 0.07))
    flt = det.filter(exposure.filter)
    fwhm = max(det.fwhm_arcsec(flt) / geometry.scale, rng.uniform(1.0, 1.7))
    look = _look(geometry, det, flt, exposure, size)
    cv = Canvas(size, rng)
    scene = SCENES[exposure.kind](cv, look)
    add_field(cv, look, scene, PROFILES[exposure.kind].sky)
    sky_units = cv.finish()
    psf = _psf(det, geometry, fwhm, rng)
    signal = convolve(sky_units, psf)
    saturation = rng.uniform(80, 400)
    if det.family == "ccd":
        peak = 1 / (2 * math.pi * (fwhm / 2.355) ** 2 + 1)  # a star's share in its top pixel
        blemish.add_bleed_trails(signal, cv.bright_stars, geometry, saturation, peak)
    np.minimum(signal, saturation, out=signal)
    observed = _observe(signal, det, geometry, exposure, rng)
    return asinh_stretch(observed, soft=rng.uniform(2.5, 10), soft_fraction=scene.display_soft)


def _look(geometry: PreviewGeometry, det: Detector, flt, exposure: Exposure, size: int) -> Look:
    width, height = det.size_arcsec
    inscribed = 0.5 * min(width, height) / geometry.scale
    if det.layout == "wfpc2":
        inscribed *= 0.7
    return Look(size=size, pivot_nm=flt.pivot_nm, narrow=flt.narrow, exptime=exposure.exptime,
                centre=geometry.aperture_pixels, radius=inscribed)


def _psf(det: Detector, geometry: PreviewGeometry, fwhm: float, rng) -> PSF:
    angle = geometry.angle + _SPIKE_OFFSET.get(det.name, 45.0) + 90.0 * rng.integers(0, 2)
    if det.aberrated:
        return PSF(fwhm, angle, spike_fraction=0.015, halo_fraction=0.55,
                   halo_radius=rng.uniform(4, 8))
    return PSF(fwhm, angle, spike_fraction=rng.uniform(0.012, 0.03),
               halo_fraction=rng.uniform(0.03, 0.08), halo_radius=rng.uniform(1.5, 3.5))


def _observe(signal, det: Detector, geometry: PreviewGeometry, exposure: Exposure, rng):
    """Electrons on the detector, blemishes and noise; returns sky-subtracted sigmas."""
    size = signal.shape[0]
    noise_in_units = np.clip(0.02 * (1000 / max(exposure.exptime, 1)) ** 0.3
                             * rng.lognormal(0, 0.3), 0.002, 0.08)
    sky = _sky_level(det, exposure, rng)
    sigma = float(np.sqrt(sky + det.read_noise ** 2 + 1.0))
    electrons = signal * np.float32(sigma / noise_in_units) + _sky_pattern(sky, sigma, size, rng)
    if det.name == "WFC3/IR":
        blemish.apply_ir_blemishes(electrons, rng, geometry, det)
    if det.family == "foc":
        blemish.apply_reseau(electrons, geometry, det)
    if det.family == "ccd":
        blemish.add_cosmic_rays(electrons, rng, exposure.exptime, sigma)
        blemish.add_hot_pixels(electrons, rng, sigma, exposure.cycle - det.cycles[0][0], geometry)
    observed = blemish.add_noise(electrons, rng, det.family, det.read_noise)
    observed = (observed - np.float32(sky)) / np.float32(sigma)
    return _apply_footprint(observed, geometry, rng)


def _sky_level(det: Detector, exposure: Exposure, rng) -> float:
    if det.family in ("mama", "foc"):
        return exposure.exptime * rng.uniform(0.002, 0.05)
    return min(exposure.exptime * rng.uniform(0.05, 0.6), 5e4)


def _sky_pattern(sky: float, sigma: float, size: int, rng):
    """Uniform sky, sometimes with a gradient of scattered earthshine across it."""
    if rng.random() > 0.15:
        return np.float32(sky)
    x, y = pixel_grid(size)
    a = rng.uniform(0, 2 * math.pi)
    ramp = (x * math.cos(a) + y * math.sin(a)) / size
    return sky + sigma * rng.uniform(0.5, 4.0) * ramp


def _apply_footprint(observed, geometry: PreviewGeometry, rng):
    """Blank outside the footprint; chips get their own bias residual; gaps stay empty."""
    x, y = pixel_grid(observed.shape[0])
    chips = geometry.chip_map(x, y)
    for chip in range(int(chips.max()) + 1):
        observed[chips == chip] += np.float32(rng.normal(0, 0.4))
    gap = chips == -2
    if gap.any() and rng.random() < 0.5:  # a dithered visit half-fills the gap
        observed[gap] += rng.standard_normal(int(gap.sum())).astype(np.float32) * 1.5
        chips = np.where(gap, 0, chips)
    observed[chips < 0] = np.nan
    return observed


def write_png(path: Path, pixels: np.ndarray) -> None:
    """Write an 8-bit grayscale PNG atomically (temporary name, then rename)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    Image.fromarray(pixels).save(tmp, format="PNG", compress_level=6)
    os.replace(tmp, path)
