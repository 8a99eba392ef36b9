"""The application factory (Flask's ``create_app`` pattern).

Configuration is injected: defaults come from :class:`vo_clip.config.Config`, then
``VO_CLIP_*`` variables, then ``test_config``. One blueprint per standard is registered
here (TAP and VOSI, UWS for async TAP); the TAP service, with its index and model, is
opened on first use so that the app starts, and reports itself unavailable, even when
the index is missing. VO faults are rendered here as DALI error documents, except on
the UWS job resources, whose blueprint answers them itself with a text/plain line (see
:mod:`service.uws`), so that it works the same when mounted on its own.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from vo_clip import __version__
from vo_clip.config import Config
from vo_clip.errors import VoClipError
from vo_clip.vo.damage import damage_fault
from vo_clip.vo.faults import DALIFault, FatalFault, TransientFault, UsageFault
from vo_clip.vo.image_query import MAX_IMAGE_BYTES
from vo_clip.vo.uws import JobManager, JobOutput
from vo_clip.vo.uws_store import open_job_store
from vo_clip.vo.votable import error_votable

from . import datalink, metrics, oai, observations, tap, uws, web

__all__ = ["close_app", "create_app"]

log = logging.getLogger(__name__)

#: Request bodies above this are refused before they are read: the largest legitimate
#: body is an image upload (a query is at most 100 kB).
MAX_REQUEST_BYTES = MAX_IMAGE_BYTES + 1024 * 1024

VOTABLE = "application/x-votable+xml"
#: Where an HTTP error (404, 405, 413...) is a DALI error document: the VO endpoints and
#: what DataLink links to.
_VO_PATHS = ("/tap", "/datalink", "/search", "/preview", "/products", "/proposals")


def create_app(config: Config | None = None, test_config: dict | None = None) -> Flask:
    """Build the Flask application serving ``config``'s index."""
    config = config or Config.load()
    if test_config:
        config = config.updated(test_config, origin="test_config")
    app = Flask(__name__, static_folder=None)  # assets belong to the web blueprint
    app.config["MAX_CONTENT_LENGTH"] = MAX_REQUEST_BYTES
    app.config["MAX_FORM_MEMORY_SIZE"] = MAX_REQUEST_BYTES  # the translator says what is too long
    app.extensions["vo_clip.config"] = config
    metrics.install(app)  # /metrics and /metrics.json; times every request
    app.extensions["vo_clip.tap"] = _lazy_tap_service(config)
    app.extensions["vo_clip.uws"] = _job_manager(app, config)
    app.register_blueprint(tap.bp, url_prefix="/tap")
    app.register_blueprint(uws.bp, url_prefix="/tap/async")
    app.register_blueprint(datalink.bp, url_prefix="/datalink")
    app.register_blueprint(observations.bp)
    app.register_blueprint(oai.bp)  # OAI-PMH publishing registry at /oai
    app.register_blueprint(web.bp)  # the search page at "/", its assets at /assets/
    _register_basics(app, config)
    _register_error_handlers(app)
    if config.proxy_fix:
        _trust_proxies(app, config.proxy_fix)
    return app


def _trust_proxies(app: Flask, hops: int) -> None:
    """Honour ``X-Forwarded-For/-Proto/-Host/-Port/-Prefix`` from ``hops`` proxies.

    Off by default: without a proxy that sets them, these headers come from the
    client, and would let any client choose the host that URLs name.
    """
    from werkzeug.middleware.proxy_fix import ProxyFix

    app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops,
                            x_port=hops, x_prefix=hops)


def _lazy_tap_service(config: Config):
    """A function returning the TapService, opened once, on first call."""
    lock = threading.Lock()
    opened = []

    def service():
        with lock:
            if not opened:
                from vo_clip.workspace import open_tap

                try:
                    opened.append(open_tap(config))
                except VoClipError as exc:
                    raise TransientFault(f"the index cannot be opened: {exc}") from None
            return opened[0]

    def close():
        with lock:
            if opened:
                opened[0].catalog.close()

    service.close = close
    return service


def close_app(app: Flask) -> None:
    """Release what the app holds open: its job manager, its catalog's connections.

    Called when ``vo-clip serve`` stops; a PostgreSQL catalog and job store otherwise
    leave their connections to the server's timeout.
    """
    for name in ("vo_clip.uws", "vo_clip.tap"):
        if name in app.extensions:  # an app a test built with only some of them
            app.extensions[name].close()


def _job_manager(app: Flask, config: Config) -> JobManager:
    """Async TAP jobs, kept under ``home/jobs/<index name>`` so they survive restarts.

    With ``postgres_dsn`` set they are kept in PostgreSQL instead, where every replica
    serving that database sees them.
    """
    tap_service = app.extensions["vo_clip.tap"]
    counted = app.extensions["vo_clip.metrics"]

    def run_query(parameters: dict[str, str], deadline: float, cancelled,
                  created_through: str | None) -> JobOutput:
        # The job's URLs name the root its creator used (service.urls.job_base_url).
        base = config.base_url or created_through or ""
        started = time.perf_counter()
        try:
            result = tap_service().execute(parameters, base_url=base.rstrip("/"),
                                           deadline=deadline, cancelled=cancelled,
                                           recorder=counted.recorder(metrics.ASYNC_JOB))
            return JobOutput(b"".join(result.render()), result.format.mime)
        except DALIFault as fault:
            counted.count_error(metrics.ASYNC_JOB, fault, fault.fault_name, fault.status)
            raise
        except Exception as error:
            fault = damage_fault(error)  # the service's data is damaged: not the job's fault
            if fault is None and isinstance(error, VoClipError):  # a library error about the request
                fault = UsageFault(error.message, error.hint)
            if fault is not None:
                counted.count_error(metrics.ASYNC_JOB, error, fault.fault_name, fault.status)
                raise fault from None
            counted.count_error(metrics.ASYNC_JOB, error, "FatalFault", 500)
            raise  # the job manager logs it and fails the job
        finally:
            counted.requests.labels(metrics.ASYNC_JOB).observe(time.perf_counter() - started)

    limits = config.uws_limits()
    limits = replace(limits, blocking_waits=config.blocking_waits
                     or max(1, config.threads // 2))
    root = config.home / "jobs" / config.index_dir.name
    store = open_job_store(root, config.postgres_dsn, config.postgres_schema)
    return JobManager(root, run_query, limits, store=store)


def _register_basics(app: Flask, config: Config) -> None:
    @app.get("/health")
    def health():
        """What is being served; 503 unless the index opens and a tiny query runs on it.

        The same check as VOSI availability, so "ok" means TAP, DataLink and the
        previews can answer, not only that the process is alive.
        """
        try:
            service = app.extensions["vo_clip.tap"]()
        except DALIFault as fault:
            return jsonify(status="unavailable", version=__version__, reason=str(fault)), 503
        available, note = service.available()
        if not available:
            return jsonify(status="unavailable", version=__version__, reason=note), 503
        manifest = service.index.manifest
        return jsonify(status="ok", version=__version__, observations=manifest.count,
                       model=manifest.model["name"], archive=manifest.archive["name"])


    @app.after_request
    def software_header(response):
        response.headers["Server"] = f"vo_clip/{__version__}"
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DALIFault)
    def vo_fault(fault: DALIFault):
        metrics.count_error(fault, fault.fault_name, fault.status)
        return Response(error_votable(str(fault)), status=fault.status, mimetype=VOTABLE)

    @app.errorhandler(VoClipError)
    def library_error(error: VoClipError):
        return vo_fault(damage_fault(error) or UsageFault(error.message, error.hint))

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        metrics.count_error(error, type(error).__name__, error.code or 500)
        if not request.path.startswith(_VO_PATHS):
            return error
        message = f"{error.code} {error.name}: {error.description}"
        return Response(error_votable(message), status=error.code, mimetype=VOTABLE)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        fault = damage_fault(error)  # a damaged index is named, and logged, as such
        if fault is None:
            log.exception("unexpected error serving %s", request.path)
            fault = FatalFault("internal error; the service log has the details")
        return vo_fault(fault)
