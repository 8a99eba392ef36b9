"""DataLink 1.1: ``/datalink/links`` and the two services its descriptors call.

``/datalink/similar`` answers "more like this" with the same ADQL a user could run
(:func:`vo_clip.vo.datalink.similar_adql`); ``/datalink/describe`` is PAPERCLIP's
description retrieval. Routing and rendering only: the library resolves the links.
"""

from __future__ import annotations

from flask import Blueprint, Response

from vo_clip.vo.datalink import (
    DATALINK_CONTENT_TYPE,
    DATALINK_STANDARD_ID,
    LINK_FIELDS,
    MAX_IDS,
    LinkResolver,
    links_document_descriptors,
    similar_adql,
)
from vo_clip.vo.faults import NotFoundFault, UsageFault
from vo_clip.vo.timing import StageClock
from vo_clip.vo.votable import Field, write_votable

from .client import client_gone
from .metrics import stage_recorder
from .params import request_params
from .tap import tap_service
from .urls import base_url

__all__ = ["bp"]

bp = Blueprint("datalink", __name__)

_VOTABLE_FORMATS = ("", "votable", "application/x-votable+xml", DATALINK_CONTENT_TYPE)


def resolver() -> LinkResolver:
    service = tap_service()
    return LinkResolver(service.lookups.observation, service.lookups.preview_file,
                        authority=service.authority, base_url=base_url())


@bp.route("/links", methods=["GET", "POST"])
def links():
    """The links of every ID given (DataLink 1.1 §3), one error row per bad ID."""
    params = request_params()
    fmt = (params.get("RESPONSEFORMAT") or "").strip().lower().replace(" ", "")
    if fmt not in _VOTABLE_FORMATS:
        raise UsageFault(f"unsupported RESPONSEFORMAT {fmt!r} for links",
                         "links documents are VOTables", parameter="RESPONSEFORMAT")
    ids = params.getlist("ID")
    overflow = len(ids) > MAX_IDS
    clock = StageClock(stage_recorder())
    with clock.stage("sql"):  # the catalog rows and preview files of each ID
        rows = [link.row() for link in resolver().links(ids[:MAX_IDS])]
    document = write_votable(LINK_FIELDS, rows, overflow=overflow,
                             infos=[("standardID", DATALINK_STANDARD_ID)],
                             extra_resources=links_document_descriptors(base_url()))
    return Response(clock.timed_chunks("render", document),
                    content_type=DATALINK_CONTENT_TYPE)


@bp.route("/similar", methods=["GET", "POST"])
def similar():
    """The observations most similar to ID, best first (the "similar" descriptor)."""
    params = request_params()
    obs_id = _observation_id(params)
    query = similar_adql(obs_id, _top(params, 10))
    result = tap_service().execute({"LANG": "ADQL", "QUERY": query,
                                    "RESPONSEFORMAT": params.get("RESPONSEFORMAT")},
                                   base_url=base_url(), cancelled=client_gone(),
                                   recorder=stage_recorder())
    return Response(result.render(), mimetype=result.format.mime)


@bp.route("/describe", methods=["GET", "POST"])
def describe():
    """PAPERCLIP description retrieval for ID: object classes and use cases, with scores."""
    params = request_params()
    obs_id = _observation_id(params)
    top = _top(params, 5)
    clock = StageClock(stage_recorder())
    with clock.stage("encode"):  # the descriptions' embeddings: made once, then kept
        describer = tap_service().lookups.describer()
    with clock.stage("score"):
        matches = describer.describe(obs_id, top=top)
    rows = [(rank, m.label, m.kind, m.text, m.similarity)
            for rank, m in enumerate(matches, start=1)]
    return Response(clock.timed_chunks("render", write_votable(_DESCRIBE_FIELDS, rows)),
                    mimetype="application/x-votable+xml")


_DESCRIBE_FIELDS = (
    Field("rank", "int", ucd="meta.number", description="1 is the best match"),
    Field("label", "char", arraysize="*", ucd="meta.id", description="The description's name"),
    Field("kind", "char", arraysize="*", ucd="meta.code.class",
          description="'object' (class of object or phenomenon) or 'use case'"),
    Field("text", "char", arraysize="*", ucd="meta.note",
          description="The text that was compared with the preview"),
    Field("similarity", "double", ucd="stat.correlation",
          description="Cosine similarity of the preview to the text"),
)


def _observation_id(params) -> str:
    did = params.get("ID")
    if not did:
        raise UsageFault("the ID parameter is missing", "give an obs_publisher_did",
                         parameter="ID")
    obs_id = resolver().obs_id(did)
    if tap_service().lookups.observation(obs_id) is None:
        raise NotFoundFault(f"no observation {obs_id!r} in this service")
    return obs_id


def _top(params, default: int) -> int:
    value = params.get("TOP") or str(default)
    try:
        top = int(value)
    except ValueError:
        raise UsageFault(f"TOP must be an integer, not {value!r}", parameter="TOP") from None
    if not 1 <= top <= 1000:
        raise UsageFault(f"TOP must be between 1 and 1000, not {top}", parameter="TOP")
    return top
