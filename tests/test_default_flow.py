"""The embedded default, as a new user meets it: no set-up, no network, one command.

The first `vo-clip query` in an empty home generates the full demo archive (3,000
observations), indexes it with the shipped demo model and answers; the same archive
then lets the test re-measure the metrics the model card claims.
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
from conftest import run_cli

from vo_clip.archive import Archive
from vo_clip.archive.demo.captions import caption_vocabulary, content_words
from vo_clip.archive.demo.evaluation import PAPERCLIP_QUERIES, PARAPHRASE_QUERIES
from vo_clip.ml.checkpoint import read_card
from vo_clip.ml.demo_model import DEMO_CHECKPOINT
from vo_clip.ml.evaluate import evaluate, read_truth

#: Slow: the first test here may build the demo archive (the session fixture).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

#: Plain-language queries written for this test, none of whose content words occur in
#: any caption of the demo archive (checked below), with the kind that should answer.
#: Precision@10 over all 3,000 observations measured with the shipped model
#: (all-mpnet-base-v2, 160 px): 1.0 for "Saturn-like world", 0.6 for "cigar seen
#: sideways" and 0.0 for the rest (mean 0.16; the first, MiniLM demo model: 0.21; a
#: random ranking scores ~0.05). Metaphors far from the captions' meaning
#: stay beyond what the image tower learns from 320 proposals; the README reports this.
OUR_PARAPHRASES = {
    "Saturn-like world": "giant_planet",
    "cosmic magnifying glass": "strong_lensing",
    "Horsehead lookalike": "interstellar_medium",
    "cigar seen sideways": "edge_on_galaxy",
    "pinwheel": "spiral_galaxy",
    "snowball sprouting a plume": "comet",
    "Omega Centauri lookalike": "globular_cluster",
    "Antennae lookalike": "merging_galaxies",
    "blank sky test": "calibration_frame",
    "Cat's Eye lookalike": "planetary_nebula",
}


@pytest.fixture(scope="module")
def first_run(demo_first_run):
    return demo_first_run


@pytest.fixture(scope="module")
def demo_archive(first_run):
    return Archive.open(first_run[0] / "demo-archive")


def test_first_query_builds_the_default_and_answers(first_run, demo_archive):
    home, result = first_run
    assert "first use: generating the demo archive" in result.stderr
    assert "first use: indexing 3000 previews" in result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 10
    truth = read_truth(demo_archive)
    kinds = [truth[r["obs_id"]] for r in rows]
    assert kinds.count("planetary_nebula") >= 8, kinds
    # the demo index is calibrated: a match probability beside the cosine, ranked alike
    match = [float(r["match"]) for r in rows]
    assert match == sorted(match, reverse=True) and 0 <= match[-1] <= match[0] <= 1
    again = run_cli("query", "comets", "--top", "5", home=home)
    assert "first use" not in again.stderr


def test_info_names_what_is_in_use(first_run):
    home, _ = first_run
    report = json.loads(run_cli("info", "--json", home=home).stdout)
    assert report["archive"]["path"] == str(home / "demo-archive")
    assert report["archive"]["observations"] == 3000
    assert report["index"]["path"] == str(home / "indexes" / "demo-archive")
    assert report["model"]["spec"] == "demo"
    assert report["model"]["path"] == str(DEMO_CHECKPOINT)
    assert report["model"]["name"] == "vo_clip demo"
    assert report["index"]["model"]["fingerprint"] == report["model"]["fingerprint"]
    assert report["model"]["metrics"]["trained"]["top10pct_retrieval"] >= 0.6


def test_card_metrics_reproduce_on_the_generated_archive(demo_archive):
    from vo_clip.ml.model import load_model

    claimed = read_card(DEMO_CHECKPOINT).metrics["trained"]
    measured = evaluate(load_model("demo"), demo_archive, queries=PAPERCLIP_QUERIES,
                        paraphrases=PARAPHRASE_QUERIES)
    assert measured["pairs"] == claimed["pairs"]
    for k, value in claimed["retrieval_accuracy"].items():
        assert measured["retrieval_accuracy"][k] == pytest.approx(value, abs=0.01), k
    assert measured["mean_queries_precision_at_10"] == pytest.approx(
        claimed["mean_queries_precision_at_10"], abs=0.03)


def test_our_paraphrases_use_no_caption_words(demo_archive):
    vocabulary = caption_vocabulary()
    for query in OUR_PARAPHRASES:
        assert not (content_words(query) & vocabulary), query


def _full_archive_precision(first_run, demo_archive, queries: dict[str, set[str]]):
    """Precision of the top 10 of all 3,000 observations, per query, through the engine
    a new user's `vo-clip query` opens."""
    from vo_clip.config import Config
    from vo_clip.search.engine import Query
    from vo_clip.workspace import open_engine

    home, _ = first_run
    engine = open_engine(Config.load(env={"VO_CLIP_HOME": str(home)}))
    truth = read_truth(demo_archive)
    precision = {}
    for query, kinds in queries.items():
        hits = engine.search(Query(text=query), top=10)
        found = engine.index.catalog.fetch(hits.rows, ["obs_id"])["obs_id"]
        precision[query] = float(np.mean([truth[obs_id] in kinds for obs_id in found]))
    return precision


def test_paraphrases_beyond_the_captions_find_their_kind(first_run, demo_archive):
    """Relevance of the top 10 (all 3,000 observations) for queries no caption contains."""
    precision = _full_archive_precision(
        first_run, demo_archive, {query: {kind} for query, kind in OUR_PARAPHRASES.items()})
    print("paraphrase precision@10:", precision)
    assert precision["Saturn-like world"] >= 0.8, precision
    assert np.mean(list(precision.values())) >= 0.1, precision


def test_each_paperclip_query_finds_its_kind_on_the_full_archive(first_run, demo_archive):
    """Issue 16's bar as a new user meets it: each of PAPERCLIP's ten queries has at
    least 7 right previews in its top 10 of all 3,000 ("globular cluster" had none with
    the first demo model). Measured: 0.7 (dwarf galaxy) to 1.0, mean 0.94."""
    precision = _full_archive_precision(first_run, demo_archive, PAPERCLIP_QUERIES)
    print("PAPERCLIP precision@10, full archive:", precision)
    assert min(precision.values()) >= 0.7, precision
    assert precision["globular cluster"] >= 0.7, precision


def test_default_index_follows_a_regenerated_demo_archive(tmp_path):
    small = ("--observations", "40", "--proposals", "8", "--preview-size", "96")
    run_cli("demo", *small, home=tmp_path)
    first = run_cli("query", "comets", "--top", "100", "--format", "csv", home=tmp_path)
    assert "first use: indexing 40 previews" in first.stderr
    assert len(list(csv.DictReader(io.StringIO(first.stdout)))) == 40
    run_cli("demo", "--observations", "50", "--proposals", "8", "--preview-size", "96",
            home=tmp_path)
    second = run_cli("query", "comets", "--top", "100", "--format", "csv", home=tmp_path)
    assert "the demo archive or model changed: indexing 50 previews" in second.stderr
    ids = {r["obs_id"] for r in csv.DictReader(io.StringIO(second.stdout))}
    assert ids == set(Archive.open(tmp_path / "demo-archive").obs_ids)
    # a default index from before match probabilities is brought up to date, vectors kept
    (tmp_path / "indexes" / "demo-archive" / "score_moments.npz").unlink()
    (tmp_path / "indexes" / "demo-archive" / "match_calibration.json").unlink()
    third = run_cli("query", "comets", "--top", "3", "--format", "csv", home=tmp_path)
    assert "the demo index has no match calibration yet: indexing 50 previews" in third.stderr
    assert "match" in next(csv.DictReader(io.StringIO(third.stdout)))


def test_python_example_runs(first_run):
    import os
    import subprocess
    import sys
    from pathlib import Path

    home, _ = first_run
    example = Path(__file__).resolve().parent.parent / "examples" / "search_from_python.py"
    result = subprocess.run([sys.executable, str(example), "globular cluster", "--top", "3"],
                            capture_output=True, text=True, timeout=300, check=True,
                            env={**os.environ, "VO_CLIP_HOME": str(home)})
    lines = result.stdout.splitlines()
    assert len([line for line in lines if line.startswith("0.")]) == 3
    assert lines[-1].startswith("more like hst_")
