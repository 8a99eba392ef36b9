"""A labelled grid of previews, one or more per scene kind, for a person to judge.

Synthetic previews are only useful if they look like the real thing; the quickest way to
check is to look at every kind side by side with its camera and filter.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

from PIL import Image, ImageDraw

from ...errors import ArchiveError
from ..archive import Archive

__all__ = ["write_contact_sheet"]

_LABEL_HEIGHT = 14


def write_contact_sheet(archive_root: str | os.PathLike, out_png: str | os.PathLike, *,
                        per_kind: int = 1) -> Path:
    """Write a grid PNG of ``per_kind`` previews of every kind in ``truth.csv``."""
    archive = Archive.open(archive_root)
    if not (Path(archive_root) / "truth.csv").is_file():
        raise ArchiveError(f"{archive_root} has no truth.csv: only demo archives name their "
                           "scene kinds")
    rows = {str(obs_id): i for i, obs_id in enumerate(archive.table["obs_id"])}
    chosen = _choose(Path(archive_root) / "truth.csv", per_kind)
    tiles = [_tile(archive, rows[obs_id], kind) for kind, obs_id in chosen]
    if not tiles:
        raise ArchiveError(f"no previews listed in {archive_root}/truth.csv")
    width, height = tiles[0].size
    kinds_per_row = max(1, round(math.sqrt(len(tiles) * height / width) / per_kind))
    columns = kinds_per_row * per_kind
    sheet = Image.new("L", (columns * width, math.ceil(len(tiles) / columns) * height))
    for number, tile in enumerate(tiles):
        sheet.paste(tile, ((number % columns) * width, (number // columns) * height))
    out_png = Path(out_png)
    sheet.save(out_png)
    return out_png


def _choose(truth: Path, per_kind: int) -> list[tuple[str, str]]:
    """The first ``per_kind`` observations of each kind, kinds in order of appearance."""
    by_kind: dict[str, list[str]] = {}
    with open(truth, newline="") as fh:
        for row in csv.DictReader(fh):
            by_kind.setdefault(row["kind"], [])
            if len(by_kind[row["kind"]]) < per_kind:
                by_kind[row["kind"]].append(row["obs_id"])
    return [(kind, obs_id) for kind, ids in by_kind.items() for obs_id in ids]


def _tile(archive: Archive, row: int, kind: str) -> Image.Image:
    preview = Image.open(archive.preview_path(row)).convert("L")
    tile = Image.new("L", (preview.width, preview.height + _LABEL_HEIGHT))
    tile.paste(preview, (0, _LABEL_HEIGHT))
    label = f"{kind}  {archive.table['instrument_name'][row]} {archive.table['filters'][row]}"
    ImageDraw.Draw(tile).text((3, 1), label, fill=255)
    return tile
