"""The embedded catalog's SQL functions: ADQL's math, geometry and similarity in SQLite.

SQLite has no ADQL geometry, RAND with a seed, TRUNCATE or COT, and no way to reach a
query's similarity scores; :data:`FUNCTIONS` names each function the translator may
emit, and :func:`register_functions` gives a connection vo_clip's implementations of
them. Apart from the backend (:mod:`.sqlite`, which also parses and rewrites queries
with sqlglot), so that a text query's cone filter (:mod:`vo_clip.search.catalog`) loads
only these, not the ~0.2 s of the SQL parser.
"""

from __future__ import annotations

import math
import random
import sqlite3
from urllib.parse import quote

from .. import geometry
from . import FunctionTable, SessionState, SqlFunction
from .functions import adql_functions

__all__ = ["FUNCTIONS", "ArgumentError", "register_functions"]


class ArgumentError(Exception):
    """A vo_clip SQL function was given a value it does not take (the query's fault)."""


def _checked(fn):
    """A factory of ``fn`` keeping the message of an ArgumentError it raises in the
    session state, for the error the query gets."""

    def bind(state: SessionState | None):
        def function(*args):
            try:
                return fn(*args)
            except ArgumentError as exc:
                if state is not None:
                    state.error = str(exc)
                raise

        return function

    return bind


def _number(value, function: str):
    if isinstance(value, (str, bytes)):
        text = value if isinstance(value, str) else "a binary value"
        raise ArgumentError(f"{function} takes numbers, not {text[:40]!r}")
    return value


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


def _score(state: SessionState):
    def score(slot, row):
        scores = state.scores[slot]
        return scores.get(row) if isinstance(scores, dict) else scores[row]

    return score


def _did(state: SessionState):
    return lambda obs_id: None if obs_id is None else state.did_prefix + obs_id


def _datalink_url(state: SessionState):
    return lambda obs_id: None if obs_id is None else (
        f"{state.base_url}/datalink/links?ID=" + quote(state.did_prefix + obs_id, safe=""))


def _preview_url(state: SessionState):
    return lambda obs_id: None if obs_id is None else (
        f"{state.base_url}/preview/{quote(obs_id, safe='')}")


def _geometry(name: str):
    return lambda state: geometry.sql_function(name)


#: SQLite's own functions for ADQL's, by ADQL name; the rest are vo_clip's.
_NATIVE = {
    "ABS": "abs", "CEILING": "ceil", "DEGREES": "degrees", "EXP": "exp", "FLOOR": "floor",
    "LOG": "ln", "LOG10": "log10", "MOD": "mod", "PI": "pi", "POWER": "pow",
    "RADIANS": "radians", "SQRT": "sqrt", "ROUND": "round", "SIN": "sin", "COS": "cos",
    "TAN": "tan", "ASIN": "asin", "ACOS": "acos", "ATAN": "atan", "ATAN2": "atan2",
    "UPPER": "upper", "LOWER": "lower", "COUNT": "count", "MIN": "min", "MAX": "max",
    "SUM": "sum", "AVG": "avg",
}
#: vo_clip's functions: name, registered arity, factory(state), deterministic.
_OWN = {
    "RAND": ("vo_clip_rand", -1, _checked(_rand), False),
    "TRUNCATE": ("vo_clip_truncate", -1, _checked(_truncate), True),
    "COT": ("vo_clip_cot", 1, _checked(_cot), True),
    "POINT": ("vo_clip_point", 2, _geometry("vo_clip_point"), True),
    "CIRCLE": ("vo_clip_circle", -1, _geometry("vo_clip_circle"), True),
    "BOX": ("vo_clip_box", -1, _geometry("vo_clip_box"), True),
    "POLYGON": ("vo_clip_polygon", -1, _geometry("vo_clip_polygon"), True),
    "CONTAINS": ("vo_clip_contains", 2, _geometry("vo_clip_contains"), True),
    "INTERSECTS": ("vo_clip_intersects", 2, _geometry("vo_clip_intersects"), True),
    "DISTANCE": ("vo_clip_distance", 2, _geometry("vo_clip_distance"), True),
    "VO_CLIP_SIMILARITY": ("vo_clip_score", 2, _score, False),
}
#: Functions the translator emits itself, and SQLite built-ins its nodes become.
_INTERNAL = (
    SqlFunction("vo_clip_angdist", kind="internal", nargs=4,
                implementation=_geometry("vo_clip_angdist")),
    SqlFunction("vo_clip_did", kind="internal", nargs=1, implementation=_did),
    SqlFunction("vo_clip_datalink_url", kind="internal", nargs=1, deterministic=False,
                implementation=_datalink_url),
    SqlFunction("vo_clip_preview_url", kind="internal", nargs=1, deterministic=False,
                implementation=_preview_url),
    SqlFunction("like", kind="internal"), SqlFunction("coalesce", kind="internal"),
    SqlFunction("json_each", kind="internal"),
)


def _functions() -> FunctionTable:
    entries = []
    for adql in adql_functions():
        if adql.name in _NATIVE:
            entries.append(SqlFunction(_NATIVE[adql.name], adql.name, adql.min_args,
                                       adql.max_args, adql.kind))
            continue
        own = _OWN.get(adql.name) or _OWN["VO_CLIP_SIMILARITY"]
        sql, nargs, factory, deterministic = own
        registered = any(e.sql == sql for e in entries)  # similarity_to shares the score
        entries.append(SqlFunction(sql, adql.name, adql.min_args, adql.max_args, adql.kind,
                                   deterministic=deterministic, nargs=nargs,
                                   implementation=None if registered else factory))
    return FunctionTable([*entries, *_INTERNAL])


#: The SQLite backend's functions: the translator's table, the registrations and the
#: authorizer's allow-list.
FUNCTIONS = _functions()


def register_functions(db: sqlite3.Connection, state: SessionState | None, *,
                       only: set[str] | None = None) -> None:
    """Register vo_clip's functions of :data:`FUNCTIONS` (those in ``only``, if given)."""
    for function in FUNCTIONS:
        if function.implementation is None or (only and function.sql not in only):
            continue
        db.create_function(function.sql, function.nargs, function.implementation(state),
                           deterministic=function.deterministic)
