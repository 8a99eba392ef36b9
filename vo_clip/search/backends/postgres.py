"""The PostgreSQL + pgsphere catalog backend: archive scale, shared by service replicas.

The catalog lives in the schema :mod:`.postgres_load` fills. A pooled connection runs
its statements in autocommit, each its own transaction, under session settings that
every session checks and changes only where they differ (so a TOP 10 costs one round
trip, not the three of BEGIN, the statement and ROLLBACK): ``ROLE S_reader`` (the role
that may read only the published views and TAP_SCHEMA),
``default_transaction_read_only``, ``statement_timeout`` = the time left in whole
seconds, ``search_path = S, <pgsphere's schema>`` and the two settings vo_clip's URL
functions read. While a statement runs a watcher thread polls the exact deadline and
``cancelled()`` and cancels the statement on the server when either fires (a result
fetched in several chunks is bounded as a whole, not per FETCH).

A query wanting at most 10,000 rows gets a LIMIT and its rows in one reply; a larger
one comes through a server-side cursor (in a transaction of its own), ``fetchmany`` by
chunks, so a query that would match millions of rows costs what the caller keeps.
Values come back as SQLite gives them: ``numeric`` as int when integral and float
otherwise, booleans as 0/1.

The service's own fixed lookups (an observation's page, a preview's path) run as the
login role, which holds ``S_service``: they read ``S.observations``, which queries may
not.

Connections are pooled (LIFO, thread-safe); one found broken is dropped and the session
retried once on a fresh connection, so a restarted server costs one failed probe at
most.
"""

from __future__ import annotations

import logging
import math
import re
import select
import threading
import time
from contextlib import contextmanager
from decimal import Decimal
from typing import Callable, Mapping, Sequence

import numpy as np

from . import (LOOKUPS, CatalogBackend, CatalogSession, CompiledQuery, ResultTooLarge,
               StatementError, StatementFailed, StatementRefused, StatementStopped,
               ValueTooLong, row_bytes)
from .postgres_load import (CATALOG_TABLE, HIDDEN_REGION, REGION_COLUMN, _redacted,
                            quote_ident, reader_role)
from .postgres_sql import FUNCTIONS, PostgresDialect, score_parameters

__all__ = ["PostgresBackend"]

log = logging.getLogger(__name__)

_POLL_S = 0.05
_CHUNK = 1000
_NUMERIC, _BOOL = 1700, 16
_TEXT_TYPES = {25, 1043, 1042, 705}
#: pgsphere's own errors (raised as XX000) that a query's geometry values cause.
_PGSPHERE_ERROR = re.compile(r"^(spher|spoly|scircle|spoint|sbox|spath|sline|"
                             r"sellipse|spherepoly|spherepath)", re.IGNORECASE)
_INTERNAL_NAMES = {f.sql.lower(): f.adql for f in FUNCTIONS if f.adql
                   and f.sql.lower().startswith("vo_clip_")}


#: At most this many rows wanted: the statement gets a LIMIT and a client-side cursor
#: (a server-side cursor costs three more round trips, which dominate a TOP 10).
_CLIENT_ROWS = 10_000

#: PostgreSQL's message for a function given arguments of types it has no version for.
_NUMBERS_ONLY = re.compile(r"function (\w+)\((.*)\) does not exist")


def _never() -> bool:
    return False


class PostgresBackend(CatalogBackend):
    """The catalog in PostgreSQL (see the module docstring).

    Parameters
    ----------
    dsn : str
        A libpq connection string; its role must hold ``S_service``.
    schema : str
        The schema :func:`~.postgres_load.load_catalog` filled.
    authority : str
        IVOA authority of the publisher DIDs.
    tables, tap_schema_rows
        The published tables and their TAP_SCHEMA rows (kept for :meth:`describe`;
        the loader wrote them to the database).
    string_max_bytes : int
        Longest string value a result may hold (``query_max_string_bytes``).
    expected_rows : int, optional
        The index's row count: :meth:`problem` reports a catalog of another size.
    pool_size : int
        Idle connections kept.
    """

    def __init__(self, dsn: str, *, schema: str = "vo_clip", authority: str = "example.org",
                 tables: Sequence = (), tap_schema_rows: Mapping | None = None,
                 string_max_bytes: int = 1_000_000, expected_rows: int | None = None,
                 pool_size: int = 8, connect_timeout: float = 10):
        self.dsn = dsn
        self.schema = schema
        self.dialect = PostgresDialect(schema=schema)
        self.tables = tuple(tables)
        self.tap_schema_rows = tap_schema_rows
        self.did_prefix = f"ivo://{authority}/vo_clip?"
        self.string_max_bytes = string_max_bytes
        self.expected_rows = expected_rows
        self.reader = reader_role(schema)
        self._pool = _Pool(dsn, pool_size, connect_timeout)

    # -- sessions ---------------------------------------------------------------------------
    @contextmanager
    def session(self, *, seconds: float, limit: str, deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None, base_url: str = ""):
        deadline = time.time() + seconds if deadline is None else deadline
        stop = _Stop(limit=limit, seconds=seconds, deadline=deadline,
                     cancelled=cancelled or _never)
        connection = self._begin(stop, base_url)
        session = PostgresSession(self, connection, stop)
        try:
            yield session
        finally:
            self._pool.put(connection)

    def _begin(self, stop: "_Stop", base_url: str) -> "_Connection":
        """A pooled connection set up for ``stop`` (read-only, as the reader role)."""
        import psycopg

        for attempt in (1, 2):
            # after a broken one, a fresh connection: the idle ones likely broke too
            connection = self._pool.get() if attempt == 1 else self._pool.fresh()
            remaining = stop.remaining()
            if remaining <= 0:
                self._pool.put(connection)
                raise stop.error()
            try:
                setup = connection.setup(self.reader, self.schema, remaining,
                                         self.did_prefix, base_url)
                if setup:
                    connection.conn.execute(setup)
                connection.settled()
                return connection
            except psycopg.OperationalError as exc:
                self._pool.discard(connection)
                self._pool.close()  # a restarted server broke every idle connection
                if attempt == 2:
                    raise StatementFailed(f"the catalog database cannot be reached: "
                                          f"{_message(exc)}", transient=True) from None
            except psycopg.Error as exc:
                self._pool.discard(connection)
                raise StatementFailed(f"the catalog database refused the service's "
                                      f"session ({_message(exc)}): is schema "
                                      f"{self.schema} loaded and its role granted?",
                                      transient=True) from None
        raise AssertionError("unreachable")  # pragma: no cover

    # -- what the service asks ------------------------------------------------------------
    def catalog_info(self) -> dict:
        """``S.vo_clip_catalog``: what was loaded, when, from which index.

        Raises
        ------
        StatementFailed
            If the database cannot be reached or holds no catalog in the schema.
        """
        with self.session(seconds=30, limit="lookup_time_limit") as session:
            rows = session._lookup_rows(
                f"SELECT key, value FROM {quote_ident(self.schema)}.{CATALOG_TABLE}", ())
        return {row["key"]: row["value"] for row in rows}

    def row_count(self) -> int:
        return int(self.catalog_info()["rows"])

    def describe(self) -> Mapping[str, object]:
        out: dict[str, object] = {"engine": "postgresql+pgsphere", "dsn": _redacted(self.dsn),
                                  "schema": self.schema, "reader_role": self.reader}
        try:
            info = self.catalog_info()
        except StatementError as exc:
            return {**out, "status": exc.message}
        out.update({k: info.get(k) for k in ("mode", "rows", "served_rows", "obscore", "key",
                                             "loaded_at", "catalog", "pgsphere_schema")
                    if info.get(k) is not None})
        out["relations"] = [".".join(self.dialect.relation(t)) for t in self.tables]
        return out

    def problem(self) -> str | None:
        try:
            info = self.catalog_info()
        except StatementError as exc:
            return exc.message
        if self.expected_rows is not None and int(info.get("rows", -1)) != self.expected_rows:
            return (f"the PostgreSQL catalog in schema {self.schema} has {info.get('rows')} "
                    f"rows and the index {self.expected_rows}: reload it with "
                    "'vo-clip postgres load'")
        return None

    def close(self) -> None:
        self._pool.close()


class PostgresSession(CatalogSession):
    """The statements of one transaction (see :meth:`PostgresBackend.session`)."""

    def __init__(self, backend: PostgresBackend, connection: "_Connection", stop: "_Stop"):
        self.backend, self.connection, self.stop = backend, connection, stop

    def run(self, query: CompiledQuery, scores: Sequence[np.ndarray],
            candidates: np.ndarray | None, wanted: int, max_bytes: int) -> list[tuple]:
        # PostgreSQL takes arrays of any length: never TooManyCandidates
        sql = query.restricted_sql if candidates is not None else query.sql
        if sql is None:
            raise StatementFailed("the query has no restricted form for candidate rows")
        params = score_parameters(query, scores, candidates)
        self._role("reader")
        if wanted <= _CLIENT_ROWS:  # the server stops at the rows wanted: one round trip
            return self._fetch(f"{sql} LIMIT {int(wanted)}", params, wanted, max_bytes,
                               bounded=True)
        return self._fetch(sql, params, wanted, max_bytes)

    def lookup(self, name: str, **arguments) -> list[dict]:
        if name not in LOOKUPS:
            raise KeyError(f"no lookup {name!r}; the lookups are {', '.join(LOOKUPS)}")
        if any(isinstance(v, str) and "\x00" in v for v in arguments.values()):
            return []  # PostgreSQL text holds no NUL: no such observation or proposal
        schema = quote_ident(self.backend.schema)
        if name in ("observation", "proposal"):
            column, value = (("obs_id", arguments["obs_id"]) if name == "observation"
                             else ("proposal_id", arguments["proposal_id"]))
            tail = " ORDER BY x.obs_id LIMIT 1000" if name == "proposal" else ""
            rows = self._lookup_rows(
                f"SELECT x.*, (SELECT value #>> '{{}}' FROM {schema}.{CATALOG_TABLE} WHERE "
                f"key = 'mode') AS vo_clip_mode FROM {schema}.observations x WHERE "
                f"x.{column} = %s{tail}", (value,))
            attached = bool(rows) and rows[0]["vo_clip_mode"] == "attach"
            published = {}
            if attached:  # the operator's ObsCore values replace the catalog's
                published = {r["row_index"]: r for r in self._lookup_rows(
                    f"SELECT * FROM {schema}.vo_clip_obscore WHERE row_index = ANY(%s)",
                    ([r["row_index"] for r in rows],))}
            return [_observation(row, published.get(row["row_index"])) for row in rows]
        if name == "preview":
            return self._lookup_rows(f"SELECT preview FROM {schema}.observations WHERE "
                                     "obs_id = %s", (arguments["obs_id"],))
        if name == "first_observation":
            return self._lookup_rows(
                f"SELECT obs_id, COALESCE(s_ra, 0) AS ra, COALESCE(s_dec, 0) AS dec FROM "
                f"{schema}.vo_clip_obscore ORDER BY row_index LIMIT 1", ())
        return self._lookup_rows(f"SELECT obs_id FROM {schema}.observations ORDER BY "
                                 "row_index DESC LIMIT 1", ())

    # -- internals ---------------------------------------------------------------------------
    def _lookup_rows(self, sql: str, params: tuple) -> list[dict]:
        self._role("service")
        return self._fetch(sql, params, 10_000, None, names=True, bounded=True)

    def _role(self, wanted: str) -> None:
        """Queries run as the reader; lookups as the login role (``S_service``)."""
        if self.connection.role == wanted:
            return
        statement = (f"SET ROLE {quote_ident(self.backend.reader)}" if wanted == "reader"
                     else "SET ROLE NONE")
        self._guarded(lambda: self.connection.conn.execute(statement))
        self.connection.role = wanted

    def _fetch(self, sql: str, params, wanted: int, max_bytes: int | None,
               names: bool = False, bounded: bool = False):
        """Rows of ``sql``: through a server-side cursor, fetched in chunks, unless the
        statement is ``bounded`` (its own LIMIT), whose rows come in its one reply."""
        conn = self.connection.conn
        self.connection.cursors += 1
        cursor = conn.cursor() if bounded else conn.cursor(
            name=f"vo_clip_{self.connection.cursors}")

        def work():
            rows: list = []
            size = 0
            if bounded:  # prepared: the extended protocol, one statement only (psycopg
                # sends a query without parameters by the simple protocol, which runs
                # several); a server-side cursor's DECLARE takes one statement anyway
                cursor.execute(sql, params, prepare=True)
            else:
                cursor.execute(sql, params)
            convert = _converters(cursor.description)
            text_columns = [i for i, d in enumerate(cursor.description)
                            if d.type_code in _TEXT_TYPES]
            while len(rows) < wanted:
                chunk = cursor.fetchmany(min(wanted - len(rows), _CHUNK))
                if not chunk:
                    break
                if convert:
                    chunk = [_converted(row, convert) for row in chunk]
                self._check_strings(chunk, text_columns)
                if max_bytes is not None:
                    size += row_bytes(chunk)
                    if size > max_bytes:
                        raise ResultTooLarge(f"the result is larger than {max_bytes:,} bytes "
                                             "(the limit result_max_bytes)")
                rows += chunk
            if names:
                labels = [d.name for d in cursor.description]
                return [dict(zip(labels, row)) for row in rows]
            return rows

        def fetched():
            try:
                return self._guarded(work)
            finally:
                try:
                    cursor.close()
                except Exception:  # noqa: BLE001 - its transaction ends anyway
                    pass

        if bounded:
            return fetched()
        import psycopg

        try:
            with conn.transaction():  # a server-side cursor lives in a transaction
                return fetched()
        except psycopg.Error as exc:  # the COMMIT or ROLLBACK itself
            raise _statement_error(exc, self.stop, None) from None

    def _check_strings(self, chunk: list[tuple], text_columns: list[int]) -> None:
        cap = self.backend.string_max_bytes
        for row in chunk:
            for i in text_columns:
                value = row[i]
                if value is not None and len(value) > cap // 4 and \
                        len(value.encode()) > cap:
                    raise ValueTooLong(f"the query builds a value longer than {cap:,} "
                                       "bytes (the limit query_max_string_bytes)")

    def _guarded(self, work: Callable):
        """``work()`` under the deadline and cancellation watcher, errors mapped."""
        import psycopg

        stop = self.stop
        # A job aborted (or out of time) before this statement must not start it: a quick
        # statement could finish before the watcher's first poll.
        if stop.cancelled() or stop.remaining() <= 0:
            raise stop.error()
        watcher = _Watcher(self.connection.conn, stop)
        try:
            with watcher:
                return work()
        except psycopg.Error as exc:
            raise _statement_error(exc, stop, watcher.fired) from None


class _Stop:
    """A session's time limit and cancellation."""

    def __init__(self, *, limit: str, seconds: float, deadline: float,
                 cancelled: Callable[[], bool]):
        self.limit, self.seconds, self.deadline, self.cancelled = (limit, seconds, deadline,
                                                                   cancelled)

    def remaining(self) -> float:
        return self.deadline - time.time()

    def error(self, cancelled: bool | None = None) -> StatementStopped:
        if cancelled if cancelled is not None else self.cancelled():
            return StatementStopped("the query was stopped: its job was aborted or its "
                                    "client disconnected", limit=None,
                                    seconds=self.seconds, cancelled=True)
        return StatementStopped(f"the query was stopped: it ran past its time limit of "
                                f"{self.seconds:g} s ({self.limit})", limit=self.limit,
                                seconds=self.seconds)


class _Watcher:
    """A thread that cancels the running statement at the deadline or on cancellation."""

    def __init__(self, conn, stop: _Stop):
        self.conn, self.stop = conn, stop
        self.fired: str | None = None  # "deadline" or "cancelled"
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="vo_clip-pg-watch",
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()
        return False

    def _watch(self) -> None:
        while not self._done.wait(_POLL_S):
            reason = ("cancelled" if self.stop.cancelled() else
                      "deadline" if self.stop.remaining() <= 0 else None)
            if reason:
                self.fired = reason
                try:
                    if hasattr(self.conn, "cancel_safe"):
                        self.conn.cancel_safe(timeout=5)
                    else:  # pragma: no cover - psycopg < 3.2
                        self.conn.cancel()
                except Exception:  # noqa: BLE001 - statement_timeout still stops it
                    log.warning("could not cancel a PostgreSQL statement", exc_info=True)
                return


def _statement_error(exc, stop: _Stop, fired: str | None) -> StatementError:
    """The interface's error for a psycopg error of a statement."""
    import psycopg

    state = getattr(exc, "sqlstate", None) or ""
    message = _message(exc)
    if isinstance(exc, psycopg.errors.QueryCanceled):
        if fired == "cancelled" or (fired is None and "user request" in message
                                    and stop.cancelled()):
            return stop.error(cancelled=True)
        return stop.error(cancelled=False)
    if state.startswith("40"):
        return StatementFailed(f"the query met a concurrent change of the catalog "
                               f"({message}): try again", transient=True)
    if isinstance(exc, psycopg.OperationalError) and not state.startswith(("53", "54")) \
            or state.startswith(("08", "57P")):
        return StatementFailed(f"the connection to the catalog database was lost: {message}",
                               transient=True)
    if "cannot contain NUL" in message:  # psycopg's, before anything is sent
        return StatementRefused("the query holds a NUL character (0x00), which no value "
                                "of this catalog contains")
    if state == "21000":  # SQLite would take the first row; ADQL does not say
        return StatementRefused(f"the query cannot be run: {message}")
    if state == "42501":
        return StatementRefused("the query reads something that is not published")
    if state == "25006":
        return StatementRefused("the query tries to write, and the catalog is read-only")
    if state.startswith("53"):
        return StatementFailed(f"the catalog database is short of resources: {message}",
                               transient=True)
    if state == "54000":
        return ValueTooLong(f"the query builds a value too large for the database: "
                            f"{message}")
    refused = _NUMBERS_ONLY.match(message) if state == "42883" else None
    if refused and "text" in refused.group(2):  # a string reached a numeric function
        return StatementRefused(f"{refused.group(1)} takes numbers, not a character string")
    if state.startswith("22") or state.startswith("42") or state == "2201E":
        return StatementRefused(f"the query cannot be run: {message}")
    if state == "XX000" and _PGSPHERE_ERROR.match(message):
        return StatementRefused(f"the query's geometry is not valid: {message}")
    log.error("a PostgreSQL statement failed (%s): %s", state, message)
    return StatementFailed(f"the catalog database failed the query ({state}: {message})")


def _message(exc) -> str:
    """PostgreSQL's primary message with vo_clip's internal names as ADQL's."""
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary
            else str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    text = re.sub(r'"?[a-z_0-9]+"?\.(?=vo_clip_)', "", text)
    return re.sub(r"\bvo_clip_[a-z_]+\b",
                  lambda m: _INTERNAL_NAMES.get(m.group(0), m.group(0)), text)


def _converters(description) -> list[tuple[int, Callable]]:
    out = []
    for i, column in enumerate(description or ()):
        if column.type_code == _NUMERIC:
            out.append((i, _number))
        elif column.type_code == _BOOL:
            out.append((i, _flag))
    return out


def _converted(row: tuple, converters) -> tuple:
    values = list(row)
    for i, convert in converters:
        if values[i] is not None:
            values[i] = convert(values[i])
    return tuple(values)


def _number(value: Decimal):
    if value.is_finite() and value == value.to_integral_value():
        return int(value)
    return float(value)


def _flag(value: bool) -> int:
    return int(value)


def _observation(row: dict, published: dict | None) -> dict:
    """One observation lookup row: the catalog's columns, the operator's when attached."""
    own = {k: v for k, v in row.items() if k not in (REGION_COLUMN, "vo_clip_mode")}
    if published:
        own.update((k, v) for k, v in published.items()
                   if k not in (HIDDEN_REGION, "row_index"))
    return own


def _alive(conn) -> bool:
    """Whether an idle connection is still open on the server's side.

    An idle connection receives nothing; a server that terminated or restarted it has
    sent an error or closed the socket, which is then readable. Looking costs one
    select() and saves the session a failed statement (a session sends nothing before
    its query when its settings are already in force).
    """
    if conn.closed or conn.broken:
        return False
    try:
        readable, _, _ = select.select([conn.fileno()], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class _Connection:
    """A pooled connection and what a session needs to know of it."""

    def __init__(self, conn, pgsphere: str):
        self.conn, self.pgsphere = conn, pgsphere
        self.role = "service"
        self.cursors = 0
        self.settings: dict[str, str] = {}  # session settings in force
        self._pending: dict[str, str] = {}

    def setup(self, reader: str, schema: str, remaining: float, did_prefix: str,
              base_url: str) -> str:
        """The statement making the session settings what ``remaining`` and
        ``base_url`` need ("" when they already are): one round trip at most."""
        wanted = {"default_transaction_read_only": "on",
                  "statement_timeout": f"{max(1, math.ceil(remaining))}s",
                  "search_path": f"{quote_ident(schema)}, {quote_ident(self.pgsphere)}",
                  "vo_clip.did_prefix": did_prefix, "vo_clip.base_url": base_url}
        self._pending = {k: v for k, v in wanted.items() if self.settings.get(k) != v}
        parts = [f"SET ROLE {quote_ident(reader)}"] if self.role != "reader" else []
        if self._pending:
            parts.append("SELECT " + ", ".join(f"set_config({_literal(k)}, {_literal(v)}, false)"
                                               for k, v in self._pending.items()))
        return "; ".join(parts)

    def settled(self) -> None:
        """The statement of :meth:`setup` ran."""
        self.settings.update(self._pending)
        self._pending, self.role = {}, "reader"


class _Pool:
    """Idle connections, most recently used first; thread-safe."""

    def __init__(self, dsn: str, size: int, connect_timeout: float):
        self.dsn, self.size, self.connect_timeout = dsn, size, connect_timeout
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()

    def get(self) -> _Connection:
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection = self._idle.pop()
            if _alive(connection.conn):
                return connection
            self.discard(connection)
        return self._connect()

    def fresh(self) -> _Connection:
        """A new connection, never an idle one."""
        return self._connect()

    def _connect(self) -> _Connection:
        import psycopg

        try:
            conn = psycopg.connect(self.dsn, autocommit=True, application_name="vo_clip",
                                   connect_timeout=max(1, int(self.connect_timeout)))
        except psycopg.Error as exc:
            raise StatementFailed(f"the catalog database cannot be reached: {_message(exc)}",
                                  transient=True) from None
        try:
            found = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension"
                                 " WHERE extname = 'pg_sphere'").fetchone()
        except psycopg.Error as exc:
            conn.close()
            raise StatementFailed(f"the catalog database failed: {_message(exc)}",
                                  transient=True) from None
        if not found:
            conn.close()
            raise StatementFailed("pgsphere is not created in the catalog database "
                                  "(CREATE EXTENSION pg_sphere)", transient=True)
        return _Connection(conn, found[0].strip('"'))

    def put(self, connection: _Connection) -> None:
        import psycopg

        conn = connection.conn
        if conn.closed or conn.broken or conn.info.transaction_status != \
                psycopg.pq.TransactionStatus.IDLE:
            self.discard(connection)
            return
        with self._lock:
            if len(self._idle) < self.size:
                self._idle.append(connection)
                return
        self.discard(connection)

    def discard(self, connection: _Connection) -> None:
        try:
            connection.conn.close()
        except Exception:  # noqa: BLE001 - it is being thrown away
            pass

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            self.discard(connection)
