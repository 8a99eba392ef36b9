"""VOResource records: what registry/ holds, what the IVOA XSDs accept, and that the TAP
record's capabilities and tables are those the live service serves (one source)."""

from __future__ import annotations

import difflib
import xml.etree.ElementTree as ET
from dataclasses import fields, replace
from pathlib import Path

import pytest
import requests
from conftest import assert_one_line_error, live_server, missing_tool, run_cli

from service import create_app
from vo_clip.config import Config
from vo_clip.errors import VoClipError
from vo_clip.vo.registry import (
    NAMESPACES,
    deployment_records,
    dublin_core,
    identity,
    tap_capabilities_xml,
)
from vo_clip.vo.xsd import IvoaSchemas, find_schema_dir

REGISTRY = Path(__file__).resolve().parent.parent / "registry"
XSI_TYPE = "{%s}type" % NAMESPACES["xsi"]
IDENTITY_SETTINGS = (
    "authority", "base_url", "title", "short_name", "description", "publisher",
    "publisher_url", "contact_name", "contact_email", "reference_url", "subjects",
    "content_level", "waveband", "coverage_spatial", "coverage_temporal", "record_created",
    "record_updated", "oai_page_size")


@pytest.fixture(scope="session")
def schemas() -> IvoaSchemas:
    """The IVOA XSDs from Debian's python3-gavo, or a skip saying how to get them."""
    if find_schema_dir() is None:
        pytest.skip(missing_tool(
            "the IVOA XSDs (apt-get download python3-gavo && dpkg -x python3-gavo_*.deb DIR, "
            "then VO_CLIP_XSD_DIR=DIR/usr/lib/python3/dist-packages/gavo/resources/schemata; "
            "see .ci/run)"))
    return IvoaSchemas()


def assert_valid(schemas: IvoaSchemas, document: bytes) -> None:
    errors = schemas.errors(document)
    assert not errors, "\n".join(errors[:10])


def canonical(element) -> bytes:
    """Exclusive C14N of an lxml element, whitespace-only text dropped."""
    from lxml import etree

    element = etree.fromstring(etree.tostring(element))
    for node in element.iter():
        if node.text is not None and not node.text.strip():
            node.text = None
        if node.tail is not None and not node.tail.strip():
            node.tail = None
    return etree.tostring(element, method="c14n", exclusive=True)


@pytest.fixture()
def config(tmp_path) -> Config:
    return Config(home=tmp_path)


@pytest.fixture()
def records(config):
    return {record.name: record for record in deployment_records(config)}


# -- registry/ ----------------------------------------------------------------------------

def test_registry_folder_holds_the_default_deployment(config):
    """registry/records is what `vo-clip registry` writes for the defaults (a diff if not)."""
    written = sorted(p.name for p in (REGISTRY / "records").glob("*.xml"))
    generated = deployment_records(config)
    assert written == sorted(f"{r.name}.xml" for r in generated)
    for record in generated:
        expected = (REGISTRY / "records" / f"{record.name}.xml").read_text()
        got = record.to_xml().decode()
        diff = "".join(difflib.unified_diff(expected.splitlines(True), got.splitlines(True),
                                            f"registry/records/{record.name}.xml", "generated"))
        assert not diff, "regenerate with: vo-clip registry --out registry/records\n" + diff


def test_deployment_toml_is_the_defaults_and_documents_every_setting(tmp_path):
    file = REGISTRY / "deployment.toml"
    loaded = Config.load(file=file, env={"VO_CLIP_HOME": str(tmp_path)})
    assert loaded == Config(home=tmp_path)
    text = file.read_text()
    for name in IDENTITY_SETTINGS:
        assert f"\n{name} = " in text or f"\n# {name} = " in text, name
    assert set(IDENTITY_SETTINGS) <= {f.name for f in fields(Config)}
    assert text.count("[vo_clip]") == 1


def test_records_are_deterministic(config):
    first = [r.to_xml() for r in deployment_records(config)]
    assert first == [r.to_xml() for r in deployment_records(config)]


# -- XSD validation -----------------------------------------------------------------------

def test_default_records_validate(schemas, records):
    for record in records.values():
        assert_valid(schemas, record.to_xml())


def test_customised_records_validate(schemas, tmp_path):
    config = Config(home=tmp_path, authority="vo.archive.example", base_url="https://vo.archive."
                    "example/clip/", title="An <archive> & its \"title\"", short_name="x" * 16,
                    coverage_spatial="0/0-11", coverage_temporal=(48005.0, 61000.5),
                    subjects=("galaxies",), content_level=("Research", "University"),
                    waveband=(), record_updated="2027-01-02T03:04:05Z", oai_page_size=7)
    records = deployment_records(config)
    for record in records:
        assert_valid(schemas, record.to_xml())
    tap = records[0].element()
    assert tap.findtext("title") == "An <archive> & its \"title\""
    assert tap.find("coverage/spatial").text == "0/0-11"
    assert tap.find("coverage/temporal").text == "48005.0 61000.5"
    assert tap.get("updated") == "2027-01-02T03:04:05Z"
    assert records[-1].element().findtext("capability/maxRecords") == "7"


@pytest.mark.parametrize("edit", [
    lambda r: r.find("shortName").__setattr__("text", "x" * 17),
    lambda r: r.insert(0, r.find("curation")),
    lambda r: r.set(XSI_TYPE, "vs:CatalogServic"),
    lambda r: r.find("identifier").__setattr__("text", "http://not.an.ivoid/x"),
    lambda r: r.set("updated", "yesterday"),
], ids=["shortName-17-chars", "curation-first", "unknown-xsi-type", "http-identifier",
        "bad-timestamp"])
def test_the_validator_is_real(schemas, records, edit):
    """Each broken record fails: the schemas are strict, not permissive."""
    root = ET.fromstring(records["tap"].to_xml())
    edit(root)
    assert schemas.errors(ET.tostring(root))


def test_a_document_that_is_not_xml_is_an_error(schemas):
    assert schemas.errors(b"<ri:Resource") != []


# -- content ------------------------------------------------------------------------------

def test_tap_record(records):
    tap = records["tap"].element()
    assert tap.tag == "ri:Resource" and tap.get("xsi:type") == "vs:CatalogService"
    assert tap.findtext("identifier") == "ivo://example.org/vo_clip/tap"
    assert len(tap.findtext("shortName")) <= 16
    assert [c.get("standardID") for c in tap.findall("capability")] == [
        "ivo://ivoa.net/std/TAP", "ivo://ivoa.net/std/VOSI#capabilities",
        "ivo://ivoa.net/std/VOSI#availability", "ivo://ivoa.net/std/VOSI#tables-1.1",
        "ivo://ivoa.net/std/DALI#examples"]
    assert tap.find("capability").get("xsi:type") == "tr:TableAccess"
    assert [t.findtext("name") for t in tap.findall("tableset/schema/table")] == [
        "ivoa.ObsCore", "hst.observations"]
    assert [w.text for w in tap.findall("coverage/waveband")] == ["UV", "Optical", "Infrared"]
    assert tap.find("curation/publisher").get("ivo-id") == "ivo://example.org/org"
    assert [s.text for s in tap.findall("content/subject")][0] == "hubble-space-telescope"


def test_datalink_record(records):
    datalink = records["datalink"].element()
    assert datalink.get("xsi:type") == "vs:DataService"
    capabilities = datalink.findall("capability")
    assert capabilities[0].get("standardID") == "ivo://ivoa.net/std/DataLink#links-1.1"
    assert [c.findtext("interface/accessURL") for c in capabilities] == [
        "http://127.0.0.1:8000/datalink/links", "http://127.0.0.1:8000/datalink/similar",
        "http://127.0.0.1:8000/datalink/describe"]
    assert [p.findtext("name") for p in capabilities[1].findall("interface/param")] == [
        "ID", "TOP"]
    relation = datalink.find("content/relationship/relatedResource")
    assert relation.get("ivo-id") == "ivo://example.org/vo_clip/tap"


def test_authority_organisation_and_registry_records(records):
    authority = records["authority"].element()
    assert authority.get("xsi:type") == "vg:Authority"
    assert authority.findtext("identifier") == "ivo://example.org"
    assert authority.find("managingOrg").get("ivo-id") == "ivo://example.org/org"
    assert records["org"].element().get("xsi:type") == "vr:Organisation"
    registry = records["registry"].element()
    assert registry.get("xsi:type") == "vg:Registry"
    harvest = registry.find("capability")
    assert (harvest.get("standardID"), harvest.get("xsi:type")) == (
        "ivo://ivoa.net/std/Registry", "vg:Harvest")
    assert harvest.find("interface").get("xsi:type") == "vg:OAIHTTP"
    assert harvest.findtext("interface/accessURL") == "http://127.0.0.1:8000/oai"
    assert (registry.findtext("full"), registry.findtext("managedAuthority")) == (
        "false", "example.org")


def test_identifiers_and_urls_follow_the_configuration(tmp_path):
    config = Config(home=tmp_path, authority="my.archive", base_url="https://vo.my.archive/")
    records = deployment_records(config)
    assert [r.identifier for r in records] == [
        "ivo://my.archive/vo_clip/tap", "ivo://my.archive/vo_clip/datalink",
        "ivo://my.archive", "ivo://my.archive/org", "ivo://my.archive/registry"]
    assert b"127.0.0.1" not in b"".join(r.to_xml() for r in records)
    assert records[0].element().findtext("capability/interface/accessURL") == (
        "https://vo.my.archive/tap")


def test_dublin_core(records):
    dc = ET.tostring(dublin_core(records["tap"])).decode()
    assert "<dc:identifier>ivo://example.org/vo_clip/tap</dc:identifier>" in dc
    assert "<dc:subject>hubble-space-telescope</dc:subject>" in dc


@pytest.mark.parametrize("settings, needle", [
    ({"short_name": "seventeen chars.."}, "16 characters"),
    ({"authority": "ab"}, "not an IVOA authority"),
    ({"authority": "has space"}, "not an IVOA authority"),
    ({"record_created": "2026-11-22"}, "not a UTC timestamp"),
    ({"record_updated": "2026-02-30T00:00:00Z"}, "not a UTC timestamp"),
    ({"record_updated": "2020-01-01T00:00:00Z"}, "before record_created"),
    ({"oai_page_size": 0}, "at least 1"),
    ({"base_url": "ftp://x"}, "http(s)"),
    ({"coverage_temporal": (1.0,)}, "two MJDs"),
    ({"subjects": ()}, "subjects is empty"),
])
def test_bad_identity_settings_are_named(config, settings, needle):
    with pytest.raises(VoClipError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        deployment_records(replace(config, **settings))


def test_list_settings_from_the_environment(tmp_path):
    env = {"VO_CLIP_HOME": str(tmp_path), "VO_CLIP_SUBJECTS": "galaxies, nebulae",
           "VO_CLIP_COVERAGE_TEMPORAL": "48005,61000", "VO_CLIP_OAI_PAGE_SIZE": "3"}
    config = Config.load(env=env)
    assert config.subjects == ("galaxies", "nebulae")
    assert config.coverage_temporal == (48005.0, 61000.0)
    assert config.oai_page_size == 3
    assert identity(config).base_url == "http://127.0.0.1:8000"
    with pytest.raises(VoClipError, match="oai_page_size"):
        Config.load(env={**env, "VO_CLIP_OAI_PAGE_SIZE": "many"})


# -- one source: the live service and the record ------------------------------------------

@pytest.fixture(scope="module")
def server(tiny_index, tiny_model_path, tmp_path_factory):
    home = tmp_path_factory.mktemp("registry-home")
    config = Config(home=home, index=tiny_index, model=str(tiny_model_path))
    with live_server(create_app(config)) as url:
        yield config, url


def test_served_capabilities_are_the_records(server):
    config, url = server
    served = requests.get(url + "/tap/capabilities", timeout=30)
    from lxml import etree

    served_caps = etree.fromstring(served.content).findall("capability")
    record = etree.fromstring(deployment_records(config, url)[0].to_xml())
    assert len(served_caps) == 5
    assert [canonical(c) for c in served_caps] == [
        canonical(c) for c in record.findall("capability")]
    assert served.content == tap_capabilities_xml(url)


def test_served_tables_are_the_records_tableset(server):
    config, url = server
    from lxml import etree

    served = etree.fromstring(requests.get(url + "/tap/tables", timeout=30).content)
    schemas = [s for s in served.findall("schema") if s.findtext("name") != "TAP_SCHEMA"]
    record = etree.fromstring(deployment_records(config, url)[0].to_xml())
    assert [s.findtext("name") for s in schemas] == ["ivoa", "hst"]
    assert [canonical(s) for s in schemas] == [
        canonical(s) for s in record.findall("tableset/schema")]


@pytest.mark.parametrize("path", [
    "/tap/capabilities", "/tap/availability", "/tap/tables", "/tap/tables?detail=min",
    "/tap/tables/ivoa.ObsCore", "/tap/tables/hst.observations"])
def test_vosi_documents_validate(schemas, server, path):
    response = requests.get(server[1] + path, timeout=30)
    assert response.status_code == 200
    assert_valid(schemas, response.content)


# -- the command --------------------------------------------------------------------------

def test_cli_writes_the_records(tmp_path):
    out = tmp_path / "records"
    result = run_cli("registry", "--out", str(out), home=tmp_path)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in (REGISTRY / "records").glob("*.xml"))
    for path in out.iterdir():
        assert path.read_bytes() == (REGISTRY / "records" / path.name).read_bytes()
    assert "wrote" in result.stdout and "ivo://example.org/vo_clip/tap" in result.stdout


def test_cli_validates_when_the_schemas_are_here(schemas, tmp_path):
    result = run_cli("registry", "--out", str(tmp_path / "r"), home=tmp_path)
    assert "validated 5 records against the IVOA schemas" in result.stdout


def test_cli_base_url_and_config_file(tmp_path):
    settings = tmp_path / "deployment.toml"
    settings.write_text('authority = "my.archive"\nrecord_updated = "2027-01-01T00:00:00Z"\n')
    out = tmp_path / "records"
    run_cli("--config", str(settings), "registry", "--out", str(out), "--base-url",
            "https://vo.my.archive", "--no-validate", home=tmp_path)
    tap = (out / "tap.xml").read_text()
    assert "<identifier>ivo://my.archive/vo_clip/tap</identifier>" in tap
    assert ">https://vo.my.archive/tap<" in tap and 'updated="2027-01-01T00:00:00Z"' in tap


def test_cli_warns_when_content_changes_without_a_new_updated(tmp_path):
    out = tmp_path / "records"
    run_cli("registry", "--out", str(out), "--no-validate", home=tmp_path)
    settings = tmp_path / "deployment.toml"
    settings.write_text('title = "A new title"\n')
    result = run_cli("--config", str(settings), "registry", "--out", str(out),
                     "--no-validate", home=tmp_path)
    assert "tap.xml changed but keeps updated=" in result.stderr


def test_cli_bad_setting_is_one_line(tmp_path):
    settings = tmp_path / "deployment.toml"
    settings.write_text('short_name = "far too long a short name"\n')
    result = run_cli("--config", str(settings), "registry", "--out", str(tmp_path / "r"),
                     home=tmp_path, check=False)
    assert_one_line_error(result, "short_name")
    assert not (tmp_path / "r").exists()


def test_schema_folder_is_found_where_dpkg_leaves_it(schemas, tmp_path):
    nested = tmp_path / "usr/lib/python3/dist-packages/gavo/resources/schemata"
    nested.mkdir(parents=True)
    for path in schemas.folder.glob("*.xsd"):
        (nested / path.name).symlink_to(path)
    env = {"VO_CLIP_XSD_DIR": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    assert find_schema_dir(env) == nested
    assert not IvoaSchemas(nested).errors(deployment_records(Config(home=tmp_path))[2].to_xml())


def test_an_incomplete_schema_folder_is_refused(tmp_path):
    (tmp_path / "VOResource.xsd").write_text("<nothing/>")
    with pytest.raises(VoClipError, match="not on this machine"):
        IvoaSchemas(tmp_path)
