"""The search page in a real browser: headless Chromium (Debian's ``chromium``) driven
by Playwright for Python, against a live server.

A person types a description, gets thumbnails, selects one and sees it in Aladin Lite;
the same with the keyboard alone; markup typed as a query stays text; SAMP reaches a
hub (a fake one here) or says none is running; an uploaded image searches too. Every
test also checks that the page asked no other host for anything (every request is
recorded, and the Content-Security-Policy reports what it blocked) and raised no error.

Screenshots go to ``$VO_CLIP_ARTIFACTS`` (default ``test-artifacts/`` at the repository
root). Skipped, saying why, when Playwright or Chromium is missing; nothing is
downloaded: Playwright drives the system browser.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import threading
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from urllib.parse import quote, urlsplit

import pytest
import requests
from astropy.io.votable import parse_single_table
from conftest import FIRST_QUERY, live_server, missing_tool

from service import create_app, web
from vo_clip.config import Config

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason=missing_tool("Playwright for Python (pip install -e '.[test]'; the browser is "
                        "Debian's chromium, no `playwright install`)"))

CHROMIUM = os.environ.get("VO_CLIP_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists():
    pytest.skip(missing_tool("Chromium (apt-get install chromium)"), allow_module_level=True)

needs_aladin = pytest.mark.skipif(
    web.aladin_dist() is None, reason=missing_tool("aladin-lite (`npm ci` at the repository root)"))

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
SAMP_PORT = 21012
TIMEOUT_MS = 60_000


def artifacts_dir() -> Path:
    """Where screenshots are kept after the run (CI uploads this directory)."""
    path = Path(os.environ.get("VO_CLIP_ARTIFACTS") or web.REPO_ROOT / "test-artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


def save_screenshot(page, tmp_path: Path, name: str) -> Path:
    shot = tmp_path / name
    page.screenshot(path=str(shot), full_page=False)
    shutil.copyfile(shot, artifacts_dir() / name)
    return artifacts_dir() / name


def serve(config: Config):
    """A live server of the real application, with the page registered if the factory
    does not register it yet."""
    app = create_app(config)
    if "web" not in app.blueprints:
        app.register_blueprint(web.bp)
    return app, live_server(app)


def has_route(app, prefix: str) -> bool:
    return any(rule.rule.startswith(prefix) for rule in app.url_map.iter_rules())


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def tiny(tiny_index, tiny_model_path, tmp_path_factory):
    """The tiny archive (36 observations, random tiny model): fast to search."""
    home = tmp_path_factory.mktemp("page-home")
    app, server = serve(Config(home=home, index=tiny_index, model=str(tiny_model_path)))
    with server as url:
        yield url, app


class Session:
    """One browser context on the page, recording what leaves it and what goes wrong."""

    CSP_LISTENER = """
        window.__cspViolations = [];
        document.addEventListener("securitypolicyviolation", (e) =>
            window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`));
    """

    def __init__(self, browser, base: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1366, "height": 768})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.csp: list[str] = []
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.context.add_init_script(self.CSP_LISTENER)
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)

    def _console(self, message):
        if "Content Security Policy" in message.text or "Refused to" in message.text:
            self.csp.append(message.text)

    def open(self, path: str = "/"):
        self.page.goto(self.base + path)
        self.page.wait_for_function("() => window.voClipSky && (window.voClipSky.ready || "
                                    "window.voClipSky.error !== '')")
        return self.page

    def search(self, text: str):
        self.page.fill("#q", text)
        self.page.press("#q", "Enter")
        return self.wait_for_results()

    def wait_for_results(self):
        self.page.wait_for_function("() => document.querySelectorAll('#results .card').length > 0"
                                    " || !document.getElementById('error').hidden")
        assert self.page.is_hidden("#error"), self.page.text_content("#error")
        return self.page.eval_on_selector_all("#results .card", "cs => cs.map(c => c.dataset.obsId)")

    def non_local(self) -> list[str]:
        found = []
        for url in self.requests:
            parts = urlsplit(url)
            if parts.scheme in ("data", "blob"):
                continue
            if parts.scheme not in ("http", "https") or parts.hostname not in LOCAL_HOSTS:
                found.append(url)
        return found

    def check(self):
        """Nothing left this machine, the CSP blocked nothing, no script error."""
        if not self.page.is_closed():
            self.csp += self.page.evaluate("window.__cspViolations || []")
        assert self.non_local() == []
        assert self.csp == []
        assert self.errors == []

    def close(self):
        self.context.close()


@pytest.fixture
def session(browser, tiny):
    session = Session(browser, tiny[0])
    yield session
    session.close()


def sky_state(page) -> dict:
    return page.evaluate("({...window.voClipSky})")


def wait_for_fits(page, obs_id: str) -> dict:
    page.wait_for_function("([id]) => window.voClipSky.selected === id && "
                           "window.voClipSky.fits !== 'loading'", arg=[obs_id])
    return sky_state(page)


def tap_rows(base: str, adql: str) -> list[str]:
    response = requests.post(base + "/tap/sync", data={"LANG": "ADQL", "QUERY": adql},
                             timeout=60)
    assert response.status_code == 200, response.text
    return [str(x) for x in parse_single_table(io.BytesIO(response.content)).array["obs_id"]]


# ------------------------------------------------------------------------------ the tests


@needs_aladin
def test_a_text_search_shows_thumbnails_and_the_selection_in_aladin(session, tiny, tmp_path):
    base, app = tiny
    page = session.open()
    assert sky_state(page)["ready"], sky_state(page)
    obs_ids = session.search("a bright compact source")

    adql = page.text_content("#adql")
    assert "vo_clip_similarity(o.obs_publisher_did, 'a bright compact source') AS similarity" in adql
    assert "vo_clip_match" not in adql  # the tiny index has no match calibration
    assert obs_ids == tap_rows(base, adql)  # the page shows what the shown ADQL returns
    assert len(obs_ids) == 36 and page.text_content("#status").startswith("36 results for")

    similarities = page.eval_on_selector_all("#results .sim", "s => s.map(e => e.textContent)")
    assert all(len(s.split(".")[1]) == 3 for s in similarities)
    assert [float(s) for s in similarities] == sorted(map(float, similarities), reverse=True)
    page.wait_for_function("() => Array.from(document.querySelectorAll('#results img'))"
                           ".slice(0, 4).every(i => i.complete && i.naturalWidth > 0)")
    first = page.locator("#results .card").first
    assert first.locator("img").get_attribute("loading") == "lazy"
    assert obs_ids[0] in first.locator("img").get_attribute("alt")
    assert first.locator("a.fits").get_attribute("href") == f"{base}/products/{obs_ids[0]}.fits"
    assert first.locator("a.preview").get_attribute("href") == f"{base}/preview/{obs_ids[0]}"
    assert sky_state(page)["message"].startswith("36 results marked")

    # Select the third result: Aladin Lite centres on it and shows its FITS product.
    row = requests.get(base + "/tap/sync", timeout=60, params={
        "LANG": "ADQL", "RESPONSEFORMAT": "csv",
        "QUERY": f"SELECT s_ra, s_dec FROM ivoa.ObsCore WHERE obs_id = '{obs_ids[2]}'"}).text
    ra, dec = map(float, row.splitlines()[1].split(","))
    page.locator("#results .card").nth(2).locator(".pick").click()
    state = wait_for_fits(page, obs_ids[2])
    centre = page.evaluate("window.voClipAladin.getRaDec()")
    assert centre == pytest.approx([ra, dec], abs=1e-3)
    assert page.evaluate("window.voClipAladin.getFov()[0]") < 1
    assert page.locator("#results .card").nth(2).locator(".pick").get_attribute("aria-pressed") == "true"
    if has_route(app, "/products"):
        assert state["fits"] == "shown", state
        assert page.evaluate("!!window.voClipAladin.getOverlayImageLayer('vo_clip product')")
    else:
        assert state["fits"] == "missing", state
    save_screenshot(page, tmp_path, "search-page-tiny.png")
    session.check()


def test_markup_typed_as_a_query_stays_text(session, tiny):
    attack = "<img src=x onerror=window.pwned=1>"
    page = session.open("/?q=" + quote(attack))  # a shared link runs its search on load
    session.wait_for_results()
    assert page.input_value("#q") == attack
    assert page.evaluate("window.pwned") is None
    assert f"'{attack}'" in page.text_content("#adql")

    second = "<img src=x onerror=window.pwned=2>'); --"
    session.search(second)
    assert "'<img src=x onerror=window.pwned=2>''); --'" in page.text_content("#adql")
    assert page.evaluate("window.pwned") is None
    assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
    assert attack in page.text_content("#status") or second in page.text_content("#status")
    # Values from the service are text too (the tiny archive's titles hold markup).
    titles = page.eval_on_selector_all("#results .proposal", "ps => ps.map(p => p.textContent)")
    if any("<" in title for title in titles):
        assert page.evaluate("document.querySelectorAll('#results friends').length") == 0
    session.check()


@needs_aladin
def test_the_keyboard_alone_searches_and_selects(session, tmp_path):
    page = session.open()
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "q":
            break
    else:
        pytest.fail("Tab never reached the search box")
    page.keyboard.type("a faint diffuse blob")
    page.keyboard.press("Enter")
    obs_ids = session.wait_for_results()

    for _ in range(80):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('pick')"):
            break
    else:
        pytest.fail("Tab never reached a result")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none", "the focused result must show where the focus is"
    index = page.evaluate("Number(document.activeElement.closest('.card').dataset.index)")
    page.keyboard.press("Enter")
    wait_for_fits(page, obs_ids[index])
    assert page.evaluate("document.activeElement.getAttribute('aria-pressed')") == "true"
    save_screenshot(page, tmp_path, "search-page-keyboard.png")
    session.check()


def test_the_copy_button_copies_the_adql(session):
    session.context.grant_permissions(["clipboard-read", "clipboard-write"],
                                      origin=session.base)
    page = session.open()
    session.search("two galaxies colliding")
    page.click("#copy-adql")
    page.wait_for_function("() => document.getElementById('status').textContent"
                           ".includes('copied')")
    assert page.evaluate("navigator.clipboard.readText()") == page.text_content("#adql")
    session.check()


def test_form_mistakes_are_reported_and_nothing_is_sent(session):
    page = session.open()
    page.fill("#ra", "10")
    page.fill("#q", "comet")
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "RA, Dec and radius" in page.text_content("#error")
    page.fill("#ra", "")
    page.fill("#top", "5000")
    page.click("#submit")
    assert "at most 1000" in page.text_content("#error")
    page.fill("#top", "5")
    page.fill("#q", "")
    page.click("#submit")
    assert "Describe what you are looking for" in page.text_content("#error")
    assert not [url for url in session.requests if "/tap/sync" in url]
    session.check()


def test_a_service_error_is_shown_as_text(session):
    """QUERY_STATUS=ERROR with its message (markup in it included), not a blank page."""
    page = session.open()
    page.route("**/tap/sync", lambda route: route.fulfill(
        status=400, content_type="application/x-votable+xml",
        body='<?xml version="1.0"?><VOTABLE version="1.4" '
             'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
             '<INFO name="QUERY_STATUS" value="ERROR">unknown column &lt;b&gt;nope&lt;/b&gt;'
             '</INFO></RESOURCE></VOTABLE>'))
    page.fill("#q", "anything")
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == "The search failed: unknown column <b>nope</b>"
    assert page.evaluate("document.querySelectorAll('#error *').length") == 0
    session.check()


def test_overflow_is_shown(session):
    page = session.open()
    rows = "".join(f"<TR><TD>o{i}</TD><TD>0.5</TD></TR>" for i in range(3))
    page.route("**/tap/sync", lambda route: route.fulfill(
        status=200, content_type="application/x-votable+xml",
        body='<?xml version="1.0"?><VOTABLE version="1.4" '
             'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
             '<INFO name="QUERY_STATUS" value="OK"/><TABLE>'
             '<FIELD name="obs_id" datatype="char" arraysize="*"/>'
             '<FIELD name="similarity" datatype="double"/>'
             f'<DATA><TABLEDATA>{rows}</TABLEDATA></DATA></TABLE>'
             '<INFO name="QUERY_STATUS" value="OVERFLOW"/></RESOURCE></VOTABLE>'))
    page.fill("#q", "anything")
    page.press("#q", "Enter")
    page.wait_for_selector("#error:not([hidden])")
    assert "OVERFLOW" in page.text_content("#error")
    assert page.locator("#results .card").count() == 3
    assert "OVERFLOW" in page.text_content("#status")
    session.check()


# ---------------------------------------------------------------------------------- SAMP


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class Hub:
    """The SAMP Web Profile side of a hub (SAMP 1.3 §5), with TOPCAT and Aladin attached.

    Served over real HTTP on port 21012 when that port is free; when a real hub (a
    running TOPCAT) holds it, the page's requests to it are answered by the browser's
    request interception instead, so that the test never talks to a person's TOPCAT.
    """

    names: ClassVar[dict[str, str]] = {"c-topcat": "topcat", "c-aladin": "Aladin"}

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def answer(self, body: bytes) -> bytes:
        params, method = xmlrpc.client.loads(body)
        self.calls.append((method, params))
        if method == "samp.webhub.register":
            result = {"samp.private-key": "key-1", "samp.hub-id": "hub", "samp.self-id": "c-page"}
        elif method == "samp.webhub.getSubscribedClients":
            result = {"c-topcat": {}, "c-aladin": {}}
        elif method == "samp.webhub.getMetadata":
            result = {"samp.name": self.names.get(params[1], "")}
        else:
            result = ""
        return xmlrpc.client.dumps((result,), methodresponse=True).encode()

    @staticmethod
    def cors(origin: str | None) -> dict[str, str]:
        return {"Access-Control-Allow-Origin": origin or "*",
                "Access-Control-Allow-Methods": "POST, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type",
                "Access-Control-Allow-Private-Network": "true"}

    def route(self, route):
        """A Playwright route handler playing the hub."""
        headers = self.cors(route.request.headers.get("origin"))
        if route.request.method == "OPTIONS":
            route.fulfill(status=204, headers=headers)
        else:
            route.fulfill(status=200, headers={**headers, "Content-Type": "text/xml"},
                          body=self.answer(route.request.post_data_buffer))


def hub_handler(hub: Hub):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _headers(self):
            for name, value in hub.cors(self.headers.get("Origin")).items():
                self.send_header(name, value)

        def do_OPTIONS(self):
            self.send_response(204)
            self._headers()
            self.end_headers()

        def do_POST(self):
            body = hub.answer(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self._headers()
            self.send_header("Content-Type", "text/xml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


HUB_URLS = ["http://localhost:21012/**", "http://127.0.0.1:21012/**"]


@pytest.fixture
def fake_hub(session):
    hub = Hub()
    if port_in_use(SAMP_PORT):
        for pattern in HUB_URLS:
            session.context.route(pattern, hub.route)
        yield hub
        return
    server = ThreadingHTTPServer(("127.0.0.1", SAMP_PORT), hub_handler(hub))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield hub
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_samp_without_a_hub_says_so(session):
    if port_in_use(SAMP_PORT):  # a real hub is running: pretend it is not
        for pattern in HUB_URLS:
            session.context.route(pattern, lambda route: route.abort("connectionrefused"))
    page = session.open()
    assert page.is_disabled("#samp-topcat")  # nothing to send yet
    session.search("a ring")
    page.click("#samp-topcat")
    page.wait_for_function("() => document.getElementById('samp-status').textContent"
                           ".includes('No SAMP hub is running')")
    session.check()


def test_samp_sends_a_url_that_reproduces_the_table(session, fake_hub):
    page = session.open()
    obs_ids = session.search("an elongated smudge")
    page.click("#samp-topcat")
    page.wait_for_function("() => document.getElementById('samp-status').textContent === "
                           "'Sent to TOPCAT.'")
    page.click("#samp-aladin")
    page.wait_for_function("() => document.getElementById('samp-status').textContent === "
                           "'Sent to Aladin.'")
    methods = [method for method, _ in fake_hub.calls]
    assert methods.count("samp.webhub.register") == 1  # registered once, for the page
    notified = [params for method, params in fake_hub.calls if method == "samp.webhub.notify"]
    assert [(key, recipient) for key, recipient, _ in notified] == [("key-1", "c-topcat"),
                                                                     ("key-1", "c-aladin")]
    message = notified[0][2]
    assert message["samp.mtype"] == "table.load.votable"
    url = message["samp.params"]["url"]
    assert url.startswith(session.base + "/tap/sync?")
    assert message["samp.params"]["name"] == "vo_clip: “an elongated smudge”"
    table = parse_single_table(io.BytesIO(requests.get(url, timeout=60).content))
    assert [str(x) for x in table.array["obs_id"]] == obs_ids
    session.check()


# ------------------------------------------------------------------------- image search


def test_an_image_search_ranks_the_same_picture_first(session, tiny_archive, tmp_path):
    preview = sorted((Path(tiny_archive.root) / "previews").glob("*.png"))[5]
    page = session.open()
    page.set_input_files("#image", str(preview))
    assert page.is_checked("input[name=mode][value=image]") and page.is_disabled("#q")
    with page.expect_response(lambda r: "/search/image" in r.url) as answer:
        page.click("#submit")
    assert answer.value.status == 200
    obs_ids = session.wait_for_results()
    assert obs_ids[0] == preview.stem
    assert page.is_hidden("#adql-panel")
    assert page.is_disabled("#samp-topcat")
    assert "uploaded image" in page.get_attribute("#samp-topcat", "title")
    assert f"images like {preview.name}" in page.text_content("#status")

    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (20 * 1024 * 1024 + 1))
    requests_before = len(session.requests)
    page.set_input_files("#image", str(big))
    page.click("#submit")
    page.wait_for_selector("#error:not([hidden])")
    assert "the limit is 20 MB" in page.text_content("#error")
    assert not [u for u in session.requests[requests_before:] if "/search/image" in u]
    session.check()


# ---------------------------------------------------------------------- under a prefix


@pytest.fixture(scope="module")
def prefixed(tiny_index, tiny_model_path, tmp_path_factory):
    """The service mounted at /vo, as behind a proxy that forwards a path prefix."""
    from werkzeug.exceptions import NotFound
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    home = tmp_path_factory.mktemp("prefixed-home")
    app, server = serve(Config(home=home, index=tiny_index, model=str(tiny_model_path)))
    app.wsgi_app = DispatcherMiddleware(NotFound(), {"/vo": app.wsgi_app})
    with server as url:
        yield url


@needs_aladin
def test_the_page_works_under_a_prefix(browser, prefixed):
    """The page's own URLs (modules, Aladin Lite, the HiPS, TAP, products) keep /vo."""
    session = Session(browser, prefixed)
    try:
        page = session.open("/vo/")
        assert sky_state(page)["ready"], sky_state(page)
        obs_ids = session.search("a bright compact source")
        page.locator("#results .card .pick").first.click()
        assert wait_for_fits(page, obs_ids[0])["fits"] == "shown"
        paths = {urlsplit(url).path for url in session.requests if url.startswith("http")}
        own = {p for p in paths if not p.startswith(("/preview/", "/datalink/"))}
        assert own and all(path.startswith("/vo/") for path in own), sorted(own)
        for part in ("/vo/assets/", "/vo/vendor/", "/vo/hips/blank/", "/vo/tap/sync",
                     "/vo/products/"):
            assert any(path.startswith(part) for path in own), part
        session.check()
    finally:
        session.close()


def test_urls_in_results_keep_the_prefix(browser, prefixed):
    session = Session(browser, prefixed)
    try:
        session.open("/vo/")
        session.search("a bright compact source")
        first = session.page.evaluate("window.voClipPage.results[0]")
        assert first["preview_url"].startswith(prefixed + "/vo/preview/")
        assert first["access_url"].startswith(prefixed + "/vo/datalink/")
    finally:
        session.close()


# ------------------------------------------------------------------ without Aladin Lite


def test_without_aladin_lite_the_page_still_searches(session, tmp_path, monkeypatch):
    monkeypatch.setenv("VO_CLIP_NODE_MODULES", str(tmp_path / "no-node-modules"))
    page = session.open()
    assert sky_state(page)["error"] == "not installed"
    assert page.text_content("#sky-status") == "Aladin Lite is not installed: run npm ci"
    obs_ids = session.search("a bright compact source")
    page.locator("#results .card .pick").first.click()
    assert page.locator("#results .card").first.get_attribute("class") == "card selected"
    assert obs_ids and not [url for url in session.requests if "/vendor/" in url]
    session.check()


# ---------------------------------------------------------------- the embedded default


@pytest.mark.slow
@needs_aladin
def test_the_demo_archive_through_the_page(browser, demo_first_run, tmp_path):
    """A new user's first query, typed into the page: the same top 10 as `vo-clip query`,
    previews, footprints, and the FITS product of the best match in Aladin Lite."""
    home, first = demo_first_run
    cli = [row["obs_id"] for row in csv.DictReader(io.StringIO(first.stdout))]
    app, server = serve(Config(home=home))
    with server as url:
        session = Session(browser, url)
        try:
            page = session.open()
            page.fill("#top", "10")
            obs_ids = session.search(FIRST_QUERY)
            assert obs_ids == cli
            # the demo index is calibrated: each card shows the match probability too
            assert "vo_clip_match(o.obs_publisher_did" in page.text_content("#adql")
            labels = page.eval_on_selector_all("#results .sim",
                                               "s => s.map(e => e.textContent)")
            percents = [int(re.fullmatch(r"0\.\d{3} · match (\d+) %", s).group(1))
                        for s in labels]
            assert percents == sorted(percents, reverse=True) and percents[0] > 50, labels
            page.wait_for_function("() => Array.from(document.querySelectorAll('#results img'))"
                                   ".slice(0, 4).every(i => i.complete && i.naturalWidth > 0)")
            footprints = page.evaluate("window.voClipAladin.view.allOverlayLayers"
                                       ".find(o => o.name === 'footprints').overlayItems.length")
            assert footprints == 10
            page.locator("#results .card .pick").first.click()
            state = wait_for_fits(page, cli[0])
            if has_route(app, "/products"):
                assert state["fits"] == "shown", state
            page.wait_for_timeout(500)  # let the tiles settle for the picture
            save_screenshot(page, tmp_path, "search-page-demo.png")
            (artifacts_dir() / "search-page-demo-requests.json").write_text(
                json.dumps(sorted(set(session.requests)), indent=1))
            session.check()
        finally:
            session.close()
