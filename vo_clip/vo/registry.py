"""VOResource records of a vo_clip deployment, for the IVOA Registry.

The Registry is how VO clients find services without being given a URL: TOPCAT's and
pyvo's registry searches (RegTAP) read records that publishing registries expose over
OAI-PMH (RegistryInterface 1.0). This module writes those records, as pure functions
of the :class:`~vo_clip.config.Config` identity settings and the service's base URL:

=================  =============================  ===================================
record             xsi:type                       identifier
=================  =============================  ===================================
TAP service        ``vs:CatalogService``          ``ivo://{authority}/vo_clip/tap``
DataLink service   ``vs:DataService``             ``ivo://{authority}/vo_clip/datalink``
naming authority   ``vg:Authority``               ``ivo://{authority}``
organisation       ``vr:Organisation``            ``ivo://{authority}/org``
this registry      ``vg:Registry``                ``ivo://{authority}/registry``
=================  =============================  ===================================

Standards: VOResource 1.1 (``vr``; namespace still ``…/v1.0``), VODataService 1.2
(``vs``, namespace ``…/v1.1``), TAPRegExt 1.0 (``tr``), VORegistry 1.1 (``vg``) and
RegistryInterface 1.0 (``ri:Resource``, the element OAI-PMH's ``ivo_vor`` format holds).

**One source.** The TAP record's capabilities are the ``capability`` elements of the
very document ``/tap/capabilities`` serves (:func:`tap_capabilities_xml`, built by
:func:`vo_clip.vo.vosi.capabilities_xml`), and its tableset is
:func:`vo_clip.vo.vosi.tableset_xml` of the published ObsCore and HST tables: the
records cannot drift from what the service declares.

**DataLink.** DataLink 1.1 has no registry extension; its record is a ``vs:DataService``
with a ``#links-1.1`` capability (a ``vs:ParamHTTP`` interface declaring ``ID``), plus one
capability without a standardID for each service descriptor a links document offers
(``/datalink/similar`` and ``/datalink/describe``, with their ``ID`` and ``TOP``
parameters), so a registry user sees every endpoint and its parameters in one record.
The TAP and DataLink records point at each other (``IsSupplementedBy``/``IsSupplementTo``).

**Timestamps.** ``created`` and ``updated`` come from the configuration
(``record_created``, ``record_updated``), never from the clock, so generating the
records twice gives the same bytes and OAI-PMH datestamps stay put until the operator
bumps ``record_updated``.

The builders follow :mod:`vo_clip.vo.vosi`: :mod:`xml.etree.ElementTree` with literal
prefixed tags and every namespace declared on the record's root, so ``xsi:type`` values
always resolve; ElementTree escapes every text and attribute value.
"""

from __future__ import annotations

import copy
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from ..config import Config
from ..errors import VoClipError
from ..timestamps import SECONDS_FORMAT, utc_seconds
from .datalink import DATALINK_CONTENT_TYPE, DATALINK_STANDARD_ID
from .limits import TapLimits
from .schema import published_tables
from .vosi import capabilities_xml, tableset_xml
from .xmldoc import serialize
from .xmldoc import sub as _sub

__all__ = [
    "DEFAULT_BASE_URL",
    "NAMESPACES",
    "Identity",
    "Record",
    "authority_record",
    "datalink_record",
    "deployment_records",
    "dublin_core",
    "identity",
    "organisation_record",
    "registry_record",
    "tap_capabilities_xml",
    "tap_record",
]

#: The base URL records name when none is configured: where ``vo-clip serve`` listens.
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

_XML = "http://www.ivoa.net/xml/"
#: The prefixes every record declares on its root element.
NAMESPACES = {
    "ri": _XML + "RegistryInterface/v1.0",
    "vr": _XML + "VOResource/v1.0",
    "vs": _XML + "VODataService/v1.1",
    "vg": _XML + "VORegistry/v1.0",
    "tr": _XML + "TAPRegExt/v1.0",
    "xsi": "http://www.w3.org/2001/XMLSchema-instance",
}
_XSI_TYPE = "{%s}type" % NAMESPACES["xsi"]
_STD = "ivo://ivoa.net/std/"

#: VOResource 1.1 ``AuthorityID`` and ``UTCTimestamp`` (seconds, Z), as this module writes them.
_AUTHORITY = re.compile(r"[\w\d][\w\d\-_.!~*'()+=]{2,}")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
_SHORT_NAME_MAX = 16


# -- identity ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Identity:
    """The checked identity settings every record is written from.

    Attributes
    ----------
    config : Config
        The settings (title, publisher, contact, subjects, coverage...).
    base_url : str
        The service root, without a trailing slash.
    created, updated : str
        The records' VOResource timestamps, ``YYYY-MM-DDThh:mm:ssZ``.
    """

    config: Config
    base_url: str
    created: str
    updated: str

    @property
    def authority(self) -> str:
        return self.config.authority

    def ivoid(self, path: str = "") -> str:
        """``ivo://{authority}`` followed by ``/path`` when given."""
        return f"ivo://{self.authority}" + (f"/{path}" if path else "")

    @property
    def reference_url(self) -> str:
        return self.config.reference_url or f"{self.base_url}/tap"

    @property
    def publisher_url(self) -> str:
        return self.config.publisher_url or self.base_url


def identity(config: Config, base_url: str | None = None) -> Identity:
    """Check ``config``'s identity settings for the records (VOResource 1.1 rules).

    Parameters
    ----------
    config : Config
        The settings.
    base_url : str, optional
        The service root; default ``config.base_url``, else :data:`DEFAULT_BASE_URL`.

    Raises
    ------
    VoClipError
        For an authority, short name, timestamp, subject list, temporal coverage, page
        size or base URL the records cannot carry.
    """
    base = (base_url or config.base_url or DEFAULT_BASE_URL).rstrip("/")
    if not _AUTHORITY.fullmatch(config.authority):
        raise VoClipError(f"authority {config.authority!r} is not an IVOA authority ID",
                          hint="at least 3 characters: letters, digits and -_.!~*'()+=")
    if len(config.short_name) > _SHORT_NAME_MAX:
        raise VoClipError(f"short_name {config.short_name!r} has more than 16 characters",
                          hint="VOResource 1.1 limits shortName to 16 characters")
    created = _timestamp("record_created", config.record_created)
    updated = _timestamp("record_updated", config.record_updated or created)
    if updated < created:
        raise VoClipError(f"record_updated {updated} is before record_created {created}")
    if not config.subjects:
        raise VoClipError("subjects is empty", hint="VOResource requires at least one "
                          "subject: name Unified Astronomy Thesaurus concepts")
    if len(config.coverage_temporal) not in (0, 2):
        raise VoClipError("coverage_temporal must be two MJDs, the first and the last")
    if config.oai_page_size < 1:
        raise VoClipError(f"oai_page_size must be at least 1, not {config.oai_page_size}")
    if not base.startswith(("http://", "https://")):
        raise VoClipError(f"base_url {base!r} is not an http(s) URL")
    return Identity(config, base, created, updated)


def _timestamp(name: str, value: str) -> str:
    try:
        moment = datetime.strptime(value, SECONDS_FORMAT)
    except (TypeError, ValueError):
        moment = None
    if moment is None or not _TIMESTAMP.fullmatch(value):
        raise VoClipError(f"{name} {value!r} is not a UTC timestamp",
                          hint="write it as YYYY-MM-DDThh:mm:ssZ, e.g. 2026-11-22T00:00:00Z")
    return utc_seconds(moment)


# -- records ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Record:
    """One VOResource record: its file name, identifier, datestamp and ``ri:Resource``.

    Attributes
    ----------
    name : str
        Short name of the record, used for its file (``tap`` is ``tap.xml``).
    identifier : str
        The resource's IVOID, also its OAI-PMH identifier.
    datestamp : str
        The ``updated`` timestamp, also its OAI-PMH datestamp.
    """

    name: str
    identifier: str
    datestamp: str
    _element: ET.Element

    def element(self) -> ET.Element:
        """A copy of the ``ri:Resource`` element (declaring its namespaces), to embed."""
        return copy.deepcopy(self._element)

    def to_xml(self) -> bytes:
        """The record as a standalone UTF-8 document with an XML declaration."""
        return serialize(self.element())


def deployment_records(config: Config, base_url: str | None = None) -> tuple[Record, ...]:
    """Every record of the deployment: TAP, DataLink, authority, organisation, registry.

    Parameters
    ----------
    config : Config
        The identity settings.
    base_url : str, optional
        The service root (default: ``config.base_url``, else :data:`DEFAULT_BASE_URL`).

    Returns
    -------
    tuple of Record
        In this order; the same bytes for the same settings and base URL.

    Raises
    ------
    VoClipError
        For identity settings the records cannot carry (see :func:`identity`).
    """
    ident = identity(config, base_url)
    return tuple(build(ident) for build in (tap_record, datalink_record, authority_record,
                                            organisation_record, registry_record))


def _resource(ident: Identity, xsi_type: str, title: str) -> ET.Element:
    """An ``ri:Resource`` declaring every namespace, with its timestamps and title."""
    attrs = {f"xmlns:{prefix}": uri for prefix, uri in NAMESPACES.items()}
    attrs.update({"xsi:type": xsi_type, "created": ident.created,
                  "updated": ident.updated, "status": "active"})
    root = ET.Element("ri:Resource", attrs)
    _sub(root, "title", title)
    return root


def _curation(root: ET.Element, ident: Identity) -> None:
    """VOResource 1.1 ``curation``: publisher (the organisation record) and contact."""
    curation = _sub(root, "curation")
    _sub(curation, "publisher", ident.config.publisher, **{"ivo-id": ident.ivoid("org")})
    contact = _sub(curation, "contact")
    _sub(contact, "name", ident.config.contact_name)
    _sub(contact, "email", ident.config.contact_email)


def _content(root: ET.Element, ident: Identity, description: str, *, reference_url: str,
             subjects: Iterable[str], types: Sequence[str] = (),
             relations: Sequence[tuple[str, str, str]] = ()) -> None:
    """VOResource 1.1 ``content``; ``relations`` are (type, IVOID, title) triples."""
    content = _sub(root, "content")
    for subject in subjects:
        _sub(content, "subject", subject)
    _sub(content, "description", description)
    _sub(content, "referenceURL", reference_url)
    for kind in types:
        _sub(content, "type", kind)
    for level in ident.config.content_level:
        _sub(content, "contentLevel", level)
    for relation, ivoid, title in relations:
        element = _sub(content, "relationship")
        _sub(element, "relationshipType", relation)
        _sub(element, "relatedResource", title, **{"ivo-id": ivoid})


def _coverage(root: ET.Element, config: Config) -> None:
    """VODataService 1.2 ``coverage``: spatial MOC, temporal MJD interval, wavebands."""
    coverage = ET.Element("coverage")
    if config.coverage_spatial:
        _sub(coverage, "spatial", config.coverage_spatial)
    if config.coverage_temporal:
        _sub(coverage, "temporal", " ".join(repr(float(t)) for t in config.coverage_temporal))
    for band in config.waveband:
        _sub(coverage, "waveband", band)
    if len(coverage):
        root.append(coverage)


def _literal_prefixes(element: ET.Element) -> ET.Element:
    """``element`` with parsed ``{xsi}type`` attributes written back as ``xsi:type``.

    ElementTree parses prefixed attributes into Clark notation; the records declare
    their prefixes literally on the root, so embedded elements must use them too.

    Raises
    ------
    ValueError
        For a namespaced tag or attribute other than ``xsi:type`` (none is expected in
        the unprefixed VOSI children embedded here).
    """
    for node in element.iter():
        if node.tag.startswith("{"):
            raise ValueError(f"unexpected namespaced element {node.tag}")
        for key in [k for k in node.attrib if k.startswith("{")]:
            if key != _XSI_TYPE:
                raise ValueError(f"unexpected namespaced attribute {key}")
            node.set("xsi:type", node.attrib.pop(key))
    return element


# -- TAP --------------------------------------------------------------------------------

def tap_capabilities_xml(base_url: str, *, limits: TapLimits = TapLimits()) -> bytes:
    """The VOSI capabilities of the TAP service: what ``/tap/capabilities`` serves.

    The one definition of the TAP service's capabilities (TAP, VOSI capabilities,
    availability and tables, DALI examples), shared by the endpoint and the record.

    Parameters
    ----------
    base_url : str
        The service root; the TAP service is ``{base_url}/tap``.
    limits : TapLimits, optional
        The limits the TAP service runs with.

    Returns
    -------
    bytes
        The ``vosi:capabilities`` document (VOSI 1.1 §2.1, TAPRegExt 1.0).
    """
    from .adql import GEOMETRY_FUNCTIONS, UDFS

    tap = base_url.rstrip("/") + "/tap"
    return capabilities_xml(base_url, udfs=UDFS, geometry=GEOMETRY_FUNCTIONS, limits=limits,
                            examples_url=tap + "/examples")


def _registry_tables():
    """The tables a registry user searches for: ObsCore and HST (not TAP_SCHEMA)."""
    return [t for t in published_tables() if t.schema != "TAP_SCHEMA"]


def tap_record(ident: Identity) -> Record:
    """The TAP service: ``vs:CatalogService`` with its capabilities and tableset.

    Parameters
    ----------
    ident : Identity
        Checked identity settings (see :func:`identity`).

    Returns
    -------
    Record
        ``ivo://{authority}/vo_clip/tap`` (VOResource 1.1, VODataService 1.2,
        TAPRegExt 1.0).
    """
    config = ident.config
    root = _resource(ident, "vs:CatalogService", config.title)
    _sub(root, "shortName", config.short_name)
    _sub(root, "identifier", ident.ivoid("vo_clip/tap"))
    _curation(root, ident)
    _content(root, ident, config.description, reference_url=ident.reference_url,
             subjects=config.subjects, types=("Archive",),
             relations=[("IsSupplementedBy", ident.ivoid("vo_clip/datalink"),
                         f"{config.title}: DataLink")])
    capabilities = ET.fromstring(tap_capabilities_xml(ident.base_url))
    for capability in capabilities.findall("capability"):
        root.append(_literal_prefixes(capability))
    _coverage(root, config)
    tableset = _sub(root, "tableset")
    for schema in ET.fromstring(tableset_xml(_registry_tables())).findall("schema"):
        tableset.append(_literal_prefixes(schema))
    return Record("tap", ident.ivoid("vo_clip/tap"), ident.updated, root)


# -- DataLink ---------------------------------------------------------------------------

@dataclass(frozen=True)
class _Param:
    name: str
    description: str
    datatype: str
    use: str = "optional"
    std: bool = True
    ucd: str | None = None


def _id_param(ident: Identity, *, std: bool) -> _Param:
    return _Param("ID", "Publisher DID of an observation, the obs_publisher_did column of "
                  f"ivoa.ObsCore: {ident.ivoid('vo_clip')}?OBS_ID", "char", "required",
                  std=std, ucd="meta.id;meta.main")


_FORMAT_PARAM = _Param("RESPONSEFORMAT", "votable (the default) or "
                       "application/x-votable+xml;content=datalink", "char")


def _param_http(capability: ET.Element, url: str, result_type: str,
                params: Sequence[_Param], *, std: bool) -> None:
    """A ``vs:ParamHTTP`` interface, GET and POST, declaring its input parameters."""
    attrs = {"xsi:type": "vs:ParamHTTP"}
    if std:
        attrs.update(role="std", version="1.1")
    interface = _sub(capability, "interface", **attrs)
    _sub(interface, "accessURL", url, use="base")
    for method in ("GET", "POST"):
        _sub(interface, "queryType", method)
    _sub(interface, "resultType", result_type)
    for param in params:
        element = _sub(interface, "param", use=param.use, std=str(param.std).lower())
        _sub(element, "name", param.name)
        _sub(element, "description", param.description)
        if param.ucd:
            _sub(element, "ucd", param.ucd)
        attrs = {"xsi:type": "vs:VOTableType"}  # VODataService 1.2: DALI services use it
        if param.datatype == "char":
            attrs["arraysize"] = "*"
        _sub(element, "dataType", param.datatype, **attrs)


def _descriptor_capability(root: ET.Element, ident: Identity, path: str, description: str,
                           top: int) -> None:
    """A capability of one DataLink service descriptor (no IVOA standard: no standardID)."""
    capability = _sub(root, "capability")
    _sub(capability, "description", description)
    params = (_id_param(ident, std=False),
              _Param("TOP", f"How many rows to return, 1 to 1000 (default {top})", "int",
                     std=False))
    _param_http(capability, ident.base_url + path, "application/x-votable+xml", params,
                std=False)


def datalink_record(ident: Identity) -> Record:
    """The DataLink 1.1 service and its two service descriptors, as a ``vs:DataService``.

    Parameters
    ----------
    ident : Identity
        Checked identity settings (see :func:`identity`).

    Returns
    -------
    Record
        ``ivo://{authority}/vo_clip/datalink`` with a ``#links-1.1`` capability and one
        capability each for ``/datalink/similar`` and ``/datalink/describe``.
    """
    config, base = ident.config, ident.base_url
    root = _resource(ident, "vs:DataService", f"{config.title}: DataLink")
    _sub(root, "identifier", ident.ivoid("vo_clip/datalink"))
    _curation(root, ident)
    _content(root, ident, "DataLink 1.1 links of every observation of the TAP service "
             f"{ident.ivoid('vo_clip/tap')}: its preview image, a FITS product, its "
             "proposal (title, PI, abstract) and two services: the most similar "
             "observations, and PAPERCLIP's description retrieval (the object classes and "
             "science use cases closest to its preview).", reference_url=ident.reference_url,
             subjects=config.subjects,
             relations=[("IsSupplementTo", ident.ivoid("vo_clip/tap"), config.title)])
    links = _sub(root, "capability", standardID=DATALINK_STANDARD_ID)
    _param_http(links, f"{base}/datalink/links", DATALINK_CONTENT_TYPE,
                (_id_param(ident, std=True), _FORMAT_PARAM), std=True)
    _descriptor_capability(root, ident, "/datalink/similar", "Similar observations "
                           "(DataLink service descriptor 'similar'): the observations whose "
                           "previews are most similar to ID's, best first, as a VOTable "
                           "with the columns of a TAP query.", 10)
    _descriptor_capability(root, ident, "/datalink/describe", "Describe an observation "
                           "(DataLink service descriptor 'describe'): PAPERCLIP description "
                           "retrieval, the object classes and science use cases closest to "
                           "ID's preview, with their cosine similarities.", 5)
    _coverage(root, config)
    return Record("datalink", ident.ivoid("vo_clip/datalink"), ident.updated, root)


# -- authority, organisation, registry --------------------------------------------------

def authority_record(ident: Identity) -> Record:
    """The naming authority ``ivo://{authority}`` (VORegistry 1.1 ``vg:Authority``).

    A new authority must be registered, with its managing organisation, before
    harvesters accept the other records.

    Parameters
    ----------
    ident : Identity
        Checked identity settings (see :func:`identity`).

    Returns
    -------
    Record
        ``ivo://{authority}``, managed by ``ivo://{authority}/org``.
    """
    config = ident.config
    root = _resource(ident, "vg:Authority", f"The {ident.authority} naming authority")
    _sub(root, "identifier", ident.ivoid())
    _curation(root, ident)
    _content(root, ident, f"The IVOA naming authority {ident.authority}, under which "
             f"{config.publisher} registers its vo_clip services.",
             reference_url=ident.publisher_url, subjects=("virtual-observatories",))
    _sub(root, "managingOrg", config.publisher, **{"ivo-id": ident.ivoid("org")})
    return Record("authority", ident.ivoid(), ident.updated, root)


def organisation_record(ident: Identity) -> Record:
    """The publishing organisation ``ivo://{authority}/org`` (``vr:Organisation``).

    Parameters
    ----------
    ident : Identity
        Checked identity settings (see :func:`identity`).

    Returns
    -------
    Record
        The organisation every other record names as publisher.
    """
    config = ident.config
    root = _resource(ident, "vr:Organisation", config.publisher)
    _sub(root, "identifier", ident.ivoid("org"))
    _curation(root, ident)
    _content(root, ident, f"{config.publisher}, publisher of the vo_clip services at "
             f"{ident.base_url} (TAP {ident.ivoid('vo_clip/tap')}).",
             reference_url=ident.publisher_url, subjects=("virtual-observatories",),
             types=("Organisation",))
    return Record("org", ident.ivoid("org"), ident.updated, root)


def registry_record(ident: Identity) -> Record:
    """This publishing registry, ``ivo://{authority}/registry`` (``vg:Registry``).

    Its ``vg:Harvest`` capability (RegistryInterface 1.0 §2) is the OAI-PMH endpoint
    ``{base}/oai``; ``full`` is false (it holds only its own authority's records).

    Parameters
    ----------
    ident : Identity
        Checked identity settings (see :func:`identity`).

    Returns
    -------
    Record
        The record OAI-PMH ``Identify`` carries in its description.
    """
    config = ident.config
    root = _resource(ident, "vg:Registry", f"{config.publisher} publishing registry")
    _sub(root, "identifier", ident.ivoid("registry"))
    _curation(root, ident)
    _content(root, ident, f"The OAI-PMH publishing registry of the {ident.authority} "
             "authority: the records of the vo_clip services, the authority and the "
             "organisation, for the IVOA Registry to harvest.",
             reference_url=f"{ident.base_url}/oai?verb=Identify",
             subjects=("virtual-observatories",), types=("Registry",))
    harvest = _sub(root, "capability", standardID=_STD + "Registry",
                   **{"xsi:type": "vg:Harvest"})
    interface = _sub(harvest, "interface", role="std", version="1.0",
                     **{"xsi:type": "vg:OAIHTTP"})
    _sub(interface, "accessURL", f"{ident.base_url}/oai", use="base")
    _sub(harvest, "maxRecords", config.oai_page_size)
    _sub(root, "full", "false")
    _sub(root, "managedAuthority", ident.authority)
    return Record("registry", ident.ivoid("registry"), ident.updated, root)


# -- Dublin Core ------------------------------------------------------------------------

_OAI_DC = "http://www.openarchives.org/OAI/2.0/oai_dc/"
_DC = "http://purl.org/dc/elements/1.1/"


def dublin_core(record: Record) -> ET.Element:
    """The record as OAI-PMH ``oai_dc:dc`` (the format every OAI repository offers).

    Parameters
    ----------
    record : Record
        A record of :func:`deployment_records`.

    Returns
    -------
    xml.etree.ElementTree.Element
        ``oai_dc:dc`` declaring ``oai_dc`` and ``dc``: title, publisher, subjects,
        description, date (updated), types, identifier (the IVOID) and the reference
        URL as a relation.
    """
    resource = record.element()
    dc = ET.Element("oai_dc:dc", {"xmlns:oai_dc": _OAI_DC, "xmlns:dc": _DC})
    pairs = [("title", resource.findtext("title")),
             ("publisher", resource.findtext("curation/publisher")),
             *(("subject", s.text) for s in resource.findall("content/subject")),
             ("description", resource.findtext("content/description")),
             ("date", record.datestamp),
             *(("type", t.text) for t in resource.findall("content/type")),
             ("identifier", record.identifier),
             ("relation", resource.findtext("content/referenceURL"))]
    for tag, text in pairs:
        if text:
            _sub(dc, f"dc:{tag}", text)
    return dc
