"""Display stretches: how a float image becomes the 8-bit preview a person looks at.

MAST previews compress a huge dynamic range with an asinh (log-like) stretch so that
faint nebulosity and saturated stars both show, with the noise of the sky a dark grain
just above black; pixels without data are black. Flat fields only vary by a few per
cent, so they are shown with a linear stretch between percentiles instead.
"""

from __future__ import annotations

import numpy as np

__all__ = ["asinh_stretch", "linear_stretch"]


def asinh_stretch(image: np.ndarray, *, soft: float = 4.0,
                  soft_fraction: float = 0.0) -> np.ndarray:
    """8-bit asinh stretch of a sky-subtracted image in units of the sky noise.

    Below ``soft`` noise units the stretch is linear, above it logarithmic: a few sigma
    keeps the sky a dark grain. ``soft_fraction`` > 0 instead sets the linear range as
    a fraction of the image's range, for bright extended targets such as planets
    whose detail would otherwise saturate.
    """
    valid = np.isfinite(image)
    values = image[valid]
    if values.size == 0:
        return np.zeros(image.shape, np.uint8)
    sample = values[:: max(1, values.size // 40000)]
    lo, hi = np.percentile(sample, [5, 99.85])
    lo = min(lo, -1.0) * 0.9
    hi = max(hi, lo + 25.0)
    if soft_fraction > 0:
        soft = soft_fraction * (hi - lo)
    scaled = np.arcsinh((np.clip(image, lo, None) - lo) / soft) / np.arcsinh((hi - lo) / soft)
    out = np.clip(np.nan_to_num(scaled, nan=0.0) * 255 + 0.5, 0, 255).astype(np.uint8)
    out[~valid] = 0
    return out


def linear_stretch(image: np.ndarray) -> np.ndarray:
    """8-bit linear stretch between the 0.3 and 99.7 percentiles."""
    valid = np.isfinite(image)
    lo, hi = np.percentile(image[valid][::7], [0.3, 99.7])
    scaled = (np.nan_to_num(image, nan=lo) - lo) / max(hi - lo, 1e-6)
    out = np.clip(scaled * 235 + 10, 0, 255).astype(np.uint8)
    out[~valid] = 0
    return out
