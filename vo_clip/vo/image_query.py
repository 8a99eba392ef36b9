"""Query by image: an uploaded PNG, JPEG or FITS image ranks the observations.

The upload is decoded here (FITS images are stretched to 8 bits: percentile limits,
then an asinh stretch; 8-bit FITS images are taken as they are), embedded by the
model's image tower, and ranked with the same ADQL and executor as a text query: the
query below names the upload as the text ``'uploaded image'`` and the executor is
handed its vector, so filters, columns and limits behave exactly as in TAP.

An upload is untrusted input to two decoders: its size in pixels is read from its
header and checked against ``image_max_pixels`` before any pixel is decoded (a
tile-compressed FITS file of 135 kB can hold 512 MB of pixels), and whatever else the
decoders raise on a damaged or hostile file is the upload's error, never ours.
"""

from __future__ import annotations

import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .faults import LimitFault, UsageFault
from .limits import TapLimits
from .ranked import adql_string, ranked_adql

__all__ = ["MAX_IMAGE_BYTES", "MAX_PIXELS", "UPLOAD_KEY", "ImageQuery", "read_query_image"]

#: Largest upload accepted (the HTTP layer refuses larger bodies before reading them).
MAX_IMAGE_BYTES = 20 * 1024 * 1024
#: Largest image decoded by default, in pixels (``TapLimits.image_max_pixels``).
MAX_PIXELS = TapLimits.image_max_pixels
#: BITPIX values of FITS 4.0 §4.4.1.1.
_BITPIX = {8, 16, 32, 64, -32, -64}
#: The similarity argument that stands for the uploaded image in the generated ADQL.
UPLOAD_KEY = "uploaded image"


def read_query_image(data: bytes, name: str = "upload", *,
                     max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The uploaded bytes as an RGB image.

    Raises
    ------
    UsageFault
        If the bytes are not a PNG, JPEG or FITS image.
    LimitFault
        If the image has more than ``max_pixels`` pixels (``image_max_pixels``).
    """
    if not data:
        raise UsageFault("the uploaded image is empty", parameter="IMAGE")
    if data[:9] == b"SIMPLE  =":
        return _fits_image(data, name, max_pixels)
    try:
        with warnings.catch_warnings():
            # Pillow warns of images above its own limit; ours is checked just below
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
        with image:
            if image.format not in ("PNG", "JPEG"):
                raise UsageFault(f"{name} is a {image.format} image; upload PNG, JPEG or "
                                 "FITS", parameter="IMAGE")
            _check_size(image.width * image.height, f"{image.width}x{image.height}", name,
                        max_pixels)
            return image.convert("RGB")
    except UsageFault:
        raise
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on hostile files
        # (UnidentifiedImageError, OSError, DecompressionBombError, and ValueError for a
        # text chunk that inflates past PngImagePlugin.MAX_TEXT_CHUNK, SyntaxError...)
        raise UsageFault(f"{name} is not a PNG, JPEG or FITS image",
                         parameter="IMAGE") from None


def _check_size(pixels: int, shape: str, name: str, max_pixels: int) -> None:
    if pixels > max_pixels:
        raise LimitFault(f"{name} is {shape} pixels; the limit (image_max_pixels) is "
                         f"{max_pixels:,} pixels", "upload a smaller image",
                         limit="image_max_pixels", parameter="IMAGE")


def _fits_image(data: bytes, name: str, max_pixels: int) -> Image.Image:
    from astropy.io import fits
    from astropy.io.fits.verify import VerifyWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", VerifyWarning)  # a damaged file is an error
            hdus = fits.open(io.BytesIO(data), memmap=False)
            with hdus:
                hdu = _image_hdu(hdus, name, max_pixels)
                pixels = np.array(hdu.data)
    except UsageFault:
        raise
    except Exception:  # noqa: BLE001 - astropy raises many kinds on hostile headers
        # (OSError, ValueError, TypeError, KeyError for a missing NAXISn, OverflowError
        # for axes whose product does not fit in 64 bits, VerifyWarning...)
        raise UsageFault(f"{name} is not a readable FITS file", parameter="IMAGE") from None
    while pixels.ndim > 2:
        pixels = pixels[0]
    # An 8-bit image (BITPIX 8) is already display values, like a preview: keep them.
    display = pixels if pixels.dtype == np.uint8 else _stretch(pixels.astype(np.float64))
    return Image.fromarray(np.ascontiguousarray(display[::-1]), mode="L").convert("RGB")


def _image_hdu(hdus, name: str, max_pixels: int):
    """The first HDU whose header describes an image of 2 axes or more, checked against
    ``max_pixels`` from its header alone (a compressed HDU's header describes the
    image it decompresses to)."""
    from astropy.io import fits

    for hdu in hdus:
        if not isinstance(hdu, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
            continue  # tables
        header = hdu.header
        naxis = header.get("NAXIS", 0)
        if not isinstance(naxis, int) or not 0 <= naxis <= 999:
            raise UsageFault(f"{name}: NAXIS must be an integer from 0 to 999, not "
                             f"{naxis!r}", parameter="IMAGE")
        if naxis < 2:
            continue
        axes = [header.get(f"NAXIS{i}") for i in range(1, naxis + 1)]
        if not all(isinstance(n, int) and n >= 0 for n in axes):
            raise UsageFault(f"{name}: NAXIS1 to NAXIS{naxis} must be integers ≥ 0",
                             parameter="IMAGE")
        if header.get("BITPIX") not in _BITPIX:
            raise UsageFault(f"{name}: BITPIX {header.get('BITPIX')!r} is not one of "
                             f"{sorted(_BITPIX)}", parameter="IMAGE")
        if 0 in axes:
            continue
        _check_size(math.prod(axes), "x".join(map(str, axes)), name, max_pixels)
        return hdu
    raise UsageFault(f"{name} has no image HDU", parameter="IMAGE")


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
