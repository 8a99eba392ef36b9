"""What DataLink points at, and query by image: previews, FITS products, proposal
pages, and ``/search/image``.

Rendering only: the library finds the files and rows, makes the FITS product and
runs the ranked query.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from flask import Blueprint, Response, render_template_string, request, send_file

from vo_clip.vo.faults import NotFoundFault, UsageFault
from vo_clip.vo.image_query import UPLOAD_KEY, ImageQuery, read_query_image
from vo_clip.vo.timing import StageClock

from .client import client_gone
from .metrics import stage_recorder
from .params import request_params
from .tap import tap_service
from .urls import base_url

__all__ = ["bp"]

bp = Blueprint("observations", __name__)


@bp.get("/preview/<obs_id>")
def preview(obs_id: str):
    """An observation's preview image, the picture the similarity functions compare."""
    return send_file(tap_service().lookups.preview_file(obs_id), max_age=86400,
                     conditional=True)


@bp.get("/products/<obs_id>.fits")
def product(obs_id: str):
    """The FITS image of the preview, with a celestial WCS (made on request, cached)."""
    data = _product_bytes(obs_id)
    etag = hashlib.sha256(data).hexdigest()[:32]
    response = Response(data, mimetype="application/fits")
    response.headers["Content-Disposition"] = f'inline; filename="{obs_id}.fits"'
    response.set_etag(etag)
    response.cache_control.max_age = 86400
    return response.make_conditional(request)


@lru_cache(maxsize=64)
def _product_bytes(obs_id: str) -> bytes:
    return tap_service().lookups.product_fits(obs_id)


@bp.get("/proposals/<proposal_id>")
def proposal(proposal_id: str):
    """The proposal page: title, PI, cycle, abstract, PAPERCLIP summary, observations."""
    found = tap_service().lookups.proposal(proposal_id)
    if found is None:
        raise NotFoundFault(f"no proposal {proposal_id!r} in this service")
    first, observations = found
    return render_template_string(_PROPOSAL, p=first, observations=observations,
                                  base=base_url())


@bp.post("/search/image")
def search_image():
    """Observations ranked by similarity to an uploaded PNG, JPEG or FITS image."""
    upload = request.files.get("IMAGE") or request.files.get("image")
    if upload is None:
        raise UsageFault("no IMAGE file in the request",
                         "POST multipart/form-data with a file field named IMAGE",
                         parameter="IMAGE")
    params = request_params()
    query = ImageQuery.from_params(params)
    service = tap_service()
    image = read_query_image(upload.read(), upload.filename or "the upload",
                             max_pixels=service.limits.image_max_pixels)
    recorder = stage_recorder()
    with StageClock(recorder).stage("encode"):
        vector = service.lookups.encode_image(image)
    result = service.execute({"LANG": "ADQL", "QUERY": query.adql(),
                              "RESPONSEFORMAT": params.get("RESPONSEFORMAT")},
                             base_url=base_url(), cancelled=client_gone(),
                             query_vectors={UPLOAD_KEY: vector}, recorder=recorder)
    return Response(result.render(), mimetype=result.format.mime)


_PROPOSAL = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Proposal {{ p.proposal_id }}: {{ p.proposal_title or "untitled" }}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}
dt{font-weight:600}</style></head>
<body><h1>Proposal {{ p.proposal_id }}</h1>
<p><strong>{{ p.proposal_title or "untitled" }}</strong></p>
<dl><dt>Principal investigator</dt><dd>{{ p.proposal_pi or "unknown" }}</dd>
<dt>Cycle</dt><dd>{{ p.proposal_cycle if p.proposal_cycle is not none else "unknown" }}</dd>
</dl>
<h2>Abstract</h2><p>{{ p.proposal_abstract or "No abstract in this archive." }}</p>
<h2>Summary</h2>
<dl><dt>Objects and phenomena</dt><dd>{{ p.summary_objects or "none" }}</dd>
<dt>Science use cases</dt><dd>{{ p.summary_use_cases or "none" }}</dd></dl>
<h2>Observations ({{ observations|length }})</h2>
<ul>{% for o in observations %}<li><a href="{{ base }}/preview/{{ o.obs_id|urlencode }}">{{
o.obs_id }}</a> {{ o.target_name or "" }} {{ o.instrument_name or "" }}</li>{% endfor %}</ul>
</body></html>
"""
