"""DataLink 1.1 ``{links}``: what a client can reach from one observation.

For each ID (a publisher DID, ``ivo://{authority}/vo_clip?{obs_id}``) the links
document lists, consecutively and in input order: the science product (``#this``: the
archive's own product URL, or a FITS image made from the preview with a celestial WCS),
the preview (``#preview``), the proposal page with its abstract and PAPERCLIP
summary (``#auxiliary``: STILTS 3.4.7 does not know ``#documentation``), and two
service descriptors that a client calls with the ID: the most similar observations and
PAPERCLIP's description retrieval (``#proc``, told apart by ``local_semantics``). An
ID that is malformed or unknown gets one row with an ``error_message``
(``UsageFault: …``/``NotFoundFault: …``), never an HTTP error (DataLink 1.1 §3.2.4).

The service descriptors (DataLink 1.1 §4) are also what TAP results carry, so TOPCAT's
and Aladin's DataLink activation works from any query that selects
``obs_publisher_did``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

from .faults import DALIFault, NotFoundFault, UsageFault
from .ranked import adql_string, ranked_adql
from .votable import Field, escape_text

__all__ = [
    "DATALINK_CONTENT_TYPE",
    "DATALINK_STANDARD_ID",
    "LINK_FIELDS",
    "Link",
    "LinkResolver",
    "MAX_IDS",
    "links_descriptor",
    "links_document_descriptors",
    "service_descriptor",
    "similar_adql",
]

DATALINK_STANDARD_ID = "ivo://ivoa.net/std/DataLink#links-1.1"
#: The media type of a links document; datalinklint wants exactly this (no space).
DATALINK_CONTENT_TYPE = "application/x-votable+xml;content=datalink"
#: IDs answered per request; more are cut at a whole ID with OVERFLOW.
MAX_IDS = 200

_ID_FIELD = "dl_id"
#: What the similar and describe services answer (TOPCAT then offers "Load Table").
_VOTABLE = "application/x-votable+xml"

#: The {links} table columns (DataLink 1.1 §3.2), ID first: pyvo groups rows by it.
LINK_FIELDS = (
    Field("ID", "char", arraysize="*", ucd="meta.id;meta.main", id=_ID_FIELD,
          description="The identifier the links are for"),
    Field("access_url", "char", arraysize="*", ucd="meta.ref.url",
          description="URL of the linked resource"),
    Field("service_def", "char", arraysize="*", ucd="meta.ref",
          description="ID of the service descriptor to call instead of a URL"),
    Field("error_message", "char", arraysize="*", ucd="meta.code.error",
          description="Why the ID has no links"),
    Field("description", "char", arraysize="*", ucd="meta.note",
          description="What the link is"),
    Field("semantics", "char", arraysize="*", ucd="meta.code",
          description="Relation to the ID (DataLink core vocabulary)"),
    Field("content_type", "char", arraysize="*", ucd="meta.code.mime",
          description="Media type of the linked resource"),
    Field("content_length", "long", unit="byte", ucd="phys.size;meta.file",
          description="Size of the linked resource"),
    Field("local_semantics", "char", arraysize="*", ucd="meta.id.assoc",
          description="This service's name for the link"),
)


@dataclass(frozen=True)
class Link:
    """One row of a links document: exactly one of URL, descriptor or error is set."""

    id: str
    semantics: str
    description: str | None = None
    access_url: str | None = None
    service_def: str | None = None
    error_message: str | None = None
    content_type: str | None = None
    content_length: int | None = None
    local_semantics: str | None = None

    def row(self) -> tuple:
        return (self.id, self.access_url, self.service_def, self.error_message,
                self.description, self.semantics, self.content_type, self.content_length,
                self.local_semantics)


class LinkResolver:
    """The links of observations, named by publisher DID.

    Parameters
    ----------
    observation : callable
        ``obs_id -> dict | None``: the observation's catalog columns.
    preview_file : callable
        ``obs_id -> Path``; raises NotFoundFault when there is no preview on disk.
    authority : str
        The IVOA authority of this service's DIDs.
    base_url : str
        Where the service is reached; every link is absolute.
    """

    def __init__(self, observation: Callable[[str], dict | None],
                 preview_file: Callable[[str], Path], *, authority: str, base_url: str):
        self._observation = observation
        self._preview_file = preview_file
        self.prefix = f"ivo://{authority}/vo_clip?"
        self.base_url = base_url.rstrip("/")

    def obs_id(self, did: str) -> str:
        """The obs_id a DID names (a bare obs_id is accepted too).

        Raises
        ------
        UsageFault
            If ``did`` is empty or an ivo:// identifier of another service.
        """
        did = (did or "").strip()
        if not did:
            raise UsageFault("empty ID", parameter="ID")
        if did.startswith("ivo://"):
            if not did.lower().startswith(self.prefix.lower()) or len(did) == len(self.prefix):
                raise UsageFault(f"{did!r} is not an identifier of this service "
                                 f"(expected {self.prefix}OBS_ID)", parameter="ID")
            return did[len(self.prefix):]
        if "://" in did or any(c.isspace() for c in did):
            raise UsageFault(f"malformed ID {did!r} (expected {self.prefix}OBS_ID)",
                             parameter="ID")
        return did

    def links(self, ids: Sequence[str]) -> list[Link]:
        """Every link of every ID, IDs in input order; errors about an ID become error
        rows, and the service's own faults (damaged data, a stopped lookup) fail the
        whole request, since no ID would fare better."""
        rows: list[Link] = []
        for did in ids:
            try:
                rows += self._links_of(did)
            except DALIFault as fault:
                if fault.status >= 500:
                    raise
                rows.append(Link(did, "#this", error_message=fault.vo_text()))
        return rows

    def _links_of(self, did: str) -> list[Link]:
        obs_id = self.obs_id(did)
        row = self._observation(obs_id)
        if row is None:
            raise NotFoundFault(f"no observation {obs_id!r} in this service")
        return [self._product(did, row), *self._preview(did, obs_id),
                *self._documentation(did, row),
                Link(did, "#proc", service_def="similar", local_semantics="similar",
                     content_type=_VOTABLE,
                     description="The observations whose previews are most similar to "
                                 "this one (CLIP image embeddings)"),
                Link(did, "#proc", service_def="describe", local_semantics="describe",
                     content_type=_VOTABLE,
                     description="The astrophysical object classes and science use cases "
                                 "whose descriptions best match this preview")]

    def _product(self, did: str, row: dict) -> Link:
        if row.get("product_url"):
            return Link(did, "#this", access_url=row["product_url"],
                        content_type="application/fits", local_semantics="product",
                        description="Science product, where the archive publishes it")
        return Link(did, "#this", content_type="application/fits", local_semantics="product",
                    access_url=f"{self.base_url}/products/{quote(row['obs_id'], safe='')}.fits",
                    description="FITS image of the preview with a celestial WCS, for "
                                "display over the sky (not calibrated science data)")

    def _preview(self, did: str, obs_id: str) -> list[Link]:
        try:
            path = self._preview_file(obs_id)
        except NotFoundFault as fault:
            return [Link(did, "#preview", error_message=fault.vo_text())]
        return [Link(did, "#preview", access_url=f"{self.base_url}/preview/"
                     f"{quote(obs_id, safe='')}", content_type=_image_type(path),
                     content_length=path.stat().st_size, local_semantics="preview",
                     description="The preview image the similarity functions compare")]

    def _documentation(self, did: str, row: dict) -> list[Link]:
        proposal = row.get("proposal_id")
        if not proposal:
            return []
        title = row.get("proposal_title") or "untitled"
        return [Link(did, "#auxiliary", content_type="text/html",
                     access_url=f"{self.base_url}/proposals/{quote(str(proposal), safe='')}",
                     local_semantics="proposal",
                     description=f"Proposal {proposal} ({title}): abstract and summary")]


def _image_type(path: Path) -> str:
    return {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
        path.suffix.lower(), "application/octet-stream")


# -- service descriptors (DataLink 1.1 §4) ----------------------------------------------

def _param(name: str, value: str, *, datatype: str = "char", ref: str | None = None,
           description: str | None = None, minimum: str | None = None,
           maximum: str | None = None) -> str:
    arraysize = ' arraysize="*"' if datatype == "char" else ""
    ref_attr = f" ref={quoteattr(ref)}" if ref else ""
    inner = f"<DESCRIPTION>{escape_text(description)}</DESCRIPTION>" if description else ""
    if minimum is not None or maximum is not None:
        inner += ("<VALUES>" + (f'<MIN value="{minimum}"/>' if minimum is not None else "")
                  + (f'<MAX value="{maximum}"/>' if maximum is not None else "") + "</VALUES>")
    return (f"<PARAM name={quoteattr(name)} datatype={quoteattr(datatype)}{arraysize}"
            f" value={quoteattr(value)}{ref_attr}>{inner}</PARAM>")


def service_descriptor(resource_id: str, name: str, description: str, access_url: str, *,
                       content_type: str, id_ref: str, standard_id: str | None = None,
                       top: int | None = None) -> str:
    """A ``RESOURCE type="meta" utype="adhoc:service"`` whose ID input refs ``id_ref``."""
    params = [_param("accessURL", access_url), _param("contentType", content_type)]
    if standard_id:
        params.insert(0, _param("standardID", standard_id))
    inputs = [_param("ID", "", ref=id_ref, description="Publisher DID of the observation")]
    if top is not None:
        inputs.append(_param("TOP", str(top), datatype="int", minimum="1", maximum="1000",
                             description="How many rows to return"))
    return (f'<RESOURCE type="meta" utype="adhoc:service" ID={quoteattr(resource_id)} '
            f"name={quoteattr(name)}>\n<DESCRIPTION>{escape_text(description)}</DESCRIPTION>\n"
            + "\n".join(params) + '\n<GROUP name="inputParams">\n' + "\n".join(inputs)
            + "\n</GROUP>\n</RESOURCE>\n")


def links_descriptor(base_url: str, id_ref: str) -> str:
    """The descriptor of this service's {links} endpoint, for TAP results."""
    return service_descriptor(
        "vo_clip_links", "vo_clip links", "DataLink: preview, FITS product, proposal, "
        "similar observations and descriptions of each observation",
        f"{base_url.rstrip('/')}/datalink/links", content_type=DATALINK_CONTENT_TYPE,
        id_ref=id_ref, standard_id=DATALINK_STANDARD_ID)


def links_document_descriptors(base_url: str) -> list[str]:
    """The similar and describe descriptors a links document refers to by ID."""
    base = base_url.rstrip("/")
    return [
        service_descriptor("similar", "similar observations",
                           "The observations whose previews are most similar to this one, "
                           "best first, as a VOTable", f"{base}/datalink/similar",
                           content_type="application/x-votable+xml", id_ref=_ID_FIELD, top=10),
        service_descriptor("describe", "describe this observation",
                           "PAPERCLIP description retrieval: the object classes and science "
                           "use cases closest to this preview, with scores",
                           f"{base}/datalink/describe",
                           content_type="application/x-votable+xml", id_ref=_ID_FIELD, top=5),
    ]


def similar_adql(obs_id: str, top: int) -> str:
    """The ADQL of "more like this": the ``top`` nearest other observations."""
    literal = adql_string(obs_id)
    return ranked_adql(f"vo_clip_similarity_to(o.obs_publisher_did, {literal})", top,
                       [f"o.obs_id <> {literal}"])
