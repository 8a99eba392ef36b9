"""DataLink and what it links to, over HTTP: pyvo follows TAP results to the links,
the preview, the FITS product and the similar/describe services; STILTS validates the
documents; bad IDs and uploads get per-row or VOTable errors."""

from __future__ import annotations

import io
import subprocess
from urllib.parse import quote

import numpy as np
import pytest
import pyvo
import requests
from astropy.io import fits
from astropy.io.votable import parse
from astropy.wcs import WCS
from conftest import IGNORE_PYVO_SOCKET_LEAK, requires_stilts
from PIL import Image

DID = "ivo://example.org/vo_clip?obs005"

pytestmark = IGNORE_PYVO_SOCKET_LEAK


@pytest.fixture(scope="module")
def server(tiny_server):
    return tiny_server


def links_url(server, *ids):
    return f"{server}/datalink/links?" + "&".join(f"ID={quote(i, safe='')}" for i in ids)


def test_tap_results_lead_to_datalink_in_pyvo(service):
    results = service.search("SELECT TOP 3 obs_id, obs_publisher_did, access_url, "
                             "access_format FROM ivoa.ObsCore ORDER BY obs_id")
    datalinks = list(results.iter_datalinks())
    assert len(datalinks) == 3
    first = datalinks[0]
    assert {row.semantics for row in first} >= {"#this", "#preview", "#auxiliary", "#proc"}
    (preview,) = first.bysemantics("#preview", include_narrower=False)
    image = requests.get(preview.access_url, timeout=30)
    assert image.headers["Content-Type"] == preview.content_type == "image/png"
    assert int(image.headers["Content-Length"]) == preview.content_length
    assert Image.open(io.BytesIO(image.content)).size == (48, 48)


def test_the_similar_and_describe_descriptors_can_be_followed(server):
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(links_url(server, DID))
    similar = next(row for row in links if row.service_def == "similar")
    table = _table(similar.process(TOP=4).read())
    assert len(table) == 4 and "obs005" not in list(table["obs_id"])
    assert list(table["similarity"]) == sorted(table["similarity"], reverse=True)
    described = next(row for row in links if row.service_def == "describe").process()
    table = _table(described.read())
    assert list(table["rank"]) == [1, 2, 3, 4, 5]
    assert set(table["kind"]) <= {"object", "use case"}


def _table(document: bytes):
    table = parse(io.BytesIO(document), verify="exception").get_first_table()
    return table.to_table(use_names_over_ids=True)


def test_the_fits_product_has_a_wcs_centred_on_the_observation(server, service):
    (row,) = service.search("SELECT s_ra, s_dec FROM ivoa.ObsCore WHERE obs_id = 'obs005'")
    links = pyvo.dal.adhoc.DatalinkResults.from_result_url(links_url(server, DID))
    (product,) = links.bysemantics("#this", include_narrower=False)
    response = requests.get(product.access_url, timeout=30)
    assert response.headers["Content-Type"] == "application/fits"
    with fits.open(io.BytesIO(response.content)) as hdus:
        header = hdus[0].header
        wcs = WCS(header)
        height, width = hdus[0].data.shape
    centre = wcs.pixel_to_world((width - 1) / 2, (height - 1) / 2)
    scale = abs(header["CDELT1"]) if "CDELT1" in header else abs(wcs.pixel_scale_matrix[0, 0])
    separation = centre.separation(
        __import__("astropy.coordinates", fromlist=["SkyCoord"]).SkyCoord(
            row["s_ra"], row["s_dec"], unit="deg")).deg
    assert separation < scale
    assert header["ORIGIN"] == "vo_clip"


def test_several_ids_keep_their_order_and_bad_ones_get_error_rows(server):
    response = requests.post(server + "/datalink/links", timeout=30, data=[
        ("ID", "ivo://example.org/vo_clip?obs002"), ("ID", "ivo://example.org/vo_clip?nope"),
        ("ID", "ivo://elsewhere.org/x?obs001"), ("ID", "not an id"), ("ID", DID)])
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/x-votable+xml;content=datalink"
    table = _table(response.content)
    ids = [str(i) for i in table["ID"]]
    order = list(dict.fromkeys(ids))
    assert order == ["ivo://example.org/vo_clip?obs002", "ivo://example.org/vo_clip?nope",
                     "ivo://elsewhere.org/x?obs001", "not an id", DID]
    errors = {str(r["ID"]): str(r["error_message"]) for r in table if r["error_message"]}
    assert errors["ivo://example.org/vo_clip?nope"].startswith("NotFoundFault: ")
    assert errors["ivo://elsewhere.org/x?obs001"].startswith("UsageFault: ")
    assert errors["not an id"].startswith("UsageFault: ")
    for row in table:  # exactly one of access_url, service_def, error_message
        filled = [row[c] for c in ("access_url", "service_def", "error_message")
                  if not np.ma.is_masked(row[c]) and str(row[c])]
        assert len(filled) == 1


def test_no_id_is_an_empty_links_table(server):
    response = requests.get(server + "/datalink/links", timeout=30)
    table = parse(io.BytesIO(response.content), verify="exception").get_first_table()
    assert response.status_code == 200 and len(table.array) == 0


def test_a_missing_preview_is_a_404_votable(server):
    response = requests.get(server + "/preview/nope", timeout=30)
    assert response.status_code == 404 and b"QUERY_STATUS" in response.content


def test_the_proposal_page_escapes_and_shows_the_observations(server):
    page = requests.get(server + "/proposals/9005", timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert "Tiny programme 5 &amp; &lt;friends&gt;" in page.text
    assert page.text.count("/preview/obs") == 6
    missing = requests.get(server + "/proposals/" + quote("<script>", safe=""), timeout=30)
    assert missing.status_code == 404 and b"<script>" not in missing.content


def test_query_by_image_ranks_the_uploaded_preview_first(server, tiny_archive):
    png = (tiny_archive.root / "previews" / "obs011.png").read_bytes()
    response = requests.post(server + "/search/image", timeout=60,
                             files={"IMAGE": ("query.png", png, "image/png")},
                             data={"TOP": "5"})
    table = _table(response.content)
    assert response.status_code == 200 and str(table["obs_id"][0]) == "obs011"
    assert table["similarity"][0] == pytest.approx(1.0, abs=1e-4)
    filtered = requests.post(server + "/search/image", timeout=60, data={
        "TOP": "50", "INSTRUMENT": "WFC3"}, files={"IMAGE": ("q.png", png, "image/png")})
    table = _table(filtered.content)
    assert len(table) == 18 and all(str(n).startswith("WFC3") for n in table["instrument_name"])


def test_query_by_fits_image(server, tiny_archive):
    pixels = np.asarray(Image.open(tiny_archive.root / "previews" / "obs007.png"))
    buffer = io.BytesIO()
    fits.PrimaryHDU(pixels[::-1].astype(np.uint8)).writeto(buffer)  # FITS row 1 is the bottom
    response = requests.post(server + "/search/image", timeout=60, data={"TOP": "3"},
                             files={"IMAGE": ("q.fits", buffer.getvalue(), "application/fits")})
    table = _table(response.content)
    assert str(table["obs_id"][0]) == "obs007"


@pytest.mark.parametrize("files, data, status, needle", [
    ({"IMAGE": ("x.txt", b"hello", "text/plain")}, {}, 400, "not a PNG, JPEG or FITS"),
    ({"IMAGE": ("x.png", b"", "image/png")}, {}, 400, "empty"),
    ({}, {}, 400, "no IMAGE file"),
    ({"IMAGE": ("big.png", b"\x89PNG" + b"\0" * (50 * 1024 * 1024), "image/png")}, {}, 413,
     "Too Large"),
    ({"IMAGE": ("x.png", b"", "image/png")}, {"TOP": "many"}, 400, "TOP must be a number"),
    ({"IMAGE": ("x.png", b"", "image/png")}, {"RA": "10"}, 400, "needs RA, DEC and RADIUS"),
])
def test_bad_uploads_get_a_votable_error(server, files, data, status, needle):
    response = requests.post(server + "/search/image", files=files, data=data, timeout=120)
    assert response.status_code == status
    document = parse(io.BytesIO(response.content), verify="exception")
    (info,) = [i for i in document.resources[0].infos if i.name == "QUERY_STATUS"]
    assert info.value == "ERROR" and needle in info.content


@requires_stilts
def test_datalinklint_and_votlint_report_no_errors(server):
    checks = [["datalinklint", "votable=" + links_url(server, DID, "ivo://example.org/"
                                                      "vo_clip?nope", "bad id")],
              ["votlint", f"votable={server}/datalink/similar?ID={quote(DID, safe='')}"],
              ["votlint", f"votable={server}/datalink/describe?ID={quote(DID, safe='')}"],
              ["votlint", f"votable={server}/tap/sync?LANG=ADQL&QUERY="
                          + quote("SELECT TOP 5 * FROM ivoa.ObsCore")]]
    for check in checks:
        result = subprocess.run(["stilts", *check], capture_output=True, text=True, timeout=300)
        report = result.stdout + result.stderr
        assert result.returncode == 0, report
        bad = [line for line in report.splitlines()
               if line.startswith(("E-", "W-", "ERROR", "WARNING"))]
        assert bad == [], (check, report)


def test_a_preview_missing_on_disk_is_a_404_and_an_error_row(tmp_path, tiny_model_path):
    from conftest import write_tiny_archive

    from vo_clip.ml.model import load_model
    from vo_clip.search.index import EmbeddingIndex, build_index
    from vo_clip.vo.datalink import LinkResolver
    from vo_clip.vo.faults import NotFoundFault
    from vo_clip.vo.tap import TapService

    archive = write_tiny_archive(tmp_path / "archive", n=4)
    build_index(archive, load_model(str(tiny_model_path)), tmp_path / "index", progress=False)
    (archive.root / "previews" / "obs002.png").unlink()
    service = TapService(EmbeddingIndex.open(tmp_path / "index"))
    with pytest.raises(NotFoundFault, match="no preview for observation 'obs002'"):
        service.lookups.preview_file("obs002")
    resolver = LinkResolver(service.lookups.observation, service.lookups.preview_file,
                            authority="example.org", base_url="http://localhost")
    rows = resolver.links(["ivo://example.org/vo_clip?obs002"])
    (preview,) = [r for r in rows if r.semantics == "#preview"]
    assert preview.error_message.startswith("NotFoundFault: no preview")
    assert preview.access_url is None
