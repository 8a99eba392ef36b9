"""The publishing registry's OAI-PMH 2.0 endpoint, ``/oai`` (RegistryInterface 1.0 §2).

Routing and rendering only: :mod:`vo_clip.vo.registry` writes the records, from the
configuration and the same base URL as every other endpoint (so the TAP record's
capabilities are those ``/tap/capabilities`` serves), and :mod:`vo_clip.vo.oai`
answers the request. OAI-PMH reports every problem with a request as an ``error``
element in a normal response, so this endpoint answers 200 ``text/xml`` to GET and
POST (``application/x-www-form-urlencoded``) alike.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request

from vo_clip.vo.oai import Repository, respond
from vo_clip.vo.registry import deployment_records

from .urls import base_url

__all__ = ["bp"]

bp = Blueprint("oai", __name__)

_SECRET = "vo_clip.oai_secret"


@bp.record_once
def _token_key(state) -> None:
    """A per-application key for resumption tokens (a restart makes old tokens invalid)."""
    state.app.extensions.setdefault(_SECRET, secrets.token_bytes(32))


def repository() -> Repository:
    """The records of this deployment, named after the URL the service is reached at."""
    config = current_app.extensions["vo_clip.config"]
    root = base_url()
    records = deployment_records(config, root)
    registry = next(record for record in records if record.name == "registry")
    return Repository(records, registry=registry, base_url=root + "/oai",
                      admin_email=config.contact_email, page_size=config.oai_page_size,
                      secret=current_app.extensions[_SECRET])


@bp.route("/oai", methods=["GET", "POST"])
def oai():
    """One OAI-PMH request: arguments from the query string (GET) or the form (POST)."""
    source = request.form if request.method == "POST" else request.args
    document = respond(repository(), source.to_dict(flat=False),
                       now=datetime.now(timezone.utc))
    return Response(document, mimetype="text/xml")
