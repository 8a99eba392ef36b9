"""The application factory (Flask's ``create_app`` pattern).

Configuration is injected: defaults come from :class:`vo_clip.config.Config`, then
``VO_CLIP_*`` variables, then ``test_config``. Each standard's blueprint is registered
here; for now the service answers a health check, which the TAP issue extends.
"""

from __future__ import annotations

from flask import Flask, jsonify

from vo_clip import __version__
from vo_clip.config import Config
from vo_clip.errors import VoClipError
from vo_clip.search.index import EmbeddingIndex

__all__ = ["create_app"]


def create_app(config: Config | None = None, test_config: dict | None = None) -> Flask:
    """Build the Flask application serving ``config``'s index."""
    config = config or Config.load()
    if test_config:
        config = config.updated(test_config, origin="test_config")
    app = Flask(__name__)
    app.extensions["vo_clip.config"] = config

    @app.get("/health")
    def health():
        """Liveness plus what is being served; 503 when the index cannot be opened."""
        try:
            manifest = EmbeddingIndex.open(config.index_dir).manifest
        except VoClipError as exc:
            return jsonify(status="unavailable", version=__version__, reason=str(exc)), 503
        return jsonify(status="ok", version=__version__, observations=manifest.count,
                       model=manifest.model["name"], archive=manifest.archive["name"])

    @app.after_request
    def software_header(response):
        response.headers["Server"] = f"vo_clip/{__version__}"
        return response

    return app
