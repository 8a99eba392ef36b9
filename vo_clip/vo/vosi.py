"""VOSI documents of the TAP service: capabilities, availability and tables (VOSI 1.1).

VOSI 1.1 gives every VO service three self-description endpoints, and TAP 1.1 §2 makes
them part of TAP: ``/tap/capabilities`` (VOSI 1.1 §2.1, with the TAP capability of
TAPRegExt 1.0), ``/tap/availability`` (§2.2) and ``/tap/tables`` (§2.3, the
VODataService 1.1 ``TableSet``). Clients read them before anything else: TOPCAT lists
UDFs from TAPRegExt ``languageFeatures``, pyvo takes MAXREC limits from ``outputLimit``,
and taplint validates all three against the XSDs it bundles (stages CPV, CAP, AVV, TMV)
and compares /tables with TAP_SCHEMA (TMC).

Everything emitted derives from :mod:`vo_clip.vo.schema` (tables, columns, keys) and
:mod:`vo_clip.vo.formats` (output formats), like TAP_SCHEMA (:mod:`vo_clip.vo.tap_schema`),
whose :func:`~vo_clip.vo.tap_schema.adql_column_name` also names the columns here.

The builders use :mod:`xml.etree.ElementTree` with literal prefixed tag names and the
namespace declarations written once on the root, so the output has exactly the prefixes
validators and clients were tested with (``vosi``, ``vs``, ``tr``, ``vr``, ``xsi``) and
``xsi:type`` values whose prefixes are always declared. ElementTree escapes every text
and attribute value.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..timestamps import utc_seconds
from .formats import FORMATS, OutputFormat
from .limits import TapLimits
from .schema import SCHEMA_DESCRIPTIONS, ForeignKey, TapColumn, TapTable
from .tap_schema import adql_column_name
from .xmldoc import serialize as _serialize
from .xmldoc import sub as _sub

__all__ = [
    "ADQL_GEOMETRY",
    "TapLimits",
    "Udf",
    "availability_xml",
    "capabilities_xml",
    "table_xml",
    "tableset_xml",
]

_XML = "http://www.ivoa.net/xml/"
_VOSI_CAPABILITIES = _XML + "VOSICapabilities/v1.0"
_VOSI_AVAILABILITY = _XML + "VOSIAvailability/v1.0"
_VOSI_TABLES = _XML + "VOSITables/v1.0"
_NS = {
    "vr": _XML + "VOResource/v1.0",
    "vs": _XML + "VODataService/v1.1",
    "tr": _XML + "TAPRegExt/v1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_STD = "ivo://ivoa.net/std/"
_FEATURES_UDF = _STD + "TAPRegExt#features-udf"
_FEATURES_GEO = _STD + "TAPRegExt#features-adqlgeo"

#: The ADQL geometry functions TAPRegExt ``features-adqlgeo`` may declare (taplint E-GEOX).
ADQL_GEOMETRY = frozenset({
    "AREA", "BOX", "CENTROID", "CIRCLE", "CONTAINS", "COORD1", "COORD2", "COORDSYS",
    "DISTANCE", "INTERSECTS", "POINT", "POLYGON", "REGION"})

#: taplint E-UDFE's pattern for a UDF form.
_UDF_FORM = re.compile(r"([A-Za-z][A-Za-z0-9_]*)\s*\((.*)\)\s*->\s*(.*)")


@dataclass(frozen=True)
class Udf:
    """A user-defined ADQL function, declared as a TAPRegExt 1.0 ``features-udf`` feature.

    Parameters
    ----------
    form : str
        The signature, ``name(arg TYPE, ...) -> RETTYPE``, e.g.
        ``vo_clip_similarity(query VARCHAR) -> DOUBLE``.
    description : str
        What it computes; TOPCAT shows it, so include an example query.

    Raises
    ------
    ValueError
        For a form taplint (E-UDFE) or TOPCAT would reject: one that does not match
        ``name(args) -> type``, an argument name with an underscore (TOPCAT's ADQL parser
        refuses it), or a name in the ``ivo_`` namespace reserved for IVOA.
    """

    form: str
    description: str

    def __post_init__(self) -> None:
        match = _UDF_FORM.fullmatch(self.form.strip())
        if match is None:
            raise ValueError(f"UDF form {self.form!r} is not 'name(arg TYPE, ...) -> TYPE'")
        name, args, _ = match.groups()
        if name.lower().startswith("ivo_"):
            raise ValueError(f"UDF {name}: the ivo_ prefix is reserved for IVOA functions")
        for arg in filter(None, (a.strip() for a in args.split(","))):
            if "_" in arg.split()[0]:
                raise ValueError(f"UDF {name}: argument {arg.split()[0]!r} has an underscore")


# -- serialization ----------------------------------------------------------------------

def _root(tag: str, vosi: str, *prefixes: str) -> ET.Element:
    """A root element ``tag`` declaring ``vosi`` as the ``vosi`` namespace and ``prefixes``."""
    declared = {"xmlns:vosi": vosi}
    declared.update({f"xmlns:{p}": _NS[p] for p in prefixes})
    return ET.Element(tag, declared)


def _opt(parent: ET.Element, tag: str, text: str | None) -> None:
    """Append ``<tag>text</tag>`` unless ``text`` is empty (VODataService omits those)."""
    if text:
        _sub(parent, tag, text)


# -- capabilities -----------------------------------------------------------------------

def _interface(capability: ET.Element, url: str, *, use: str, xsi_type: str = "vs:ParamHTTP",
               version: str | None = None) -> None:
    attrs = {"xsi:type": xsi_type}
    if xsi_type == "vs:ParamHTTP":
        attrs["role"] = "std"
    if version:
        attrs["version"] = version
    _sub(_sub(capability, "interface", **attrs), "accessURL", url, use=use)


def _language(capability: ET.Element, udfs: Sequence[Udf], geometry: Sequence[str]) -> None:
    language = _sub(capability, "language")
    _sub(language, "name", "ADQL")
    for version in ("2.0", "2.1"):
        _sub(language, "version", version, **{"ivo-id": f"{_STD}ADQL#v{version}"})
    if udfs:
        features = _sub(language, "languageFeatures", type=_FEATURES_UDF)
        for udf in udfs:
            feature = _sub(features, "feature")
            _sub(feature, "form", udf.form)
            _opt(feature, "description", udf.description)
    if geometry:
        unknown = sorted(set(geometry) - ADQL_GEOMETRY)
        if unknown:
            raise ValueError(f"not ADQL geometry functions: {', '.join(unknown)}")
        features = _sub(language, "languageFeatures", type=_FEATURES_GEO)
        for name in geometry:
            _sub(_sub(features, "feature"), "form", name)


def _output_format(capability: ET.Element, fmt: OutputFormat) -> None:
    element = _sub(capability, "outputFormat", **({"ivo-id": fmt.ivo_id} if fmt.ivo_id else {}))
    _sub(element, "mime", fmt.mime)
    for alias in fmt.aliases:
        if alias != fmt.mime:
            _sub(element, "alias", alias)


def _limits(capability: ET.Element, limits: TapLimits) -> None:
    retention = _sub(capability, "retentionPeriod")
    _sub(retention, "default", limits.retention_default)
    _sub(retention, "hard", limits.retention_hard)
    execution = _sub(capability, "executionDuration")
    _sub(execution, "default", limits.execution_default)
    _sub(execution, "hard", limits.execution_hard)
    output = _sub(capability, "outputLimit")
    _sub(output, "default", limits.default_maxrec, unit="row")
    _sub(output, "hard", limits.hard_maxrec, unit="row")


def _tap_capability(root: ET.Element, tap_url: str, udfs: Sequence[Udf],
                    geometry: Sequence[str], formats: Iterable[OutputFormat],
                    limits: TapLimits) -> None:
    """The TAP capability; children in TAPRegExt 1.0 ``TableAccess`` sequence order."""
    capability = _sub(root, "capability", standardID=_STD + "TAP",
                      **{"xsi:type": "tr:TableAccess"})
    _interface(capability, tap_url, use="base", version="1.1")
    _sub(capability, "dataModel", "ObsCore-1.1", **{"ivo-id": _STD + "ObsCore#core-1.1"})
    _language(capability, udfs, geometry)
    for fmt in formats:
        _output_format(capability, fmt)
    _limits(capability, limits)


def capabilities_xml(base_url: str, *, udfs: Sequence[Udf], geometry: Sequence[str],
                     formats: Iterable[OutputFormat] = FORMATS,
                     limits: TapLimits = TapLimits(), datalink_url: str | None = None,
                     examples_url: str | None = None) -> bytes:
    """The VOSI capabilities document of ``/tap/capabilities`` (VOSI 1.1 §2.1).

    Parameters
    ----------
    base_url : str
        The service root; the TAP endpoints are under ``{base_url}/tap``.
    udfs : sequence of Udf
        User-defined functions, declared as TAPRegExt ``features-udf``.
    geometry : sequence of str
        The ADQL geometry functions implemented (``POINT``, ``CIRCLE``...), declared as
        ``features-adqlgeo``.
    formats : iterable of OutputFormat, optional
        The result formats; one ``outputFormat`` each.
    limits : TapLimits, optional
        Retention, execution duration and MAXREC limits.
    datalink_url : str, optional
        When given, a DataLink 1.1 ``#links-1.1`` capability with this base URL.
    examples_url : str, optional
        When given, a DALI ``#examples`` capability (a ``vr:WebBrowser`` interface).

    Returns
    -------
    bytes
        The UTF-8 document, with an XML declaration.

    Raises
    ------
    ValueError
        For a name in ``geometry`` that is not an ADQL geometry function.
    """
    tap = base_url.rstrip("/") + "/tap"
    prefixes = ("vs", "tr", "xsi") + (("vr",) if examples_url else ())
    root = _root("vosi:capabilities", _VOSI_CAPABILITIES, *prefixes)
    _tap_capability(root, tap, udfs, geometry, formats, limits)
    for standard, path, use, version in (("capabilities", "capabilities", "full", None),
                                         ("availability", "availability", "full", None),
                                         ("tables-1.1", "tables", "base", "1.1")):
        capability = _sub(root, "capability", standardID=f"{_STD}VOSI#{standard}")
        _interface(capability, f"{tap}/{path}", use=use, version=version)
    if datalink_url:
        capability = _sub(root, "capability", standardID=_STD + "DataLink#links-1.1")
        _interface(capability, datalink_url, use="base")
    if examples_url:
        capability = _sub(root, "capability", standardID=_STD + "DALI#examples")
        _interface(capability, examples_url, use="full", xsi_type="vr:WebBrowser")
    return _serialize(root)


# -- availability -----------------------------------------------------------------------

def availability_xml(available: bool, *, up_since: datetime | None = None,
                     note: str | None = None) -> bytes:
    """The VOSI availability document of ``/tap/availability`` (VOSI 1.1 §2.2).

    Parameters
    ----------
    available : bool
        Whether the service answers queries; ``False`` when its back end is broken.
    up_since : datetime, optional
        When it last became available; written in UTC (naive datetimes are UTC).
    note : str, optional
        A human-readable explanation, e.g. why it is down.

    Returns
    -------
    bytes
        The UTF-8 document, with an XML declaration.
    """
    root = _root("vosi:availability", _VOSI_AVAILABILITY)
    _sub(root, "vosi:available", "true" if available else "false")
    if up_since is not None:
        _sub(root, "vosi:upSince", utc_seconds(up_since))
    if note:
        _sub(root, "vosi:note", note)
    return _serialize(root)


# -- tables -----------------------------------------------------------------------------

def _column(parent: ET.Element, column: TapColumn) -> None:
    """A VODataService 1.1 ``TableParam``; children in schema order."""
    element = _sub(parent, "column")
    _sub(element, "name", adql_column_name(column.name))
    for tag in ("description", "unit", "ucd", "utype"):
        _opt(element, tag, getattr(column, tag))
    attrs = {"xsi:type": "vs:VOTableType"}
    if column.arraysize:
        attrs["arraysize"] = column.arraysize
    if column.xtype:
        attrs["extendedType"] = column.xtype
    _sub(element, "dataType", column.datatype, **attrs)
    # VODataService 1.1: "nullable" means the column may contain nulls, so it is a flag
    # to set when that is true and leave out otherwise.
    for flag in ("indexed", "nullable", "principal", "std"):
        if getattr(column, flag):
            _sub(element, "flag", flag)


def _foreign_key(parent: ET.Element, key: ForeignKey) -> None:
    element = _sub(parent, "foreignKey")
    _sub(element, "targetTable", key.target_table)
    for source, target in zip(key.from_columns, key.target_columns, strict=True):
        pair = _sub(element, "fkColumn")
        _sub(pair, "fromColumn", adql_column_name(source))
        _sub(pair, "targetColumn", adql_column_name(target))
    _opt(element, "description", key.description)


def _table(element: ET.Element, table: TapTable, *, columns: bool = True) -> ET.Element:
    """Fill ``element`` as a VODataService 1.1 ``Table``; children in schema order."""
    element.set("type", table.table_type)
    _sub(element, "name", table.name)
    _opt(element, "description", table.description)
    _opt(element, "utype", table.utype)
    if columns:
        for column in table.columns:
            _column(element, column)
        for key in table.keys:
            _foreign_key(element, key)
    return element


def tableset_xml(tables: Iterable[TapTable], *, detail: str = "max") -> bytes:
    """The VOSI tableset document of ``/tap/tables`` (VOSI 1.1 §2.3, VODataService 1.1).

    Parameters
    ----------
    tables : iterable of TapTable
        The published tables in display order; schemas appear in the order of their
        first table.
    detail : {"max", "min"}, optional
        ``max`` describes every column and foreign key; ``min`` (VOSI 1.1 ``detail=min``)
        leaves them out, for clients that fetch ``/tap/tables/{name}`` as needed.

    Returns
    -------
    bytes
        The UTF-8 document, with an XML declaration.

    Raises
    ------
    ValueError
        For a ``detail`` other than ``min`` or ``max``.
    """
    if detail not in ("min", "max"):
        raise ValueError(f"detail must be 'min' or 'max', not {detail!r}")
    root = _root("vosi:tableset", _VOSI_TABLES, "vs", "xsi")
    schemas: dict[str, ET.Element] = {}
    for table in tables:
        if table.schema not in schemas:
            schemas[table.schema] = _sub(root, "schema")
            _sub(schemas[table.schema], "name", table.schema)
            _opt(schemas[table.schema], "description", SCHEMA_DESCRIPTIONS.get(table.schema))
        _table(_sub(schemas[table.schema], "table"), table, columns=detail == "max")
    return _serialize(root)


def table_xml(table: TapTable) -> bytes:
    """The VOSI document of one table, ``/tap/tables/{name}`` (VOSI 1.1 §2.3).

    Parameters
    ----------
    table : TapTable
        The table, described in full (columns and foreign keys).

    Returns
    -------
    bytes
        The UTF-8 ``<vosi:table>`` document, with an XML declaration.
    """
    root = _root("vosi:table", _VOSI_TABLES, "vs", "xsi")
    return _serialize(_table(root, table))
