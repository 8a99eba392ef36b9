"""ADQL 2.0/2.1 queries parsed, checked and translated to a catalog backend's SQL.

The parser is sqlglot's, configured as an ADQL dialect (``TOP``, ``||``, single-quoted
strings, double-quoted delimited identifiers) with function calls left uninterpreted,
so that every function passes through the function table of the catalog backend
(:class:`~vo_clip.search.backends.FunctionTable`): its arity, and the SQL name it
becomes. Names are resolved against the published tables of
:mod:`vo_clip.vo.schema` by sqlglot's qualifier, which also expands ``*`` and ``USING``.
The checked tree is then rewritten node by node and every node type is checked
against an allow-list: a statement other than one SELECT, a table that is not
published, or a function the backend does not offer cannot come out of the
translator. The backend's dialect finally compiles the tree into its SQL
(:meth:`~vo_clip.search.backends.SqlDialect.compile`): SQLite keeps geometry as
``vo_clip_*`` calls, PostgreSQL makes them pgsphere operators.

The similarity functions become ``vo_clip_score(slot, alias.row_index)``: the engine
computes one score vector per call, once per query, and the backend looks scores up
by row.
A query ranked by similarity with a row limit is marked (:class:`Ranking`) so that the
executor can give SQL only the best-scoring candidate rows (see :mod:`vo_clip.vo.tap`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from functools import lru_cache

from sqlglot import exp, parser, tokens
from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import OptimizeError, ParseError, TokenError
from sqlglot.optimizer.qualify import qualify
from sqlglot.tokens import TokenType

from ..search.backends import CompiledQuery, SqlDialect, post_order
from ..search.backends.functions import GEOMETRY_FUNCTIONS, AdqlFunction, adql_functions
from ..search.backends.sqlite import SqliteDialect
from .faults import LimitFault, UsageFault
from .limits import TapLimits
from .schema import TapColumn, TapTable, published_tables
from .vosi import Udf

__all__ = ["GEOMETRY_FUNCTIONS", "TEXT_KINDS", "UDFS", "OutputColumn", "Ranking",
           "Similarity", "Translation", "translate"]


class ADQL(Dialect):
    """ADQL as sqlglot reads it: SQL-92 plus TOP; functions kept as written."""

    class Tokenizer(tokens.Tokenizer):
        KEYWORDS = {**tokens.Tokenizer.KEYWORDS, "TOP": TokenType.TOP}

    class Parser(parser.Parser):
        FUNCTIONS: dict = {}


# -- the functions ----------------------------------------------------------------------

#: The ADQL functions implemented, by name (each backend's table says what they become).
FUNCTIONS: dict[str, AdqlFunction] = {f.name: f for f in adql_functions()}

#: The embedded default's dialect, for callers that name none.
SQLITE = SqliteDialect()

_NOT_SUPPORTED = {"AREA", "CENTROID", "COORD1", "COORD2", "COORDSYS", "REGION"}

_EXAMPLE = ("SELECT TOP 20 obs_id, target_name, vo_clip_similarity('{}') AS similarity "
            "FROM ivoa.ObsCore ORDER BY similarity DESC")

#: The user-defined functions, as the capabilities declare them (TAPRegExt features-udf).
UDFS = (
    Udf("vo_clip_similarity(query VARCHAR) -> DOUBLE",
        "Cosine similarity (-1 to 1) between the row's preview image and the "
        "natural-language query, embedded once by the PAPERCLIP CLIP model. Use it in "
        "SELECT, WHERE and ORDER BY, e.g. "
        + _EXAMPLE.format("barred spiral galaxy with a star-forming ring")
        + ". On an archive indexed for approximate search (ANN), a TOP query ordered by "
        "it DESC takes its candidates from that index: the result then carries "
        "<INFO name=\"APPROXIMATE\">, and a row a full scan would rank among them may be "
        "missing (its scores are exact)"),
    Udf("vo_clip_similarity(did VARCHAR, query VARCHAR) -> DOUBLE",
        "As vo_clip_similarity(query), for the observation whose obs_publisher_did (or "
        "obs_id) column is given: names the table in joins, e.g. "
        "vo_clip_similarity(o.obs_publisher_did, 'planetary nebula')"),
    Udf("vo_clip_similarity_to(obsid VARCHAR) -> DOUBLE",
        "Cosine similarity between the row's preview and the preview of another "
        "observation, given by obs_id or obs_publisher_did: 'more like this', e.g. "
        "ORDER BY vo_clip_similarity_to('hst_05645_01_wfpc2_wf_f300w_u4ct01') DESC"),
    Udf("vo_clip_similarity_to(did VARCHAR, obsid VARCHAR) -> DOUBLE",
        "As vo_clip_similarity_to(obsid), for the observation whose obs_publisher_did "
        "(or obs_id) column is given"),
    Udf("vo_clip_match(query VARCHAR) -> DOUBLE",
        "Calibrated probability (0 to 1) that the row's preview shows what the "
        "natural-language query describes: vo_clip_similarity(query) turned into a "
        "chance that reads the same for every query (fitted on the training captions), "
        "so one threshold serves them all, e.g. WHERE vo_clip_match('comets') > 0.5. "
        "It ranks exactly as vo_clip_similarity(query) does"),
    Udf("vo_clip_match(did VARCHAR, query VARCHAR) -> DOUBLE",
        "As vo_clip_match(query), for the observation whose obs_publisher_did (or "
        "obs_id) column is given"),
)

_SYSTEMS = {"", "ICRS"}

#: Similarity kinds whose argument is a text the model embeds.
TEXT_KINDS = ("text", "match")


# -- the result of a translation --------------------------------------------------------

@dataclass(frozen=True)
class Similarity:
    """One similarity call: compare every row's preview with a text or an observation."""

    slot: int
    kind: str  # "text", "match" (a text's calibrated probability) or "observation"
    argument: str


@dataclass(frozen=True)
class Ranking:
    """The query is ordered by similarity ``slot`` first, over the table ``alias``."""

    slot: int
    descending: bool
    alias: str = ""


@dataclass(frozen=True)
class OutputColumn:
    """A result column: its name and, when known from the schema, its metadata."""

    name: str
    column: TapColumn | None = None


@dataclass(frozen=True)
class Translation:
    """A checked query, as the SQL of one backend (``compiled``).

    ``compiled.sql`` has no row limit; ``compiled.restricted_sql`` (set with
    ``ranking``) reads only the candidate rows the executor hands it.
    """

    adql: str
    compiled: CompiledQuery
    columns: list[OutputColumn]
    top: int | None
    similarities: list[Similarity] = field(default_factory=list)
    ranking: Ranking | None = None

    @property
    def sql(self) -> str:
        return self.compiled.sql

    @property
    def restricted_sql(self) -> str | None:
        return self.compiled.restricted_sql


# -- entry point ------------------------------------------------------------------------

def translate(adql: str, limits: TapLimits = TapLimits(),
              dialect: SqlDialect = SQLITE) -> Translation:
    """Parse ``adql``, check it against the published tables and translate it.

    ``limits`` bounds what translating and running the query may cost: its length,
    size and depth, and its similarity calls. ``dialect`` is the backend's SQL the
    query becomes (the embedded SQLite catalog's by default).

    Raises
    ------
    UsageFault
        For a syntax error, an unknown table, column or function, or anything this
        service does not implement; the message names the offending part.
    LimitFault
        For a query beyond one of ``limits``; the message names the limit.
    """
    if not adql or not adql.strip():
        raise UsageFault("the QUERY is empty", "give an ADQL SELECT statement",
                         parameter="QUERY")
    if len(adql) > limits.query_max_length:
        raise LimitFault(f"the QUERY is {len(adql)} characters long; the limit "
                         f"(query_max_length) is {limits.query_max_length}",
                         limit="query_max_length", parameter="QUERY")
    try:  # frozen: safe to share
        return (_translate_as_template(adql, limits, dialect)
                or _translate_cached(adql, limits, dialect))
    except RecursionError:
        raise LimitFault("the QUERY is nested too deeply to be parsed (the limit "
                         f"query_max_depth is {limits.query_max_depth})",
                         "simplify the expression", limit="query_max_depth",
                         parameter="QUERY") from None


@lru_cache(maxsize=512)
def _translate_cached(adql: str, limits: TapLimits, dialect: SqlDialect) -> Translation:
    tree = _parse(adql, limits)
    _check_size(tree, limits, expanded=False)
    _check_tables(tree)
    tree = _qualify(tree)
    _check_size(tree, limits, expanded=True)
    _check_flattened_size(tree, limits)
    translator = _Translator(dialect)
    columns = translator.output_columns(tree)
    tree = translator.rewrite(tree)
    _check_similarities(translator.similarities, limits)
    _check_nodes(tree, dialect)
    top = _top(tree)
    ranking = translator.ranking(tree)
    compiled = dialect.compile(tree, ranking_slot=ranking.slot if ranking else None,
                               ranking_alias=ranking.alias if ranking else None)
    return Translation(adql=adql, compiled=compiled, columns=columns, top=top,
                       similarities=translator.similarities, ranking=ranking)


# -- query texts as parameters ------------------------------------------------------------

#: A ``vo_clip_similarity`` or ``vo_clip_match`` call's text literal, after an optional
#: table argument.
_SIMILARITY_TEXT = re.compile(
    r"(\bvo_clip_(?:similarity|match)\s*\(\s*(?:[A-Za-z_\"][\w.\"]*\s*,\s*)?)'((?:[^']|'')*)'(?=\s*\))",
    re.IGNORECASE)
#: Placeholders no query has: a per-process nonce.
_PLACEHOLDER = f"vo_clip_query_text_{secrets.token_hex(8)}_"


def _translate_as_template(adql: str, limits: TapLimits,
                           dialect: SqlDialect) -> Translation | None:
    """The translation of ``adql`` from the cached one of its template, or None.

    A TAP client asking new questions sends the same query with a new text each time,
    and translating it anew (sqlglot parsing, qualifying, rewriting) took 6 ms of a
    60 ms similarity query. The template has each similarity text replaced by a
    placeholder (equal texts by the same one); its translation is cached, and the
    texts are put back into its similarity calls. The translator only strips and
    stores those texts, so the result is the query's own translation, provided every
    placeholder became a similarity text and none is anywhere else (in a comment,
    another literal, a column name). Otherwise, and for any error, None: the query is
    translated as it is, and so are its errors.
    """
    texts: dict[str, str] = {}

    def placeholder(match: re.Match) -> str:
        text = match.group(2).replace("''", "'").strip()
        if not text:
            return match.group(0)
        key = texts.setdefault(text, f"{_PLACEHOLDER}{len(texts)}")
        return f"{match.group(1)}'{key}'"

    template, count = _SIMILARITY_TEXT.subn(placeholder, adql)
    if not texts:
        return None
    try:
        translation = _translate_cached(template, limits, dialect)
    except (UsageFault, LimitFault):
        return None
    values = {key: text for text, key in texts.items()}
    similarities = [s for s in translation.similarities if s.kind in TEXT_KINDS
                    and s.argument in values]
    rest = repr((translation.compiled, translation.columns, translation.top,
                 translation.ranking,
                 [s for s in translation.similarities if s not in similarities]))
    if len(similarities) != count or _PLACEHOLDER in rest:
        return None
    return replace(translation, adql=adql, similarities=[
        replace(s, argument=values.get(s.argument, s.argument)) if s in similarities else s
        for s in translation.similarities])


# -- parsing ----------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _parse(adql: str, limits: TapLimits) -> exp.Select:
    dialect = ADQL()
    try:
        tokens = dialect.tokenize(adql)
        # a query's nodes are at least half its tokens: refuse before parsing what the
        # node limit would refuse after (parsing costs twice the tokenizing)
        if len(tokens) > 2 * limits.query_max_nodes:
            raise LimitFault(f"the QUERY has {len(tokens)} tokens, more than twice the "
                             f"limit (query_max_nodes) of {limits.query_max_nodes} nodes",
                             "split the query", limit="query_max_nodes", parameter="QUERY")
        statements = [s for s in dialect.parser().parse(tokens, adql) if s is not None]
    except ParseError as exc:
        raise UsageFault(f"ADQL syntax error: {_parse_message(exc)}", parameter="QUERY") from None
    except TokenError as exc:
        raise UsageFault(f"ADQL syntax error: {_ANSI.sub('', str(exc))}",
                         parameter="QUERY") from None
    if len(statements) != 1:
        raise UsageFault(f"the QUERY holds {len(statements)} statements; give exactly one "
                         "SELECT", parameter="QUERY")
    statement = statements[0]
    if isinstance(statement, (exp.Union, exp.Intersect, exp.Except)):
        raise UsageFault(f"{_describe(statement)} is not supported", "run the SELECTs "
                         "separately", parameter="QUERY")
    if not isinstance(statement, exp.Select):
        text = " ".join(adql.split())[:60]
        raise UsageFault(f"ADQL syntax error: expected a SELECT statement, not {text!r}",
                         parameter="QUERY")
    if not statement.expressions:
        raise UsageFault("ADQL syntax error: the SELECT names no columns",
                         "e.g. SELECT TOP 10 * FROM ivoa.ObsCore", parameter="QUERY")
    for node in list(statement.walk()):
        if isinstance(node, (exp.With, exp.Union, exp.Intersect, exp.Except)):
            raise UsageFault(f"{_describe(node)} is not supported", parameter="QUERY")
        if isinstance(node, exp.Floor):  # the one function sqlglot parses on its own
            arguments = [a for a in (node.this, node.args.get("decimals")) if a is not None]
            node.replace(exp.Anonymous(this="FLOOR", expressions=arguments))
    if any(t.token_type == TokenType.LIMIT for t in tokens):
        raise UsageFault("LIMIT is not ADQL", "use SELECT TOP n", parameter="QUERY")
    return statement


def _parse_message(exc: ParseError) -> str:
    if not exc.errors:
        return _ANSI.sub("", str(exc))
    error = exc.errors[0]
    near = (error.get("highlight") or "").strip()
    where = f"line {error.get('line')}, column {error.get('col')}"
    description = error.get("description") or "invalid syntax"
    return f"{description} at {where}" + (f" near {near!r}" if near else "")


def _kind(node: exp.Expression) -> str:
    return type(node).__name__.upper()


# -- size limits ------------------------------------------------------------------------

def _check_size(tree: exp.Expression, limits: TapLimits, *, expanded: bool) -> None:
    """Refuse a query too large or too deep to translate and run in reasonable time.

    Checked on the parsed tree, where ``*`` counts as the columns it will stand for
    (the qualifier's work grows with them), and again once they are expanded.
    """
    nodes, depth, stack = 0, 0, [(tree, 1)]
    while stack:
        node, level = stack.pop()
        nodes += 1
        depth = max(depth, level)
        if not expanded and isinstance(node, exp.Star):
            nodes += _star_columns(node)
        stack.extend((child, level + 1) for child in node.iter_expressions())
    if depth > limits.query_max_depth:
        raise LimitFault(f"the QUERY is nested {depth} levels deep; the limit "
                         f"(query_max_depth) is {limits.query_max_depth}",
                         "write long OR chains as IN lists, or split the query",
                         limit="query_max_depth", parameter="QUERY")
    if nodes > limits.query_max_nodes:
        raise LimitFault(f"the QUERY has {nodes} expression nodes; the limit "
                         f"(query_max_nodes) is {limits.query_max_nodes}",
                         "split the query, or select fewer columns",
                         limit="query_max_nodes", parameter="QUERY")


def _check_flattened_size(tree: exp.Select, limits: TapLimits) -> None:
    """Refuse a query whose derived tables multiply its size when SQLite flattens them.

    SQLite copies a derived table's column expression wherever the outer query uses
    the column: ``SELECT s||s||s||s AS s FROM (...)`` nested ten deep is 40 ADQL nodes
    per level but a million in SQLite (and hundreds of MB) once flattened.
    """
    nodes = _flattened_sizes(tree, {})[1]
    if nodes > limits.query_max_nodes:
        raise LimitFault(f"the QUERY becomes {nodes:,} expression nodes once its derived "
                         "tables are substituted where their columns are used; the limit "
                         f"(query_max_nodes) is {limits.query_max_nodes}",
                         "use each column of a derived table fewer times",
                         limit="query_max_nodes", parameter="QUERY")


def _flattened_sizes(select: exp.Expression, memo: dict) -> tuple[dict[str, int], int]:
    """The flattened size of each output column of ``select``, and of all of it."""
    if id(select) in memo:
        return memo[id(select)]
    derived: dict[str, dict[str, int]] = {}
    if isinstance(select, exp.Select):
        from_ = select.args.get("from_")
        sources = ([from_.this] if from_ else []) + [j.this for j in select.args.get("joins")
                                                     or []]
        for source in sources:
            if isinstance(source, exp.Subquery) and isinstance(source.this, exp.Select):
                derived[source.alias_or_name] = _flattened_sizes(source.this, memo)[0]

    def size(node: exp.Expression) -> int:
        total, stack = 0, [node]
        while stack:
            current = stack.pop()
            if isinstance(current, exp.Subquery) and current.parent_select is select \
                    and current.alias_or_name in derived:
                continue  # a derived table in FROM: counted where its columns are used
            if isinstance(current, exp.Column) and current.table in derived:
                total += derived[current.table].get(current.name, 1)
                continue
            if isinstance(current, exp.Select) and current is not node:
                total += _flattened_sizes(current, memo)[1]  # a subquery in an expression
                continue
            total += 1
            stack.extend(current.iter_expressions())
        return total

    columns = {}
    if isinstance(select, exp.Select):
        for item in select.expressions:
            columns[item.alias_or_name] = size(item.this if isinstance(item, exp.Alias)
                                               else item)
    memo[id(select)] = columns, size(select)
    return memo[id(select)]


def _star_columns(star: exp.Star) -> int:
    """About how many nodes the ``*`` becomes: three per column of the SELECT's tables."""
    select = star.find_ancestor(exp.Select)
    if select is None:
        return 0
    from_ = select.args.get("from_")
    sources = ([from_.this] if from_ else []) + [j.this for j in select.args.get("joins") or []]
    columns = sum(len(t.columns) for t in (_published(s) for s in sources
                                           if isinstance(s, exp.Table)) if t is not None)
    return 3 * (columns or 1)


def _check_similarities(similarities: list["Similarity"], limits: TapLimits) -> None:
    texts = {s.argument for s in similarities if s.kind in TEXT_KINDS}
    if len(texts) > limits.query_max_texts:
        raise LimitFault(f"the QUERY compares with {len(texts)} different texts; the limit "
                         f"(query_max_texts) is {limits.query_max_texts}",
                         "each text is embedded by the model: run several queries",
                         limit="query_max_texts", parameter="QUERY")
    if len(similarities) > limits.query_max_similarities:
        raise LimitFault(f"the QUERY has {len(similarities)} similarity calls; the limit "
                         f"(query_max_similarities) is {limits.query_max_similarities}",
                         "select a similarity once, with an alias, and refer to it",
                         limit="query_max_similarities", parameter="QUERY")


# -- names ------------------------------------------------------------------------------

_TABLES = {t.name.lower(): t for t in published_tables()}


def _published(table: exp.Table) -> TapTable | None:
    name = ".".join(p.name for p in table.parts)
    if all(not p.quoted for p in table.parts):
        return _TABLES.get(name.lower())
    return next((t for t in _TABLES.values() if t.name == name), None)


def _check_tables(tree: exp.Select) -> None:
    for table in tree.find_all(exp.Table):
        if not table.name:
            raise UsageFault("table-valued expressions in FROM are not supported",
                             parameter="QUERY")
        if _published(table) is None:
            name = ".".join(p.name for p in table.parts)
            known = ", ".join(t.name for t in published_tables())
            raise UsageFault(f"unknown table {name!r}", f"published tables: {known}",
                             parameter="QUERY")


def _schema_mapping() -> dict:
    mapping: dict = {}
    for table in published_tables():
        columns = {c.name: "TEXT" if c.datatype in ("char", "unicodeChar") else "DOUBLE"
                   for c in table.columns}
        mapping.setdefault(table.schema.lower(), {})[table.short_name.lower()] = columns
    return mapping


_SCHEMA = _schema_mapping()


def _qualify(tree: exp.Select) -> exp.Select:
    for table in tree.find_all(exp.Table):  # published names, case as the schema has it
        published = _published(table)
        table.set("this", exp.to_identifier(published.short_name.lower()))
        table.set("db", exp.to_identifier(published.schema.lower()))
    try:
        return qualify(tree, schema=_SCHEMA, dialect=ADQL, validate_qualify_columns=True,
                       quote_identifiers=True)
    except OptimizeError as exc:
        raise UsageFault(_resolve_message(str(exc)), parameter="QUERY") from None


def _resolve_message(text: str) -> str:
    found = re.match(r"Column '(.+?)' could not be resolved", text)
    if found:
        return f"unknown column {found.group(1)!r}"
    return f"cannot resolve the query's names: {_ANSI.sub('', text)}"


# -- the rewrite ------------------------------------------------------------------------

_SIMILARITY_ROW_COLUMNS = {"obs_publisher_did", "obs_id"}


class _Translator:
    """Rewrites one qualified query; remembers the similarity calls it met."""

    def __init__(self, dialect: SqlDialect):
        self.dialect = dialect
        self.similarities: list[Similarity] = []

    # The result columns ------------------------------------------------------------
    def output_columns(self, tree: exp.Select) -> list[OutputColumn]:
        tables = _sources(tree)
        columns, seen = [], set()
        for item in tree.expressions:
            inner = item.this if isinstance(item, exp.Alias) else item
            name = item.alias if isinstance(item, exp.Alias) else item.output_name
            if not name or name.startswith("_col_"):
                name = _expression_name(inner)
            name = _unique(name, seen)
            columns.append(OutputColumn(name, _metadata(inner, tables, name)))
        return columns

    # Node by node -----------------------------------------------------------------------
    def rewrite(self, tree: exp.Select) -> exp.Select:
        """Translate every node, children before parents."""
        for node in list(post_order(tree)):  # similarity slots follow the text
            if isinstance(node, exp.Anonymous):
                node.replace(self._function(node))
            elif isinstance(node, exp.ILike):
                node.replace(exp.Like(this=exp.Lower(this=node.this),
                                      expression=exp.Lower(this=node.expression)))
            elif isinstance(node, exp.Table):
                self._table(node)
        return tree

    def _table(self, table: exp.Table) -> None:
        published = _normalized(table)
        schema, name = self.dialect.relation(published)
        alias = table.alias_or_name
        table.set("this", exp.to_identifier(name, quoted=True))
        table.set("db", exp.to_identifier(schema, quoted=True) if schema else None)
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias, quoted=True)))

    def _function(self, node: exp.Anonymous) -> exp.Expression:
        name = node.name.upper()
        function = FUNCTIONS.get(name)
        offered = self.dialect.functions.adql(name)
        if function is None or offered is None:
            what = "ADQL geometry function" if name in _NOT_SUPPORTED else "function"
            raise UsageFault(f"{what} {node.name} is not supported by this service",
                             "see /tap/capabilities for the functions it implements",
                             parameter="QUERY")
        args = list(node.expressions)
        if not function.min_args <= len(args) <= function.max_args:
            raise UsageFault(f"{node.name} takes {_arity(function)} argument(s), "
                             f"not {len(args)}", parameter="QUERY")
        if function.kind == "similarity":
            return self._similarity(node, name, args)
        if function.kind == "geometry":
            return _geometry(name, args)
        if function.kind == "math" or name in _NUMERIC_AGGREGATES:
            _check_numeric(node, args, self.dialect)
        return exp.Anonymous(this=offered.sql, expressions=args)

    def _similarity(self, node, name, args) -> exp.Expression:
        kind = {"VO_CLIP_SIMILARITY": "text", "VO_CLIP_MATCH": "match"}.get(name, "observation")
        *row, argument = args
        if not (isinstance(argument, exp.Literal) and argument.is_string
                and argument.this.strip()):
            what = "an obs_id" if kind == "observation" else "a query text"
            raise UsageFault(f"{node.name}: the last argument must be {what} in quotes",
                             f"e.g. {node.name}('...')", parameter="QUERY")
        alias = self._bound_table(node, row[0] if row else None)
        value = argument.this.strip()
        if kind == "observation" and value.startswith("ivo://"):
            value = value.partition("?")[2] or value
        slot = len(self.similarities)
        self.similarities.append(Similarity(slot, kind, value))
        return exp.Anonymous(this="vo_clip_score", expressions=[
            exp.Literal.number(slot), exp.column("row_index", table=alias, quoted=True)])

    def _bound_table(self, node, row_argument) -> str:
        select = node.find_ancestor(exp.Select)
        embedded = [alias for alias, table in _sources(select, self.dialect).items()
                    if table.embedded]
        if row_argument is None:
            if not embedded:
                raise UsageFault(f"{node.name} needs ivoa.ObsCore or hst.observations in "
                                 "FROM", parameter="QUERY")
            return embedded[0]
        if (isinstance(row_argument, exp.Column)
                and row_argument.name.lower() in _SIMILARITY_ROW_COLUMNS
                and row_argument.table in embedded):
            return row_argument.table
        raise UsageFault(f"{node.name}: the first argument must be the obs_publisher_did "
                         "or obs_id column of ivoa.ObsCore or hst.observations",
                         parameter="QUERY")

    # Ranking ----------------------------------------------------------------------------
    def ranking(self, tree: exp.Select) -> Ranking | None:
        """The similarity the query is ordered by first, if the executor may restrict it."""
        order = tree.args.get("order")
        if not order or tree.args.get("group") or tree.args.get("having") or _aggregated(tree):
            return None
        first = order.expressions[0]
        key = _dereference(first.this, tree)
        if not (isinstance(key, exp.Anonymous) and key.name == "vo_clip_score"):
            return None
        slot, row = key.expressions
        source = tree.args["from_"].this
        if not isinstance(source, exp.Table) or row.table != source.alias_or_name:
            return None
        return Ranking(slot=int(slot.this), descending=bool(first.args.get("desc")),
                       alias=row.table)


_NUMERIC_AGGREGATES = {"SUM", "AVG"}
_TEXT_FUNCTIONS = {"upper", "lower"}


def _check_numeric(node: exp.Anonymous, args: list[exp.Expression],
                   dialect: SqlDialect) -> None:
    """ADQL's numeric functions take numbers: a string argument is the query's error."""
    for arg in args:
        if _is_text(arg, node.find_ancestor(exp.Select), dialect):
            text = arg.name if isinstance(arg, exp.Column) else arg.sql(dialect=ADQL)
            raise UsageFault(f"{node.name} takes numeric arguments; {text[:60]} is a "
                             "character string", parameter="QUERY")


def _is_text(node: exp.Expression, select: exp.Select | None, dialect: SqlDialect) -> bool:
    while isinstance(node, exp.Paren):
        node = node.this
    if isinstance(node, exp.Literal):
        return node.is_string
    if isinstance(node, (exp.DPipe, exp.Lower)):
        return True
    if isinstance(node, exp.Anonymous):
        return node.name.lower() in _TEXT_FUNCTIONS
    if isinstance(node, exp.Column) and select is not None:
        table = _sources(select, dialect).get(node.table)
        column = table.column(node.name) if table else None
        return column is not None and column.datatype in ("char", "unicodeChar")
    return False


def _arity(function: AdqlFunction) -> str:
    if function.min_args == function.max_args:
        return str(function.min_args)
    if function.max_args >= 999:
        return f"at least {function.min_args}"
    return f"{function.min_args} to {function.max_args}"


def _sources(select: exp.Select, dialect: SqlDialect | None = None) -> dict[str, TapTable]:
    """The published tables in a SELECT's FROM and JOINs, by alias."""
    tables = {}
    from_ = select.args.get("from_")
    nodes = [from_.this] if from_ else []
    nodes += [join.this for join in select.args.get("joins") or []]
    for node in nodes:
        if isinstance(node, exp.Table):
            published = _normalized(node) or (_by_relation(node, dialect) if dialect else None)
            if published is not None:
                tables[node.alias_or_name] = published
    return tables


def _normalized(table: exp.Table) -> TapTable | None:
    """A published table named in a qualified tree (names already checked, lower case)."""
    return _TABLES.get(".".join(p.name for p in table.parts).lower())


def _by_relation(table: exp.Table, dialect: SqlDialect) -> TapTable | None:
    """The published table a rewritten node reads (the dialect's relation name)."""
    parts = tuple(p.name for p in table.parts)
    return next((t for t in _TABLES.values()
                 if tuple(p for p in dialect.relation(t) if p) == parts), None)


def _dereference(key: exp.Expression, tree: exp.Select) -> exp.Expression:
    """An ORDER BY key that names a select-list alias, replaced by its expression."""
    if isinstance(key, exp.Column) and not key.table:
        for item in tree.expressions:
            if isinstance(item, exp.Alias) and item.alias == key.name:
                return item.this
    return key


def _aggregated(tree: exp.Select) -> bool:
    return any(isinstance(n, exp.Anonymous) and n.name.upper() in
               {name for name, f in FUNCTIONS.items() if f.kind == "aggregate"}
               for item in tree.expressions for n in item.walk())


# -- geometry ---------------------------------------------------------------------------

def _geometry(name: str, args: list[exp.Expression]) -> exp.Expression:
    if name in ("POINT", "CIRCLE", "BOX", "POLYGON"):
        args = _without_system(name, args)
        args = [part for arg in args for part in _point_parts(arg)]
    expected = {"POINT": (2,), "CIRCLE": (3,), "BOX": (4,)}.get(name)
    if expected and len(args) not in expected:
        raise UsageFault(f"{name} takes {expected[0]} numeric arguments after the "
                         f"coordinate system, not {len(args)}", parameter="QUERY")
    if name == "POLYGON" and (len(args) < 6 or len(args) % 2):
        raise UsageFault("POLYGON needs at least three vertices (pairs of coordinates)",
                         parameter="QUERY")
    if name == "DISTANCE":
        args = [part for arg in args for part in _point_parts(arg)]
        if len(args) == 4:
            return exp.Anonymous(this="vo_clip_angdist", expressions=args)
    return exp.Anonymous(this=FUNCTIONS[name].neutral, expressions=args)


def _without_system(name: str, args: list[exp.Expression]) -> list[exp.Expression]:
    if args and isinstance(args[0], exp.Literal) and args[0].is_string:
        system = args[0].this.strip().upper()
        if system not in _SYSTEMS and not system.startswith("ICRS"):
            raise UsageFault(f"{name}: coordinate system {args[0].this!r} is not supported",
                             "use 'ICRS' (or omit it)", parameter="QUERY")
        return args[1:]
    return args


def _point_parts(arg: exp.Expression) -> list[exp.Expression]:
    """A translated POINT argument as its two coordinates; anything else unchanged."""
    if isinstance(arg, exp.Anonymous) and arg.name == "vo_clip_point":
        return list(arg.expressions)
    return [arg]


# -- result metadata --------------------------------------------------------------------

_SIMILARITY_COLUMN = dict(datatype="double", ucd="stat.correlation",
                          description="Cosine similarity of the preview to the query")
_MATCH_COLUMN = dict(datatype="double", ucd="stat.probability",
                     description="Calibrated probability that the preview shows what the "
                                 "query describes")


def _expression_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return node.name.lower()
    if isinstance(node, exp.Column):
        return node.name
    return "expr"


def _unique(name: str, seen: set[str]) -> str:
    candidate, n = name, 1
    while candidate.lower() in seen:
        n += 1
        candidate = f"{name}_{n}"
    seen.add(candidate.lower())
    return candidate


def _metadata(node: exp.Expression, tables: dict[str, TapTable], name: str) -> TapColumn | None:
    if isinstance(node, exp.Column):
        table = tables.get(node.table)
        column = table.column(node.name) if table else None
        return _renamed(column, name) if column else None
    if isinstance(node, exp.Coalesce):  # a USING column
        return _metadata(node.this, tables, name)
    if isinstance(node, exp.Paren):
        return _metadata(node.this, tables, name)
    if isinstance(node, exp.Literal):
        return TapColumn(name, "char", arraysize="*") if node.is_string else None
    if isinstance(node, exp.DPipe):
        return TapColumn(name, "char", arraysize="*")
    if isinstance(node, exp.Anonymous):
        return _function_metadata(node, tables, name)
    return None


def _function_metadata(node: exp.Anonymous, tables, name: str) -> TapColumn | None:
    upper = node.name.upper()
    function = FUNCTIONS.get(upper)
    if function is None:
        return None
    if upper == "VO_CLIP_MATCH":
        return TapColumn(name, **_MATCH_COLUMN)
    if function.kind == "similarity":
        return TapColumn(name, **_SIMILARITY_COLUMN)
    if upper == "COUNT":
        return TapColumn(name, "long", ucd="meta.number")
    if upper in ("MIN", "MAX"):
        inner = _metadata(node.expressions[0], tables, name)
        return _renamed(inner, name) if inner else None
    if upper == "DISTANCE":
        return TapColumn(name, "double", unit="deg", ucd="pos.angDistance")
    if upper in ("CONTAINS", "INTERSECTS"):
        return TapColumn(name, "int")
    if function.kind == "string":
        return TapColumn(name, "char", arraysize="*")
    if function.kind == "geometry":
        raise UsageFault(f"selecting a {upper} value is not supported",
                         "select the coordinate columns instead", parameter="QUERY")
    return TapColumn(name, "double")


def _renamed(column: TapColumn, name: str) -> TapColumn:
    return replace(column, name=name)


# -- final checks -----------------------------------------------------------------------

_ALLOWED_NODES = (
    exp.Select, exp.From, exp.Join, exp.Where, exp.Group, exp.Having, exp.Order,
    exp.Ordered, exp.Column, exp.Identifier, exp.Star, exp.Table, exp.TableAlias,
    exp.Alias, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.Neg, exp.Not, exp.And,
    exp.Or, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In,
    exp.Between, exp.Like, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.DPipe,
    exp.Anonymous, exp.Distinct, exp.Subquery, exp.Exists, exp.Coalesce, exp.Lower,
    exp.Limit,
)

def _check_nodes(tree: exp.Select, dialect: SqlDialect) -> None:
    for node in tree.walk():
        if not isinstance(node, _ALLOWED_NODES):
            text = node.sql(dialect=ADQL)[:60]
            raise UsageFault(f"{_describe(node)} is not supported ({text!r})",
                             parameter="QUERY")
        if isinstance(node, exp.Anonymous) and not dialect.functions.allows(node.name):
            raise UsageFault(f"function {node.name} is not supported", parameter="QUERY")


def _describe(node: exp.Expression) -> str:
    names = {exp.Placeholder: "a '?' parameter", exp.Union: "UNION", exp.Intersect: "INTERSECT",
             exp.Except: "EXCEPT", exp.Cast: "CAST", exp.Case: "CASE", exp.Window: "a window",
             exp.With: "WITH", exp.Offset: "OFFSET"}
    return names.get(type(node), _kind(node).lower().replace("_", " "))


def _top(tree: exp.Select) -> int | None:
    limit = tree.args.get("limit")
    if limit is None:
        return None
    value = limit.expression
    if not (isinstance(value, exp.Literal) and not value.is_string and value.this.isdigit()):
        raise UsageFault("TOP takes a non-negative integer", parameter="QUERY")
    limit.pop()
    return int(value.this)
