"""The FITS science product made from a preview: WCS, orientation, header, determinism.

Pixel coordinates from astropy's ``pixel_to_world``/``world_to_pixel`` are 0-based: the
centre of an n-pixel axis is (n - 1) / 2 there and (n + 1) / 2 in FITS ``CRPIX``.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from astropy.coordinates import SkyCoord
from astropy.io import fits
from astropy.table import MaskedColumn, Table
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales
from PIL import Image

from vo_clip.archive.demo.footprint import PreviewGeometry, fov_diameter_deg, stcs_polygon
from vo_clip.archive.demo.instruments import detector
from vo_clip.archive.demo.primitives import pixel_grid
from vo_clip.archive.fits_product import DEFAULT_FIELD_DEG, _parse_polygon, preview_fits

SIZE = 512

ROW = {
    "obs_id": "hst_12233_01_wfc3_uvis_f656n_i9ft01",
    "s_ra": 15.7786673,
    "s_dec": -71.7867959,
    "s_fov": 0.063558,
    "s_region": None,
    "s_xel1": 5518,
    "s_xel2": 5518,
    "target_name": "DEMO-SNR-318",
    "instrument_name": "WFC3/UVIS",
    "facility_name": "HST",
    "obs_collection": "HST",
    "filters": "F656N",
    "t_min": 56721.489101,
    "t_max": 56721.52,
    "t_exptime": 2406.9,
    "proposal_id": "12233",
    "obs_publisher_did": "ivo://vo-clip.example/hst?hst_12233_01_wfc3_uvis_f656n_i9ft01",
    "calib_level": 3,
}


# --------------------------------------------------------------------------- helpers


def _png(path, pixels) -> object:
    Image.fromarray(np.asarray(pixels, np.uint8)).save(path)
    return path


@pytest.fixture
def flat_png(tmp_path):
    """A mid-grey 512-pixel preview with no black margin."""
    return _png(tmp_path / "flat.png", np.full((SIZE, SIZE), 100))


def _open(data: bytes) -> tuple[fits.PrimaryHDU, WCS]:
    hdul = fits.open(io.BytesIO(data))
    hdu = hdul[0]
    return hdu, WCS(hdu.header)


def _angle_deg(a: SkyCoord, ra: float, dec: float) -> float:
    return a.separation(SkyCoord(ra, dec, unit="deg")).deg


def _demo_like(tmp_path, name: str, angle: float, ra: float, dec: float, margin: float):
    """A preview drawn the demo archive's way (footprint lit, black outside) and its row."""
    det = detector(name)
    geometry = PreviewGeometry(det, angle, SIZE, margin=margin)
    chips = geometry.chip_map(*pixel_grid(SIZE))
    pixels = np.where(chips >= 0, 120, 0).astype(np.uint8)
    path = _png(tmp_path / f"{name.replace('/', '_')}_{angle:g}.png", pixels)
    row = dict(ROW, s_ra=ra, s_dec=dec, s_fov=fov_diameter_deg(det), instrument_name=name,
               s_region=stcs_polygon(ra, dec, det, angle))
    return path, row, geometry


def _text(header: fits.Header, key: str) -> str:
    """The COMMENT or HISTORY cards as one line of text."""
    return " ".join(str(card) for card in header[key])


def _vertices_pixels(wcs: WCS, region: str) -> tuple[np.ndarray, np.ndarray]:
    ra, dec = np.array(_parse_polygon(region)).T
    return wcs.world_to_pixel_values(ra, dec)


# --------------------------------------------------------------------------- WCS


def test_centre_scale_and_north_up_east_left(flat_png):
    hdu, wcs = _open(preview_fits(flat_png, ROW))
    assert wcs.wcs.ctype[0] == "RA---TAN" and wcs.wcs.ctype[1] == "DEC--TAN"
    assert hdu.header["RADESYS"] == "ICRS" and hdu.header["EQUINOX"] == 2000.0
    assert hdu.header["CUNIT1"] == "deg" and hdu.header["CUNIT2"] == "deg"
    assert hdu.header["CRPIX1"] == hdu.header["CRPIX2"] == (SIZE + 1) / 2
    scale = ROW["s_fov"] / SIZE
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), [scale, scale], rtol=1e-12)
    assert hdu.header["CDELT1"] < 0 < hdu.header["CDELT2"]
    middle = (SIZE - 1) / 2
    centre = wcs.pixel_to_world(middle, middle)
    assert _angle_deg(centre, ROW["s_ra"], ROW["s_dec"]) < scale
    left, right = wcs.pixel_to_world(middle - 10, middle), wcs.pixel_to_world(middle + 10, middle)
    up, down = wcs.pixel_to_world(middle, middle + 10), wcs.pixel_to_world(middle, middle - 10)
    assert left.ra.deg > centre.ra.deg > right.ra.deg  # east is to the left
    assert up.dec.deg > centre.dec.deg > down.dec.deg  # north is up (higher FITS row)


def test_data_orientation_png_top_left_is_fits_top_left(tmp_path):
    pixels = np.zeros((SIZE, SIZE), np.uint8)
    pixels[5:15, 10:20] = 255  # PNG row 0 is the top of the picture
    hdu, _ = _open(preview_fits(_png(tmp_path / "blob.png", pixels), ROW))
    rows, cols = np.nonzero(hdu.data == 255)
    assert hdu.data.dtype == np.uint8 and hdu.data.shape == (SIZE, SIZE)
    assert rows.min() == SIZE - 15 and rows.max() == SIZE - 6  # high FITS rows: the top
    assert cols.min() == 10 and cols.max() == 19  # low columns: the left
    np.testing.assert_array_equal(hdu.data[::-1], pixels)


def test_colour_preview_becomes_luminance(tmp_path):
    rgb = np.zeros((64, 48, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    path = tmp_path / "colour.png"
    Image.fromarray(rgb).save(path)
    hdu, _ = _open(preview_fits(path, ROW))
    assert hdu.data.shape == (64, 48)
    expected = Image.fromarray(rgb).convert("L").getpixel((0, 0))
    assert np.all(hdu.data == expected) and 100 < expected < 150


def test_non_square_preview_centre_and_scale(tmp_path):
    path = _png(tmp_path / "wide.png", np.full((100, 300), 7))
    hdu, wcs = _open(preview_fits(path, ROW))
    assert (hdu.header["CRPIX1"], hdu.header["CRPIX2"]) == (150.5, 50.5)
    assert _angle_deg(wcs.pixel_to_world(149.5, 49.5), ROW["s_ra"], ROW["s_dec"]) < 1e-9
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), ROW["s_fov"] / 300)


@pytest.mark.parametrize("name, angle, margin", [
    ("ACS/WFC", 0.0, 0.01), ("ACS/WFC", 33.3, 0.04), ("WFC3/UVIS", 301.7, 0.07),
    ("WFPC2", 0.0, 0.03), ("WFPC2", 127.5, 0.05), ("WFC3/IR", 75.0, 0.02),
    ("NICMOS/NIC3", 200.0, 0.06),
])
def test_footprint_scale_and_aperture_match_the_demo_rendering(tmp_path, name, angle, margin):
    """The WCS from s_region puts the aperture and the outline where the preview has them."""
    path, row, geometry = _demo_like(tmp_path, name, angle, 201.365, -43.019, margin)
    hdu, wcs = _open(preview_fits(path, row))
    true_scale = geometry.scale / 3600
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), true_scale, rtol=0.006)
    col, png_row = geometry.aperture_pixels  # 0-based, PNG rows from the top
    x, y = wcs.world_to_pixel_values(row["s_ra"], row["s_dec"])
    assert abs(x - col) < 1 and abs(y - (SIZE - 1 - png_row)) < 1
    ra, dec = np.array(_parse_polygon(row["s_region"])).T
    px, py = wcs.world_to_pixel_values(ra, dec)
    east, north = _tangent(row, ra, dec)
    tx, ty = geometry.to_pixels(east * 3600, north * 3600)
    assert np.max(np.hypot(px - tx, py - (SIZE - 1 - ty))) < 2.0
    assert "s_region extent over the preview's data" in _text(hdu.header, "HISTORY")


def _tangent(row, ra, dec):
    """Gnomonic offsets (deg) about the row's position, the demo's own projection."""
    ra0, dec0 = math.radians(row["s_ra"]), math.radians(row["s_dec"])
    ra, dec = np.radians(ra), np.radians(dec)
    cos_c = math.sin(dec0) * np.sin(dec) + math.cos(dec0) * np.cos(dec) * np.cos(ra - ra0)
    east = np.cos(dec) * np.sin(ra - ra0) / cos_c
    north = (math.cos(dec0) * np.sin(dec) - math.sin(dec0) * np.cos(dec) * np.cos(ra - ra0))
    return np.degrees(east), np.degrees(north / cos_c)


def test_footprint_without_black_margin_assumes_the_nominal_one(tmp_path, flat_png):
    det = detector("ACS/WFC")
    row = dict(ROW, s_region=stcs_polygon(ROW["s_ra"], ROW["s_dec"], det, 0.0))
    hdu, wcs = _open(preview_fits(flat_png, row))
    side = det.size_arcsec[0] / 3600
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), side * 1.04 / SIZE, rtol=1e-4)
    assert "assumed 4% margin" in _text(hdu.header, "HISTORY")


@pytest.mark.parametrize("angle", [0.0, 62.0, 147.25])
@pytest.mark.parametrize("name", ["ACS/WFC", "WFPC2"])
def test_internal_calibration_frame_fills_its_rotated_footprint(flat_png, name, angle):
    """A raw detector frame: the outline's extremes sit on the image edges, rotated."""
    det = detector(name)
    row = dict(ROW, target_name="DARK", calib_level=2,
               s_region=stcs_polygon(ROW["s_ra"], ROW["s_dec"], det, angle))
    hdu, wcs = _open(preview_fits(flat_png, row))
    px, py = _vertices_pixels(wcs, row["s_region"])
    lo, hi = -0.5, SIZE - 0.5
    assert max(abs(px.min() - lo), abs(px.max() - hi), abs(py.min() - lo),
               abs(py.max() - hi)) < 0.01
    assert np.linalg.det(wcs.wcs.get_pc() * wcs.wcs.cdelt[:, None]) < 0  # sky parity
    middle = (SIZE - 1) / 2
    assert _angle_deg(wcs.pixel_to_world(middle, middle), ROW["s_ra"], ROW["s_dec"]) < 1e-7
    assert "raw detector frame" in _text(hdu.header, "HISTORY")


# --------------------------------------------------------------------------- header


def test_header_is_honest_and_complete(flat_png):
    url = "https://archive.example.org/products/" + ROW["obs_id"] + "_drz.fits"
    header = _open(preview_fits(flat_png, dict(ROW, product_url=url)))[0].header
    assert header["ORIGIN"] == "vo_clip"
    assert header["TELESCOP"] == "HST" and header["INSTRUME"] == "WFC3/UVIS"
    assert header["FILTER"] == "F656N" and header["OBJECT"] == "DEMO-SNR-318"
    assert header["OBS_ID"] == ROW["obs_id"] and header["PROPOSID"] == "12233"
    assert header["EXPTIME"] == 2406.9 and header["MJD-OBS"] == ROW["t_min"]
    assert header["DATE-OBS"] == "2014-03-05T11:44:18.326"
    assert header["TIMESYS"] == "UTC" and header["MJD-END"] == ROW["t_max"]
    assert header["PUBDID"] == ROW["obs_publisher_did"] and header["PRODURL"] == url
    assert "DATE" not in header and "BUNIT" not in header and "CHECKSUM" not in header
    comments = _text(header, "COMMENT")
    assert "NOT calibrated science data" in comments
    assert "no photometric calibration" in comments
    assert "preview" in comments and "PRODURL" in comments


def test_header_without_product_url_says_so(flat_png):
    header = _open(preview_fits(flat_png, ROW))[0].header
    assert "PRODURL" not in header
    assert "names no downloadable science product" in _text(header, "COMMENT")


def test_only_obs_id_gives_a_valid_image_without_wcs(flat_png):
    hdu, wcs = _open(preview_fits(flat_png, {"obs_id": "lonely"}))
    assert not wcs.has_celestial
    assert hdu.header["OBS_ID"] == "lonely" and hdu.header["ORIGIN"] == "vo_clip"
    for key in ("TELESCOP", "INSTRUME", "FILTER", "OBJECT", "DATE-OBS", "EXPTIME", "CTYPE1"):
        assert key not in hdu.header
    assert "gives no position" in _text(hdu.header, "COMMENT")


def test_none_nan_blank_and_masked_values_are_omitted(flat_png):
    row = dict(ROW, target_name="  ", filters=None, t_exptime=float("nan"), t_min=None,
               t_max=np.ma.masked, proposal_id=np.ma.masked, s_region=None)
    header = _open(preview_fits(flat_png, row))[0].header
    for key in ("OBJECT", "FILTER", "EXPTIME", "DATE-OBS", "MJD-OBS", "DATE-END", "PROPOSID",
                "TIMESYS"):
        assert key not in header
    assert header["INSTRUME"] == "WFC3/UVIS"


def test_astropy_table_row_and_dict_give_the_same_bytes(flat_png):
    table = Table({key: [value] for key, value in ROW.items() if value is not None})
    table["s_region"] = MaskedColumn([""], mask=[True])
    assert preview_fits(flat_png, table[0]) == preview_fits(flat_png, ROW)


def test_missing_fov_falls_back_to_the_documented_default(flat_png):
    hdu, wcs = _open(preview_fits(flat_png, dict(ROW, s_fov=None)))
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), DEFAULT_FIELD_DEG / SIZE)
    assert "default field" in _text(hdu.header, "HISTORY")


def test_position_from_the_polygon_when_s_ra_is_missing(tmp_path):
    path, row, _ = _demo_like(tmp_path, "ACS/WFC", 20.0, 150.1, 2.2, 0.04)
    _, wcs = _open(preview_fits(path, dict(row, s_ra=None)))
    middle = (SIZE - 1) / 2
    assert _angle_deg(wcs.pixel_to_world(middle, middle), 150.1, 2.2) < 1e-5


def test_long_and_non_ascii_strings_do_not_break_fits(flat_png):
    name = "Omega Centauri " * 30
    url = "https://archive.example.org/" + "deep/" * 20 + "product.fits"
    row = dict(ROW, target_name="Ω Cen — η Car", proposal_id="Café", product_url=url,
               filters=name)
    data = preview_fits(flat_png, row)
    header = _open(data)[0].header
    assert header["OBJECT"] == "? Cen ? ? Car" and header["PROPOSID"] == "Cafe"
    assert header["PRODURL"] == url  # a long string, through CONTINUE cards
    assert header["FILTER"] == name.strip()[:240].rstrip()  # FITS drops trailing blanks
    assert "FILTER was cut to 240 characters." in _text(header, "COMMENT")
    fits.open(io.BytesIO(data)).verify("exception")


@pytest.mark.parametrize("ra, dec", [(12.0, 89.9), (359.99, -20.0), (0.004, 45.0),
                                     (180.0, -89.95)])
def test_pole_and_ra_wrap_keep_a_valid_wcs(tmp_path, ra, dec):
    path, row, geometry = _demo_like(tmp_path, "ACS/WFC", 47.0, ra, dec, 0.05)
    hdu, wcs = _open(preview_fits(path, row))
    middle = (SIZE - 1) / 2
    assert _angle_deg(wcs.pixel_to_world(middle, middle), ra, dec) < geometry.scale / 3600
    px, py = _vertices_pixels(wcs, row["s_region"])
    assert px.min() > -1 and py.min() > -1 and px.max() < SIZE and py.max() < SIZE
    np.testing.assert_allclose(proj_plane_pixel_scales(wcs), geometry.scale / 3600, rtol=0.01)


def test_identical_input_gives_identical_bytes(tmp_path, flat_png):
    first = preview_fits(flat_png, ROW)
    assert preview_fits(flat_png, dict(ROW)) == first
    copy = tmp_path / "copy.png"
    copy.write_bytes(flat_png.read_bytes())
    assert preview_fits(copy, ROW) == first
    assert preview_fits(flat_png, dict(ROW, t_exptime=1.0)) != first


def test_unreadable_preview_raises_oserror(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(OSError):
        preview_fits(bad, ROW)


# --------------------------------------------------------------------------- the demo archive


@pytest.mark.slow
def test_first_demo_observations_overlay_their_footprints(demo_first_run):
    """Over the real demo previews: the footprint lands on the preview's data."""
    from vo_clip.archive import Archive

    home, _ = demo_first_run
    archive = Archive.open(home / "demo-archive")
    for index in range(min(20, len(archive))):
        row = archive.table[index]
        hdu, wcs = _open(preview_fits(archive.preview_path(index), row))
        _check_demo_row(row, hdu, wcs)


def _check_demo_row(row, hdu, wcs) -> None:
    rows, cols = hdu.data.shape
    scale = proj_plane_pixel_scales(wcs)[0]
    px, py = _vertices_pixels(wcs, str(row["s_region"]))
    assert px.min() > -3.5 and py.min() > -3.5, row["obs_id"]
    assert px.max() < cols + 2.5 and py.max() < rows + 2.5, row["obs_id"]
    box_centre = ((px.min() + px.max()) / 2, (py.min() + py.max()) / 2)
    assert np.hypot(box_centre[0] - (cols - 1) / 2, box_centre[1] - (rows - 1) / 2) < 1
    if row["instrument_name"] != "WFPC2":  # symmetric outlines: the aperture is the centre
        centre = wcs.pixel_to_world((cols - 1) / 2, (rows - 1) / 2)
        assert _angle_deg(centre, row["s_ra"], row["s_dec"]) < scale, row["obs_id"]
    if row["target_name"] not in ("DARK", "BIAS", "INTFLAT"):
        lit_cols = np.flatnonzero(hdu.data.any(axis=0))
        lit_rows = np.flatnonzero(hdu.data.any(axis=1))
        assert lit_cols.min() > px.min() - 1.5 and lit_cols.max() < px.max() + 1.5
        assert lit_rows.min() > py.min() - 1.5 and lit_rows.max() < py.max() + 1.5
