"""Streaming VOTable 1.4 (TABLEDATA and BINARY2), CSV and TSV writers for query results.

Every TAP result and error goes through this module, so it is written for speed and for
the validators rather than on top of astropy's object tree:

* The document is VOTable 1.4 in the ``http://www.ivoa.net/xml/VOTable/v1.3`` namespace
  (VOTable 1.4 §3); STILTS 3.4.7 does not know 1.5 and would then apply 1.2 rules, where an
  empty integer cell is an error.
* DALI 1.1 §5.4.1 puts one ``QUERY_STATUS`` INFO before the TABLE of the
  ``RESOURCE type="results"``; an overflow adds a second one, ``OVERFLOW``, after
  ``</TABLE>`` (pyvo reads the last). No INFO carries an ``ID``: two INFOs named
  QUERY_STATUS would collide on it (astropy sets ``ID=name``).
* An error (DALI §5.4.2) is that RESOURCE with only an ``ERROR`` INFO whose text is the
  message, and no TABLE.
* TABLEDATA (VOTable 1.4 §5.1): an empty ``<TD/>`` is NULL for every scalar type (1.3 and
  later); NaN is NULL for floating types; a fixed-size array cannot be empty (votlint:
  "Bad double string ''"), so a NULL one is written as NaNs. ``char`` is ASCII in 1.4
  (§2.1), so non-ASCII characters in ``char`` cells become ``?``; use ``unicodeChar``.
  Characters that XML 1.0 forbids become U+FFFD.
* BINARY2 (VOTable 1.4 §5.5): each row starts with a NULL bitmask (MSB first, bit set =
  NULL); cells are big-endian, variable-length ones prefixed by a 4-byte count, and NULL
  cells still occupy their bytes. The stream is base64 in 76-character lines.

Rows are converted by one converter per FIELD, chosen once (no per-cell type dispatch),
and the output is yielded in chunks so that Flask can stream large results.
"""

from __future__ import annotations

import base64
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .xmldoc import XML_FORBIDDEN

if TYPE_CHECKING:
    from astropy.table import Column, Table

__all__ = [
    "Field",
    "error_votable",
    "escape_text",
    "table_to_votable",
    "votable_bytes",
    "write_delimited",
    "write_votable",
]

VOTABLE_NS = "http://www.ivoa.net/xml/VOTable/v1.3"
_XML_HEAD = (
    '<?xml version="1.0" encoding="UTF-8"?>\n'
    f'<VOTABLE version="1.4" xmlns="{VOTABLE_NS}" '
    'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
    '<RESOURCE type="results">\n'
)
_ROWS_PER_CHUNK = 1000  # text rows per yielded chunk
_B64_LINE = 57  # binary bytes per 76-character base64 line
_B64_CHUNK = _B64_LINE * 1024  # binary bytes per yielded chunk (about 78 KB of base64)

# datatype -> converter family; unsupported types (bit, complex) raise ValueError
_KIND = {
    "char": "char", "unicodeChar": "unicode", "boolean": "bool", "unsignedByte": "int",
    "short": "int", "int": "int", "long": "int", "float": "float", "double": "float",
}
_STRUCT_CODE = {"unsignedByte": "B", "short": "h", "int": "i", "long": "q",
                "float": "f", "double": "d"}

# NULL of a fixed-size integer array in TABLEDATA, declared by <VALUES null>: such an
# array cannot be empty and integers have no NaN
_INT_NULL = {"unsignedByte": 255, "short": -(2**15), "int": -(2**31), "long": -(2**63)}

_TEXT_SPECIAL = re.compile(f"[&<>\r{XML_FORBIDDEN}]")
_ATTR_SPECIAL = re.compile(f"[&<>\"\t\n\r{XML_FORBIDDEN}]")
_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
             "\t": "&#9;", "\n": "&#10;", "\r": "&#13;"}
_CSV_SPECIAL_BASE = '"\r\n'
_TSV_CLEAN = str.maketrans({"\t": " ", "\n": " ", "\r": " "})
_isnan = math.isnan
_pack_length = struct.Struct(">I").pack
_NO_LENGTH = _pack_length(0)

Converter = Callable[[Any], "str | None"]
Encoder = Callable[[Any], "bytes | None"]


@dataclass(frozen=True)
class Field:
    """One result column, written as a VOTable FIELD (VOTable 1.4 §4).

    ``datatype`` is a VOTable type: char, unicodeChar, boolean, unsignedByte, short,
    int, long, float or double. ``arraysize`` is ``"*"`` for strings, ``"2"`` or
    ``"*"`` (or ``"AxB"``) for numeric arrays, None for scalars. ``id`` becomes the
    FIELD ``ID``: set it only where something (a DataLink descriptor) refers to it.
    """

    name: str
    datatype: str
    arraysize: str | None = None
    xtype: str | None = None
    unit: str | None = None
    ucd: str | None = None
    utype: str | None = None
    description: str | None = None
    id: str | None = None


# -- XML text -------------------------------------------------------------------------


def _entity(match: re.Match) -> str:
    return _ENTITIES.get(match.group(), "\ufffd")


def escape_text(text: str) -> str:
    """Element content: escape markup, keep CR, replace characters XML 1.0 forbids."""
    return _TEXT_SPECIAL.sub(_entity, text) if _TEXT_SPECIAL.search(text) else text


def _escape_attr(text: Any) -> str:
    """An attribute value: as element content, plus quotes and whitespace kept verbatim."""
    text = str(text)
    return _ATTR_SPECIAL.sub(_entity, text) if _ATTR_SPECIAL.search(text) else text


def _attrs(pairs: Iterable[tuple[str, Any]]) -> str:
    return "".join(f' {k}="{_escape_attr(v)}"' for k, v in pairs if v is not None)


def _info(name: str, value: Any) -> str:
    value = "" if value is None else value  # INFO/@value is required
    return f"<INFO{_attrs([('name', name), ('value', value)])}/>\n"


def _field_xml(field: Field) -> str:
    attrs = _attrs([("name", field.name), ("ID", field.id), ("datatype", field.datatype),
                    ("arraysize", field.arraysize), ("xtype", field.xtype),
                    ("unit", field.unit), ("ucd", field.ucd), ("utype", field.utype)])
    content = ""
    if field.description:
        content = f"<DESCRIPTION>{escape_text(field.description)}</DESCRIPTION>"
    if _int_array_null(field) is not None:
        content += f'<VALUES null="{_int_array_null(field)}"/>'
    return f"<FIELD{attrs}>{content}</FIELD>\n" if content else f"<FIELD{attrs}/>\n"


# -- cell values as text (TABLEDATA, CSV, TSV) ------------------------------------------


def _kind(field: Field) -> str:
    try:
        kind = _KIND[field.datatype]
    except KeyError:
        raise ValueError(f"FIELD {field.name!r}: unsupported VOTable datatype "
                         f"{field.datatype!r}") from None
    if kind == "bool" and field.arraysize is not None:
        raise ValueError(f"FIELD {field.name!r}: boolean arrays are not supported")
    return kind


def _array_count(arraysize: str | None) -> int | None:
    """None for a scalar, 0 for a variable-length array, else the number of elements."""
    if arraysize is None:
        return None
    if arraysize.endswith("*"):
        return 0
    return math.prod(int(dim) for dim in arraysize.split("x"))


def _int_array_null(field: Field) -> int | None:
    if _KIND.get(field.datatype) == "int" and _array_count(field.arraysize):
        return _INT_NULL[field.datatype]
    return None


def _array_blank(field: Field) -> float | int | None:
    """The element of a NULL numeric array: NaN, or for fixed integer arrays their null."""
    return math.nan if _KIND.get(field.datatype) == "float" else _int_array_null(field)


def _to_str(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    isoformat = getattr(value, "isoformat", None)  # datetime for xtype="timestamp"
    return isoformat() if isoformat is not None else str(value)


def _float_text(value: Any) -> str | None:
    if value is None:
        return None
    number = float(value)
    if _isnan(number):
        return None
    text = repr(number)
    if text[-1] == "f":  # inf, -inf
        return "+Inf" if number > 0 else "-Inf"
    return text


def _float_item(value: Any) -> str:
    return _float_text(value) or "NaN"


def _is_nan(value: Any) -> bool:
    """A float NaN, as SQL NULLs in integer columns may arrive from numpy."""
    return isinstance(value, float) and _isnan(value)


def _int_text(value: Any) -> str | None:
    return None if value is None or _is_nan(value) else str(int(value))


def _bool_text(value: Any) -> str | None:
    return None if value is None else ("true" if value else "false")


def _string_text(ascii_only: bool, escape: Callable[[str], str]) -> Converter:
    if ascii_only:
        def convert(value: Any) -> str | None:
            if value is None:
                return None
            text = escape(value if type(value) is str else _to_str(value))
            if text.isascii():
                return text
            return text.encode("ascii", "replace").decode("ascii")
    else:
        def convert(value: Any) -> str | None:
            if value is None:
                return None
            return escape(value if type(value) is str else _to_str(value))
    return convert


def _array_text(field: Field, kind: str, count: int) -> Converter:
    blank = _array_blank(field)
    item = _float_item if kind == "float" else (lambda v: str(int(blank if v is None else v)))
    null = " ".join([item(blank)] * count) if count else None

    def convert(value: Any) -> str | None:
        if value is None:
            return null
        items = value.split() if isinstance(value, str) else value
        return " ".join(map(item, items)) or null
    return convert


def _text_converter(field: Field, escape: Callable[[str], str], *,
                    votable: bool = True) -> Converter:
    """The text of a cell, or None for NULL; ``escape`` is applied to strings.

    ``votable`` keeps ``char`` values ASCII and NULL fixed-size arrays non-empty, as
    VOTable 1.4 requires (CSV has neither rule).
    """
    kind = _kind(field)
    count = _array_count(field.arraysize)
    if kind in ("char", "unicode"):
        convert = _string_text(votable and kind == "char", escape)
        if count:  # fixed length: cut as BINARY2 does (astropy W46)
            return lambda v: convert(v[:count] if isinstance(v, str) else v)
        return convert
    if count is not None:
        return _array_text(field, kind, count if votable else 0)
    return {"int": _int_text, "float": _float_text, "bool": _bool_text}[kind]


# -- cell values as bytes (BINARY2) -----------------------------------------------------


def _scalar_encoder(field: Field, kind: str) -> tuple[Encoder, bytes]:
    pack = struct.Struct(">" + _STRUCT_CODE[field.datatype]).pack
    if kind == "float":
        def encode(value: Any) -> bytes | None:
            if value is None:
                return None
            number = float(value)
            return None if _isnan(number) else pack(number)
        return encode, pack(math.nan)

    def encode_int(value: Any) -> bytes | None:
        return None if value is None or _is_nan(value) else pack(int(value))
    return encode_int, pack(0)


def _array_encoder(field: Field, kind: str, count: int) -> tuple[Encoder, bytes]:
    code = _STRUCT_CODE[field.datatype]
    cast, blank = (float if kind == "float" else int), _array_blank(field)

    def items(value: Any) -> list:
        values = value.split() if isinstance(value, str) else value
        return [blank if v is None else cast(v) for v in values]
    if count:
        pack = struct.Struct(f">{count}{code}").pack
        return (lambda v: None if v is None else pack(*items(v))), pack(*[blank] * count)

    def encode(value: Any) -> bytes | None:
        if value is None:
            return None
        numbers = items(value)
        return _pack_length(len(numbers)) + struct.pack(f">{len(numbers)}{code}", *numbers)
    return encode, _NO_LENGTH


def _string_encoder(field: Field, kind: str) -> tuple[Encoder, bytes]:
    codec, width = ("ascii", 1) if kind == "char" else ("utf-16-be", 2)
    count = _array_count(field.arraysize)
    size = width * (1 if count is None else count)  # a scalar char is one character

    def encode(value: Any) -> bytes | None:
        if value is None:
            return None
        text = value if type(value) is str else _to_str(value)
        data = text.encode(codec, "replace")
        if count == 0:
            return _pack_length(len(data) // width) + data
        return data[:size].ljust(size, b"\0")
    return encode, (_NO_LENGTH if count == 0 else b"\0" * size)


def _bool_encoder(value: Any) -> bytes | None:
    return None if value is None else (b"T" if value else b"F")


def _binary_encoder(field: Field) -> tuple[Encoder, bytes]:
    """The bytes of a cell (None for NULL) and the filler written for a NULL cell."""
    kind = _kind(field)
    if kind in ("char", "unicode"):
        return _string_encoder(field, kind)
    if kind == "bool":
        return _bool_encoder, b"?"
    count = _array_count(field.arraysize)
    if count is None:
        return _scalar_encoder(field, kind)
    return _array_encoder(field, kind, count)


# -- documents ---------------------------------------------------------------------------


def _tabledata_body(converters: list[Converter], rows: Iterable[Sequence]) -> Iterator[bytes]:
    batch: list[str] = []
    for row in rows:
        cells = ["<TD/>" if (t := c(v)) is None else f"<TD>{t}</TD>"
                 for c, v in zip(converters, row, strict=True)]
        batch.append(f"<TR>{''.join(cells)}</TR>\n")
        if len(batch) >= _ROWS_PER_CHUNK:
            yield "".join(batch).encode("utf-8")
            batch.clear()
    if batch:
        yield "".join(batch).encode("utf-8")


def _binary2_body(coders: list[tuple[Encoder, bytes]], rows: Iterable[Sequence]
                  ) -> Iterator[bytes]:
    flag_bytes = (len(coders) + 7) // 8
    shift = flag_bytes * 8 - len(coders)
    buffer = bytearray()
    for row in rows:
        nulls, cells = 0, []
        for (encode, filler), value in zip(coders, row, strict=True):
            data = encode(value)
            nulls <<= 1
            if data is None:
                nulls |= 1
                data = filler
            cells.append(data)
        buffer += (nulls << shift).to_bytes(flag_bytes, "big")
        buffer += b"".join(cells)
        if len(buffer) >= _B64_CHUNK:
            cut = len(buffer) - len(buffer) % _B64_LINE
            yield base64.encodebytes(buffer[:cut])
            del buffer[:cut]
    if buffer:
        yield base64.encodebytes(bytes(buffer))


def _table_head(fields: Sequence[Field], table_name: str | None,
                description: str | None) -> str:
    parts = [f"<TABLE{_attrs([('name', table_name)])}>\n"]
    if description:
        parts.append(f"<DESCRIPTION>{escape_text(description)}</DESCRIPTION>\n")
    parts.extend(_field_xml(f) for f in fields)
    return "".join(parts)


def write_votable(fields: Sequence[Field], rows: Iterable[Sequence], *, status: str = "OK",
                  overflow: bool = False, serialization: str = "TABLEDATA",
                  infos: Sequence[tuple[str, str]] = (), extra_resources: Sequence[str] = (),
                  table_name: str | None = None, description: str | None = None
                  ) -> Iterator[bytes]:
    """Stream a DALI result document, VOTable 1.4, as UTF-8 chunks.

    Parameters
    ----------
    fields : sequence of Field
        The columns, in order.
    rows : iterable of sequences
        One value per field: None (NULL), bool, int, float, str, or for array fields a
        sequence of numbers or a space-separated string of numbers. Consumed lazily.
    status : str
        Value of the QUERY_STATUS INFO before the TABLE.
    overflow : bool
        Add ``<INFO name="QUERY_STATUS" value="OVERFLOW"/>`` after the TABLE.
    serialization : {"TABLEDATA", "BINARY2"}
        How the rows are written.
    infos : sequence of (name, value)
        More INFOs in the results RESOURCE (``QUERY``, ``standardID``...).
    extra_resources : sequence of str
        Pre-rendered RESOURCE elements (service descriptors), written verbatim after the
        results RESOURCE.
    table_name, description : str, optional
        The TABLE ``name`` and DESCRIPTION.

    Returns
    -------
    iterator of bytes
        The document; converters are chosen now, so a bad FIELD raises here.

    Raises
    ------
    ValueError
        For an unknown serialization, datatype or arraysize.
    """
    fields = list(fields)
    if serialization == "TABLEDATA":
        body = _tabledata_body([_text_converter(f, escape_text) for f in fields], rows)
        open_data, close_data = "<DATA><TABLEDATA>\n", "</TABLEDATA></DATA>\n"
    elif serialization == "BINARY2":
        body = _binary2_body([_binary_encoder(f) for f in fields], rows)
        open_data = '<DATA><BINARY2><STREAM encoding="base64">\n'
        close_data = "</STREAM></BINARY2></DATA>\n"
    else:
        raise ValueError(f"serialization must be TABLEDATA or BINARY2, not {serialization!r}")
    head = "".join([_XML_HEAD, _info("QUERY_STATUS", status),
                    *(_info(n, v) for n, v in infos),
                    _table_head(fields, table_name, description), open_data])
    tail = "".join([close_data, "</TABLE>\n",
                    _info("QUERY_STATUS", "OVERFLOW") if overflow else "",
                    "</RESOURCE>\n", *extra_resources, "</VOTABLE>\n"])
    return _chain(head.encode("utf-8"), body, tail.encode("utf-8", "replace"))


def _chain(head: bytes, body: Iterator[bytes], tail: bytes) -> Iterator[bytes]:
    yield head
    yield from body
    yield tail


def votable_bytes(fields: Sequence[Field], rows: Iterable[Sequence], *, status: str = "OK",
                  overflow: bool = False, serialization: str = "TABLEDATA",
                  infos: Sequence[tuple[str, str]] = (), extra_resources: Sequence[str] = (),
                  table_name: str | None = None, description: str | None = None) -> bytes:
    """The whole document of :func:`write_votable`, which documents the parameters.

    Returns
    -------
    bytes
        The UTF-8 VOTable document.
    """
    return b"".join(write_votable(
        fields, rows, status=status, overflow=overflow, serialization=serialization,
        infos=infos, extra_resources=extra_resources, table_name=table_name,
        description=description))


def error_votable(message: str, *, infos: Sequence[tuple[str, str]] = ()) -> bytes:
    """A DALI error document (DALI 1.1 §5.4.2): QUERY_STATUS ERROR, no TABLE.

    Parameters
    ----------
    message : str
        The INFO's text, which clients show; ``"unknown error"`` when blank.
    infos : sequence of (name, value)
        More INFOs after the status.

    Returns
    -------
    bytes
        The UTF-8 VOTable document.
    """
    text = str(message) if message is not None and str(message).strip() else "unknown error"
    return "".join([
        _XML_HEAD, f'<INFO name="QUERY_STATUS" value="ERROR">{escape_text(text)}</INFO>\n',
        *(_info(n, v) for n, v in infos), "</RESOURCE>\n</VOTABLE>\n",
    ]).encode("utf-8")


# -- CSV and TSV ---------------------------------------------------------------------------


def _csv_quoter(delimiter: str) -> Callable[[str], str]:
    special = re.compile(f"[{re.escape(_CSV_SPECIAL_BASE + delimiter)}]")

    def quote(text: str) -> str:
        if special.search(text) is None:
            return text
        return '"' + text.replace('"', '""') + '"'
    return quote


def _tsv_clean(text: str) -> str:
    return text.translate(_TSV_CLEAN)


def write_delimited(fields: Sequence[Field], rows: Iterable[Sequence], *,
                    delimiter: str = ",") -> Iterator[bytes]:
    """Stream CSV (RFC 4180) or, with ``delimiter="\\t"``, TSV, header line first.

    CSV quotes a value holding the delimiter, a quote or a line break and ends lines
    with CRLF. TSV ends lines with LF and turns tabs and line breaks in values into
    spaces. NULL is an empty value; numbers, booleans and arrays are written as in
    TABLEDATA.

    Parameters
    ----------
    fields : sequence of Field
        The columns; their names make the header line.
    rows : iterable of sequences
        As for :func:`write_votable`.
    delimiter : str
        One character; not a letter, digit, space, quote, ``+``, ``-`` or ``.``.

    Returns
    -------
    iterator of bytes
        UTF-8 chunks.
    """
    if len(delimiter) != 1 or delimiter.isalnum() or delimiter in ' "+-.\r\n':
        raise ValueError(f"unusable delimiter {delimiter!r}")
    tsv = delimiter == "\t"
    escape = _tsv_clean if tsv else _csv_quoter(delimiter)
    converters = [_text_converter(f, escape, votable=False) for f in fields]
    newline = "\n" if tsv else "\r\n"
    header = delimiter.join(escape(f.name) for f in fields) + newline
    return _delimited_body(header, converters, rows, delimiter, newline)


def _delimited_body(header: str, converters: list[Converter], rows: Iterable[Sequence],
                    delimiter: str, newline: str) -> Iterator[bytes]:
    batch = [header]
    for row in rows:
        batch.append(delimiter.join([c(v) or "" for c, v in zip(converters, row, strict=True)]))
        batch.append(newline)
        if len(batch) >= 2 * _ROWS_PER_CHUNK:
            yield "".join(batch).encode("utf-8", "replace")
            batch.clear()
    if batch:
        yield "".join(batch).encode("utf-8", "replace")


# -- astropy tables (the CLI) ----------------------------------------------------------------


def _column_datatype(column: Column) -> tuple[str, str | None]:
    kind, size = column.dtype.kind, column.dtype.itemsize
    if kind == "b":
        return "boolean", None
    if kind in "iu":
        signed = {1: "short", 2: "short", 4: "int", 8: "long"}
        unsigned = {1: "unsignedByte", 2: "int", 4: "long", 8: "long"}
        return (signed if kind == "i" else unsigned)[size], None
    if kind == "f":
        return ("float" if size <= 4 else "double"), None
    texts = [v for v in column.tolist() if isinstance(v, str)]
    return ("char" if all(t.isascii() for t in texts) else "unicodeChar"), "*"


def _column_field(column: Column) -> Field:
    datatype, arraysize = _column_datatype(column)
    if arraysize is None and column.ndim > 1:
        arraysize = "x".join(str(d) for d in reversed(column.shape[1:]))
    unit = None
    if column.unit is not None:
        try:
            unit = column.unit.to_string("vounit")
        except ValueError:
            unit = str(column.unit)
    meta = column.meta or {}
    return Field(column.name, datatype, arraysize, xtype=meta.get("xtype"), unit=unit,
                 ucd=meta.get("ucd"), utype=meta.get("utype"),
                 description=column.description or None)


def _column_values(column: Column) -> list:
    """Python values, None where masked; multidimensional cells flattened."""
    if column.ndim > 2:
        import numpy as np

        return [np.ravel(cell).tolist() for cell in column]
    return column.tolist()  # masked entries of a MaskedColumn become None


def table_to_votable(table: Table, *, status: str = "OK",
                     description: str | None = None) -> bytes:
    """Serialise an astropy ``table`` as a DALI result VOTable (TABLEDATA).

    FIELDs come from the columns: datatype from the dtype (strings are ``char``, or
    ``unicodeChar`` when a value is not ASCII), unit, description, and ``ucd``,
    ``utype`` and ``xtype`` from ``column.meta``. Masked values are NULL.

    Parameters
    ----------
    table : astropy.table.Table
        The rows to write.
    status : str
        The QUERY_STATUS value.
    description : str, optional
        The TABLE DESCRIPTION.

    Returns
    -------
    bytes
        The UTF-8 VOTable document.
    """
    columns = [table[name] for name in table.colnames]
    fields = [_column_field(c) for c in columns]
    rows = zip(*(_column_values(c) for c in columns))
    return votable_bytes(fields, rows, status=status, description=description)
