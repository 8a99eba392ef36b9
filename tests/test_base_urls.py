"""Every absolute URL the service writes names the host its own client used.

Clients choose the ``Host`` header, and before a fix async jobs named whichever host
the latest request had sent, so one client could make another's job results point
to a host of its choosing. The rules checked here, on the real server: a request's
URLs (capabilities, DataLink access_url in sync rows) follow its own ``Host``; a
job's (its document, the job list, its result's rows) follow its creator's, even
when read through another host; ``X-Forwarded-*`` are ignored unless ``proxy_fix``
trusts a proxy; a configured ``base_url`` beats them all.
"""

from __future__ import annotations

import re
import time
import xml.etree.ElementTree as ET

import pytest
import requests
from conftest import live_server

from service import create_app
from vo_clip.config import Config

UWS = {"uws": "http://www.ivoa.net/xml/UWS/v1.0",
       "xlink": "http://www.w3.org/1999/xlink"}
HREF = "{http://www.w3.org/1999/xlink}href"
QUERY = "SELECT TOP 3 obs_id, obs_publisher_did, access_url FROM ivoa.ObsCore ORDER BY obs_id"
#: URLs of this service in a document (not the namespaces and standards it cites).
SERVICE_URL = re.compile(rb"(https?://[^\"'<>\s]*?)/(?:tap|datalink|preview)\b")


@pytest.fixture(scope="module")
def servers(tiny_index, tiny_model_path, tmp_path_factory):
    """The same index served three ways: plain, behind one trusted proxy, configured."""
    def config(name, **settings):
        return Config(home=tmp_path_factory.mktemp(name), index=tiny_index,
                      model=str(tiny_model_path), **settings)

    with live_server(create_app(config("plain"))) as plain, \
            live_server(create_app(config("proxied", proxy_fix=1))) as proxied, \
            live_server(create_app(config("configured",
                                          base_url="https://vo.example.org/"))) as configured:
        yield {"plain": plain, "proxied": proxied, "configured": configured}


def roots_in(document: bytes) -> set[str]:
    return {m.decode() for m in SERVICE_URL.findall(document)}


def submit(server: str, headers: dict) -> str:
    response = requests.post(server + "/tap/async", headers=headers, allow_redirects=False,
                             data={"LANG": "ADQL", "QUERY": QUERY, "PHASE": "RUN"}, timeout=30)
    assert response.status_code == 303, response.text
    return response.headers["Location"]


def finished(server: str, job_id: str, headers: dict) -> bytes:
    """The job document once the job is COMPLETED, read with ``headers``."""
    deadline = time.monotonic() + 60
    while True:
        document = requests.get(f"{server}/tap/async/{job_id}", params={"WAIT": "5"},
                                headers=headers, timeout=30).content
        phase = ET.fromstring(document).findtext("uws:phase", namespaces=UWS)
        if phase == "COMPLETED":
            return document
        assert phase in ("QUEUED", "EXECUTING") and time.monotonic() < deadline, document


def result_of(server: str, job_id: str, headers: dict) -> bytes:
    response = requests.get(f"{server}/tap/async/{job_id}/results/result", headers=headers,
                            timeout=30)
    assert response.status_code == 200
    return response.content


def test_each_job_names_its_creators_host(servers):
    server = servers["plain"]
    alpha, beta = {"Host": "alpha.example"}, {"Host": "beta.example:8443"}
    other = {"Host": "intruder.example", "X-Forwarded-Host": "evil.example"}
    locations = {"alpha": submit(server, alpha), "beta": submit(server, beta)}
    assert locations["alpha"].startswith("http://alpha.example/tap/async/")
    assert locations["beta"].startswith("http://beta.example:8443/tap/async/")
    requests.get(server + "/tap/availability", headers=other, timeout=30)  # the last host seen
    for name, location in locations.items():
        job_id, root = location.rsplit("/", 1)[1], location.split("/tap/")[0]
        document = finished(server, job_id, other)
        href = ET.fromstring(document).find("uws:results/uws:result", UWS).get(HREF)
        assert href == f"{root}/tap/async/{job_id}/results/result"
        results = requests.get(f"{server}/tap/async/{job_id}/results", headers=other,
                               timeout=30).content
        assert roots_in(results) == {root}
        result = result_of(server, job_id, other)
        assert roots_in(result) == {root}, result  # access_url and the DataLink descriptor
        assert result.count(f"{root}/datalink/links?ID=".encode()) == 3
    listing = ET.fromstring(requests.get(server + "/tap/async", headers=other,
                                         timeout=30).content)
    refs = {ref.get("id"): ref.get(HREF) for ref in listing.findall("uws:jobref", UWS)}
    assert {refs[loc.rsplit("/", 1)[1]] for loc in locations.values()} == set(
        locations.values())


def test_forwarded_headers_are_ignored_unless_a_proxy_is_trusted(servers):
    forged = {"Host": "alpha.example", "X-Forwarded-Host": "evil.example",
              "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/evil"}
    assert roots_in(_capabilities(servers["plain"], forged)) == {"http://alpha.example"}
    assert roots_in(_sync(servers["plain"], forged)) == {"http://alpha.example"}
    location = submit(servers["plain"], forged)
    assert location.startswith("http://alpha.example/tap/async/")
    job_id = location.rsplit("/", 1)[1]
    finished(servers["plain"], job_id, forged)
    assert roots_in(result_of(servers["plain"], job_id, forged)) == {"http://alpha.example"}


def test_a_trusted_proxy_names_the_public_host(servers):
    server, public = servers["proxied"], "https://vo.example.net/archive"
    forwarded = {"Host": "127.0.0.1", "X-Forwarded-Host": "vo.example.net",
                 "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/archive"}
    assert roots_in(_capabilities(server, forwarded)) == {public}
    assert roots_in(_sync(server, forwarded)) == {public}
    location = submit(server, forwarded)
    assert location.startswith(f"{public}/tap/async/")
    job_id = location.rsplit("/", 1)[1]
    document = finished(server, job_id, {"Host": "127.0.0.1"})  # read without the proxy
    assert roots_in(document) == {public}
    assert roots_in(result_of(server, job_id, {})) == {public}


def test_a_configured_base_url_wins(servers):
    server, configured = servers["configured"], "https://vo.example.org"
    forged = {"Host": "alpha.example", "X-Forwarded-Host": "evil.example"}
    assert roots_in(_capabilities(server, forged)) == {configured}
    assert roots_in(_sync(server, forged)) == {configured}
    location = submit(server, forged)
    assert location.startswith(f"{configured}/tap/async/")
    job_id = location.rsplit("/", 1)[1]
    assert roots_in(finished(server, job_id, forged)) == {configured}
    assert roots_in(result_of(server, job_id, forged)) == {configured}


def _capabilities(server: str, headers: dict) -> bytes:
    response = requests.get(server + "/tap/capabilities", headers=headers, timeout=30)
    assert response.status_code == 200
    return response.content


def _sync(server: str, headers: dict) -> bytes:
    response = requests.post(server + "/tap/sync", headers=headers, timeout=30,
                             data={"LANG": "ADQL", "QUERY": QUERY})
    assert response.status_code == 200, response.text
    assert response.content.count(b"/datalink/links?ID=") == 3
    return response.content
