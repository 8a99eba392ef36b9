"""A publishing registry: the OAI-PMH 2.0 protocol over the deployment's VOResource records.

The IVOA Registry learns about resources by harvesting publishing registries with
OAI-PMH 2.0, as RegistryInterface 1.0 §2 prescribes: ``ivo_vor`` metadata (the
``ri:Resource`` records of :mod:`vo_clip.vo.registry`) besides the mandatory ``oai_dc``,
one set ``ivo_managed`` holding every record, and ``Identify`` carrying the registry's
own ``vg:Registry`` record in its description. OAI identifiers are the IVOIDs and
datestamps are the records' ``updated`` times (granularity: seconds).

This module is the protocol only, with no web framework: :func:`respond` takes the
request's arguments and the time, and returns the response document. Every problem
with a request, from an unknown verb to a forged resumption token, is an OAI-PMH error
element in a normal response (the edge serves it with HTTP 200), never an exception.

**Resumption tokens** carry the list request (verb, metadataPrefix, from, until, set),
the cursor, a fingerprint of the record list and an expiry time, encoded as base64url
JSON and signed with HMAC-SHA256 under the repository's secret: a token that was not
issued here, was altered, has expired, or belongs to a list that has changed since is
``badResumptionToken``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from ..timestamps import SECONDS_FORMAT as _STAMP
from ..timestamps import utc_seconds as _stamp
from .registry import Record, dublin_core
from .xmldoc import serialize
from .xmldoc import sub as _sub

__all__ = [
    "ERROR_CODES",
    "METADATA_FORMATS",
    "OAI_NAMESPACE",
    "SET_SPEC",
    "OaiError",
    "Repository",
    "respond",
]

OAI_NAMESPACE = "http://www.openarchives.org/OAI/2.0/"
_SCHEMA_LOCATION = OAI_NAMESPACE + " http://www.openarchives.org/OAI/2.0/OAI-PMH.xsd"
_XSI = "http://www.w3.org/2001/XMLSchema-instance"

#: metadataPrefix → (schema, metadataNamespace); RegistryInterface 1.0 §2.2.
METADATA_FORMATS = {
    "ivo_vor": ("http://www.ivoa.net/xml/RegistryInterface/RegistryInterface-v1.0.xsd",
                "http://www.ivoa.net/xml/RegistryInterface/v1.0"),
    "oai_dc": ("http://www.openarchives.org/OAI/2.0/oai_dc.xsd",
               "http://www.openarchives.org/OAI/2.0/oai_dc/"),
}
#: The one set: every record of a publishing registry is managed by it.
SET_SPEC = "ivo_managed"
_SET_NAME = "Resources managed by this publishing registry"

#: The OAI-PMH 2.0 error codes (§3.6).
ERROR_CODES = frozenset({
    "badArgument", "badResumptionToken", "badVerb", "cannotDisseminateFormat",
    "idDoesNotExist", "noRecordsMatch", "noMetadataFormats", "noSetHierarchy"})

#: Per verb: (required arguments, optional arguments, exclusive argument or None).
_VERBS = {
    "Identify": (frozenset(), frozenset(), None),
    "ListMetadataFormats": (frozenset(), frozenset({"identifier"}), None),
    "ListSets": (frozenset(), frozenset(), "resumptionToken"),
    "GetRecord": (frozenset({"identifier", "metadataPrefix"}), frozenset(), None),
    "ListIdentifiers": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}),
                        "resumptionToken"),
    "ListRecords": (frozenset({"metadataPrefix"}), frozenset({"from", "until", "set"}),
                    "resumptionToken"),
}

#: Lexical forms the OAI-PMH schema allows in ``request`` attributes.
_ECHO_PATTERNS = {
    "metadataPrefix": re.compile(r"[A-Za-z0-9\-_.!~*'()]+"),
    "set": re.compile(r"[A-Za-z0-9\-_.!~*'()]+(:[A-Za-z0-9\-_.!~*'()]+)*"),
    "identifier": re.compile(r"\S+"),
    "resumptionToken": re.compile(r"[A-Za-z0-9\-_.=]+"),
    "from": re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?"),
    "until": re.compile(r"\d{4}-\d\d-\d\d(T\d\d:\d\d:\d\dZ)?"),
}
_DAY = re.compile(r"\d{4}-\d\d-\d\d")
_SECOND = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


class OaiError(Exception):
    """An OAI-PMH error condition (§3.6): a code of :data:`ERROR_CODES` and a message.

    Parameters
    ----------
    code : str
        The error code, e.g. ``badArgument``.
    message : str
        What was wrong, for a person reading the response.
    """

    def __init__(self, code: str, message: str):
        if code not in ERROR_CODES:
            raise ValueError(f"not an OAI-PMH error code: {code}")
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Repository:
    """What an OAI-PMH response is made from.

    Attributes
    ----------
    records : tuple of Record
        Every record the registry publishes, the registry's own included.
    registry : Record
        The ``vg:Registry`` record, carried in ``Identify``'s description.
    base_url : str
        The OAI-PMH base URL (``{service}/oai``).
    admin_email : str
        ``Identify``'s adminEmail.
    page_size : int
        Records (or headers) per response; longer lists continue with a token.
    secret : bytes
        The key resumption tokens are signed with.
    token_lifetime : timedelta
        How long an issued resumption token stays valid.
    """

    records: tuple[Record, ...]
    registry: Record
    base_url: str
    admin_email: str
    page_size: int
    secret: bytes
    token_lifetime: timedelta = timedelta(hours=24)

    def record(self, identifier: str) -> Record | None:
        """The record with this IVOID (IVOIDs compare case-insensitively), or None."""
        wanted = identifier.lower()
        return next((r for r in self.records if r.identifier.lower() == wanted), None)

    def fingerprint(self) -> str:
        """A short digest of the record list, to tell a token's list from a changed one."""
        listing = "\n".join(f"{r.identifier} {r.datestamp}" for r in self.records)
        return hashlib.sha256(listing.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class _ListQuery:
    """A ListIdentifiers/ListRecords request: from its arguments or a resumption token."""

    verb: str
    prefix: str
    start: str = ""
    until: str = ""
    set_spec: str = ""
    cursor: int = 0


# -- the response document --------------------------------------------------------------

def respond(repository: Repository, arguments: Mapping[str, Sequence[str]], *,
            now: datetime) -> bytes:
    """The OAI-PMH 2.0 response to one request.

    Parameters
    ----------
    repository : Repository
        The records and the registry's settings.
    arguments : mapping of str to sequence of str
        The request's arguments with every value given (names are case-sensitive).
    now : datetime
        The response time (``responseDate``, token expiry); timezone-aware.

    Returns
    -------
    bytes
        The UTF-8 ``OAI-PMH`` document: the verb's answer, or an ``error`` element.
    """
    verb = _verb(arguments)
    single = {name: values[0] for name, values in arguments.items()
              if name != "verb" and values}
    try:
        if verb is None:
            raise OaiError("badVerb", "the verb argument is missing, repeated or not one "
                           "of " + ", ".join(_VERBS))
        _check(verb, arguments)
        body = _HANDLERS[verb](repository, single, now)
    except OaiError as error:
        echo = {} if error.code in ("badVerb", "badArgument") else _echo(verb, single)
        element = ET.Element("oai:error", code=error.code)
        element.text = error.message
        return _document(repository.base_url, now, echo, [element])
    return _document(repository.base_url, now, _echo(verb, single), [body])


def _document(base_url: str, now: datetime, echo: dict[str, str],
              children: Sequence[ET.Element]) -> bytes:
    root = ET.Element("oai:OAI-PMH", {"xmlns:oai": OAI_NAMESPACE, "xmlns:xsi": _XSI,
                                      "xsi:schemaLocation": _SCHEMA_LOCATION})
    _sub(root, "oai:responseDate", _stamp(now))
    _sub(root, "oai:request", base_url, **echo)
    root.extend(children)
    return serialize(root)


def _echo(verb: str | None, arguments: Mapping[str, str]) -> dict[str, str]:
    """The ``request`` attributes: verb and arguments whose values the schema accepts.

    Values with control characters are left out: XML 1.0 cannot carry them.
    """
    echo = {"verb": verb} if verb else {}
    echo.update({name: value for name, value in arguments.items()
                 if name in _ECHO_PATTERNS and value.isprintable()
                 and _ECHO_PATTERNS[name].fullmatch(value)})
    return echo


# -- arguments --------------------------------------------------------------------------

def _verb(arguments: Mapping[str, Sequence[str]]) -> str | None:
    """The verb, if it is given exactly once and is an OAI-PMH verb (else badVerb)."""
    verbs = list(arguments.get("verb", ()))
    return verbs[0] if len(verbs) == 1 and verbs[0] in _VERBS else None


def _check(verb: str, arguments: Mapping[str, Sequence[str]]) -> None:
    """Repeated, unknown, missing, empty or combined-with-a-token arguments: badArgument."""
    required, optional, exclusive = _VERBS[verb]
    for name, values in arguments.items():
        if name == "verb":
            continue
        if len(values) != 1:
            raise OaiError("badArgument", f"the argument {name!r} is repeated")
        if name not in required | optional | {exclusive}:
            raise OaiError("badArgument", f"{verb} takes no argument {name!r}")
        if not values[0]:
            raise OaiError("badArgument", f"the argument {name!r} is empty")
    if exclusive in arguments:
        others = sorted(set(arguments) - {"verb", exclusive})
        if others:
            raise OaiError("badArgument", f"{exclusive} is exclusive; remove "
                           + ", ".join(others))
        return
    missing = sorted(required - set(arguments))
    if missing:
        raise OaiError("badArgument", f"{verb} requires " + ", ".join(missing))


def _date(name: str, value: str, *, end_of_day: bool) -> tuple[str, str]:
    """A from/until argument as a seconds-granularity stamp, and its granularity.

    A day (``YYYY-MM-DD``) covers all of it: its first second for ``from``, its last
    for ``until`` (§3.3.1, inclusive bounds).
    """
    if _SECOND.fullmatch(value):
        form, granularity = _STAMP, "seconds"
    elif _DAY.fullmatch(value):
        form, granularity = "%Y-%m-%d", "day"
    else:
        raise OaiError("badArgument", f"{name} {value!r} is not YYYY-MM-DD or "
                       "YYYY-MM-DDThh:mm:ssZ")
    try:
        moment = datetime.strptime(value, form)
    except ValueError:
        raise OaiError("badArgument", f"{name} {value!r} is not a date") from None
    if granularity == "day" and end_of_day:
        moment += timedelta(days=1, seconds=-1)
    return _stamp(moment), granularity


def _list_query(verb: str, arguments: Mapping[str, str], repository: Repository,
                now: datetime) -> _ListQuery:
    """The list request of ``arguments``, or of their resumption token, checked."""
    if "resumptionToken" in arguments:
        return _read_token(repository, verb, arguments["resumptionToken"], now)
    start, until = arguments.get("from", ""), arguments.get("until", "")
    granularities = set()
    if start:
        start, granularity = _date("from", start, end_of_day=False)
        granularities.add(granularity)
    if until:
        until, granularity = _date("until", until, end_of_day=True)
        granularities.add(granularity)
    if len(granularities) > 1:
        raise OaiError("badArgument", "from and until have different granularities")
    if start and until and start > until:
        raise OaiError("badArgument", "from is later than until")
    return _ListQuery(verb, arguments["metadataPrefix"], start, until,
                      arguments.get("set", ""))


def _matching(repository: Repository, query: _ListQuery) -> list[Record]:
    """The records a list request selects; cannotDisseminateFormat or noRecordsMatch."""
    _check_prefix(query.prefix)
    records = [r for r in repository.records
               if (not query.start or r.datestamp >= query.start)
               and (not query.until or r.datestamp <= query.until)
               and (not query.set_spec or query.set_spec == SET_SPEC)]
    if not records:
        raise OaiError("noRecordsMatch", "no record matches these from, until and set "
                       f"arguments (the one set is {SET_SPEC})")
    return records


def _check_prefix(prefix: str) -> None:
    if prefix not in METADATA_FORMATS:
        raise OaiError("cannotDisseminateFormat", f"metadataPrefix {prefix!r} is not "
                       "offered; use " + " or ".join(METADATA_FORMATS))


# -- resumption tokens ------------------------------------------------------------------

def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(repository: Repository, payload: bytes) -> str:
    return _b64(hmac.new(repository.secret, payload, hashlib.sha256).digest())


def _make_token(repository: Repository, query: _ListQuery, expires: datetime) -> str:
    """A signed token resuming ``query`` (its cursor is the next page's first item)."""
    fields = {"v": query.verb, "m": query.prefix, "f": query.start, "u": query.until,
              "s": query.set_spec, "c": query.cursor, "h": repository.fingerprint(),
              "x": int(expires.timestamp())}
    payload = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    return f"{_b64(payload)}.{_sign(repository, payload)}"


def _read_token(repository: Repository, verb: str, token: str,
                now: datetime) -> _ListQuery:
    """The list request a token resumes; badResumptionToken unless issued here and valid."""
    bad = OaiError("badResumptionToken", "the resumptionToken is invalid or has expired; "
                   "start the list again without it")
    if not token.isascii():  # none is issued; compare_digest refuses to compare them
        raise bad
    encoded, _, signature = token.partition(".")
    try:
        payload = _unb64(encoded)
    except ValueError:
        raise bad from None
    # the signature first: a forged payload is never parsed (deeply nested JSON would be
    # a RecursionError)
    if not hmac.compare_digest(signature.encode(), _sign(repository, payload).encode()):
        raise bad
    try:
        fields = json.loads(payload)
    except ValueError:
        raise bad from None
    if (not isinstance(fields, dict) or fields.get("v") != verb
            or fields.get("h") != repository.fingerprint()
            or not isinstance(fields.get("x"), int) or fields["x"] < now.timestamp()
            or not isinstance(fields.get("c"), int)
            or not 0 < fields["c"] < len(repository.records)):
        raise bad
    return _ListQuery(verb, str(fields.get("m")), str(fields.get("f")),
                      str(fields.get("u")), str(fields.get("s")), fields["c"])


def _resumption(repository: Repository, query: _ListQuery, total: int, now: datetime,
                parent: ET.Element) -> None:
    end = query.cursor + repository.page_size
    attrs = {"completeListSize": str(total), "cursor": str(query.cursor)}
    if end < total:
        expires = now + repository.token_lifetime
        attrs["expirationDate"] = _stamp(expires)
        token = _make_token(repository, replace(query, cursor=end), expires)
        _sub(parent, "oai:resumptionToken", token, **attrs)
    elif query.cursor > 0:
        _sub(parent, "oai:resumptionToken", **attrs)


# -- verbs ------------------------------------------------------------------------------

def _identify(repository: Repository, arguments: Mapping[str, str],
              now: datetime) -> ET.Element:
    element = ET.Element("oai:Identify")
    _sub(element, "oai:repositoryName", repository.registry.element().findtext("title"))
    _sub(element, "oai:baseURL", repository.base_url)
    _sub(element, "oai:protocolVersion", "2.0")
    _sub(element, "oai:adminEmail", repository.admin_email)
    _sub(element, "oai:earliestDatestamp", min(r.datestamp for r in repository.records))
    _sub(element, "oai:deletedRecord", "no")
    _sub(element, "oai:granularity", "YYYY-MM-DDThh:mm:ssZ")
    _sub(element, "oai:description").append(repository.registry.element())
    return element


def _list_metadata_formats(repository: Repository, arguments: Mapping[str, str],
                           now: datetime) -> ET.Element:
    identifier = arguments.get("identifier")
    if identifier is not None and repository.record(identifier) is None:
        raise OaiError("idDoesNotExist", f"no record {identifier!r} in this registry")
    element = ET.Element("oai:ListMetadataFormats")
    for prefix, (schema, namespace) in METADATA_FORMATS.items():
        fmt = _sub(element, "oai:metadataFormat")
        _sub(fmt, "oai:metadataPrefix", prefix)
        _sub(fmt, "oai:schema", schema)
        _sub(fmt, "oai:metadataNamespace", namespace)
    return element


def _list_sets(repository: Repository, arguments: Mapping[str, str],
               now: datetime) -> ET.Element:
    if "resumptionToken" in arguments:
        raise OaiError("badResumptionToken", "ListSets never issues resumption tokens")
    element = ET.Element("oai:ListSets")
    spec = _sub(element, "oai:set")
    _sub(spec, "oai:setSpec", SET_SPEC)
    _sub(spec, "oai:setName", _SET_NAME)
    return element


def _header(parent: ET.Element, record: Record) -> None:
    header = _sub(parent, "oai:header")
    _sub(header, "oai:identifier", record.identifier)
    _sub(header, "oai:datestamp", record.datestamp)
    _sub(header, "oai:setSpec", SET_SPEC)


def _record(parent: ET.Element, record: Record, prefix: str) -> None:
    element = _sub(parent, "oai:record")
    _header(element, record)
    metadata = _sub(element, "oai:metadata")
    metadata.append(record.element() if prefix == "ivo_vor" else dublin_core(record))


def _get_record(repository: Repository, arguments: Mapping[str, str],
                now: datetime) -> ET.Element:
    _check_prefix(arguments["metadataPrefix"])
    record = repository.record(arguments["identifier"])
    if record is None:
        raise OaiError("idDoesNotExist", f"no record {arguments['identifier']!r} "
                       "in this registry")
    element = ET.Element("oai:GetRecord")
    _record(element, record, arguments["metadataPrefix"])
    return element


def _list(verb: str, repository: Repository, arguments: Mapping[str, str],
          now: datetime) -> ET.Element:
    query = _list_query(verb, arguments, repository, now)
    records = _matching(repository, query)
    if query.cursor >= len(records):
        raise OaiError("badResumptionToken", "the resumptionToken is past the list's end")
    element = ET.Element(f"oai:{verb}")
    for record in records[query.cursor:query.cursor + repository.page_size]:
        if verb == "ListRecords":
            _record(element, record, query.prefix)
        else:
            _header(element, record)
    _resumption(repository, query, len(records), now, element)
    return element


_HANDLERS = {
    "Identify": _identify,
    "ListMetadataFormats": _list_metadata_formats,
    "ListSets": _list_sets,
    "GetRecord": _get_record,
    "ListIdentifiers": lambda repo, args, now: _list("ListIdentifiers", repo, args, now),
    "ListRecords": lambda repo, args, now: _list("ListRecords", repo, args, now),
}
