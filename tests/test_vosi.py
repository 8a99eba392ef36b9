"""VOSI documents and TAP_SCHEMA: what pyvo reads, what the IVOA XSDs accept, and that
/tables and TAP_SCHEMA describe the same tables (taplint's TMC stage compares them)."""

from __future__ import annotations

import io
import shutil
import sqlite3
import subprocess
import time
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import missing_tool
from pyvo.io.vosi import parse_availability, parse_capabilities, parse_tables

from vo_clip.vo.formats import FORMATS
from vo_clip.vo.schema import (
    TAP_SCHEMA_TABLES,
    ForeignKey,
    TapColumn,
    TapTable,
    published_tables,
)
from vo_clip.vo.tap_schema import (
    ADQL_RESERVED,
    adql_column_name,
    build_tap_schema,
    tap_schema_rows,
)
from vo_clip.vo.vosi import (
    TapLimits,
    Udf,
    availability_xml,
    capabilities_xml,
    table_xml,
    tableset_xml,
)

BASE = "http://127.0.0.1:8080/vo"
UDFS = (
    Udf("vo_clip_similarity(did VARCHAR, query VARCHAR) -> DOUBLE",
        "Cosine similarity of the preview of did to the text query, e.g. "
        "SELECT TOP 5 obs_id FROM ivoa.ObsCore ORDER BY "
        "vo_clip_similarity(obs_publisher_did, 'barred spiral') DESC"),
    Udf("vo_clip_similarity(query VARCHAR) -> DOUBLE", "Similarity to the text query"),
)
GEOMETRY = ("POINT", "CIRCLE", "CONTAINS", "DISTANCE")
UDF_TYPE = "ivo://ivoa.net/std/TAPRegExt#features-udf"
GEO_TYPE = "ivo://ivoa.net/std/TAPRegExt#features-adqlgeo"


@pytest.fixture(scope="module")
def tables() -> tuple[TapTable, ...]:
    return published_tables()


@pytest.fixture(scope="module")
def capabilities() -> bytes:
    return capabilities_xml(BASE, udfs=UDFS, geometry=GEOMETRY,
                            datalink_url=BASE + "/datalink/links",
                            examples_url=BASE + "/tap/examples")


@pytest.fixture(scope="module")
def tableset(tables) -> bytes:
    return tableset_xml(tables)


@pytest.fixture()
def db(tables):
    connection = sqlite3.connect(":memory:")
    connection.execute("ATTACH ':memory:' AS tap_schema")
    build_tap_schema(connection, tables)
    yield connection
    connection.close()


def _tap(doc: bytes):
    caps = parse_capabilities(io.BytesIO(doc), pedantic=True)
    taps = [c for c in caps if c.standardid == "ivo://ivoa.net/std/TAP"]
    assert len(taps) == 1
    return caps, taps[0]


# -- capabilities -----------------------------------------------------------------------

def test_capabilities_declaration_and_namespaces(capabilities):
    assert capabilities.startswith(b'<?xml version="1.0" encoding="UTF-8"?>')
    head = capabilities.split(b">", 2)[1]
    for ns in (b'xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0"',
               b'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1"',
               b'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0"',
               b'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0"'):
        assert ns in head
    assert b"<capability " in capabilities and b"vosi:capability" not in capabilities


def test_tap_capability(capabilities):
    _, tap = _tap(capabilities)
    assert type(tap).__name__ == "TableAccess"
    [interface] = tap.interfaces
    assert (interface.role, interface.version) == ("std", "1.1")
    assert [(u.content, u.use) for u in interface.accessurls] == [(BASE + "/tap", "base")]
    assert [(d.content, d.ivo_id) for d in tap.datamodels] == [
        ("ObsCore-1.1", "ivo://ivoa.net/std/ObsCore#core-1.1")]
    assert tap.retentionperiod.default == 86400 and tap.retentionperiod.hard == 604800
    assert tap.executionduration.default == 600 and tap.executionduration.hard == 3600


def test_languages_and_features(capabilities):
    _, tap = _tap(capabilities)
    [adql] = tap.languages
    assert adql.name == "ADQL"
    assert [(v.content, v.ivo_id) for v in adql.versions] == [
        ("2.0", "ivo://ivoa.net/std/ADQL#v2.0"), ("2.1", "ivo://ivoa.net/std/ADQL#v2.1")]
    assert [f.type for f in adql.languagefeaturelists] == [UDF_TYPE, GEO_TYPE]
    udfs = adql.get_feature_list(UDF_TYPE)
    assert [(f.form, f.description) for f in udfs] == [(u.form, u.description) for u in UDFS]
    assert adql.get_udf("VO_CLIP_SIMILARITY").form == UDFS[0].form
    assert [f.form for f in adql.get_feature_list(GEO_TYPE)] == list(GEOMETRY)
    # the mixed-case type strings STILTS and TOPCAT compare exactly
    assert UDF_TYPE.encode() in capabilities and GEO_TYPE.encode() in capabilities


def test_output_limit_and_formats(capabilities):
    _, tap = _tap(capabilities)
    assert (tap.outputlimit.default.content, tap.outputlimit.default.unit) == (10000, "row")
    assert (tap.outputlimit.hard.content, tap.outputlimit.hard.unit) == (100000, "row")
    declared = [(f.mime, f.ivo_id, list(f.aliases)) for f in tap.outputformats]
    assert declared == [(f.mime, f.ivo_id, [a for a in f.aliases if a != f.mime])
                        for f in FORMATS]


def test_custom_limits():
    limits = TapLimits(default_maxrec=5, hard_maxrec=50, retention_default=1,
                       retention_hard=2, execution_default=3, execution_hard=4)
    _, tap = _tap(capabilities_xml(BASE, udfs=(), geometry=(), limits=limits))
    assert (tap.outputlimit.default.content, tap.outputlimit.hard.content) == (5, 50)
    assert (tap.retentionperiod.default, tap.executionduration.hard) == (1, 4)
    assert tap.languages[0].languagefeaturelists == []


def test_vosi_datalink_and_examples_capabilities(capabilities):
    caps, _ = _tap(capabilities)
    found = {c.standardid: c.interfaces[0] for c in caps}
    assert list(found) == [
        "ivo://ivoa.net/std/TAP", "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability", "ivo://ivoa.net/std/VOSI#tables-1.1",
        "ivo://ivoa.net/std/DataLink#links-1.1", "ivo://ivoa.net/std/DALI#examples"]
    urls = {k: (i.accessurls[0].content, i.accessurls[0].use) for k, i in found.items()}
    assert urls["ivo://ivoa.net/std/VOSI#capabilities"] == (BASE + "/tap/capabilities", "full")
    assert urls["ivo://ivoa.net/std/VOSI#availability"] == (BASE + "/tap/availability", "full")
    assert urls["ivo://ivoa.net/std/VOSI#tables-1.1"] == (BASE + "/tap/tables", "base")
    assert found["ivo://ivoa.net/std/VOSI#tables-1.1"].version == "1.1"
    assert urls["ivo://ivoa.net/std/DataLink#links-1.1"] == (BASE + "/datalink/links", "base")
    assert urls["ivo://ivoa.net/std/DALI#examples"] == (BASE + "/tap/examples", "full")
    assert type(found["ivo://ivoa.net/std/DALI#examples"]).__name__ == "WebBrowser"
    assert b"securityMethod" not in capabilities


def test_optional_capabilities_left_out():
    doc = capabilities_xml(BASE + "/", udfs=UDFS, geometry=GEOMETRY)
    caps, tap = _tap(doc)
    assert tap.interfaces[0].accessurls[0].content == BASE + "/tap"
    assert len(caps) == 4 and b"xmlns:vr" not in doc


def test_values_are_escaped():
    udf = Udf("vo_clip_f(a VARCHAR) -> DOUBLE", "uses <, > & \"quotes\"")
    _, tap = _tap(capabilities_xml(BASE + "?a=1&b=2", udfs=[udf], geometry=()))
    assert tap.languages[0].get_udf("vo_clip_f").description == udf.description
    assert tap.interfaces[0].accessurls[0].content == BASE + "?a=1&b=2/tap"


@pytest.mark.parametrize("form", [
    "vo_clip_similarity(obs_id VARCHAR) -> DOUBLE",  # TOPCAT rejects underscored args
    "ivo_similarity(did VARCHAR) -> DOUBLE",  # reserved for IVOA
    "vo_clip_similarity(did VARCHAR)",  # no return type (taplint E-UDFE)
    "1f(x INTEGER) -> DOUBLE",
])
def test_bad_udf_forms_rejected(form):
    with pytest.raises(ValueError):
        Udf(form, "x")


def test_unknown_geometry_rejected():
    with pytest.raises(ValueError, match="UPPER"):
        capabilities_xml(BASE, udfs=(), geometry=("POINT", "UPPER"))


# -- availability -----------------------------------------------------------------------

def test_availability():
    up = datetime(2024, 1, 2, 5, 4, 5, 123456, tzinfo=timezone(timedelta(hours=2)))
    doc = availability_xml(True, up_since=up, note="serving 36 observations")
    assert b"<vosi:upSince>2024-01-02T03:04:05Z</vosi:upSince>" in doc
    parsed = parse_availability(io.BytesIO(doc), pedantic=True)
    assert parsed.available is True and parsed.notes == ["serving 36 observations"]


def test_availability_down_naive_time_is_utc():
    doc = availability_xml(False, up_since=datetime(2024, 1, 2, 3, 4, 5))
    assert b"<vosi:available>false</vosi:available>" in doc
    assert b"2024-01-02T03:04:05Z" in doc and b"note" not in doc
    assert parse_availability(io.BytesIO(doc), pedantic=True).available is False


# -- tables -----------------------------------------------------------------------------

def _parsed_tables(doc: bytes) -> dict:
    return {t.name: t for t in parse_tables(io.BytesIO(doc), pedantic=True).iter_tables()}


def _xtypes(doc: bytes) -> dict[tuple[str, str], str | None]:
    """extendedType per (table, column); pyvo 1.9.1's ``extendedtype`` getter returns None."""
    root = ET.fromstring(doc)
    tables = [root] if root.tag.endswith("}table") else root.iter("table")
    return {(t.findtext("name"), c.findtext("name")): c.find("dataType").get("extendedType")
            for t in tables for c in t.iter("column")}


def _arraysize(column) -> str | None:
    """The declared arraysize; pyvo reports an absent one as VODataService's default 1."""
    return None if column.datatype.arraysize == "1" else column.datatype.arraysize


def test_tableset_schemas(tables, tableset):
    parsed = parse_tables(io.BytesIO(tableset), pedantic=True)
    assert [s.name for s in parsed.tableset.schemas] == ["ivoa", "hst", "TAP_SCHEMA"]
    assert all(s.description for s in parsed.tableset.schemas)
    assert [t.name for s in parsed.tableset.schemas for t in s.tables] == [
        t.name for t in tables]
    assert b"<schema>" in tableset and b"vosi:schema" not in tableset


def test_tableset_matches_schema(tables, tableset):
    parsed, xtypes = _parsed_tables(tableset), _xtypes(tableset)
    for table in tables:
        got = parsed[table.name]
        assert (got.type, got.description) == (table.table_type, table.description)
        assert [c.name for c in got.columns] == [adql_column_name(c.name)
                                                  for c in table.columns]
        for column, col in zip(table.columns, got.columns):
            assert (col.description, col.unit, col.ucd, col.utype) == (
                column.description, column.unit, column.ucd, column.utype), column.name
            assert col.datatype.content == column.datatype
            assert _arraysize(col) == column.arraysize
            assert xtypes[table.name, col.name] == column.xtype
            flags = {f for f in ("indexed", "nullable", "principal", "std")
                     if getattr(column, f)}
            assert set(col.flags) == flags, column.name
        assert [(k.targettable, [(c.fromcolumn, c.targetcolumn) for c in k.fkcolumns])
                for k in got.foreignkeys] == [
            (k.target_table, list(zip(k.from_columns, k.target_columns))) for k in table.keys]


def test_tableset_omits_empty_elements(tableset):
    for tag in (b"unit", b"ucd", b"utype", b"description"):
        assert b"<%s></%s>" % (tag, tag) not in tableset and b"<%s />" % tag not in tableset
    assert b'xsi:type="vs:VOTableType"' in tableset and b'arraysize="1"' not in tableset
    assert b'extendedType="adql:REGION"' in tableset


def test_nullable_flag_only_when_true(tables, tableset):
    obscore = _parsed_tables(tableset)["ivoa.ObsCore"]
    flags = {c.name: set(c.flags) for c in obscore.columns}
    assert "nullable" not in flags["obs_id"] and "nullable" in flags["s_ra"]


def test_tableset_min(tables):
    doc = tableset_xml(tables, detail="min")
    parsed = _parsed_tables(doc)
    assert list(parsed) == [t.name for t in tables]
    assert all(not t.columns and not t.foreignkeys for t in parsed.values())
    with pytest.raises(ValueError):
        tableset_xml(tables, detail="full")


def test_table_document(tables):
    hst = next(t for t in tables if t.name == "hst.observations")
    doc = table_xml(hst)
    assert b"<vosi:table " in doc and b'xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0"' in doc
    parsed = parse_tables(io.BytesIO(doc), pedantic=True)
    assert parsed.table.name == "hst.observations"
    assert [c.name for c in parsed.table.columns] == [c.name for c in hst.columns]
    assert parsed.table.foreignkeys[0].targettable == "ivoa.ObsCore"


# -- TAP_SCHEMA -------------------------------------------------------------------------

def test_tap_schema_rows_follow_definitions(tables):
    rows = tap_schema_rows(tables)
    for definition in TAP_SCHEMA_TABLES:
        assert all(len(r) == len(definition.columns) for r in rows[definition.short_name])
    assert [r[0] for r in rows["schemas"]] == ["ivoa", "hst", "TAP_SCHEMA"]
    assert [r[-1] for r in rows["tables"]] == list(range(1, len(tables) + 1))


def test_tap_schema_table_structure(db):
    for definition in TAP_SCHEMA_TABLES:
        info = db.execute(f"PRAGMA tap_schema.table_info({definition.short_name})").fetchall()
        assert [r[1] for r in info] == [c.name for c in definition.columns]
        assert [r[2] for r in info] == [
            "TEXT" if c.datatype == "char" else "INTEGER" for c in definition.columns]
        assert [bool(r[3]) for r in info] == [not c.nullable for c in definition.columns]


def test_tap_schema_tables(db, tables):
    got = db.execute("SELECT schema_name, table_name, table_type FROM tap_schema.tables "
                     "ORDER BY table_index").fetchall()
    assert got == [(t.schema, t.name, t.table_type) for t in tables]
    assert len(got) == 7


def test_tap_schema_columns(db, tables):
    got = db.execute("SELECT table_name, column_name FROM tap_schema.columns "
                     "ORDER BY table_name, column_index").fetchall()
    expected = [(t.name, adql_column_name(c.name)) for t in tables for c in t.columns]
    assert sorted(got) == sorted(expected)
    assert len(got) == len(set(got))


def test_tap_schema_keys(db):
    keys = db.execute("SELECT key_id, from_table, target_table FROM tap_schema.keys").fetchall()
    assert sorted(keys) == sorted([
        ("tables_schema", "TAP_SCHEMA.tables", "TAP_SCHEMA.schemas"),
        ("columns_table", "TAP_SCHEMA.columns", "TAP_SCHEMA.tables"),
        ("keys_from", "TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
        ("keys_target", "TAP_SCHEMA.keys", "TAP_SCHEMA.tables"),
        ("key_columns_key", "TAP_SCHEMA.key_columns", "TAP_SCHEMA.keys"),
        ("hst_obscore", "hst.observations", "ivoa.ObsCore")])
    pairs = db.execute("SELECT from_column, target_column FROM tap_schema.key_columns "
                       "WHERE key_id = 'hst_obscore'").fetchall()
    assert pairs == [("obs_id", "obs_id")]
    orphans = db.execute("SELECT count(*) FROM tap_schema.key_columns "
                         "WHERE key_id NOT IN (SELECT key_id FROM tap_schema.keys)")
    assert orphans.fetchone() == (0,)


def test_tap_schema_arraysize_and_size(db):
    assert db.execute("SELECT count(*) FROM tap_schema.columns "
                      "WHERE arraysize = '1'").fetchone() == (0,)
    rows = db.execute('SELECT datatype, arraysize, "size" FROM tap_schema.columns').fetchall()
    for datatype, arraysize, size in rows:
        assert (arraysize is None) == (datatype not in ("char", "unicodeChar"))
        assert size == (int(arraysize) if arraysize and arraysize.isdigit() else None)


def test_tap_schema_flags(db):
    rows = db.execute('SELECT principal, indexed, std, "size" FROM tap_schema.columns')
    assert all(v in (0, 1) and isinstance(v, int) for r in rows for v in r[:3])
    std = db.execute("SELECT DISTINCT std FROM tap_schema.columns "
                     "WHERE table_name LIKE 'TAP_SCHEMA.%'").fetchall()
    assert std == [(1,)]


def test_reserved_column_names_are_delimited(db, tableset):
    """taplint E-CRSV: TAP_SCHEMA.columns.size is published as "size" in both places."""
    assert adql_column_name("size") == '"size"' and adql_column_name("s_ra") == "s_ra"
    names = [r[0] for r in db.execute("SELECT column_name FROM tap_schema.columns")]
    names += [c.name for t in _parsed_tables(tableset).values() for c in t.columns]
    assert names.count('"size"') == 2
    assert not [n for n in names if n.upper() in ADQL_RESERVED]


def test_tap_schema_rebuild_replaces(db, tables):
    build_tap_schema(db, tables)
    count = db.execute("SELECT count(*) FROM tap_schema.tables").fetchone()[0]
    assert count == len(tables)


def test_tap_schema_other_name(tables):
    connection = sqlite3.connect(":memory:")
    connection.execute("ATTACH ':memory:' AS ts2")
    build_tap_schema(connection, tables, schema="ts2")
    assert connection.execute("SELECT count(*) FROM ts2.keys").fetchone() == (6,)
    connection.close()


def test_key_to_unpublished_table_rejected():
    lonely = TapTable(schema="x", name="x.t", description="d", sql_name="t",
                      columns=(TapColumn("a", "int"),),
                      keys=(ForeignKey("k", "y.missing", ("a",), ("a",)),))
    with pytest.raises(ValueError, match="y.missing"):
        tap_schema_rows([lonely])


def test_tableset_agrees_with_tap_schema(db, tableset):
    """What taplint's TMC stage compares: tables, columns, types, units, UCDs, utypes."""
    from_tables, xtypes = {}, _xtypes(tableset)
    for table in _parsed_tables(tableset).values():
        for c in table.columns:
            from_tables[table.name, c.name] = (
                c.datatype.content, _arraysize(c), xtypes[table.name, c.name], c.unit,
                c.ucd, c.utype, c.description, int("indexed" in c.flags),
                int("principal" in c.flags), int("std" in c.flags))
    from_schema = {
        (r[0], r[1]): r[2:] for r in db.execute(
            "SELECT table_name, column_name, datatype, arraysize, xtype, unit, ucd, utype, "
            "description, indexed, principal, std FROM tap_schema.columns")}
    assert from_tables == from_schema
    fks = {(t.name, k.targettable, c.fromcolumn, c.targetcolumn)
           for t in _parsed_tables(tableset).values()
           for k in t.foreignkeys for c in k.fkcolumns}
    rows = db.execute("SELECT k.from_table, k.target_table, c.from_column, c.target_column "
                      "FROM tap_schema.keys AS k JOIN tap_schema.key_columns AS c "
                      "USING (key_id)").fetchall()
    assert fks == set(rows)


# -- XSD validation, offline, with the XSDs bundled in STILTS ---------------------------

#: Local files for each namespace, in import order (dependencies first).
_XSDS = {
    "http://www.w3.org/XML/1998/namespace": "xmlnamespace.xsd",
    "http://www.w3.org/1999/xlink": "xlink.xsd",
    "http://www.ivoa.net/xml/STC/stc-v1.30.xsd": "stc-v1.30.xsd",
    "http://www.ivoa.net/xml/VOResource/v1.0": "VOResource-v1.0.xsd",
    "http://www.ivoa.net/xml/VODataService/v1.1": "VODataService-v1.1.xsd",
    "http://www.ivoa.net/xml/TAPRegExt/v1.0": "TAPRegExt-v1.0-Erratum1.xsd",
    "http://www.ivoa.net/xml/VOSICapabilities/v1.0": "VOSICapabilities-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSIAvailability/v1.0": "VOSIAvailability-v1.0.xsd",
    "http://www.ivoa.net/xml/VOSITables/v1.0": "VOSITables-v1.1.xsd",
}


def _stilts_jars() -> list[Path]:
    jars: list[Path] = []
    if shutil.which("dpkg"):
        listed = subprocess.run(["dpkg", "-L", "starlink-ttools-java", "starlink-util-java"],
                                capture_output=True, text=True, check=False).stdout
        jars = [Path(p) for p in listed.split() if p.endswith(".jar")]
    return [j for j in jars if j.is_file()] or sorted(Path("/usr/share/java").glob("starlink*.jar"))


@pytest.fixture(scope="module")
def xsd_schema(tmp_path_factory):
    from lxml import etree

    folder = tmp_path_factory.mktemp("xsd")
    for jar in _stilts_jars():
        with zipfile.ZipFile(jar) as archive:
            for name in archive.namelist():
                if name.endswith(".xsd") and not (folder / Path(name).name).exists():
                    (folder / Path(name).name).write_bytes(archive.read(name))
    missing = [f for f in _XSDS.values() if not (folder / f).exists()]
    if missing:
        pytest.skip(missing_tool(f"the STILTS jars with {missing} (apt-get install stilts)"))

    class LocalXsd(etree.Resolver):
        """Any schemaLocation URL to the extracted file of the same name."""

        def resolve(self, url, pubid, context):
            parts = url.rstrip("/").split("/")
            for name in (parts[-1], "-".join(parts[-2:]) + ".xsd",
                         {"xml.xsd": "xmlnamespace.xsd"}.get(parts[-1], "")):
                if name and (folder / name).is_file():
                    return self.resolve_filename(str(folder / name), context)
            return None

    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(LocalXsd())
    imports = "".join(f'<xs:import namespace="{ns}" schemaLocation="{(folder / f).as_uri()}"/>'
                      for ns, f in _XSDS.items())
    driver = f'<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">{imports}</xs:schema>'
    schema = etree.XMLSchema(etree.fromstring(driver.encode(), parser,
                                              base_url=(folder / "driver.xsd").as_uri()))
    return etree, schema


def _assert_valid(xsd_schema, doc: bytes) -> None:
    etree, schema = xsd_schema
    tree = etree.fromstring(doc, etree.XMLParser(no_network=True))
    assert schema.validate(tree), "\n".join(str(e) for e in schema.error_log)


def test_xsd_capabilities(xsd_schema, capabilities):
    _assert_valid(xsd_schema, capabilities)
    _assert_valid(xsd_schema, capabilities_xml(BASE, udfs=(), geometry=()))


def test_xsd_rejects_misordered_capability(xsd_schema, capabilities):
    """The validator is real: outputLimit before language breaks TableAccess's sequence."""
    etree, schema = xsd_schema
    tree = etree.fromstring(capabilities)
    tap = tree.find("capability")
    tap.find("language").addprevious(tap.find("outputLimit"))
    assert not schema.validate(tree)


def test_xsd_tables(xsd_schema, tables, tableset):
    _assert_valid(xsd_schema, tableset)
    _assert_valid(xsd_schema, tableset_xml(tables, detail="min"))
    for table in tables:
        _assert_valid(xsd_schema, table_xml(table))


def test_xsd_availability(xsd_schema):
    _assert_valid(xsd_schema, availability_xml(True, up_since=datetime.now(timezone.utc),
                                               note="ok"))
    _assert_valid(xsd_schema, availability_xml(False))


def test_up_since_is_when_the_service_became_ready(tiny_index, tiny_model_path, tmp_path):
    """Not when the process started: a service that took minutes to open says so."""
    from service import create_app
    from vo_clip.config import Config

    app = create_app(Config(home=tmp_path, index=tiny_index, model=str(tiny_model_path)))
    time.sleep(1.1)  # upSince has whole seconds: a start-up time would now be earlier
    before = datetime.now(timezone.utc).replace(microsecond=0)
    app.extensions["vo_clip.tap"]().warm()  # what `vo-clip serve` does before it listens
    parsed = parse_availability(io.BytesIO(app.test_client().get("/tap/availability").data))
    up_since = datetime.fromisoformat(parsed.upsince.replace("Z", "+00:00"))
    assert parsed.available and before <= up_since <= datetime.now(timezone.utc)
