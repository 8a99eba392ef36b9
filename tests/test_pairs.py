"""Training pairs: rows without a caption (a failed summary, an empty abstract) are left
out rather than trained on as text like '--'."""

import pytest
from astropy.table import MaskedColumn
from conftest import write_tiny_archive

from vo_clip.archive import Archive
from vo_clip.errors import ArchiveError
from vo_clip.ml.pairs import archive_pairs


def test_rows_without_a_summary_are_not_paired(tmp_path):
    archive = write_tiny_archive(tmp_path / "a", n=6)
    table = archive.table.copy()
    table["summary_objects"] = MaskedColumn(["stars", "gas", "", "dust", "x", "y"],
                                            mask=[False, False, False, True, False, False])
    table["summary_use_cases"] = ["photometry"] * 5 + ["  "]
    archive = Archive.write(tmp_path / "a", table, name="with gaps", source="tests")
    pairs = archive_pairs(archive)
    assert pairs.obs_ids == ["obs000", "obs001", "obs004"]
    assert pairs.captions[0] == "stars. photometry."


def test_an_archive_without_any_caption_says_what_to_run(tmp_path):
    archive = write_tiny_archive(tmp_path / "a", n=3)
    table = archive.table.copy()
    table["summary_objects"] = MaskedColumn(["a", "b", "c"], mask=[True] * 3)
    table["summary_use_cases"] = ["u"] * 3
    archive = Archive.write(tmp_path / "a", table, name="none", source="tests")
    with pytest.raises(ArchiveError, match="no summary captions") as caught:
        archive_pairs(archive)
    assert "vo-clip summarize" in caught.value.hint
