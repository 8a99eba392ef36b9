"""What the service measures about itself: ``/metrics`` (Prometheus) and ``/metrics.json``.

Registered by the application factory (:func:`install`), each app with its own
:class:`~prometheus_client.CollectorRegistry`, so two apps in one process (the tests)
count their own requests and never collide in the global default registry.

``/metrics`` is the Prometheus text format, version 0.0.4:

- ``vo_clip_request_duration_seconds{endpoint}``: each request from routing until the
  last byte of its body was handed to the server (streamed results included), and each
  async TAP job's execution (``endpoint="tap_async_job"``);
- ``vo_clip_stage_duration_seconds{endpoint,stage}``: the stages the library reports
  through its recorder (:mod:`vo_clip.vo.timing`): translate, encode, score, sql,
  render;
- ``vo_clip_errors_total{endpoint,fault,status}``: every error answered, by fault name;
- ``vo_clip_refused_total{endpoint,limit}``: requests a configured limit refused (a
  fault carrying a ``limit`` name);
- ``vo_clip_requests_in_progress``: requests inside the application now. The time a
  request waits for a server thread is not seen here: compare a client's latency with
  the request histogram to find it (``benchmarks/load_test.py`` does).

``/metrics.json`` is the human summary: the median and 95th percentile of the last
thousand sync TAP queries' stages.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

from flask import Flask, Response, current_app, g, jsonify, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from vo_clip.vo.timing import StageRecorder

__all__ = ["CONTENT_TYPE", "ServiceMetrics", "StageLatencies", "install", "stage_recorder"]

#: What :func:`prometheus_client.generate_latest` writes: the 0.0.4 text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds; from a cached VOSI document (sub-millisecond) to an async job near its limit.
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
           5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

#: Flask endpoints by the label they are counted under; any other endpoint is counted
#: under its blueprint's name (``uws``, ``web``), so the label values stay a short list.
ENDPOINTS = {
    "tap.sync": "tap_sync",
    "datalink.links": "datalink_links",
    "datalink.similar": "datalink_similar",
    "datalink.describe": "datalink_describe",
    "observations.search_image": "image_search",
    "observations.preview": "preview",
    "observations.product": "product",
    "observations.proposal": "proposal",
    "tap.capabilities": "vosi_capabilities",
    "tap.availability": "vosi_availability",
    "tap.tables": "vosi_tables",
    "tap.table": "vosi_tables",
    "tap.examples": "tap_examples",
    "oai.oai": "oai",
    "uws.job_list": "tap_async",
    "uws.create_job": "tap_async",
}

#: The label of async TAP job execution, which runs outside any request.
ASYNC_JOB = "tap_async_job"


def endpoint_label(flask_endpoint: str | None) -> str:
    """The ``endpoint`` label of a request routed to ``flask_endpoint`` (None: no route)."""
    if flask_endpoint is None:
        return "unrouted"
    return ENDPOINTS.get(flask_endpoint) or flask_endpoint.partition(".")[0]


class ServiceMetrics:
    """The application's collectors, and the calls that feed them."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Histogram(
            "vo_clip_request_duration_seconds",
            "Time to answer a request (body included), or to execute an async TAP job",
            ["endpoint"], buckets=BUCKETS, registry=self.registry)
        self.stages = Histogram(
            "vo_clip_stage_duration_seconds",
            "Time spent in one stage of a query: translate, encode, score, sql, render",
            ["endpoint", "stage"], buckets=BUCKETS, registry=self.registry)
        self.errors = Counter(
            "vo_clip_errors", "Errors answered, by fault name and HTTP status",
            ["endpoint", "fault", "status"], registry=self.registry)
        self.refused = Counter(
            "vo_clip_refused", "Requests refused by a configured limit, by limit",
            ["endpoint", "limit"], registry=self.registry)
        self.in_progress = Gauge(
            "vo_clip_requests_in_progress", "Requests being handled by the application now",
            registry=self.registry)
        self.latencies = StageLatencies()

    def recorder(self, endpoint: str) -> StageRecorder:
        """The library's stage recorder for requests of ``endpoint``."""
        def record(stage: str, seconds: float) -> None:
            self.stages.labels(endpoint, stage).observe(seconds)
        return record

    def count_error(self, endpoint: str, error: Exception, fault: str, status: int) -> None:
        """One error answered; also a refusal when ``error`` names the limit it hit."""
        self.errors.labels(endpoint, fault, str(status)).inc()
        limit = getattr(error, "limit", None)
        if limit:
            self.refused.labels(endpoint, str(limit)).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _metrics() -> ServiceMetrics | None:
    """This app's metrics; None in an app built without them (a blueprint under test)."""
    return current_app.extensions.get("vo_clip.metrics")


def _current_endpoint() -> str:
    return endpoint_label(request.endpoint)


def stage_recorder() -> StageRecorder | None:
    """The stage recorder for the current request's endpoint."""
    metrics = _metrics()
    return metrics.recorder(_current_endpoint()) if metrics else None


def count_error(error: Exception, fault: str, status: int) -> None:
    """Count an error answered to the current request (called by the error handlers)."""
    metrics = _metrics()
    if metrics:
        metrics.count_error(_current_endpoint(), error, fault, status)


def install(app: Flask) -> ServiceMetrics:
    """Create ``app``'s metrics, time each of its requests, and serve both views."""
    metrics = app.extensions["vo_clip.metrics"] = ServiceMetrics()

    @app.before_request
    def start_clock():
        g.vo_clip_started = time.perf_counter()
        metrics.in_progress.inc()

    @app.after_request
    def stop_clock_when_sent(response: Response):
        started = g.pop("vo_clip_started", None)
        if started is None:
            return response
        endpoint = _current_endpoint()

        def sent():
            metrics.requests.labels(endpoint).observe(time.perf_counter() - started)
            metrics.in_progress.dec()

        if response.direct_passthrough:
            # A file (send_file): the server sends it from its own loop and werkzeug
            # never closes such a response, so the application's part ends here.
            sent()
        else:  # the server closes the body once it has written all of it
            response.call_on_close(sent)
        return response

    @app.get("/metrics", endpoint="metrics")
    def prometheus():
        """Every collector of this app, in the Prometheus text format."""
        return Response(metrics.exposition(), content_type=CONTENT_TYPE)

    @app.get("/metrics.json", endpoint="metrics_json")
    def latency_summary():
        """Median and 95th-percentile latency of each sync TAP query stage."""
        return jsonify(metrics.latencies.summary())

    return metrics


class StageLatencies:
    """The last ``window`` durations of each stage, in seconds."""

    def __init__(self, window: int = 1000):
        self._samples: dict[str, deque] = defaultdict(lambda: deque(maxlen=window))
        self._lock = threading.Lock()

    def observe(self, timings: dict[str, float]) -> None:
        with self._lock:
            for stage, seconds in timings.items():
                self._samples[stage].append(seconds)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per stage: count, p50 and p95 in milliseconds."""
        with self._lock:
            samples = {stage: sorted(values) for stage, values in self._samples.items()}
        return {stage: {"count": len(values),
                        "p50_ms": round(1000 * values[int(0.5 * (len(values) - 1))], 3),
                        "p95_ms": round(1000 * values[int(0.95 * (len(values) - 1))], 3)}
                for stage, values in samples.items() if values}
