"""``/metrics`` over HTTP: real requests to a live server, then a scrape parsed with
prometheus_client's own parser; ``/metrics.json`` keeps the human latency summary."""

from __future__ import annotations

import time
from urllib.parse import quote

import pytest
import requests
from conftest import live_server
from prometheus_client.parser import text_string_to_metric_families

from service import create_app
from service.metrics import ServiceMetrics
from vo_clip.config import Config
from vo_clip.vo.faults import TransientFault

DID = "ivo://example.org/vo_clip?obs003"
SIMILAR = ("SELECT TOP 5 obs_id, vo_clip_similarity('a bright spiral galaxy') AS s "
           "FROM ivoa.ObsCore ORDER BY s DESC")


@pytest.fixture(scope="module")
def server(tiny_index, tiny_model_path, tmp_path_factory):
    """A live service whose app has one extra route: a fault a configured limit raised
    (shaped as the limits raise them: the fault names its limit)."""
    config = Config(home=tmp_path_factory.mktemp("metrics-home"), index=tiny_index,
                    model=str(tiny_model_path))
    app = create_app(config)

    def over_the_limit():
        fault = TransientFault("too many requests at once", "retry later")
        fault.limit = "concurrent_queries"
        raise fault

    app.add_url_rule("/tap/test-limit", "tap.test_limit", over_the_limit)
    with live_server(app) as url:
        yield url


def scrape(server) -> dict[str, dict[tuple, float]]:
    """Every sample of ``/metrics``: name -> {sorted label pairs: value}."""
    response = requests.get(server + "/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = \
                sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    """The sample of ``name`` with exactly ``labels`` (histogram ``le`` excluded); 0 if
    it was never observed."""
    return samples.get(name, {}).get(tuple(sorted(labels.items())), 0.0)


def requests_seen(samples, endpoint: str) -> float:
    return value(samples, "vo_clip_request_duration_seconds_count", endpoint=endpoint)


def stage_seen(samples, endpoint: str, stage: str) -> float:
    return value(samples, "vo_clip_stage_duration_seconds_count", endpoint=endpoint,
                 stage=stage)


def scrape_until(server, ready, timeout: float = 10.0):
    """Scrape until ``ready(samples)``: a request is counted once the server has closed
    its body, which can be just after the client read the last byte."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(server)
        if ready(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.1)


def test_requests_are_counted_by_endpoint_stage_and_fault(server):
    before = scrape(server)
    with requests.Session() as http:
        similar = http.get(f"{server}/tap/sync", params={"LANG": "ADQL", "QUERY": SIMILAR},
                           timeout=60)
        assert similar.status_code == 200 and b"obs0" in similar.content
        bad = http.get(f"{server}/tap/sync",
                       params={"LANG": "ADQL", "QUERY": "SELECT FROM WHERE"}, timeout=60)
        assert bad.status_code == 400 and b"QUERY_STATUS" in bad.content
        links = http.get(f"{server}/datalink/links?ID={quote(DID, safe='')}", timeout=60)
        assert links.status_code == 200 and b"#preview" in links.content
        preview = http.get(f"{server}/preview/obs003", timeout=60)
        assert preview.status_code == 200 and preview.content.startswith(b"\x89PNG")
        missing = http.get(f"{server}/preview/no-such-observation", timeout=60)
        assert missing.status_code == 404

    def grew(samples, endpoint):
        return requests_seen(samples, endpoint) - requests_seen(before, endpoint)

    after = scrape_until(server, lambda s: grew(s, "tap_sync") >= 2
                         and grew(s, "datalink_links") >= 1 and grew(s, "preview") >= 2)
    assert grew(after, "tap_sync") == 2
    assert grew(after, "datalink_links") == 1
    assert grew(after, "preview") == 2

    def stage_grew(endpoint, stage):
        return stage_seen(after, endpoint, stage) - stage_seen(before, endpoint, stage)

    # Both queries were translated (one failed there); only the good one went further.
    assert stage_grew("tap_sync", "translate") == 2
    for stage in ("encode", "score", "sql", "render"):
        assert stage_grew("tap_sync", stage) == 1, stage
    assert stage_grew("datalink_links", "sql") == 1
    assert stage_grew("datalink_links", "render") == 1
    # A sync query's stages cannot add up to more than the whole request took.
    stages_total = sum(
        value(after, "vo_clip_stage_duration_seconds_sum", endpoint="tap_sync", stage=s)
        for s in ("translate", "encode", "score", "sql", "render"))
    assert 0 < stages_total <= value(after, "vo_clip_request_duration_seconds_sum",
                                     endpoint="tap_sync")

    def errors(samples, **labels):
        return value(samples, "vo_clip_errors_total", **labels)

    assert errors(after, endpoint="tap_sync", fault="UsageFault", status="400") - errors(
        before, endpoint="tap_sync", fault="UsageFault", status="400") == 1
    assert errors(after, endpoint="preview", fault="NotFoundFault", status="404") - errors(
        before, endpoint="preview", fault="NotFoundFault", status="404") == 1


def test_the_histogram_buckets_are_cumulative_and_end_at_the_count(server):
    requests.get(f"{server}/tap/capabilities", timeout=30).raise_for_status()
    samples = scrape_until(server, lambda s: requests_seen(s, "vosi_capabilities") >= 1)
    buckets = sorted(
        (float(dict(labels)["le"]), count)
        for labels, count in samples["vo_clip_request_duration_seconds_bucket"].items()
        if dict(labels)["endpoint"] == "vosi_capabilities")
    counts = [count for _, count in buckets]
    assert counts == sorted(counts) and buckets[-1][0] == float("inf")
    assert counts[-1] == requests_seen(samples, "vosi_capabilities")


def test_async_job_execution_is_timed_by_stage(server):
    before = scrape(server)
    created = requests.post(f"{server}/tap/async", timeout=60,
                            data={"LANG": "ADQL", "QUERY": SIMILAR, "PHASE": "RUN"})
    assert created.status_code == 200  # requests followed the 303 to the job
    job_url = created.url
    deadline = time.monotonic() + 60
    while (phase := requests.get(job_url + "/phase", timeout=30).text) in (
            "PENDING", "QUEUED", "EXECUTING") and time.monotonic() < deadline:
        requests.get(job_url, params={"WAIT": "5"}, timeout=30)
    assert phase == "COMPLETED"
    requests.delete(job_url, timeout=30)

    def grew(samples, stage):
        return stage_seen(samples, "tap_async_job", stage) - stage_seen(
            before, "tap_async_job", stage)

    after = scrape_until(server, lambda s: grew(s, "render") >= 1)
    assert requests_seen(after, "tap_async_job") - requests_seen(before, "tap_async_job") == 1
    for stage in ("translate", "encode", "score", "sql", "render"):
        assert grew(after, stage) == 1, stage


def test_a_refusal_is_counted_by_the_limit_it_hit(server):
    before = scrape(server)
    response = requests.get(f"{server}/tap/test-limit", timeout=30)
    assert response.status_code == 503 and b"too many requests" in response.content
    requests.get(f"{server}/tap/sync", params={"LANG": "ADQL", "QUERY": "SELEKT"},
                 timeout=30)  # an error, but no limit: not a refusal
    after = scrape(server)

    def refused(samples, **labels):
        return value(samples, "vo_clip_refused_total", **labels)

    assert refused(after, endpoint="tap", limit="concurrent_queries") - refused(
        before, endpoint="tap", limit="concurrent_queries") == 1
    assert sum(after.get("vo_clip_refused_total", {}).values()) - sum(
        before.get("vo_clip_refused_total", {}).values()) == 1
    assert value(after, "vo_clip_errors_total", endpoint="tap", fault="TransientFault",
                 status="503") == 1


def test_the_json_summary_moved_to_metrics_json(server):
    for text in ("a spiral galaxy", "a planetary nebula"):
        query = SIMILAR.replace("a bright spiral galaxy", text)
        requests.get(f"{server}/tap/sync", params={"LANG": "ADQL", "QUERY": query},
                     timeout=60).raise_for_status()
    summary = requests.get(f"{server}/metrics.json", timeout=30).json()
    assert {"translate", "encode", "score", "sql", "total"} <= set(summary)
    assert summary["total"]["count"] >= 2
    for stage in summary.values():
        assert 0 <= stage["p50_ms"] <= stage["p95_ms"]
    assert summary["sql"]["p95_ms"] <= summary["total"]["p95_ms"]


def test_each_app_has_its_own_registry():
    first, second = ServiceMetrics(), ServiceMetrics()  # no duplicate-name error
    first.recorder("tap_sync")("sql", 0.5)
    assert b'vo_clip_stage_duration_seconds_count{endpoint="tap_sync",stage="sql"} 1.0' \
        in first.exposition()
    assert b"tap_sync" not in second.exposition()
