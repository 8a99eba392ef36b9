"""UWS jobs in PostgreSQL shared by two replicas (issue 14).

The single-manager behaviour runs on PostgreSQL in tests/test_uws.py (its
``[postgres]`` cases). Here: two real waitress servers on two loopback ports, each with
its own JobManager on one database, as two ``vo-clip serve`` processes would be; a
replica process killed while it runs a job; a database that cannot be reached.
The executor counts its calls per QUERY, so "ran once" is counted, not assumed.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import psycopg
import pytest
import requests
from conftest import live_server
from flask import Flask
from pyvo.io.uws import parse_job_list

from service import create_app
from service.uws import bp
from vo_clip.config import Config
from vo_clip.vo import uws
from vo_clip.vo.faults import TransientFault
from vo_clip.vo.uws_postgres import PostgresJobStore

pytestmark = pytest.mark.postgres

LIMITS = uws.UwsLimits(wait_max=30)


class CountingExecutor:
    """The executor of every replica of a test: echoes QUERY, counting each call.

    ``SLEEP`` makes it run that long while watching ``cancelled()``; ``returned``
    records the QUERYs whose call has ended, and whether it saw the cancellation.
    """

    def __init__(self):
        self.calls: Counter[str] = Counter()
        self.returned: dict[str, bool] = {}
        self._lock = threading.Lock()

    def __call__(self, params, deadline, cancelled, base_url=None):
        query = params.get("QUERY", "")
        with self._lock:
            self.calls[query] += 1
        stop = time.time() + float(params.get("SLEEP", "0"))
        while not cancelled() and time.time() < stop:
            time.sleep(0.02)
        with self._lock:
            self.returned[query] = cancelled()
        return uws.JobOutput(query.encode(), "text/plain")


@contextmanager
def replica(dsn, root, execute, **store_options):
    """A UWS service on its own loopback port, its jobs in ``dsn``; yields its URL."""
    manager = uws.JobManager(root, execute, LIMITS,
                             store=PostgresJobStore(dsn, "vo_clip", **store_options))
    app = Flask(__name__)
    app.extensions["vo_clip.config"] = Config(home=root)
    app.extensions["vo_clip.uws"] = manager
    app.register_blueprint(bp, url_prefix="/tap/async")
    with live_server(app) as url:  # closes the manager when it stops
        yield url + "/tap/async"


@pytest.fixture
def executor():
    return CountingExecutor()


@pytest.fixture
def replicas(postgres_dsn, tmp_path, executor):
    with replica(postgres_dsn, tmp_path / "a", executor) as a, \
            replica(postgres_dsn, tmp_path / "b", executor) as b:
        yield a, b


@pytest.fixture
def http():
    """An HTTP client that keeps no connection open (a replica then stops at once)."""
    with requests.Session() as session:
        session.headers["Connection"] = "close"
        yield session


def create(http, jobs_url, **params) -> str:
    response = http.post(jobs_url, data=params, allow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["Location"].rsplit("/", 1)[1]


def phase(http, jobs_url, job_id) -> str:
    response = http.get(f"{jobs_url}/{job_id}/phase")
    assert response.status_code == 200, response.text
    return response.text


def until(condition, what: str, seconds: float = 30):
    """Poll ``condition`` until it holds; the bound is generous (2 busy cores)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def listed(http, jobs_url) -> dict[str, str]:
    response = http.get(jobs_url)
    assert response.status_code == 200, response.text
    return {job.jobid: job.phase for job in parse_job_list(io.BytesIO(response.content))}


# -- two replicas over HTTP -------------------------------------------------------------

def test_a_job_from_one_replica_is_listed_waited_on_and_served_by_the_other(replicas, http,
                                                                             executor):
    a, b = replicas
    job_id = create(http, a, QUERY="shared", SLEEP="1", PHASE="RUN")
    assert listed(http, b)[job_id] in uws.ACTIVE_PHASES
    # B's WAIT has no local change to wake it: it looks at the row every second
    response = http.get(f"{b}/{job_id}", params={"WAIT": "30"})
    assert response.status_code == 200
    until(lambda: phase(http, b, job_id) == uws.COMPLETED, "the job completes")
    result = http.get(f"{b}/{job_id}/results/result")
    assert (result.status_code, result.content) == (200, b"shared")
    assert result.headers["Content-Type"].startswith("text/plain")
    assert listed(http, b)[job_id] == uws.COMPLETED
    assert executor.calls["shared"] == 1

    response = http.delete(f"{b}/{job_id}", allow_redirects=False)
    assert response.status_code == 303
    for url in (a, b):
        assert http.get(f"{url}/{job_id}").status_code == 404
        assert http.get(f"{url}/{job_id}/results/result").status_code == 404
        assert job_id not in listed(http, url)


def test_abort_on_one_replica_stops_the_job_executing_on_the_other(replicas, http, executor):
    a, b = replicas
    job_id = create(http, a, QUERY="long", SLEEP="120", PHASE="RUN")
    until(lambda: phase(http, b, job_id) == uws.EXECUTING, "the job executes on A")
    response = http.post(f"{b}/{job_id}/phase", data={"PHASE": "ABORT"},
                         allow_redirects=False)
    assert response.status_code == 303
    # A notices within its heartbeat (1 s): far less than the 120 s the query would run
    until(lambda: "long" in executor.returned, "A's executor sees cancelled()", 30)
    assert executor.returned["long"] is True
    assert phase(http, a, job_id) == phase(http, b, job_id) == uws.ABORTED
    assert http.get(f"{a}/{job_id}/results/result").status_code == 404


def test_delete_on_one_replica_stops_the_job_executing_on_the_other(replicas, http, executor):
    a, b = replicas
    job_id = create(http, a, QUERY="doomed", SLEEP="120", PHASE="RUN")
    until(lambda: phase(http, b, job_id) == uws.EXECUTING, "the job executes on A")
    assert http.delete(f"{b}/{job_id}", allow_redirects=False).status_code == 303
    until(lambda: "doomed" in executor.returned, "A's executor sees cancelled()", 30)
    assert http.get(f"{a}/{job_id}").status_code == 404


def test_run_posted_to_both_replicas_at_once_runs_each_job_once(replicas, http, executor):
    a, b = replicas
    jobs = {f"race-{i}": create(http, a, QUERY=f"race-{i}", SLEEP="0.2") for i in range(12)}
    barriers = {query: threading.Barrier(2) for query in jobs}

    def post_run(query, url):
        barriers[query].wait(timeout=60)
        return requests.post(f"{url}/{jobs[query]}/phase", data={"PHASE": "RUN"},
                             headers={"Connection": "close"}, allow_redirects=False)

    with ThreadPoolExecutor(max_workers=2 * len(jobs)) as pool:
        answers = list(pool.map(lambda task: post_run(*task),
                                [(query, url) for query in jobs for url in (a, b)]))
    for answer in answers:  # the later RUN may find the job already COMPLETED: a 400
        assert answer.status_code == 303 or (
            answer.status_code == 400 and "from COMPLETED to QUEUED" in answer.text), answer.text
    until(lambda: all(phase(http, b, job_id) == uws.COMPLETED for job_id in jobs.values()),
          "every raced job completes", 60)
    assert executor.calls == Counter({query: 1 for query in jobs})
    for query, job_id in jobs.items():
        assert http.get(f"{b}/{job_id}/results/result").content == query.encode()


def test_jobs_survive_a_restart_of_both_replicas(postgres_dsn, tmp_path, http):
    first = CountingExecutor()
    with replica(postgres_dsn, tmp_path / "a", first) as a, \
            replica(postgres_dsn, tmp_path / "b", first) as b:
        done = create(http, a, QUERY="kept", PHASE="RUN")
        until(lambda: phase(http, b, done) == uws.COMPLETED, "the job completes")
        waiting = create(http, b, QUERY="later")
    again = CountingExecutor()
    with replica(postgres_dsn, tmp_path / "a", again) as a, \
            replica(postgres_dsn, tmp_path / "b", again) as b:
        for url in (a, b):
            assert listed(http, url) == {done: uws.COMPLETED, waiting: uws.PENDING}
            assert http.get(f"{url}/{done}/results/result").content == b"kept"
        http.post(f"{a}/{waiting}/phase", data={"PHASE": "RUN"}, allow_redirects=False)
        until(lambda: phase(http, b, waiting) == uws.COMPLETED, "the kept job runs")
    assert again.calls == Counter({"later": 1}) and first.calls == Counter({"kept": 1})


# -- the library: races, dead replicas ----------------------------------------------------

def test_run_raced_by_two_managers_runs_each_job_once(postgres_dsn, tmp_path, executor):
    with uws.JobManager(tmp_path / "a", executor, LIMITS, workers=4,
                        store=PostgresJobStore(postgres_dsn)) as a, \
            uws.JobManager(tmp_path / "b", executor, LIMITS, workers=4,
                           store=PostgresJobStore(postgres_dsn)) as b:
        jobs = [a.create({"QUERY": f"q{i}"}).job_id for i in range(40)]
        barriers = {job_id: threading.Barrier(2) for job_id in jobs}

        def run(manager, job_id):
            barriers[job_id].wait(timeout=60)  # both managers read PENDING at once
            try:
                manager.run(job_id)
            except uws.UsageFault:  # COMPLETED already: the other one ran it
                pass

        with ThreadPoolExecutor(max_workers=8) as pool:
            list(pool.map(lambda task: run(*task),
                          [(m, job_id) for job_id in jobs for m in (a, b)]))
        until(lambda: all(b.get(job_id).phase == uws.COMPLETED for job_id in jobs),
              "every job completes", 60)
    assert executor.calls == Counter({f"q{i}": 1 for i in range(40)})


DYING_REPLICA = textwrap.dedent('''
    import sys, time
    from vo_clip.vo import uws
    from vo_clip.vo.uws_postgres import PostgresJobStore

    def forever(params, deadline, cancelled, base_url=None):
        while not cancelled():
            time.sleep(0.05)
        return uws.JobOutput(b"", "text/plain")

    store = PostgresJobStore(sys.argv[1], heartbeat_s=0.5)
    manager = uws.JobManager(sys.argv[2], forever, store=store)
    manager.create({"QUERY": "dies with its replica"}, run=True)
    time.sleep(600)
''')


def test_a_job_whose_replica_was_killed_becomes_error_on_the_survivor(postgres_dsn, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen([sys.executable, "-c", DYING_REPLICA, postgres_dsn,
                                str(tmp_path / "dying")], env=env)
    try:
        with uws.JobManager(tmp_path / "survivor", CountingExecutor(), LIMITS,
                            reap_interval=0.2,
                            store=PostgresJobStore(postgres_dsn, stale_after_s=5)) as survivor:
            until(lambda: [j.phase for j in survivor.list()] == [uws.EXECUTING],
                  "the other replica runs its job", 120)
            [job] = survivor.list()
            time.sleep(7)  # past stale_after_s: only the heartbeats keep it EXECUTING
            assert survivor.get(job.job_id).phase == uws.EXECUTING
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            until(lambda: survivor.get(job.job_id).phase == uws.ERROR,
                  "the survivor fails the dead replica's job", 60)
            failed = survivor.get(job.job_id)
            assert failed.error == uws.STOPPED_MESSAGE and failed.error_type == "transient"
            assert failed.end_time is not None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_a_restarted_replica_fails_only_the_jobs_of_replicas_gone_quiet(postgres_dsn, tmp_path):
    with uws.JobManager(tmp_path, CountingExecutor(), LIMITS,
                        store=PostgresJobStore(postgres_dsn)) as first:
        gone, alive, pending = (first.create({"QUERY": q}).job_id for q in "abc")
    now = round(time.time() * 1000)
    with psycopg.connect(postgres_dsn, autocommit=True) as db:
        for job_id, heartbeat in [(gone, now - 3_600_000), (alive, now + 60_000)]:
            db.execute("UPDATE vo_clip.uws_jobs SET phase = 'EXECUTING', start_ms = %s, "
                       "owner = 'elsewhere:1:x', heartbeat_ms = %s WHERE job_id = %s",
                       (now, heartbeat, job_id))
    with uws.JobManager(tmp_path, CountingExecutor(), LIMITS,
                        store=PostgresJobStore(postgres_dsn)) as second:
        assert second.get(gone).phase == uws.ERROR
        assert second.get(gone).error == uws.STOPPED_MESSAGE
        assert second.get(alive).phase == uws.EXECUTING  # its replica beats
        assert second.get(pending).phase == uws.PENDING


# -- a database that cannot be reached -------------------------------------------------------

def test_an_unreachable_job_database_is_a_503_on_the_uws_endpoints(tmp_path):
    config = Config(home=tmp_path, postgres_dsn=f"host={tmp_path / 'no-server'} port=5432 "
                                                 "dbname=vo_clip user=vo connect_timeout=5")
    app = create_app(config)  # the service starts; its job endpoints say what is wrong
    try:
        client = app.test_client()
        for response in (client.post("/tap/async", data={"QUERY": "x"}),
                         client.get("/tap/async"), client.get("/tap/async/abc/phase")):
            assert response.status_code == 503, response.data
            assert response.mimetype == "text/plain"
            assert response.text.startswith(
                "TransientFault: the job database cannot be reached"), response.text
            assert "Traceback" not in response.text
    finally:
        app.extensions["vo_clip.uws"].close()


def test_a_job_database_that_goes_away_is_a_transient_fault(postgres_server, tmp_path):
    name, dsn = postgres_server.create_database()
    try:
        with uws.JobManager(tmp_path, CountingExecutor(), LIMITS,
                            store=PostgresJobStore(dsn)) as jobs:
            job = jobs.create({"QUERY": "x"})
            postgres_server.drop_database(name)  # closes the manager's connection
            with pytest.raises(TransientFault, match="the job database cannot be reached"):
                jobs.get(job.job_id)
    finally:
        postgres_server.drop_database(name)


# -- the wiring: vo-clip serve with postgres_dsn ------------------------------------------------

def test_serve_with_postgres_dsn_keeps_jobs_in_postgres_for_every_replica(postgres_dsn,
                                                                          tmp_path, http):
    """Two apps as ``vo-clip serve`` makes them; no query runs (the catalog is not loaded)."""
    apps = [create_app(Config(home=tmp_path / name, postgres_dsn=postgres_dsn))
            for name in "ab"]
    with live_server(apps[0]) as a, live_server(apps[1]) as b:
        job_id = create(http, f"{a}/tap/async", QUERY="SELECT 1", RUNID="r")
        assert listed(http, f"{b}/tap/async") == {job_id: uws.PENDING}
        assert http.delete(f"{b}/tap/async/{job_id}", allow_redirects=False).status_code == 303
        assert http.get(f"{a}/tap/async/{job_id}").status_code == 404
    assert not list(tmp_path.rglob("jobs.sqlite"))
    with psycopg.connect(postgres_dsn) as db:
        assert db.execute("SELECT count(*) FROM vo_clip_uws.uws_jobs").fetchone() == (0,)
