"""The SQL of the PostgreSQL backend: its functions, and translated queries in pgsphere.

ADQL geometry becomes pgsphere (``spoint``, ``scircle``, ``spoly``; ``<@`` for
CONTAINS, ``&&`` for INTERSECTS, ``<->`` for distances), so that
``1 = CONTAINS(POINT(s_ra, s_dec), CIRCLE(...))`` is answered by the GiST index on
``spoint(radians(s_ra), radians(s_dec))`` and a footprint query by the one on the
observations' ``spoly``. Angles stay degrees in ADQL and become radians here. The
published ``s_region`` column is the STC-S text SQLite serves, so results are the
same on both backends; inside a geometry function it stands for the view's hidden
``vo_clip_s_region`` (an ``spoly``).

Scores reach SQL as bound arrays (in binary): a float8 array indexed by ``row_index + 1`` for a
slot scored on every row, and for the ranked slot of a restricted query the
candidates as ``unnest(rows, scores)`` joined on ``row_index``. A literal ``%`` of the
query is doubled, because psycopg reads ``%(name)s`` as a parameter.

Every function vo_clip installs is in :data:`FUNCTIONS` with its ``CREATE FUNCTION``
(``{schema}`` stands for the ``postgres_schema`` setting); the translator takes the
ADQL names and arities from the same table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import sqlglot
from sqlglot import exp

from . import CompiledQuery, FunctionTable, SqlDialect, SqlFunction, post_order
from .functions import adql_functions

__all__ = ["FUNCTIONS", "PostgresDialect", "score_parameters"]


def _sql_function(name: str, signature: str, returns: str, body: str, *,
                  volatility: str = "IMMUTABLE", strict: bool = True) -> str:
    return (f"CREATE OR REPLACE FUNCTION {{schema}}.{name}({signature}) RETURNS {returns} "
            f"LANGUAGE sql {volatility}{' STRICT' if strict else ''} PARALLEL SAFE "
            f"AS $body$ {body} $body$")


_URL_QUOTE = _sql_function(  # Python's urllib.parse.quote(text, safe=""), byte for byte
    "vo_clip_urlquote", "text", "text",
    # most identifiers need no quoting: answer those without splitting them
    "SELECT CASE WHEN $1 ~ '^[A-Za-z0-9_.~-]*$' THEN $1 ELSE (SELECT coalesce(string_agg("
    "CASE WHEN ch ~ '^[A-Za-z0-9_.~-]$' THEN ch ELSE regexp_replace(upper(encode("
    "convert_to(ch, 'UTF8'), 'hex')), '(..)', '%\\1', 'g') END, '' ORDER BY n), '') "
    "FROM regexp_split_to_table($1, '') WITH ORDINALITY AS t(ch, n)) END")

_DEFINITIONS = {
    "vo_clip_mod": _sql_function("vo_clip_mod", "float8, float8", "float8",
                                 "SELECT CASE WHEN $2 = 0 THEN NULL "
                                 "ELSE $1 - $2 * trunc($1 / $2) END"),
    "vo_clip_round": [
        _sql_function("vo_clip_round", "float8", "float8", "SELECT round($1::numeric)::float8"),
        _sql_function("vo_clip_round", "float8, float8", "float8",
                      "SELECT round($1::numeric, greatest(-400, least(400, $2))::int)::float8"),
    ],
    "vo_clip_truncate": [
        _sql_function("vo_clip_truncate", "float8", "float8", "SELECT trunc($1::numeric)::float8"),
        _sql_function("vo_clip_truncate", "float8, float8", "float8",
                      "SELECT trunc($1::numeric, greatest(-400, least(400, $2))::int)::float8"),
    ],
    "vo_clip_rand": [
        _sql_function("vo_clip_rand", "", "float8", "SELECT random()", volatility="VOLATILE",
                      strict=False),
        # a seed gives a fixed value (not SQLite's: PostgreSQL has no Mersenne Twister)
        _sql_function("vo_clip_rand", "float8", "float8",
                      "SELECT ('x' || substr(md5($1::text), 1, 8))::bit(32)::bigint "
                      "/ 4294967296.0"),
    ],
    "vo_clip_cot": _sql_function("vo_clip_cot", "float8", "float8",
                                 "SELECT CASE WHEN tan($1) = 0 OR tan($1) = 'NaN' THEN NULL "
                                 "ELSE 1 / tan($1) END"),
    "vo_clip_box": _sql_function(  # the vertices of vo_clip.search.geometry.Box
        "vo_clip_box", "float8, float8, float8, float8", "spoly",
        "SELECT format('{(%sd , %sd),(%sd , %sd),(%sd , %sd),(%sd , %sd)}', "
        "$1 - hw, $2 - $4 / 2, $1 + hw, $2 - $4 / 2, $1 + hw, $2 + $4 / 2, "
        "$1 - hw, $2 + $4 / 2)::spoly FROM (SELECT ($3 / 2) / cos(radians($2)) AS hw) AS b"),
    "vo_clip_polygon": _sql_function(
        "vo_clip_polygon", "VARIADIC float8[]", "spoly",
        "SELECT ('{' || string_agg(format('(%sd , %sd)', $1[2 * i - 1], $1[2 * i]), ',' "
        "ORDER BY i) || '}')::spoly FROM generate_series(1, array_length($1, 1) / 2) AS i"),
    "vo_clip_angdist": _sql_function(  # the haversine of vo_clip.search.geometry, as in SQLite
        "vo_clip_angdist", "float8, float8, float8, float8", "float8",
        "SELECT degrees(2 * asin(least(1.0, sqrt(power(sin((radians($4) - radians($2)) / 2), 2)"
        " + cos(radians($2)) * cos(radians($4)) * power(sin((radians($3) - radians($1)) / 2), "
        "2)))))"),
    "vo_clip_urlquote": _URL_QUOTE,
    "vo_clip_did": _sql_function(
        "vo_clip_did", "text", "text", "SELECT current_setting('vo_clip.did_prefix') || $1",
        volatility="STABLE"),
    "vo_clip_datalink_url": _sql_function(
        "vo_clip_datalink_url", "text", "text",
        "SELECT current_setting('vo_clip.base_url') || '/datalink/links?ID=' || "
        "{schema}.vo_clip_urlquote(current_setting('vo_clip.did_prefix')) || "
        "{schema}.vo_clip_urlquote($1)",
        volatility="STABLE"),
    "vo_clip_preview_url": _sql_function(
        "vo_clip_preview_url", "text", "text",
        "SELECT current_setting('vo_clip.base_url') || '/preview/' || "
        "{schema}.vo_clip_urlquote($1)", volatility="STABLE"),
    # an spoly as the STC-S text SQLite serves (for an operator's ObsCore whose
    # s_region is an spoly). pgsphere 1.2 has no vertex accessor, so the vertices are
    # read from its text output (radians, 15 significant digits: pgsphere's default
    # output) and rounded to 1e-9 degrees, which that precision supports.
    "vo_clip_stcs": _sql_function(
        "vo_clip_stcs", "spoly", "text",
        "SELECT 'Polygon ICRS ' || string_agg(round(degrees(m[1]::float8)::numeric, 9)"
        "::float8::text || ' ' || round(degrees(m[2]::float8)::numeric, 9)::float8::text,"
        " ' ' ORDER BY n) FROM regexp_matches($1::text, "
        "'\\(\\s*([-+0-9.eE]+)\\s*,\\s*([-+0-9.eE]+)\\s*\\)', 'g') "
        "WITH ORDINALITY AS t(m, n)"),
}

#: pgsphere functions and PostgreSQL built-ins the translated SQL calls.
_NATIVE = {
    "ABS": "abs", "CEILING": "ceil", "DEGREES": "degrees", "EXP": "exp", "FLOOR": "floor",
    "LOG": "ln", "LOG10": "log", "PI": "pi", "POWER": "power", "RADIANS": "radians",
    "SQRT": "sqrt", "SIN": "sin", "COS": "cos", "TAN": "tan", "ASIN": "asin",
    "ACOS": "acos", "ATAN": "atan", "ATAN2": "atan2", "UPPER": "upper", "LOWER": "lower",
    "COUNT": "count", "MIN": "min", "MAX": "max", "SUM": "sum", "AVG": "avg",
}
_OWN = {"MOD": "vo_clip_mod", "ROUND": "vo_clip_round", "TRUNCATE": "vo_clip_truncate",
        "RAND": "vo_clip_rand", "COT": "vo_clip_cot"}


def _functions() -> FunctionTable:
    entries = []
    for adql in adql_functions():
        sql = _NATIVE.get(adql.name) or _OWN.get(adql.name) or adql.neutral
        entries.append(SqlFunction(sql, adql.name, adql.min_args, adql.max_args, adql.kind,
                                   deterministic=adql.name != "RAND",
                                   implementation=_DEFINITIONS.get(sql)))
    named = {e.sql for e in entries}
    # vo_clip_urlquote before the functions calling it: PostgreSQL checks a body's
    # calls when it creates the function (check_function_bodies)
    for internal in ("vo_clip_score", "vo_clip_angdist", "vo_clip_urlquote", "vo_clip_did",
                     "vo_clip_datalink_url", "vo_clip_preview_url", "vo_clip_stcs", "count",
                     "spoint", "scircle", "radians", "degrees", "coalesce", "lower"):
        if internal not in named:
            entries.append(SqlFunction(internal, kind="internal",
                                       implementation=_DEFINITIONS.get(internal)))
            named.add(internal)
    return FunctionTable(entries)


#: vo_clip's functions in PostgreSQL: the translator's table and the installer's list.
FUNCTIONS = _functions()


def install_statements(schema: str) -> list[str]:
    """The ``CREATE FUNCTION`` statements of :data:`FUNCTIONS`, for ``schema``."""
    statements = []
    for function in FUNCTIONS:
        definition = function.implementation
        for sql in definition if isinstance(definition, list) else [definition] if definition else []:
            statements.append(sql.replace("{schema}", _quote(schema)))
    return statements


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


# -- compiling a translated query -------------------------------------------------------

_POINT, _CIRCLE, _POLY = "point", "circle", "polygon"
_SHAPE_OF = {"vo_clip_point": _POINT, "vo_clip_circle": _CIRCLE, "vo_clip_box": _POLY,
             "vo_clip_polygon": _POLY}
#: Published columns holding a region; in a geometry function they read the view's spoly.
_REGION_COLUMNS = {"s_region": "vo_clip_s_region"}

_SCORES = "vo_clip_scores_"
_CANDIDATES = "vo_clip_candidates"
_SENTINEL = re.compile(r'"?(vo_clip_param_[a-z_0-9]+)"?')
_ARRAY_LOOKUP = re.compile(r'VO_CLIP_SCORE_AT_(\d+)\(("[^"]*"\."row_index")\)', re.IGNORECASE)


@dataclass(frozen=True)
class PostgresDialect(SqlDialect):
    """PostgreSQL + pgsphere SQL over the views of one ``schema``."""

    schema: str = "vo_clip"
    name: str = "postgresql"

    @property
    def functions(self) -> FunctionTable:  # type: ignore[override]
        return FUNCTIONS

    def relation(self, table) -> tuple[str | None, str]:
        if table.embedded:
            return self.schema, table.sql_name
        return self.schema, "tap_schema_" + table.short_name  # an operator may have its own

    def compile(self, tree, *, ranking_slot, ranking_alias) -> CompiledQuery:
        tree = _pgsphere(tree)
        sql = _render(_scores_as_arrays(tree.copy(), None))
        restricted = None
        if ranking_slot is not None:
            restricted = _render(_with_candidates(tree.copy(), ranking_slot, ranking_alias))
        return CompiledQuery(sql, restricted, ranking_slot=ranking_slot)


def score_parameters(query: CompiledQuery, scores, candidates: np.ndarray | None) -> dict:
    """The bound values of ``query`` (restricted to ``candidates`` when given)."""
    params = {f"vo_clip_param_scores_{slot}": np.asarray(s, dtype=np.float64).tolist()
              for slot, s in enumerate(scores)
              if candidates is None or slot != query.ranking_slot}
    if candidates is not None:
        ranked = np.asarray(scores[query.ranking_slot])[candidates]
        params["vo_clip_param_rows"] = candidates.tolist()
        params["vo_clip_param_ranked"] = ranked.astype(np.float64).tolist()
    return params


def _render(tree: exp.Expression) -> str:
    sql = tree.sql(dialect="postgres").replace("%", "%%")
    # the sentinels first: the array lookups' placeholders hold a sentinel's name too.
    # Binary parameters (%b): a float8[] of 10^5 scores binds in half the time as text.
    sql = _SENTINEL.sub(lambda m: f"%({m.group(1)})b", sql)
    return _ARRAY_LOOKUP.sub(lambda m: f"(%(vo_clip_param_scores_{m.group(1)})b"
                                       f"::float8[])[{m.group(2)} + 1]", sql)


def _scores_as_arrays(tree: exp.Expression, skip_slot: int | None) -> exp.Expression:
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name == "vo_clip_score":
            slot, row = node.expressions
            if int(slot.this) != skip_slot:
                node.replace(exp.Anonymous(this=f"vo_clip_score_at_{int(slot.this)}",
                                           expressions=[row]))
    return tree


def _with_candidates(tree: exp.Select, slot: int, alias: str) -> exp.Select:
    for node in list(tree.find_all(exp.Anonymous)):
        if node.name == "vo_clip_score" and int(node.expressions[0].this) == slot \
                and node.expressions[1].table == alias:
            node.replace(exp.column("score", table=_CANDIDATES))
    tree = _scores_as_arrays(tree, slot)
    join = sqlglot.parse_one(
        f'SELECT 1 FROM x JOIN UNNEST(CAST(vo_clip_param_rows AS BIGINT[]), '
        f'CAST(vo_clip_param_ranked AS DOUBLE PRECISION[])) AS {_CANDIDATES}(row_index, score)'
        f' ON "{alias}"."row_index" = {_CANDIDATES}.row_index', read="postgres").args["joins"][0]
    tree.append("joins", join)
    return tree


def _pgsphere(tree: exp.Expression) -> exp.Expression:
    """Geometry calls as pgsphere values and operators, children first."""
    for node in list(post_order(tree)):
        if isinstance(node, exp.Anonymous) and node.name.startswith("vo_clip_"):
            replacement = _geometry_call(node)
            if replacement is not None:
                node.replace(replacement)
    return tree


def _geometry_call(node: exp.Anonymous) -> exp.Expression | None:
    name, args = node.name, [_region_column(a) for a in node.expressions]
    if name == "vo_clip_point":
        return _spoint(*args)
    if name == "vo_clip_circle":
        ra, dec, radius = args
        return exp.Anonymous(this="scircle", expressions=[_spoint(ra, dec), _radians(radius)])
    if name in ("vo_clip_box", "vo_clip_polygon"):
        return exp.Anonymous(this=name, expressions=args)
    if name in ("vo_clip_contains", "vo_clip_intersects"):
        return _predicate(node, name, *args)
    if name == "vo_clip_distance":
        return exp.Anonymous(this="degrees", expressions=[
            exp.Paren(this=exp.Distance(this=args[0], expression=args[1]))])
    return None


def _spoint(ra: exp.Expression, dec: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="spoint", expressions=[_radians(ra), _radians(dec)])


def _radians(value: exp.Expression) -> exp.Expression:
    return exp.Anonymous(this="radians", expressions=[value])


def _region_column(arg: exp.Expression) -> exp.Expression:
    if isinstance(arg, exp.Column) and arg.name in _REGION_COLUMNS:
        return exp.column(_REGION_COLUMNS[arg.name], table=arg.table, quoted=True)
    return arg


def _shape(arg: exp.Expression) -> str | None:
    if isinstance(arg, exp.Anonymous):
        if arg.name == "spoint":
            return _POINT
        if arg.name == "scircle":
            return _CIRCLE
        return _SHAPE_OF.get(arg.name)
    if isinstance(arg, exp.Column) and arg.name in _REGION_COLUMNS.values():
        return _POLY
    return None


def _predicate(node: exp.Anonymous, name: str, a, b) -> exp.Expression:
    """CONTAINS or INTERSECTS as a pgsphere operator: a boolean where ADQL compares it
    with 1 or 0 (so that an index answers it), an integer elsewhere."""
    first, second = _shape(a), _shape(b)
    if name == "vo_clip_contains":
        test = exp.EQ(this=a, expression=b) if first == second == _POINT else \
            exp.ArrayContainedBy(this=a, expression=b)
    elif _POINT in (first, second):  # a point meets a region when it lies inside it
        point, region = (a, b) if first == _POINT else (b, a)
        test = exp.EQ(this=point, expression=region) if first == second else \
            exp.ArrayContainedBy(this=point, expression=region)
    else:
        test = exp.ArrayOverlaps(this=a, expression=b)
    parent = node.parent
    if isinstance(parent, (exp.EQ, exp.NEQ)):
        other = parent.expression if parent.this is node else parent.this
        if isinstance(other, exp.Literal) and not other.is_string and other.this in ("0", "1"):
            truth = (other.this == "1") == isinstance(parent, exp.EQ)
            parent.replace(exp.Paren(this=test) if truth else exp.Not(this=exp.Paren(this=test)))
            return exp.Paren(this=test)  # detached: the parent is gone
    return exp.Cast(this=exp.Paren(this=test), to=exp.DataType.build("INT"))
