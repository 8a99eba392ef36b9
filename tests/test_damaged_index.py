"""A damaged index is named as such: by `vo-clip serve`, by /health, by every endpoint.

The files are really damaged (truncated, overwritten with random bytes, replaced by
a directory: the tests run as root, so chmod would not stop a read), in a copy of
the tiny index. Before these fixes `vo-clip serve` died with a traceback, a 0-byte
catalog served "ok" on /health while TAP answered 400, and a catalog damaged while
serving gave 400 "database disk image is malformed", which blames the caller.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest
from conftest import assert_one_line_error

from service import create_app
from vo_clip.config import Config
from vo_clip.errors import IndexDamagedError
from vo_clip.search.index import EmbeddingIndex

OBS_DID = "ivo://example.org/vo_clip?obs001"


def _truncate(path, fraction=0.5):
    os.truncate(path, int(path.stat().st_size * fraction))


def _garbage(path):
    with open(path, "r+b") as stream:  # the same inode: an open connection sees it
        stream.write(os.urandom(path.stat().st_size))


def _directory(path):
    path.unlink()
    path.mkdir()


DAMAGES = {
    "catalog truncated": ("catalog.sqlite", _truncate),
    "catalog garbage": ("catalog.sqlite", _garbage),
    "catalog empty": ("catalog.sqlite", lambda p: _truncate(p, 0)),
    "catalog unreadable": ("catalog.sqlite", _directory),
    "embeddings truncated": ("embeddings.npy", _truncate),
    "embeddings garbage": ("embeddings.npy", _garbage),
    "embeddings unreadable": ("embeddings.npy", _directory),
    "manifest truncated": ("manifest.json", _truncate),
}


@pytest.fixture
def index_copy(tiny_index, tmp_path):
    return shutil.copytree(tiny_index, tmp_path / "index")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("damage", DAMAGES)
def test_open_names_the_damaged_file(index_copy, damage):
    name, how = DAMAGES[damage]
    how(index_copy / name)
    with pytest.raises(IndexDamagedError) as raised:
        EmbeddingIndex.open(index_copy)
    assert str(index_copy / name) in raised.value.message
    assert "vo-clip index --rebuild" in raised.value.hint


@pytest.mark.parametrize("damage", ["catalog truncated", "catalog empty",
                                    "embeddings garbage", "manifest truncated"])
def test_serve_refuses_a_damaged_index_in_one_line(index_copy, tiny_model_path, tmp_path,
                                                    damage):
    name, how = DAMAGES[damage]
    how(index_copy / name)
    result = _serve(index_copy, tiny_model_path, tmp_path)
    assert_one_line_error(result, str(index_copy / name), "damaged")
    assert "vo-clip index --rebuild" in result.stderr


def _serve(index, model, home) -> subprocess.CompletedProcess:
    """`vo-clip serve` on ``index``, as a user runs it (it must exit, not serve)."""
    env = {**os.environ, "VO_CLIP_HOME": str(home), "VO_CLIP_INDEX": str(index),
           "VO_CLIP_MODEL": str(model)}
    env.pop("VO_CLIP_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "vo_clip", "serve", "--port",
                           str(_free_port())], capture_output=True, text=True, env=env,
                          timeout=120)


def _app(index, model, home):
    return create_app(Config(home=home, index=index, model=str(model)))


def _is_damage_error(response, statuses=(500, 503)) -> str:
    """The body is a DALI error VOTable with a server-fault status; its message."""
    assert response.status_code in statuses, (response.status_code, response.data)
    document = ET.fromstring(response.data)
    info = document.find(".//{*}INFO[@name='QUERY_STATUS']")
    assert info is not None and info.get("value") == "ERROR", response.data
    return info.text


def test_an_empty_catalog_makes_the_service_unavailable(index_copy, tiny_model_path,
                                                         tmp_path):
    _truncate(index_copy / "catalog.sqlite", 0)
    client = _app(index_copy, tiny_model_path, tmp_path).test_client()
    health = client.get("/health")
    assert health.status_code == 503 and health.json["status"] == "unavailable"
    assert "catalog.sqlite" in health.json["reason"]
    availability = ET.fromstring(client.get("/tap/availability").data)
    assert availability.findtext("{*}available") == "false"
    assert "catalog.sqlite" in availability.findtext("{*}note")
    query = client.get("/tap/sync", query_string={"LANG": "ADQL",
                                                   "QUERY": "SELECT obs_id FROM ivoa.ObsCore"})
    assert "damaged" in _is_damage_error(query)
    assert "damaged" in _is_damage_error(client.get("/datalink/links",
                                                    query_string={"ID": OBS_DID}))
    assert "damaged" in _is_damage_error(client.get("/preview/obs001"))


def _working_client(index_copy, model, home):
    """A client of a service that has answered once (its connections are open)."""
    client = _app(index_copy, model, home).test_client()
    assert client.get("/health").status_code == 200
    assert _sync(client).status_code == 200
    assert client.get("/datalink/links", query_string={"ID": OBS_DID}).status_code == 200
    with client.get("/preview/obs001") as preview:  # a file response: close it
        assert preview.status_code == 200
    return client


def _sync(client):
    return client.get("/tap/sync", query_string={
        "LANG": "ADQL", "QUERY": "SELECT obs_id, target_name FROM ivoa.ObsCore "
                                 "WHERE target_name LIKE 'TARGET%' ORDER BY s_dec DESC"})


@pytest.mark.parametrize("damage", ["catalog garbage", "catalog empty"])
def test_a_catalog_damaged_while_serving_is_a_server_fault(index_copy, tiny_model_path,
                                                           tmp_path, damage):
    client = _working_client(index_copy, tiny_model_path, tmp_path)
    name, how = DAMAGES[damage]
    how(index_copy / name)
    for response in (_sync(client),
                     client.get("/datalink/links", query_string={"ID": OBS_DID}),
                     client.get("/preview/obs001"),
                     client.get("/products/obs001.fits")):
        message = _is_damage_error(response)
        assert "the service's data is damaged" in message, message
    health = client.get("/health")
    assert health.status_code == 503 and "catalog.sqlite" in health.json["reason"]


def test_a_catalog_truncated_while_serving_is_never_blamed_on_the_caller(
        index_copy, tiny_model_path, tmp_path):
    """SQLite may still answer from pages it cached; /health must see the truncation."""
    client = _working_client(index_copy, tiny_model_path, tmp_path)
    _truncate(index_copy / "catalog.sqlite")
    health = client.get("/health")
    assert health.status_code == 503 and "truncated" in health.json["reason"]
    response = _sync(client)
    assert response.status_code in (200, 500, 503), response.data
    if response.status_code != 200:
        assert "damaged" in _is_damage_error(response)


def test_a_truncated_embeddings_file_while_serving_makes_health_fail(
        index_copy, tiny_model_path, tmp_path):
    """Reading past the end of a truncated memory map would crash: /health says so first."""
    client = _working_client(index_copy, tiny_model_path, tmp_path)
    _truncate(index_copy / "embeddings.npy")
    health = client.get("/health")
    assert health.status_code == 503 and "embeddings.npy" in health.json["reason"]
    availability = ET.fromstring(client.get("/tap/availability").data)
    assert availability.findtext("{*}available") == "false"
