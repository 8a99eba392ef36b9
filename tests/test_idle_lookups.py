"""Catalog lookups on a request thread whose last query's time limit has long passed.

Each request thread keeps its SQLite connection, and a query leaves its deadline on it.
A lookup that ran later on that thread (DataLink, describe, similar, proposal pages,
previews, FITS products, the examples) inherited the expired deadline, was interrupted
and answered 500: every lookup must run under a limit of its own. The server has one
request thread, so every request below runs on the connection of the query before it,
and the sync time limit is one second, so a short pause puts it past that limit.
SQLite calls the time check every ``_PROGRESS_STEPS`` virtual-machine steps of a
statement, counted over its executions; here it calls it at every step, so that the
first lookup that would some day be stopped is stopped now.
"""

from __future__ import annotations

import io
import time

import pytest
import requests
from astropy.io.votable import parse
from conftest import live_server

from vo_clip.search.backends import sqlite as sqlite_backend

DID = "ivo://example.org/vo_clip?obs004"
#: (path, parameters): every endpoint that reads the catalog outside a TAP query.
LOOKUPS = [
    ("/datalink/links", {"ID": DID}),
    ("/datalink/describe", {"ID": DID}),
    ("/datalink/similar", {"ID": DID, "TOP": "3"}),
    ("/proposals/9001", {}),
    ("/preview/obs004", {}),
    ("/products/obs005.fits", {}),
    ("/tap/examples", {}),
]


@pytest.fixture(scope="module")
def one_thread_server(tiny_index, tiny_model_path, tmp_path_factory):
    from service import create_app
    from vo_clip.config import Config

    config = Config(home=tmp_path_factory.mktemp("idle-home"), index=tiny_index,
                    model=str(tiny_model_path), sync_execution_limit=1, lookup_time_limit=5)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sqlite_backend, "_PROGRESS_STEPS", 1)
        with live_server(create_app(config), threads=1) as url:
            yield url


def _query_then_idle(url: str) -> None:
    response = requests.get(url + "/tap/sync", params={
        "LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.ObsCore"}, timeout=30)
    assert response.status_code == 200, response.text
    time.sleep(1.5)  # the query's one-second limit is over; the connection stays


@pytest.mark.parametrize("path, params", LOOKUPS, ids=[path for path, _ in LOOKUPS])
def test_a_lookup_after_an_expired_query_limit_succeeds(one_thread_server, path, params):
    _query_then_idle(one_thread_server)
    response = requests.get(one_thread_server + path, params=params, timeout=60)
    assert response.status_code == 200, response.text[:500]
    if "votable" in response.headers["Content-Type"]:
        document = parse(io.BytesIO(response.content), verify="exception")
        status = [i.value for i in document.resources[0].infos if i.name == "QUERY_STATUS"]
        assert status in ([], ["OK"]), response.text[:500]
        assert len(document.get_first_table().array) > 0


def test_availability_after_an_expired_query_limit_says_available(one_thread_server):
    _query_then_idle(one_thread_server)
    response = requests.get(one_thread_server + "/tap/availability", timeout=30)
    assert response.status_code == 200 and "<vosi:available>true" in response.text, \
        response.text


def test_a_sync_query_past_its_limit_names_the_limit(one_thread_server):
    heavy = ("SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c, "
             "ivoa.ObsCore d, ivoa.ObsCore e "
             "WHERE SIN(a.s_ra + b.s_ra + c.s_ra + d.s_ra + e.s_ra) > 2")
    response = requests.get(one_thread_server + "/tap/sync",
                            params={"LANG": "ADQL", "QUERY": heavy}, timeout=60)
    assert response.status_code == 503, response.text
    assert "sync_execution_limit" in response.text and "1 s" in response.text


def test_lookups_in_process_outlive_an_expired_query_limit(tiny_index):
    """The same at SQLite's own pace: a lookup's statement is checked every 10,000 steps
    counted over its executions, so repeat each lookup until it would have been."""
    from vo_clip.search.index import EmbeddingIndex
    from vo_clip.vo.tap import TapService
    from vo_clip.vo.limits import TapLimits

    tap = TapService(EmbeddingIndex.open(tiny_index), limits=TapLimits(sync_execution_limit=1))
    tap.execute({"LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.ObsCore"},
                base_url="http://127.0.0.1")
    time.sleep(1.5)
    for _ in range(2000):  # measured before the fix: the first failed after 15 to 1,111
        assert tap.lookups.observation("obs004")["obs_id"] == "obs004"
        assert tap.lookups.proposal("9001")[0]["proposal_id"] == "9001"
        assert tap.lookups.preview_file("obs004").name == "obs004.png"
        assert tap.lookups.sample_observation()[0] == "obs000"
        assert tap.available()[0]
