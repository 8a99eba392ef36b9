"""Drawing primitives the scenes are composed of.

Scenes draw in relative surface-brightness units on a square float32 image, in preview
pixels, before any telescope effect: the detector model (:mod:`.render`) later scales to
electrons, convolves with the PSF and adds noise. Everything is vectorised numpy because
a few thousand previews must render in a couple of minutes; small objects are drawn in
stamps, point-like ones are deposited with sub-pixel (bilinear) weights so that stars do
not all sit on pixel centres.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = [
    "Canvas",
    "fft_blur",
    "fractal_noise",
    "gaussian",
    "pixel_grid",
    "sersic",
    "shell_profile",
    "smoothstep",
    "power_law_fluxes",
]


@lru_cache(maxsize=8)
def pixel_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    x.flags.writeable = False
    y.flags.writeable = False
    return x, y


@lru_cache(maxsize=8)
def _freq(size: int) -> tuple[np.ndarray, np.ndarray]:
    ky = np.fft.fftfreq(size).astype(np.float32)[:, None]
    kx = np.fft.rfftfreq(size).astype(np.float32)[None, :]
    return kx, ky


class Canvas:
    """A sky image being drawn, with its coordinate grids and a random generator.

    Point sources deposited with ``blur`` go to a layer that is smoothed once at the
    end, so hundreds of small knots cost one FFT instead of hundreds of stamps.
    ``bright_stars`` remembers where the brightest point sources are, for the detector
    model's saturation trails.
    """

    def __init__(self, size: int, rng: np.random.Generator):
        self.size = size
        self.rng = rng
        self.image = np.zeros((size, size), np.float32)
        self._layers: dict[float, np.ndarray] = {}
        self.bright_stars: list[tuple[float, float, float]] = []

    @property
    def xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Pixel-centre coordinates (column, row) of the whole image."""
        return pixel_grid(self.size)

    def frame(self, cx, cy, pa, q=1.0, *, grid=None):
        """Coordinates along and across an ellipse's major axis (across scaled by 1/q)."""
        x, y = grid if grid is not None else self.xy
        c, s = np.float32(np.cos(pa)), np.float32(np.sin(pa))
        dx, dy = x - np.float32(cx), y - np.float32(cy)
        return dx * c + dy * s, (dy * c - dx * s) / np.float32(q)

    def radius(self, cx, cy, pa=0.0, q=1.0, *, grid=None) -> np.ndarray:
        u, v = self.frame(cx, cy, pa, q, grid=grid)
        return np.sqrt(u * u + v * v)

    def stamp(self, cx, cy, half):
        """Slices and coordinate grids of the part of a box around (cx, cy) on the image."""
        x0, x1 = max(int(cx - half), 0), min(int(cx + half) + 2, self.size)
        y0, y1 = max(int(cy - half), 0), min(int(cy + half) + 2, self.size)
        if x0 >= x1 or y0 >= y1:
            return None
        x, y = self.xy
        sl = (slice(y0, y1), slice(x0, x1))
        return sl, (x[sl], y[sl])

    def add_points(self, x, y, flux, *, blur: float = 0.0, bright: float = np.inf):
        """Deposit point sources; ``blur`` > 0 smooths them into knots of that sigma."""
        x, y, flux = (np.atleast_1d(np.asarray(a, np.float64)) for a in (x, y, flux))
        target = self.image if blur <= 0 else self._layer(blur)
        deposit(target, x, y, flux)
        if np.isfinite(bright):
            keep = flux > bright
            self.bright_stars.extend(zip(x[keep], y[keep], flux[keep]))

    def add_segments(self, x0, y0, x1, y1, flux, *, samples: int = 24, blur: float = 0.0):
        """Deposit straight streaks (trailed stars, jets, tails) of total ``flux``."""
        t = (np.arange(samples) + 0.5) / samples
        x0, y0, x1, y1, flux = (np.atleast_1d(np.asarray(a, np.float64))[:, None]
                                for a in (x0, y0, x1, y1, flux))
        xs = x0 + (x1 - x0) * t
        ys = y0 + (y1 - y0) * t
        self.add_points(xs.ravel(), ys.ravel(), np.broadcast_to(flux / samples, xs.shape).ravel(),
                        blur=blur)

    def _layer(self, blur: float) -> np.ndarray:
        key = round(float(blur), 1)
        if key not in self._layers:
            self._layers[key] = np.zeros((self.size, self.size), np.float32)
        return self._layers[key]

    def finish(self) -> np.ndarray:
        """The image with all blurred layers folded in."""
        for sigma, layer in sorted(self._layers.items()):
            self.image += fft_blur(layer, sigma)
        self._layers.clear()
        return self.image


def deposit(image: np.ndarray, x, y, flux) -> None:
    """Add fluxes at sub-pixel positions, split over the four nearest pixels."""
    size = image.shape[0]
    ok = (x > -0.5) & (x < size - 0.5) & (y > -0.5) & (y < size - 0.5) & (flux != 0)
    x, y, flux = x[ok], y[ok], flux[ok]
    if x.size == 0:
        return
    ix, iy = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - ix, y - iy
    flat = image.reshape(-1)
    for ox, oy, w in ((0, 0, (1 - fx) * (1 - fy)), (1, 0, fx * (1 - fy)),
                      (0, 1, (1 - fx) * fy), (1, 1, fx * fy)):
        jx, jy = ix + ox, iy + oy
        inside = (jx >= 0) & (jx < size) & (jy >= 0) & (jy < size)
        idx = jy[inside] * size + jx[inside]
        flat += np.bincount(idx, weights=(flux * w)[inside], minlength=size * size).astype(
            np.float32)


def sersic(r: np.ndarray, re: float, n: float) -> np.ndarray:
    """Sersic profile normalised to 1 at the effective radius: n=1 disks, n=4 bulges."""
    b = 2.0 * n - 1.0 / 3.0 + 0.009876 / n
    scaled = np.power(r * np.float32(1.0 / re) + np.float32(1e-4), np.float32(1.0 / n))
    return np.exp(np.float32(b) * (1.0 - scaled))


def shell_profile(r: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """Projected emission of a uniform spherical shell: bright limb, fainter middle."""
    outer = np.sqrt(np.maximum(np.float32(r_out * r_out) - r * r, 0))
    inner = np.sqrt(np.maximum(np.float32(r_in * r_in) - r * r, 0))
    return (outer - inner) / np.float32(max(r_out, 1e-3))


def gaussian(x: np.ndarray, width: float) -> np.ndarray:
    """exp(-(x/width)^2): the soft profile of rings, lanes, jets and bands."""
    return np.exp(-np.square(x * (1.0 / width)))


def smoothstep(x: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, smooth between: soft edges for masks."""
    t = np.clip(x, 0, 1)
    return t * t * (3 - 2 * t)


def fft_blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur with periodic edges (cheap; layers are faint at the edges)."""
    if sigma <= 0:
        return image
    kx, ky = _freq(image.shape[0])
    transfer = np.exp(np.float32(-2 * np.pi ** 2 * sigma ** 2) * (kx * kx + ky * ky))
    return np.fft.irfft2(np.fft.rfft2(image) * transfer, s=image.shape).astype(np.float32)


def fractal_noise(size: int, rng: np.random.Generator, beta: float = 3.0, *,
                  stretch: float = 1.0, angle: float = 0.0, smallest: float = 0.0) -> np.ndarray:
    """Gaussian random field with a power-law spectrum: clouds, dust, turbulence.

    ``beta`` near 2 gives grainy structure, near 4 smooth billows; ``stretch`` > 1
    elongates the structures along ``angle`` (filaments, zonal bands); ``smallest``
    (pixels) suppresses structure finer than that. Zero mean, unit variance.
    """
    kx, ky = _freq(size)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    k_along = kx * c + ky * s
    k_across = ky * c - kx * s
    k2 = (k_along * np.float32(stretch)) ** 2 + k_across ** 2 + np.float32(1.0 / size ** 2)
    amplitude = k2 ** np.float32(-beta / 4.0)
    if smallest > 0:
        amplitude *= np.exp(np.float32(-(np.pi * smallest) ** 2) * (kx * kx + ky * ky))
    shape = amplitude.shape
    spectrum = (rng.standard_normal(shape, np.float32)
                + 1j * rng.standard_normal(shape, np.float32)) * amplitude
    field = np.fft.irfft2(spectrum, s=(size, size)).astype(np.float32)
    field -= field.mean()
    return field / np.float32(field.std() + 1e-12)


def power_law_fluxes(rng: np.random.Generator, n: int, faintest: float, slope: float,
                     brightest: float) -> np.ndarray:
    """Fluxes with many faint and few bright members, like a luminosity function."""
    u = rng.random(n)
    fluxes = faintest * (1.0 - u) ** (-1.0 / slope)
    return np.minimum(fluxes, brightest)
