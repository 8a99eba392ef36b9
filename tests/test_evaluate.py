"""`vo-clip eval`: PAPERCLIP's evaluation as a JSON report and figures for a paper.

The report's mechanics (the retrieval curve, the histograms, top-k retrieval, the split)
are checked on a stand-in model whose previews echo their captions, which needs no
torch and runs in milliseconds; the command itself runs once on a small demo archive
with the shipped demo model against its untrained baseline. The figures are copied to
``$VO_CLIP_ARTIFACTS/eval`` (default ``test-artifacts/eval/`` at the repository root) for
a person to look at.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_one_line_error, run_cli
from PIL import Image

from vo_clip.archive.demo import build_demo_archive
from vo_clip.archive.demo.evaluation import PAPERCLIP_QUERIES
from vo_clip.errors import QueryError
from vo_clip.ml.evaluate import (
    CURVE_K_PERCENTS,
    K_PERCENTS,
    evaluate,
    read_query_file,
    read_truth,
    retrieval_accuracy,
)
from vo_clip.ml.pairs import archive_pairs
from vo_clip.ml.plots import model_labels

REPO_ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("retrieval_accuracy.png", "similarity_distributions.png", "top_k_retrieval.png")
EMBED_DIM = 48


def artifacts_dir() -> Path:
    """Where the figures are kept after the run (CI uploads ``test-artifacts/``)."""
    root = Path(os.environ.get("VO_CLIP_ARTIFACTS") or REPO_ROOT / "test-artifacts")
    path = root / "eval"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def small_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("small-demo") / "archive"
    return build_demo_archive(root, n_observations=80, n_proposals=20, preview_size=96,
                              seed=5, progress=False)


@pytest.fixture(scope="module")
def demo_without_truth(tmp_path_factory):
    """A smaller demo archive as a real one would be: no truth.csv."""
    from vo_clip.archive import Archive

    root = tmp_path_factory.mktemp("no-truth") / "archive"
    build_demo_archive(root, n_observations=30, n_proposals=6, preview_size=64, seed=7,
                       progress=False)
    (root / "truth.csv").unlink()
    return Archive.open(root)


def _text_vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(EMBED_DIM)


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


class CaptionEcho:
    """A stand-in for a trained model: a preview's vector is its caption's, plus noise.

    Captions are random directions, so unrelated texts score near zero and a preview
    scores high only against its own proposal's caption, as after contrastive training.
    """

    def __init__(self, archive, *, noise: float = 0.5, held_out=None):
        pairs = archive_pairs(archive)
        self._caption_of = {str(path): caption for path, caption in zip(pairs.paths,
                                                                         pairs.captions)}
        self._noise = noise
        self.card = SimpleNamespace(name="caption echo", training_data=(
            {"validation_proposals": held_out} if held_out is not None else {}))
        self.fingerprint = "caption-echo"

    def encode_text(self, texts) -> np.ndarray:
        return _unit(np.stack([_text_vector(text) for text in texts]))

    def encode_images(self, paths, *, progress=None, total=None) -> np.ndarray:
        rng = np.random.default_rng(0)
        vectors = [_unit(_text_vector(self._caption_of[str(path)]))
                   + self._noise * rng.standard_normal(EMBED_DIM) / np.sqrt(EMBED_DIM)
                   for path in paths]
        return _unit(np.stack(vectors))


@pytest.fixture(scope="module")
def echo_report(small_demo):
    return evaluate(CaptionEcho(small_demo), small_demo, split="all",
                    retrieval_queries=PAPERCLIP_QUERIES, top_k=4)


# -- the report ---------------------------------------------------------------------
def test_retrieval_curve_is_monotone_and_ends_at_one(echo_report):
    curve = echo_report["retrieval_curve"]
    assert curve["k_percent"] == list(CURVE_K_PERCENTS) == list(range(1, 101))
    for name in ("matched", "shuffled", "chance"):
        values = np.asarray(curve[name])
        assert len(values) == 100 and np.all(np.diff(values) >= 0), name
        assert values[-1] == 1.0, name
    # The headline numbers are points of the same curve.
    for k in K_PERCENTS:
        assert curve["matched"][k - 1] == echo_report["retrieval_accuracy"][str(k)]
        assert curve["shuffled"][k - 1] == echo_report["shuffled_caption_accuracy"][str(k)]
        assert curve["chance"][k - 1] == echo_report["chance_accuracy"][str(k)]


def test_a_model_that_learned_beats_its_shuffled_baseline_which_stays_at_chance(echo_report):
    accuracy, shuffled = echo_report["retrieval_accuracy"], echo_report[
        "shuffled_caption_accuracy"]
    assert accuracy["10"] > 0.5
    # 80 pairs: chance is 8/80; the binomial spread is ±0.034, a shared proposal adds a bit.
    assert abs(shuffled["10"] - echo_report["chance_accuracy"]["10"]) < 0.1
    similarity = echo_report["similarity"]
    assert similarity["matched"]["mean"] > similarity["shuffled"]["mean"] + 0.3


def test_histograms_hold_every_pair_on_fine_bins(echo_report):
    similarity = echo_report["similarity"]
    assert len(similarity["bins"]) == len(similarity["matched"]["histogram"]) + 1 == 101
    assert np.allclose(np.diff(similarity["bins"]), 0.02)
    for which in ("matched", "shuffled"):
        assert sum(similarity[which]["histogram"]) == echo_report["pairs"] == 80
    assert "values" not in similarity["matched"]  # the JSON keeps histograms, not raw values


def test_top_k_lists_the_best_previews_first_with_their_kind(echo_report, small_demo):
    top = echo_report["top_k_retrieval"]
    assert top["k"] == 4
    assert [entry["query"] for entry in top["queries"]] == list(PAPERCLIP_QUERIES)
    truth = read_truth(small_demo)
    for entry in top["queries"]:
        scores = [hit["score"] for hit in entry["hits"]]
        assert len(scores) == 4 and scores == sorted(scores, reverse=True)
        assert set(entry["kinds"]) == PAPERCLIP_QUERIES[entry["query"]]
        assert len({hit["obs_id"] for hit in entry["hits"]}) == 4
        for hit in entry["hits"]:
            assert hit["kind"] == truth[hit["obs_id"]]
            assert hit["answers"] == (hit["kind"] in entry["kinds"])


def test_top_k_scores_are_the_model_similarities(small_demo):
    model = CaptionEcho(small_demo)
    report = evaluate(model, small_demo, split="all", retrieval_queries=["comets"], top_k=80)
    pairs = archive_pairs(small_demo)
    scores = model.encode_images(pairs.paths) @ model.encode_text(["comets"])[0]
    ranked = report["top_k_retrieval"]["queries"][0]["hits"]
    assert [hit["obs_id"] for hit in ranked[:5]] == [pairs.obs_ids[i]
                                                     for i in np.argsort(-scores)[:5]]
    assert [hit["score"] for hit in ranked] == pytest.approx(np.sort(scores)[::-1], abs=1e-4)


def test_without_truth_top_k_is_just_the_ranked_previews(demo_without_truth):
    report = evaluate(CaptionEcho(demo_without_truth), demo_without_truth, split="all",
                      retrieval_queries=["spiral galaxy with a bar", "comets"], top_k=3)
    entries = report["top_k_retrieval"]["queries"]
    assert [entry["query"] for entry in entries] == ["spiral galaxy with a bar", "comets"]
    for entry in entries:
        assert set(entry) == {"query", "hits"}
        assert all(set(hit) == {"obs_id", "score"} for hit in entry["hits"])
    assert "mean_queries_precision_at_10" not in report


def test_validation_split_comes_from_the_card_or_the_given_proposals(small_demo):
    proposals = sorted(set(archive_pairs(small_demo).proposals.tolist()))
    card_split = evaluate(CaptionEcho(small_demo, held_out=proposals[:3]), small_demo)
    assert card_split["proposals"] == 3
    assert card_split["split_basis"] == "the model card's held-out proposals"
    given = evaluate(CaptionEcho(small_demo), small_demo, validation_proposals=proposals[:5])
    assert given["proposals"] == 5 and given["split_basis"] == "the given held-out proposals"
    # A card from another archive names proposals this one lacks: a seeded split instead.
    elsewhere = evaluate(CaptionEcho(small_demo, held_out=["no such proposal"]), small_demo)
    assert elsewhere["proposals"] == 4 and "random 20%" in elsewhere["split_basis"]


def test_retrieval_accuracy_keeps_its_signature_for_training():
    features = np.eye(10)
    assert retrieval_accuracy(features, features, [10]) == {10: 1.0}


def test_query_files_skip_blanks_comments_and_repeats(tmp_path):
    path = tmp_path / "queries.txt"
    path.write_text("# PAPERCLIP's\nglobular cluster\n\n  comets  \nglobular cluster\n")
    assert read_query_file(path) == ["globular cluster", "comets"]
    with pytest.raises(QueryError, match="does not exist"):
        read_query_file(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("# nothing\n\n")
    with pytest.raises(QueryError, match="holds no query"):
        read_query_file(tmp_path / "empty.txt")


def test_model_names_are_short_and_distinct():
    labels = model_labels(["demo", "demo:untrained", "/runs/a/vit-b16-hst.safetensors",
                           "hf-hub:someone/paperclip-vit", "ViT-B-16:openai"])
    assert list(labels.values()) == ["demo", "demo:untrained", "vit-b16-hst",
                                     "paperclip-vit", "ViT-B-16:openai"]
    clash = model_labels(["/a/model.safetensors", "/b/model.safetensors"])
    assert clash == {"/a/model.safetensors": "/a/model.safetensors",
                     "/b/model.safetensors": "/b/model.safetensors"}


def test_serving_does_not_load_matplotlib():
    code = "import sys, vo_clip.cli, service; print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO_ROOT, timeout=120, check=True)
    assert result.stdout.strip() == "False"


# -- the command ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def evaluated(small_demo, tmp_path_factory):
    """`vo-clip eval` of the demo model against its untrained baseline, with figures."""
    home = tmp_path_factory.mktemp("eval-home")
    out, report = home / "eval", home / "only-json" / "report.json"
    result = run_cli("eval", "--archive", str(small_demo.root), "--model", "demo",
                     "--model", "demo:untrained", "--split", "all", "--out", str(out),
                     "--report", str(report), home=home)
    for name in FIGURES:
        if (out / name).is_file():
            shutil.copyfile(out / name, artifacts_dir() / name)
    return result, out, report


def test_eval_writes_the_report_and_the_figures(evaluated):
    result, out, report = evaluated
    written = [line.removeprefix("wrote ") for line in result.stdout.splitlines()
               if line.startswith("wrote ")]
    assert written == [str(out / "report.json"), *(str(out / name) for name in FIGURES)]
    reports = json.loads((out / "report.json").read_text())
    assert reports == json.loads(report.read_text())  # --report: the same JSON, no figures
    assert not list(report.parent.glob("*.png"))
    assert list(reports) == ["demo", "demo:untrained"]
    assert "retrieval top 10%" in result.stdout and "top-k hits answering" in result.stdout


def test_the_trained_model_beats_its_baseline_which_beats_no_one(evaluated):
    reports = json.loads((evaluated[1] / "report.json").read_text())
    trained, untrained = reports["demo"], reports["demo:untrained"]
    assert trained["pairs"] == untrained["pairs"] == 80
    assert trained["retrieval_accuracy"]["10"] > untrained["retrieval_accuracy"]["10"] + 0.1
    assert abs(trained["shuffled_caption_accuracy"]["10"] - 0.1) < 0.1
    assert trained["similarity"]["matched"]["mean"] > trained["similarity"]["shuffled"]["mean"]
    for report in reports.values():
        matched = report["retrieval_curve"]["matched"]
        assert np.all(np.diff(matched) >= 0) and matched[-1] == 1.0


def test_top_k_retrieval_defaults_to_paperclips_queries(evaluated):
    reports = json.loads((evaluated[1] / "report.json").read_text())
    for report in reports.values():
        top = report["top_k_retrieval"]
        assert top["k"] == 5
        assert [entry["query"] for entry in top["queries"]] == list(PAPERCLIP_QUERIES)
        for entry in top["queries"]:
            scores = [hit["score"] for hit in entry["hits"]]
            assert len(scores) == 5 and scores == sorted(scores, reverse=True)
            assert all("answers" in hit for hit in entry["hits"])
    answered = [hit["answers"] for model in ("demo", "demo:untrained")
                for entry in reports[model]["top_k_retrieval"]["queries"]
                for hit in entry["hits"]]
    assert sum(answered[:50]) > sum(answered[50:])  # the trained model finds more


@pytest.mark.parametrize("name,inches", [("retrieval_accuracy.png", 3.5),
                                         ("similarity_distributions.png", 7.0),
                                         ("top_k_retrieval.png", 7.0)])
def test_figures_are_publication_pngs(evaluated, name, inches):
    with Image.open(evaluated[1] / name) as image:
        image.verify()
    with Image.open(evaluated[1] / name) as image:
        assert image.format == "PNG"
        dpi = image.info["dpi"][0]
        width, height = image.size
    assert dpi >= 200
    assert width / dpi == pytest.approx(inches, abs=0.4)  # a journal column or page width
    assert 1.5 <= height / dpi <= 9.5


def test_eval_takes_a_query_file_and_top_k(demo_without_truth, tmp_path):
    queries = tmp_path / "queries.txt"
    queries.write_text("a ring around an exploded star\ncomets\n")
    report = tmp_path / "report.json"
    result = run_cli("eval", "--archive", str(demo_without_truth.root), "--model",
                     "demo:untrained", "--split", "all", "--queries", str(queries),
                     "--top-k", "3", "--report", str(report), home=tmp_path)
    assert "wrote" not in result.stdout  # --report alone draws nothing
    top = json.loads(report.read_text())["demo:untrained"]["top_k_retrieval"]
    assert [entry["query"] for entry in top["queries"]] == ["a ring around an exploded star",
                                                            "comets"]
    assert all(len(entry["hits"]) == 3 for entry in top["queries"])


def test_a_missing_query_file_fails_in_one_line(tmp_path):
    result = run_cli("eval", "--queries", str(tmp_path / "nope.txt"), home=tmp_path,
                     check=False)
    assert_one_line_error(result, "queries file", "does not exist")
