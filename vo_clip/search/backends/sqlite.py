"""The embedded catalog backend: the index's own SQLite file, sandboxed.

The catalog file is opened read-only, with only the published relations readable and
only the functions of :data:`FUNCTIONS` callable (an SQLite authorizer), one
statement per call, strings capped in length, and a progress handler enforcing the
time limit. The published tables are temporary views over ``main.observations``;
TAP_SCHEMA is an in-memory database shared by this process' connections and attached
as ``tap_schema``.

Each thread keeps its connection, so every statement runs inside a session that sets
its own time limit: a query's deadline left on the connection would otherwise stop
the thread's later lookups (SQLite's interrupt check counts steps across the runs of a
cached statement).

ADQL geometry runs as Python functions on STC-S strings (:mod:`..geometry`); scores
are looked up by ``vo_clip_score(slot, row_index)`` from the session's score lists,
and a restricted query reads its candidates as a JSON list (``json_each(?)``).
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping

import sqlglot
from sqlglot import exp

from .. import geometry
from . import (CatalogBackend, CatalogSession, CompiledQuery, FunctionTable, ResultTooLarge,
               SessionState, SqlDialect, StatementFailed, StatementRefused,
               StatementStopped, TooManyCandidates, ValueTooLong, row_bytes)
from .sqlite_functions import FUNCTIONS, register_functions

__all__ = ["FUNCTIONS", "SqliteBackend", "SqliteDialect", "is_damage", "register_functions",
           "write_tap_schema"]

log = logging.getLogger(__name__)

#: SQLite checks the time limit every this many virtual-machine steps of a statement.
_PROGRESS_STEPS = 10_000


# -- the dialect ------------------------------------------------------------------------

@dataclass(frozen=True)
class SqliteDialect(SqlDialect):
    """SQLite SQL over the temporary views of :class:`SqliteBackend`."""

    name: str = "sqlite"

    @property
    def functions(self) -> FunctionTable:  # type: ignore[override]
        return FUNCTIONS

    def relation(self, table) -> tuple[str | None, str]:
        schema, _, name = table.sql_name.rpartition(".")
        return schema or None, name

    def compile(self, tree, *, ranking_slot, ranking_alias) -> CompiledQuery:
        _cone_fast_path(tree)
        restricted = None
        if ranking_slot is not None:
            ranked = tree.copy()
            condition = sqlglot.parse_one("x IN (SELECT value FROM json_each(?))",
                                          read="sqlite")
            condition.this.replace(exp.column("row_index", table=ranking_alias, quoted=True))
            restricted = ranked.where(condition, append=True, copy=False).sql(dialect="sqlite")
        return CompiledQuery(tree.sql(dialect="sqlite"), restricted, ranking_slot=ranking_slot)


def _cone_fast_path(tree: exp.Select) -> None:
    """``1 = CONTAINS(POINT(ra, dec), CIRCLE(a, b, r))`` as an indexable band plus distance.

    TOPCAT's cone constraint, on constant circles only: the declination band lets
    SQLite use the ``s_dec`` index, and the exact distance then runs on the band only.
    """
    where = tree.args.get("where")
    if where is None:
        return
    for conjunct in list(where.this.flatten() if isinstance(where.this, exp.And)
                         else [where.this]):
        contains = _contains_equals_one(conjunct)
        if contains is None:
            continue
        point, circle = contains.expressions
        if not (_named(point, "vo_clip_point") and _named(circle, "vo_clip_circle")
                and all(_constant(a) for a in circle.expressions)):
            continue
        ra, dec = point.expressions
        cra, cdec, radius = circle.expressions
        band = exp.Between(this=dec.copy(), low=exp.Sub(this=cdec.copy(),
                                                        expression=radius.copy()),
                           high=exp.Add(this=cdec.copy(), expression=radius.copy()))
        distance = exp.LTE(this=exp.Anonymous(this="vo_clip_angdist", expressions=[
            ra.copy(), dec.copy(), cra.copy(), cdec.copy()]), expression=radius.copy())
        conjunct.replace(exp.Paren(this=exp.and_(band, distance)))


def _contains_equals_one(node: exp.Expression) -> exp.Anonymous | None:
    if not isinstance(node, exp.EQ):
        return None
    for one, call in ((node.this, node.expression), (node.expression, node.this)):
        if (isinstance(one, exp.Literal) and not one.is_string and one.this == "1"
                and _named(call, "vo_clip_contains")):
            return call
    return None


def _named(node: exp.Expression, name: str) -> bool:
    return isinstance(node, exp.Anonymous) and node.name == name


def _constant(node: exp.Expression) -> bool:
    return all(isinstance(n, (exp.Literal, exp.Neg, exp.Paren)) for n in node.walk())


# -- the backend ------------------------------------------------------------------------

#: The SQL of each named lookup (``LOOKUPS``).
_LOOKUPS = {
    "observation": ("SELECT * FROM main.observations WHERE obs_id = ?", ("obs_id",)),
    "proposal": ("SELECT * FROM main.observations WHERE proposal_id = ? "
                 "ORDER BY obs_id LIMIT 1000", ("proposal_id",)),
    "preview": ("SELECT preview FROM main.observations WHERE obs_id = ?", ("obs_id",)),
    "first_observation": ('SELECT obs_id, COALESCE(s_ra, 0) AS ra, COALESCE(s_dec, 0) AS dec'
                          ' FROM "vo_clip_obscore" ORDER BY row_index LIMIT 1', ()),
    "last_observation": ('SELECT obs_id FROM "vo_clip_obscore" ORDER BY row_index DESC '
                         'LIMIT 1', ()),
}

_SQL_TYPES = {"char": "TEXT", "unicodeChar": "TEXT", "short": "INTEGER", "int": "INTEGER",
              "long": "INTEGER", "boolean": "INTEGER"}


class SqliteBackend(CatalogBackend):
    """Thread-local, read-only, sandboxed connections over an index's catalog file.

    Parameters
    ----------
    path : Path
        The catalog database (``catalog.sqlite`` of an index).
    authority : str
        IVOA authority of the publisher DIDs the views derive.
    tables : tuple of TapTable
        The published tables; the embedded ones become views over the catalog.
    tap_schema_rows : mapping
        TAP_SCHEMA's rows, by table short name.
    string_max_bytes : int
        The longest string or blob a statement may build (``query_max_string_bytes``).
    """

    dialect = SqliteDialect()

    def __init__(self, path: Path, *, authority: str, tables: tuple,
                 tap_schema_rows: Mapping[str, list[tuple]], string_max_bytes: int):
        self.path = Path(path)
        self.authority = authority
        self.tables = tables
        self.string_max_bytes = string_max_bytes
        self._local = threading.local()
        self._schema_uri = f"file:vo_clip_tap_schema_{id(self)}?mode=memory&cache=shared"
        # An in-memory database shared by this process' connections; the keeper holds it.
        self._keeper = sqlite3.connect(self._schema_uri, uri=True, check_same_thread=False)
        write_tap_schema(self._keeper, [t for t in tables if not t.embedded],
                          tap_schema_rows)
        self._readable = {self.dialect.relation(t)[1].lower() for t in tables} | {
            "observations", "json_each"}

    @contextmanager
    def session(self, *, seconds: float, limit: str, deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None, base_url: str = ""):
        db, state = self._connection()
        state.deadline = time.time() + seconds if deadline is None else deadline
        state.limit, state.limit_seconds = limit, seconds
        state.cancelled, state.base_url, state.error = cancelled or _never, base_url, None
        geometry.clear_error()
        try:
            yield _SqliteSession(db, state, self.string_max_bytes)
        finally:
            state.scores = []  # a full score list is large; threads keep their state
            state.deadline, state.cancelled = -math.inf, _never

    def row_count(self) -> int:
        with self.session(seconds=60, limit="lookup_time_limit") as session:
            return session.count()

    def describe(self) -> dict:
        return {"backend": "sqlite", "catalog": str(self.path)}

    def problem(self) -> str | None:
        from ..catalog import file_problem

        return file_problem(self.path)

    def _connection(self) -> tuple[sqlite3.Connection, SessionState]:
        cached = getattr(self._local, "connection", None)
        if cached is None:
            cached = self._local.connection = self._connect()
        return cached

    def _connect(self) -> tuple[sqlite3.Connection, SessionState]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        state = SessionState(did_prefix=f"ivo://{self.authority}/vo_clip?")
        db.execute("PRAGMA case_sensitive_like = ON")  # ADQL LIKE is case-sensitive
        register_functions(db, state)
        db.execute("ATTACH ? AS tap_schema", (self._schema_uri,))
        for table in self.tables:
            if table.embedded:
                db.execute(_view_sql(table))
        db.execute("PRAGMA query_only = ON")
        db.set_authorizer(self._authorize)
        db.set_progress_handler(lambda: _interrupt(state), _PROGRESS_STEPS)
        if hasattr(db, "setlimit"):  # Python 3.11+; on 3.10 the result size still bounds
            # after the views are made: their SQL is longer than the strings a query needs
            db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, self.string_max_bytes)
        return db, state

    def _authorize(self, action, arg1, arg2, dbname, source):
        if action == sqlite3.SQLITE_SELECT:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ and (arg1 or "").lower() in self._readable:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and FUNCTIONS.allows(arg2):
            return sqlite3.SQLITE_OK
        if arg1 == "sqlite_master" and source is None and (
                action == sqlite3.SQLITE_UPDATE
                or (action == sqlite3.SQLITE_READ and arg2 == "ROWID")):
            # json_each declares its virtual table's schema on first use, which SQLite
            # authorizes as an update of sqlite_master; the connection is read-only and
            # query_only, so nothing can be written, and no column of it can be read.
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


class _SqliteSession(CatalogSession):
    def __init__(self, db: sqlite3.Connection, state: SessionState, string_max_bytes: int):
        self._db, self._state, self._string_max_bytes = db, state, string_max_bytes

    def run(self, query: CompiledQuery, scores, candidates, wanted: int,
            max_bytes: int) -> list[tuple]:
        state = self._state
        if candidates is None:
            state.scores = [s.tolist() for s in scores]
            return self._fetch(query.sql, (), wanted, max_bytes)
        chosen = candidates.tolist()
        listed = json.dumps(chosen)
        if len(listed) > self._string_max_bytes:
            raise TooManyCandidates(len(chosen))  # SQLite would refuse so long a parameter
        state.scores = [dict(zip(chosen, s[candidates].tolist()))
                        if slot == query.ranking_slot else s.tolist()
                        for slot, s in enumerate(scores)]
        return self._fetch(query.restricted_sql, (listed,), wanted, max_bytes)

    def lookup(self, name: str, **arguments) -> list[dict]:
        sql, parameters = _LOOKUPS[name]
        try:
            cursor = self._db.execute(sql, tuple(arguments[p] for p in parameters))
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _statement_error(exc, self._state) from None

    def count(self) -> int:
        try:
            return self._db.execute("SELECT COUNT(*) FROM main.observations").fetchone()[0]
        except sqlite3.Error as exc:
            raise _statement_error(exc, self._state) from None

    def _fetch(self, sql: str, params: tuple, wanted: int, max_bytes: int) -> list[tuple]:
        geometry.clear_error()
        self._state.error = None
        rows: list[tuple] = []
        size = 0
        try:
            cursor = self._db.execute(sql, params)
            while len(rows) < wanted:
                chunk = cursor.fetchmany(min(wanted - len(rows), 1000))
                if not chunk:
                    break
                size += row_bytes(chunk)
                if size > max_bytes:
                    raise ResultTooLarge(f"the result is larger than {max_bytes:,} bytes")
                rows += chunk
            return rows
        except sqlite3.Error as exc:
            raise _statement_error(exc, self._state) from None


def _never() -> bool:
    return False


def _interrupt(state: SessionState) -> int:
    return int(time.time() > state.deadline or state.cancelled())


def _view_sql(table) -> str:
    columns = ", ".join(f'{c.sql} AS "{c.name}"' for c in table.columns)
    return (f'CREATE TEMP VIEW "{table.sql_name}" AS '
            f"SELECT row_index, {columns} FROM main.observations")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def write_tap_schema(db: sqlite3.Connection, definitions: Iterable,
                     rows: Mapping[str, list[tuple]], *, schema: str = "main") -> None:
    """The TAP_SCHEMA tables ``definitions`` in database ``schema`` of ``db``, filled
    with ``rows`` (by short name) in one transaction, replacing any there.

    The backend writes them into its in-memory database, attached to every
    connection as ``tap_schema``, where the translated SQL reads them.
    """
    with db:
        for definition in definitions:
            name = f"{_quote(schema)}.{_quote(definition.short_name)}"
            columns = ", ".join(
                f"{_quote(c.name)} {_SQL_TYPES[c.datatype]}{'' if c.nullable else ' NOT NULL'}"
                for c in definition.columns)
            db.execute(f"DROP TABLE IF EXISTS {name}")
            db.execute(f"CREATE TABLE {name} ({columns})")
            marks = ", ".join("?" * len(definition.columns))
            db.executemany(f"INSERT INTO {name} VALUES ({marks})", rows[definition.short_name])


#: SQLite's primary result codes that mean the file, not the statement, is at fault.
_DAMAGE_CODES = {"SQLITE_CORRUPT", "SQLITE_NOTADB", "SQLITE_IOERR", "SQLITE_CANTOPEN"}
_DAMAGE_TEXTS = ("malformed", "not a database", "disk i/o error", "unable to open database")


def is_damage(error: BaseException) -> bool:
    """Whether an SQLite error says the catalog file is damaged or unreadable.

    A published table missing from the catalog ("no such table") counts: the
    translator only names tables that the catalog is built with.
    """
    if not isinstance(error, sqlite3.Error):
        return False
    name = getattr(error, "sqlite_errorname", "") or ""  # Python 3.11+
    if any(name == code or name.startswith(code + "_") for code in _DAMAGE_CODES):
        return True  # extended codes carry the primary one as a prefix
    text = str(error).lower()
    return any(part in text for part in _DAMAGE_TEXTS) or text.startswith("no such table")


def _statement_error(exc: sqlite3.Error, state: SessionState):
    """What a failed statement is: damaged data, a stop, a limit, or the query's error
    or the service's."""
    message = str(exc)
    if is_damage(exc):
        return StatementFailed(message, damaged=True)
    if "interrupted" in message:
        return StatementStopped(message, limit=state.limit, seconds=state.limit_seconds,
                                cancelled=state.cancelled())
    if "string or blob too big" in message:
        return ValueTooLong(message)
    reason = geometry.last_error() or state.error
    if reason:
        return StatementRefused(reason)
    if not isinstance(exc, sqlite3.OperationalError):
        return StatementRefused(f"the query cannot be run: {exc}")
    if "not authorized" in message:
        return StatementRefused("the query reads something that is not published")
    if "user-defined function raised exception" in message:
        log.exception("a vo_clip SQL function failed")
        return StatementFailed("a function of the query failed inside the service")
    return StatementRefused(f"the query cannot be run: {message}")
