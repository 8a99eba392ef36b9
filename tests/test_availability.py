"""The service stays available while clients abuse it without a single heavy query.

Each test plays one abuse against the real waitress server on 127.0.0.1 (set up as
`vo-clip serve` sets it up, ``service.server``) and checks that a probe, VOSI
availability, still answers. The abuse would block the probe for far longer (20 s to
10 minutes) than the generous bound each test allows it; the bound is not a speed
figure. Every abuse is bounded in count and time and undone by the test itself.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import ExitStack, closing
from urllib.parse import urlencode, urlsplit

import pytest
import requests
from conftest import live_server

from service import create_app
from vo_clip.config import Config

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0"}
#: A 6-way cross join of the 36-row tiny catalog: 2·10^9 rows, about ten minutes of
#: SQLite work, and no similarity function (no model needed).
HEAVY = ("SELECT COUNT(*) AS n FROM " + ", ".join(f"ivoa.ObsCore AS t{i}" for i in range(6))
         + " WHERE " + " + ".join(f"t{i}.s_ra" for i in range(6)) + " < 0")
#: Seconds a probe may take while the abuse runs (the abuse alone would block it ≥ 20 s).
PROBE_BOUND_S = 10


@pytest.fixture(scope="module")
def server(tiny_index, tiny_model_path, tmp_path_factory):
    """A service with 4 threads, so that a handful of abusive requests would fill it."""
    config = Config(home=tmp_path_factory.mktemp("abuse-home"), index=tiny_index,
                    model=str(tiny_model_path), threads=4)
    with live_server(create_app(config)) as url:
        yield url


def probe(url: str, timeout: float = PROBE_BOUND_S) -> ET.Element:
    """VOSI availability, which must answer within ``timeout`` seconds and say yes."""
    response = requests.get(url + "/tap/availability", timeout=timeout)
    assert response.status_code == 200
    document = ET.fromstring(response.content)
    assert document.findtext("{*}available") == "true", response.text
    return document


def open_sockets(url: str, count: int, stack: ExitStack) -> list[socket.socket]:
    """``count`` connections to the server, closed when ``stack`` closes."""
    host, port = urlsplit(url).hostname, urlsplit(url).port
    return [stack.enter_context(closing(socket.create_connection((host, port), timeout=10)))
            for _ in range(count)]


def test_idle_and_half_open_connections_do_not_lock_others_out(server):
    """150 clients that connect and send nothing, or half a request, and wait."""
    with ExitStack() as stack:
        idle = open_sockets(server, 150, stack)
        for half_open in idle[::2]:
            half_open.sendall(b"GET /tap/availability HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.5)  # let the server accept them all
        probe(server)


def test_idle_connections_are_closed_after_the_channel_timeout(tiny_index, tmp_path):
    """Past the connection limit, idle sockets are dropped and the next client gets in."""
    config = Config(home=tmp_path, index=tiny_index, threads=2, connection_limit=20,
                    channel_timeout=2, cleanup_interval=1)
    with live_server(create_app(config)) as url, ExitStack() as stack:
        idle = open_sockets(url, 30, stack)  # 10 more than the server accepts
        probe(url, timeout=20)  # waitress' defaults would keep it out for 120 s
        idle[0].settimeout(20)
        assert idle[0].recv(1) == b"", "the server did not close an idle connection"


def test_blocking_waits_leave_threads_for_queries(server):
    """Twice as many ``WAIT=30`` requests on a PENDING job as the server has threads."""
    created = requests.post(server + "/tap/async", data={"LANG": "ADQL", "QUERY": "SELECT 1"},
                            allow_redirects=False, timeout=30)
    job_url = created.headers["Location"]
    answers: list[tuple[float, int, str]] = []
    started = time.monotonic()

    def wait():
        response = requests.get(job_url, params={"WAIT": "30"}, timeout=60)
        phase = ET.fromstring(response.content).findtext("uws:phase", namespaces=UWS) \
            if response.status_code == 200 else None
        answers.append((time.monotonic() - started, response.status_code, phase))

    waiters = [threading.Thread(target=wait) for _ in range(8)]
    for waiter in waiters:
        waiter.start()
    try:
        time.sleep(1)  # the waiters are in
        probe(server)
        # At most half the threads (2) block; the other waiters got the job at once.
        answered = len(answers)
        assert answered >= 6 and all(a[1:] == (200, "PENDING") for a in answers), answers
        assert answered < 8, "no WAIT blocked: the test shows nothing"
    finally:  # aborting the job wakes the waiters that still block
        requests.post(job_url + "/phase", data={"PHASE": "ABORT"}, timeout=30)
        for waiter in waiters:
            waiter.join(timeout=60)
    assert sorted(a[2] for a in answers)[:2] == ["ABORTED", "ABORTED"], answers


def _cpu_seconds_over(seconds: float) -> float:
    """CPU time this process (it runs the server) spends during the next ``seconds``."""
    before = time.process_time()
    time.sleep(seconds)
    return time.process_time() - before


def test_queries_abandoned_by_their_clients_stop(server, caplog):
    """As many heavy sync queries as threads, whose clients hang up after 2 s."""
    caplog.set_level(logging.INFO, logger="service.client")
    body = urlencode({"LANG": "ADQL", "QUERY": HEAVY}).encode()
    request = (b"POST /tap/sync HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               b"Content-Type: application/x-www-form-urlencoded\r\n"
               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    with ExitStack() as stack:
        for client in open_sockets(server, 4, stack):
            client.sendall(request)
        time.sleep(2)  # every thread now runs a query
    # The sockets are closed: each query must notice and stop.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        stopped = [r for r in caplog.records if "disconnected: its query is stopped"
                   in r.getMessage()]
        if len(stopped) == 4:
            break
        time.sleep(0.2)
    assert len(stopped) == 4, [r.getMessage() for r in caplog.records]
    probe(server)
    # Nothing is left computing: four running queries would use cores, not ~0.
    assert _cpu_seconds_over(3) < 0.5


def test_execution_duration_given_at_creation_is_kept_and_stops_the_job(server):
    """UWS 1.1 §2.2.3.1: EXECUTIONDURATION is a parameter of the creating POST too."""
    created = requests.post(server + "/tap/async", data={
        "LANG": "ADQL", "QUERY": HEAVY, "EXECUTIONDURATION": "2", "PHASE": "RUN"},
        allow_redirects=False, timeout=30)
    assert created.status_code == 303
    job_url = created.headers["Location"]
    document = ET.fromstring(requests.get(job_url, timeout=30).content)
    assert document.findtext("uws:executionDuration", namespaces=UWS) == "2"
    assert requests.get(job_url + "/executionduration", timeout=30).text == "2"
    assert not document.findall("uws:parameters/uws:parameter[@id='EXECUTIONDURATION']",
                                UWS)
    deadline = time.monotonic() + 60  # the query alone runs for ten minutes
    while True:
        document = ET.fromstring(requests.get(job_url, params={"WAIT": "10"},
                                              timeout=30).content)
        phase = document.findtext("uws:phase", namespaces=UWS)
        if phase not in ("QUEUED", "EXECUTING") or time.monotonic() > deadline:
            break
    assert phase == "ERROR"
    message = document.findtext("uws:errorSummary/uws:message", namespaces=UWS)
    assert "stopped" in message or "execution duration" in message, message
    assert document.find("uws:errorSummary", UWS).get("type") == "transient"


def test_bad_execution_duration_at_creation_creates_no_job(server):
    before = requests.get(server + "/tap/async", timeout=30).content.count(b"<uws:jobref")
    for bad in ("-1", "soon"):
        response = requests.post(server + "/tap/async", data={
            "LANG": "ADQL", "QUERY": "SELECT 1", "EXECUTIONDURATION": bad},
            allow_redirects=False, timeout=30)
        assert response.status_code == 400 and "EXECUTIONDURATION" in response.text
    after = requests.get(server + "/tap/async", timeout=30).content.count(b"<uws:jobref")
    assert after == before
