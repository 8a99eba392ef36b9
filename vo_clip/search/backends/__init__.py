"""The catalog seam: where the published tables live and how a translated query runs.

Everything above this seam (the ADQL translator, the TAP rules, DataLink and the web
page's lookups) is the same code whichever backend is below it. A backend owns every
SQL string of its engine and one table of the SQL functions it offers
(:class:`FunctionTable`): the translator takes an ADQL function's arity and the name it
emits from that table, the SQLite backend registers its Python implementations from
it, the PostgreSQL backend installs its definitions from it, and the sandbox's
allow-list of callable functions is its set of names. Adding an ADQL function is one
entry in each backend's table.

Two backends implement it:

* :mod:`.sqlite` -- the embedded default: the index's own catalog file, read-only,
  sandboxed by an SQLite authorizer; ADQL geometry as Python functions on STC-S strings.
* :mod:`.postgres` -- PostgreSQL 15 + pgsphere for archives: vo_clip's own schema, or an
  operator's existing ObsCore table; ADQL geometry as pgsphere operators.

Similarity is never computed by SQL: the vector index scores the rows, and the executor
hands the backend those scores, for every row or for the best-scoring candidates only
(:meth:`CatalogSession.run`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "CatalogBackend",
    "CatalogSession",
    "CompiledQuery",
    "FunctionTable",
    "ResultTooLarge",
    "SqlDialect",
    "SqlFunction",
    "StatementError",
    "StatementFailed",
    "StatementRefused",
    "StatementStopped",
    "TooManyCandidates",
    "ValueTooLong",
    "post_order",
    "row_bytes",
]


# -- the functions a backend offers -----------------------------------------------------

@dataclass(frozen=True)
class SqlFunction:
    """One SQL function of a backend, and the ADQL function it implements (if any).

    Attributes
    ----------
    sql : str
        The name the translated SQL calls.
    adql : str, optional
        The ADQL name (upper case) this function implements; None for the functions the
        translator emits on its own (``vo_clip_score``, ``vo_clip_angdist``...).
    min_args, max_args : int
        Arity in ADQL (``max_args`` 999: any number above ``min_args``).
    kind : str
        ``math``, ``string``, ``aggregate``, ``geometry``, ``similarity`` or ``internal``:
        what the translator checks and how it describes the result column.
    deterministic : bool
        Same arguments, same value: a backend may evaluate a constant call once.
    implementation : object, optional
        How the backend provides it: for SQLite a factory ``state -> callable``
        registered on each connection, for PostgreSQL the ``CREATE FUNCTION`` statement
        installing it; None for a function the engine (or pgsphere) already has.
    nargs : int
        Number of SQL arguments of the registered function (-1: any), for SQLite.
    """

    sql: str
    adql: str | None = None
    min_args: int = 0
    max_args: int = 0
    kind: str = "math"
    deterministic: bool = True
    implementation: Any = None
    nargs: int = -1


class FunctionTable:
    """A backend's functions, by ADQL name and by SQL name."""

    def __init__(self, functions: Iterable[SqlFunction]):
        self.functions: tuple[SqlFunction, ...] = tuple(functions)
        self._by_adql = {f.adql: f for f in self.functions if f.adql}
        self.names = frozenset(f.sql.lower() for f in self.functions)

    def adql(self, name: str) -> SqlFunction | None:
        """The function implementing ADQL function ``name`` (upper case), if offered."""
        return self._by_adql.get(name)

    def adql_names(self, kind: str | None = None) -> frozenset[str]:
        """ADQL names offered, of ``kind`` when given."""
        return frozenset(n for n, f in self._by_adql.items() if kind in (None, f.kind))

    def allows(self, sql_name: str | None) -> bool:
        """Whether translated SQL may call ``sql_name`` (the sandbox's allow-list)."""
        return (sql_name or "").lower() in self.names

    def __iter__(self):
        return iter(self.functions)


# -- what a translation becomes ---------------------------------------------------------

@dataclass(frozen=True)
class CompiledQuery:
    """A checked query as one backend's SQL.

    ``sql`` scores every row; ``restricted_sql`` (for a query ranked by similarity)
    reads only the candidate rows handed to it with their scores. How scores travel
    (SQLite callbacks, PostgreSQL arrays) is the backend's business:
    :meth:`CatalogSession.run` binds them.
    """

    sql: str
    restricted_sql: str | None = None
    #: The slot the query is ranked by, when restricted_sql is set.
    ranking_slot: int | None = None


class SqlDialect(ABC):
    """What the ADQL translator needs to know of a backend's SQL.

    The translator resolves names, checks the query and rewrites ADQL functions into
    the calls of :attr:`functions` (geometry and similarity as ``vo_clip_*`` calls);
    :meth:`compile` then turns that tree into this engine's SQL. Instances are
    hashable and immutable: translations are cached per dialect.
    """

    #: Short name: ``sqlite`` or ``postgresql``.
    name: str
    functions: FunctionTable

    @abstractmethod
    def relation(self, table) -> tuple[str | None, str]:
        """(schema, name) of the relation the SQL reads for a published ``TapTable``."""

    @abstractmethod
    def compile(self, tree, *, ranking_slot: int | None,
                ranking_alias: str | None) -> CompiledQuery:
        """This engine's SQL for a translated sqlglot tree (which it may change)."""


# -- running statements -----------------------------------------------------------------

class StatementError(Exception):
    """A statement did not complete; the subclass says whose fault it is."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StatementStopped(StatementError):
    """Stopped by its time limit (``limit`` names it) or because it was cancelled."""

    def __init__(self, message: str, *, limit: str | None, seconds: float,
                 cancelled: bool = False):
        super().__init__(message)
        self.limit, self.seconds, self.cancelled = limit, seconds, cancelled


class StatementRefused(StatementError):
    """The query's fault: it reads what is not published, or a function refused a value."""


class ValueTooLong(StatementError):
    """The query builds a string longer than the backend allows (``query_max_string_bytes``)."""


class ResultTooLarge(StatementError):
    """The rows fetched passed the size limit (``result_max_bytes``)."""


class TooManyCandidates(Exception):
    """More candidate rows than one statement can take (not an error: score every row)."""


class StatementFailed(StatementError):
    """The service's fault: a function failed, the database broke or went away.

    ``damaged`` is set when the data itself is unreadable (a truncated catalog file).
    """

    def __init__(self, message: str, *, damaged: bool = False, transient: bool = False):
        super().__init__(message)
        self.damaged, self.transient = damaged, transient


class CatalogSession(ABC):
    """One connection's statements under one time limit (see :meth:`CatalogBackend.session`)."""

    @abstractmethod
    def run(self, query: CompiledQuery, scores: Sequence[np.ndarray],
            candidates: np.ndarray | None, wanted: int, max_bytes: int) -> list[tuple]:
        """At most ``wanted`` result rows of ``query``, as tuples of Python values.

        ``scores`` holds one score per catalog row for each similarity slot;
        ``candidates`` (row indices) selects ``restricted_sql``, which reads only those
        rows. Fetching stops with :class:`ResultTooLarge` once the rows' size
        (:func:`row_bytes`) passes ``max_bytes``.

        Raises
        ------
        TooManyCandidates
            If the backend cannot take so many candidates in one statement: the
            caller scores every row instead.
        StatementError
            If the statement is stopped, refused or fails.
        """

    @abstractmethod
    def lookup(self, name: str, **arguments) -> list[dict]:
        """The rows of one of the backend's named lookups (see :data:`LOOKUPS`)."""


def post_order(node):
    """The nodes of a sqlglot tree, children before parents, left to right.

    Iterative, so that the depth a query may have is the translator's limit, not
    Python's stack's. The translator rewrites in this order (similarity slots then
    follow the text), and so do the dialects' compilers.
    """
    stack = [(node, False)]
    while stack:
        current, expanded = stack.pop()
        if expanded:
            yield current
            continue
        stack.append((current, True))
        stack.extend((child, False) for child in reversed(list(current.iter_expressions())))


def row_bytes(rows: Iterable[tuple]) -> int:
    """About the bytes of ``rows`` in TABLEDATA: their values' text and 9 bytes of tags each."""
    return sum(9 + (len(v) if isinstance(v, (str, bytes)) else 0 if v is None else 20)
               for row in rows for v in row)


#: The lookups every backend answers, with their arguments. Each reads the published
#: observation views; the SQL is the backend's.
LOOKUPS = {
    "observation": "every catalog column of one obs_id",
    "proposal": "the observations of one proposal_id, ordered by obs_id, at most 1000",
    "preview": "the archive-relative preview path of one obs_id",
    "first_observation": "obs_id, ra and dec of the first row (examples that must run)",
    "last_observation": "obs_id of the last row (a truncated catalog fails here)",
}


class CatalogBackend(ABC):
    """The published tables of one catalog, and sessions to query them.

    ``tables`` are the published :class:`~vo_clip.vo.schema.TapTable` definitions and
    ``tap_schema_rows`` their TAP_SCHEMA rows by table short name, both given by the
    TAP layer when it opens the backend.
    """

    dialect: SqlDialect

    @abstractmethod
    def session(self, *, seconds: float, limit: str, deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None,
                base_url: str = "") -> AbstractContextManager[CatalogSession]:
        """A session whose statements stop after ``seconds`` (or at ``deadline``), or
        when ``cancelled()`` turns true; ``limit`` names the limit in the error, and
        ``base_url`` is the root the service's URL columns (DataLink, preview) name."""

    @abstractmethod
    def row_count(self) -> int:
        """Observations in the catalog."""

    @abstractmethod
    def describe(self) -> Mapping[str, object]:
        """What ``vo-clip info`` shows: the engine, where, the relations served."""

    def problem(self) -> str | None:
        """What is wrong with the catalog's storage (None: nothing known)."""
        return None

    def close(self) -> None:
        """Release connections."""


@dataclass
class SessionState:
    """Values a session's SQL functions read: identity, the query's scores, its limit."""

    did_prefix: str
    base_url: str = ""
    scores: list = field(default_factory=list)
    deadline: float = float("-inf")
    limit: str = ""
    limit_seconds: float = 0.0
    cancelled: Callable[[], bool] = lambda: False
    #: Why a vo_clip function refused its arguments (the query's fault), if one did.
    error: str | None = None
