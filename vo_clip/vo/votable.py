"""VOTable output (IVOA VOTable 1.4 with the DALI result conventions).

A result document holds one ``RESOURCE type="results"`` whose ``QUERY_STATUS`` INFO
precedes its single TABLE, which is where pyvo and TOPCAT look for the status. The
document is version 1.4 in the 1.3 namespace: STILTS' validators reject 1.5.
"""

from __future__ import annotations

import io

from astropy.io.votable.tree import Info, Resource, VOTableFile
from astropy.table import Table

__all__ = ["table_to_votable"]


def table_to_votable(table: Table, *, status: str = "OK", description: str | None = None) -> bytes:
    """Serialise ``table`` as a DALI result VOTable (TABLEDATA)."""
    votable = VOTableFile(version="1.4")
    resource = Resource(type="results")
    votable.resources.append(resource)
    info = Info(name="QUERY_STATUS", value=status)
    info.ID = None  # two INFOs named QUERY_STATUS (overflow) must not collide on ID
    resource.infos.append(info)
    vo_table = _from_table(votable, table)
    if description:
        vo_table.description = description
    resource.tables.append(vo_table)
    out = io.BytesIO()
    votable.to_xml(out, tabledata_format="tabledata")
    return out.getvalue()


def _from_table(votable: VOTableFile, table: Table):
    from astropy.io.votable.tree import TableElement

    element = TableElement.from_table(votable, table)
    for field, name in zip(element.fields, table.colnames):
        field.ID = None  # astropy sets ID=name; ids are assigned where references need them
        if table[name].dtype.kind in "UO":
            ascii_only = all(str(v).isascii() for v in table[name])
            field.datatype = "char" if ascii_only else "unicodeChar"
            field.arraysize = "*"
    return element
