"""The TAP 1.1 endpoints: ``/tap``, ``/tap/sync`` and the VOSI resources under it.

Routing and rendering only: :class:`vo_clip.vo.tap.TapService` runs the queries and
:mod:`vo_clip.vo.vosi` writes the documents. Every VO fault becomes a DALI error
VOTable (QUERY_STATUS=ERROR) with the fault's HTTP status.
"""

from __future__ import annotations


from flask import Blueprint, Response, abort, current_app, render_template_string

from vo_clip.vo.adql import UDFS
from vo_clip.vo.examples import examples as example_queries
from vo_clip.vo.examples import examples_xhtml
from vo_clip.vo.faults import DALIFault, NotFoundFault, UsageFault
from vo_clip.vo.registry import tap_capabilities_xml
from vo_clip.vo.vosi import availability_xml, table_xml, tableset_xml

from .client import client_gone
from .metrics import stage_recorder
from .params import request_params
from .urls import base_url, tap_url

__all__ = ["bp", "tap_service"]

bp = Blueprint("tap", __name__)

XML = "text/xml"

#: Parameters a sync query reads; any other is ignored (DALI: REQUEST, RUNID, DUMMY...).
_QUERY_PARAMETERS = ("LANG", "QUERY", "MAXREC", "RESPONSEFORMAT", "FORMAT", "UPLOAD")


def tap_service():
    """The application's TapService (opened on first use; see ``service.app``)."""
    return current_app.extensions["vo_clip.tap"]()


def query_parameters(params) -> dict[str, str]:
    """The single-valued query parameters of a request (UsageFault if one repeats)."""
    return {name: params.get(name) for name in _QUERY_PARAMETERS if name in params}


@bp.get("")
def home():
    """A short human-readable page: what this is and where to point a client."""
    return render_template_string(_HOME, tap_url=tap_url(), udfs=UDFS)


@bp.route("/sync", methods=["GET", "POST"])
def sync():
    params = query_parameters(request_params())
    result = tap_service().execute(params, base_url=base_url(), cancelled=client_gone(),
                                   recorder=stage_recorder())
    current_app.extensions["vo_clip.metrics"].latencies.observe(result.timings)
    return Response(result.render(), mimetype=result.format.mime)


@bp.get("/capabilities")
def capabilities():
    # One definition, shared with the Registry record of the TAP service.
    document = tap_capabilities_xml(base_url(), limits=tap_service().limits)
    return Response(document, mimetype=XML)


@bp.get("/examples")
def examples():
    """DALI examples (TOPCAT's "service-provided" examples), naming a served observation."""
    obs_id, ra, dec = tap_service().lookups.sample_observation()
    title = current_app.extensions["vo_clip.config"].title
    items = example_queries(obs_id, ra, dec, match=tap_service().match_calibrated)
    return Response(examples_xhtml(items, title=title),
                    mimetype="text/html")


@bp.get("/availability")
def availability():
    up_since = None
    try:
        service = tap_service()
        available, note = service.available()
        up_since = service.ready_since if available else None
    except DALIFault as fault:
        available, note = False, str(fault)
    return Response(availability_xml(available, up_since=up_since, note=note), mimetype=XML)


@bp.get("/tables")
def tables():
    detail = (request_params().get("DETAIL") or "max").lower()
    if detail not in ("min", "max"):
        raise UsageFault(f"DETAIL must be min or max, not {detail!r}", parameter="DETAIL")
    return Response(tableset_xml(tap_service().tables, detail=detail), mimetype=XML)


@bp.get("/tables/<name>")
def table(name: str):
    for candidate in tap_service().tables:
        if candidate.name.lower() == name.lower():
            return Response(table_xml(candidate), mimetype=XML)
    raise NotFoundFault(f"no published table named {name!r}")


@bp.route("/capabilities", methods=["POST", "PUT", "DELETE"])
@bp.route("/availability", methods=["POST", "PUT", "DELETE"])
@bp.route("/tables", methods=["POST", "PUT", "DELETE"])
def read_only():
    abort(405)


_HOME = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vo_clip TAP service</title></head>
<body>
<h1>vo_clip TAP service</h1>
<p>Point TOPCAT (File &rarr; Load Table &rarr; TAP) or <code>pyvo.dal.TAPService</code> at
<code>{{ tap_url }}</code>. Tables: <code>ivoa.ObsCore</code>, <code>hst.observations</code>,
<code>TAP_SCHEMA</code>. Endpoints: <a href="{{ tap_url }}/capabilities">capabilities</a>,
<a href="{{ tap_url }}/tables">tables</a>, <a href="{{ tap_url }}/availability">availability</a>,
<a href="{{ tap_url }}/async">async jobs</a>,
<a href="{{ tap_url }}/examples">example queries</a>.</p>
<h2>Similarity functions</h2>
<dl>{% for udf in udfs %}<dt><code>{{ udf.form }}</code></dt>
<dd>{{ udf.description }}</dd>{% endfor %}</dl>
</body></html>
"""
