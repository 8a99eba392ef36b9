"""An observation's preview as a FITS image with a celestial WCS, made on request.

Sky viewers such as Aladin (desktop and Lite) place an image on the sky only when it
carries a celestial World Coordinate System; a PNG preview has none. This module wraps
an archive preview into a FITS file (FITS 4.0) whose WCS follows the conventions of
Calabretta & Greisen 2002 (WCS Paper II): a gnomonic (``TAN``) projection about the
observation's catalogue position, ICRS axes, degrees.

The geometry comes from the catalogue, not from an astrometric fit. Archive previews are
drizzled onto a north-up, east-left grid that just holds the footprint, as MAST's are
and as the demo archive draws them (:mod:`vo_clip.archive.demo.footprint`): the
bounding box of the ``s_region`` polygon, projected about (``s_ra``, ``s_dec``), is
centred in the image, with a small black margin around the data. The pixel scale is
therefore the footprint's extent over the width of the preview's data, measured from
that margin; without a polygon it is ``s_fov`` over the image width, and without either
it is :data:`DEFAULT_FIELD_DEG` over the width, said so in the header. Internal
calibration exposures (:data:`INTERNAL_TARGETS`) show the raw detector frame instead,
unrotated and filling the image: their WCS is rotated onto the footprint polygon, whose
first edge runs along the detector's first axis.

The header is honest about what the file is: an 8-bit display preview copied pixel for
pixel, not calibrated science data. Output bytes depend on the inputs only (no creation
date, no checksum timestamps), so the service can give them an ETag.
"""

from __future__ import annotations

import io
import math
import textwrap
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS
from PIL import Image

__all__ = ["DEFAULT_FIELD_DEG", "INTERNAL_TARGETS", "NOMINAL_MARGIN", "preview_fits"]

#: Field across the image width (degrees) assumed when a row has neither ``s_region``
#: nor ``s_fov``: ACS/WFC's 202 arcsec, the most common HST imager field.
DEFAULT_FIELD_DEG = 202.0 / 3600.0

#: Black margin around the footprint (fraction of its extent) assumed when the preview's
#: own margin cannot be measured: the demo archive's default.
NOMINAL_MARGIN = 0.04

#: Target names of internal calibration exposures, whose previews show the raw detector.
INTERNAL_TARGETS = frozenset({"BIAS", "DARK", "INTFLAT", "TUNGSTEN", "DEUTERIUM", "KSPOTS",
                              "WAVE", "INTERNAL"})

#: Longest string value written; longer ones are cut and the cut is said in a COMMENT.
_MAX_STRING = 240

#: How far (fraction of the image) the preview's data may sit off centre and still count.
_CENTRE_TOLERANCE = 0.1

_ROW_KEYS = ("obs_id", "s_ra", "s_dec", "s_fov", "s_region", "target_name", "instrument_name",
             "facility_name", "obs_collection", "filters", "t_min", "t_max", "t_exptime",
             "proposal_id", "obs_publisher_did", "calib_level", "product_url")


@dataclass(frozen=True)
class _Placement:
    """Where the preview sits on the sky: a TAN projection and how it was derived."""

    ra: float
    dec: float
    crpix: tuple[float, float]
    cdelt: tuple[float, float]
    pc: tuple[tuple[float, float], tuple[float, float]] | None
    how: str


# --------------------------------------------------------------------------- public


def preview_fits(preview: Path, row: Mapping[str, object], *, notes=()) -> bytes:
    """The FITS image of an observation's preview, with a celestial WCS and honest header.

    Parameters
    ----------
    preview : Path
        The preview image (PNG or anything Pillow reads); colour is reduced to
        luminance (ITU-R 601-2), 16-bit and float images keep their values.
    row : Mapping
        The observation's catalogue values (``obs_id``, ``s_ra``, ``s_dec``, ``s_fov``,
        ``s_region``, ``target_name``, ``instrument_name``, ``facility_name``,
        ``filters``, ``t_min``, ``t_max``, ``t_exptime``, ``proposal_id``,
        ``obs_publisher_did``, ``calib_level``, ``product_url``...). Any may be missing,
        None, masked, NaN or empty except ``obs_id``.
    notes : sequence of str, optional
        Further COMMENT lines, e.g. that the archive is synthetic (the row cannot say).

    Returns
    -------
    bytes
        A single-HDU FITS file: ``uint8`` (or ``float32``) pixels with FITS row 1 at the
        bottom of the preview, a ``RA---TAN``/``DEC--TAN`` WCS when the row has a
        position, and ORIGIN, TELESCOP, INSTRUME, FILTER, OBJECT, DATE-OBS, EXPTIME,
        OBS_ID, PROPOSID cards where known. Identical inputs give identical bytes.

    Raises
    ------
    OSError
        If the preview cannot be read as an image.
    """
    pixels = _read_pixels(Path(preview))
    values = {key: _clean(_lookup(row, key)) for key in _ROW_KEYS}
    placement = _place(pixels, values)
    header = _header(values, placement, pixels.shape)
    for note in notes:
        header.add_comment(_ascii(str(note))[:_MAX_STRING])
    hdu = fits.PrimaryHDU(pixels, header)
    buffer = io.BytesIO()
    hdu.writeto(buffer, output_verify="exception")
    return buffer.getvalue()


# --------------------------------------------------------------------------- pixels


def _read_pixels(path: Path) -> np.ndarray:
    """The preview as a 2-D array in FITS order: first row is the bottom of the picture."""
    with Image.open(path) as image:
        image.load()
        if image.mode in ("I", "F") or image.mode.startswith("I;16"):
            data = np.asarray(image, dtype=np.float32)
        else:
            data = np.asarray(image.convert("L"))
    return np.ascontiguousarray(data[::-1])


def _data_box(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """Symmetric span and centre offset (pixels) of the non-black part of the image.

    The span on each axis is twice the distance from the image centre to the farthest
    data pixel (plus one pixel), so a black corner on one side (WFC3/IR's dead corner, a
    faint edge) does not shrink it.
    """
    cols = np.flatnonzero(pixels.any(axis=0))
    rows = np.flatnonzero(pixels.any(axis=1))
    if cols.size == 0:
        return None
    half = (np.array(pixels.shape[::-1], float) - 1) / 2
    first, last = np.array([cols[0], rows[0]], float), np.array([cols[-1], rows[-1]], float)
    span = 2 * np.maximum(half - first, last - half) + 1
    return span, (first + last) / 2 - half


# --------------------------------------------------------------------------- row values


def _lookup(row: Mapping[str, object], key: str) -> object:
    try:
        return row[key]
    except (KeyError, IndexError, ValueError):
        return None


def _clean(value: object) -> object:
    """Python scalar of a catalogue value; None for missing, masked, NaN or blank."""
    if value is None or value is np.ma.masked or np.ma.is_masked(value):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


def _number(values: Mapping[str, object], key: str) -> float | None:
    value = values.get(key)
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- geometry


def _place(pixels: np.ndarray, values: Mapping[str, object]) -> _Placement | None:
    """The projection of the preview, or None when the row gives no position."""
    polygon = _parse_polygon(values.get("s_region"))
    centre = _centre(values, polygon)
    if centre is None:
        return None
    offsets = _tangent_offsets(centre, polygon) if polygon else None
    if offsets is not None and _is_internal(values):
        placed = _detector_frame(centre, pixels.shape, offsets)
        if placed is not None:
            return placed
    if offsets is not None:
        placed = _north_up_on_footprint(centre, pixels, offsets)
        if placed is not None:
            return placed
    return _north_up_on_field(centre, pixels.shape, _number(values, "s_fov"))


def _centre(values, polygon) -> tuple[float, float] | None:
    """(s_ra, s_dec), or the centroid of the footprint polygon when they are missing."""
    ra, dec = _number(values, "s_ra"), _number(values, "s_dec")
    if ra is not None and dec is not None and -90.0 <= dec <= 90.0:
        return ra % 360.0, dec
    if not polygon:
        return None
    vec = np.sum([_unit_vector(a, d) for a, d in polygon], axis=0)
    if np.linalg.norm(vec) == 0:
        return None
    x, y, z = vec / np.linalg.norm(vec)
    return math.degrees(math.atan2(y, x)) % 360.0, math.degrees(math.asin(z))


def _unit_vector(ra: float, dec: float) -> np.ndarray:
    a, d = math.radians(ra), math.radians(dec)
    return np.array([math.cos(d) * math.cos(a), math.cos(d) * math.sin(a), math.sin(d)])


def _parse_polygon(text: object) -> list[tuple[float, float]] | None:
    """Vertices of an STC-S ``Polygon [frame] ra dec ...`` (all polygons of a union)."""
    if not isinstance(text, str):
        return None
    vertices: list[tuple[float, float]] = []
    for chunk in text.lower().replace("(", " ").replace(")", " ").split("polygon")[1:]:
        numbers = []
        for token in chunk.split():
            try:
                numbers.append(float(token))
            except ValueError:
                if numbers:  # a word after the coordinates: another shape; stop here
                    break
        if len(numbers) < 6 or len(numbers) % 2:
            return None
        vertices += list(zip(numbers[::2], numbers[1::2]))
    ok = all(math.isfinite(a) and math.isfinite(d) and -90 <= d <= 90 for a, d in vertices)
    return vertices if vertices and ok else None


def _tangent_offsets(centre, polygon) -> np.ndarray | None:
    """Gnomonic (east, north) offsets in degrees of the vertices about ``centre``."""
    ra0, dec0 = np.radians(centre)
    ra, dec = np.radians(np.array(polygon, float)).T
    cos_c = (np.sin(dec0) * np.sin(dec) + np.cos(dec0) * np.cos(dec) * np.cos(ra - ra0))
    if np.any(cos_c <= 0.01):  # a vertex 90 degrees away: not a single-pointing footprint
        return None
    east = np.cos(dec) * np.sin(ra - ra0) / cos_c
    north = (np.cos(dec0) * np.sin(dec) - np.sin(dec0) * np.cos(dec) * np.cos(ra - ra0)) / cos_c
    offsets = np.degrees(np.column_stack([east, north]))
    extent = offsets.max(axis=0) - offsets.min(axis=0)
    return offsets if np.all(extent > 0) else None


def _north_up_on_footprint(centre, pixels: np.ndarray, offsets: np.ndarray):
    """North-up preview whose data box is the footprint's bounding box, centred."""
    rows, cols = pixels.shape
    lo, hi = offsets.min(axis=0), offsets.max(axis=0)
    extent, middle = hi - lo, (hi + lo) / 2
    measured = _measured_span(pixels, extent)
    if measured is not None:
        axis = int(np.argmax(extent))
        scale = extent[axis] / measured[axis]
        how = (f"scale from the s_region extent over the preview's data "
               f"({measured[axis]:.0f} pixels across)")
    else:
        scale = max(extent[0] / cols, extent[1] / rows) * (1 + NOMINAL_MARGIN)
        how = f"scale from the s_region extent with an assumed {NOMINAL_MARGIN:.0%} margin"
    crpix = ((cols + 1) / 2 + middle[0] / scale, (rows + 1) / 2 - middle[1] / scale)
    return _Placement(*centre, crpix, (-scale, scale), None, "north up, east left; " + how)


def _measured_span(pixels: np.ndarray, extent: np.ndarray) -> np.ndarray | None:
    """Width and height (pixels) of the preview's data if it looks like the footprint.

    The data must sit about the image centre, leave a black margin on the footprint's
    longer axis, and have the footprint's aspect ratio; otherwise None.
    """
    box = _data_box(pixels)
    if box is None:
        return None
    span, offset = box
    size = np.array(pixels.shape[::-1], float)
    if np.any(np.abs(offset) > _CENTRE_TOLERANCE * size) or np.any(span < 16):
        return None
    axis = int(np.argmax(extent))
    if span[axis] >= size[axis]:
        return None
    predicted_other = span[axis] * extent[1 - axis] / extent[axis]
    if abs(predicted_other - span[1 - axis]) > 0.02 * span[axis] + 2:
        return None
    return span


def _north_up_on_field(centre, shape, fov: float | None) -> _Placement:
    """North-up preview centred on the position, ``s_fov`` (or the default) across it."""
    rows, cols = shape
    if fov is not None and fov > 0:
        scale, how = fov / cols, "scale from s_fov over the image width"
    else:
        scale = DEFAULT_FIELD_DEG / cols
        how = (f"no s_fov or s_region: scale assumes the default field of "
               f"{DEFAULT_FIELD_DEG * 3600:.0f} arcsec across the image")
    crpix = ((cols + 1) / 2, (rows + 1) / 2)
    return _Placement(*centre, crpix, (-scale, scale), None, "north up, east left; " + how)


def _is_internal(values: Mapping[str, object]) -> bool:
    target = values.get("target_name")
    return isinstance(target, str) and target.upper() in INTERNAL_TARGETS


def _detector_frame(centre, shape, offsets: np.ndarray) -> _Placement | None:
    """A raw detector frame filling the image, its first axis along the polygon's first edge.

    The detector's first axis runs to the left of the image and its second axis up, as
    in a north-up preview of the same detector at position angle 0.
    """
    rows, cols = shape
    edge = offsets[1] - offsets[0]
    if not np.any(edge):
        return None
    theta = math.atan2(edge[1], edge[0])
    c, s = math.cos(theta), math.sin(theta)
    u = offsets @ np.array([c, s])
    v = offsets @ np.array([-s, c])
    su, sv = (u.max() - u.min()) / cols, (v.max() - v.min()) / rows
    mid_u, mid_v = (u.max() + u.min()) / 2, (v.max() + v.min()) / 2
    crpix = ((cols + 1) / 2 + mid_u / su, (rows + 1) / 2 - mid_v / sv)
    cd = np.array([[-su * c, -sv * s], [-su * s, sv * c]])
    cdelt = (-su, sv)
    pc = cd / np.array(cdelt)[:, None]
    return _Placement(*centre, crpix, cdelt, (tuple(pc[0]), tuple(pc[1])),
                      f"raw detector frame rotated onto the s_region polygon; its first "
                      f"axis at position angle {(90 - math.degrees(theta)) % 360:.2f} deg")


def _wcs(placement: _Placement) -> WCS:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.cunit = ["deg", "deg"]
    wcs.wcs.crval = [placement.ra, placement.dec]
    wcs.wcs.crpix = list(placement.crpix)
    wcs.wcs.cdelt = list(placement.cdelt)
    if placement.pc is not None:
        wcs.wcs.pc = np.array(placement.pc)
    wcs.wcs.radesys = "ICRS"
    return wcs


# --------------------------------------------------------------------------- header


def _header(values: Mapping[str, object], placement: _Placement | None, shape) -> fits.Header:
    header = fits.Header()
    cut: list[str] = []
    _card(header, "ORIGIN", "vo_clip", "made from the archive preview by vo_clip", cut)
    for key, name, comment in (("TELESCOP", "facility_name", "telescope"),
                               ("INSTRUME", "instrument_name", "instrument"),
                               ("FILTER", "filters", "filter(s)"),
                               ("OBJECT", "target_name", "target name"),
                               ("OBS_ID", "obs_id", "ObsCore obs_id"),
                               ("PROPOSID", "proposal_id", "proposal identifier"),
                               ("OBSCOLL", "obs_collection", "ObsCore obs_collection"),
                               ("CALLEVEL", "calib_level", "ObsCore calib_level of the product")):
        _card(header, key, values.get(name), comment, cut)
    _times(header, values)
    _card(header, "PUBDID", values.get("obs_publisher_did"), "publisher dataset identifier", cut)
    _card(header, "PRODURL", values.get("product_url"), "the archive's science product", cut)
    if placement is not None:
        header.extend(_wcs(placement).to_header(), update=True)
        header["EQUINOX"] = (2000.0, "equinox of the ICRS-aligned axes")
    _comments(header, values, placement, shape, cut)
    return header


def _card(header: fits.Header, key: str, value: object, comment: str, cut: list[str]) -> None:
    """Set ``key`` unless ``value`` is missing; strings become printable ASCII, cut if long."""
    if value is None:
        return
    if isinstance(value, str):
        value = _ascii(value)
        if len(value) > _MAX_STRING:
            value = value[:_MAX_STRING]
            cut.append(key)
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
        value = _ascii(str(value))
    if isinstance(value, str) and _string_card_length(value, comment) > 80:
        comment = ""  # a value that fits one card but not with its comment: keep the value
    header[key] = (value, comment)


def _string_card_length(value: str, comment: str) -> int:
    """Length of ``KEYWORD= 'value' / comment`` on one card (FITS 4.0 section 4.2.1)."""
    quoted = max(len(value.replace("'", "''")), 8) + 2
    return 10 + max(quoted, 20) + 3 + len(comment)


def _ascii(text: str) -> str:
    """Printable ASCII only, as FITS requires: accents dropped, other characters ``?``."""
    text = "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))
    return "".join(ch if " " <= ch <= "~" else "?" for ch in text).strip()


def _times(header: fits.Header, values: Mapping[str, object]) -> None:
    """DATE-OBS/MJD-OBS and DATE-END/MJD-END from t_min/t_max, EXPTIME from t_exptime."""
    for mjd_key, date_key, name in (("MJD-OBS", "DATE-OBS", "t_min"),
                                    ("MJD-END", "DATE-END", "t_max")):
        mjd = _number(values, name)
        if mjd is None or not -1e6 < mjd < 1e6:
            continue
        header[date_key] = (Time(mjd, format="mjd", scale="utc", precision=3).isot,
                            f"UTC, from {name}")
        header[mjd_key] = (mjd, f"[d] MJD (UTC), {name}")
    if "MJD-OBS" in header:
        header["TIMESYS"] = ("UTC", "time scale of the dates")
    exptime = _number(values, "t_exptime")
    if exptime is not None:
        header["EXPTIME"] = (exptime, "[s] exposure time, t_exptime")


def _comments(header: fits.Header, values, placement, shape, cut: list[str]) -> None:
    rows, cols = shape
    lines = [
        f"This is the archive's {cols}x{rows} display preview of the observation, copied "
        "pixel for pixel into FITS with a celestial WCS so that sky viewers can overlay it.",
        "It is NOT calibrated science data: pixel values are display levels of a non-linear "
        "stretch, with no photometric calibration, no flux unit and no noise model.",
    ]
    if placement is None:
        lines.append("The catalogue gives no position for this observation: no WCS.")
    else:
        lines.append("The WCS comes from the catalogue footprint (s_ra, s_dec, s_region, "
                     "s_fov), not from an astrometric fit: expect errors of a few pixels.")
    if values.get("product_url") is not None:
        lines.append("The archive's science product is at the URL in PRODURL.")
    else:
        lines.append("The catalogue names no downloadable science product for it.")
    for key in cut:
        lines.append(f"{key} was cut to {_MAX_STRING} characters.")
    for line in lines:
        for part in textwrap.wrap(line, 70):
            header.add_comment(part)
    if placement is not None:
        for part in textwrap.wrap("WCS: " + placement.how, 70):
            header.add_history(part)
