"""The UWS 1.1 REST binding of TAP's asynchronous jobs (``/tap/async``, TAP 1.1 §2.2).

Routes map the URLs of UWS 1.1 §2.2 onto :class:`vo_clip.vo.uws.JobManager`, found in
``current_app.extensions["vo_clip.uws"]``; the documents come from the library.
State changes answer 303 See Other to the resource to read next (UWS 1.1 §2.2.3).
Faults become their HTTP status with a one-line text/plain message; an unknown job or
sub-resource is 404 and an unsupported method 405, never a traceback.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, current_app, redirect, request

from vo_clip.vo import uws
from vo_clip.vo.faults import DALIFault, NotFoundFault, UsageFault

from .metrics import count_error
from .params import request_params
from .urls import base_url, job_base_url, tap_url

__all__ = ["bp"]

bp = Blueprint("uws", __name__)


def _manager() -> uws.JobManager:
    return current_app.extensions["vo_clip.uws"]


def _jobs_url() -> str:
    """The job list as the current request names it (where redirects send the client)."""
    return tap_url() + "/async"


def _job_jobs_url(job: uws.Job) -> str:
    """The job list as the job's creator named it: the job's own URLs hang off it."""
    return job_base_url(job.base_url) + "/tap/async"


def _xml(document: bytes) -> Response:
    return Response(document, mimetype="text/xml")


def _text(value: str) -> Response:
    return Response(value, mimetype="text/plain")


def _see_other(url: str):
    return redirect(url, code=303)


def _to_job(job_id: str):
    return _see_other(f"{_jobs_url()}/{job_id}")


@bp.errorhandler(DALIFault)
def _fault(fault: DALIFault) -> Response:
    """A fault as its HTTP status and ``Fault: message`` in text/plain."""
    count_error(fault, fault.fault_name, fault.status)
    return Response(fault.vo_text() + "\n", status=fault.status, mimetype="text/plain")


def _phase_action(value: str | None) -> str | None:
    """The PHASE a client posts: RUN or ABORT (UWS 1.1 §2.2.3.5–6)."""
    if value is None:
        return None
    action = value.strip().upper()
    if action not in ("RUN", "ABORT"):
        raise UsageFault(f"PHASE must be RUN or ABORT, not {value!r}", parameter="PHASE")
    return action


def _apply_phase(job_id: str, action: str | None) -> None:
    if action == "RUN":
        _manager().run(job_id)
    elif action == "ABORT":
        _manager().abort(job_id)


#: An integer as UWS parameters write one (``600``, ``-1``; ``600.0`` too), of at most
#: 18 digits: anything longer is beyond any count or duration this service holds.
_INTEGER = re.compile(r"\s*([+-]?\d{1,18})(?:\.0*)?\s*")


def _int_param(params, name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    match = _INTEGER.fullmatch(value)
    if match is None:
        raise UsageFault(f"{name} must be an integer of at most 18 digits, not "
                         f"{value[:40]!r}", parameter=name)
    return int(match.group(1))


# -- the job list ---------------------------------------------------------------------

@bp.get("")
def job_list():
    """The job list, filtered by PHASE (repeatable), AFTER and LAST (UWS 1.1 §2.2.1.1)."""
    params = request_params()
    phases = [p.strip().upper() for p in params.getlist("PHASE")] or None
    after = params.get("AFTER")
    jobs = _manager().list(
        phases=phases,
        after=uws.parse_datetime(after, "AFTER") if after is not None else None,
        last=_int_param(params, "LAST"))
    return _xml(uws.jobs_xml(jobs, _job_jobs_url))


@bp.post("")
def create_job():
    """A new PENDING job with every parameter posted; ``PHASE=RUN`` starts it.

    ``EXECUTIONDURATION`` and ``DESTRUCTION`` given at creation set the job's own
    (UWS 1.1 §2.2.3.1), capped as when posted later; they are checked first, so a
    bad value creates no job.
    """
    params = request_params().single_valued()
    action = _phase_action(params.pop("PHASE", None))
    duration = _int_param(params, "EXECUTIONDURATION")
    if duration is not None and duration < 0:
        raise UsageFault(f"EXECUTIONDURATION must be ≥ 0 s, not {duration}",
                         parameter="EXECUTIONDURATION")
    destruction = params.get("DESTRUCTION")
    destruction = None if destruction is None else uws.parse_datetime(destruction,
                                                                      "DESTRUCTION")
    params.pop("EXECUTIONDURATION", None)
    params.pop("DESTRUCTION", None)
    manager = _manager()
    job = manager.create(params, base_url=base_url())
    if duration is not None:
        manager.set_execution_duration(job.job_id, duration)
    if destruction is not None:
        manager.set_destruction(job.job_id, destruction)
    _apply_phase(job.job_id, action)
    return _to_job(job.job_id)


# -- one job ------------------------------------------------------------------------------

@bp.get("/<job_id>")
def job(job_id: str):
    """The job document; ``WAIT=n`` (``-1``: the cap) blocks while it is active."""
    params = request_params()
    wait = _int_param(params, "WAIT")
    if wait is None:
        found = _manager().get(job_id)
    else:
        phase = params.get("PHASE")
        found = _manager().wait(job_id, wait, phase.strip().upper() if phase else None)
    return _xml(uws.job_xml(found, _job_jobs_url))


@bp.delete("/<job_id>")
def delete_job(job_id: str):
    """Destroy the job (UWS 1.1 §2.2.3.2) and send the client to the job list."""
    _manager().delete(job_id)
    return _see_other(_jobs_url())


@bp.post("/<job_id>")
def post_job(job_id: str):
    """``ACTION=DELETE`` deletes the job; other parameters update a PENDING job."""
    params = request_params().single_valued()
    action = params.pop("ACTION", None)
    if action is not None:
        if action.strip().upper() != "DELETE":
            raise UsageFault(f"ACTION must be DELETE, not {action!r}", parameter="ACTION")
        return delete_job(job_id)
    phase = _phase_action(params.pop("PHASE", None))
    if params:
        _manager().set_parameters(job_id, params)
    else:
        _manager().get(job_id)
    _apply_phase(job_id, phase)
    return _to_job(job_id)


# -- its sub-resources (UWS 1.1 §2.1) ------------------------------------------------------

@bp.route("/<job_id>/phase", methods=["GET", "POST"])
def phase(job_id: str):
    """The phase as text; POST ``PHASE=RUN`` or ``PHASE=ABORT`` changes it."""
    params = request_params()
    if request.method == "POST":
        action = _phase_action(params.get("PHASE"))
        if action is None:
            raise UsageFault("PHASE is missing", "post PHASE=RUN or PHASE=ABORT",
                             parameter="PHASE")
        _apply_phase(job_id, action)
        return _to_job(job_id)
    return _text(_manager().get(job_id).phase)


@bp.route("/<job_id>/executionduration", methods=["GET", "POST"])
def execution_duration(job_id: str):
    """Whole seconds as text; POST ``EXECUTIONDURATION`` (capped; 0 is the cap)."""
    if request.method == "POST":
        seconds = _int_param(request_params(), "EXECUTIONDURATION")
        if seconds is None:
            raise UsageFault("EXECUTIONDURATION is missing", parameter="EXECUTIONDURATION")
        _manager().set_execution_duration(job_id, seconds)
        return _to_job(job_id)
    return _text(str(_manager().get(job_id).execution_duration))


@bp.route("/<job_id>/destruction", methods=["GET", "POST"])
def destruction(job_id: str):
    """The destruction time as text; POST ``DESTRUCTION`` (ISO 8601; capped)."""
    if request.method == "POST":
        value = request_params().get("DESTRUCTION")
        if value is None:
            raise UsageFault("DESTRUCTION is missing", parameter="DESTRUCTION")
        _manager().set_destruction(job_id, uws.parse_datetime(value, "DESTRUCTION"))
        return _to_job(job_id)
    return _text(uws.format_datetime(_manager().get(job_id).destruction))


@bp.get("/<job_id>/quote")
def quote(job_id: str):
    """No estimate is given: the quote is empty (``xsi:nil``, UWS 1.1 §2.1.7)."""
    _manager().get(job_id)
    return _text("")


@bp.get("/<job_id>/owner")
def owner(job_id: str):
    """Jobs are anonymous: the owner is empty (UWS 1.1 §2.1.10)."""
    _manager().get(job_id)
    return _text("")


@bp.route("/<job_id>/parameters", methods=["GET", "POST"])
def parameters(job_id: str):
    """``uws:parameters``; a POST adds or replaces parameters of a PENDING job."""
    if request.method == "POST":
        _manager().set_parameters(job_id, request_params().single_valued())
        return _to_job(job_id)
    return _xml(uws.parameters_xml(_manager().get(job_id)))


@bp.get("/<job_id>/results")
def results(job_id: str):
    """``uws:results``: one ``result`` link once the job is COMPLETED."""
    return _xml(uws.results_xml(_manager().get(job_id), _job_jobs_url))


@bp.get("/<job_id>/results/result")
def result(job_id: str):
    """The stored result with its MIME type; 404 unless the job is COMPLETED."""
    stored = _manager().result(job_id)
    return Response(stored.content, content_type=stored.mime)


@bp.get("/<job_id>/error")
def error(job_id: str):
    """The DALI error document of an ERROR job, with status 200 (TAP 1.1 §2.2; 404 else)."""
    from vo_clip.vo.votable import error_votable

    found = _manager().get(job_id)
    if found.phase != uws.ERROR:
        raise NotFoundFault(f"job {job_id} has no error: it is {found.phase}")
    return Response(error_votable(found.error or "the job failed"),
                    mimetype="application/x-votable+xml")


@bp.route("/<job_id>/<path:rest>", methods=["GET", "POST"])
def unknown(job_id: str, rest: str):
    """Any other child of a job: 404 (other methods on known children stay 405)."""
    raise NotFoundFault(f"no resource {rest!r} under job {job_id}",
                        "UWS jobs have phase, executionduration, destruction, quote, owner, "
                        "parameters, results and error")
