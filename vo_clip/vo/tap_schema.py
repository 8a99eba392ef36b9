"""TAP_SCHEMA, the service's self-description as queryable tables (TAP 1.1 §4).

TAP 1.1 §4 requires the published tables to be described by five tables, ``schemas``,
``tables``, ``columns``, ``keys`` and ``key_columns``, that ADQL can query like any other
(TOPCAT reads them; taplint's TMS stage checks them and its TMC stage compares them
with VOSI /tables). Their rows, and their own columns, derive from the
:class:`~vo_clip.vo.schema.TapTable` definitions in :mod:`vo_clip.vo.schema`, which also
drive VOSI /tables (:mod:`vo_clip.vo.vosi`), so the two descriptions cannot disagree.

Column names that are ADQL reserved words (TAP_SCHEMA.columns' own ``size``) are
published delimited, ``"size"``, here and in /tables: taplint reports an undelimited one
(E-CRSV in TME and TMS) and compares the declared ``"size"`` with a result's ``size``
after unquoting, as TOPCAT does. :func:`adql_column_name` does this for both.

The tables are written into an SQLite database ATTACHed to the catalog's connection under
the name ``tap_schema``: the ADQL translator resolves ``TAP_SCHEMA.<name>`` through
``TapTable.sql_name`` to ``tap_schema.<name>`` (SQLite schema names ignore case).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from .schema import SCHEMA_DESCRIPTIONS, TAP_SCHEMA_TABLES, TapTable

__all__ = ["ADQL_RESERVED", "adql_column_name", "build_tap_schema", "tap_schema_rows"]

_RESERVED_WORDS = """
    ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION
    AVG BEGIN BETWEEN BIT BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR
    CHARACTER CHARACTER_LENGTH CHAR_LENGTH CHECK CLOSE COALESCE COLLATE COLLATION COLUMN
    COMMIT CONNECT CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING COUNT
    CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR
    DATE DAY DEALLOCATE DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE
    DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN DOUBLE DROP ELSE END END-EXEC ESCAPE
    EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT FOR
    FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY IMMEDIATE
    IN INDICATOR INITIALLY INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL
    INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT LEVEL LIKE LOCAL LOWER MATCH MAX
    MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF NUMERIC
    OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT OVERLAPS PAD PARTIAL
    POSITION PRECISION PREPARE PRESERVE PRIMARY PRIOR PRIVILEGES PROCEDURE PUBLIC READ
    REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS SCHEMA SCROLL SECOND
    SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR
    SQLSTATE SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR
    TIMEZONE_MINUTE TO TRAILING TRANSACTION TRANSLATE TRANSLATION TRIM TRUE UNION UNIQUE
    UNKNOWN UPDATE UPPER USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW WHEN WHENEVER
    WHERE WITH WORK WRITE YEAR ZONE
    ABS ACOS ASIN ATAN ATAN2 CEILING COS DEGREES EXP FLOOR LOG LOG10 MOD PI POWER RADIANS
    RAND ROUND SIN SQRT TAN TOP TRUNCATE
    AREA BOX CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS DISTANCE INTERSECTS POINT
    POLYGON REGION
"""

#: ADQL 2.0 §2.1.2 reserved words: SQL-92's, then ADQL's functions and geometry.
ADQL_RESERVED = frozenset(_RESERVED_WORDS.split())

def adql_column_name(name: str) -> str:
    """``name`` as metadata publishes it: delimited (``"size"``) if it is ADQL-reserved.

    Parameters
    ----------
    name : str
        A column name as :mod:`vo_clip.vo.schema` defines it.

    Returns
    -------
    str
        The name for TAP_SCHEMA.columns.column_name and VOSI /tables.
    """
    return f'"{name}"' if name.upper() in ADQL_RESERVED else name


def _definition(name: str) -> TapTable:
    """The TapTable describing ``TAP_SCHEMA.<name>``."""
    return next(t for t in TAP_SCHEMA_TABLES if t.short_name == name)


def _row(name: str, **values) -> tuple:
    """``values`` in the column order of ``TAP_SCHEMA.<name>``; every column must be given."""
    columns = [c.name for c in _definition(name).columns]
    if set(values) != set(columns):
        raise ValueError(f"TAP_SCHEMA.{name} row has {sorted(values)}, expected {columns}")
    return tuple(values[c] for c in columns)


def _flag(value: bool) -> int:
    return 1 if value else 0


def _schema_rows(tables: tuple[TapTable, ...]) -> list[tuple]:
    schemas = list(dict.fromkeys(t.schema for t in tables))
    return [_row("schemas", schema_name=s, utype=None,
                 description=SCHEMA_DESCRIPTIONS.get(s), schema_index=i)
            for i, s in enumerate(schemas, 1)]


def _table_rows(tables: tuple[TapTable, ...]) -> list[tuple]:
    return [_row("tables", schema_name=t.schema, table_name=t.name, table_type=t.table_type,
                 utype=t.utype, description=t.description, table_index=i)
            for i, t in enumerate(tables, 1)]


def _column_rows(tables: tuple[TapTable, ...]) -> list[tuple]:
    rows = []
    for table in tables:
        for i, c in enumerate(table.columns, 1):
            rows.append(_row(
                "columns", table_name=table.name, column_name=adql_column_name(c.name),
                datatype=c.datatype,
                arraysize=c.arraysize, xtype=c.xtype, size=c.size,
                description=c.description, utype=c.utype, unit=c.unit, ucd=c.ucd,
                indexed=_flag(c.indexed), principal=_flag(c.principal), std=_flag(c.std),
                column_index=i))
    return rows


def _key_rows(tables: tuple[TapTable, ...]) -> tuple[list[tuple], list[tuple]]:
    names = {t.name for t in tables}
    keys, key_columns = [], []
    for table in tables:
        for key in table.keys:
            if key.target_table not in names:
                raise ValueError(f"key {key.key_id} of {table.name} targets "
                                 f"unpublished table {key.target_table}")
            keys.append(_row("keys", key_id=key.key_id, from_table=table.name,
                             target_table=key.target_table, description=key.description,
                             utype=None))
            key_columns.extend(
                _row("key_columns", key_id=key.key_id, from_column=adql_column_name(f),
                     target_column=adql_column_name(t))
                for f, t in zip(key.from_columns, key.target_columns, strict=True))
    return keys, key_columns


def tap_schema_rows(tables: Iterable[TapTable]) -> dict[str, list[tuple]]:
    """The rows of the five TAP_SCHEMA tables describing ``tables``.

    Parameters
    ----------
    tables : iterable of TapTable
        The published tables in display order, normally
        :func:`vo_clip.vo.schema.published_tables`, which includes TAP_SCHEMA itself.

    Returns
    -------
    dict of str to list of tuple
        Keyed ``schemas``, ``tables``, ``columns``, ``keys`` and ``key_columns``; each row
        follows the column order of that table's TapTable definition. ``schema_index``,
        ``table_index`` and ``column_index`` count display order from 1; flags are ints 0
        or 1; ``arraysize`` is NULL for scalars and ``size`` is ``TapColumn.size``.

    Raises
    ------
    ValueError
        When a foreign key targets a table that is not among ``tables``.
    """
    tables = tuple(tables)
    keys, key_columns = _key_rows(tables)
    return {"schemas": _schema_rows(tables), "tables": _table_rows(tables),
            "columns": _column_rows(tables), "keys": keys, "key_columns": key_columns}


def build_tap_schema(db: sqlite3.Connection, tables: Iterable[TapTable], *,
                     schema: str = "tap_schema") -> None:
    """Create and fill the five TAP_SCHEMA tables in the attached SQLite database ``schema``.

    The caller attaches the database first (``ATTACH ':memory:' AS tap_schema``, or a
    file). Existing TAP_SCHEMA tables there are replaced, in one transaction; the
    SQLite backend writes its own the same way.

    Parameters
    ----------
    db : sqlite3.Connection
        The connection the database ``schema`` is attached to.
    tables : iterable of TapTable
        The published tables, as for :func:`tap_schema_rows`.
    schema : str, optional
        The name the TAP_SCHEMA database is attached under.
    """
    from ..search.backends.sqlite import write_tap_schema

    write_tap_schema(db, TAP_SCHEMA_TABLES, tap_schema_rows(tables), schema=schema)
