"""TAP 1.1 query execution (IVOA REC-TAP-1.1 §2–3, DALI 1.1 §3–4) on a catalog backend.

A request's parameters become a checked ADQL translation (:mod:`vo_clip.vo.adql`) in
the backend's SQL, similarity scores from the search engine (one matrix–vector
product per similarity call), and rows from the backend
(:mod:`vo_clip.search.backends`: the embedded SQLite catalog, or PostgreSQL), returned
as a :class:`QueryResult` that renders itself in the requested format. Protocol rules
live here (LANG, MAXREC and overflow, formats); HTTP lives in ``service/``; the
observation, proposal and preview lookups of DataLink and the web page in
:mod:`vo_clip.vo.lookups`.

Ranked queries do not score SQL row by row: when a query is ordered by similarity and
returns at most L rows, the best-scoring candidates are handed to SQL first
(``row_index IN (...)``) and the candidate set grows only if the other constraints
reject too many of them. Because every row left out scores below every candidate, the
first L rows that satisfy the query among the candidates are its first L rows overall.

Every statement runs in a backend session with its own time limit (the sync limit,
the job's execution duration, or the lookup limit); the backend's sandbox (SQLite's
authorizer, PostgreSQL's read-only role) is the last line of defence behind the
translator's allow-lists.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Iterator, Mapping

import numpy as np

from ..errors import UnknownObservationError
from ..search.backends import (CatalogBackend, ResultTooLarge, StatementError, StatementFailed,
                               StatementRefused, StatementStopped, TooManyCandidates,
                               ValueTooLong)
from .adql import TEXT_KINDS, Translation, translate
from .damage import damaged_catalog_fault
from .datalink import links_descriptor
from .faults import DALIFault, FatalFault, LimitFault, TransientFault, UsageFault
from .formats import OutputFormat, output_format
from .limits import TapLimits
from .lookups import Lookups
from .schema import published_tables
from .tap_schema import tap_schema_rows
from .timing import StageClock, StageRecorder
from .votable import Field, write_delimited, write_votable

__all__ = ["APPROXIMATE_INFO", "LANGUAGES", "QueryResult", "TapService"]


#: LANG values accepted (TAP 1.1 §2.7.1: a version may be appended).
LANGUAGES = ("ADQL", "ADQL-2.0", "ADQL-2.1")

#: The INFO of a result ranked through an approximate index (``vo-clip index --ann``).
APPROXIMATE_INFO = ("APPROXIMATE", "the similarity ranking used the index's approximate "
                    "nearest-neighbour search: a row a full scan would rank among these may "
                    "be missing (the scores shown are exact)")

#: Candidates handed to SQL on the first try, as a multiple of the rows wanted.
_CANDIDATE_FACTOR = 4
_MIN_CANDIDATES = 256
#: Candidate lists beyond this fraction of the rows: score every row instead.
_CANDIDATE_CEILING = 0.25


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
    #: The similarity ranking came from an approximate (ANN) index: see APPROXIMATE_INFO.
    approximate: bool = False
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
                                          ("standardID", "ivo://ivoa.net/std/TAP"),
                                          *([APPROXIMATE_INFO] if self.approximate else [])],
                                   extra_resources=self.descriptors)
        return self.clock.timed_chunks("render", chunks) if self.clock else chunks


# -- the service ------------------------------------------------------------------------

class TapService:
    """Runs TAP queries over one index.

    Parameters
    ----------
    index : EmbeddingIndex
        The embeddings (and, for the embedded default, the catalog) to query.
    authority : str
        IVOA authority of the publisher DIDs (``ivo://{authority}/vo_clip?{obs_id}``).
    engine : callable, optional
        Returns the :class:`~vo_clip.search.engine.SearchEngine` with its model; called
        (and so the model loaded) on the first text or image query only. Without one,
        text and image similarity are a TransientFault.
    limits : TapLimits
        MAXREC default and hard limit, execution time limits.
    catalog : callable, optional
        ``catalog(tables, tap_schema_rows)`` opens the catalog backend serving the
        published ``tables``; by default the index's own SQLite catalog.
    """

    def __init__(self, index, *, authority: str = "example.org",
                 engine: Callable[[], object] | None = None,
                 limits: TapLimits = TapLimits(),
                 catalog: Callable[..., CatalogBackend] | None = None):
        self.index = index
        self.authority = authority
        self.limits = limits
        self.tables = published_tables()
        self._engine = engine
        self._vectors: OrderedDict[str, np.ndarray] = OrderedDict()
        self._vector_lock = threading.Lock()
        rows = tap_schema_rows(self.tables)
        if catalog is None:
            from ..search.backends.sqlite import SqliteBackend

            self.catalog: CatalogBackend = SqliteBackend(
                index.catalog.path, authority=authority, tables=self.tables,
                tap_schema_rows=rows, string_max_bytes=limits.query_max_string_bytes)
        else:
            self.catalog = catalog(self.tables, rows)
        self.lookups = Lookups(self)
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

        ``query_vectors`` maps a text argument of ``vo_clip_similarity`` (or
        ``vo_clip_match``) to the vector to use instead of the text's embedding (an
        uploaded image, for instance).
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
            translation = translate(query, self.limits, self.catalog.dialect)
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
        approximate = False
        if wanted > 0 and maxrec > 0:
            vectors, scores = self._scores(translation, clock, query_vectors)
            with clock.stage("sql"), self.session(cancelled=cancelled, base_url=base_url,
                                                   **time_limit) as session:
                rows, approximate = self._rows(session, translation, vectors, scores, wanted)
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
                           descriptors, approximate=approximate, clock=clock)

    def session(self, **limit):
        """A backend session whose errors arrive as the DALI faults they are.

        ``limit`` is :meth:`CatalogBackend.session`'s: ``seconds``, ``limit`` (its name),
        and optionally ``deadline``, ``cancelled`` and ``base_url``.
        """
        return _FaultingSession(self.catalog.session(**limit), self.limits)

    def _scores(self, translation: Translation, clock: StageClock,
                query_vectors: Mapping[str, np.ndarray]):
        """The query vector of each similarity call, and its score for every row.

        A query without similarity has no ``encode`` or ``score`` stage, and vectors the
        caller gave no ``encode``. The slot a query is ranked by (best first) on an
        approximate index is not scored here (None): its candidates come from the ANN
        search in :meth:`_rows`.
        """
        def given(s) -> bool:
            return s.kind in TEXT_KINDS and s.argument in query_vectors

        similarities = translation.similarities
        if not similarities:
            return [], []
        if not self.match_calibrated and any(s.kind == "match" for s in similarities):
            raise self._uncalibrated()
        if all(given(s) for s in similarities):
            vectors = [query_vectors[s.argument] for s in similarities]
        else:
            with clock.stage("encode"):
                vectors = [query_vectors[s.argument] if given(s)
                           else self._vector(s.kind, s.argument) for s in similarities]
        ranking = translation.ranking
        by_ann = (ranking.slot if ranking is not None and ranking.descending
                  and self.index.vectors.approximate else None)
        with clock.stage("score"):
            return vectors, [None if slot == by_ann else
                             self._calibrated(s, v, self.index.vectors.scores(v))
                             for slot, (s, v) in enumerate(zip(similarities, vectors))]

    def _calibrated(self, similarity, vector: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """``cosines`` as the call returns them: a ``vo_clip_match`` call's probabilities.

        Raises
        ------
        UsageFault
            For ``vo_clip_match`` on an index without a calibration.
        """
        if similarity.kind != "match":
            return cosines
        probability = self.index.match_probability(vector, cosines)
        if probability is None:
            raise self._uncalibrated()
        return probability

    @staticmethod
    def _uncalibrated() -> UsageFault:
        return UsageFault("vo_clip_match: this service's index has no match calibration "
                          "(it is fitted where the archive says what its previews show, "
                          "in truth.csv)", "use vo_clip_similarity", parameter="QUERY")

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

    def _rows(self, session, translation: Translation, vectors, scores,
              wanted: int) -> tuple[list[tuple], bool]:
        """The rows, and whether an approximate search chose their candidates."""
        ranking, cap = translation.ranking, self.limits.result_max_bytes
        similarities = translation.similarities
        n = len(self.index)
        candidates = max(_CANDIDATE_FACTOR * wanted, _MIN_CANDIDATES)
        while ranking is not None and candidates < _CANDIDATE_CEILING * n:
            slot, approximate = ranking.slot, False
            if scores[slot] is None:  # an ANN index: its best rows, with exact scores
                found, best, approximate = self.index.vectors.top(vectors[slot], candidates)
                best = self._calibrated(similarities[slot], vectors[slot], best)
                ranked = np.full(n, np.nan, dtype=best.dtype)
                ranked[found] = best
                chosen, given = np.sort(found), [*scores[:slot], ranked, *scores[slot + 1:]]
            else:
                key = scores[slot] if ranking.descending else -scores[slot]
                chosen, given = _best(key, candidates), scores
            try:
                rows = session.run(translation.compiled, given, chosen, wanted, cap)
            except TooManyCandidates:
                break  # the backend cannot take so many: score every row instead
            if len(rows) >= wanted:
                return rows, approximate
            candidates *= 8
        if ranking is not None and scores[ranking.slot] is None:  # exact, after all
            scores = list(scores)
            slot = ranking.slot
            scores[slot] = self._calibrated(similarities[slot], vectors[slot],
                                            self.index.vectors.scores(vectors[slot]))
        return session.run(translation.compiled, scores, None, wanted, cap), False

    @property
    def match_calibrated(self) -> bool:
        """Whether ``vo_clip_match`` can answer: the index has a match calibration."""
        return self.index.calibration is not None

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

    def warm(self) -> None:
        """Load the model now (it otherwise loads on the first text similarity)."""
        if self._engine is not None:
            self._vector("text", "a galaxy")
        self.ready_since = datetime.now(timezone.utc)

    def available(self) -> tuple[bool, str]:
        """Whether the index is intact and a tiny query runs; the note says why not."""
        problem = self.index.problem() or self.catalog.problem()
        if problem is not None:
            return False, f"the service's data is damaged: {problem}"
        try:
            # the last row too: a truncated catalog can still answer for its first pages
            self.lookups.lookup("last_observation")
        except DALIFault as fault:
            return False, f"the catalog cannot be read: {fault}"
        return True, f"serving {len(self.index)} observations"


class _FaultingSession:
    """A backend session (a context manager) whose StatementErrors become DALI faults."""

    def __init__(self, context, limits: TapLimits):
        self._context, self._limits = context, limits

    def __enter__(self):
        try:
            self._session = self._context.__enter__()
        except StatementError as exc:
            raise _fault(exc, self._limits) from None
        return self

    def __exit__(self, *exc_info):
        return self._context.__exit__(*exc_info)

    def run(self, *args):
        try:
            return self._session.run(*args)
        except StatementError as exc:
            raise _fault(exc, self._limits) from None

    def lookup(self, name: str, **arguments) -> list[dict]:
        try:
            return self._session.lookup(name, **arguments)
        except StatementError as exc:
            raise _fault(exc, self._limits) from None


def _never() -> bool:
    return False


def _best(key: np.ndarray, count: int) -> np.ndarray:
    """Rows of the ``count`` largest keys, plus any row tied with the smallest of them."""
    part = np.argpartition(-key, count - 1)[:count]
    threshold = key[part].min()
    return np.flatnonzero(key >= threshold)


def _fault(error: StatementError, limits: TapLimits) -> DALIFault:
    """The DALI fault a failed statement is: our damaged data, a stop, a limit, or the
    query's or our error."""
    if isinstance(error, StatementStopped):
        if error.cancelled:
            return TransientFault("the query was stopped: its job was aborted or its "
                                  "client disconnected")
        hint = ("run it as an async job (/tap/async), add constraints or a smaller TOP"
                if error.limit == "sync_execution_limit" else "add constraints or a smaller TOP"
                if error.limit == "EXECUTIONDURATION" else "try again later")
        return TransientFault(f"the query was stopped: it ran past its time limit of "
                              f"{error.seconds:g} s ({error.limit})", hint, limit=error.limit)
    if isinstance(error, ValueTooLong):
        return LimitFault(f"the query builds a value longer than "
                          f"{limits.query_max_string_bytes:,} bytes (the limit "
                          "query_max_string_bytes)", limit="query_max_string_bytes",
                          parameter="QUERY")
    if isinstance(error, ResultTooLarge):
        return LimitFault(f"the result is larger than {limits.result_max_bytes:,} bytes (the "
                          "limit result_max_bytes)", "select fewer columns, or fewer rows "
                          "with TOP or MAXREC", limit="result_max_bytes", parameter="QUERY")
    if isinstance(error, StatementRefused):
        return UsageFault(error.message, parameter="QUERY")
    if isinstance(error, StatementFailed) and error.damaged:
        return damaged_catalog_fault(error.message)
    if isinstance(error, StatementFailed) and error.transient:
        return TransientFault(f"the catalog database cannot be reached: {error.message}",
                              "try again later")
    return FatalFault(error.message)


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
