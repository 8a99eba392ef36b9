"""Putting an index's catalog into PostgreSQL + pgsphere, or beside an existing ObsCore.

What vo_clip writes lives in one schema ``S`` (the ``postgres_schema`` setting) and
nowhere else:

* ``S.observations``: the index's SQLite catalog, row for row (``row_index`` is the
  embedding's row), plus a hidden ``vo_clip_region spoly`` made from ``s_region``;
* the published views (``S.vo_clip_obscore``, ``S.vo_clip_hst``) and the five
  TAP_SCHEMA tables (``S.tap_schema_*``: an operator's own ``tap_schema`` is never
  touched);
* vo_clip's SQL functions (:func:`~.postgres_sql.install_statements`) and the
  key/value table ``S.vo_clip_catalog`` saying what was loaded, from which index;
* two roles (cluster-wide, NOLOGIN): ``S_reader``, which every query runs as
  (``SET LOCAL ROLE``) and may read only the published views and TAP_SCHEMA, and
  ``S_service``, a member of it that may also read ``S.observations`` for the
  service's own fixed lookups. A service's login role is granted ``S_service``.

**Attach mode** (``obscore=`` an operator's ``ivoa.obscore``, s_region an ``spoly``):
their table is neither copied nor changed; ``S.vo_clip_obscore`` becomes a view over it
joined to ``S.observations`` on a key column (default ``obs_id``), so only observations
vo_clip has embeddings for are served, with the operator's values as they are (their
``obs_publisher_did`` and ``access_url`` included) and ``s_region`` as STC-S text.

A load is built in a staging schema and swapped in with one short transaction (drop
the old schema, rename the new one), so a reader sees the old catalog or the new one,
never half of either; a failed load leaves the old catalog serving. Rows travel by
COPY, not INSERTs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ... import __version__
from ...errors import VoClipError
from .postgres_sql import PostgresDialect, install_statements

__all__ = ["LoadResult", "PostgresSetupError", "connect", "load_catalog", "quote_ident",
           "read_catalog_table", "reader_role", "service_role"]

log = logging.getLogger(__name__)

#: The comment marking a schema as vo_clip's: only such a schema is ever dropped.
MARK = "vo_clip catalog (managed by 'vo-clip postgres load'; replaced on each load)"
CATALOG_TABLE = "vo_clip_catalog"
REGION_COLUMN = "vo_clip_region"
HIDDEN_REGION = "vo_clip_s_region"
PGSPHERE_HINT = ("install pgsphere (Debian: apt-get install postgresql-15-pgsphere), then "
                 "as a superuser in that database: CREATE EXTENSION pg_sphere")

_PG_TYPES = {"TEXT": "text", "INTEGER": "bigint", "REAL": "double precision"}
_DATATYPE_PG = {"char": "text", "unicodeChar": "text", "short": "bigint", "int": "bigint",
                "long": "bigint", "boolean": "bigint", "float": "double precision",
                "double": "double precision"}
_BTREE = ("s_dec", "t_min", "proposal_id")
_MAX_BAD_REGIONS = 100
_SWAP_LOCK_TIMEOUT = "60s"


class PostgresSetupError(VoClipError):
    """The database cannot be loaded or served as asked (the message says why)."""


@dataclass
class LoadResult:
    """What a load did: for the CLI's summary and the tests."""

    schema: str
    mode: str
    rows: int
    seconds: float
    reader_role: str
    service_role: str
    obscore: str | None = None
    served_rows: int | None = None
    warnings: list[str] = field(default_factory=list)
    #: Seconds spent per stage (copy, index, views, analyze, swap).
    timings: dict[str, float] = field(default_factory=dict)


def quote_ident(name: str) -> str:
    """A PostgreSQL delimited identifier."""
    return '"' + name.replace('"', '""') + '"'


def reader_role(schema: str) -> str:
    """The role queries run as."""
    return f"{schema}_reader"


def service_role(schema: str) -> str:
    """The role a service's login role is granted (reader + the fixed lookups)."""
    return f"{schema}_service"


def jobs_schema(schema: str) -> str:
    """The schema of the async jobs served with the catalog in ``schema``: its own, so
    that a reload, which replaces ``schema``, never touches them."""
    return f"{schema}_uws"


def _jobs_schema(conn, schema: str, service: str) -> None:
    """The jobs' schema, made once; the service role creates its tables there."""
    jobs = quote_ident(jobs_schema(schema))
    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {jobs}")
    conn.execute(f"GRANT USAGE, CREATE ON SCHEMA {jobs} TO {quote_ident(service)}")


def connect(dsn: str, **kwargs):
    """A psycopg connection, or a one-line error saying why there is none.

    Raises
    ------
    PostgresSetupError
        If psycopg is missing or the server cannot be reached or refuses the login.
    """
    try:
        import psycopg
    except ImportError:
        raise PostgresSetupError("the PostgreSQL backend needs psycopg 3",
                                 hint="pip install 'vo_clip[postgres]'") from None
    try:
        return psycopg.connect(dsn, connect_timeout=kwargs.pop("connect_timeout", 10),
                               **kwargs)
    except psycopg.Error as exc:
        raise PostgresSetupError(f"cannot connect to PostgreSQL ({_redacted(dsn)}): "
                                 f"{_first_line(exc)}",
                                 hint="check the DSN, that the server runs, and that the "
                                      "role may log in") from None


def _redacted(dsn: str) -> str:
    return re.sub(r"(password\s*=\s*)\S+|(://[^:/@]+:)[^@]+@", lambda m: (
        m.group(1) + "***") if m.group(1) else m.group(2) + "***@", dsn)


def _first_line(exc: BaseException) -> str:
    diag = getattr(exc, "diag", None)
    text = (diag.message_primary if diag is not None and diag.message_primary else
            str(exc)).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# -- the public entry point --------------------------------------------------------------

def load_catalog(dsn: str, catalog_path: str | Path, *, tables: Sequence,
                 tap_schema_rows: Mapping[str, list[tuple]], schema: str = "vo_clip",
                 obscore: str | None = None, key: str = "obs_id",
                 grant: Iterable[str] = (), identity: Mapping[str, object] | None = None,
                 progress: bool = True) -> LoadResult:
    """Load (or reload) the catalog at ``catalog_path`` into ``schema``; attach to
    ``obscore`` when given.

    Parameters
    ----------
    dsn : str
        A role that may create schemas (and, the first time, roles) in the database.
    catalog_path : path
        The index's SQLite catalog (``catalog.sqlite``).
    tables, tap_schema_rows
        The published TapTables and their TAP_SCHEMA rows by short name (the TAP layer's
        :func:`~vo_clip.vo.schema.published_tables` and
        :func:`~vo_clip.vo.tap_schema.tap_schema_rows`).
    obscore : str, optional
        ``schema.table`` of an existing ObsCore table or view to serve instead of the
        catalog's ObsCore columns.
    key : str
        The column joining ``obscore`` to the catalog (same name on both sides).
    grant : iterable of str
        Login roles to grant ``S_service`` (the service connects as one of them).
    identity : mapping, optional
        What the index is (count, model fingerprint, path), kept in ``S.vo_clip_catalog``.

    Raises
    ------
    PostgresSetupError
        If pgsphere is missing, the schema is someone else's, a privilege is missing,
        or the ObsCore to attach to is unusable.
    """
    import psycopg

    started = time.monotonic()
    _check_identifier(schema, "schema")
    staging = f"{schema}__loading"
    catalog_path = Path(catalog_path)
    warnings: list[str] = []
    timings: dict[str, float] = {}
    clock = [time.monotonic()]

    def lap(stage: str) -> None:
        now = time.monotonic()
        timings[stage] = round(now - clock[0], 3)
        clock[0] = now

    with connect(dsn, autocommit=True) as conn:
        try:
            pgsphere = _pgsphere_schema(conn)
            _check_ours(conn, schema)
            _check_ours(conn, staging)
            reader, service = reader_role(schema), service_role(schema)
            _ensure_roles(conn, reader, service, grant)
            their = _their_columns(conn, obscore) if obscore else None
            with conn.transaction():
                conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(staging)} CASCADE")
                conn.execute(f"CREATE SCHEMA {quote_ident(staging)}")
                conn.execute(f"COMMENT ON SCHEMA {quote_ident(staging)} IS "
                             f"{_literal(MARK)}")
                conn.execute(f"SET LOCAL search_path = {quote_ident(staging)}, "
                             f"{quote_ident(pgsphere)}")
                for statement in install_statements(staging):
                    conn.execute(statement)
                lap("prepare")
                columns, rows, digest = _copy_catalog(conn, staging, catalog_path,
                                                      warnings, progress)
                lap("copy")
                _index_observations(conn, staging, columns)
                lap("index")
                dialect = PostgresDialect(schema=staging)
                served = None
                for table in tables:
                    if table.embedded:
                        obscore_view = their is not None and _has_region(table)
                        conn.execute(_attached_view(table, dialect, obscore, their, key,
                                                    warnings) if obscore_view
                                     else _native_view(table, dialect))
                    else:
                        _tap_schema_table(conn, table, dialect,
                                          tap_schema_rows[table.short_name])
                if their is not None:
                    served = _attach_report(conn, staging, obscore, key, rows, warnings)
                _catalog_table(conn, staging, {
                    "mode": "attach" if obscore else "native", "rows": rows,
                    "served_rows": rows if served is None else served,
                    "obscore": obscore, "key": key if obscore else None,
                    "columns": columns, "obs_ids_sha256": digest,
                    "reader_role": reader, "service_role": service,
                    "pgsphere_schema": pgsphere, "vo_clip_version": __version__,
                    "loaded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "catalog": str(catalog_path.resolve()), **(identity or {})})
                _grant(conn, staging, tables, dialect, reader, service)
                lap("views")
                conn.execute(f"ANALYZE {quote_ident(staging)}.observations")
                lap("analyze")
            lap("commit")
            _swap(conn, staging, schema, [PostgresDialect(schema=schema).relation(t)[1]
                                          for t in tables if t.embedded])
            lap("swap")
            _jobs_schema(conn, schema, service)
        except psycopg.errors.InsufficientPrivilege as exc:
            raise PostgresSetupError(f"permission denied: {_first_line(exc)}",
                                     hint="load as the database owner or a role with "
                                          "CREATE on the database and CREATEROLE") from None
        except psycopg.OperationalError as exc:
            raise PostgresSetupError(f"the connection to PostgreSQL failed during the load: "
                                     f"{_first_line(exc)}; the previous catalog, if any, "
                                     "still serves") from None
    for warning in warnings:
        log.warning("%s", warning)
    return LoadResult(schema=schema, mode="attach" if obscore else "native", rows=rows,
                      seconds=time.monotonic() - started, reader_role=reader,
                      service_role=service, obscore=obscore,
                      served_rows=rows if served is None else served, warnings=warnings,
                      timings=timings)


# -- checks --------------------------------------------------------------------------------

def _check_identifier(name: str, what: str) -> None:
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,40}", name):
        raise PostgresSetupError(f"the {what} name {name!r} is not a plain lower-case "
                                 "PostgreSQL identifier of at most 41 characters")


def _pgsphere_schema(conn) -> str:
    """The schema pg_sphere is installed in, creating the extension when allowed."""
    import psycopg

    found = conn.execute("SELECT extnamespace::regnamespace::text FROM pg_extension "
                         "WHERE extname = 'pg_sphere'").fetchone()
    if found:
        conn.commit()
        return found[0].strip('"')
    try:
        with conn.transaction():
            conn.execute("CREATE EXTENSION pg_sphere")
    except psycopg.errors.InsufficientPrivilege:
        raise PostgresSetupError("pgsphere is not created in this database, and this role "
                                 "may not create it", hint=PGSPHERE_HINT) from None
    except psycopg.Error as exc:
        raise PostgresSetupError(f"pgsphere is not installed on the server "
                                 f"({_first_line(exc)})", hint=PGSPHERE_HINT) from None
    return _pgsphere_schema(conn)


def _check_ours(conn, schema: str) -> None:
    """Refuse to replace a schema vo_clip did not make (unless it is empty)."""
    row = conn.execute(
        "SELECT obj_description(n.oid, 'pg_namespace'), "
        "(SELECT count(*) FROM pg_class c WHERE c.relnamespace = n.oid) "
        "FROM pg_namespace n WHERE nspname = %s", (schema,)).fetchone()
    conn.commit()
    if row and row[0] != MARK and row[1]:
        raise PostgresSetupError(
            f"schema {schema} exists and is not vo_clip's (it holds {row[1]} relations)",
            hint="choose another schema with --schema (the postgres_schema setting)")


def _ensure_roles(conn, reader: str, service: str, grant: Iterable[str]) -> None:
    with conn.transaction():
        for role in (reader, service):
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s",
                                  (role,)).fetchone()
            if not exists:
                conn.execute(f"CREATE ROLE {quote_ident(role)} NOLOGIN")
        conn.execute(f"GRANT {quote_ident(reader)} TO {quote_ident(service)}")
        for login in grant:
            conn.execute(f"GRANT {quote_ident(service)} TO {quote_ident(login)}")


# -- the catalog's rows --------------------------------------------------------------------

def _copy_catalog(conn, staging: str, path: Path, warnings: list[str],
                  progress: bool) -> tuple[list[str], int, str]:
    """COPY the SQLite catalog into ``staging.observations``; (columns, rows, digest)."""
    import psycopg

    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        info = source.execute("PRAGMA table_info(observations)").fetchall()
    except sqlite3.Error as exc:
        raise PostgresSetupError(f"cannot read the catalog {path}: {exc}") from None
    if not info or info[0][1] != "row_index":
        raise PostgresSetupError(f"{path} is not a vo_clip catalog (no observations table)")
    columns = [row[1] for row in info[1:]]
    types = [_PG_TYPES.get((row[2] or "").upper(), "text") for row in info[1:]]
    total = source.execute("SELECT count(*) FROM observations").fetchone()[0]
    table = f"{quote_ident(staging)}.observations"
    definition = ", ".join(f"{quote_ident(c)} {t}" for c, t in zip(columns, types))
    conn.execute(f"CREATE TABLE {table} (row_index bigint PRIMARY KEY, {definition}, "
                 f"{REGION_COLUMN} spoly)")
    region_at = columns.index("s_region") + 1 if "s_region" in columns else None
    obs_at = columns.index("obs_id") + 1
    names = ", ".join(["row_index", *map(quote_ident, columns), REGION_COLUMN])
    refused: dict[int, str] = {}  # rows whose polygon pgsphere refused, and why
    counts = {"not_polygon": 0, "invalid": 0}
    for _attempt in range(_MAX_BAD_REGIONS + 1):
        counts.update(not_polygon=0, invalid=0)
        digest = hashlib.sha256()
        try:
            with conn.transaction(), conn.cursor() as cursor, \
                    cursor.copy(f"COPY {table} ({names}) FROM STDIN") as copy, \
                    _bar(total, progress) as bar:
                reader = source.execute("SELECT * FROM observations ORDER BY row_index")
                while True:
                    chunk = reader.fetchmany(5000)
                    if not chunk:
                        break
                    for row in chunk:
                        region = None
                        if region_at is not None and row[0] not in refused:
                            region = _spoly_literal(row[region_at], counts)
                        copy.write_row((*row, region))
                        digest.update(f"{row[obs_at]}\n".encode())
                    bar.update(len(chunk))
            break
        except (psycopg.errors.DataError, psycopg.errors.InternalError) as exc:
            line = _copy_line(exc)
            if line is None or REGION_COLUMN not in (exc.diag.context or ""):
                raise PostgresSetupError(f"the catalog cannot be copied into PostgreSQL: "
                                         f"{_first_line(exc)} ({exc.diag.context or ''})"
                                         .strip()) from None
            bad = source.execute("SELECT row_index FROM observations ORDER BY row_index "
                                 "LIMIT 1 OFFSET ?", (line - 1,)).fetchone()[0]
            refused[bad] = _first_line(exc)
    else:
        raise PostgresSetupError(f"pgsphere refused more than {_MAX_BAD_REGIONS} s_region "
                                 "polygons of the catalog")
    source.close()
    if refused:
        first = next(iter(refused.items()))
        warnings.append(f"pgsphere refused the s_region polygon of {len(refused)} rows "
                        f"(row_index {first[0]}: {first[1]}); their region is NULL, so "
                        "geometry on s_region skips them")
    if counts["not_polygon"]:
        warnings.append(f"{counts['not_polygon']} s_region values are not polygons "
                        "(Position or Circle): pgsphere stores polygons only, so geometry "
                        "on s_region skips them")
    if counts["invalid"]:
        warnings.append(f"{counts['invalid']} s_region values are not valid STC-S; their "
                        "region is NULL")
    return columns, total, digest.hexdigest()


def _bar(total: int, progress: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="copying", unit="row", disable=not progress,
                mininterval=1.0)


def _copy_line(exc) -> int | None:
    found = re.search(r"line (\d+)", exc.diag.context or "")
    return int(found.group(1)) if found else None


def _spoly_literal(text: str | None, counts: dict) -> str | None:
    """The pgsphere literal of an STC-S polygon or box (degrees), None otherwise."""
    if not text:
        return None
    region_module = _geometry()
    try:
        region = region_module.parse_region(text)
    except (region_module.GeometryError, ValueError):
        counts["invalid"] += 1
        return None
    polygon = getattr(region, "polygon", region)  # a Box as its polygon
    vertices = getattr(polygon, "vertices", None)
    if vertices is None:
        counts["not_polygon"] += 1
        return None
    return "{" + ",".join(f"({ra!r}d , {dec!r}d)" for ra, dec in vertices) + "}"


def _geometry():
    """vo_clip's STC-S parser, wherever it lives (one place to change)."""
    try:
        from .. import geometry  # type: ignore[attr-defined]
    except ImportError:
        from ...vo import geometry
    return geometry


def _index_observations(conn, staging: str, columns: list[str]) -> None:
    table = f"{quote_ident(staging)}.observations"
    conn.execute(f"CREATE UNIQUE INDEX ON {table} (obs_id)")
    for column in _BTREE:
        if column in columns:
            conn.execute(f"CREATE INDEX ON {table} ({quote_ident(column)})")
    if "instrument_name" in columns:
        conn.execute(f"CREATE INDEX ON {table} (instrument_name text_pattern_ops)")
    if {"s_ra", "s_dec"} <= set(columns):
        conn.execute(f"CREATE INDEX ON {table} USING gist "
                     "(spoint(radians(s_ra), radians(s_dec)))")
    conn.execute(f"CREATE INDEX ON {table} USING gist ({REGION_COLUMN})")


# -- the published relations --------------------------------------------------------------

def _has_region(table) -> bool:
    return table.column("s_region") is not None


def _native_view(table, dialect: PostgresDialect) -> str:
    """The SQLite backend's view of ``table``, over ``S.observations``."""
    schema, name = dialect.relation(table)
    columns = [f'{c.sql} AS {quote_ident(c.name)}' for c in table.columns]
    if _has_region(table):
        columns.append(f"{REGION_COLUMN} AS {HIDDEN_REGION}")
    return (f"CREATE VIEW {quote_ident(schema)}.{quote_ident(name)} AS SELECT row_index, "
            f"{', '.join(columns)} FROM {quote_ident(schema)}.observations")


def _their_columns(conn, obscore: str) -> dict[str, str]:
    """Column name -> type of the operator's ObsCore relation."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*", obscore):
        raise PostgresSetupError(f"--obscore {obscore!r} is not schema.table")
    rows = conn.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
        "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum", (obscore,)).fetchall()
    conn.commit()
    if not rows:
        raise PostgresSetupError(f"no table or view {obscore} in this database (or this "
                                 "role cannot see it)")
    return dict(rows)


def _attached_view(table, dialect: PostgresDialect, obscore: str, their: dict[str, str],
                   key: str, warnings: list[str]) -> str:
    """``table`` (vo_clip's ObsCore) over the operator's relation, joined on ``key``."""
    schema, name = dialect.relation(table)
    if key not in their:
        raise PostgresSetupError(f"{obscore} has no column {key} to join on",
                                 hint="name the key column with --key")
    region_type = their.get("s_region")
    if region_type not in (None, "spoly"):
        raise PostgresSetupError(f"{obscore}.s_region is {region_type}, not a pgsphere "
                                 "spoly", hint="attach to an ObsCore laid out as DaCHS's")
    missing, columns = [], []
    for column in table.columns:
        pg_type = _DATATYPE_PG.get(column.datatype, "text")
        if column.name not in their:
            missing.append(column.name)
            columns.append(f"NULL::{pg_type} AS {quote_ident(column.name)}")
        elif column.name == "s_region":
            columns.append(f"{quote_ident(schema)}.vo_clip_stcs(o.s_region) AS s_region")
        else:
            columns.append(f"o.{quote_ident(column.name)}::{pg_type} AS "
                           f"{quote_ident(column.name)}")
    columns.append(f"o.s_region AS {HIDDEN_REGION}" if region_type
                   else f"NULL::spoly AS {HIDDEN_REGION}")
    if missing:
        warnings.append(f"{obscore} lacks the ObsCore columns {', '.join(missing)}: "
                        "vo_clip serves them as NULL")
    relation = ".".join(quote_ident(part) for part in obscore.split("."))
    return (f"CREATE VIEW {quote_ident(schema)}.{quote_ident(name)} AS SELECT x.row_index, "
            f"{', '.join(columns)} FROM {relation} AS o JOIN {quote_ident(schema)}"
            f".observations AS x ON x.{quote_ident(key)} = o.{quote_ident(key)}")


def _attach_report(conn, staging: str, obscore: str, key: str, rows: int,
                   warnings: list[str]) -> int:
    relation = ".".join(quote_ident(part) for part in obscore.split("."))
    theirs, distinct = conn.execute(
        f"SELECT count(*), count(DISTINCT {quote_ident(key)}) FROM {relation}").fetchone()
    served = conn.execute(f"SELECT count(*) FROM {quote_ident(staging)}.vo_clip_obscore"
                          ).fetchone()[0]
    if distinct < theirs:
        warnings.append(f"{key} is not unique in {obscore} ({theirs - distinct} repeats): "
                        "an index row is served once per matching row")
    if served < theirs:
        warnings.append(f"{theirs - served} of the {theirs} rows of {obscore} have no "
                        f"embedding in the index (no matching {key}) and are not served")
    if served < rows:
        warnings.append(f"{rows - served} of the index's {rows} observations are not in "
                        f"{obscore} and are not served")
    return served


def _tap_schema_table(conn, table, dialect: PostgresDialect, rows: list[tuple]) -> None:
    schema, name = dialect.relation(table)
    relation = f"{quote_ident(schema)}.{quote_ident(name)}"
    columns = ", ".join(
        f"{quote_ident(c.name)} {_DATATYPE_PG[c.datatype]}{'' if c.nullable else ' NOT NULL'}"
        for c in table.columns)
    conn.execute(f"CREATE TABLE {relation} ({columns})")
    names = ", ".join(quote_ident(c.name) for c in table.columns)
    with conn.cursor() as cursor, cursor.copy(f"COPY {relation} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


def _catalog_table(conn, staging: str, values: Mapping[str, object]) -> None:
    relation = f"{quote_ident(staging)}.{CATALOG_TABLE}"
    conn.execute(f"CREATE TABLE {relation} (key text PRIMARY KEY, value jsonb NOT NULL)")
    with conn.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {relation} VALUES (%s, %s::jsonb)",
                           [(k, json.dumps(v, default=str)) for k, v in values.items()])


def _grant(conn, staging: str, tables: Sequence, dialect: PostgresDialect, reader: str,
           service: str) -> None:
    schema = quote_ident(staging)
    conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC")
    conn.execute(f"GRANT USAGE ON SCHEMA {schema} TO {quote_ident(reader)}")
    published = ", ".join(f"{schema}.{quote_ident(dialect.relation(t)[1])}" for t in tables)
    conn.execute(f"GRANT SELECT ON {published} TO {quote_ident(reader)}")
    conn.execute(f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {schema} TO {quote_ident(reader)}")
    conn.execute(f"GRANT SELECT ON {schema}.observations, {schema}.{CATALOG_TABLE} TO "
                 f"{quote_ident(service)}")


def _swap(conn, staging: str, schema: str, views: Sequence[str]) -> None:
    """The new schema in place of the old, in one short transaction.

    The old relations are locked first in the order a query locks them (a view, then
    the table under it), so that a query running during the swap waits for it, then
    reads the new catalog, instead of deadlocking with the DROP.
    """
    import psycopg

    for attempt in range(3):
        try:
            with conn.transaction():
                conn.execute(f"SET LOCAL lock_timeout = '{_SWAP_LOCK_TIMEOUT}'")
                _lock_old(conn, schema, views)
                conn.execute(f"DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE")
                conn.execute(f"ALTER SCHEMA {quote_ident(staging)} RENAME TO "
                             f"{quote_ident(schema)}")
                pgsphere = conn.execute(
                    f"SELECT value #>> '{{}}' FROM {quote_ident(schema)}.{CATALOG_TABLE} "
                    "WHERE key = 'pgsphere_schema'").fetchone()[0]
                conn.execute(f"SET LOCAL search_path = {quote_ident(schema)}, "
                             f"{quote_ident(pgsphere)}")
                for statement in install_statements(schema):  # bodies name the schema
                    conn.execute(statement)
            return
        except psycopg.errors.DeadlockDetected:
            if attempt == 2:
                raise
            time.sleep(0.5)
        except psycopg.errors.LockNotAvailable:
            raise PostgresSetupError(
                f"a query held schema {schema} for more than {_SWAP_LOCK_TIMEOUT}: the new "
                f"catalog is ready in {staging} but not swapped in",
                hint="run the load again when the long query has ended") from None


def _lock_old(conn, schema: str, views: Sequence[str]) -> None:
    present = [r[0] for r in conn.execute(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'v') ORDER BY c.relkind DESC, c.relname",
        (schema,))]
    ordered = [v for v in views if v in present] + [r for r in present if r not in views]
    if ordered:
        names = ", ".join(f"{quote_ident(schema)}.{quote_ident(r)}" for r in ordered)
        conn.execute(f"LOCK TABLE {names} IN ACCESS EXCLUSIVE MODE")


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_catalog_table(conn, schema: str) -> dict[str, object]:
    """``S.vo_clip_catalog`` as a dict (empty when the schema holds no catalog)."""
    import psycopg

    try:
        rows = conn.execute(f"SELECT key, value FROM {quote_ident(schema)}.{CATALOG_TABLE}"
                            ).fetchall()
    except psycopg.errors.UndefinedTable:
        conn.rollback()
        return {}
    return dict(rows)
