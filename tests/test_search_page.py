"""The search page at ``/`` through Flask's test client: what it renders, what it links,
what it serves (its modules, Aladin Lite from node_modules, the blank HiPS) and what it
refuses (paths out of the vendor directory, markup in query parameters).

The browser's side (searching, selecting, the sky view, SAMP) is tests/test_browser.py.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from astropy.io import fits
from conftest import missing_tool
from PIL import Image

from service import create_app, web
from service.app import close_app
from vo_clip.config import Config

STATIC = Path(web.__file__).parent / "static"
ALADIN_INSTALLED = web.aladin_dist() is not None
needs_aladin = pytest.mark.skipif(
    not ALADIN_INSTALLED, reason=missing_tool("aladin-lite (`npm ci` at the repository root)"))
NODE = missing_tool("node (it comes with npm)")
needs_node = pytest.mark.skipif(shutil.which("node") is None, reason=NODE)


def make_app(home: Path):
    """The real application (TAP and all), with the page registered if the factory
    does not do it yet. The page never opens the index, so none is built."""
    app = create_app(Config(home=home, index=home / "no-index"))
    if "web" not in app.blueprints:
        app.register_blueprint(web.bp)
    return app


class Client:
    """Flask's test client, reading each response whole and closing it (a response
    streamed from a file keeps the file open until then)."""

    def __init__(self, app):
        self._client = app.test_client()

    def get(self, path, **kwargs):
        response = self._client.get(path, **kwargs)
        response.get_data()
        response.close()
        return response


@pytest.fixture
def client(tmp_path):
    app = make_app(tmp_path)
    yield Client(app)
    app.extensions["vo_clip.uws"].close()


class Page(HTMLParser):
    """The tags of a page with their attributes, and the text of each <label for>."""

    def __init__(self, text: str):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.labels: dict[str, str] = {}
        self._label: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "label":
            self._label = attributes.get("for")
            if self._label:
                self.labels[self._label] = ""

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None

    def handle_data(self, data):
        if self._label:
            self.labels[self._label] += data

    def find(self, tag, **attributes) -> list[dict]:
        return [a for t, a in self.tags
                if t == tag and all(a.get(k) == v for k, v in attributes.items())]


def test_the_page_renders_with_a_form_a_sky_panel_and_a_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    page = Page(response.get_data(as_text=True))
    assert page.find("form", id="search")
    assert page.find("pre", id="adql") and page.find("div", id="aladin")
    assert page.find("p", id="status")[0]["aria-live"] == "polite"
    assert page.find("button", id="samp-topcat") and page.find("button", id="samp-aladin")
    csp = response.headers["Content-Security-Policy"]
    script_src = re.search(r"script-src ([^;]*)", csp).group(1).split()
    assert script_src == ["'self'", "'wasm-unsafe-eval'"]  # no inline script, no eval
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    assert "http://localhost:21012" in csp  # the SAMP hub, and no other host
    assert not re.search(r"https?://(?!localhost:21012|127\.0\.0\.1:21012)", csp)


def test_the_page_asks_for_match_probabilities_only_where_the_index_has_them(
        client, tiny_index, tmp_path):
    from vo_clip.search.calibration import (MatchCalibration, load_calibration,
                                            write_calibration)

    def flag(response) -> str:
        return Page(response.get_data(as_text=True)).find("body")[0]["data-match"]

    def page_over(index) -> str:
        app = create_app(Config(home=tmp_path, index=index))
        try:
            return flag(Client(app).get("/"))
        finally:
            close_app(app)

    assert flag(client.get("/")) == "false"  # no index to open
    index = tmp_path / "calibrated"
    shutil.copytree(tiny_index, index)
    assert page_over(index) == "false"
    moments, _ = load_calibration(index)  # the tiny archive has no truth.csv: a fixed fit
    write_calibration(index, moments, MatchCalibration((26.0, -30.0, -17.0, -3.0), 0, 0, 0,
                                                       "fixed"))
    assert page_over(index) == "true"


def test_every_input_has_a_visible_label(client):
    page = Page(client.get("/").get_data(as_text=True))
    inputs = [a for t, a in page.tags if t == "input" and a.get("type") != "radio"]
    assert {a["id"] for a in inputs} == {"q", "image", "instrument", "from", "to", "ra", "dec",
                                         "radius", "top"}
    for attributes in inputs:
        assert page.labels.get(attributes["id"], "").strip(), attributes
    assert page.labels["q"].strip() == "Describe what you are looking for"


def test_no_inline_script_or_event_handler(client):
    text = client.get("/").get_data(as_text=True)
    page = Page(text)
    for tag, attributes in page.tags:
        assert not any(name.startswith("on") for name in attributes), (tag, attributes)
        if tag == "script":
            assert attributes.get("src") and attributes.get("type") == "module"
    assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", text)


def test_the_page_links_its_module_and_stylesheet_with_their_types(client):
    page = Page(client.get("/").get_data(as_text=True))
    script = page.find("script")[0]["src"]
    stylesheet = page.find("link", rel="stylesheet")[0]["href"]
    assert (script, stylesheet) == ("/assets/app.js", "/assets/style.css")
    js = client.get(script)
    assert js.status_code == 200 and js.mimetype == "text/javascript"
    assert js.headers["X-Content-Type-Options"] == "nosniff"
    css = client.get(stylesheet)
    assert css.status_code == 200 and css.mimetype == "text/css"


def test_every_module_the_page_imports_is_served(client):
    seen, todo = set(), ["app.js"]
    while todo:
        name = todo.pop()
        seen.add(name)
        response = client.get(f"/assets/{name}")
        assert response.status_code == 200, name
        assert response.mimetype == "text/javascript"
        text = response.get_data(as_text=True)
        assert not re.search(r"\.(inner|outer)HTML\s*\+?=|insertAdjacentHTML|document\.write",
                             text), f"{name} must build the page with textContent"
        todo += [m for m in re.findall(r'from "\./([\w.-]+\.js)"', text) if m not in seen]
    assert seen == {"app.js", "adql.js", "votable.js", "sky.js", "samp.js"}


def test_urls_follow_a_prefix(client):
    response = client.get("/", environ_overrides={"SCRIPT_NAME": "/vo"})
    page = Page(response.get_data(as_text=True))
    assert page.find("script")[0]["src"] == "/vo/assets/app.js"
    assert page.find("link", rel="stylesheet")[0]["href"] == "/vo/assets/style.css"
    body = page.find("body")[0]
    assert body["data-tap-sync"] == "/vo/tap/sync"
    assert body["data-image-search"] == "/vo/search/image"
    assert body["data-products"] == "/vo/products/"
    assert body["data-hips"] == "/vo/hips/blank"
    assert body["data-tap-url"] == "http://localhost/vo/tap"
    if ALADIN_INSTALLED:
        assert body["data-aladin"] == "/vo/vendor/aladin-lite/aladin.js"


def test_query_parameters_prefill_the_form_escaped(client):
    attack = "<script>alert(1)</script>"
    text = client.get("/", query_string={"q": attack, "instrument": '"><img src=x>',
                                         "ra": "' onfocus='alert(1)"}).get_data(as_text=True)
    assert attack not in text and "<img src=x>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    page = Page(text)
    assert page.find("input", id="q")[0]["value"] == attack  # the value, not markup
    assert page.find("input", id="instrument")[0]["value"] == '"><img src=x>'
    assert page.find("input", id="ra")[0]["value"] == "' onfocus='alert(1)"
    assert not any(name.startswith("on") for _, attrs in page.tags for name in attrs)


@needs_aladin
def test_the_vendor_route_serves_the_installed_aladin_lite(client):
    body = Page(client.get("/").get_data(as_text=True)).find("body")[0]
    assert body["data-aladin"] == "/vendor/aladin-lite/aladin.js"
    response = client.get(body["data-aladin"])
    assert response.status_code == 200
    assert response.mimetype == "text/javascript"
    assert response.data == (web.aladin_dist() / "aladin.js").read_bytes()
    version = json.loads((web.aladin_dist().parent / "package.json").read_text())["version"]
    pinned = json.loads((web.REPO_ROOT / "package.json").read_text())["dependencies"]
    assert pinned["aladin-lite"] == version, "node_modules is not what package.json pins"


@pytest.mark.parametrize("path", [
    "/vendor/aladin-lite/../package.json",
    "/vendor/aladin-lite/..%2fpackage.json",
    "/vendor/aladin-lite/%2e%2e/%2e%2e/aladin-lite/package.json",
    "/vendor/aladin-lite/../../../pyproject.toml",
    "/vendor/aladin-lite//etc/passwd",
    "/vendor/aladin-lite/missing.js",
])
def test_paths_out_of_the_vendor_directory_are_not_found(client, path):
    response = client.get(path, follow_redirects=True)
    assert response.status_code == 404
    assert b'"name"' not in response.data and b"root:" not in response.data


def test_without_aladin_lite_the_page_says_how_to_install_it(client, tmp_path, monkeypatch):
    monkeypatch.setenv("VO_CLIP_NODE_MODULES", str(tmp_path / "empty"))
    text = client.get("/").get_data(as_text=True)
    page = Page(text)
    assert page.find("body")[0]["data-aladin"] == ""
    assert "Aladin Lite is not installed: run <code>npm ci</code>" in text
    response = client.get("/vendor/aladin-lite/aladin.js")
    assert response.status_code == 404 and b"npm ci" in response.data


def test_node_modules_can_be_elsewhere(client, tmp_path, monkeypatch):
    dist = tmp_path / "modules" / "aladin-lite" / "dist"
    dist.mkdir(parents=True)
    (dist / "aladin.js").write_text("export default {};\n")
    monkeypatch.setenv("VO_CLIP_NODE_MODULES", str(tmp_path / "modules"))
    assert web.aladin_dist() == dist
    response = client.get("/vendor/aladin-lite/aladin.js")
    assert response.status_code == 200 and response.data == b"export default {};\n"


def test_the_blank_hips_is_served_locally(client):
    properties = client.get("/hips/blank/properties")
    assert properties.status_code == 200
    values = dict(line.split("=", 1) for line in properties.get_data(as_text=True).splitlines()
                  if "=" in line)
    values = {k.strip(): v.strip() for k, v in values.items()}
    assert values["hips_frame"] == "equatorial" and values["hips_tile_format"] == "png"
    order, width = int(values["hips_order"]), int(values["hips_tile_width"])

    tile = client.get(f"/hips/blank/Norder{order}/Dir0/Npix449.png")
    assert tile.status_code == 200 and tile.mimetype == "image/png"
    assert Image.open(io.BytesIO(tile.data)).size == (width, width)

    allsky = client.get(f"/hips/blank/Norder{order}/Allsky.png")
    cells = 12 * 4 ** order
    columns = int(cells ** 0.5)
    thumb = min(width, 64)
    assert Image.open(io.BytesIO(allsky.data)).size == (columns * thumb,
                                                        -(-cells // columns) * thumb)

    moc = client.get("/hips/blank/Moc.fits")
    with fits.open(io.BytesIO(moc.data)) as hdus:
        assert hdus[1].header["ORDERING"] == "NUNIQ"
        assert sorted(hdus[1].data["UNIQ"]) == list(range(4, 16))  # the 12 order-0 cells


@pytest.mark.parametrize("path", ["Norder4/Dir0/Npix1.png", "Norder3/Dir0/Npix1.gif",
                                  "Norder3/../properties", "index.html", "Norder3/Allsky.fits"])
def test_other_hips_paths_are_not_found(client, path):
    assert client.get(f"/hips/blank/{path}").status_code == 404


def test_the_proxy_aladin_lite_would_retry_through_is_a_local_dead_end(client):
    response = client.get("/vendor/aladin-lite-proxy?url=http://example.org/x.fits")
    assert response.status_code == 404


def test_package_json_pins_aladin_lite_and_the_lock_matches():
    package = json.loads((web.REPO_ROOT / "package.json").read_text())
    lock = json.loads((web.REPO_ROOT / "package-lock.json").read_text())
    version = package["dependencies"]["aladin-lite"]
    assert re.fullmatch(r"3\.\d+\.\d+", version), "pin an exact 3.x version"
    assert lock["packages"]["node_modules/aladin-lite"]["version"] == version
    assert lock["packages"]["node_modules/aladin-lite"]["integrity"].startswith("sha512-")
    assert not list(STATIC.glob("aladin*")), "Aladin Lite comes from npm, not from the repo"


# ----------------------------------------------------------------- the ADQL the page builds

ADQL_CASES = r"""
import * as adql from "ADQL_URL";
const out = {};
const check = (name, f) => {
  try { out[name] = { ok: f() }; }
  catch (e) { out[name] = { error: e.message, form: e instanceof adql.FormError }; }
};
check("quotes", () => adql.textQuery("O'Neil's  ring\n nebula", adql.readFilters({})));
check("all", () => adql.textQuery("x", adql.readFilters({ top: "7", instrument: "wfc3/ir",
  from: "2010-01-01", to: "2010-01-31", ra: "10.5", dec: "\u221245", radius: "0.25" })));
check("from_only", () => adql.textQuery("x", adql.readFilters({ from: "1995-06-01" })));
check("like", () => adql.likeQuery("obs'1", adql.readFilters({ top: "3" })));
check("match", () => adql.textQuery("Tom's comet", adql.readFilters({}), { match: true }));
check("empty", () => adql.textQuery("   ", adql.readFilters({})));
check("top_big", () => adql.readFilters({ top: "1001" }));
check("top_frac", () => adql.readFilters({ top: "2.5" }));
check("ra_text", () => adql.readFilters({ ra: "1; DROP TABLE x", dec: "1", radius: "1" }));
check("cone_partial", () => adql.readFilters({ ra: "10" }));
check("dec_range", () => adql.readFilters({ ra: "10", dec: "91", radius: "1" }));
check("radius_zero", () => adql.readFilters({ ra: "10", dec: "0", radius: "0" }));
check("instrument_like", () => adql.readFilters({ instrument: "A%" }));
check("instrument_quote", () => adql.readFilters({ instrument: "ACS' OR 1=1" }));
check("dates_reversed", () => adql.readFilters({ from: "2011-01-01", to: "2010-01-01" }));
check("mjd", () => [adql.dateToMjd("1858-11-17"), adql.dateToMjd("2000-01-01"),
                    adql.mjdToIso(51544.5), adql.mjdToIso(null)]);
console.log(JSON.stringify(out));
"""


@pytest.fixture(scope="module")
def adql_cases():
    """Run the page's ADQL module under node (no browser needed: it is plain ES)."""
    if shutil.which("node") is None:
        pytest.skip(NODE)
    script = ADQL_CASES.replace("ADQL_URL", (STATIC / "adql.js").as_uri())
    result = subprocess.run(["node", "--input-type=module", "-e", script], check=False,
                            capture_output=True, text=True, timeout=60, cwd=web.REPO_ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_adql_quotes_the_text_and_keeps_the_query_shape(adql_cases):
    query = adql_cases["quotes"]["ok"]
    assert "vo_clip_similarity(o.obs_publisher_did, 'O''Neil''s ring nebula') AS similarity" in query
    assert query.startswith("SELECT TOP 50 o.obs_id, o.obs_publisher_did, o.target_name,")
    assert "FROM ivoa.ObsCore AS o\nJOIN hst.observations AS h USING (obs_id)\n" in query
    assert query.endswith("ORDER BY similarity DESC") and "WHERE" not in query


def test_adql_asks_for_the_match_probability_when_the_service_has_it(adql_cases):
    query = adql_cases["match"]["ok"]
    assert ("vo_clip_similarity(o.obs_publisher_did, 'Tom''s comet') AS similarity,\n"
            "       vo_clip_match(o.obs_publisher_did, 'Tom''s comet') AS match\n") in query
    assert query.endswith("ORDER BY similarity DESC")
    assert "vo_clip_match" not in adql_cases["quotes"]["ok"]


def test_adql_filters(adql_cases):
    query = adql_cases["all"]["ok"]
    assert query.startswith("SELECT TOP 7 ")
    assert "WHERE o.instrument_name LIKE 'WFC3/IR%'" in query
    assert "AND o.t_min BETWEEN 55197 AND 55228" in query  # to the end of Jan 31
    assert ("AND 1 = CONTAINS(POINT('ICRS', o.s_ra, o.s_dec), "
            "CIRCLE('ICRS', 10.5, -45, 0.25))") in query
    assert "WHERE o.t_min >= 49869" in adql_cases["from_only"]["ok"]
    like = adql_cases["like"]["ok"]
    assert "vo_clip_similarity_to(o.obs_publisher_did, 'obs''1') AS similarity" in like
    assert "WHERE o.obs_id <> 'obs''1'" in like


@pytest.mark.parametrize("case", ["empty", "top_big", "top_frac", "ra_text", "cone_partial",
                                  "dec_range", "radius_zero", "instrument_like",
                                  "instrument_quote", "dates_reversed"])
def test_adql_refuses_bad_input_before_sending_it(adql_cases, case):
    outcome = adql_cases[case]
    assert "error" in outcome and outcome["form"], outcome
    assert outcome["error"].endswith(".")


def test_mjd_conversions(adql_cases):
    assert adql_cases["mjd"]["ok"] == [0, 51544, "2000-01-01 12:00", ""]
