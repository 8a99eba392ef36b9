"""Uploaded query images: PNG, JPEG and FITS decoded the right way up; anything else,
and anything too large, refused with a message naming the problem."""

import io

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image

from vo_clip.vo.faults import UsageFault
from vo_clip.vo.image_query import ImageQuery, read_query_image


def _png(array, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_png_and_jpeg_become_rgb():
    gradient = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    for fmt in ("PNG", "JPEG"):
        image = read_query_image(_png(gradient, fmt))
        assert image.mode == "RGB" and image.size == (64, 32)


def test_a_float_fits_image_is_stretched_and_flipped_to_display_order():
    data = np.zeros((40, 50), dtype=np.float32)
    data[0:5, 0:5] = 1000.0  # FITS row 1 is the bottom: this corner is bottom-left
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(data)]).writeto(buffer)
    pixels = np.asarray(read_query_image(buffer.getvalue()).convert("L"))
    assert pixels.shape == (40, 50)
    assert pixels[-1, 0] == 255 and pixels[0, 0] == 0 and pixels[0, -1] == 0


def test_a_cube_uses_its_first_plane():
    buffer = io.BytesIO()
    fits.PrimaryHDU(np.random.default_rng(0).random((3, 20, 30))).writeto(buffer)
    assert read_query_image(buffer.getvalue()).size == (30, 20)


@pytest.mark.parametrize("data, needle", [
    (b"", "empty"),
    (b"just text", "not a PNG, JPEG or FITS"),
    (b"SIMPLE  =                    T" + b" " * 50, "not a readable FITS"),
])
def test_unreadable_uploads(data, needle):
    with pytest.raises(UsageFault, match=needle):
        read_query_image(data)


def test_other_formats_and_huge_images_are_refused():
    buffer = io.BytesIO()
    Image.new("L", (8, 8)).save(buffer, format="GIF")
    with pytest.raises(UsageFault, match="GIF image"):
        read_query_image(buffer.getvalue())
    huge = io.BytesIO()
    Image.new("1", (8000, 6000)).save(huge, format="PNG")  # 48 Mpx, a few kB
    with pytest.raises(UsageFault, match="the limit is"):
        read_query_image(huge.getvalue())


def test_constraints_become_adql():
    query = ImageQuery.from_params({"TOP": "7", "INSTRUMENT": "AC'S", "TMIN": "50000",
                                    "RA": "370", "DEC": "-10", "RADIUS": "2"})
    adql = query.adql()
    assert adql.startswith("SELECT TOP 7 ")
    assert "LIKE 'AC''S%'" in adql and "o.t_min >= 50000.0" in adql
    assert "CIRCLE('ICRS', 10.0, -10.0, 2.0)" in adql
    with pytest.raises(UsageFault, match="TOP must be between"):
        ImageQuery.from_params({"TOP": "0"})
    with pytest.raises(UsageFault, match="RADIUS"):
        ImageQuery.from_params({"RA": "1", "DEC": "95", "RADIUS": "1"})
