"""The application factory (Flask's ``create_app`` pattern).

Configuration is injected: defaults come from :class:`vo_clip.config.Config`, then
``VO_CLIP_*`` variables, then ``test_config``. One blueprint per standard is registered
here (TAP and VOSI, UWS for async TAP); the TAP service, with its index and model, is
opened on first use so that the app starts, and reports itself unavailable, even when
the index is missing. VO faults are rendered once, here, as DALI error documents.
"""

from __future__ import annotations

import logging
import threading

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from vo_clip import __version__
from vo_clip.config import Config
from vo_clip.errors import VoClipError
from vo_clip.search.index import EmbeddingIndex
from vo_clip.vo.faults import DALIFault, FatalFault, TransientFault, UsageFault
from vo_clip.vo.image_query import MAX_IMAGE_BYTES
from vo_clip.vo.uws import JobManager, JobOutput
from vo_clip.vo.votable import error_votable

from . import datalink, oai, observations, tap, uws, web
from .metrics import StageLatencies

__all__ = ["create_app"]

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
    app.extensions["vo_clip.metrics"] = StageLatencies()
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
    return app


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

    return service


def _job_manager(app: Flask, config: Config) -> JobManager:
    """Async TAP jobs, kept under ``home/jobs/<index name>`` so they survive restarts."""
    tap_service = app.extensions["vo_clip.tap"]

    def run_query(parameters: dict[str, str], deadline: float, cancelled) -> JobOutput:
        base = config.base_url or app.extensions.get("vo_clip.request_base", "")
        try:
            result = tap_service().execute(parameters, base_url=base.rstrip("/"),
                                           deadline=deadline, cancelled=cancelled)
        except DALIFault:
            raise
        except VoClipError as error:  # a library error about the request: the job's fault
            raise UsageFault(error.message, error.hint) from None
        return JobOutput(b"".join(result.render()), result.format.mime)

    return JobManager(config.home / "jobs" / config.index_dir.name, run_query,
                      config.uws_limits())


def _register_basics(app: Flask, config: Config) -> None:
    @app.get("/health")
    def health():
        """Liveness plus what is being served; 503 when the index cannot be opened."""
        try:
            manifest = EmbeddingIndex.open(config.index_dir).manifest
        except VoClipError as exc:
            return jsonify(status="unavailable", version=__version__, reason=str(exc)), 503
        return jsonify(status="ok", version=__version__, observations=manifest.count,
                       model=manifest.model["name"], archive=manifest.archive["name"])

    @app.get("/metrics")
    def metrics():
        """Median and 95th-percentile latency of each query stage."""
        return jsonify(app.extensions["vo_clip.metrics"].summary())

    @app.before_request
    def remember_host():
        # Async jobs run outside any request; they name URLs after the last host seen.
        app.extensions["vo_clip.request_base"] = request.url_root.rstrip("/")

    @app.after_request
    def software_header(response):
        response.headers["Server"] = f"vo_clip/{__version__}"
        response.headers.setdefault("Access-Control-Allow-Origin", "*")
        return response


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(DALIFault)
    def vo_fault(fault: DALIFault):
        return Response(error_votable(str(fault)), status=fault.status, mimetype=VOTABLE)

    @app.errorhandler(VoClipError)
    def library_error(error: VoClipError):
        fault = UsageFault(error.message, error.hint)
        return Response(error_votable(str(fault)), status=400, mimetype=VOTABLE)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if not request.path.startswith(_VO_PATHS):
            return error
        message = f"{error.code} {error.name}: {error.description}"
        return Response(error_votable(message), status=error.code, mimetype=VOTABLE)

    @app.errorhandler(Exception)
    def unexpected(error: Exception):
        log.exception("unexpected error serving %s", request.path)
        fault = FatalFault("internal error; the service log has the details")
        return Response(error_votable(str(fault)), status=500, mimetype=VOTABLE)
