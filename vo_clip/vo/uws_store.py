"""Where UWS jobs are kept: the seam between :class:`~vo_clip.vo.uws.JobManager` and SQL.

The manager owns the protocol (phases, transitions, limits, workers); a job store owns
the rows and the result bytes, and nothing else. Two stores exist:

- :class:`SqliteJobStore` (here): ``root/jobs.sqlite`` (WAL) and one folder per job
  holding its result file. One process serves the jobs; a job left QUEUED or
  EXECUTING belongs to the process id recorded with it.
- :class:`~vo_clip.vo.uws_postgres.PostgresJobStore`: a table in PostgreSQL, results
  included, shared by every replica pointed at the database.

A row is a dict of :data:`COLUMNS`. Every change of phase is a compare-and-set
(``phase_was``): when two replicas race (RUN posted to both, ABORT on one while the
other completes), one wins and the other sees the phase it lost to.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
from pathlib import Path
from typing import Protocol

from ..errors import VoClipError
from ..processes import process_alive

__all__ = ["COLUMNS", "JobStore", "SqliteJobStore", "UPDATABLE", "open_job_store"]

#: The columns of a job row, as both stores return them.
COLUMNS = ("job_id", "phase", "parameters", "creation_ms", "start_ms", "end_ms",
           "execution_duration", "destruction_ms", "error", "error_type", "result_mime",
           "result_size", "base_url")
#: The columns a job's update may set.
UPDATABLE = frozenset(COLUMNS) - {"job_id", "creation_ms"}
RESULT_NAME = "result"


class JobStore(Protocol):
    """What :class:`~vo_clip.vo.uws.JobManager` needs from a store.

    Attributes
    ----------
    poll_interval : float or None
        Seconds between two looks at changes that other processes make (another
        replica aborting a job this one runs, finishing a job a WAIT watches); None
        when no other process changes these jobs.
    """

    poll_interval: float | None

    def insert(self, row: dict) -> None:
        """Store a new job (all of :data:`COLUMNS`)."""

    def count(self) -> int:
        """How many jobs are stored."""

    def get(self, job_id: str) -> dict | None:
        """The job's row, or None."""

    def update(self, job_id: str, fields: dict, *, phase_was: str | None = None,
               claim: bool = False, result: bytes | None = None) -> bool:
        """Set ``fields``, if the job exists and (given ``phase_was``) is in that phase.

        ``claim`` records this process (this replica) as the one that runs the job;
        ``result`` is stored as the job's result in the same step. False when
        nothing was changed.
        """

    def result(self, job_id: str) -> bytes | None:
        """The stored result of the job, or None."""

    def delete(self, job_id: str) -> None:
        """Delete the job and its result (nothing if it is gone)."""

    def delete_expired(self, now_ms: int) -> list[str]:
        """Delete the jobs whose destruction time is ``now_ms`` or earlier; their ids."""

    def list(self, phases: list[str] | None, after_ms: int | None,
             last: int | None) -> list[dict]:
        """Rows, newest first, in ``phases``, created after ``after_ms``, at most ``last``."""

    def in_phase(self, phase: str) -> list[dict]:
        """The rows of the jobs in ``phase``."""

    def orphans(self, phases: tuple[str, ...], live: set[str]) -> list[tuple[str, str]]:
        """(job id, who ran it) of jobs in ``phases`` that no live process runs.

        ``live`` holds the jobs that live managers of this process run.
        """

    def heartbeat(self, phases: tuple[str, ...]) -> set[str]:
        """Say this process still runs its jobs; the ids of those still in ``phases``."""

    def close(self) -> None:
        """Release the connection."""


def open_job_store(root: Path, postgres_dsn: str | None = None,
                   postgres_schema: str = "vo_clip") -> JobStore:
    """PostgreSQL when a DSN is given (replicas share the jobs), else SQLite in ``root``.

    Raises
    ------
    VoClipError
        If a DSN is given but psycopg 3 is not installed.
    """
    if postgres_dsn:
        try:
            from ..search.backends.postgres_load import jobs_schema
            from .uws_postgres import PostgresJobStore
        except ImportError as error:
            raise VoClipError(f"postgres_dsn is set, but {error}",
                              "pip install 'vo_clip[postgres]'") from None

        # a schema of their own: reloading the catalog replaces its schema, never the jobs
        return PostgresJobStore(postgres_dsn, jobs_schema(postgres_schema))
    return SqliteJobStore(root)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    phase TEXT NOT NULL,
    parameters TEXT NOT NULL,
    creation_ms INTEGER NOT NULL,
    start_ms INTEGER,
    end_ms INTEGER,
    execution_duration INTEGER NOT NULL,
    destruction_ms INTEGER NOT NULL,
    error TEXT,
    error_type TEXT,
    result_mime TEXT,
    result_size INTEGER,
    pid INTEGER,
    base_url TEXT
)
"""


class SqliteJobStore:
    """Jobs in ``root/jobs.sqlite`` (WAL), each result in ``root/<jobId>/result``.

    A result is written to a temporary file first and renamed into place only while
    the job is still EXECUTING, so a job aborted or deleted meanwhile leaves no file.
    """

    poll_interval = None

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(self.root / "jobs.sqlite", check_same_thread=False,
                                     isolation_level=None, timeout=10)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(_SCHEMA)
        columns = {row["name"] for row in self._conn.execute("PRAGMA table_info(jobs)")}
        if "base_url" not in columns:  # a job database made before jobs kept their URL
            self._conn.execute("ALTER TABLE jobs ADD COLUMN base_url TEXT")

    def _sql(self, sql: str, args=()) -> sqlite3.Cursor:
        with self._lock:
            return self._conn.execute(sql, args)

    def insert(self, row: dict) -> None:
        names = ", ".join(COLUMNS)
        self._sql(f"INSERT INTO jobs ({names}) VALUES ({', '.join('?' * len(COLUMNS))})",
                  tuple(row.get(name) for name in COLUMNS))

    def count(self) -> int:
        return self._sql("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def get(self, job_id: str) -> dict | None:
        row = self._sql("SELECT * FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def update(self, job_id: str, fields: dict, *, phase_was: str | None = None,
               claim: bool = False, result: bytes | None = None) -> bool:
        names = set(fields)
        if not names <= UPDATABLE:
            raise ValueError(f"not job columns: {sorted(names - UPDATABLE)}")
        if claim:
            fields = {**fields, "pid": os.getpid()}
        assignments = ", ".join(f"{name} = ?" for name in fields)
        where, args = "job_id = ?", [*fields.values(), job_id]
        if phase_was is not None:
            where += " AND phase = ?"
            args.append(phase_was)
        with self._lock:
            if result is None:
                return self._sql(f"UPDATE jobs SET {assignments} WHERE {where}",
                                 args).rowcount == 1
            row = self.get(job_id)
            if row is None or (phase_was is not None and row["phase"] != phase_was):
                return False  # aborted or deleted meanwhile: make no folder to remove
        directory = self._job_dir(job_id)
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".result-")
        try:
            with os.fdopen(fd, "wb") as stream:
                stream.write(result)
            with self._lock:
                row = self.get(job_id)
                if row is not None and (phase_was is None or row["phase"] == phase_was):
                    os.replace(tmp, directory / RESULT_NAME)
                    self._sql(f"UPDATE jobs SET {assignments} WHERE {where}", args)
                    return True
        finally:
            Path(tmp).unlink(missing_ok=True)
        if row is None:
            shutil.rmtree(directory, ignore_errors=True)  # deleted while it ran
        return False

    def result(self, job_id: str) -> bytes | None:
        try:
            return (self._job_dir(job_id) / RESULT_NAME).read_bytes()
        except FileNotFoundError:
            return None

    def delete(self, job_id: str) -> None:
        with self._lock:
            self._sql("DELETE FROM jobs WHERE job_id = ?", (job_id,))
            directory = self._job_dir(job_id)
            if directory.exists():
                shutil.rmtree(directory)

    def delete_expired(self, now_ms: int) -> list[str]:
        with self._lock:
            expired = [row["job_id"] for row in self._sql(
                "SELECT job_id FROM jobs WHERE destruction_ms <= ?", (now_ms,)).fetchall()]
            for job_id in expired:
                self.delete(job_id)
        return expired

    def list(self, phases: list[str] | None, after_ms: int | None,
             last: int | None) -> list[dict]:
        where, args = ["1"], []
        if phases:
            where.append(f"phase IN ({', '.join('?' * len(phases))})")
            args += list(phases)
        if after_ms is not None:
            where.append("creation_ms > ?")
            args.append(after_ms)
        sql = f"SELECT * FROM jobs WHERE {' AND '.join(where)} ORDER BY creation_ms DESC, job_id"
        if last is not None:
            sql += " LIMIT ?"
            args.append(int(last))
        return [dict(row) for row in self._sql(sql, args).fetchall()]

    def in_phase(self, phase: str) -> list[dict]:
        return [dict(row) for row in
                self._sql("SELECT * FROM jobs WHERE phase = ?", (phase,)).fetchall()]

    def orphans(self, phases: tuple[str, ...], live: set[str]) -> list[tuple[str, str]]:
        rows = self._sql(f"SELECT job_id, pid FROM jobs WHERE phase IN "
                         f"({', '.join('?' * len(phases))})", phases).fetchall()
        return [(row["job_id"], f"process {row['pid']}") for row in rows
                if _orphaned(row["pid"], row["job_id"], live)]

    def heartbeat(self, phases: tuple[str, ...]) -> set[str]:
        """Nobody else reads a heartbeat here: only the phases are looked up."""
        rows = self._sql(f"SELECT job_id FROM jobs WHERE pid = ? AND phase IN "
                         f"({', '.join('?' * len(phases))})", (os.getpid(), *phases))
        return {row["job_id"] for row in rows.fetchall()}

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def _job_dir(self, job_id: str) -> Path:
        return self.root / job_id


def _orphaned(pid: int | None, job_id: str, live: set[str]) -> bool:
    """Whether no process runs this job any more."""
    if pid is None:
        return True
    if pid == os.getpid():
        return job_id not in live
    return not process_alive(pid)
