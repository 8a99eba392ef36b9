"""The publishing registry (OAI-PMH 2.0 at /oai): every verb and error against the
OAI-PMH XSD, resumption tokens that cannot be forged, and a real harvester (sickle)
walking the whole list over HTTP to get the records `vo-clip registry` writes."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest
import requests
from conftest import live_server, missing_tool
from lxml import etree
from test_registry import canonical, schemas  # noqa: F401 (the schemas fixture)

from service import create_app
from service import oai as oai_blueprint
from vo_clip.config import Config
from vo_clip.vo.oai import OAI_NAMESPACE, Repository, respond
from vo_clip.vo.registry import NAMESPACES, deployment_records
from vo_clip.vo.xsd import IvoaSchemas, find_schema_dir

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=timezone.utc)
OAI = "{%s}" % OAI_NAMESPACE
RI_RESOURCE = "{%s}Resource" % NAMESPACES["ri"]
BASE = "http://127.0.0.1:8000/oai"
SICKLE = missing_tool("the OAI-PMH harvester sickle (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    return deployment_records(Config(home=tmp_path_factory.mktemp("oai-home")))


@pytest.fixture(scope="module")
def repository(records) -> Repository:
    registry = next(r for r in records if r.name == "registry")
    return Repository(records, registry, BASE, "vo-clip@example.org", page_size=2,
                      secret=b"test secret")


def ask(repository, **arguments) -> etree._Element:
    """One request (each argument's values as a list, or one string)."""
    arguments = {k.rstrip("_"): (v if isinstance(v, list) else [v])
                 for k, v in arguments.items()}
    return etree.fromstring(respond(repository, arguments, now=NOW))


def error_code(document) -> str | None:
    error = document.find(OAI + "error")
    return None if error is None else error.get("code")


@pytest.fixture(scope="module")
def xsd() -> IvoaSchemas | None:
    """The XSDs where they are installed; the error tests run without them too."""
    return IvoaSchemas() if find_schema_dir() else None


def assert_valid_if_possible(xsd: IvoaSchemas | None, document: bytes) -> None:
    if xsd is not None:
        errors = xsd.errors(document)
        assert not errors, "\n".join(errors[:10])


def token_of(document):
    return document.find(f".//{OAI}resumptionToken")


# -- every response validates ------------------------------------------------------------

VALID_REQUESTS = [
    {"verb": "Identify"},
    {"verb": "ListMetadataFormats"},
    {"verb": "ListMetadataFormats", "identifier": "ivo://example.org/vo_clip/tap"},
    {"verb": "ListSets"},
    {"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor"},
    {"verb": "ListRecords", "metadataPrefix": "ivo_vor"},
    {"verb": "ListRecords", "metadataPrefix": "oai_dc"},
    {"verb": "ListRecords", "metadataPrefix": "ivo_vor", "set": "ivo_managed",
     "from": "2026-01-01", "until": "2026-12-31"},
    {"verb": "GetRecord", "metadataPrefix": "ivo_vor", "identifier": "ivo://example.org"},
    {"verb": "GetRecord", "metadataPrefix": "oai_dc",
     "identifier": "ivo://example.org/vo_clip/datalink"},
]


@pytest.mark.parametrize("arguments", VALID_REQUESTS, ids=lambda a: "-".join(a.values()))
def test_responses_validate(schemas, repository, arguments):  # noqa: F811
    document = respond(repository, {k: [v] for k, v in arguments.items()}, now=NOW)
    errors = schemas.errors(document)
    assert not errors, "\n".join(errors[:10])
    tree = etree.fromstring(document)
    assert error_code(tree) is None
    request = tree.find(OAI + "request")
    assert request.text == BASE and dict(request.attrib) == arguments


def test_identify(repository):
    identify = ask(repository, verb="Identify").find(OAI + "Identify")
    assert identify.findtext(OAI + "baseURL") == BASE
    assert identify.findtext(OAI + "protocolVersion") == "2.0"
    assert identify.findtext(OAI + "earliestDatestamp") == "2026-12-07T00:00:00Z"
    assert identify.findtext(OAI + "granularity") == "YYYY-MM-DDThh:mm:ssZ"
    assert identify.findtext(OAI + "adminEmail") == "vo-clip@example.org"
    registry = identify.find(f"{OAI}description/{RI_RESOURCE}")
    assert registry.findtext("identifier") == "ivo://example.org/registry"
    assert registry.findtext("capability/interface/accessURL") == "http://127.0.0.1:8000/oai"
    assert registry.findtext("full") == "false"


def test_metadata_formats_and_sets(repository):
    formats = ask(repository, verb="ListMetadataFormats")
    assert [f.text for f in formats.iter(OAI + "metadataPrefix")] == ["ivo_vor", "oai_dc"]
    namespaces = [f.text for f in formats.iter(OAI + "metadataNamespace")]
    assert namespaces[0] == "http://www.ivoa.net/xml/RegistryInterface/v1.0"
    sets = ask(repository, verb="ListSets")
    assert [s.text for s in sets.iter(OAI + "setSpec")] == ["ivo_managed"]


def test_get_record(repository, records):
    document = ask(repository, verb="GetRecord", metadataPrefix="ivo_vor",
                   identifier="IVO://EXAMPLE.ORG/vo_clip/tap")
    header = document.find(f".//{OAI}header")
    assert header.findtext(OAI + "identifier") == "ivo://example.org/vo_clip/tap"
    assert header.findtext(OAI + "datestamp") == "2026-12-07T00:00:00Z"
    assert header.findtext(OAI + "setSpec") == "ivo_managed"
    resource = document.find(f".//{OAI}metadata/{RI_RESOURCE}")
    assert canonical(resource) == canonical(etree.fromstring(records[0].to_xml()))


def test_oai_dc(repository):
    document = ask(repository, verb="GetRecord", metadataPrefix="oai_dc",
                   identifier="ivo://example.org/org")
    dc = "{http://purl.org/dc/elements/1.1/}"
    assert document.findtext(f".//{dc}identifier") == "ivo://example.org/org"
    assert document.findtext(f".//{dc}title").startswith("Example Observatory")


# -- lists and resumption tokens ---------------------------------------------------------

def walk(repository, verb, prefix="ivo_vor", **arguments):
    """Every page of a list: (identifiers, resumptionToken attributes) per page."""
    pages = []
    document = ask(repository, verb=verb, metadataPrefix=prefix, **arguments)
    while True:
        assert error_code(document) is None, etree.tostring(document)
        identifiers = [i.text for i in document.iter(OAI + "identifier")]
        token = token_of(document)
        pages.append((identifiers, None if token is None else dict(token.attrib)))
        if token is None or not token.text:
            return pages
        document = ask(repository, verb=verb, resumptionToken=token.text)


@pytest.mark.parametrize("verb", ["ListIdentifiers", "ListRecords"])
def test_lists_page_with_resumption_tokens(repository, records, verb):
    pages = walk(repository, verb)
    assert [ids for ids, _ in pages] == [
        [r.identifier for r in records[i:i + 2]] for i in (0, 2, 4)]
    assert [(t["cursor"], t["completeListSize"]) for _, t in pages] == [
        ("0", "5"), ("2", "5"), ("4", "5")]
    assert "expirationDate" in pages[0][1] and "expirationDate" not in pages[-1][1]


def test_a_list_on_one_page_has_no_token(repository):
    document = ask(replace(repository, page_size=10), verb="ListIdentifiers",
                   metadataPrefix="oai_dc")
    assert token_of(document) is None
    assert len(list(document.iter(OAI + "header"))) == 5


@pytest.fixture(scope="module")
def dated(repository):
    """Records with different datestamps, to filter by from and until."""
    stamps = ["2026-01-01T00:00:00Z", "2026-03-01T10:00:00Z", "2026-03-01T23:59:59Z",
              "2026-03-02T00:00:00Z", "2026-06-01T00:00:00Z"]
    return replace(repository, records=tuple(replace(r, datestamp=s)
                                             for r, s in zip(repository.records, stamps)))


@pytest.mark.parametrize("bounds, expected", [
    ({"from_": "2026-03-01"}, [1, 2, 3, 4]),
    ({"until": "2026-03-01"}, [0, 1, 2]),
    ({"from_": "2026-03-01", "until": "2026-03-01"}, [1, 2]),
    ({"from_": "2026-03-01T10:00:00Z", "until": "2026-03-01T10:00:00Z"}, [1]),
    ({"from_": "2026-03-01T10:00:01Z"}, [2, 3, 4]),
    ({"until": "2026-01-01T00:00:00Z"}, [0]),
])
def test_from_and_until_are_inclusive(dated, bounds, expected):
    pages = walk(replace(dated, page_size=10), "ListIdentifiers", **bounds)
    assert pages[0][0] == [dated.records[i].identifier for i in expected]


def test_from_and_until_survive_the_resumption_token(dated):
    pages = walk(replace(dated, page_size=1), "ListRecords", from_="2026-03-01")
    assert [ids[0] for ids, _ in pages] == [r.identifier for r in dated.records[1:]]


# -- errors -----------------------------------------------------------------------------

ERRORS = [
    ({}, "badVerb"),
    ({"verb": "Frobnicate"}, "badVerb"),
    ({"verb": "identify"}, "badVerb"),
    ({"verb": ["Identify", "Identify"]}, "badVerb"),
    ({"Verb": "Identify"}, "badVerb"),
    ({"verb": "Identify", "metadataPrefix": "ivo_vor"}, "badArgument"),
    ({"verb": "ListRecords"}, "badArgument"),
    ({"verb": "ListRecords", "metadataprefix": "ivo_vor"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": ["ivo_vor", "oai_dc"]}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": ""}, "badArgument"),
    ({"verb": "GetRecord", "metadataPrefix": "ivo_vor"}, "badArgument"),
    ({"verb": "GetRecord", "identifier": "ivo://example.org"}, "badArgument"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor", "resumptionToken": "x"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from_": "2026-1-1"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from_": "2026-02-30"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "until": "2026-01-01T00:00:00"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "until": "2026-01-01T00:00:00.5Z"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "until": "yesterday"},
     "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from_": "2026-01-01",
      "until": "2026-02-01T00:00:00Z"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "from_": "2026-02-01",
      "until": "2026-01-01"}, "badArgument"),
    ({"verb": "ListRecords", "metadataPrefix": "marcxml"}, "cannotDisseminateFormat"),
    ({"verb": "ListRecords", "metadataPrefix": "not a prefix <>"}, "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "metadataPrefix": "oai_marc", "identifier": "ivo://example.org"},
     "cannotDisseminateFormat"),
    ({"verb": "GetRecord", "metadataPrefix": "ivo_vor", "identifier": "ivo://other.org/x"},
     "idDoesNotExist"),
    ({"verb": "ListMetadataFormats", "identifier": "ivo://example.org/nope"}, "idDoesNotExist"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "set": "ivo_public"},
     "noRecordsMatch"),
    ({"verb": "ListRecords", "metadataPrefix": "ivo_vor", "until": "2000-01-01"},
     "noRecordsMatch"),
    ({"verb": "ListIdentifiers", "metadataPrefix": "oai_dc", "from_": "2030-01-01"},
     "noRecordsMatch"),
    ({"verb": "ListRecords", "resumptionToken": "garbage"}, "badResumptionToken"),
    ({"verb": "ListRecords", "resumptionToken": "e30.AAAA"}, "badResumptionToken"),
    ({"verb": "ListRecords", "resumptionToken": "!!!.???"}, "badResumptionToken"),
    ({"verb": "ListSets", "resumptionToken": "anything"}, "badResumptionToken"),
]


@pytest.mark.parametrize("arguments, code", ERRORS, ids=[c for _, c in ERRORS])
def test_errors(xsd, repository, arguments, code):
    arguments = {k.rstrip("_"): v if isinstance(v, list) else [v]
                 for k, v in arguments.items()}
    document = respond(repository, arguments, now=NOW)
    assert_valid_if_possible(xsd, document)
    tree = etree.fromstring(document)
    assert error_code(tree) == code and tree.find(OAI + "error").text
    if code in ("badVerb", "badArgument"):
        assert tree.find(OAI + "request").attrib == {}  # §3.2: no attributes then


def first_token(repository, verb="ListRecords") -> str:
    return token_of(ask(repository, verb=verb, metadataPrefix="ivo_vor")).text


def test_forged_and_altered_tokens_are_refused(repository):
    import base64
    import json

    token = first_token(repository)
    payload, signature = token.split(".")
    fields = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    fields["c"] = 4
    altered = base64.urlsafe_b64encode(json.dumps(fields).encode()).decode().rstrip("=")
    for forged in (f"{altered}.{signature}", token[:-2], token + "x",
                   first_token(replace(repository, secret=b"another key"))):
        assert error_code(ask(repository, verb="ListRecords", resumptionToken=forged)) == (
            "badResumptionToken")


def test_tokens_with_non_ascii_characters_or_nested_payloads_are_refused(repository):
    import base64

    token = first_token(repository)
    payload, signature = token.split(".")
    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()
    for odd in (f"{payload}.é{signature[1:]}", f"{token}\u2603", "é" + token, "é.é",
                f"{payload}.{'ÿ' * len(signature)}", f"{nested}.{signature}"):
        assert error_code(ask(repository, verb="ListRecords", resumptionToken=odd)) == (
            "badResumptionToken"), odd[:40]


def test_tokens_expire_and_belong_to_their_verb_and_list(repository):
    token = first_token(repository)
    assert error_code(ask(repository, verb="ListRecords", resumptionToken=token)) is None
    later = respond(repository, {"verb": ["ListRecords"], "resumptionToken": [token]},
                    now=NOW + timedelta(days=2))
    assert error_code(etree.fromstring(later)) == "badResumptionToken"
    assert error_code(ask(repository, verb="ListIdentifiers", resumptionToken=token)) == (
        "badResumptionToken")
    changed = replace(repository, records=repository.records[:4])
    assert error_code(ask(changed, verb="ListRecords", resumptionToken=token)) == (
        "badResumptionToken")


# -- over HTTP: a real harvester ---------------------------------------------------------

@pytest.fixture(scope="module")
def server(tiny_index, tiny_model_path, tmp_path_factory):
    home = tmp_path_factory.mktemp("oai-server")
    config = Config(home=home, index=tiny_index, model=str(tiny_model_path), oai_page_size=2)
    app = create_app(config)
    if "oai" not in app.blueprints:
        app.register_blueprint(oai_blueprint.bp)
    with live_server(app) as url:
        yield config, url


def test_sickle_harvests_every_record_through_resumption_tokens(server):
    Sickle = pytest.importorskip("sickle", reason=SICKLE).Sickle

    config, url = server
    expected = deployment_records(config, url)
    harvester = Sickle(url + "/oai", max_retries=0, timeout=30)
    harvested = list(harvester.ListRecords(metadataPrefix="ivo_vor"))
    assert [r.header.identifier for r in harvested] == [r.identifier for r in expected]
    assert [r.header.datestamp for r in harvested] == [r.datestamp for r in expected]
    for got, want in zip(harvested, expected):
        resource = got.xml.find(f".//{OAI}metadata/{RI_RESOURCE}")
        assert canonical(resource) == canonical(etree.fromstring(want.to_xml()))
    headers = list(harvester.ListIdentifiers(metadataPrefix="oai_dc", set="ivo_managed"))
    assert [h.identifier for h in headers] == [r.identifier for r in expected]
    assert harvester.Identify().repositoryName.endswith("publishing registry")
    dc = harvester.GetRecord(identifier=expected[0].identifier, metadataPrefix="oai_dc")
    assert dc.metadata["identifier"] == [expected[0].identifier]


def test_sickle_sees_oai_errors(server):
    Sickle = pytest.importorskip("sickle", reason=SICKLE).Sickle
    from sickle.oaiexceptions import BadResumptionToken, CannotDisseminateFormat, IdDoesNotExist

    harvester = Sickle(server[1] + "/oai", timeout=30)
    with pytest.raises(CannotDisseminateFormat):
        next(harvester.ListRecords(metadataPrefix="marc21"))
    with pytest.raises(IdDoesNotExist):
        harvester.GetRecord(identifier="ivo://nowhere.org/x", metadataPrefix="ivo_vor")
    with pytest.raises(BadResumptionToken):
        next(harvester.ListRecords(resumptionToken="forged.token"))


@pytest.mark.parametrize("query", [
    "", "?verb=Nonsense", "?verb=ListRecords&metadataPrefix=nope",
    "?verb=ListRecords&metadataPrefix=ivo_vor&from=2026-99-99",
    "?verb=ListRecords&resumptionToken=%00%ff%fe", "?verb=GetRecord&identifier=%C3%28",
    "?verb=ListRecords&metadataPrefix=ivo_vor&metadataPrefix=ivo_vor",
    "?verb=GetRecord&metadataPrefix=ivo_vor&identifier=ivo%3A%2F%2Fx%01%1f",
    "?verb=Identify&bad%00name=1&bad%00name=2", "?verb=Identify&%7F=",
    "?verb=ListRecords&metadataPrefix=%01",
])
def test_bad_http_requests_get_an_oai_error_with_200(xsd, server, query):
    response = requests.get(server[1] + "/oai" + query, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/xml")
    assert "Traceback" not in response.text
    assert re.search(r'<oai:error code="\w+">', response.text)
    assert_valid_if_possible(xsd, response.content)


def test_post_is_served_like_get(server):
    url = server[1] + "/oai"
    posted = requests.post(url, data={"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor"},
                           timeout=30)
    got = requests.get(url, params={"verb": "ListIdentifiers", "metadataPrefix": "ivo_vor"},
                       timeout=30)
    assert posted.status_code == 200
    strip = re.compile(rb"<oai:responseDate>.*?</oai:responseDate>|expirationDate=\"[^\"]*\"|"
                       rb"<oai:resumptionToken[^>]*>[^<]*")
    assert strip.sub(b"", posted.content) == strip.sub(b"", got.content)
    assert b"ivo://example.org/vo_clip/tap" in posted.content
