"""Query by image: an uploaded PNG, JPEG or FITS image ranks the observations.

The upload is decoded here (FITS images are stretched to 8 bits: percentile limits,
then an asinh stretch; 8-bit FITS images are taken as they are), embedded by the
model's image tower, and ranked with the same ADQL and executor as a text query: the
query below names the upload as the text ``'uploaded image'`` and the executor is
handed its vector, so filters, columns and limits behave exactly as in TAP.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from .faults import UsageFault
from .ranked import adql_string, ranked_adql

__all__ = ["MAX_IMAGE_BYTES", "MAX_PIXELS", "UPLOAD_KEY", "ImageQuery", "read_query_image"]

#: Largest upload accepted (the HTTP layer refuses larger bodies before reading them).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Largest image decoded, in pixels (a decompression bomb stops here).
MAX_PIXELS = 40_000_000
#: The similarity argument that stands for the uploaded image in the generated ADQL.
UPLOAD_KEY = "uploaded image"


def read_query_image(data: bytes, name: str = "upload") -> Image.Image:
    """The uploaded bytes as an RGB image.

    Raises
    ------
    UsageFault
        If the bytes are not a PNG, JPEG or FITS image, or the image is too large.
    """
    if not data:
        raise UsageFault("the uploaded image is empty", parameter="IMAGE")
    if data[:9] == b"SIMPLE  =":
        return _fits_image(data, name)
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.format not in ("PNG", "JPEG"):
                raise UsageFault(f"{name} is a {image.format} image; upload PNG, JPEG or "
                                 "FITS", parameter="IMAGE")
            _check_size(image.width, image.height, name)
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise UsageFault(f"{name} is not a PNG, JPEG or FITS image",
                         parameter="IMAGE") from None


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_PIXELS:
        raise UsageFault(f"{name} is {width}x{height} pixels; the limit is "
                         f"{MAX_PIXELS:,} pixels", parameter="IMAGE")


def _fits_image(data: bytes, name: str) -> Image.Image:
    import warnings

    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", VerifyWarning)  # a damaged file is an error
            hdus = fits.open(io.BytesIO(data), memmap=False)
        with hdus:
            hdu = next((h for h in hdus if getattr(h, "data", None) is not None
                        and h.data.ndim >= 2), None)
            if hdu is None:
                raise UsageFault(f"{name} has no image HDU", parameter="IMAGE")
            pixels = np.array(hdu.data)
    except (OSError, ValueError, TypeError, VerifyWarning):
        raise UsageFault(f"{name} is not a readable FITS file", parameter="IMAGE") from None
    while pixels.ndim > 2:
        pixels = pixels[0]
    _check_size(pixels.shape[1], pixels.shape[0], name)
    # An 8-bit image (BITPIX 8) is already display values, like a preview: keep them.
    display = pixels if pixels.dtype == np.uint8 else _stretch(pixels.astype(np.float64))
    return Image.fromarray(np.ascontiguousarray(display[::-1]), mode="L").convert("RGB")


def _stretch(pixels: np.ndarray) -> np.ndarray:
    """8-bit display values: 0.5–99.5 percentile limits, then asinh; NaN is black.

    ``AsinhStretch(a=0.1)`` is ``asinh(10 x) / asinh(10)``: close to linear over the
    faintest tenth of the range, logarithmic above, so faint structure and bright
    stars both show, as in the archive's asinh-stretched previews.
    """
    from astropy.visualization import AsinhStretch, PercentileInterval

    if not np.isfinite(pixels).any():
        return np.zeros(pixels.shape, dtype=np.uint8)
    display = (AsinhStretch(a=0.1) + PercentileInterval(99.0))(pixels)
    return np.round(255 * np.nan_to_num(display, nan=0.0)).astype(np.uint8)


@dataclass(frozen=True)
class ImageQuery:
    """The constraints an image (or page) search may add, validated."""

    top: int = 50
    instrument: str | None = None
    t_min: float | None = None
    t_max: float | None = None
    cone: tuple[float, float, float] | None = None

    @classmethod
    def from_params(cls, params) -> "ImageQuery":
        """From request parameters TOP, INSTRUMENT, TMIN, TMAX, RA, DEC, RADIUS.

        Raises
        ------
        UsageFault
            Naming the parameter that is not a number or is out of range.
        """
        top = int(_number(params, "TOP", 50))
        if not 1 <= top <= 1000:
            raise UsageFault(f"TOP must be between 1 and 1000, not {top}", parameter="TOP")
        cone_values = [_number(params, name, None) for name in ("RA", "DEC", "RADIUS")]
        cone = None
        if any(v is not None for v in cone_values):
            if any(v is None for v in cone_values):
                raise UsageFault("a cone needs RA, DEC and RADIUS", parameter="RADIUS")
            ra, dec, radius = cone_values
            if not (-90 <= dec <= 90 and 0 < radius <= 180):
                raise UsageFault("DEC must be within ±90 and RADIUS within (0, 180] degrees",
                                 parameter="RADIUS")
            cone = (ra % 360, dec, radius)
        instrument = (params.get("INSTRUMENT") or "").strip() or None
        return cls(top, instrument, _number(params, "TMIN", None),
                   _number(params, "TMAX", None), cone)

    def adql(self, key: str = UPLOAD_KEY) -> str:
        """The ranked query; ``key`` is the similarity argument standing for the image."""
        where = []
        if self.instrument:
            prefix = self.instrument.replace("%", "") + "%"
            where.append(f"o.instrument_name LIKE {adql_string(prefix)}")
        if self.t_min is not None:
            where.append(f"o.t_min >= {self.t_min!r}")
        if self.t_max is not None:
            where.append(f"o.t_min <= {self.t_max!r}")
        if self.cone:
            ra, dec, radius = self.cone
            where.append("1 = CONTAINS(POINT('ICRS', o.s_ra, o.s_dec), "
                         f"CIRCLE('ICRS', {ra!r}, {dec!r}, {radius!r}))")
        similarity = f"vo_clip_similarity(o.obs_publisher_did, {adql_string(key)})"
        return ranked_adql(similarity, self.top, where)


def _number(params, name: str, default):
    value = params.get(name)
    if value is None or not str(value).strip():
        return default
    try:
        number = float(value)
    except ValueError:
        raise UsageFault(f"{name} must be a number, not {value!r}", parameter=name) from None
    if not np.isfinite(number):
        raise UsageFault(f"{name} must be finite, not {value!r}", parameter=name)
    return number
