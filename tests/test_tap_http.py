"""The TAP service over real HTTP, as clients use it: pyvo, STILTS (taplint and
tapquery, TOPCAT's engine) and plain requests with bad input, against a live server."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import pyvo
import requests
from astropy.io.votable import parse
from conftest import IGNORE_PYVO_SOCKET_LEAK, requires_stilts, taplint

pytestmark = IGNORE_PYVO_SOCKET_LEAK

SIMILAR = ("SELECT TOP 5 obs_id, instrument_name, vo_clip_similarity('a bright compact source')"
           " AS similarity FROM ivoa.ObsCore ORDER BY similarity DESC")


@pytest.fixture(scope="module")
def server(tiny_server):
    return tiny_server


def test_pyvo_search_returns_ranked_similarities(service):
    table = service.search(SIMILAR).to_table()
    assert len(table) == 5
    similarity = list(table["similarity"])
    assert similarity == sorted(similarity, reverse=True)
    assert table["similarity"].dtype.kind == "f"


def test_pyvo_run_async(service):
    table = service.run_async(SIMILAR, maxrec=3).to_table()
    assert list(table.colnames) == ["obs_id", "instrument_name", "similarity"]
    assert len(table) == 3


def test_pyvo_reads_tables_and_capabilities(service):
    names = [table.name for table in service.tables]
    assert names[:2] == ["ivoa.ObsCore", "hst.observations"]
    assert "s_ra" in [c.name for c in service.tables["ivoa.ObsCore"].columns]
    assert (service.maxrec, service.hardlimit) == (10000, 100000)
    tap = next(c for c in service.capabilities if c.standardid == "ivo://ivoa.net/std/TAP")
    forms = [f.form for features in tap.languages[0].languagefeaturelists
             for f in features.features]
    assert "vo_clip_similarity(query VARCHAR) -> DOUBLE" in forms
    assert "CONTAINS" in forms


def test_overflow_is_signalled_to_pyvo(service):
    results = service.search("SELECT obs_id FROM ivoa.ObsCore", maxrec=4)
    assert len(results) == 4 and results.query_status == "OVERFLOW"
    complete = service.search("SELECT TOP 4 obs_id FROM ivoa.ObsCore", maxrec=4)
    assert complete.query_status == "OK"


def test_the_examples_all_run(server, service):
    from lxml import etree

    document = etree.fromstring(requests.get(server + "/tap/examples", timeout=30).content)
    queries = document.xpath("//x:pre[@property='query']/text()",
                             namespaces={"x": "http://www.w3.org/1999/xhtml"})
    assert len(queries) == 6
    for query in queries:
        assert len(service.search(query)) > 0, query


BAD_QUERIES = [
    ("DUFF QUERY", "expected a SELECT"),
    ("SELECT * FROM ivoa.nothing", "unknown table"),
    ("SELECT nothing FROM ivoa.ObsCore", "unknown column"),
    ("SELECT AREA(s_region) FROM ivoa.ObsCore", "not supported"),
    ("SELECT obs_id FROM ivoa.ObsCore; DROP TABLE observations", "2 statements"),
    ("SELECT readfile('/etc/passwd') FROM ivoa.ObsCore", "readfile is not supported"),
    ("SELECT load_extension('/tmp/evil') FROM ivoa.ObsCore", "not supported"),
    ("", "empty"),
    ("SELECT obs_id FROM ivoa.ObsCore WHERE obs_id = '" + "x" * 10_000_000 + "'",
     "characters long"),
]


@pytest.mark.parametrize("query, needle", BAD_QUERIES, ids=[q[:30] for q, _ in BAD_QUERIES])
def test_bad_queries_get_a_votable_error(server, query, needle):
    response = requests.post(server + "/tap/sync", data={"LANG": "ADQL", "QUERY": query},
                             timeout=60)
    _assert_error_document(response, 400, needle)


@pytest.mark.parametrize("params, needle", [
    ({"LANG": "OOBLECK"}, "unsupported LANG"),
    ({"FORMAT": "application/fits"}, "unsupported RESPONSEFORMAT"),
    ({"MAXREC": "lots"}, "MAXREC must be an integer"),
    ({"LANG": None}, "LANG parameter is missing"),
])
def test_bad_parameters_get_a_votable_error(server, params, needle):
    data = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.ObsCore", **params}
    response = requests.get(server + "/tap/sync", params={k: v for k, v in data.items() if v},
                            timeout=30)
    _assert_error_document(response, 400, needle)


def test_huge_top_and_maxrec_are_capped_not_refused(server):
    response = requests.get(server + "/tap/sync", params={
        "LANG": "ADQL", "QUERY": "SELECT TOP 999999999999 obs_id FROM ivoa.ObsCore",
        "MAXREC": "99999999999999"}, timeout=30)
    table = parse(io.BytesIO(response.content), verify="exception").get_first_table()
    assert response.status_code == 200 and len(table.array) == 36


def test_non_utf8_bytes_are_a_usage_error(server):
    body = b"LANG=ADQL&QUERY=SELECT+%FF%FE+FROM+ivoa.ObsCore"
    response = requests.post(server + "/tap/sync", data=body, timeout=30, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    _assert_error_document(response, 400, "syntax error")
    response = requests.get(server + "/tap/sync?LANG=ADQL&QUERY=%C3%28", timeout=30)
    _assert_error_document(response, 400, "")


def test_a_request_larger_than_the_limit_is_refused_with_a_votable(server):
    response = requests.post(server + "/tap/sync", data=b"x" * (50 * 1024 * 1024), timeout=60,
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    _assert_error_document(response, 413, "Too Large")


def test_the_server_keeps_serving_after_bad_input(server, service):
    assert len(service.search("SELECT TOP 2 obs_id FROM ivoa.ObsCore")) == 2


def test_parameter_names_ignore_case_and_unknown_ones_are_ignored(server):
    response = requests.get(server + "/tap/sync", params={
        "lang": "adql", "query": "SELECT TOP 2 obs_id FROM ivoa.ObsCore",
        "responseformat": "csv", "REQUEST": "doQuery", "DUMMY": "ignore-me"}, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert len(response.text.strip().splitlines()) == 3


def test_preview_urls_serve_the_images(server, service):
    (url,) = service.search("SELECT preview_url FROM hst.observations "
                            "WHERE obs_id = 'obs004'")["preview_url"]
    response = requests.get(url, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"] == "image/png"
    assert response.content.startswith(b"\x89PNG")
    missing = requests.get(f"{server}/preview/nope", timeout=30)
    assert missing.status_code == 404 and b"no preview for observation 'nope'" in missing.content
    escape = requests.get(f"{server}/preview/..%2F..%2F..%2Fetc%2Fpasswd", timeout=30)
    assert escape.status_code == 404 and b"root:" not in escape.content


def test_vosi_tables_detail_and_single_tables(server):
    minimal = requests.get(server + "/tap/tables", params={"detail": "min"}, timeout=30)
    assert minimal.status_code == 200 and b"<column>" not in minimal.content
    one = requests.get(server + "/tap/tables/ivoa.ObsCore", timeout=30)
    assert one.status_code == 200 and one.content.count(b"<column>") == 30
    assert requests.get(server + "/tap/tables/ivoa.nope", timeout=30).status_code == 404
    _assert_error_document(requests.get(server + "/tap/tables", params={"detail": "all"},
                                        timeout=30), 400, "DETAIL must be min or max")


def test_vosi_endpoints_refuse_writes(server):
    for path in ("/tap/capabilities", "/tap/tables", "/tap/availability"):
        assert requests.post(server + path, timeout=30).status_code == 405


def _assert_error_document(response, status: int, needle: str) -> None:
    assert response.status_code == status, response.text[:500]
    assert response.headers["Content-Type"].startswith("application/x-votable+xml")
    document = parse(io.BytesIO(response.content), verify="exception")
    resource = document.resources[0]
    status_infos = [info for info in resource.infos if info.name == "QUERY_STATUS"]
    assert [info.value for info in status_infos] == ["ERROR"]
    assert status_infos[0].content.strip() and needle in status_infos[0].content
    assert "Traceback" not in response.text and not resource.tables


# -- STILTS -----------------------------------------------------------------------------

@requires_stilts
def test_taplint_reports_no_errors_and_no_warnings(server):
    messages, report = taplint(server + "/tap")
    assert messages == [], report


@requires_stilts
def test_stilts_tapquery_runs_a_similarity_query(server):
    result = subprocess.run(["stilts", "tapquery", f"tapurl={server}/tap", f"adql={SIMILAR}",
                             "ofmt=csv"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "obs_id,instrument_name,similarity" and len(lines) == 6


# -- async jobs across a restart and a crash -------------------------------------------

def _serve(home, tiny_index, model, port):
    env = {**os.environ, "VO_CLIP_HOME": str(home), "VO_CLIP_INDEX": str(tiny_index),
           "VO_CLIP_MODEL": str(model)}
    process = subprocess.Popen([sys.executable, "-m", "vo_clip", "serve", "--port", str(port)],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(f"http://127.0.0.1:{port}/tap/availability", timeout=5)
            return process
        except requests.ConnectionError:
            assert process.poll() is None, process.stdout.read().decode()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.3)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_async_jobs_survive_a_restart_and_a_crash_ends_in_error(tiny_index, tiny_model_path,
                                                                 tmp_path):
    port = _free_port()
    url = f"http://127.0.0.1:{port}/tap"
    slow = ("SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c, "
            "ivoa.ObsCore d, ivoa.ObsCore e WHERE SIN(a.s_ra + b.s_ra + c.s_ra + d.s_ra) > 2")
    server = _serve(tmp_path, tiny_index, tiny_model_path, port)
    session = requests.Session()
    try:
        done = pyvo.dal.AsyncTAPJob.create(url, SIMILAR, session=session)
        done.run().wait(timeout=60)
        assert done.phase == "COMPLETED"
        crashed = pyvo.dal.AsyncTAPJob.create(url, slow, session=session)
        crashed.run()
        deadline = time.monotonic() + 30
        while crashed.phase != "EXECUTING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        server.send_signal(signal.SIGKILL)  # a crash: no clean-up runs
        server.communicate(timeout=30)
        session.close()
    server = _serve(tmp_path, tiny_index, tiny_model_path, port)
    session = requests.Session()
    try:
        again = pyvo.dal.AsyncTAPJob(done.url, session=session)
        assert again.phase == "COMPLETED"
        assert len(again.fetch_result().to_table()) == 5
        crashed = pyvo.dal.AsyncTAPJob(crashed.url, session=session)
        assert crashed.phase == "ERROR"
        with pytest.raises(pyvo.dal.DALQueryError, match="stopped while this job was executing"):
            crashed.raise_if_error()
    finally:
        session.close()
        server.terminate()
        server.communicate(timeout=30)
