"""UWS 1.1 jobs (``/tap/async``): lifecycle, persistence and documents.

A fake executor stands in for TAP: it echoes QUERY as a text/plain result, fails on
QUERY=BAD (a UsageFault) or CRASH (a bug), and sleeps on QUERY=SLOW while watching
``cancelled()``. Documents are checked with pyvo's UWS parser and, when lxml and
STILTS' UWS 1.1 schema are on the machine, against the XSD that taplint uses.

Every test that does not look at SQLite's own files runs on both job stores: SQLite
(``[sqlite]``) and PostgreSQL (``[postgres]``, marked ``postgres``: a throwaway
cluster, see tests/postgres_cluster.py). What only two replicas can show is in
tests/test_uws_postgres.py.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timedelta, timezone
from xml.sax.saxutils import escape

import pytest
from conftest import missing_tool
from flask import Flask
from pyvo.io.uws import parse_job, parse_job_list

from service.uws import bp
from vo_clip.config import Config
from vo_clip.vo import uws
from vo_clip.vo.faults import NotFoundFault, UsageFault

LIMITS = uws.UwsLimits(wait_max=1)
NS = {"uws": uws.UWS_NS, "xlink": "http://www.w3.org/1999/xlink",
      "vot": "http://www.ivoa.net/xml/VOTable/v1.3"}
BASE = "http://localhost/tap/async"


def fake_execute(params, deadline, cancelled, base_url=None):
    query = params.get("QUERY", "")
    if query == "BAD":
        raise UsageFault("cannot parse the query BAD")
    if query == "CRASH":
        raise RuntimeError("secret internals")
    if query == "SLOW":
        stop = time.time() + float(params.get("SLEEP", "10"))
        while not cancelled() and time.time() < stop:
            time.sleep(0.01)
    return uws.JobOutput(query.encode(), "text/plain")


def stand_in_error_votable(message: str) -> bytes:
    """A DALI error document, used only while vo_clip.vo.votable lacks its own."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<VOTABLE version="1.4" '
            'xmlns="http://www.ivoa.net/xml/VOTable/v1.3"><RESOURCE type="results">'
            f'<INFO name="QUERY_STATUS" value="ERROR">{escape(message)}</INFO>'
            '</RESOURCE></VOTABLE>').encode()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def make_manager(request):
    """``make_manager(root, execute, limits, **options)``: a JobManager on this test's store.

    On PostgreSQL every manager of one test shares the test's database, as replicas
    (or a restarted service) would.
    """
    if request.param == "sqlite":
        return uws.JobManager
    from vo_clip.vo.uws_postgres import PostgresJobStore

    dsn = request.getfixturevalue("postgres_dsn")

    def make(root, execute, limits=uws.UwsLimits(), workers=2, **options):
        return uws.JobManager(root, execute, limits, workers,
                              store=PostgresJobStore(dsn, "vo_clip"), **options)
    return make


@pytest.fixture
def manager(tmp_path, make_manager):
    with make_manager(tmp_path / "jobs", fake_execute, LIMITS) as jobs:
        yield jobs


@pytest.fixture
def client(tmp_path, manager, monkeypatch):
    from vo_clip.vo import votable

    if not hasattr(votable, "error_votable"):
        monkeypatch.setattr(votable, "error_votable", stand_in_error_votable, raising=False)
    app = Flask(__name__)
    app.extensions["vo_clip.config"] = Config(home=tmp_path)
    app.extensions["vo_clip.uws"] = manager
    app.register_blueprint(bp, url_prefix="/tap/async")
    return app.test_client()


def create(client, **params) -> str:
    response = client.post("/tap/async", data=params)
    assert response.status_code == 303, response.data
    job_id = response.headers["Location"].rsplit("/", 1)[1]
    assert response.headers["Location"] == f"{BASE}/{job_id}"
    return job_id


def job_doc(client, job_id: str, query: str = ""):
    response = client.get(f"/tap/async/{job_id}{query}")
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    return parse_job(io.BytesIO(response.data)), response.data


def finish(client, job_id: str):
    """Wait as pyvo does: WAIT=-1 until the job is no longer active."""
    for _ in range(30):
        job, _ = job_doc(client, job_id, "?WAIT=-1")
        if job.phase not in uws.ACTIVE_PHASES:
            return job
    raise AssertionError(f"job {job_id} still {job.phase}")


def text(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def stored_ids(manager) -> set[str]:
    """The jobs in the store itself (a listing through the manager would reap first)."""
    return {row["job_id"] for row in manager._store.list(None, None, None)}


# -- lifecycle over HTTP ------------------------------------------------------------------

def test_create_gives_303_and_a_pending_job_document(client):
    job_id = create(client, LANG="ADQL", QUERY="hello", RUNID="run-1", REQUEST="doQuery")
    job, doc = job_doc(client, job_id)
    assert (job.jobid, job.phase, job.runid) == (job_id, "PENDING", "run-1")
    assert job.executionduration.value == 600
    assert job.starttime is None and job.endtime is None
    assert {p.id_: p.content for p in job.parameters} == {
        "LANG": "ADQL", "QUERY": "hello", "RUNID": "run-1", "REQUEST": "doQuery"}
    assert len(job.results) == 0 and job.errorsummary is None
    root = ET.fromstring(doc)
    assert root.tag == f"{{{uws.UWS_NS}}}job" and root.get("version") == "1.1"
    assert [child.tag.split("}")[1] for child in root] == [
        "jobId", "runId", "ownerId", "phase", "creationTime", "startTime", "endTime",
        "executionDuration", "destruction", "parameters", "results"]
    assert root.find("uws:creationTime", NS).text.endswith("Z")


def test_parameters_are_replaced_whatever_the_case(client):
    job_id = create(client, RUNID="TAPLINT-001", QUERY="first", LANG="ADQL")
    response = client.post(f"/tap/async/{job_id}/parameters", data={"runId": "TAPLINT-002"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{BASE}/{job_id}"
    assert client.post(f"/tap/async/{job_id}", data={"query": "second"}).status_code == 303
    job, _ = job_doc(client, job_id)
    assert [(p.id_, p.content) for p in job.parameters] == [
        ("RUNID", "TAPLINT-002"), ("QUERY", "second"), ("LANG", "ADQL")]
    assert job.runid == "TAPLINT-002"
    doc = ET.fromstring(client.get(f"/tap/async/{job_id}/parameters").data)
    assert [p.get("id") for p in doc.findall("uws:parameter", NS)] == ["RUNID", "QUERY", "LANG"]


def test_run_leaves_pending_before_the_303_and_the_result_is_served(client):
    job_id = create(client, query="hello")  # lower-case name: the executor sees QUERY
    response = client.post(f"/tap/async/{job_id}/phase", data={"PHASE": "RUN"})
    assert response.status_code == 303
    assert response.headers["Location"] == f"{BASE}/{job_id}"
    assert text(client, f"/tap/async/{job_id}/phase") != "PENDING"
    job = finish(client, job_id)
    assert job.phase == "COMPLETED" and job.starttime and job.endtime
    [result] = job.results
    assert result.id_ == "result" and result.href == f"{BASE}/{job_id}/results/result"
    assert result.mimetype == "text/plain" and result.size == 5
    listed = ET.fromstring(client.get(f"/tap/async/{job_id}/results").data)
    assert listed.find("uws:result", NS).get(f"{{{NS['xlink']}}}href") == result.href
    response = client.get(f"/tap/async/{job_id}/results/result")
    assert (response.status_code, response.data, response.mimetype) == (200, b"hello",
                                                                       "text/plain")
    assert client.get(f"/tap/async/{job_id}/error").status_code == 404


def test_phase_run_at_creation_starts_the_job(client):
    job_id = create(client, QUERY="at once", PHASE="RUN")
    assert text(client, f"/tap/async/{job_id}/phase") != "PENDING"
    assert finish(client, job_id).phase == "COMPLETED"


def error_message(client, job_id: str) -> str:
    response = client.get(f"/tap/async/{job_id}/error")
    assert response.status_code == 200
    assert response.mimetype == "application/x-votable+xml"
    info = ET.fromstring(response.data).find(
        "vot:RESOURCE[@type='results']/vot:INFO[@name='QUERY_STATUS']", NS)
    assert info.get("value") == "ERROR"
    return info.text


def test_a_fault_makes_the_job_error_with_its_message(client):
    job_id = create(client, QUERY="BAD", PHASE="RUN")
    job = finish(client, job_id)
    assert job.phase == "ERROR"
    assert job.errorsummary.type_ == "fatal" and job.errorsummary.has_detail
    _, doc = job_doc(client, job_id)
    message = ET.fromstring(doc).find("uws:errorSummary/uws:message", NS).text
    assert message == "UsageFault: cannot parse the query BAD"
    assert error_message(client, job_id) == message
    assert client.get(f"/tap/async/{job_id}/results/result").status_code == 404
    assert len(job.results) == 0


def test_a_bug_in_the_executor_is_logged_not_shown(client, caplog):
    job_id = create(client, QUERY="CRASH", PHASE="RUN")
    assert finish(client, job_id).phase == "ERROR"
    _, doc = job_doc(client, job_id)
    assert b"FatalFault: internal error while executing the job" in doc
    assert b"secret" not in doc and "secret" not in error_message(client, job_id)
    assert "secret internals" in caplog.text and "Traceback" in caplog.text


def test_abort_stops_the_executor_and_is_final(client, manager):
    job_id = create(client, QUERY="SLOW", PHASE="RUN")
    assert client.post(f"/tap/async/{job_id}/phase", data={"phase": "ABORT"}).status_code == 303
    job, _ = job_doc(client, job_id)
    assert job.phase == "ABORTED" and job.endtime is not None
    deadline = time.monotonic() + 5
    while job_id in manager._active and time.monotonic() < deadline:
        time.sleep(0.01)  # the executor saw cancelled() and returned
    assert job_id not in manager._active
    assert text(client, f"/tap/async/{job_id}/phase") == "ABORTED"
    response = client.post(f"/tap/async/{job_id}/phase", data={"PHASE": "RUN"})
    assert response.status_code == 400
    assert b"no transition from ABORTED to QUEUED" in response.data
    assert client.post(f"/tap/async/{job_id}/phase", data={"PHASE": "FLY"}).status_code == 400


CHILDREN = ["", "/phase", "/executionduration", "/destruction", "/quote", "/owner",
            "/parameters", "/results", "/results/result", "/error"]


@pytest.mark.parametrize("how", ["DELETE", "ACTION=DELETE"])
def test_delete_redirects_to_the_list_then_everything_is_gone(client, manager, how):
    job_id = create(client, QUERY="SLOW", PHASE="RUN")
    if how == "DELETE":
        response = client.delete(f"/tap/async/{job_id}")
    else:
        response = client.post(f"/tap/async/{job_id}", data={"action": "DELETE"})
    assert response.status_code == 303 and response.headers["Location"] == BASE
    for child in CHILDREN:
        response = client.get(f"/tap/async/{job_id}{child}")
        assert response.status_code == 404, child
        assert response.mimetype == "text/plain"
    assert not (manager.root / job_id).exists()
    assert manager._store.get(job_id) is None and manager._store.result(job_id) is None
    assert job_id not in [j.jobid for j in parse_job_list(io.BytesIO(client.get(
        "/tap/async").data))]


def test_unknown_resources_and_methods(client):
    job_id = create(client, QUERY="x")
    for url in ["/tap/async/nope", "/tap/async/nope/phase", f"/tap/async/{job_id}/bogus",
                f"/tap/async/{job_id}/results/other", "/tap/async/../../etc/phase"]:
        response = client.get(url)
        assert response.status_code == 404, url
        assert b"Traceback" not in response.data
    assert client.get(f"/tap/async/{job_id}/bogus").mimetype == "text/plain"
    assert client.put(f"/tap/async/{job_id}").status_code == 405
    assert client.put(f"/tap/async/{job_id}/phase").status_code == 405
    assert client.put("/tap/async").status_code == 405
    assert client.post(f"/tap/async/{job_id}", data={"ACTION": "EXPLODE"}).status_code == 400


def test_job_list_filters(client):
    first = create(client, QUERY="one", PHASE="RUN", RUNID="r1")
    finish(client, first)
    time.sleep(0.01)
    second, third = create(client, QUERY="two"), create(client, QUERY="three")

    def listed(query=""):
        response = client.get(f"/tap/async{query}")
        assert response.status_code == 200 and response.mimetype == "text/xml"
        return [(j.jobid, j.phase) for j in parse_job_list(io.BytesIO(response.data))]

    assert set(listed()) == {(first, "COMPLETED"), (second, "PENDING"), (third, "PENDING")}
    assert set(listed("?PHASE=PENDING")) == {(second, "PENDING"), (third, "PENDING")}
    assert len(listed("?PHASE=PENDING&phase=COMPLETED")) == 3
    assert listed("?LAST=1") in ([(third, "PENDING")], [(second, "PENDING")])
    assert listed("?LAST=0") == []
    created = parse_job(io.BytesIO(client.get(f"/tap/async/{first}").data))
    after = ET.fromstring(client.get(f"/tap/async/{first}").data).find(
        "uws:creationTime", NS).text
    assert created.creationtime is not None
    assert {j for j, _ in listed(f"?AFTER={after}")} == {second, third}
    root = ET.fromstring(client.get("/tap/async").data)
    assert root.tag == f"{{{uws.UWS_NS}}}jobs" and root.get("version") == "1.1"
    ref = root.find(f"uws:jobref[@id='{first}']", NS)
    assert ref.get(f"{{{NS['xlink']}}}href") == f"{BASE}/{first}"
    assert ref.find("uws:runId", NS).text == "r1"
    for bad in ["?PHASE=SLEEPING", "?LAST=-1", "?LAST=many", "?AFTER=yesterday"]:
        assert client.get(f"/tap/async{bad}").status_code == 400, bad


def test_execution_duration_and_destruction_are_clamped(client):
    job_id = create(client, QUERY="x")
    url = f"/tap/async/{job_id}"
    job, _ = job_doc(client, job_id)
    assert text(client, f"{url}/executionduration") == "600"
    for asked, granted in [("99999", "3600"), ("0", "3600"), ("30", "30")]:
        response = client.post(f"{url}/executionduration", data={"EXECUTIONDURATION": asked})
        assert response.status_code == 303 and response.headers["Location"] == f"{BASE}/{job_id}"
        assert text(client, f"{url}/executionduration") == granted
    assert job_doc(client, job_id)[0].executionduration.value == 30
    for bad in ["abc", "-5", ""]:
        response = client.post(f"{url}/executionduration", data={"EXECUTIONDURATION": bad})
        assert response.status_code == 400 and response.mimetype == "text/plain", bad

    creation = job.creationtime.to_datetime(timezone.utc)
    doc_destruction = ET.fromstring(job_doc(client, job_id)[1]).find("uws:destruction", NS).text
    assert text(client, f"{url}/destruction") == doc_destruction
    assert client.post(f"{url}/destruction",
                       data={"DESTRUCTION": "2999-01-01T00:00:00Z"}).status_code == 303
    clamped = uws.parse_datetime(text(client, f"{url}/destruction"))
    assert abs(clamped - creation - timedelta(days=7)) < timedelta(milliseconds=2)
    one_hour = (creation + timedelta(hours=1)).astimezone(timezone(timedelta(hours=2)))
    client.post(f"{url}/destruction", data={"destruction": one_hour.isoformat()})
    assert uws.parse_datetime(text(client, f"{url}/destruction")) == one_hour
    for bad in ["soon", "2026-13-01T00:00:00Z"]:
        assert client.post(f"{url}/destruction", data={"DESTRUCTION": bad}).status_code == 400
    assert text(client, f"{url}/quote") == "" and text(client, f"{url}/owner") == ""


@pytest.mark.parametrize("asked", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00",
                                   "0001-01-01T00:00:00.000+23:59"])
def test_a_destruction_beyond_the_utc_years_is_refused_and_the_job_keeps_working(client, asked):
    job_id = create(client, QUERY="x")
    url = f"/tap/async/{job_id}"
    before = text(client, f"{url}/destruction")
    response = client.post(f"{url}/destruction", data={"DESTRUCTION": asked})
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert "outside the years 1 to 9999" in response.get_data(as_text=True)
    assert text(client, f"{url}/destruction") == before
    assert job_doc(client, job_id)[0].phase == "PENDING"
    client.post(url, data={"PHASE": "RUN"})
    assert finish(client, job_id).phase == "COMPLETED"


@pytest.mark.parametrize("asked", ["0001-01-01T00:00:00Z", "2026-W01-1", "1970-01-01"])
def test_a_destruction_in_the_past_is_refused_and_the_job_keeps_working(client, asked):
    job_id = create(client, QUERY="x")
    url = f"/tap/async/{job_id}"
    response = client.post(f"{url}/destruction", data={"DESTRUCTION": asked})
    assert response.status_code == 400 and b"is in the past" in response.data
    assert job_doc(client, job_id)[0].phase == "PENDING"


def test_an_unusual_destruction_is_normalised_to_utc(client):
    job_id = create(client, QUERY="x")
    url = f"/tap/async/{job_id}"
    soon = datetime.now(timezone.utc) + timedelta(hours=1)
    written = soon.astimezone(timezone(timedelta(hours=14))).isoformat()
    assert client.post(f"{url}/destruction", data={"DESTRUCTION": written}).status_code == 303
    shown = text(client, f"{url}/destruction")
    assert shown.endswith("Z") and abs(uws.parse_datetime(shown) - soon) < timedelta(seconds=1)


def test_times_print_four_digit_years_and_stored_ones_out_of_range_still_read(manager):
    assert uws.format_datetime(datetime(1, 1, 1, tzinfo=timezone.utc)) == "0001-01-01T00:00:00.000Z"
    job = manager.create({"QUERY": "x"})
    with manager._cond:  # as a row written before destruction times were checked
        manager._update(job.job_id, destruction_ms=-10 ** 16)
    with pytest.raises(NotFoundFault, match="destroyed at 0001-01-01T00:00:00.000Z"):
        manager.get(job.job_id)


@pytest.mark.parametrize("query", ["?LAST=" + "1" + "0" * 23, "?LAST=-1", "?LAST=1.5",
                                   "?LAST=1e3", "?LAST=nan", "?LAST=", "?LAST=0x10"])
def test_absurd_paging_is_a_uws_error(client, query):
    response = client.get(f"/tap/async{query}")
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("UsageFault: LAST must be")


def test_integers_are_whole_numbers_of_at_most_18_digits(client):
    job_id = create(client, QUERY="x")
    url = f"/tap/async/{job_id}"
    for asked, status in [("1.5", 400), ("1e2", 400), ("9" * 19, 400), ("120.0", 303),
                          (" 90 ", 303), ("9" * 18, 303)]:
        response = client.post(f"{url}/executionduration", data={"EXECUTIONDURATION": asked})
        assert response.status_code == status, asked
    assert text(client, f"{url}/executionduration") == "3600"
    assert client.get(f"{url}?WAIT=0.5").status_code == 400
    assert client.get("/tap/async?LAST=99999999").status_code == 200  # capped, not refused


@pytest.fixture
def small_client(tmp_path, make_manager):
    limits = uws.UwsLimits(wait_max=1, job_max_count=3, job_max_parameters=5,
                           job_parameter_max_bytes=100, job_parameters_max_bytes=250)
    with make_manager(tmp_path / "small", fake_execute, limits) as jobs:
        app = Flask(__name__)
        app.extensions["vo_clip.config"] = Config(home=tmp_path)
        app.extensions["vo_clip.uws"] = jobs
        app.register_blueprint(bp, url_prefix="/tap/async")
        yield app.test_client(), jobs


@pytest.mark.parametrize("params, limit", [
    ({"QUERY": "x" * 101}, "job_parameter_max_bytes"),
    ({"QUERY": "é" * 51}, "job_parameter_max_bytes"),  # bytes, not characters
    ({f"P{i}": "x" * 70 for i in range(4)}, "job_parameters_max_bytes"),
    ({"X" * 251: "1"}, "job_parameters_max_bytes"),
    ({f"P{i}": "1" for i in range(6)}, "job_max_parameters"),
])
def test_parameters_beyond_the_limits_are_refused_and_nothing_is_stored(small_client, params,
                                                                         limit):
    client, jobs = small_client
    response = client.post("/tap/async", data=params)
    assert response.status_code == 400 and response.mimetype == "text/plain"
    assert response.get_data(as_text=True).startswith("LimitFault:")
    assert limit in response.get_data(as_text=True)
    assert jobs.list() == []
    with pytest.raises(uws.LimitFault) as caught:
        jobs.create(params)
    assert caught.value.limit == limit


def test_parameters_added_later_count_with_the_stored_ones(small_client):
    client, jobs = small_client
    job_id = create(client, QUERY="x" * 90, LANG="ADQL")
    for child in ("/parameters", ""):
        response = client.post(f"/tap/async/{job_id}{child}", data={"RUNID": "y" * 100,
                                                                   "FORMAT": "z" * 60})
        assert response.status_code == 400 and "job_parameters_max_bytes" in response.text
    assert jobs.get(job_id).parameters == {"QUERY": "x" * 90, "LANG": "ADQL"}
    assert client.post(f"/tap/async/{job_id}/parameters", data={"RUNID": "r"}).status_code == 303


def test_jobs_beyond_the_count_limit_are_refused_until_one_goes(small_client):
    client, jobs = small_client
    first, *_ = [create(client, QUERY=str(i)) for i in range(3)]
    response = client.post("/tap/async", data={"QUERY": "one too many"})
    assert response.status_code == 503 and "job_max_count" in response.get_data(as_text=True)
    assert len(jobs.list()) == 3
    expire(jobs, first)  # an expired job makes room
    create(client, QUERY="now there is room")
    assert len(jobs.list()) == 3


def test_only_a_pending_job_can_change(client):
    job_id = create(client, QUERY="x", PHASE="RUN")
    finish(client, job_id)
    for child, data in [("/parameters", {"QUERY": "y"}), ("", {"QUERY": "y"}),
                        ("/executionduration", {"EXECUTIONDURATION": "5"})]:
        response = client.post(f"/tap/async/{job_id}{child}", data=data)
        assert response.status_code == 400 and b"PENDING" in response.data, child


def test_an_overrun_makes_the_job_error(client):
    job_id = create(client, QUERY="SLOW", SLEEP="1.3")
    client.post(f"/tap/async/{job_id}/executionduration", data={"EXECUTIONDURATION": "1"})
    client.post(f"/tap/async/{job_id}/phase", data={"PHASE": "RUN"})
    job = finish(client, job_id)
    assert job.phase == "ERROR" and job.errorsummary.type_ == "transient"
    assert error_message(client, job_id) == (
        "TransientFault: the query ran longer than the execution duration of 1 s")


# -- WAIT (UWS 1.1 §2.2.1.2) ----------------------------------------------------------------

def test_wait_blocks_up_to_the_cap_and_honours_phase(client):
    """The cap here is 1 s; the bounds are loose (2 busy cores) but tell 1 s from 60 s."""
    job_id = create(client, QUERY="x")
    for wait in ["60", "-1"]:
        start = time.monotonic()
        job, _ = job_doc(client, job_id, f"?WAIT={wait}")
        assert job.phase == "PENDING" and 0.9 <= time.monotonic() - start < 30
    start = time.monotonic()
    assert job_doc(client, job_id, "?WAIT=60&PHASE=EXECUTING")[0].phase == "PENDING"
    assert time.monotonic() - start < 30  # not in EXECUTING: no wait at all, not 60 s
    assert client.get(f"/tap/async/{job_id}?WAIT=soon").status_code == 400


def test_wait_returns_when_the_phase_changes(tmp_path, make_manager):
    with make_manager(tmp_path, fake_execute, uws.UwsLimits(wait_max=120)) as jobs:
        job = jobs.create({"QUERY": "SLOW", "SLEEP": "0.3"}, run=True)
        while jobs.get(job.job_id).phase == uws.QUEUED:
            time.sleep(0.005)
        start = time.monotonic()
        assert jobs.wait(job.job_id, 120).phase == uws.COMPLETED
        assert time.monotonic() - start < 60  # woken by the change, not by the 120 s wait


# -- the library ---------------------------------------------------------------------------

def test_transition_table_names_only_uws_phases(manager):
    assert {phase for pair in uws.TRANSITIONS for phase in pair} <= set(uws.PHASES)
    job = manager.create({"QUERY": "x"}, run=True)
    while manager.get(job.job_id).phase != uws.COMPLETED:
        manager.wait(job.job_id, 1)
    with pytest.raises(UsageFault, match="no transition from COMPLETED to QUEUED"):
        manager.run(job.job_id)
    assert manager.abort(job.job_id).phase == uws.COMPLETED  # ignored, not an error
    with pytest.raises(NotFoundFault):
        manager.get("no-such-job")


def test_documents_escape_values(manager):
    value = "SELECT '<&\">' \x01 ü"
    job = manager.create({"QUERY": value, "RUNID": "a&b"})
    parsed = parse_job(io.BytesIO(uws.job_xml(job, BASE)))
    assert parsed.parameters[0].content == value.replace("\x01", "\ufffd")
    assert parsed.runid == "a&b"
    ET.fromstring(uws.parameters_xml(job))
    ET.fromstring(uws.results_xml(job, BASE))


def test_jobs_and_results_survive_a_restart(tmp_path, make_manager):
    with make_manager(tmp_path, fake_execute, LIMITS) as first:
        job = first.create({"QUERY": "kept"}, run=True)
        while first.get(job.job_id).phase != uws.COMPLETED:
            first.wait(job.job_id, 1)
        pending = first.create({"QUERY": "later"})
    with make_manager(tmp_path, fake_execute, LIMITS) as second:
        assert second.get(job.job_id).phase == uws.COMPLETED
        assert second.result(job.job_id).content == b"kept"
        assert second.get(pending.job_id).phase == uws.PENDING
        assert {j.job_id for j in second.list()} == {job.job_id, pending.job_id}


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_jobs_left_running_by_a_stopped_service_become_error(tmp_path):
    with uws.JobManager(tmp_path, fake_execute, LIMITS) as first:
        dead, mine, alive = (first.create({"QUERY": q}).job_id for q in "abc")
    now = round(time.time() * 1000)
    with contextlib.closing(sqlite3.connect(tmp_path / "jobs.sqlite")) as db, db:
        for job_id, phase, pid in [(dead, "EXECUTING", dead_pid()),
                                   (mine, "QUEUED", os.getpid()),
                                   (alive, "EXECUTING", os.getppid())]:
            db.execute("UPDATE jobs SET phase = ?, pid = ?, start_ms = ? WHERE job_id = ?",
                       (phase, pid, now, job_id))
    with uws.JobManager(tmp_path, fake_execute, LIMITS) as second:
        for job_id in (dead, mine):
            job = second.get(job_id)
            assert job.phase == uws.ERROR and job.end_time is not None
            assert job.error == uws.STOPPED_MESSAGE
        assert second.get(alive).phase == uws.EXECUTING  # its process still runs


def test_close_fails_running_jobs_instead_of_leaving_them(tmp_path, make_manager):
    with make_manager(tmp_path, fake_execute, LIMITS) as first:
        job = first.create({"QUERY": "SLOW"}, run=True)
    with make_manager(tmp_path, fake_execute, LIMITS) as second:
        assert second.get(job.job_id).phase == uws.ERROR
        assert second.get(job.job_id).error == uws.STOPPED_MESSAGE


def expire(manager, job_id):
    """Let the job's destruction time pass (a client cannot set one in the past)."""
    with manager._cond:
        manager._update(job_id, destruction_ms=uws._now_ms() - 1000)


def test_listing_destroys_expired_jobs(manager):
    job = manager.create({"QUERY": "x"}, run=True)
    while manager.get(job.job_id).phase != uws.COMPLETED:
        manager.wait(job.job_id, 1)
    assert manager._store.result(job.job_id) == b"x"
    expire(manager, job.job_id)
    assert stored_ids(manager) == {job.job_id}
    assert manager.list() == []
    assert stored_ids(manager) == set()
    assert manager._store.result(job.job_id) is None
    assert not (manager.root / job.job_id).exists()


def test_the_reaper_destroys_expired_jobs(tmp_path, make_manager):
    with make_manager(tmp_path, fake_execute, LIMITS, reap_interval=0.05) as jobs:
        job = jobs.create({"QUERY": "x"})
        expire(jobs, job.job_id)
        deadline = time.monotonic() + 5
        while stored_ids(jobs) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stored_ids(jobs) == set()
        with pytest.raises(NotFoundFault):
            jobs.get(job.job_id)


# -- the UWS 1.1 schema that taplint validates against -------------------------------------

def uws_schema(tmp_path):
    from lxml import etree

    jars = sorted(glob.glob("/usr/share/java/*ttools*.jar"))
    if not jars:
        pytest.skip(missing_tool("STILTS' starlink-ttools.jar, with the UWS 1.1 XSD "
                                 "(apt-get install stilts)"))
    with zipfile.ZipFile(jars[0]) as jar:
        names = [n for n in jar.namelist()
                 if n.endswith(("/UWS-v1.1.xsd", "/xlink.xsd", "/xmlnamespace.xsd"))]
        for name in names:
            (tmp_path / name.rsplit("/", 1)[1]).write_bytes(jar.read(name))
    if not (tmp_path / "UWS-v1.1.xsd").exists():
        pytest.skip(missing_tool(f"the UWS 1.1 XSD: {jars[0]} has no UWS-v1.1.xsd"))

    class Local(etree.Resolver):
        def resolve(self, url, pubid, context):
            name = url.rsplit("/", 1)[-1]
            local = tmp_path / {"xml.xsd": "xmlnamespace.xsd"}.get(name, name)
            return self.resolve_filename(str(local), context) if local.exists() else None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(Local())
    schema = etree.XMLSchema(etree.parse(str(tmp_path / "UWS-v1.1.xsd"), parser))
    return lambda doc: schema.assertValid(etree.fromstring(doc))


def test_documents_are_valid_uws_1_1(client, tmp_path):
    validate = uws_schema(tmp_path)
    done = create(client, QUERY="ok", PHASE="RUN", RUNID="x")
    failed = create(client, QUERY="BAD", PHASE="RUN")
    pending = create(client, QUERY="<later>")
    finish(client, done)
    finish(client, failed)
    for job_id in (done, failed, pending):
        validate(client.get(f"/tap/async/{job_id}").data)
        validate(client.get(f"/tap/async/{job_id}/parameters").data)
        validate(client.get(f"/tap/async/{job_id}/results").data)
    validate(client.get("/tap/async").data)
