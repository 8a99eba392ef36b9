"""`vo-clip index` and `vo-clip query` through the real command line, on a tiny archive."""

from __future__ import annotations

import csv
import io
import json
import shutil

import numpy as np
import pytest
from astropy.io.votable import parse
from conftest import assert_one_line_error, run_cli, write_tiny_archive


@pytest.fixture(scope="module")
def built(tiny_archive, tiny_model_path, tmp_path_factory):
    """An index of the tiny archive built by ``vo-clip index``."""
    home = tmp_path_factory.mktemp("home")
    out = home / "index"
    result = run_cli("index", "--archive", str(tiny_archive.root), "--model",
                     str(tiny_model_path), "--out", str(out), home=home)
    assert f"indexed {len(tiny_archive)} observations" in result.stdout
    return home, out


def _query_csv(home, index, *args):
    result = run_cli("query", *args, "--index", str(index), "--format", "csv", home=home)
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_text_query_ranks_like_brute_force(built, tiny_archive, tiny_model_path):
    from vo_clip.ml.model import load_model

    home, index = built
    text = "a bright round galaxy in the middle of the field"
    rows = _query_csv(home, index, text, "--top", "5")
    model = load_model(str(tiny_model_path))
    images = model.encode_images([tiny_archive.preview_path(i) for i in range(len(tiny_archive))])
    scores = images @ model.encode_text([text])[0]
    expected = np.argsort(-scores)[:5]
    assert [r["obs_id"] for r in rows] == [tiny_archive.obs_ids[i] for i in expected]
    np.testing.assert_allclose([float(r["similarity"]) for r in rows], scores[expected],
                               atol=1e-5)
    assert "match" not in rows[0]  # the tiny archive has no truth.csv to calibrate on


def test_image_queried_by_itself_comes_first(built, tiny_archive):
    home, index = built
    rows = _query_csv(home, index, "--image", str(tiny_archive.preview_path(7)), "--top", "3")
    assert rows[0]["obs_id"] == "obs007"
    assert float(rows[0]["similarity"]) == pytest.approx(1.0, abs=1e-5)
    assert float(rows[1]["similarity"]) < float(rows[0]["similarity"])


def test_like_query_finds_the_observation_itself_first(built):
    home, index = built
    rows = _query_csv(home, index, "--like", "obs012", "--top", "4")
    assert len(rows) == 4
    assert rows[0]["obs_id"] == "obs012"
    assert float(rows[0]["similarity"]) == pytest.approx(1.0, abs=1e-5)
    assert {"obs_id", "similarity", "instrument_name"} <= set(rows[0])


def test_filters_restrict_the_candidates(built, tiny_archive):
    home, index = built
    rows = _query_csv(home, index, "--like", "obs012", "--top", "50", "--instrument", "wfc3")
    assert rows and all(r["instrument_name"].startswith("WFC3") for r in rows)
    expected = sum(str(v).startswith("WFC3") for v in tiny_archive.table["instrument_name"])
    assert len(rows) == expected
    rows = _query_csv(home, index, "--like", "obs012", "--top", "50",
                      "--cone", "20", "-25", "3", "--where", "proposal_cycle >= 15")
    assert rows
    for r in rows:
        assert int(r["proposal_cycle"] if "proposal_cycle" in r else 99) >= 15
        assert abs(float(r["s_ra"]) - 20) < 3.5
    ids = {r["obs_id"] for r in rows}
    table = tiny_archive.table
    inside = {table["obs_id"][i] for i in range(len(table)) if table["proposal_cycle"][i] >= 15
              and _angdist(table["s_ra"][i], table["s_dec"][i], 20, -25) <= 3}
    assert ids == inside


def _angdist(ra1, dec1, ra2, dec2):
    r = np.radians
    c = (np.sin(r(dec1)) * np.sin(r(dec2))
         + np.cos(r(dec1)) * np.cos(r(dec2)) * np.cos(r(ra1 - ra2)))
    return np.degrees(np.arccos(np.clip(c, -1, 1)))


def test_table_and_votable_formats(built):
    home, index = built
    table = run_cli("query", "--like", "obs003", "--top", "3", "--index", str(index), home=home)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:2] == ["rank", "obs_id"] and "similarity" in lines[0]
    first = next(i for i, line in enumerate(lines) if line.startswith("----")) + 1
    assert lines[first].split()[:2] == ["1", "obs003"]
    votable = run_cli("query", "--like", "obs003", "--top", "3", "--columns", "all",
                      "--index", str(index), "--format", "votable", home=home)
    document = parse(io.BytesIO(votable.stdout.encode()), verify="exception")
    resource = document.resources[0]
    assert resource.type == "results"
    assert [i.value for i in resource.infos if i.name == "QUERY_STATUS"] == ["OK"]
    result = document.get_first_table().to_table()
    assert result["obs_id"][0] == "obs003" and len(result) == 3
    assert "s_region" in result.colnames and "similarity" in result.colnames


def test_info_json_names_archive_index_and_model(built, tiny_model_path):
    home, index = built
    result = run_cli("info", "--json", home=home)
    report = json.loads(result.stdout)
    assert report["model"]["spec"] == "demo"  # the default when nothing else is named
    assert "no index at" in report["index"]["status"]
    env_index = run_cli("--config", str(_config(home, index)), "info", "--json", home=home)
    report = json.loads(env_index.stdout)
    assert report["index"]["path"] == str(index)
    assert report["index"]["count"] == 36
    assert report["model"]["path"] == str(tiny_model_path.resolve())
    assert report["model"]["name"] == "tiny test model"
    assert report["model"]["embed_dim"] == 32
    assert report["model"]["fingerprint"] == report["index"]["model"]["fingerprint"]


def _config(home, index):
    path = home / "vo_clip.toml"
    path.write_text(f'index = "{index}"\n')
    return path


def test_reindex_reuses_unchanged_previews(tiny_model_path, tmp_path):
    archive = write_tiny_archive(tmp_path / "archive", n=12)
    out = tmp_path / "index"
    args = ("index", "--archive", str(archive.root), "--model", str(tiny_model_path),
            "--out", str(out))
    assert "(12 embedded, 0 reused)" in run_cli(*args, home=tmp_path).stdout
    write_tiny_archive(tmp_path / "archive", n=15)  # same seed: 12 old previews + 3 new
    assert "(3 embedded, 12 reused)" in run_cli(*args, home=tmp_path).stdout


def test_index_refuses_to_mix_models(built, tiny_archive, other_model_path, tmp_path):
    home, index = built
    copy = tmp_path / "index"
    shutil.copytree(index, copy)
    args = ("index", "--archive", str(tiny_archive.root), "--model", str(other_model_path),
            "--out", str(copy))
    assert_one_line_error(run_cli(*args, home=home, check=False), "built with model",
                          "tiny test model")
    rebuilt = run_cli(*args, "--rebuild", home=home)
    assert "(36 embedded, 0 reused)" in rebuilt.stdout


@pytest.mark.parametrize("args, needles", [
    (["--like", "no_such_obs"], ["no_such_obs"]),
    (["   "], ["empty"]),
    (["--image", "/nonexistent/picture.png"], ["cannot read image"]),
    (["--image", "__NOT_AN_IMAGE__"], ["cannot read image"]),
    (["galaxy", "--like", "obs001"], ["exactly one"]),
    ([], ["exactly one"]),
    (["galaxy", "--where", "no_such_column > 3"], ["invalid filter"]),
    (["galaxy", "--columns", "obs_id,bogus"], ["unknown column"]),
])
def test_bad_queries_fail_in_one_line(built, args, needles, tmp_path):
    home, index = built
    args = [str(tmp_path / "junk.png") if a == "__NOT_AN_IMAGE__" else a for a in args]
    (tmp_path / "junk.png").write_text("this is not a PNG")
    result = run_cli("query", *args, "--index", str(index), home=home, check=False)
    assert_one_line_error(result, *needles)


def test_missing_index_other_model_and_bad_checkpoint(built, other_model_path, tmp_path):
    home, index = built
    missing = run_cli("query", "galaxy", "--index", str(tmp_path / "none"), home=home,
                      check=False)
    assert_one_line_error(missing, "no index at")
    other = run_cli("query", "galaxy", "--index", str(index), "--model", str(other_model_path),
                    home=home, check=False)
    assert_one_line_error(other, "built with model", "another model")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    bad = run_cli("query", "galaxy", "--index", str(index), "--model", str(junk), home=home,
                  check=False)
    assert_one_line_error(bad, "not a vo_clip checkpoint")
