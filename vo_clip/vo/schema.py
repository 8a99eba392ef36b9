"""The tables the TAP service publishes, described once (TAP 1.1 §4, VODataService 1.1).

``ivoa.ObsCore`` (ObsCore 1.1) and ``hst.observations`` (the HST and PAPERCLIP extras,
joined on ``obs_id``) are views over the catalog's ``observations`` table; TAP_SCHEMA
describes them and itself. These definitions drive TAP_SCHEMA's rows, VOSI /tables, the
FIELDs of query results and the ADQL translator's name resolution, so a unit, a UCD or
a column's SQL is written in one place.

Columns the service derives from its identity rather than the archive
(``obs_publisher_did``, ``access_url``, ``access_format`` and ``preview_url``) are SQL
expressions over the catalog, evaluated only for the rows a query returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..archive.columns import HST_COLUMNS, OBSCORE_COLUMNS, ColumnDef
from .datalink import DATALINK_CONTENT_TYPE

__all__ = [
    "TAP_SCHEMA_TABLES",
    "ForeignKey",
    "TapColumn",
    "TapTable",
    "published_tables",
]



@dataclass(frozen=True)
class TapColumn:
    """A published column as TAP_SCHEMA.columns and VOSI describe it.

    ``sql`` is the column's SQL over the catalog row (its name when it is stored);
    ``arraysize`` is ``*`` for strings and ``None`` for scalars, never ``1``.
    """

    name: str
    datatype: str
    description: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    xtype: str | None = None
    arraysize: str | None = None
    principal: bool = False
    std: bool = False
    indexed: bool = False
    nullable: bool = True
    sql: str | None = None

    @property
    def size(self) -> int | None:
        """TAP_SCHEMA's ``size``: the integer of a one-dimensional fixed arraysize."""
        return int(self.arraysize) if self.arraysize and self.arraysize.isdigit() else None

    @classmethod
    def from_def(cls, column: ColumnDef, **changes) -> "TapColumn":
        return replace(cls(name=column.name, datatype=column.datatype,
                           description=column.description, unit=column.unit,
                           ucd=column.ucd, utype=column.utype, xtype=column.xtype,
                           arraysize=column.arraysize, principal=column.principal,
                           std=column.std, sql=column.name), **changes)


@dataclass(frozen=True)
class ForeignKey:
    """A TAP_SCHEMA key: ``from_columns`` of the owning table reference ``target_table``."""

    key_id: str
    target_table: str
    from_columns: tuple[str, ...]
    target_columns: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True)
class TapTable:
    """A published table or view: its qualified ADQL name, columns and SQL source.

    ``sql_name`` is the relation the translated SQL reads; ``embedded`` says whether each
    row is an observation with an embedding (``row_index``), which the similarity
    functions need.
    """

    schema: str
    name: str
    description: str
    columns: tuple[TapColumn, ...]
    sql_name: str
    table_type: str = "table"
    utype: str | None = None
    embedded: bool = False
    keys: tuple[ForeignKey, ...] = field(default=())

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def column(self, name: str) -> TapColumn | None:
        """The column ``name`` (ADQL regular identifiers ignore case)."""
        lowered = name.lower()
        return next((c for c in self.columns if c.name.lower() == lowered), None)


# -- ivoa.ObsCore and hst.observations --------------------------------------------------

_OBSCORE_INDEXED = {"obs_id", "s_dec", "t_min", "instrument_name"}

#: Derived columns: the service's identity applied to the stored obs_id.
_DERIVED_SQL = {
    "obs_publisher_did": "vo_clip_did(obs_id)",
    "access_url": "vo_clip_datalink_url(obs_id)",
    "access_format": f"'{DATALINK_CONTENT_TYPE}'",  # pyvo compares it byte for byte
}


def _obscore_columns() -> tuple[TapColumn, ...]:
    columns = []
    for column in OBSCORE_COLUMNS:
        columns.append(TapColumn.from_def(
            column, principal=True, std=True, indexed=column.name in _OBSCORE_INDEXED,
            nullable=column.name not in ("obs_collection", "obs_id", "obs_publisher_did",
                                         "calib_level"),
            sql=_DERIVED_SQL.get(column.name, column.name)))
    return tuple(columns)


def _hst_columns() -> tuple[TapColumn, ...]:
    obs_id = next(c for c in OBSCORE_COLUMNS if c.name == "obs_id")
    did = next(c for c in OBSCORE_COLUMNS if c.name == "obs_publisher_did")
    columns = [
        TapColumn.from_def(obs_id, utype=None, principal=True, indexed=True, nullable=False,
                           description="Observation identifier (joins ivoa.ObsCore.obs_id)"),
        TapColumn.from_def(did, utype=None, principal=False, nullable=False,
                           sql=_DERIVED_SQL["obs_publisher_did"],
                           description="Publisher's dataset identifier, as in ivoa.ObsCore"),
    ]
    for column in HST_COLUMNS:
        if column.name == "preview":
            continue  # an archive-relative path; published as a URL below
        columns.append(TapColumn.from_def(
            column, principal=column.name in ("proposal_id", "proposal_title", "filters"),
            indexed=column.name == "proposal_id"))
    columns.append(TapColumn(
        name="preview_url", datatype="char", arraysize="*", ucd="meta.ref.url;meta.preview",
        description="URL of the preview image the similarity functions compare",
        sql="vo_clip_preview_url(obs_id)"))
    return tuple(columns)


def _observation_tables() -> tuple[TapTable, TapTable]:
    obscore = TapTable(
        schema="ivoa", name="ivoa.ObsCore", sql_name="vo_clip_obscore", table_type="view",
        embedded=True, columns=_obscore_columns(),
        description="Hubble observations in the ObsCore 1.1 data model; rank them by "
                    "what their previews show with vo_clip_similarity")
    hst = TapTable(
        schema="hst", name="hst.observations", sql_name="vo_clip_hst", table_type="view",
        embedded=True, columns=_hst_columns(),
        description="HST extras per observation: proposal, abstract, PAPERCLIP summary, "
                    "filters and preview; join ivoa.ObsCore USING (obs_id)",
        keys=(ForeignKey("hst_obscore", "ivoa.ObsCore", ("obs_id",), ("obs_id",),
                         "Each HST row extends the ObsCore row of the same observation"),))
    return obscore, hst


# -- TAP_SCHEMA (TAP 1.1 §4) ------------------------------------------------------------

def _ts(name: str, datatype: str, description: str, *, nullable: bool = True) -> TapColumn:
    return TapColumn(name=name, datatype=datatype, description=description,
                     arraysize="*" if datatype == "char" else None, principal=True,
                     std=True, nullable=nullable, sql=f'"{name}"')


def _ts_table(name: str, description: str, columns, keys=()) -> TapTable:
    return TapTable(schema="TAP_SCHEMA", name=f"TAP_SCHEMA.{name}", description=description,
                    columns=tuple(columns), sql_name=f"tap_schema.{name}", keys=tuple(keys))


TAP_SCHEMA_TABLES: tuple[TapTable, ...] = (
    _ts_table("schemas", "Schemas published by this service", [
        _ts("schema_name", "char", "Schema name", nullable=False),
        _ts("utype", "char", "Utype of the schema"),
        _ts("description", "char", "Description of the schema"),
        _ts("schema_index", "int", "Recommended display order"),
    ]),
    _ts_table("tables", "Tables published by this service", [
        _ts("schema_name", "char", "Schema the table belongs to", nullable=False),
        _ts("table_name", "char", "Fully qualified table name", nullable=False),
        _ts("table_type", "char", "table or view", nullable=False),
        _ts("utype", "char", "Utype of the table"),
        _ts("description", "char", "Description of the table"),
        _ts("table_index", "int", "Recommended display order"),
    ], [ForeignKey("tables_schema", "TAP_SCHEMA.schemas", ("schema_name",), ("schema_name",))]),
    _ts_table("columns", "Columns of the published tables", [
        _ts("table_name", "char", "Fully qualified name of the column's table", nullable=False),
        _ts("column_name", "char", "Column name", nullable=False),
        _ts("datatype", "char", "VOTable datatype", nullable=False),
        _ts("arraysize", "char", "VOTable arraysize; NULL for scalars"),
        _ts("xtype", "char", "VOTable xtype"),
        _ts("size", "int", "Length of a fixed one-dimensional array (deprecated)"),
        _ts("description", "char", "Description of the column"),
        _ts("utype", "char", "Utype of the column"),
        _ts("unit", "char", "VOUnit of the column"),
        _ts("ucd", "char", "UCD of the column"),
        _ts("indexed", "int", "1 if the column is indexed", nullable=False),
        _ts("principal", "int", "1 if the column is principal", nullable=False),
        _ts("std", "int", "1 if the column is defined by a standard", nullable=False),
        _ts("column_index", "int", "Recommended display order"),
    ], [ForeignKey("columns_table", "TAP_SCHEMA.tables", ("table_name",), ("table_name",))]),
    _ts_table("keys", "Foreign keys between published tables", [
        _ts("key_id", "char", "Key identifier", nullable=False),
        _ts("from_table", "char", "Table holding the key", nullable=False),
        _ts("target_table", "char", "Table the key references", nullable=False),
        _ts("description", "char", "Description of the key"),
        _ts("utype", "char", "Utype of the key"),
    ], [ForeignKey("keys_from", "TAP_SCHEMA.tables", ("from_table",), ("table_name",)),
        ForeignKey("keys_target", "TAP_SCHEMA.tables", ("target_table",), ("table_name",))]),
    _ts_table("key_columns", "Columns of the foreign keys", [
        _ts("key_id", "char", "Key identifier", nullable=False),
        _ts("from_column", "char", "Column of the table holding the key", nullable=False),
        _ts("target_column", "char", "Column of the referenced table", nullable=False),
    ], [ForeignKey("key_columns_key", "TAP_SCHEMA.keys", ("key_id",), ("key_id",))]),
)

SCHEMA_DESCRIPTIONS = {
    "ivoa": "IVOA-defined tables: the ObsCore observation table",
    "hst": "Hubble Space Telescope extras: proposals, abstracts, summaries, previews",
    "TAP_SCHEMA": "Description of the tables this service publishes",
}


def published_tables() -> tuple[TapTable, ...]:
    """Every published table in display order: ObsCore, HST, then TAP_SCHEMA."""
    return (*_observation_tables(), *TAP_SCHEMA_TABLES)
