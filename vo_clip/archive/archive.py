"""An archive directory: the one input every later stage reads.

Layout::

    ARCHIVE/
      archive.json         name, source, creation time (free-form provenance)
      observations.ecsv    one row per observation: ObsCore columns + HST extras
      previews/...         the preview images, referenced by the ``preview`` column

ECSV keeps the dtypes, units and descriptions of the columns in a plain-text file that
astropy, TOPCAT and a text editor all read. Both MAST ingest and the demo generator
write archives through :meth:`Archive.write`, so a half-written archive never exists:
the table is written to a temporary file and renamed into place.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from astropy.table import Table

from ..errors import ArchiveError
from ..hashing import sha256_file
from ..timestamps import utc_seconds
from .columns import REQUIRED_COLUMNS, all_columns

__all__ = ["Archive", "METADATA_FILE", "OBSERVATIONS_FILE"]

OBSERVATIONS_FILE = "observations.ecsv"
METADATA_FILE = "archive.json"


class Archive:
    """A validated archive directory.

    Use :meth:`open` to read one and :meth:`write` to create one; the constructor
    trusts its arguments.
    """

    def __init__(self, root: Path, table: Table, metadata: dict):
        self.root = Path(root)
        self.table = table
        self.metadata = metadata

    # -- reading -----------------------------------------------------------------
    @classmethod
    def open(cls, root: str | os.PathLike) -> "Archive":
        """Open and validate the archive in ``root``.

        Raises
        ------
        ArchiveError
            If the directory or its observations table is missing, unreadable, lacks
            ``obs_id``/``preview``, or repeats an ``obs_id``.
        """
        root = Path(root).expanduser()
        path = root / OBSERVATIONS_FILE
        if not path.is_file():
            raise ArchiveError(
                f"no archive at {root}: {OBSERVATIONS_FILE} is missing",
                hint="build one with 'vo-clip demo' or 'vo-clip ingest', or pass --archive",
            )
        try:
            table = Table.read(path, format="ascii.ecsv")
        except Exception as exc:  # astropy raises many kinds on a corrupt file
            raise ArchiveError(f"cannot read {path}: {exc}") from exc
        missing = [c for c in REQUIRED_COLUMNS if c not in table.colnames]
        if missing:
            raise ArchiveError(f"{path} lacks the required column(s) {', '.join(missing)}")
        _check_unique(table["obs_id"], path)
        meta_path = root / METADATA_FILE
        metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return cls(root, table, metadata)

    @property
    def name(self) -> str:
        return self.metadata.get("name") or self.root.name

    @property
    def fingerprint(self) -> str:
        """sha256 of the observations table: changes whenever a row or column does."""
        return sha256_file(self.root / OBSERVATIONS_FILE)

    def __len__(self) -> int:
        return len(self.table)

    @property
    def obs_ids(self) -> list[str]:
        return [str(v) for v in self.table["obs_id"]]

    def preview_path(self, row: int) -> Path:
        return self.root / str(self.table["preview"][row])

    def describe(self) -> dict:
        """What ``vo-clip info`` shows about this archive."""
        return {
            "name": self.name,
            "path": str(self.root),
            "observations": len(self),
            "fingerprint": self.fingerprint,
            **{k: v for k, v in self.metadata.items() if k != "name"},
        }

    # -- writing -----------------------------------------------------------------
    @classmethod
    def write(cls, root: str | os.PathLike, table: Table, *, name: str,
              source: str, extra: dict | None = None) -> "Archive":
        """Write ``table`` as the observations of the archive in ``root``.

        The previews must already be in place under ``root``; known columns get their
        units and descriptions from :mod:`vo_clip.archive.columns`.
        """
        root = Path(root)
        missing = [c for c in REQUIRED_COLUMNS if c not in table.colnames]
        if missing:
            raise ArchiveError(f"cannot write an archive without column(s) {', '.join(missing)}")
        _check_unique(table["obs_id"], root)
        absent = [p for p in table["preview"] if not (root / str(p)).is_file()]
        if absent:
            raise ArchiveError(
                f"{len(absent)} preview(s) referenced by the table are not under {root}, "
                f"e.g. {absent[0]}"
            )
        table = table.copy(copy_data=False)
        for col in all_columns():
            if col.name in table.colnames:
                table[col.name].description = col.description
                if col.unit:
                    table[col.name].unit = col.unit
        root.mkdir(parents=True, exist_ok=True)
        tmp = root / (OBSERVATIONS_FILE + ".partial")
        table.write(tmp, format="ascii.ecsv", overwrite=True)
        os.replace(tmp, root / OBSERVATIONS_FILE)
        metadata = {
            "name": name,
            "source": source,
            "created": utc_seconds(),
            **(extra or {}),
        }
        (root / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        return cls.open(root)


def _check_unique(obs_ids, where) -> None:
    seen: set[str] = set()
    for value in obs_ids:
        value = str(value)
        if value in seen:
            raise ArchiveError(f"obs_id {value!r} appears more than once in {where}")
        seen.add(value)
