"""The demo archive generator: valid ObsCore rows, determinism, coverage, held-out words."""

from __future__ import annotations

import csv
import hashlib
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vo_clip
from vo_clip.archive import Archive
from vo_clip.archive.columns import all_columns
from vo_clip.archive.demo import (
    HELD_OUT_PARAPHRASES,
    KINDS,
    TRUTH_FILE,
    build_demo_archive,
    write_contact_sheet,
)
from vo_clip.archive.demo.captions import caption_vocabulary, content_words
from vo_clip.archive.demo.table import LEFT_TO_SERVICE
from vo_clip.archive.demo.timeline import cycle_mjd_range
from vo_clip.errors import ArchiveError

SMALL = dict(n_observations=60, n_proposals=12, preview_size=128, progress=False)
# hst_<proposal>_<visit>_<instrument>_<detector>_<filter>_<ipppss>, ss repeating the visit
HAP_ID = re.compile(
    r"^hst_(\d{5})_([0-9a-z]{2})_[a-z0-9]+_[a-z0-9]+_[a-z0-9]+_[a-z][0-9a-z]{3}([0-9a-z]{2})$")


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo") / "archive"
    return build_demo_archive(root, seed=7, workers=1, **SMALL)


@pytest.fixture(scope="module")
def covering(tmp_path_factory):
    """Enough proposals that every kind leads at least one."""
    root = tmp_path_factory.mktemp("cover") / "archive"
    return build_demo_archive(root, n_observations=45, n_proposals=len(KINDS) + 2,
                              preview_size=64, seed=3, workers=1, progress=False)


def _truth(archive: Archive) -> dict[str, str]:
    with open(archive.root / TRUTH_FILE, newline="") as fh:
        return {row["obs_id"]: row["kind"] for row in csv.DictReader(fh)}


def _digests(archive: Archive) -> dict[str, str]:
    paths = [archive.root / "observations.ecsv", archive.root / TRUTH_FILE]
    paths += sorted((archive.root / "previews").iterdir())
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


def _separation_deg(ra1, dec1, ra2, dec2) -> float:
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    cos = (math.sin(dec1) * math.sin(dec2)
           + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


def test_archive_opens_with_the_obscore_and_hst_columns(small):
    archive = Archive.open(small.root)
    assert len(archive) == 60
    expected = [c.name for c in all_columns() if c.name not in LEFT_TO_SERVICE]
    assert archive.table.colnames == expected
    for col in all_columns():
        if col.name in expected:
            assert archive.table[col.name].dtype.kind == col.numpy_kind, col.name
    row = archive.table[0]
    assert row["dataproduct_type"] == "image"
    assert row["obs_collection"] == row["facility_name"] == "HST"
    assert row["o_ucd"] == "phot.flux.density"
    for column in ("t_xel", "em_xel", "pol_xel"):
        assert set(archive.table[column]) == {1}


def test_obs_ids_are_unique_and_hap_style(small):
    ids = small.obs_ids
    assert len(set(ids)) == len(ids)
    for obs_id, proposal in zip(ids, small.table["proposal_id"]):
        match = HAP_ID.match(obs_id)
        assert match, obs_id
        assert int(match.group(1)) == int(proposal)
        assert match.group(2) == match.group(3)


def test_times_fall_inside_the_proposal_cycle(small):
    table = small.table
    for t_min, t_max, cycle, exptime in zip(table["t_min"], table["t_max"],
                                            table["proposal_cycle"], table["t_exptime"]):
        start, end = cycle_mjd_range(int(cycle))
        assert start <= t_min < t_max <= end
        assert (t_max - t_min) * 86400 >= exptime
    assert set(table["proposal_cycle"]) <= set(range(1, 33))


def test_wavelength_bounds_are_ordered_metres(small):
    em_min, em_max = np.asarray(small.table["em_min"]), np.asarray(small.table["em_max"])
    assert np.all(em_min < em_max)
    assert np.all((em_min > 1e-7) & (em_max < 3e-6))


def test_regions_are_polygons_around_the_pointing(small):
    for ra, dec, fov, region in zip(small.table["s_ra"], small.table["s_dec"],
                                    small.table["s_fov"], small.table["s_region"]):
        words = str(region).split()
        assert words[:2] == ["Polygon", "ICRS"]
        coords = [float(v) for v in words[2:]]
        assert len(coords) % 2 == 0 and len(coords) >= 8
        for v_ra, v_dec in zip(coords[::2], coords[1::2]):
            assert 0 < _separation_deg(ra, dec, v_ra, v_dec) <= fov / 2 * 1.01


def test_summaries_have_one_to_five_items(small):
    for column in ("summary_objects", "summary_use_cases"):
        for value in small.table[column]:
            assert 1 <= len(str(value).split("; ")) <= 5


def test_truth_lists_every_observation_with_a_known_kind(small):
    truth = _truth(small)
    assert list(truth) == small.obs_ids
    assert set(truth.values()) <= set(KINDS)


def test_previews_are_8_bit_grayscale_of_the_requested_size(small):
    for row in range(len(small)):
        with Image.open(small.preview_path(row)) as image:
            assert image.mode == "L" and image.size == (128, 128)


def test_every_kind_appears_when_there_are_enough_proposals(covering):
    assert len(KINDS) >= 15
    assert set(_truth(covering).values()) == set(KINDS)


def test_same_seed_gives_identical_files_whatever_the_workers(small, tmp_path):
    again = build_demo_archive(tmp_path / "again", seed=7, workers=2, **SMALL)
    assert _digests(again) == _digests(small)


def test_files_do_not_depend_on_the_interpreter_hash_seed(tmp_path):
    """String hashing is randomised per process; the archive must not notice."""
    script = ("import sys; from vo_clip.archive.demo import build_demo_archive; "
              "build_demo_archive(sys.argv[1], n_observations=20, n_proposals=8, "
              "preview_size=32, workers=1, progress=False)")
    repo = str(Path(vo_clip.__file__).resolve().parents[1])
    digests = []
    for hash_seed in ("1", "2"):
        root = tmp_path / f"hash{hash_seed}"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed,
               "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        subprocess.run([sys.executable, "-c", script, str(root)], check=True, env=env, cwd=repo)
        digests.append(_digests(Archive.open(root)))
    assert digests[0] == digests[1]


def test_another_seed_gives_another_archive(small, tmp_path):
    other = build_demo_archive(tmp_path / "other", seed=8, workers=1, **SMALL)
    assert _digests(other)["observations.ecsv"] != _digests(small)["observations.ecsv"]
    assert _digests(other) != _digests(small)


def test_rebuilding_replaces_an_archive_but_not_other_directories(tmp_path):
    root = tmp_path / "archive"
    kwargs = dict(n_observations=3, n_proposals=2, preview_size=32, workers=1, progress=False)
    build_demo_archive(root, seed=1, **kwargs)
    rebuilt = build_demo_archive(root, seed=2, **kwargs)
    assert len(rebuilt) == 3 and rebuilt.root == root
    assert sorted(p.name for p in tmp_path.iterdir()) == ["archive"]
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "keep.txt").write_text("mine")
    with pytest.raises(ArchiveError):
        build_demo_archive(tmp_path / "notes", **kwargs)
    assert (tmp_path / "notes" / "keep.txt").read_text() == "mine"


def test_every_kind_has_many_phrasings():
    from vo_clip.archive.demo.phrases import WORDS

    assert set(WORDS) == set(KINDS)
    for kind, words in WORDS.items():
        assert len(words.objects) >= 12 and len(words.uses) >= 8, kind


def test_held_out_paraphrases_use_no_caption_word(small, covering):
    assert set(HELD_OUT_PARAPHRASES) == set(KINDS)
    vocabulary = caption_vocabulary()
    for archive in (small, covering):
        for column in ("proposal_title", "proposal_abstract", "summary_objects",
                       "summary_use_cases"):
            for text in archive.table[column]:
                vocabulary |= content_words(str(text))
    for kind, queries in HELD_OUT_PARAPHRASES.items():
        assert 3 <= len(queries) <= 5, kind
        for query in queries:
            assert content_words(query), query
            assert not content_words(query) & vocabulary, (kind, query)


def test_contact_sheet_shows_each_kind(covering, tmp_path):
    out = write_contact_sheet(covering.root, tmp_path / "sheet.png", per_kind=2)
    with Image.open(out) as sheet:
        assert sheet.mode == "L"
        assert sheet.width * sheet.height >= len(KINDS) * 64 * 64
