"""UWS jobs kept in PostgreSQL, so that several ``vo-clip serve`` replicas share them.

Every replica pointed at one database sees one job list (``<schema>.uws_jobs``), and
the results with it (``<schema>.uws_results``, bytea: results are capped by
``result_max_bytes``, so any replica can serve any job's result without a shared
disk). The rules that make two replicas safe:

- A phase changes only by ``UPDATE ... WHERE job_id = %s AND phase = <the phase
  read>``: of two replicas racing to queue, run, abort or finish a job, one wins.
  Storing a result and moving to COMPLETED is one transaction.
- A replica records itself as a running job's ``owner`` and beats its heart on every
  job it runs (``heartbeat_ms``, every :attr:`PostgresJobStore.poll_interval`
  seconds); the same statement tells it which of its jobs another replica aborted or
  deleted. A job whose owner has not beaten for ``stale_after_s`` seconds is an
  orphan: the next reaper pass of any replica makes it ERROR.
- A database that cannot be reached is a :class:`TransientFault` (503 on the UWS
  endpoints); the connection is opened again on the next call.

The tables are created when missing (under an advisory lock: replicas may start at
once); nothing else in the schema is touched.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from .faults import TransientFault
from .uws_store import COLUMNS, UPDATABLE

__all__ = ["PostgresJobStore"]

_CONNECT_TIMEOUT_S = 5
_STATEMENT_TIMEOUT_MS = 30_000

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.uws_jobs (
    job_id text PRIMARY KEY,
    phase text NOT NULL,
    parameters text NOT NULL,
    creation_ms bigint NOT NULL,
    start_ms bigint,
    end_ms bigint,
    execution_duration bigint NOT NULL,
    destruction_ms bigint NOT NULL,
    error text,
    error_type text,
    result_mime text,
    result_size bigint,
    base_url text,
    owner text,
    heartbeat_ms bigint
);
CREATE INDEX IF NOT EXISTS uws_jobs_by_creation ON {schema}.uws_jobs (creation_ms DESC);
CREATE INDEX IF NOT EXISTS uws_jobs_by_phase ON {schema}.uws_jobs (phase);
CREATE TABLE IF NOT EXISTS {schema}.uws_results (
    job_id text PRIMARY KEY REFERENCES {schema}.uws_jobs (job_id) ON DELETE CASCADE,
    content bytea NOT NULL
);
"""


def _now_ms() -> int:
    return round(time.time() * 1000)


def _storable(value):
    """PostgreSQL text holds neither NUL nor lone surrogates; SQLite took both."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd").encode("utf-8", "replace").decode("utf-8")
    return value


class PostgresJobStore:
    """Jobs in ``<schema>.uws_jobs`` of the database ``dsn``, shared by replicas.

    Parameters
    ----------
    dsn : str
        A libpq connection string or URI.
    schema : str
        The schema of vo_clip's tables (``postgres_schema``).
    heartbeat_s : float
        Seconds between two heartbeats of a replica on its running jobs; also how
        soon an ABORT made elsewhere reaches a running job.
    stale_after_s : float
        Seconds without a heartbeat after which a running job's owner counts as gone.
    """

    def __init__(self, dsn: str, schema: str = "vo_clip", *, heartbeat_s: float = 1.0,
                 stale_after_s: float = 30.0):
        self.poll_interval = heartbeat_s
        self.stale_after_ms = round(1000 * stale_after_s)
        #: who runs a job this store claims: one name per manager, never reused
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self._dsn = dsn
        self._schema = schema
        self._jobs = sql.Identifier(schema, "uws_jobs")
        self._results = sql.Identifier(schema, "uws_results")
        self._lock = threading.RLock()
        self._conn: psycopg.Connection | None = None
        self._closed = False

    # -- the connection --------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        conn = psycopg.connect(self._dsn, autocommit=True, row_factory=dict_row,
                               connect_timeout=_CONNECT_TIMEOUT_S,
                               application_name="vo_clip uws")
        try:
            conn.execute(f"SET statement_timeout = {_STATEMENT_TIMEOUT_MS}")
            with conn.transaction():
                # replicas starting together would race on CREATE ... IF NOT EXISTS
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             (f"vo_clip.uws_jobs:{self._schema}",))
                # CREATE SCHEMA needs CREATE on the database even when the schema exists:
                # a service role is given the schema by `vo-clip postgres load` instead
                if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s",
                                (self._schema,)).fetchone() is None:
                    conn.execute(sql.SQL("CREATE SCHEMA {}").format(
                        sql.Identifier(self._schema)))
                conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(self._schema)))
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self, work):
        """``work(connection)``; a database fault becomes a TransientFault.

        A connection that broke since its last use is opened again once: a restart
        of the database costs nothing but the requests in flight.
        """
        with self._lock:
            if self._closed:
                raise TransientFault("the job service is shutting down", "try again later")
            for attempt in (1, 2):
                reused = self._conn is not None
                try:
                    if self._conn is None:
                        self._conn = self._connect()
                    return work(self._conn)
                except psycopg.OperationalError as error:
                    self._drop()
                    if reused and attempt == 1:
                        continue
                    raise TransientFault(f"the job database cannot be reached: "
                                         f"{_first_line(error)}", "try again later") from None
                except psycopg.Error as error:
                    if self._conn is not None and self._conn.broken:
                        self._drop()
                    raise TransientFault(f"the job database failed: {_first_line(error)}",
                                         "try again later") from None

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except psycopg.Error:
                pass
            self._conn = None

    def _execute(self, statement, args=()) -> list[dict]:
        def work(conn):
            cursor = conn.execute(statement, args)
            return cursor.fetchall() if cursor.description else []
        return self._run(work)

    # -- the store (see vo_clip.vo.uws_store.JobStore) ----------------------------------

    def insert(self, row: dict) -> None:
        self._execute(sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
            self._jobs, sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            sql.SQL(", ").join(sql.Placeholder() * len(COLUMNS))),
            [_storable(row.get(name)) for name in COLUMNS])

    def count(self) -> int:
        return self._execute(sql.SQL("SELECT count(*) AS n FROM {}").format(self._jobs))[0]["n"]

    def get(self, job_id: str) -> dict | None:
        rows = self._execute(self._select("WHERE job_id = %s"), (job_id,))
        return rows[0] if rows else None

    def update(self, job_id: str, fields: dict, *, phase_was: str | None = None,
               claim: bool = False, result: bytes | None = None) -> bool:
        names = set(fields)
        if not names <= UPDATABLE:
            raise ValueError(f"not job columns: {sorted(names - UPDATABLE)}")
        values = {name: _storable(value) for name, value in fields.items()}
        if claim:
            values.update(owner=self.owner, heartbeat_ms=_now_ms())
        statement = sql.SQL("UPDATE {} SET {} WHERE job_id = %s").format(
            self._jobs, sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name))
                                           for name in values))
        args = [*values.values(), job_id]
        if phase_was is not None:
            statement += sql.SQL(" AND phase = %s")
            args.append(phase_was)
        statement += sql.SQL(" RETURNING job_id")

        def work(conn):
            with conn.transaction():
                if not conn.execute(statement, args).fetchall():
                    return False
                if result is not None:
                    conn.execute(sql.SQL(
                        "INSERT INTO {} (job_id, content) VALUES (%s, %s) ON CONFLICT "
                        "(job_id) DO UPDATE SET content = EXCLUDED.content").format(
                            self._results), (job_id, result))
                return True
        return self._run(work)

    def result(self, job_id: str) -> bytes | None:
        rows = self._execute(sql.SQL("SELECT content FROM {} WHERE job_id = %s").format(
            self._results), (job_id,))
        return bytes(rows[0]["content"]) if rows else None

    def delete(self, job_id: str) -> None:
        self._execute(sql.SQL("DELETE FROM {} WHERE job_id = %s").format(self._jobs),
                      (job_id,))

    def delete_expired(self, now_ms: int) -> list[str]:
        rows = self._execute(sql.SQL(
            "DELETE FROM {} WHERE destruction_ms <= %s RETURNING job_id").format(self._jobs),
            (now_ms,))
        return [row["job_id"] for row in rows]

    def list(self, phases: list[str] | None, after_ms: int | None,
             last: int | None) -> list[dict]:
        where, args = [sql.SQL("TRUE")], []
        if phases:
            where.append(sql.SQL("phase = ANY(%s)"))
            args.append(list(phases))
        if after_ms is not None:
            where.append(sql.SQL("creation_ms > %s"))
            args.append(after_ms)
        statement = self._select(sql.SQL("WHERE {} ORDER BY creation_ms DESC, job_id").format(
            sql.SQL(" AND ").join(where)))
        if last is not None:
            statement += sql.SQL(" LIMIT %s")
            args.append(int(last))
        return self._execute(statement, args)

    def in_phase(self, phase: str) -> list[dict]:
        return self._execute(self._select("WHERE phase = %s"), (phase,))

    def orphans(self, phases: tuple[str, ...], live: set[str]) -> list[tuple[str, str]]:
        """Jobs in ``phases`` whose owner has not beaten for ``stale_after_s``.

        ``live`` is not needed: a live manager of this process beats too.
        """
        rows = self._execute(sql.SQL(
            "SELECT job_id, owner FROM {} WHERE phase = ANY(%s) AND (heartbeat_ms IS NULL "
            "OR heartbeat_ms < %s)").format(self._jobs),
            (list(phases), _now_ms() - self.stale_after_ms))
        return [(row["job_id"], f"replica {row['owner'] or 'unknown'}") for row in rows]

    def heartbeat(self, phases: tuple[str, ...]) -> set[str]:
        rows = self._execute(sql.SQL(
            "UPDATE {} SET heartbeat_ms = %s WHERE owner = %s AND phase = ANY(%s) "
            "RETURNING job_id").format(self._jobs), (_now_ms(), self.owner, list(phases)))
        return {row["job_id"] for row in rows}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._drop()

    def _select(self, tail) -> sql.Composed:
        if isinstance(tail, str):
            tail = sql.SQL(tail)
        return sql.SQL("SELECT {} FROM {} ").format(
            sql.SQL(", ").join(map(sql.Identifier, COLUMNS)), self._jobs) + tail


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:200]
