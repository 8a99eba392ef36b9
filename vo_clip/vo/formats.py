"""Output formats of query results, written once (after DaCHS' ``FORMAT_CODES``).

One row per format drives RESPONSEFORMAT parsing, the Content-Type of responses and the
``outputFormat`` elements of the TAP capability, so the three cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass

from .faults import UsageFault

__all__ = ["FORMATS", "OutputFormat", "output_format"]


@dataclass(frozen=True)
class OutputFormat:
    """A result serialization: ``mime`` answers requests, ``aliases`` are short names."""

    code: str
    mime: str
    aliases: tuple[str, ...]
    ivo_id: str | None = None
    description: str = ""


_TAPREGEXT = "ivo://ivoa.net/std/TAPRegExt#"

FORMATS: tuple[OutputFormat, ...] = (
    OutputFormat("votable", "application/x-votable+xml", ("votable", "text/xml"),
                 _TAPREGEXT + "output-votable-td", "VOTable 1.4, TABLEDATA serialization"),
    OutputFormat("votable-binary2", "application/x-votable+xml;serialization=BINARY2",
                 ("votable/b2", "votable-binary2"),
                 _TAPREGEXT + "output-votable-binary2", "VOTable 1.4, BINARY2 serialization"),
    OutputFormat("csv", "text/csv;header=present", ("csv", "text/csv"),
                 description="Comma-separated values with a header line"),
    OutputFormat("tsv", "text/tab-separated-values", ("tsv", "text/tab-separated-values"),
                 description="Tab-separated values with a header line"),
)


def output_format(value: str | None) -> OutputFormat:
    """The format a RESPONSEFORMAT (or FORMAT) value asks for; VOTable when absent.

    MIME parameters other than ``serialization`` are ignored
    (``application/x-votable+xml;version=1.4`` is VOTable).

    Raises
    ------
    UsageFault
        For a format the service does not write.
    """
    if value is None or not value.strip():
        return FORMATS[0]
    wanted = value.strip()
    lowered = wanted.lower().replace(" ", "")
    for fmt in FORMATS:
        if lowered == fmt.mime.lower() or lowered in fmt.aliases or lowered == fmt.code:
            return fmt
    base, _, params = lowered.partition(";")
    if base in ("application/x-votable+xml", "text/xml", "application/xml"):
        serialization = dict(p.partition("=")[::2] for p in params.split(";") if p)
        if serialization.get("serialization", "tabledata") == "binary2":
            return FORMATS[1]
        if serialization.get("serialization", "tabledata") == "tabledata":
            return FORMATS[0]
    if base in ("text/csv",):
        return FORMATS[2]
    known = ", ".join(f"{f.mime} ({'/'.join(f.aliases)})" for f in FORMATS)
    raise UsageFault(f"unsupported RESPONSEFORMAT {wanted!r}", f"use one of: {known}",
                     parameter="RESPONSEFORMAT")
