"""The catalog: the observations table as an embedded SQLite database.

Row ``row_index`` of the ``observations`` table describes row ``row_index`` of the
embedding matrix, so a SQL filter yields the rows to score and a top-k yields the rows
to fetch. SQLite needs no server, ships with Python, and is the embedded default of the
architecture; the columns are those of :mod:`vo_clip.archive.columns` (absent ones are
NULL), followed by any extra columns the archive carries.

Connections are opened per thread (SQLite objects must stay in their thread) and
read-only once the catalog is built.
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.table import Column, MaskedColumn, Table

from ..archive.columns import all_columns
from ..errors import QueryError, UnknownObservationError

__all__ = ["Catalog", "SearchFilter", "TABLE", "file_problem"]

TABLE = "observations"

_KNOWN = {c.name: c for c in all_columns()}

#: Columns searches constrain most (position, time, programme) get B-tree indexes.
_INDEXED = ("s_dec", "t_min", "proposal_id")

_SQL_TYPES = {"char": "TEXT", "unicodeChar": "TEXT", "short": "INTEGER", "int": "INTEGER",
              "long": "INTEGER", "float": "REAL", "double": "REAL", "boolean": "INTEGER"}


@dataclass(frozen=True)
class SearchFilter:
    """Catalog constraints a similarity search is restricted to.

    Attributes
    ----------
    where : str, optional
        An SQL boolean expression over the catalog columns (the caller's own database;
        the TAP layer builds these from parsed ADQL, never from raw user text).
    instrument : str, optional
        Instrument name prefix, case-insensitive (``ACS`` matches ``ACS/WFC``).
    cone : (ra, dec, radius), optional
        Circle on the sky in degrees (ICRS) that ``s_ra``, ``s_dec`` must fall in.
    """

    where: str | None = None
    instrument: str | None = None
    cone: tuple[float, float, float] | None = None

    def __bool__(self) -> bool:
        return bool(self.where or self.instrument or self.cone)

    def to_sql(self) -> tuple[str, list]:
        clauses, params = [], []
        if self.where:
            clauses.append(f"({self.where})")
        if self.instrument:
            clauses.append("instrument_name LIKE ? ESCAPE '\\'")
            params.append(_like_prefix(self.instrument))
        if self.cone:
            ra, dec, radius = (float(v) for v in self.cone)
            # The declination band is answered by an index; the exact distance then runs
            # only on the rows inside the band.
            clauses.append("s_dec BETWEEN ? AND ? AND vo_clip_angdist(s_ra, s_dec, ?, ?) <= ?")
            params += [dec - radius, dec + radius, ra, dec, radius]
        return " AND ".join(clauses) or "1", params


class Catalog:
    """Read access to a built catalog database."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._local = threading.local()
        info = list(self._db.execute(f"PRAGMA table_info({TABLE})"))[1:]
        self.columns = [row[1] for row in info]
        self._types = {row[1]: row[2] for row in info}

    @property
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True)
            _register_functions(db)
            self._local.db = db
        return db

    def __len__(self) -> int:
        return self._db.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]

    def file_problem(self) -> str | None:
        """What is wrong with the database file itself (truncated, not SQLite), or None."""
        return file_problem(self.path)

    def last_row(self) -> int | None:
        """The largest row index (one B-tree descent); None for no rows or no table.

        Raises
        ------
        sqlite3.Error
            If the file is not a database or is damaged where the last row lives.
        """
        if not self.columns:
            return None
        return self._db.execute(f"SELECT MAX(row_index) FROM {TABLE}").fetchone()[0]

    def row_of(self, obs_id: str) -> int:
        """The row index of ``obs_id``.

        Raises
        ------
        UnknownObservationError
            If no observation has that id.
        """
        found = self._db.execute(
            f"SELECT row_index FROM {TABLE} WHERE obs_id = ?", (obs_id,)).fetchone()
        if found is None:
            raise UnknownObservationError(f"no observation with obs_id {obs_id!r} in the index")
        return int(found[0])

    def select_rows(self, search_filter: SearchFilter) -> np.ndarray:
        """Row indices satisfying ``search_filter``, ascending.

        Raises
        ------
        QueryError
            If the filter is not valid SQL for this catalog.
        """
        where, params = search_filter.to_sql()
        try:
            cursor = self._db.execute(f"SELECT row_index FROM {TABLE} WHERE {where}", params)
            return np.sort(np.fromiter((r[0] for r in cursor), dtype=np.int64))
        except sqlite3.Error as exc:
            raise QueryError(f"invalid filter {where!r}: {exc}") from exc

    def fetch(self, rows: np.ndarray, columns: list[str] | None = None) -> Table:
        """The catalog rows ``rows``, in that order, as an astropy Table."""
        columns = columns or self.columns
        rows = [int(r) for r in rows]
        quoted = ", ".join(f'"{c}"' for c in columns)
        found = {}
        for start in range(0, len(rows), 500):  # SQLite caps the number of parameters
            chunk = rows[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for record in self._db.execute(
                    f"SELECT row_index, {quoted} FROM {TABLE} WHERE row_index IN ({marks})", chunk):
                found[record[0]] = record[1:]
        records = [found[r] for r in rows]
        return Table([_typed_column(name, [rec[i] for rec in records], self._types[name])
                      for i, name in enumerate(columns)])

    # -- building ------------------------------------------------------------------------
    @staticmethod
    def build(path: str | Path, table: Table) -> "Catalog":
        """Write ``table`` (an archive's observations) as a new catalog at ``path``."""
        path = Path(path)
        path.unlink(missing_ok=True)
        names = [c.name for c in all_columns()] + [n for n in table.colnames if n not in _KNOWN]
        types = [_SQL_TYPES[_KNOWN[n].datatype] if n in _KNOWN else _sql_type(table[n])
                 for n in names]
        db = sqlite3.connect(path)
        try:
            columns_sql = ", ".join(f'"{n}" {t}' for n, t in zip(names, types))
            db.execute(f"CREATE TABLE {TABLE} (row_index INTEGER PRIMARY KEY, {columns_sql})")
            present = [n in table.colnames for n in names]
            values = [_python_values(table[n]) if p else None for n, p in zip(names, present)]
            records = ((i, *[(v[i] if v is not None else None) for v in values])
                       for i in range(len(table)))
            marks = ",".join("?" * (len(names) + 1))
            db.executemany(f"INSERT INTO {TABLE} VALUES ({marks})", records)
            db.execute(f"CREATE UNIQUE INDEX {TABLE}_obs_id ON {TABLE}(obs_id)")
            for column in _INDEXED:
                db.execute(f"CREATE INDEX {TABLE}_{column} ON {TABLE}({column})")
            # LIKE is case-insensitive in SQLite; only a NOCASE index can answer a prefix.
            db.execute(f"CREATE INDEX {TABLE}_instrument ON {TABLE}"
                       "(instrument_name COLLATE NOCASE)")
            db.commit()
        finally:
            db.close()
        return Catalog(path)


def file_problem(path: Path) -> str | None:
    """What is wrong with the database file itself (truncated, not SQLite), or None.

    SQLite serves pages it has cached and may read a truncated file's missing end
    as empty pages; the header says how long the file must be (when its size field
    is current: SQLite file format §1.3.8), so a truncation shows without a query.
    """
    try:
        with open(path, "rb") as db:
            header = db.read(100)
            size = os.fstat(db.fileno()).st_size
    except OSError as exc:
        return exc.strerror or str(exc)
    if size == 0:
        return "it is empty (0 bytes)"
    if len(header) < 100 or not header.startswith(b"SQLite format 3\0"):
        return "it is not an SQLite database"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    size_is_current = header[24:28] == header[92:96]
    if size_is_current and pages and size < pages * page_size:
        return f"it is truncated ({size} bytes of {pages * page_size})"
    return None


def _typed_column(name: str, values: list, sql_type: str):
    """An astropy column of the SQL type, masked where SQL said NULL, with its metadata."""
    mask = [v is None for v in values]
    if sql_type == "INTEGER":
        data = np.array([0 if v is None else v for v in values], dtype=np.int64)
    elif sql_type == "REAL":
        data = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    else:
        data = np.array(["" if v is None else str(v) for v in values], dtype=str)
    definition = _KNOWN.get(name)
    meta = {"unit": definition.unit, "description": definition.description} if definition else {}
    if any(mask):
        return MaskedColumn(data, name=name, mask=mask, **meta)
    return Column(data, name=name, **meta)


def _python_values(column) -> list:
    """Plain Python values (None for masked or NaN) that sqlite3 can bind."""
    values = np.ma.getdata(column).tolist()
    mask = np.ma.getmaskarray(column)
    if mask.any():
        values = [None if m else v for v, m in zip(values, mask)]
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _sql_type(column) -> str:
    kind = column.dtype.kind
    return {"i": "INTEGER", "u": "INTEGER", "b": "INTEGER", "f": "REAL"}.get(kind, "TEXT")


def _like_prefix(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped + "%"


def _register_functions(db: sqlite3.Connection) -> None:
    """The cone filter's distance: the same function, from the same table, as in TAP."""
    from .backends.sqlite_functions import register_functions

    register_functions(db, None, only={"vo_clip_angdist"})
