"""TAP 1.1 query execution (IVOA REC-TAP-1.1 §2–3, DALI 1.1 §3–4) on the embedded catalog.

A request's parameters become a checked ADQL translation (:mod:`vo_clip.vo.adql`),
similarity scores from the search engine (one matrix–vector product per similarity
call), and rows from SQLite, returned as a :class:`QueryResult` that renders itself in
the requested format. Protocol rules live here (LANG, MAXREC and overflow, formats);
HTTP lives in ``service/``.

Ranked queries do not score SQL row by row: when a query is ordered by similarity and
returns at most L rows, the best-scoring candidates are handed to SQL first
(``row_index IN (...)``) and the candidate set grows only if the other constraints
reject too many of them. Because every row left out scores below every candidate, the
first L rows that satisfy the query among the candidates are its first L rows overall.

The SQL connection is the last line of defence: opened read-only, with only the
published relations readable and only the translator's functions callable (an SQLite
authorizer), one statement per call, strings capped in length, and a progress handler
enforcing the time limit. Each request thread keeps its connection, so every statement
runs inside a session (:meth:`_Catalog.session`) that sets its own time limit: a query's
deadline left on the connection would otherwise stop the thread's later lookups.
"""

from __future__ import annotations

import json
import logging
import math
import random
import sqlite3
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping
from urllib.parse import quote

import numpy as np

from ..errors import UnknownObservationError
from . import geometry
from .adql import Translation, translate
from .damage import damage_fault
from .datalink import links_descriptor
from .faults import DALIFault, FatalFault, LimitFault, NotFoundFault, TransientFault, UsageFault
from .formats import OutputFormat, output_format
from .schema import TapTable, published_tables
from .tap_schema import build_tap_schema
from .timing import StageClock, StageRecorder
from .vosi import TapLimits
from .votable import Field, write_delimited, write_votable

__all__ = ["LANGUAGES", "QueryResult", "TapService"]

log = logging.getLogger(__name__)

#: LANG values accepted (TAP 1.1 §2.7.1: a version may be appended).
LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")

#: Candidates handed to SQL on the first try, as a multiple of the rows wanted.
_CANDIDATE_FACTOR = 4
_MIN_CANDIDATES = 256
#: Candidate lists beyond this fraction of the rows: score every row instead.
_CANDIDATE_CEILING = 0.25
#: SQLite checks the time limit every this many virtual-machine steps of a statement.
_PROGRESS_STEPS = 10_000


@dataclass
class QueryResult:
    """Rows of a query with their FIELD metadata, ready to render."""

    fields: list[Field]
    rows: list[tuple]
    overflow: bool
    format: OutputFormat
    query: str
    timings: dict[str, float] = field(default_factory=dict)
    descriptors: list[str] = field(default_factory=list)
    #: Times the rendering as the ``render`` stage (the query's other stages went there).
    clock: StageClock | None = field(default=None, repr=False, compare=False)

    def render(self) -> Iterator[bytes]:
        """The result in its format: VOTable (TABLEDATA or BINARY2), CSV or TSV."""
        if self.format.code in ("csv", "tsv"):
            chunks = write_delimited(self.fields, self.rows,
                                     delimiter="," if self.format.code == "csv" else "\t")
        else:
            serialization = "BINARY2" if self.format.code == "votable-binary2" else "TABLEDATA"
            chunks = write_votable(self.fields, self.rows, overflow=self.overflow,
                                   serialization=serialization,
                                   infos=[("QUERY", self.query),
                                          ("standardID", "ivo://ivoa.net/std/TAP")],
                                   extra_resources=self.descriptors)
        return self.clock.timed_chunks("render", chunks) if self.clock else chunks


# -- the SQL side -----------------------------------------------------------------------

_BUILTIN_FUNCTIONS = {
    "abs", "ceil", "degrees", "exp", "floor", "ln", "log10", "mod", "pi", "pow", "radians",
    "sqrt", "round", "sin", "cos", "tan", "asin", "acos", "atan", "atan2", "upper",
    "lower", "count", "min", "max", "sum", "avg", "like", "json_each", "coalesce",
}


def _never() -> bool:
    return False


class _State:
    """Per-connection values the SQL functions read: identity, the query's scores, and
    the time limit of the statement running (set by each session)."""

    def __init__(self, authority: str):
        self.did_prefix = f"ivo://{authority}/vo_clip?"
        self.base_url = ""
        self.scores: list = []
        self.deadline = -math.inf  # outside a session, a statement stops at once
        self.limit = ""
        self.limit_seconds = 0.0
        self.cancelled: Callable[[], bool] = _never
        self.error: str | None = None  # why a vo_clip function refused its arguments


class _Catalog:
    """Thread-local read-only SQLite connections over the index's catalog."""

    def __init__(self, path: Path, authority: str, tables: tuple[TapTable, ...],
                 string_max_bytes: int):
        self.path = path
        self.authority = authority
        self.tables = tables
        self.string_max_bytes = string_max_bytes
        self._local = threading.local()
        self._schema_uri = f"file:vo_clip_tap_schema_{id(self)}?mode=memory&cache=shared"
        # An in-memory database shared by this process' connections; the keeper holds it.
        self._keeper = sqlite3.connect(self._schema_uri, uri=True, check_same_thread=False)
        build_tap_schema(self._keeper, tables, schema="main")
        self._keeper.commit()
        self._readable = {t.sql_name.rpartition(".")[2] for t in tables} | {
            "observations", "json_each"}

    @contextmanager
    def session(self, *, seconds: float, limit: str, deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None, base_url: str = ""):
        """This thread's connection, for statements that must end within ``seconds``
        (or by ``deadline``, when given); ``limit`` names the limit in the fault.

        Yields
        ------
        (sqlite3.Connection, _State)
        """
        db, state = self._connection()
        state.deadline = time.time() + seconds if deadline is None else deadline
        state.limit, state.limit_seconds = limit, seconds
        state.cancelled, state.base_url, state.error = cancelled or _never, base_url, None
        geometry.clear_error()
        try:
            yield db, state
        finally:
            state.scores = []  # a full score list is large; threads keep their state
            state.deadline, state.cancelled = -math.inf, _never

    def _connection(self) -> tuple[sqlite3.Connection, _State]:
        cached = getattr(self._local, "connection", None)
        if cached is None:
            cached = self._local.connection = self._connect()
        return cached

    def _connect(self) -> tuple[sqlite3.Connection, _State]:
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
        state = _State(self.authority)
        db.execute("PRAGMA case_sensitive_like = ON")  # ADQL LIKE is case-sensitive
        geometry.register(db)
        _register_functions(db, state)
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
        if action == sqlite3.SQLITE_FUNCTION and _callable(arg2):
            return sqlite3.SQLITE_OK
        if arg1 == "sqlite_master" and source is None and (
                action == sqlite3.SQLITE_UPDATE
                or (action == sqlite3.SQLITE_READ and arg2 == "ROWID")):
            # json_each declares its virtual table's schema on first use, which SQLite
            # authorizes as an update of sqlite_master; the connection is read-only and
            # query_only, so nothing can be written, and no column of it can be read.
            return sqlite3.SQLITE_OK
        return sqlite3.SQLITE_DENY


def _callable(name: str | None) -> bool:
    name = (name or "").lower()
    return name in _BUILTIN_FUNCTIONS or name.startswith("vo_clip_")


def _interrupt(state: _State) -> int:
    return int(time.time() > state.deadline or state.cancelled())


def _view_sql(table: TapTable) -> str:
    columns = ", ".join(f'{c.sql} AS "{c.name}"' for c in table.columns)
    return (f'CREATE TEMP VIEW "{table.sql_name}" AS '
            f"SELECT row_index, {columns} FROM main.observations")


class _ArgumentError(Exception):
    """A vo_clip SQL function was given a value it does not take (the query's fault)."""


def _checked(state: _State, fn):
    """``fn``, keeping the message of an _ArgumentError it raises in ``state.error``."""

    def function(*args):
        try:
            return fn(*args)
        except _ArgumentError as exc:
            state.error = str(exc)
            raise

    return function


def _number(value, function: str):
    if isinstance(value, (str, bytes)):
        text = value if isinstance(value, str) else "a binary value"
        raise _ArgumentError(f"{function} takes numbers, not {text[:40]!r}")
    return value


def _register_functions(db: sqlite3.Connection, state: _State) -> None:
    db.create_function("vo_clip_score", 2, lambda slot, row: state.scores[slot].get(row)
                       if isinstance(state.scores[slot], dict) else state.scores[slot][row])
    db.create_function("vo_clip_did", 1, lambda obs_id: None if obs_id is None
                       else state.did_prefix + obs_id, deterministic=True)
    db.create_function("vo_clip_datalink_url", 1, lambda obs_id: None if obs_id is None else
                       f"{state.base_url}/datalink/links?ID="
                       + quote(state.did_prefix + obs_id, safe=""))
    db.create_function("vo_clip_preview_url", 1, lambda obs_id: None if obs_id is None else
                       f"{state.base_url}/preview/{quote(obs_id, safe='')}")
    db.create_function("vo_clip_rand", -1, _checked(state, _rand))
    db.create_function("vo_clip_truncate", -1, _checked(state, _truncate), deterministic=True)
    db.create_function("vo_clip_cot", 1, _checked(state, _cot), deterministic=True)


def _rand(*seed):
    if not seed:
        return random.random()
    return random.Random(_number(seed[0], "RAND")).random()


def _truncate(value, digits=0):
    if value is None or digits is None:
        return None
    value, digits = _number(value, "TRUNCATE"), _number(digits, "TRUNCATE")
    if not math.isfinite(value) or not math.isfinite(digits):
        return float(value) if math.isfinite(digits) else None
    digits = max(-400, min(400, int(digits)))  # beyond, a double has no such digits
    try:
        scaled = value * 10.0 ** digits
        return math.trunc(scaled) / 10.0 ** digits
    except (OverflowError, ZeroDivisionError):
        return float(value) if digits > 0 else 0.0


def _cot(x):
    if x is None:
        return None
    tangent = math.tan(_number(x, "COT")) if math.isfinite(_number(x, "COT")) else math.nan
    return None if tangent == 0 or math.isnan(tangent) else 1 / tangent


# -- the service ------------------------------------------------------------------------

class TapService:
    """Runs TAP queries over one index.

    Parameters
    ----------
    index : EmbeddingIndex
        The embeddings and the catalog to query.
    authority : str
        IVOA authority of the publisher DIDs (``ivo://{authority}/vo_clip?{obs_id}``).
    engine : callable, optional
        Returns the :class:`~vo_clip.search.engine.SearchEngine` with its model; called
        (and so the model loaded) on the first text or image query only. Without one,
        text and image similarity are a TransientFault.
    limits : TapLimits
        MAXREC default and hard limit, execution time limits.
    """

    def __init__(self, index, *, authority: str = "example.org",
                 engine: Callable[[], object] | None = None,
                 limits: TapLimits = TapLimits()):
        self.index = index
        self.authority = authority
        self.limits = limits
        self.tables = published_tables()
        self._engine = engine
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()
        self._cache: dict[str, object] = {}
        self._catalog = _Catalog(index.catalog.path, authority, self.tables,
                                 limits.query_max_string_bytes)
        #: When the service could first answer (VOSI availability's upSince): opened, or,
        #: if :meth:`warm` is called before serving, when the model had loaded.
        self.ready_since = datetime.now(timezone.utc)

    # Parameters -------------------------------------------------------------------------
    def execute(self, params: Mapping[str, str], *, base_url: str,
                deadline: float | None = None,
                cancelled: Callable[[], bool] | None = None,
                query_vectors: Mapping[str, np.ndarray] | None = None,
                recorder: StageRecorder | None = None) -> QueryResult:
        """Run the query that ``params`` (upper-cased names) describe.

        ``query_vectors`` maps a text argument of ``vo_clip_similarity`` to the vector
        to use instead of the text's embedding (an uploaded image, for instance).
        ``recorder`` is told how long each stage took (:mod:`vo_clip.vo.timing`),
        rendering included.

        Raises
        ------
        UsageFault
            For bad parameters or a query that cannot run.
        TransientFault
            When the query runs out of time.
        """
        started = time.perf_counter()
        lang = (params.get("LANG") or "").strip()
        if not lang:
            raise UsageFault("the LANG parameter is missing", "use LANG=ADQL", parameter="LANG")
        if lang.upper() not in LANGUAGES:
            raise UsageFault(f"unsupported LANG {lang!r}", f"use one of {', '.join(LANGUAGES)}",
                             parameter="LANG")
        if params.get("UPLOAD"):
            raise UsageFault("UPLOAD is not supported by this service", parameter="UPLOAD")
        fmt = output_format(params.get("RESPONSEFORMAT") or params.get("FORMAT"))
        maxrec = self._maxrec(params.get("MAXREC"))
        query = params.get("QUERY")
        if query is None:
            raise UsageFault("the QUERY parameter is missing", parameter="QUERY")
        clock = StageClock(recorder)
        with clock.stage("translate"):
            translation = translate(query, self.limits)
        if deadline is None:  # a sync query
            time_limit = dict(seconds=self.limits.sync_execution_limit,
                              limit="sync_execution_limit")
        else:  # an async job's: its execution duration
            time_limit = dict(seconds=round(max(deadline - time.time(), 0)),
                              limit="EXECUTIONDURATION", deadline=deadline)
        result = self._run(translation, maxrec, fmt, base_url=base_url, time_limit=time_limit,
                           cancelled=cancelled or _never, query_vectors=query_vectors or {},
                           clock=clock)
        result.timings["total"] = time.perf_counter() - started
        return result

    def _maxrec(self, value: str | None) -> int:
        if value is None or not value.strip():
            return self.limits.default_maxrec
        try:
            maxrec = int(value)
        except ValueError:
            raise UsageFault(f"MAXREC must be an integer, not {value!r}",
                             parameter="MAXREC") from None
        if maxrec < 0:
            raise UsageFault(f"MAXREC must not be negative, not {maxrec}", parameter="MAXREC")
        return min(maxrec, self.limits.hard_maxrec)

    # Execution --------------------------------------------------------------------------
    def _run(self, translation: Translation, maxrec: int, fmt: OutputFormat, *,
             base_url: str, time_limit: dict, cancelled, query_vectors,
             clock: StageClock) -> QueryResult:
        top = translation.top
        wanted = top if top is not None and top <= maxrec else maxrec + 1
        rows: list[tuple] = []
        if wanted > 0 and maxrec > 0:
            scores = self._scores(translation, clock, query_vectors)
            with clock.stage("sql"), self._catalog.session(
                    cancelled=cancelled, base_url=base_url, **time_limit) as (db, state):
                rows = self._rows(db, state, translation, scores, wanted)
        overflow = (top is None or top > maxrec) and (len(rows) > maxrec or maxrec == 0)
        rows = rows[:maxrec]
        fields = [_field(column, rows, i) for i, column in enumerate(translation.columns)]
        descriptors = []
        did = next((i for i, c in enumerate(translation.columns) if c.column is not None
                    and c.column.ucd == "meta.ref.ivoid"), None)
        if did is not None:  # DataLink activation in TOPCAT and Aladin (DataLink 1.1 §4)
            fields[did] = replace(fields[did], id="obs_publisher_did")
            descriptors.append(links_descriptor(base_url, "obs_publisher_did"))
        return QueryResult(fields, rows, overflow, fmt, translation.adql, clock.timings,
                           descriptors, clock=clock)

    def _scores(self, translation: Translation, clock: StageClock,
                query_vectors: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """One score per row and similarity call; a query without similarity has no
        ``encode`` or ``score`` stage, and vectors the caller gave no ``encode``."""
        def given(s) -> bool:
            return s.kind == "text" and s.argument in query_vectors

        similarities = translation.similarities
        if not similarities:
            return []
        if all(given(s) for s in similarities):
            vectors = [query_vectors[s.argument] for s in similarities]
        else:
            with clock.stage("encode"):
                vectors = [query_vectors[s.argument] if given(s)
                           else self._vector(s.kind, s.argument) for s in similarities]
        with clock.stage("score"):
            return [self.index.embeddings @ v for v in vectors]

    def _vector(self, kind: str, argument: str) -> np.ndarray:
        if kind == "observation":
            try:
                return np.array(self.index.embeddings[self.index.catalog.row_of(argument)])
            except UnknownObservationError as exc:
                raise UsageFault(f"vo_clip_similarity_to: {exc.message}",
                                 parameter="QUERY") from None
        with self._vector_lock:
            if argument in self._vectors:
                self._vectors.move_to_end(argument)
                return self._vectors[argument]
        from ..search.engine import Query

        vector = np.asarray(self.engine().vector(Query(text=argument)), dtype=np.float32)
        with self._vector_lock:
            self._vectors[argument] = vector
            while len(self._vectors) > 256:
                self._vectors.popitem(last=False)
        return vector

    def _rows(self, db, state, translation: Translation, scores, wanted: int) -> list[tuple]:
        ranking = translation.ranking
        n = len(self.index)
        candidates = max(_CANDIDATE_FACTOR * wanted, _MIN_CANDIDATES)
        while ranking is not None and candidates < _CANDIDATE_CEILING * n:
            key = scores[ranking.slot] if ranking.descending else -scores[ranking.slot]
            chosen = _best(key, candidates)
            listed = json.dumps(chosen.tolist())
            if len(listed) > self.limits.query_max_string_bytes:
                break  # SQLite would refuse so long a parameter: score every row instead
            state.scores = [dict(zip(chosen.tolist(), s[chosen].tolist()))
                            if slot == ranking.slot else s.tolist()
                            for slot, s in enumerate(scores)]
            rows = self._fetch(db, state, translation.restricted_sql, (listed,), wanted)
            if len(rows) >= wanted:
                return rows
            candidates *= 8
        state.scores = [s.tolist() for s in scores]
        return self._fetch(db, state, translation.sql, (), wanted)

    def _fetch(self, db, state: _State, sql: str, params: tuple, wanted: int) -> list[tuple]:
        """At most ``wanted`` rows, refused once their size passes ``result_max_bytes``."""
        geometry.clear_error()
        state.error = None
        rows: list[tuple] = []
        size, cap = 0, self.limits.result_max_bytes
        try:
            cursor = db.execute(sql, params)
            while len(rows) < wanted:
                chunk = cursor.fetchmany(min(wanted - len(rows), 1000))
                if not chunk:
                    break
                size += sum(_row_bytes(row) for row in chunk)
                if size > cap:
                    raise LimitFault(f"the result is larger than {cap:,} bytes (the limit "
                                     f"result_max_bytes)", "select fewer columns, or fewer "
                                     "rows with TOP or MAXREC", limit="result_max_bytes",
                                     parameter="QUERY")
                rows += chunk
            return rows
        except sqlite3.Error as exc:
            raise _fault(exc, state, self.limits) from None

    def cached(self, name: str, build: Callable[[], object]):
        """A per-service object built once (e.g. the describer's text embeddings)."""
        with self._vector_lock:
            if name not in self._cache:
                self._cache[name] = build()
            return self._cache[name]

    def engine(self):
        """The search engine with its model (loaded on first use).

        Raises
        ------
        TransientFault
            If this service was opened without a model.
        """
        if self._engine is None:
            raise TransientFault("similarity to a text or an image needs the model, which "
                                 "this service has not loaded")
        return self._engine()

    def encode_image(self, image) -> np.ndarray:
        """The unit vector of a PIL image, in the index's embedding space."""
        return np.asarray(self.engine().model.encode_images([image])[0], dtype=np.float32)

    def warm(self) -> None:
        """Load the model now (it otherwise loads on the first text similarity)."""
        if self._engine is not None:
            self._vector("text", "a galaxy")
        self.ready_since = datetime.now(timezone.utc)

    def _lookup(self, sql: str, params: tuple = ()) -> list[dict]:
        """The rows of one catalog lookup, under a time limit of its own.

        Raises
        ------
        TransientFault
            If it runs past ``lookup_time_limit``.
        """
        with self._catalog.session(seconds=self.limits.lookup_time_limit,
                                   limit="lookup_time_limit") as (db, state):
            try:
                cursor = db.execute(sql, params)
                names = [d[0] for d in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise _fault(exc, state, self.limits) from None

    def observation(self, obs_id: str) -> dict | None:
        """Every catalog column of ``obs_id`` (None when unknown)."""
        rows = self._lookup("SELECT * FROM observations WHERE obs_id = ?", (obs_id,))
        return rows[0] if rows else None

    def proposal(self, proposal_id: str) -> tuple[dict, list[dict]] | None:
        """A proposal's title, PI, cycle, abstract and summary, and its observations."""
        rows = self._lookup("SELECT * FROM observations WHERE proposal_id = ? "
                            "ORDER BY obs_id LIMIT 1000", (proposal_id,))
        return (rows[0], rows) if rows else None

    def archive_source(self) -> str | None:
        """Where the indexed archive came from (its archive.json ``source``), if known."""
        import json

        path = Path(self.index.manifest.archive.get("path") or ".") / "archive.json"
        try:
            return json.loads(path.read_text()).get("source")
        except (OSError, ValueError):
            return None

    def preview_file(self, obs_id: str) -> Path:
        """The preview image of ``obs_id`` in the indexed archive.

        Raises
        ------
        NotFoundFault
            If the observation is unknown or its preview is not on disk.
        """
        rows = self._lookup("SELECT preview FROM observations WHERE obs_id = ?", (obs_id,))
        preview = rows[0]["preview"] if rows else None
        archive = Path(self.index.manifest.archive.get("path") or ".").resolve()
        path = (archive / preview).resolve() if preview else None
        if path is None or archive not in path.parents or not path.is_file():
            raise NotFoundFault(f"no preview for observation {obs_id!r}")
        return path

    def sample_observation(self) -> tuple[str, float, float]:
        """The first observation's obs_id, s_ra and s_dec (for examples that must run)."""
        rows = self._lookup('SELECT obs_id, COALESCE(s_ra, 0) AS ra, COALESCE(s_dec, 0) AS dec'
                            ' FROM "vo_clip_obscore" ORDER BY row_index LIMIT 1')
        return tuple(rows[0].values()) if rows else ("OBS_ID", 0.0, 0.0)

    def available(self) -> tuple[bool, str]:
        """Whether the index is intact and a tiny query runs; the note says why not."""
        problem = self.index.problem()
        if problem is not None:
            return False, f"the service's data is damaged: {problem}"
        try:
            # the last row too: a truncated catalog can still answer for its first pages
            self._lookup('SELECT obs_id FROM "vo_clip_obscore" ORDER BY row_index DESC '
                         'LIMIT 1')
        except DALIFault as fault:
            return False, f"the catalog cannot be read: {fault}"
        return True, f"serving {len(self.index)} observations"


def _best(key: np.ndarray, count: int) -> np.ndarray:
    """Rows of the ``count`` largest keys, plus any row tied with the smallest of them."""
    part = np.argpartition(-key, count - 1)[:count]
    threshold = key[part].min()
    return np.flatnonzero(key >= threshold)


def _row_bytes(row: tuple) -> int:
    """About the bytes of ``row`` in TABLEDATA: its values' text and 9 bytes of tags each."""
    return sum(9 + (len(v) if isinstance(v, (str, bytes)) else 0 if v is None else 20)
               for v in row)


def _fault(exc: sqlite3.Error, state: _State, limits: TapLimits) -> DALIFault:
    """The fault a failed statement is: our damaged data, a stop, a limit, or the query's
    or our error."""
    damaged = damage_fault(exc)  # the service's data, not the query, is at fault
    if damaged is not None:
        return damaged
    message = str(exc)
    if "interrupted" in message:
        if state.cancelled():
            return TransientFault("the query was stopped: its job was aborted or its "
                                  "client disconnected")
        hint = ("run it as an async job (/tap/async), add constraints or a smaller TOP"
                if state.limit == "sync_execution_limit" else "add constraints or a smaller TOP"
                if state.limit == "EXECUTIONDURATION" else "try again later")
        return TransientFault(f"the query was stopped: it ran past its time limit of "
                              f"{state.limit_seconds:g} s ({state.limit})", hint,
                              limit=state.limit)
    if "string or blob too big" in message:
        return LimitFault(f"the query builds a value longer than "
                          f"{limits.query_max_string_bytes:,} bytes (the limit "
                          "query_max_string_bytes)", limit="query_max_string_bytes",
                          parameter="QUERY")
    reason = geometry.last_error() or state.error
    if reason:
        return UsageFault(reason, parameter="QUERY")
    if not isinstance(exc, sqlite3.OperationalError):
        return UsageFault(f"the query cannot be run: {exc}", parameter="QUERY")
    if "not authorized" in message:
        return UsageFault("the query reads something that is not published",
                          parameter="QUERY")
    if "user-defined function raised exception" in message:
        log.exception("a vo_clip SQL function failed")
        return FatalFault("a function of the query failed inside the service")
    return UsageFault(f"the query cannot be run: {message}", parameter="QUERY")


def _field(column, rows: list[tuple], position: int) -> Field:
    meta = column.column
    if meta is not None:
        return Field(name=column.name, datatype=meta.datatype, arraysize=meta.arraysize,
                     xtype=meta.xtype, unit=meta.unit, ucd=meta.ucd, utype=meta.utype,
                     description=meta.description)
    values = [row[position] for row in rows if row[position] is not None]
    if values and all(isinstance(v, int) for v in values):
        return Field(name=column.name, datatype="long")
    if values and all(isinstance(v, (int, float)) for v in values):
        return Field(name=column.name, datatype="double")
    if values and not all(str(v).isascii() for v in values):
        return Field(name=column.name, datatype="unicodeChar", arraysize="*")
    return Field(name=column.name, datatype="char", arraysize="*")
