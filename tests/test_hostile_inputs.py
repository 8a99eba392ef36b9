"""Hostile input at every endpoint of a live loopback server: never a 500, always the
standard error of the endpoint's protocol.

Each case is one request a careless or hostile client may send. What it must get back:

- VO endpoints (TAP sync, DataLink services, previews, products, proposals, image
  search): 2xx/3xx, or a 4xx/503 DALI error VOTable (``QUERY_STATUS=ERROR``, a message);
- UWS resources (``/tap/async``): 2xx/3xx, or a 4xx/503 with a one-line ``Fault: ...``
  text/plain message (routing errors there are DALI VOTables);
- OAI-PMH: 200 with an ``oai:error`` code, or a normal response.

Besides the status, no request may make the service log an unexpected error (which is
what answers 500). The cases come in families, one per endpoint, so that a new
endpoint's family is easy to add.
"""

from __future__ import annotations

import io
import logging
import re

import numpy as np
import pytest
import requests
from astropy.io import fits
from astropy.io.votable import parse
from PIL import Image, PngImagePlugin

DID = "ivo://example.org/vo_clip?obs003"
GOOD_QUERY = "SELECT TOP 2 obs_id FROM ivoa.ObsCore"
#: Values any parameter may be given: empty, blank, long, control, non-ASCII, markup,
#: a surrogate escape, SQL and path tricks, numbers out of any range.
ODD_VALUES = ["", " ", "x" * 5000, "\x00\x01\x1f", "é\u2603\U0001F600", "<a>&amp;</a>",
              "%ff%fe", "'; DROP TABLE observations; --", "../../etc/passwd", "-1", "1e309",
              "NaN", "9" * 40, "1.5", "0x10", "ivo://", "ivo://example.org/vo_clip?"]

HOSTILE_ADQL = [
    "SELECT TRUNCATE(obs_id, 1) FROM ivoa.ObsCore",
    "SELECT COT(target_name), MOD(obs_id, 2) FROM ivoa.ObsCore",
    "SELECT TRUNCATE(x.obs_id) FROM (SELECT obs_id FROM ivoa.ObsCore) AS x",
    "SELECT TRUNCATE(s_ra, 1e308), TRUNCATE(s_ra, -1e308), POWER(10, 1e6) FROM ivoa.ObsCore",
    "SELECT EXP(1e308), LOG(0), LOG10(-1), SQRT(-1), ASIN(2), ATAN2(0, 0) FROM ivoa.ObsCore",
    "SELECT 1/0, 1e309, -1e309 FROM ivoa.ObsCore",
    "SELECT TOP -1 obs_id FROM ivoa.ObsCore",
    "SELECT TOP 1e3 obs_id FROM ivoa.ObsCore",
    "SELECT TOP 99999999999999999999999999 obs_id FROM ivoa.ObsCore",
    "SELECT obs_id FROM ivoa.ObsCore WHERE " + " OR ".join(f"s_ra={i}" for i in range(7000)),
    "SELECT obs_id FROM ivoa.ObsCore WHERE s_ra IN (" + ",".join(map(str, range(20000))) + ")",
    "SELECT " + ",".join(["*"] * 500) + " FROM ivoa.ObsCore",
    "SELECT " + "(" * 5000 + "1" + ")" * 5000 + " FROM ivoa.ObsCore",
    "SELECT TOP 1 obs_id FROM ivoa.ObsCore ORDER BY "
    + " + ".join(f"vo_clip_similarity('text {i}')" for i in range(40)),
    "SELECT vo_clip_similarity('\x00') FROM ivoa.ObsCore",
    "SELECT vo_clip_similarity_to('ivo://example.org/vo_clip?') FROM ivoa.ObsCore",
    "SELECT vo_clip_similarity_to('nope') FROM ivoa.ObsCore",
    "SELECT * FROM ivoa.ObsCore WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), "
    "CIRCLE('ICRS', 1e309, 'x', -5))",
    "SELECT * FROM ivoa.ObsCore WHERE 1 = CONTAINS(POINT('ICRS', obs_id, s_dec), "
    "CIRCLE('ICRS', 1, 2, 3))",
    "SELECT * FROM ivoa.ObsCore WHERE 1 = INTERSECTS(s_region, POLYGON('ICRS', "
    + ", ".join("0" for _ in range(2000)) + "))",
    "SELECT DISTANCE(POINT('ICRS', 1, 100), POINT('ICRS', 'a', 2)) FROM ivoa.ObsCore",
    "SELECT s FROM (SELECT s||s||s||s AS s FROM (SELECT s||s||s||s AS s FROM (SELECT "
    "s||s||s||s AS s FROM (SELECT s||s||s||s AS s FROM (SELECT s||s||s||s AS s FROM "
    "(SELECT s||s||s||s AS s FROM (SELECT s||s||s||s AS s FROM (SELECT s||s||s||s AS s "
    "FROM (SELECT s||s||s||s AS s FROM (SELECT obs_id AS s FROM ivoa.ObsCore) AS a) AS b) "
    "AS c) AS d) AS e) AS f) AS g) AS h) AS i) AS j",
    "SELECT obs_id FROM ivoa.ObsCore WHERE obs_id LIKE '" + "%_" * 3000 + "'",
    "SELECT x FROM (SELECT obs_id AS x FROM (SELECT obs_id FROM (SELECT obs_id FROM (SELECT "
    "obs_id FROM ivoa.ObsCore) AS a) AS b) AS c) AS d",
    "SELECT COUNT(*) FROM ivoa.ObsCore a JOIN ivoa.ObsCore b ON a.obs_id = b.obs_id "
    "JOIN ivoa.ObsCore c USING (obs_id)",
    "SELECT a.obs_id FROM ivoa.ObsCore a, hst.observations a",
    "SELECT obs_id FROM ivoa.ObsCore WHERE obs_id = ?",
    "SELECT obs_id FROM TAP_SCHEMA.tables",
    "SELECT table_name FROM TAP_SCHEMA.tables WHERE table_name LIKE 'ivoa%' ESCAPE '\\'",
    "SELECT obs_id FROM ivoa.ObsCore ORDER BY 99",
    "SELECT obs_id FROM ivoa.ObsCore GROUP BY 99",
    "SELECT MAX(MAX(s_ra)) FROM ivoa.ObsCore",
    "SELECT obs_id FROM ivoa.ObsCore WHERE s_ra = (SELECT s_ra FROM ivoa.ObsCore)",
    "SELECT \"\x00\" FROM ivoa.ObsCore",
    "SELECT obs_id FROM \"ivoa\".\"ObsCore\"",
    "SELECT obs_id FROM ivoa.ObsCore WHERE obs_id = '" + "é" * 60_000 + "'",
    "SELECT obs_id FROM ivoa.ObsCore WHERE obs_id = '" + "x" * 150_000 + "'",
    "SELECT ROUND(s_ra, 400), ROUND(s_ra, -400), ROUND(s_ra, 1e30) FROM ivoa.ObsCore",
    "SELECT RAND(1e400), RAND(-0), RAND(NULL) FROM ivoa.ObsCore",
    "SELECT * FROM ivoa.ObsCore AS \"\"",
    "SELECT 'a' || NULL || 1 FROM ivoa.ObsCore",
    "/* */",
    "--",
    "SELECT",
    "\x00",
]


def _sync(query: str, **extra):
    return ("POST", "/tap/sync", {"data": {"LANG": "ADQL", "QUERY": query, **extra}})


def _tap_sync_cases():
    cases = [_sync(q) for q in HOSTILE_ADQL]
    for name in ("LANG", "MAXREC", "RESPONSEFORMAT", "FORMAT", "UPLOAD", "REQUEST", "QUERY"):
        for value in ODD_VALUES:
            data = {"LANG": "ADQL", "QUERY": GOOD_QUERY, name: value}
            cases.append(("GET", "/tap/sync", {"params": data}))
    cases += [
        ("GET", "/tap/sync", {"params": [("LANG", "ADQL"), ("QUERY", GOOD_QUERY),
                                         ("MAXREC", "1"), ("MAXREC", "2")]}),
        ("POST", "/tap/sync", {"data": b"LANG=ADQL&QUERY=SELECT+obs_id+FROM+ivoa.ObsCore+WHERE"
                                       b"+obs_id+%3D+%27%ED%A0%80%27",  # a lone surrogate
                               "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("POST", "/tap/sync", {"data": b"LANG=ADQL&QUERY=%ff%fe%00",
                               "headers": {"Content-Type": "application/x-www-form-urlencoded"}}),
        ("POST", "/tap/sync", {"data": b"\xff\xfe" * 100,
                               "headers": {"Content-Type": "multipart/form-data; boundary=x"}}),
        ("POST", "/tap/sync", {"data": b"{}", "headers": {"Content-Type": "application/json"}}),
        ("POST", "/tap/sync", {"files": {"QUERY": ("q.txt", GOOD_QUERY.encode())},
                               "data": {"LANG": "ADQL"}}),
        ("PUT", "/tap/sync", {}), ("DELETE", "/tap/sync", {}),
    ]
    return cases


def _vosi_cases():
    cases = [("GET", f"/tap/{what}", {}) for what in ("capabilities", "availability",
                                                       "tables", "examples", "")]
    cases += [("GET", "/tap/tables", {"params": {"DETAIL": v}}) for v in ODD_VALUES[:8]]
    cases += [("GET", "/tap/tables/" + name, {}) for name in (
        "nope", "ivoa.ObsCore.x", "%00", "é", "x" * 3000, "..%2F..%2Fetc")]
    cases += [(m, f"/tap/{what}", {}) for m in ("POST", "PUT", "DELETE")
              for what in ("capabilities", "availability", "tables")]
    return cases


def _datalink_cases():
    cases = []
    for endpoint in ("links", "similar", "describe"):
        for value in ODD_VALUES + ["ivo://other.org/x?y", DID + "\x00", DID + "%00"]:
            cases.append(("GET", f"/datalink/{endpoint}", {"params": {"ID": value}}))
        for name in ("TOP", "RESPONSEFORMAT"):
            for value in ODD_VALUES:
                cases.append(("GET", f"/datalink/{endpoint}",
                              {"params": {"ID": DID, name: value}}))
        cases += [("GET", f"/datalink/{endpoint}", {}),
                  ("GET", f"/datalink/{endpoint}", {"params": [("ID", DID), ("ID", "x")]}),
                  ("POST", f"/datalink/{endpoint}", {"data": b"ID=%ff%fe", "headers": {
                      "Content-Type": "application/x-www-form-urlencoded"}}),
                  ("DELETE", f"/datalink/{endpoint}", {})]
    cases.append(("GET", "/datalink/links", {"params": [("ID", DID)] * 500}))
    cases.append(("GET", "/datalink/nothing", {}))
    return cases


def _observation_cases():
    names = ["nope", "%00", "é", "x" * 3000, "..", "%2E%2E%2Fetc%2Fpasswd", "obs003%00",
             " ", "obs003.png", "*"]
    cases = []
    for name in names:
        cases += [("GET", f"/preview/{name}", {}), ("GET", f"/products/{name}.fits", {}),
                  ("GET", f"/proposals/{name}", {})]
    cases += [("GET", "/products/obs003.fits", {"headers": {"If-None-Match": 'W/"x", "", *' * 20,
                                                          "Range": "bytes=99999999-"}}),
              ("GET", "/preview/obs003", {"headers": {"If-Modified-Since": "yesterday",
                                                     "Range": "bytes=-0,5-1,x"}}),
              ("POST", "/preview/obs003", {}), ("DELETE", "/products/obs003.fits", {})]
    return cases


def _png(**kw) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (20, 40, 60)).save(buffer, "PNG", **kw)
    return buffer.getvalue()


def _text_bomb(kind: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    text = "x" * (PngImagePlugin.MAX_TEXT_CHUNK + 10)
    if kind == "zTXt":
        info.add_text("c", text, zip=True)
    else:
        info.add_itxt("c", text, zip=True)
    return _png(pnginfo=info)


def _fits_card_file(*cards: tuple[str, str]) -> bytes:
    header = b"".join(f"{k:<8}= {v:>20}".ljust(80).encode() for k, v in cards) + b"END".ljust(80)
    header += b" " * (-len(header) % 2880)
    return header + b"\0" * 2880


def _compressed_claiming(pixels_per_side: int) -> bytes:
    buffer = io.BytesIO()
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(np.zeros((64, 64), np.int16))]).writeto(
        buffer)
    return re.sub(rb"(ZNAXIS[12] = ) {18}64", lambda m: m.group(1) + b"%20d" % pixels_per_side,
                  buffer.getvalue())


def _image_cases():
    png = _png()
    uploads = {
        "empty": b"", "text": b"hello", "truncated png": png[:40], "png header only": png[:8],
        "zTXt bomb": _text_bomb("zTXt"), "iTXt bomb": _text_bomb("iTXt"),
        "gif": _gif(), "tiff": _tiff(), "svg": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "fits no end": b"SIMPLE  =                    T" + b" " * 50,
        "fits naxis 1000": _fits_card_file(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "1000")),
        "fits naxisn huge": _fits_card_file(("SIMPLE", "T"), ("BITPIX", "16"), ("NAXIS", "2"),
                                            ("NAXIS1", str(2 ** 40)), ("NAXIS2", str(2 ** 40))),
        "fits claims 10 GB": _fits_card_file(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "2"),
                                             ("NAXIS1", "100000"), ("NAXIS2", "100000")),
        "fits bitpix 7": _fits_card_file(("SIMPLE", "T"), ("BITPIX", "7"), ("NAXIS", "2"),
                                         ("NAXIS1", "4"), ("NAXIS2", "4")),
        "fits missing naxis2": _fits_card_file(("SIMPLE", "T"), ("BITPIX", "8"), ("NAXIS", "2"),
                                               ("NAXIS1", "4")),
        "tile-compressed bomb": _compressed_claiming(100_000),
        "fits table only": _fits_table(),
    }
    cases = [("POST", "/search/image", {"files": {"IMAGE": (name, data)}})
             for name, data in uploads.items()]
    for name in ("TOP", "RA", "DEC", "RADIUS", "TMIN", "TMAX", "INSTRUMENT", "RESPONSEFORMAT"):
        for value in ODD_VALUES:
            cone = {} if name in ("RA", "DEC", "RADIUS") else {"RA": "1", "DEC": "2",
                                                               "RADIUS": "3"}
            cases.append(("POST", "/search/image", {"files": {"IMAGE": ("ok.png", png)},
                                                    "data": {**cone, name: value}}))
    cases += [("POST", "/search/image", {}), ("POST", "/search/image", {"data": {"IMAGE": "x"}}),
              ("GET", "/search/image", {}),
              ("POST", "/search/image", {"files": {"IMAGE": ("a\x00\u2603.png", png)}})]
    return cases


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, "GIF")
    return buffer.getvalue()


def _tiff() -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (4, 4)).save(buffer, "TIFF")
    return buffer.getvalue()


def _fits_table() -> bytes:
    buffer = io.BytesIO()
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="K",
                                                       array=np.arange(3))])
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(buffer)
    return buffer.getvalue()


ODD_OAI = ODD_VALUES[:10] + ["é.é", "e30.é", "0001-01-01", "9999-99-99T99:99:99Z"]


def _oai_cases():
    cases = [("GET", "/oai", {"params": {"verb": v}}) for v in ODD_VALUES]
    for verb in ("GetRecord", "ListRecords", "ListIdentifiers", "ListSets", "Identify",
                 "ListMetadataFormats"):
        for name in ("identifier", "metadataPrefix", "from", "until", "set", "resumptionToken"):
            for value in ODD_OAI:
                params = {"verb": verb, "metadataPrefix": "ivo_vor", name: value}
                cases.append(("GET", "/oai", {"params": params}))
    cases += [("POST", "/oai", {"data": b"verb=%ff%fe", "headers": {
        "Content-Type": "application/x-www-form-urlencoded"}}), ("PUT", "/oai", {})]
    return cases


FAMILIES = {"tap-sync": _tap_sync_cases, "vosi": _vosi_cases, "datalink": _datalink_cases,
            "observations": _observation_cases, "image": _image_cases, "oai": _oai_cases}


# -- checking answers --------------------------------------------------------------------

def _assert_dali_error(response) -> None:
    assert response.headers["Content-Type"].startswith("application/x-votable+xml"), \
        (response.status_code, response.headers["Content-Type"], response.text[:300])
    document = parse(io.BytesIO(response.content), verify="exception")
    status = [i for i in document.resources[0].infos if i.name == "QUERY_STATUS"]
    assert [i.value for i in status] == ["ERROR"] and status[0].content.strip()


def _assert_uws_error(response) -> None:
    if response.headers["Content-Type"].startswith("application/x-votable+xml"):
        _assert_dali_error(response)  # a routing error (405) under /tap
        return
    assert response.headers["Content-Type"].startswith("text/plain"), response.text[:300]
    assert re.match(r"\w+Fault: \S", response.text), response.text[:300]


def _assert_oai(response) -> None:
    assert response.status_code == 200 or response.status_code == 405, response.text[:300]
    if response.status_code == 200:
        assert response.headers["Content-Type"].startswith("text/xml")
        assert "<oai:OAI-PMH" in response.text


def _check(response, path: str) -> None:
    assert response.status_code != 500, response.text[:500]
    assert response.status_code in (200, 206, 303, 304, 400, 404, 405, 413, 416, 503), \
        (response.status_code, response.text[:300])
    assert "Traceback" not in response.text
    if path.startswith("/oai"):
        _assert_oai(response)
    elif response.status_code >= 400 and path.startswith("/tap/async"):
        _assert_uws_error(response)
    elif response.status_code >= 400 and response.status_code not in (405, 416):
        _assert_dali_error(response)


@pytest.fixture(scope="module")
def server(tiny_server):
    return tiny_server


@pytest.fixture
def no_unexpected_errors(caplog):
    """The service logs every exception it did not expect (and answers 500 for it)."""
    with caplog.at_level(logging.ERROR):
        yield
    unexpected = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert not unexpected, [r.getMessage() for r in unexpected]


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_requests_get_standard_errors(server, family, no_unexpected_errors):
    failures = []
    with requests.Session() as session:
        for method, path, options in FAMILIES[family]():
            response = session.request(method, server + path, timeout=120,
                                       allow_redirects=False, **options)
            try:
                _check(response, path)
            except AssertionError as exc:
                failures.append(f"{method} {path} {str(options)[:150]}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


# -- async jobs: every UWS sub-resource ---------------------------------------------------

def _new_job(session, server, **params) -> str:
    response = session.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": GOOD_QUERY,
                                                         **params}, allow_redirects=False,
                            timeout=30)
    assert response.status_code == 303, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


UWS_WRITES = [
    ("", "PHASE"), ("", "ACTION"), ("", "QUERY"), ("/phase", "PHASE"),
    ("/executionduration", "EXECUTIONDURATION"), ("/destruction", "DESTRUCTION"),
    ("/parameters", "QUERY"), ("/parameters", "X" * 300),
]
UWS_READS = ["", "/phase", "/executionduration", "/destruction", "/quote", "/owner",
             "/parameters", "/results", "/results/result", "/error", "/nothing", "/results/x"]
ODD_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0000-01-01",
             "2026-02-30T00:00:00Z", "2026-01-01T25:00:00Z", "+12026-01-01", "2026-W01-1",
             "1e10", "now", "2026-01-01T00:00:00+99:00"]


def test_hostile_requests_to_every_uws_resource(server, no_unexpected_errors):
    failures = []

    def check(method, url, **options):
        response = session.request(method, url, timeout=60, allow_redirects=False, **options)
        try:
            _check(response, "/tap/async")
        except AssertionError as exc:
            failures.append(f"{method} {url[len(server):]} {str(options)[:120]}: "
                            f"{str(exc)[:300]}")
        return response

    with requests.Session() as session:
        jobs = server + "/tap/async"
        for name in ("PHASE", "AFTER", "LAST"):
            for value in ODD_VALUES + ODD_TIMES:
                check("GET", jobs, params={name: value})
        check("GET", jobs, params={"LAST": "1" + "0" * 23})
        for value in ODD_VALUES:
            check("POST", jobs, data={"LANG": "ADQL", "QUERY": GOOD_QUERY, "PHASE": value})
        check("POST", jobs, data={f"P{i}": "x" * 4 * 1024 * 1024 for i in range(4)})
        check("POST", jobs, data={f"P{i}": "1" for i in range(500)})
        check("POST", jobs, data=b"\xff\xfe=\x00", headers={
            "Content-Type": "application/x-www-form-urlencoded"})
        check("PUT", jobs)
        for job_state in ("pending", "error", "completed"):
            job_id = _new_job(session, server, **(
                {"QUERY": "SELECT TRUNCATE(obs_id) FROM ivoa.ObsCore"}
                if job_state == "error" else {}))
            url = f"{jobs}/{job_id}"
            if job_state != "pending":
                check("POST", url + "/phase", data={"PHASE": "RUN"})
                check("GET", url, params={"WAIT": "30"})
            for child, name in UWS_WRITES:
                for value in ODD_VALUES + ODD_TIMES:
                    check("POST", url + child, data={name: value})
            for child in UWS_READS:
                check("GET", url + child)
                check("GET", url + child, params={"WAIT": "1e400", "PHASE": "\x00"})
                check("PUT", url + child)
            for value in ODD_VALUES:
                if value != "-1":  # a valid WAIT: block up to the cap, on a PENDING job
                    check("GET", url, params={"WAIT": value})
            # after all that, the job still answers
            document = check("GET", url)
            assert document.status_code == 200, (job_state, document.text[:300])
        for job_id in ("nope", "x" * 3000, "%00", "..", "é"):
            for child in UWS_READS:
                check("GET", f"{jobs}/{job_id}{child}")
            check("DELETE", f"{jobs}/{job_id}")
    assert not failures, "\n".join(failures[:40]) + f"\n({len(failures)} in all)"


def test_a_job_refused_by_a_limit_is_error_with_the_limits_name(server):
    query = ("SELECT TOP 1 obs_id FROM ivoa.ObsCore ORDER BY "
             + " + ".join(f"vo_clip_similarity('text {i}')" for i in range(20)))
    with requests.Session() as session:
        job_id = _new_job(session, server, QUERY=query, PHASE="RUN")
        url = f"{server}/tap/async/{job_id}"
        phase = session.get(url, params={"WAIT": "30"}, timeout=60)
        for _ in range(10):
            phase = session.get(url + "/phase", timeout=30).text
            if phase not in ("QUEUED", "EXECUTING"):
                break
            session.get(url, params={"WAIT": "30"}, timeout=60)
        assert phase == "ERROR"
        error = session.get(url + "/error", timeout=30)
        _assert_dali_error(error)
        assert "LimitFault" in error.text and "query_max_texts" in error.text


def test_the_server_still_serves_after_all_that(server):
    response = requests.get(server + "/tap/sync", params={"LANG": "ADQL", "QUERY": GOOD_QUERY},
                            timeout=30)
    assert response.status_code == 200 and b"obs000" in response.content
