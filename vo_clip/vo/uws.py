"""Asynchronous jobs as the Universal Worker Service pattern defines them (UWS 1.1).

TAP 1.1 §2.2 runs asynchronous queries as UWS jobs. This module is the protocol part,
with no web framework in it: a :class:`JobManager` that owns the jobs, and pure
functions that write the UWS documents (UWS 1.1 §3, namespace ``UWS/v1.0``,
``version="1.1"``). ``service/uws.py`` maps HTTP onto it.

Why it looks the way it does:

- Phases change only through :data:`TRANSITIONS` (UWS 1.1 §2.1.3), one table of the
  allowed moves; anything else raises ``UsageFault("no transition from X to Y")``.
  Moves a worker makes on a job that was aborted, failed or deleted meanwhile are in
  the table as *ignored*: the late outcome is dropped, the job keeps its phase.
- Jobs outlive the process (UWS 1.1 §2.1.5: a job lives until its destruction time):
  a job store (:mod:`vo_clip.vo.uws_store`) keeps them, by default in SQLite
  (``root/jobs.sqlite``, WAL) with each result written atomically to
  ``root/<jobId>/result``; with PostgreSQL (:mod:`vo_clip.vo.uws_postgres`) several
  replicas share one job list. A job that a dead process left QUEUED or EXECUTING
  becomes ERROR when a manager starts (and, with a shared store, at every reaper
  pass), so no client waits forever.
- Phase changes are compare-and-set on the stored phase: when two replicas race, one
  move wins and the other is judged against the phase it lost to, so a job runs once.
  With a shared store a watcher thread looks at this manager's running jobs every
  ``store.poll_interval`` seconds (its heartbeat), so an ABORT or DELETE made on
  another replica reaches ``cancelled()``.
- ``PHASE=RUN`` moves the job to QUEUED before returning: pyvo's ``wait()`` and
  taplint expect the phase out of PENDING once the 303 is sent (UWS 1.1 §2.2.3).
- Blocking reads (``WAIT``, UWS 1.1 §2.2.1.2) wait on a :class:`threading.Condition`
  notified by every phase change this manager makes. Each holds a request thread of
  the server, so at most ``limits.blocking_waits`` block at once; the others get the
  job as it is (UWS lets a server return before the wait is over), and the threads
  left keep serving queries.
- A job remembers the service root it was created through (``base_url``): the URLs
  in its documents and in its result name the host its creator used, not whichever
  host the latest request named.
- The execution duration (UWS 1.1 §2.1.4) is a deadline handed to the executor and
  checked when it returns; the destruction time is enforced by a reaper thread and by
  every listing (UWS 1.1 §2.2.1.1).
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import sqlite3
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import ClassVar

from .faults import DALIFault, LimitFault, NotFoundFault, TransientFault, UsageFault
from .limits import UwsLimits
from .uws_store import RESULT_NAME, UPDATABLE, JobStore, SqliteJobStore
from .xmldoc import sub

__all__ = [
    "ABORTED",
    "ACTIVE_PHASES",
    "ARCHIVED",
    "COMPLETED",
    "ERROR",
    "EXECUTING",
    "HELD",
    "INTERNAL_MESSAGE",
    "PENDING",
    "PHASES",
    "QUEUED",
    "STOPPED_MESSAGE",
    "SUSPENDED",
    "TRANSITIONS",
    "UNKNOWN",
    "UWS_NS",
    "Job",
    "JobManager",
    "JobOutput",
    "UwsLimits",
    "format_datetime",
    "job_xml",
    "jobs_xml",
    "parameters_xml",
    "parse_datetime",
    "results_xml",
]

logger = logging.getLogger(__name__)

# -- phases and the transition table (UWS 1.1 §2.1.3) --------------------------------

PENDING = "PENDING"
QUEUED = "QUEUED"
EXECUTING = "EXECUTING"
COMPLETED = "COMPLETED"
ERROR = "ERROR"
ABORTED = "ABORTED"
UNKNOWN = "UNKNOWN"
HELD = "HELD"
SUSPENDED = "SUSPENDED"
ARCHIVED = "ARCHIVED"

PHASES = (PENDING, QUEUED, EXECUTING, COMPLETED, ERROR, ABORTED, UNKNOWN, HELD,
          SUSPENDED, ARCHIVED)
#: Phases in which a job may still change on its own; ``WAIT`` blocks only in these.
ACTIVE_PHASES = frozenset({PENDING, QUEUED, EXECUTING})

_MOVE, _IGNORE = "move", "ignore"

#: (from, to) → ``"move"`` (the phase changes) or ``"ignore"`` (the request is accepted
#: and changes nothing). A pair that is absent is an illegal move.
TRANSITIONS: dict[tuple[str, str], str] = {
    (PENDING, QUEUED): _MOVE,        # PHASE=RUN
    (PENDING, ABORTED): _MOVE,       # PHASE=ABORT before it ran
    (QUEUED, EXECUTING): _MOVE,      # a worker picks it up
    (QUEUED, ABORTED): _MOVE,
    (QUEUED, ERROR): _MOVE,          # the service stopped before a worker got to it
    (EXECUTING, COMPLETED): _MOVE,
    (EXECUTING, ERROR): _MOVE,       # a fault, an overrun, or the service stopped
    (EXECUTING, ABORTED): _MOVE,
    (QUEUED, QUEUED): _IGNORE,       # PHASE=RUN twice
    (EXECUTING, QUEUED): _IGNORE,
    (COMPLETED, ABORTED): _IGNORE,   # PHASE=ABORT on a finished job changes nothing
    (ERROR, ABORTED): _IGNORE,
    (ABORTED, ABORTED): _IGNORE,
    # a worker reporting on a job that was aborted or failed meanwhile: dropped
    (ABORTED, EXECUTING): _IGNORE,
    (ABORTED, COMPLETED): _IGNORE,
    (ABORTED, ERROR): _IGNORE,
    (ERROR, EXECUTING): _IGNORE,
    (ERROR, COMPLETED): _IGNORE,
    (ERROR, ERROR): _IGNORE,
}

STOPPED_MESSAGE = "the service stopped while this job was executing; submit it again"
INTERNAL_MESSAGE = "FatalFault: internal error while executing the job"
_REAP_GRACE_S = 5.0


@dataclass
class JobOutput:
    """What an executor returns: the result document and its MIME type."""

    content: bytes
    mime: str


@dataclass(frozen=True)
class Job:
    """A snapshot of one job; times are timezone-aware UTC datetimes.

    ``parameters`` keys are upper-cased (UWS 1.1 §2.1.9); ``error`` is the message of
    the error summary (``Fault: text``) when the phase is ERROR.
    """

    job_id: str
    phase: str
    parameters: dict[str, str]
    creation_time: datetime
    start_time: datetime | None
    end_time: datetime | None
    execution_duration: int
    destruction: datetime
    error: str | None = None
    error_type: str | None = None
    result_mime: str | None = None
    result_size: int | None = None
    base_url: str | None = None

    @property
    def run_id(self) -> str | None:
        """The client's RUNID (UWS 1.1 §2.1.11), if it gave one."""
        return self.parameters.get("RUNID")


Executor = Callable[[dict[str, str], float, Callable[[], bool], "str | None"], JobOutput]

_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")


def _now_ms() -> int:
    return round(time.time() * 1000)


_EARLIEST = datetime.min.replace(tzinfo=timezone.utc)
_LATEST = datetime.max.replace(tzinfo=timezone.utc)


def _from_ms(ms: int | None) -> datetime | None:
    """The instant ``ms`` after the epoch; one beyond what datetime holds is its bound
    (a row written before times were checked must not make its job unreadable)."""
    if ms is None:
        return None
    try:
        return datetime.fromtimestamp(ms / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return _EARLIEST if ms < 0 else _LATEST


def _to_ms(when: datetime) -> int:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return round(when.timestamp() * 1000)


class JobManager:
    """Creates, runs, persists and destroys UWS jobs.

    Parameters
    ----------
    root : Path
        Directory of the job database (``jobs.sqlite``) and of one folder per job,
        when no ``store`` is given.
    execute : callable
        ``execute(parameters, deadline, cancelled, base_url) -> JobOutput``.
        ``parameters`` has upper-cased keys; ``deadline`` is an absolute
        :func:`time.time` value (start plus the execution duration); ``cancelled()``
        turns True once the job is aborted or deleted, or the manager closes;
        ``base_url`` is the one given to :meth:`create` (None if none was). Raising a :class:`DALIFault` makes
        the job ERROR with the fault's ``vo_text()``; any other exception makes it
        ERROR with a generic message, and the traceback goes to the log only.
    limits : UwsLimits
        Durations and caps.
    workers : int
        Jobs executing at once; the others wait QUEUED.
    reap_interval : float
        Seconds between two passes of the reaper (expired jobs, overruns, and, with a
        shared store, jobs whose replica is gone).
    store : JobStore, optional
        Where the jobs are kept; by default :class:`~vo_clip.vo.uws_store.SqliteJobStore`
        in ``root``.

    Notes
    -----
    On start, jobs left QUEUED or EXECUTING by a process that no longer runs (or by
    this process, outside any live manager) become ERROR with :data:`STOPPED_MESSAGE`.
    ``WAIT`` is woken by changes made in this process, and with a shared store also
    looks at the job every ``store.poll_interval`` seconds.
    """

    #: jobs queued or executing in a live manager of this process, for orphan checks
    _live: ClassVar[set[str]] = set()
    _live_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, root: Path, execute: Executor, limits: UwsLimits = UwsLimits(),
                 workers: int = 2, *, reap_interval: float = 30.0,
                 store: JobStore | None = None):
        self.root = Path(root)
        self.limits = limits
        self._execute_fn = execute
        self._cond = threading.Condition(threading.RLock())
        self._active: set[str] = set()
        self._cancelled: set[str] = set()
        self._closed = False
        self._wait_slots = threading.BoundedSemaphore(max(1, limits.blocking_waits))
        self._store = store if store is not None else SqliteJobStore(self.root)
        try:
            self._recover()
        except TransientFault as fault:  # a shared store that is down: the reaper retries
            logger.warning("UWS recovery postponed: %s", fault)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="uws-worker")
        self._stop = threading.Event()
        self._reaper = threading.Thread(target=self._reap_loop, args=(reap_interval,),
                                        name="uws-reaper", daemon=True)
        self._reaper.start()
        self._watcher = None
        if self._store.poll_interval is not None:
            self._watcher = threading.Thread(target=self._watch_loop,
                                             args=(self._store.poll_interval,),
                                             name="uws-watcher", daemon=True)
            self._watcher.start()

    # -- public API --------------------------------------------------------------

    def create(self, parameters: dict[str, str], run: bool = False, *,
               base_url: str | None = None) -> Job:
        """Create a PENDING job (UWS 1.1 §2.2.3.1); start it at once if ``run``.

        Parameters are stored as given, keys upper-cased; they are validated by the
        executor when the job runs, so creation fails only on their size.
        ``base_url``, the service root the creator used, is kept with the job.

        Raises
        ------
        LimitFault
            If the parameters are more or larger than the limits allow.
        TransientFault
            If ``limits.job_max_count`` jobs are stored (``limit="job_max_count"``).
        """
        job_id = secrets.token_urlsafe(12)
        params = {str(k).upper(): str(v) for k, v in parameters.items()}
        self._check_parameters(params)
        with self._cond:
            self._check_room()
            now = _now_ms()
            self._db.insert({"job_id": job_id, "phase": PENDING,
                             "parameters": json.dumps(params), "creation_ms": now,
                             "execution_duration": self.limits.execution_default,
                             "destruction_ms": now + 1000 * self.limits.destruction_default,
                             "base_url": base_url})
        if run:
            self.run(job_id)
        return self.get(job_id)

    def get(self, job_id: str) -> Job:
        """The job ``job_id`` now.

        Raises
        ------
        NotFoundFault
            If there is no such job, or it was destroyed (or is due to be).
        """
        with self._cond:
            job = self._snapshot(job_id)
            if _to_ms(job.destruction) <= _now_ms():
                self._destroy(job_id)
                raise NotFoundFault(f"job {job_id} was destroyed at "
                                    f"{format_datetime(job.destruction)}")
        return job

    def list(self, phases: list[str] | None = None, after: datetime | None = None,
             last: int | None = None) -> list[Job]:
        """Jobs, newest first, filtered as UWS 1.1 §2.2.1.1 says.

        Parameters
        ----------
        phases : list of str, optional
            Keep jobs in one of these phases.
        after : datetime, optional
            Keep jobs created strictly after this instant (naive means UTC).
        last : int, optional
            Keep the ``last`` most recently created jobs.

        Raises
        ------
        UsageFault
            For an unknown phase or a negative ``last``.
        """
        unknown = sorted(set(phases or ()) - set(PHASES))
        if unknown:
            raise UsageFault(f"unknown phase {unknown[0]!r}", f"use one of {', '.join(PHASES)}",
                             parameter="PHASE")
        if last is not None and last < 0:
            raise UsageFault(f"LAST must be a positive integer, not {last}", parameter="LAST")
        if last is not None:
            last = min(last, self.limits.job_max_count)  # never more jobs than that
        self.reap()
        with self._cond:
            rows = self._db.list(list(phases) if phases else None,
                                 None if after is None else _to_ms(after), last)
        return [_job_from_row(row) for row in rows]

    def run(self, job_id: str) -> Job:
        """Queue the job (PHASE=RUN); it is QUEUED, or later, when this returns.

        Raises
        ------
        NotFoundFault, UsageFault
            For an unknown job, or one that is finished.
        """
        with self._cond:
            self.get(job_id)
            job, moved = self._transition(job_id, QUEUED, claim=True)
            if not moved:  # RUN twice, or raced with another replica: it runs there once
                return job
            self._active.add(job_id)
            with self._live_lock:
                self._live.add(job_id)
        try:
            future = self._pool.submit(self._execute, job_id)
        except RuntimeError:  # closed between the move and the submission
            raise TransientFault("the job service is shutting down", "try again later") from None
        future.add_done_callback(lambda f: self._after_worker(job_id, f))
        return job

    def abort(self, job_id: str) -> Job:
        """Abort the job (PHASE=ABORT); a finished job is left as it is."""
        with self._cond:
            if self.get(job_id).phase in ACTIVE_PHASES:
                self._cancel(job_id)
            return self._move(job_id, ABORTED, end_ms=_now_ms())

    def delete(self, job_id: str) -> None:
        """Destroy the job and its files (UWS 1.1 §2.2.3.2), aborting it if it runs."""
        with self._cond:
            self.get(job_id)
            self._destroy(job_id)

    def set_parameters(self, job_id: str, parameters: dict[str, str]) -> Job:
        """Add or replace parameters of a PENDING job (UWS 1.1 §2.1.9).

        A parameter replaces the stored one whatever the case of its name.

        Raises
        ------
        UsageFault
            If the job is no longer PENDING.
        LimitFault
            If the job's parameters would be more or larger than the limits allow.
        """
        with self._cond:
            job = self._pending(job_id, "parameters")
            merged = dict(job.parameters)
            merged.update({str(k).upper(): str(v) for k, v in parameters.items()})
            self._check_parameters(merged)
            self._update(job_id, parameters=json.dumps(merged))
            return self.get(job_id)

    def set_execution_duration(self, job_id: str, seconds: int) -> Job:
        """Set the execution duration of a PENDING job (UWS 1.1 §2.2.3.4).

        ``seconds`` is capped at ``limits.execution_max``; 0 (unlimited) is granted
        as that cap.

        Raises
        ------
        UsageFault
            For a negative value, or a job that is no longer PENDING.
        """
        seconds = int(seconds)
        if seconds < 0:
            raise UsageFault(f"execution duration must be ≥ 0 s, not {seconds}",
                             parameter="EXECUTIONDURATION")
        granted = min(seconds or self.limits.execution_max, self.limits.execution_max)
        with self._cond:
            self._pending(job_id, "execution duration")
            self._update(job_id, execution_duration=granted)
            return self.get(job_id)

    def set_destruction(self, job_id: str, when: datetime) -> Job:
        """Set the destruction time (UWS 1.1 §2.2.3.3), capped at creation + max.

        Raises
        ------
        UsageFault
            For a time in the past: the job would be gone at once, which is what
            DELETE is for (a client asking for year 1 more likely made a mistake).
        """
        with self._cond:
            job = self.get(job_id)
            if _to_ms(when) <= _now_ms():
                raise UsageFault(f"the destruction time {format_datetime(when)} is in the "
                                 "past", "DELETE the job to destroy it now",
                                 parameter="DESTRUCTION")
            latest = _to_ms(job.creation_time) + 1000 * self.limits.destruction_max
            self._update(job_id, destruction_ms=min(_to_ms(when), latest))
            return self._snapshot(job_id)

    def wait(self, job_id: str, timeout: float, phase: str | None = None) -> Job:
        """Block while the job is active and in its current phase (UWS 1.1 §2.2.1.2).

        Parameters
        ----------
        timeout : float
            Seconds; capped at ``limits.wait_max``, and a negative value means the cap.
        phase : str, optional
            Return at once unless the job is in this phase.

        When ``limits.blocking_waits`` calls already block, this one returns at once.
        """
        cap = self.limits.wait_max
        end = time.monotonic() + (cap if timeout < 0 else min(timeout, cap))
        with self._cond:
            job = self.get(job_id)
            if phase is not None and job.phase != phase:
                return job
            if job.phase not in ACTIVE_PHASES or not self._wait_slots.acquire(blocking=False):
                return job
            try:
                start = job.phase
                while job.phase == start and not self._closed:
                    remaining = end - time.monotonic()
                    if remaining <= 0:
                        break
                    poll = self._store.poll_interval  # changes other replicas make
                    self._cond.wait(remaining if poll is None else min(remaining, poll))
                    job = self.get(job_id)
            finally:
                self._wait_slots.release()
            return job

    def result(self, job_id: str) -> JobOutput:
        """The result of a COMPLETED job: its bytes and MIME type.

        Raises
        ------
        NotFoundFault
            Unless the job is COMPLETED (and still there).
        """
        job = self.get(job_id)
        if job.phase != COMPLETED:
            raise NotFoundFault(f"job {job_id} has no result: it is {job.phase}")
        with self._cond:
            content = self._db.result(job_id)
        if content is None:  # destroyed between the two reads
            raise NotFoundFault(f"job {job_id} has no result any more")
        return JobOutput(content, job.result_mime or "application/octet-stream")

    def reap(self) -> int:
        """Destroy expired jobs and fail overrunning ones; returns the number destroyed."""
        now = _now_ms()
        with self._cond:
            if self._closed:
                return 0
            expired = self._db.delete_expired(now)
            for job_id in expired:
                self._cancel(job_id)
            if expired:
                self._cond.notify_all()
            for row in self._db.in_phase(EXECUTING):
                deadline = row["start_ms"] + 1000 * (row["execution_duration"] + _REAP_GRACE_S)
                if now > deadline:
                    self._cancel(row["job_id"])
                    self._fail(row["job_id"], _overrun_message(row["execution_duration"]),
                               "transient")
            if self._store.poll_interval is not None:
                self._recover()  # a replica that died with jobs running
        return len(expired)

    def close(self) -> None:
        """Stop the workers and the reaper; jobs still queued or executing become ERROR.

        Executors still running see ``cancelled()`` turn True; whatever they return
        later is dropped.
        """
        with self._cond:
            if self._closed:
                return
            for job_id in list(self._active):
                self._cancel(job_id)
                self._fail(job_id, STOPPED_MESSAGE, "transient")
            self._closed = True
            self._forget(*self._active)
            self._cond.notify_all()
        self._stop.set()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._reaper.join(timeout=5)
        if self._watcher is not None:
            self._watcher.join(timeout=5)
        with self._cond:
            self._store.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- execution ------------------------------------------------------------------

    def _execute(self, job_id: str) -> None:
        """Run one job on a worker thread, from QUEUED to its final phase."""
        job = self._begin(job_id)
        if job is None:
            return
        deadline = job.start_time.timestamp() + job.execution_duration
        try:
            output = self._execute_fn(dict(job.parameters), deadline,
                                      lambda: self._closed or job_id in self._cancelled,
                                      job.base_url)
        except DALIFault as fault:
            self._fail(job_id, fault.vo_text(), _error_type(fault))
            return
        except Exception:
            logger.exception("UWS job %s failed in its executor", job_id)
            self._fail(job_id, INTERNAL_MESSAGE, "fatal")
            return
        if time.time() > deadline:
            self._fail(job_id, _overrun_message(job.execution_duration), "transient")
        elif not isinstance(output, JobOutput):
            logger.error("UWS job %s: the executor returned %r, not a JobOutput",
                         job_id, type(output))
            self._fail(job_id, INTERNAL_MESSAGE, "fatal")
        else:
            self._complete(job_id, output)

    def _begin(self, job_id: str) -> Job | None:
        """QUEUED → EXECUTING; None if the job was aborted, deleted or shut down meanwhile."""
        with self._cond:
            if self._closed or job_id in self._cancelled:
                return None
            try:
                job = self._move(job_id, EXECUTING, start_ms=_now_ms())
            except NotFoundFault:
                return None
            return job if job.phase == EXECUTING else None

    def _complete(self, job_id: str, output: JobOutput) -> None:
        """Store the result and mark the job COMPLETED in one step, if it still runs."""
        try:
            self._move(job_id, COMPLETED, end_ms=_now_ms(), result_mime=output.mime,
                       result_size=len(output.content), result=output.content)
        except OSError:
            logger.exception("UWS job %s: cannot write its result", job_id)
            self._fail(job_id, INTERNAL_MESSAGE, "fatal")
        except DALIFault as fault:  # deleted or shut down meanwhile: nothing to record
            logger.debug("UWS job %s: result dropped (%s)", job_id, fault)

    def _after_worker(self, job_id: str, future: Future) -> None:
        """Forget the job; a bug in the worker itself is logged and fails the job."""
        if not future.cancelled() and future.exception() is not None:
            logger.error("UWS job %s: worker crashed", job_id, exc_info=future.exception())
            self._fail(job_id, INTERNAL_MESSAGE, "fatal")
        with self._cond:
            self._active.discard(job_id)
            self._cancelled.discard(job_id)
            self._forget(job_id)

    def _fail(self, job_id: str, message: str, error_type: str) -> None:
        """Move the job to ERROR, if it is still there to move."""
        try:
            self._move(job_id, ERROR, end_ms=_now_ms(), error=message,
                       error_type=error_type)
        except DALIFault as fault:  # deleted or shut down meanwhile: nothing to record
            logger.debug("UWS job %s: error not recorded (%s)", job_id, fault)

    # -- state -------------------------------------------------------------------------

    def _move(self, job_id: str, to: str, **fields) -> Job:
        """Apply one transition of :data:`TRANSITIONS` and wake the waiters."""
        return self._transition(job_id, to, **fields)[0]

    def _transition(self, job_id: str, to: str, *, claim: bool = False,
                    result: bytes | None = None, **fields) -> tuple[Job, bool]:
        """:meth:`_move`, and whether the phase changed.

        The move is a compare-and-set on the phase read: if another replica changed it
        meanwhile, the move is judged again against the phase it changed to.
        ``claim`` records this manager as the job's runner; ``result`` is stored with
        the move.
        """
        with self._cond:
            while True:  # ends: the moves of TRANSITIONS form no cycle
                row = self._row(job_id)
                if row is None:
                    raise NotFoundFault(f"no job {job_id!r}")
                action = TRANSITIONS.get((row["phase"], to))
                if action is None:
                    raise UsageFault(f"no transition from {row['phase']} to {to}",
                                     f"job {job_id} is {row['phase']}", parameter="PHASE")
                if action != _MOVE:
                    return _job_from_row(row), False
                if self._db.update(job_id, {"phase": to, **fields}, phase_was=row["phase"],
                                   claim=claim, result=result):
                    self._cond.notify_all()
                    return self._snapshot(job_id), True

    def _check_parameters(self, params: dict[str, str]) -> None:
        """Refuse parameters beyond the limits before anything is stored."""
        limits = self.limits
        if len(params) > limits.job_max_parameters:
            raise LimitFault(f"the job has {len(params)} parameters; the limit "
                             f"(job_max_parameters) is {limits.job_max_parameters}",
                             limit="job_max_parameters")
        total = 0
        for name, value in params.items():
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > limits.job_parameter_max_bytes:
                raise LimitFault(f"parameter {name[:40]} is {size:,} bytes long; the limit "
                                 f"(job_parameter_max_bytes) is "
                                 f"{limits.job_parameter_max_bytes:,}",
                                 limit="job_parameter_max_bytes", parameter=name[:40])
            total += size + len(name.encode("utf-8", "surrogatepass"))
        if total > limits.job_parameters_max_bytes:
            raise LimitFault(f"the job's parameters are {total:,} bytes long; the limit "
                             f"(job_parameters_max_bytes) is "
                             f"{limits.job_parameters_max_bytes:,}",
                             limit="job_parameters_max_bytes")

    def _check_room(self) -> None:
        """Refuse a new job while ``job_max_count`` are stored (expired ones go first)."""
        count = self._db.count()
        if count >= self.limits.job_max_count:
            self.reap()
            count = self._db.count()
        if count >= self.limits.job_max_count:
            raise TransientFault(f"{count} jobs are stored; the limit (job_max_count) is "
                                 f"{self.limits.job_max_count}", "delete finished jobs, or "
                                 "try again once some are destroyed", limit="job_max_count")

    def _pending(self, job_id: str, what: str) -> Job:
        job = self.get(job_id)
        if job.phase != PENDING:
            raise UsageFault(f"the {what} of job {job_id} cannot change: it is {job.phase}",
                             "only a PENDING job can be changed")
        return job

    def _cancel(self, job_id: str) -> None:
        if job_id in self._active:
            self._cancelled.add(job_id)

    def _destroy(self, job_id: str) -> None:
        """Delete the row and the files; a running executor sees ``cancelled()``."""
        self._cancel(job_id)
        self._db.delete(job_id)
        self._cond.notify_all()

    def _forget(self, *job_ids: str) -> None:
        with self._live_lock:
            self._live.difference_update(job_ids)

    def _recover(self) -> None:
        """Fail the jobs that a stopped process left QUEUED or EXECUTING."""
        with self._live_lock:
            live = set(self._live)
        with self._cond:
            orphans = self._db.orphans((QUEUED, EXECUTING), live)
        for job_id, runner in orphans:
            logger.warning("UWS job %s was left running by %s; now ERROR", job_id, runner)
            self._fail(job_id, STOPPED_MESSAGE, "transient")

    def _reap_loop(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                self.reap()
            except (sqlite3.Error, OSError, TransientFault):
                logger.exception("UWS reaper pass failed; trying again in %s s", interval)

    def _watch_loop(self, interval: float) -> None:
        """Beat this manager's heart and cancel its jobs that another replica ended."""
        while not self._stop.wait(interval):
            with self._cond:
                if self._closed:
                    return
                running = set(self._active)  # each row already names this manager
            if not running:
                continue  # nothing to beat for, nothing another replica could stop
            try:
                still = self._store.heartbeat((QUEUED, EXECUTING))
            except TransientFault as fault:
                logger.warning("UWS heartbeat failed (%s); trying again in %s s", fault,
                               interval)
                continue
            except Exception:  # a watcher that died would let its jobs look orphaned
                logger.exception("UWS heartbeat failed; trying again in %s s", interval)
                continue
            ended = running - still
            if ended:
                with self._cond:
                    for job_id in ended:
                        self._cancel(job_id)
                    self._cond.notify_all()

    # -- storage -----------------------------------------------------------------------

    @property
    def _db(self) -> JobStore:
        """The store, unless the manager is closed; callers hold the lock."""
        if self._closed:
            raise TransientFault("the job service is shutting down", "try again later")
        return self._store

    def _row(self, job_id: str) -> dict | None:
        if not _JOB_ID.match(job_id):
            return None
        with self._cond:
            return self._db.get(job_id)

    def _snapshot(self, job_id: str) -> Job:
        """The stored job, even past its destruction time (:meth:`get` destroys those)."""
        row = self._row(job_id)
        if row is None:
            raise NotFoundFault(f"no job {job_id!r}", "it never existed or was destroyed")
        return _job_from_row(row)

    def _update(self, job_id: str, **fields) -> None:
        if not set(fields) <= UPDATABLE:
            raise ValueError(f"not job columns: {sorted(set(fields) - UPDATABLE)}")
        with self._cond:
            self._db.update(job_id, fields)


def _job_from_row(row: dict) -> Job:
    return Job(job_id=row["job_id"], phase=row["phase"],
               parameters=json.loads(row["parameters"]),
               creation_time=_from_ms(row["creation_ms"]), start_time=_from_ms(row["start_ms"]),
               end_time=_from_ms(row["end_ms"]), execution_duration=row["execution_duration"],
               destruction=_from_ms(row["destruction_ms"]), error=row["error"],
               error_type=row["error_type"], result_mime=row["result_mime"],
               result_size=row["result_size"], base_url=row["base_url"])


def _error_type(fault: DALIFault) -> str:
    """UWS 1.1 §2.1.6: transient errors may succeed if the job is submitted again."""
    return "transient" if isinstance(fault, TransientFault) else "fatal"


def _overrun_message(seconds: int) -> str:
    return ("TransientFault: the query ran longer than the execution duration of "
            f"{seconds} s")


# -- dates -------------------------------------------------------------------------------

def format_datetime(when: datetime) -> str:
    """``2026-01-31T12:00:00.123Z``: UTC with the Z that UWS 1.1 requires."""
    utc = when.astimezone(timezone.utc) if when.tzinfo else when
    # the year by hand: strftime writes year 1 as "1" on glibc, not the "0001" of ISO 8601
    return (f"{utc.year:04d}-" + utc.strftime("%m-%dT%H:%M:%S.")
            + f"{utc.microsecond // 1000:03d}Z")


def parse_datetime(text: str, parameter: str | None = None) -> datetime:
    """An ISO 8601 instant (``Z``, an offset, or none for UTC) as an aware UTC datetime.

    Raises
    ------
    UsageFault
        If ``text`` is not an ISO 8601 date or date-time, or is not an instant of the
        years 1 to 9999 in UTC (``0001-01-01T00:00:00+14:00`` is in year 0).
    """
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise UsageFault(f"{text[:60]!r} is not an ISO 8601 time",
                         "write e.g. 2026-01-31T12:00:00Z", parameter=parameter) from None
    if when.tzinfo is None:
        return when.replace(tzinfo=timezone.utc)
    try:
        return when.astimezone(timezone.utc)
    except OverflowError:
        raise UsageFault(f"{text!r} is outside the years 1 to 9999 in UTC",
                         "write e.g. 2026-01-31T12:00:00Z", parameter=parameter) from None


# -- documents (UWS 1.1 §3) ---------------------------------------------------------------

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"


def _root(name: str) -> ET.Element:
    # Prefixed names are written literally, so the declarations below are the only ones.
    return ET.Element(f"uws:{name}", {"xmlns:uws": UWS_NS, "xmlns:xlink": XLINK_NS,
                                      "xmlns:xsi": XSI_NS, "version": "1.1"})


def _child(parent: ET.Element, name: str, text: str | None = None, **attrs) -> ET.Element:
    return sub(parent, f"uws:{name}", text, **attrs)


def _time_child(parent: ET.Element, name: str, when: datetime | None) -> None:
    if when is None:
        _child(parent, name, **{"xsi:nil": "true"})
    else:
        _child(parent, name, format_datetime(when))


def _serialise(root: ET.Element) -> bytes:
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


def _fill_parameters(element: ET.Element, job: Job) -> ET.Element:
    for name, value in job.parameters.items():
        _child(element, "parameter", value, id=name)
    return element


JobsUrl = "str | Callable[[Job], str]"


def _jobs_url_of(job: Job, jobs_url) -> str:
    return jobs_url(job) if callable(jobs_url) else jobs_url


def _fill_results(element: ET.Element, job: Job, jobs_url: JobsUrl) -> ET.Element:
    if job.phase == COMPLETED:
        jobs_url = _jobs_url_of(job, jobs_url)
        attrs = {"xlink:type": "simple",
                 "xlink:href": f"{jobs_url}/{job.job_id}/results/{RESULT_NAME}"}
        if job.result_mime:
            attrs["mime-type"] = job.result_mime
        if job.result_size is not None:
            attrs["size"] = str(job.result_size)
        _child(element, "result", id=RESULT_NAME, **attrs)
    return element


def job_xml(job: Job, jobs_url: JobsUrl) -> bytes:
    """The ``uws:job`` document of ``job`` (UWS 1.1 §3), children in schema order.

    Parameters
    ----------
    job : Job
        The job to describe.
    jobs_url : str or callable
        Absolute URL of the job list (``{base}/tap/async``), or a function giving it
        for a job; result links hang off it.
    """
    root = _root("job")
    _child(root, "jobId", job.job_id)
    if job.run_id is not None:
        _child(root, "runId", job.run_id)
    _child(root, "ownerId", **{"xsi:nil": "true"})
    _child(root, "phase", job.phase)
    _child(root, "creationTime", format_datetime(job.creation_time))
    _time_child(root, "startTime", job.start_time)
    _time_child(root, "endTime", job.end_time)
    _child(root, "executionDuration", str(int(job.execution_duration)))
    _child(root, "destruction", format_datetime(job.destruction))
    _fill_parameters(_child(root, "parameters"), job)
    _fill_results(_child(root, "results"), job, jobs_url)
    if job.phase == ERROR:
        summary = _child(root, "errorSummary", type=job.error_type or "fatal",
                         hasDetail="true")
        _child(summary, "message", job.error or "the job failed")
    return _serialise(root)


def jobs_xml(jobs: list[Job], jobs_url: JobsUrl) -> bytes:
    """The ``uws:jobs`` list (UWS 1.1 §2.1.1): one ``jobref`` per job, with its phase.

    ``jobs_url`` is as for :func:`job_xml`: a function of the job gives each job's own.
    """
    root = _root("jobs")
    for job in jobs:
        href = f"{_jobs_url_of(job, jobs_url)}/{job.job_id}"
        ref = _child(root, "jobref", id=job.job_id,
                     **{"xlink:type": "simple", "xlink:href": href})
        _child(ref, "phase", job.phase)
        if job.run_id is not None:
            _child(ref, "runId", job.run_id)
        _child(ref, "creationTime", format_datetime(job.creation_time))
    return _serialise(root)


def parameters_xml(job: Job) -> bytes:
    """The ``uws:parameters`` document (``/{jobId}/parameters``)."""
    root = ET.Element("uws:parameters", {"xmlns:uws": UWS_NS})
    return _serialise(_fill_parameters(root, job))


def results_xml(job: Job, jobs_url: JobsUrl) -> bytes:
    """The ``uws:results`` document (``/{jobId}/results``), empty unless COMPLETED."""
    root = ET.Element("uws:results", {"xmlns:uws": UWS_NS, "xmlns:xlink": XLINK_NS})
    return _serialise(_fill_results(root, job, jobs_url))
