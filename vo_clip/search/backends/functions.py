"""The ADQL functions vo_clip implements, before any backend names them.

Each backend's :class:`~vo_clip.search.backends.FunctionTable` maps these ADQL names
to its own SQL (a built-in, or a function it registers or installs). Geometry and
similarity have backend-neutral names here (``vo_clip_point``, ``vo_clip_score``...):
the translator emits them, and each backend's compiler turns them into its engine's
geometry and score lookups.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AdqlFunction", "GEOMETRY_FUNCTIONS", "adql_functions"]


@dataclass(frozen=True)
class AdqlFunction:
    """An ADQL function: its arity, kind and the neutral name geometry is emitted as."""

    name: str
    min_args: int
    max_args: int
    kind: str = "math"  # math, string, aggregate, geometry, similarity
    neutral: str | None = None


def _f(name, lo, hi=None, kind="math", neutral=None):
    return AdqlFunction(name, lo, lo if hi is None else hi, kind, neutral)


_ADQL = (
    _f("ABS", 1), _f("CEILING", 1), _f("DEGREES", 1), _f("EXP", 1), _f("FLOOR", 1),
    _f("LOG", 1), _f("LOG10", 1), _f("MOD", 2), _f("PI", 0), _f("POWER", 2),
    _f("RADIANS", 1), _f("SQRT", 1), _f("RAND", 0, 1), _f("ROUND", 1, 2),
    _f("TRUNCATE", 1, 2), _f("SIN", 1), _f("COS", 1), _f("TAN", 1), _f("COT", 1),
    _f("ASIN", 1), _f("ACOS", 1), _f("ATAN", 1), _f("ATAN2", 2),
    _f("UPPER", 1, kind="string"), _f("LOWER", 1, kind="string"),
    _f("COUNT", 1, kind="aggregate"), _f("MIN", 1, kind="aggregate"),
    _f("MAX", 1, kind="aggregate"), _f("SUM", 1, kind="aggregate"),
    _f("AVG", 1, kind="aggregate"),
    _f("POINT", 2, 3, "geometry", "vo_clip_point"),
    _f("CIRCLE", 2, 4, "geometry", "vo_clip_circle"),
    _f("BOX", 4, 5, "geometry", "vo_clip_box"),
    _f("POLYGON", 3, 999, "geometry", "vo_clip_polygon"),
    _f("CONTAINS", 2, kind="geometry", neutral="vo_clip_contains"),
    _f("INTERSECTS", 2, kind="geometry", neutral="vo_clip_intersects"),
    _f("DISTANCE", 2, 4, "geometry", "vo_clip_distance"),
    _f("VO_CLIP_SIMILARITY", 1, 2, "similarity", "vo_clip_score"),
    _f("VO_CLIP_SIMILARITY_TO", 1, 2, "similarity", "vo_clip_score"),
    _f("VO_CLIP_MATCH", 1, 2, "similarity", "vo_clip_score"),
)

#: Geometry functions implemented, as TAPRegExt ``features-adqlgeo`` names them.
GEOMETRY_FUNCTIONS = tuple(f.name for f in _ADQL if f.kind == "geometry")


def adql_functions() -> tuple[AdqlFunction, ...]:
    """Every ADQL function vo_clip implements, in the order the capabilities list them."""
    return _ADQL
