"""Uploaded query images: PNG, JPEG and FITS decoded the right way up; anything else,
and anything too large, refused with a message naming the problem."""

import io
import re

import numpy as np
import pytest
from astropy.io import fits
from PIL import Image, PngImagePlugin

from vo_clip.vo.faults import LimitFault, UsageFault
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
    with pytest.raises(LimitFault, match=r"8000x6000 pixels; the limit \(image_max_pixels\)") \
            as caught:
        read_query_image(huge.getvalue())
    assert caught.value.limit == "image_max_pixels"


@pytest.mark.parametrize("kind", ["zTXt", "iTXt"])
def test_a_png_whose_text_chunk_inflates_past_pillows_limit_is_refused(kind):
    info = PngImagePlugin.PngInfo()
    text = "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 1)
    info.add_text("comment", text, zip=True) if kind == "zTXt" else info.add_itxt(
        "comment", text, zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="PNG", pnginfo=info)
    assert kind.encode() in buffer.getvalue() and len(buffer.getvalue()) < 10_000
    with pytest.raises(UsageFault, match="not a PNG, JPEG or FITS image"):
        read_query_image(buffer.getvalue(), "bomb.png")


def fits_bytes(*cards: tuple[str, str], data: bytes = b"\1" * 16) -> bytes:
    """A FITS file written card by card, so that its header can say anything."""
    header = b"".join(f"{key:<8}= {value:>20}".ljust(80).encode() for key, value in cards)
    header += b"END".ljust(80)
    header += b" " * (-len(header) % 2880)
    return header + data + b"\0" * (-len(data) % 2880)


IMAGE = [("SIMPLE", "T"), ("BITPIX", "8")]


@pytest.mark.parametrize("cards, needle", [
    (IMAGE + [("NAXIS", "1000")], "not a readable FITS"),
    (IMAGE + [("NAXIS", "-1")], "not a readable FITS"),
    (IMAGE + [("NAXIS", "2"), ("NAXIS1", "4")], "not a readable FITS"),
    (IMAGE + [("NAXIS", "2"), ("NAXIS1", "-5"), ("NAXIS2", "4")], "not a readable FITS"),
    (IMAGE + [("NAXIS", "2"), ("NAXIS1", "'four'"), ("NAXIS2", "4")], "not a readable FITS"),
    (IMAGE + [("NAXIS", "2"), ("NAXIS1", str(2 ** 40)), ("NAXIS2", str(2 ** 40))],
     "not a readable FITS"),
    (IMAGE + [("NAXIS", "3"), ("NAXIS1", str(2 ** 32)), ("NAXIS2", str(2 ** 32)),
              ("NAXIS3", str(2 ** 32))], "not a readable FITS"),
    ([("SIMPLE", "T"), ("BITPIX", "7"), ("NAXIS", "2"), ("NAXIS1", "4"), ("NAXIS2", "4")],
     "BITPIX 7"),
    (IMAGE + [("NAXIS", "1"), ("NAXIS1", "16")], "no image HDU"),
])
def test_fits_files_with_absurd_axes_are_refused(cards, needle):
    with pytest.raises(UsageFault, match=needle):
        read_query_image(fits_bytes(*cards), "odd.fits")


def test_fits_axes_are_checked_against_the_limit_before_the_pixels_are_read():
    claimed = IMAGE + [("NAXIS", "2"), ("NAXIS1", "100000"), ("NAXIS2", "100000")]
    with pytest.warns(Warning, match="truncated"), pytest.raises(LimitFault) as caught:
        read_query_image(fits_bytes(*claimed), "claims-10-GB.fits")
    assert "100000x100000" in str(caught.value) and caught.value.limit == "image_max_pixels"


def _tile_compressed(shape) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros(shape, np.int32))]).writeto(
        buffer)
    return buffer.getvalue()


def test_a_tile_compressed_image_is_measured_before_it_is_decompressed():
    data = _tile_compressed((512, 512))  # 1 MB of pixels in ~20 kB
    assert len(data) < 64_000
    with pytest.raises(LimitFault, match=r"512x512 pixels; the limit \(image_max_pixels\)"):
        read_query_image(data, "bomb.fits", max_pixels=100_000)
    assert read_query_image(data, "fine.fits", max_pixels=512 * 512).size == (512, 512)
    # the same file claiming 4 x 10^10 pixels: decompressing it would need 160 GB
    bomb = re.sub(rb"(ZNAXIS[12] = ) {17}512", lambda m: m.group(1) + b"%20d" % 200_000,
                  data)
    assert bomb.count(b"200000") == 2 and len(bomb) == len(data)
    with pytest.raises(LimitFault, match="200000x200000 pixels"):
        read_query_image(bomb, "bomb.fits")


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
