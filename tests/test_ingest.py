"""``vo-clip ingest`` end to end, against recorded MAST responses served on 127.0.0.1.

The server replays the portal API as astroquery drives it: ``columnsconfig`` POSTs,
``/api/v0/invoke`` POSTs (``Mast.Caom.Filtered`` filtered by the request's filters,
``Mast.Caom.Products`` by its obsids) and ``Download/file?uri=`` GETs of previews the test
draws. Nothing leaves the machine.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from vo_clip.archive import mast
from vo_clip.archive.archive import Archive
from vo_clip.archive.mast import IngestOptions, ingest, parse_cycles
from vo_clip.cli import cli
from vo_clip.errors import VoClipError

DATA = Path(__file__).parent / "data"
RECORDED = DATA / "mast"
CATALOG = DATA / "abstracts" / "abstracts.cat"
COLOUR_URI = "mast:HST/product/hst_12002_02_wfc3_uvis_total_jb0202_drz.jpg"
FLAKY_URI = "mast:HST/product/hst_12002_01_wfc3_uvis_total_jb0201_drz.jpg"


class FakeMast(http.server.ThreadingHTTPServer):
    """Replays tests/data/mast; counts requests; fails ``flaky`` downloads once (500)."""

    def __init__(self, images: dict[str, bytes], flaky: set[str]):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.images, self.flaky = images, set(flaky)
        self.downloads: Counter = Counter()
        self.queries: Counter = Counter()
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"])).decode()
        path = urlparse(self.path).path
        if path.endswith("/columnsconfig"):
            name = parse_qs(body)["colConfigId"][0]
            if name == "Mast.Caom.Filtered":
                name = "Mast.Caom.Cone"
            return self._send(200, (RECORDED / f"columnsconfig-{name}.json").read_bytes(),
                              "application/json")
        request = json.loads(unquote(body.partition("=")[2]))
        answer = _invoke(request, self.server)
        return self._send(200, json.dumps(answer).encode(), "application/json")

    def do_GET(self):  # noqa: N802
        uri = parse_qs(urlparse(self.path).query).get("uri", [""])[0]
        server = self.server
        with server.lock:
            server.downloads[uri] += 1
            fail = uri in server.flaky
            server.flaky.discard(uri)
        if fail:
            return self._send(500, b"Internal Server Error", "text/plain")
        if uri not in server.images:
            return self._send(404, b"not found", "text/plain")
        return self._send(200, server.images[uri], "image/jpeg")


def _invoke(request: dict, server: FakeMast) -> dict:
    service, params = request["service"], request["params"]
    recorded = json.loads((RECORDED / f"{service}.json").read_text())
    rows = recorded["data"]
    if service == "Mast.Caom.Filtered":
        for flt in params["filters"]:
            rows = [r for r in rows if str(r[flt["paramName"]]) in flt["values"]]
        with server.lock:
            server.queries[next(f["values"][0] for f in params["filters"]
                                if f["paramName"] == "proposal_id")] += 1
    elif service == "Mast.Caom.Products":
        wanted = set(params["obsid"].split(","))
        rows = [r for r in rows if r["parent_obsid"] in wanted]
    paging = dict(recorded["paging"], rows=len(rows), rowsFiltered=len(rows))
    return dict(recorded, data=rows, paging=paging)


def _jpeg(colour: bool, seed: int) -> bytes:
    import io

    rng = np.random.default_rng(seed)
    grey = rng.integers(0, 255, size=(48, 80), dtype=np.uint8)
    image = (Image.fromarray(np.dstack([grey, grey // 2, 255 - grey]), "RGB") if colour
             else Image.fromarray(grey, "L"))
    buf = io.BytesIO()
    image.save(buf, format="JPEG")
    return buf.getvalue()


@pytest.fixture
def fake_mast():
    products = json.loads((RECORDED / "Mast.Caom.Products.json").read_text())["data"]
    uris = [p["dataURI"] for p in products if p["productType"] == "PREVIEW"]
    images = {uri: _jpeg(uri == COLOUR_URI, i) for i, uri in enumerate(uris)}
    server = FakeMast(images, flaky={FLAKY_URI})
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _options(tmp_path, server, **kw) -> IngestOptions:
    values = dict(out=tmp_path / "archive", abstracts=str(CATALOG), cycles=(20, 22),
                  per_proposal=2, workers=3, mast_url=server.url, backoff=0.01,
                  timeout=10, progress=False)
    values.update(kw)
    return IngestOptions(**values)


def test_ingest_end_to_end(tmp_path, fake_mast):
    summary = ingest(_options(tmp_path, fake_mast))
    archive = Archive.open(tmp_path / "archive")
    assert len(archive) == 4 and summary.observations == 4  # 2 sampled of 3 + 2
    rows = {str(r["obs_id"]): r for r in archive.table}
    assert sum(k.startswith("hst_12001_") for k in rows) == 2
    assert not any("_04_" in k or "f814w" in k for k in rows)  # exclusive; not "total"
    row = rows["hst_12002_01_wfc3_uvis_total_jb0201"]
    assert row["proposal_id"] == "12002" and row["proposal_cycle"] == 21
    assert row["proposal_title"].endswith("Galactic Bulge and the Magellanic Clouds")
    assert row["proposal_abstract"].startswith("Narrow-band WFC3/UVIS")
    assert row["instrument_name"] == "WFC3/UVIS" and row["filters"] == "F502N;F656N"
    assert row["s_ra"] == pytest.approx(269.639) and row["s_region"].startswith("POLYGON")
    assert row["em_min"] == pytest.approx(499e-9) and row["t_min"] == pytest.approx(56400.0)
    assert row["product_url"].endswith("uri=mast:HST/product/"
                                       "hst_12002_01_wfc3_uvis_total_jb0201_drz.fits")
    with Image.open(archive.preview_path(0)) as image:
        assert image.size == (512, 512)
    assert fake_mast.downloads[FLAKY_URI] == 2  # failed once (500), retried
    assert summary.skipped == Counter({mast.NO_PREVIEWS: 1, mast.NO_OBSERVATIONS: 1})
    assert summary.downloaded == 4 and summary.proposals == 2 and summary.selected == 4
    assert not list((tmp_path / "archive").rglob("*.partial"))


def test_sampling_is_seeded(tmp_path, fake_mast):
    first = ingest(_options(tmp_path / "a", fake_mast, proposals=["12001"], cycles=None))
    again = ingest(_options(tmp_path / "b", fake_mast, proposals=["12001"], cycles=None))
    assert first.observations == again.observations == 2
    ids = [Archive.open(tmp_path / d / "archive").obs_ids for d in "ab"]
    assert ids[0] == ids[1]


def test_grayscale_only_excludes_colour_previews(tmp_path, fake_mast):
    summary = ingest(_options(tmp_path, fake_mast, proposals=["12002", "99999"],
                              grayscale_only=True))
    archive = Archive.open(tmp_path / "archive")
    assert archive.obs_ids == ["hst_12002_01_wfc3_uvis_total_jb0201"]
    assert summary.skipped == Counter({mast.COLOUR: 1, mast.NOT_IN_CATALOG: 1})


def test_interrupted_run_resumes_without_duplicates(tmp_path, fake_mast, monkeypatch):
    saves = []
    real_save = mast._save_state

    def dying_save(out, state):
        saves.append(1)
        if len(saves) == 2:  # previews of 12002 are on disk, its rows not yet recorded
            raise KeyboardInterrupt
        real_save(out, state)

    monkeypatch.setattr(mast, "_save_state", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ingest(_options(tmp_path, fake_mast))
    assert not (tmp_path / "archive" / "observations.ecsv").exists()
    monkeypatch.setattr(mast, "_save_state", real_save)
    summary = ingest(_options(tmp_path, fake_mast))
    archive = Archive.open(tmp_path / "archive")
    assert len(archive) == len(set(archive.obs_ids)) == 4
    assert summary.resumed == 1 and summary.reused == 2 and summary.downloaded == 0
    assert fake_mast.queries["12001"] == 1  # done proposals are not asked again
    assert all(n == 1 for uri, n in fake_mast.downloads.items() if uri != FLAKY_URI)
    assert fake_mast.downloads[FLAKY_URI] == 2
    ingest(_options(tmp_path, fake_mast))  # a third run changes nothing
    assert Archive.open(tmp_path / "archive").obs_ids == archive.obs_ids
    with pytest.raises(VoClipError, match="other sampling options"):
        ingest(_options(tmp_path, fake_mast, seed=1))


def test_failed_downloads_are_skipped_then_retried(tmp_path, fake_mast):
    fake_mast.images.pop(FLAKY_URI)
    opts = _options(tmp_path, fake_mast, proposals=["12002"], retries=1)
    summary = ingest(opts)
    assert summary.skipped == Counter({mast.DOWNLOAD_FAILED: 1})
    assert len(Archive.open(tmp_path / "archive")) == 1
    fake_mast.images[FLAKY_URI] = _jpeg(False, 7)
    assert ingest(opts).observations == 2  # the incomplete proposal is done again


def test_selection_errors(tmp_path, fake_mast):
    with pytest.raises(VoClipError, match="no proposals selected"):
        ingest(_options(tmp_path, fake_mast, cycles=None))
    with pytest.raises(VoClipError, match="matches the selection"):
        ingest(_options(tmp_path, fake_mast, cycles=(40, 41)))
    assert parse_cycles("20-25") == (20, 25) and parse_cycles("22") == (22, 22)
    with pytest.raises(VoClipError):
        parse_cycles("25-20")


def test_cli_ingest(tmp_path, fake_mast):
    out = tmp_path / "archive"
    args = ["ingest", "--out", str(out), "--abstracts", str(CATALOG), "--cycles", "20-22",
            "--per-proposal", "2", "--mast-url", fake_mast.url, "--workers", "2"]
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), *args])
    assert result.exit_code == 0, result.output
    assert "ingested 4 observations from 2 of 4 proposals" in result.output
    assert f"skipped 1: {mast.NO_PREVIEWS}" in result.output
    assert len(Archive.open(out)) == 4
    bad = CliRunner().invoke(cli, ["ingest", "--out", str(out), "--cycles", "x"])
    assert bad.exit_code == 1 and "bad cycle range" in bad.output


def test_previews_are_centre_cropped_to_512():
    wide = np.zeros((100, 300), dtype=np.uint8)
    wide[:, 100:200] = 255  # the centre square is white, the sides black
    square = mast._centre_square(Image.fromarray(wide, "L"))
    assert square.size == (512, 512) and square.mode == "L"
    assert np.asarray(square)[:, 5:-5].min() > 200
    grey = Image.fromarray(np.dstack([wide] * 3), "RGB")
    assert not mast._is_colour(grey)
    assert mast._is_colour(Image.fromarray(np.dstack([wide, wide // 2, wide]), "RGB"))
