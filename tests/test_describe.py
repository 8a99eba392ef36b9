"""Description retrieval (PAPERCLIP's image → text direction): ranking, errors, the list.

The unit tests use the tiny random model, so only the arithmetic is checked there: the
order, the scores, the limits. Whether the curated list describes previews well is the
slow test's question, asked of the demo model on the proposals it never saw.
"""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from vo_clip.archive.demo.kinds import KINDS
from vo_clip.errors import ArchiveError, QueryError, UnknownObservationError
from vo_clip.ml.model import load_model
from vo_clip.search.describe import (
    Describer,
    Match,
    describe_accuracy,
    describe_accuracy_by_kind,
    held_out_obs_ids,
)
from vo_clip.search.descriptions import (
    DEMO_KIND_LABELS,
    DESCRIPTIONS,
    ENTRY_KINDS,
    Description,
)
from vo_clip.search.engine import SearchEngine
from vo_clip.search.index import EmbeddingIndex


@pytest.fixture(scope="module")
def engine(tiny_index, tiny_model_path):
    return SearchEngine(EmbeddingIndex.open(tiny_index), load_model(str(tiny_model_path)))


@pytest.fixture(scope="module")
def describer(engine):
    return Describer(engine)


def _obs_ids(engine) -> list[str]:
    return [str(i) for i in engine.index.catalog.fetch(np.arange(len(engine.index)),
                                                      ["obs_id"])["obs_id"]]


# --- the curated list -------------------------------------------------------------------


def test_the_list_is_long_unique_and_has_both_kinds():
    assert len(DESCRIPTIONS) >= 60
    labels = [d.label for d in DESCRIPTIONS]
    assert len(set(labels)) == len(labels)
    assert len({d.text for d in DESCRIPTIONS}) == len(DESCRIPTIONS)
    assert {d.kind for d in DESCRIPTIONS} == set(ENTRY_KINDS)
    assert all(d.text.strip() and d.label.strip() for d in DESCRIPTIONS)


def test_every_demo_kind_has_existing_object_labels():
    by_label = {d.label: d for d in DESCRIPTIONS}
    assert set(DEMO_KIND_LABELS) == set(KINDS)
    for kind, labels in DEMO_KIND_LABELS.items():
        assert labels, kind
        for label in labels:
            assert label in by_label, (kind, label)
            assert by_label[label].kind == "object", (kind, label)


# --- ranking --------------------------------------------------------------------------


def test_matches_are_ordered_and_scores_are_the_dot_products(engine, describer):
    texts = engine.model.encode_text([d.text for d in DESCRIPTIONS])
    for row in (0, 5, len(engine.index) - 1):
        vector = np.asarray(engine.index.embeddings[row])
        expected = texts @ vector
        matches = describer.describe_row(row, top=len(DESCRIPTIONS))
        assert len(matches) == len(DESCRIPTIONS)
        scores = [m.similarity for m in matches]
        assert scores == sorted(scores, reverse=True)
        assert [m.label for m in matches] == [
            DESCRIPTIONS[i].label for i in np.argsort(-expected, kind="stable")]
        by_label = {d.label: i for i, d in enumerate(DESCRIPTIONS)}
        np.testing.assert_allclose(scores, [expected[by_label[m.label]] for m in matches],
                                   rtol=0, atol=1e-5)


def test_matches_carry_the_entry(describer):
    best = describer.describe_row(0, top=1)[0]
    assert isinstance(best, Match) and isinstance(best.similarity, float)
    entry = next(d for d in DESCRIPTIONS if d.label == best.label)
    assert (best.kind, best.text) == (entry.kind, entry.text)


def test_describe_by_obs_id_is_describe_row(engine, describer):
    obs_id = _obs_ids(engine)[3]
    row = engine.index.catalog.row_of(obs_id)
    assert describer.describe(obs_id, top=7) == describer.describe_row(row, top=7)


def test_describe_vector_rescales_to_unit_length(engine, describer):
    vector = np.asarray(engine.index.embeddings[2])
    unit = describer.describe_vector(vector, top=4)
    scaled = describer.describe_vector(3.0 * vector, top=4)
    assert [m.label for m in scaled] == [m.label for m in unit]
    np.testing.assert_allclose([m.similarity for m in scaled], [m.similarity for m in unit],
                               atol=1e-6)


def test_top_is_clamped_to_the_list(describer):
    assert len(describer.describe_row(0, top=1)) == 1
    assert len(describer.describe_row(0)) == 5
    assert len(describer.describe_row(0, top=10_000)) == len(DESCRIPTIONS)


@pytest.mark.parametrize("top", [0, -3, 2.5, True, "3", None])
def test_invalid_top_is_a_query_error(describer, top):
    with pytest.raises(QueryError, match="top"):
        describer.describe_row(0, top=top)


def test_unknown_observation(describer):
    with pytest.raises(UnknownObservationError, match="no-such-obs"):
        describer.describe("no-such-obs")


@pytest.mark.parametrize("row", [-1, 10_000, 1.0])
def test_row_outside_the_index(describer, row):
    with pytest.raises(QueryError, match="not in the index"):
        describer.describe_row(row)


@pytest.mark.parametrize("vector", [np.zeros(32), np.ones(7), np.full(32, np.nan)])
def test_unusable_vectors(describer, vector):
    with pytest.raises(QueryError):
        describer.describe_vector(vector)


def test_descriptions_are_embedded_once_across_threads(engine, monkeypatch):
    calls = []
    encode = engine.model.encode_text

    def counting(texts, **kwargs):
        calls.append(len(texts))
        return encode(texts, **kwargs)

    monkeypatch.setattr(engine.model, "encode_text", counting)
    describer = Describer(engine)
    barrier = threading.Barrier(8)

    def work():
        barrier.wait()
        describer.describe_row(1)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [len(DESCRIPTIONS)]
    assert describer.matrix.dtype == np.float32
    assert describer.matrix.shape == (len(DESCRIPTIONS), engine.model.embed_dim)
    assert not describer.matrix.flags.writeable


def test_a_custom_list_and_bad_lists(engine):
    custom = (Description("a", "object", "a spiral galaxy"),
              Description("b", "use case", "photometric calibration"))
    assert len(Describer(engine, custom).describe_row(0, top=5)) == 2
    with pytest.raises(ValueError, match="at least one"):
        Describer(engine, ())
    with pytest.raises(ValueError, match="unique"):
        Describer(engine, custom + (Description("a", "object", "a comet"),))


def test_without_a_model_it_says_so(engine):
    with pytest.raises(QueryError, match="needs the model"):
        Describer(SearchEngine(engine.index)).describe_row(0)


# --- the evaluation helper ---------------------------------------------------------------


def _archive_with_truth(tmp_path: Path, kinds: dict[str, str]):
    with open(tmp_path / "truth.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["obs_id", "kind"])
        writer.writerows(kinds.items())
    return SimpleNamespace(root=tmp_path, name="stub")


def test_describe_accuracy_counts_a_listed_label_in_the_top(engine, describer, tmp_path):
    obs_ids = _obs_ids(engine)[:4]
    best = [describer.describe(o, top=2) for o in obs_ids]
    # Kinds whose accepted label is the 1st match, the 2nd match, or absent (twice).
    kind_labels = {"first": (best[0][0].label,), "second": (best[1][1].label,),
                   "never": ("no such label",)}
    archive = _archive_with_truth(tmp_path, dict(zip(obs_ids, ["first", "second",
                                                               "never", "never"])))
    assert describe_accuracy(describer, archive, obs_ids[:2], kind_labels, top=2) == 1.0
    assert describe_accuracy(describer, archive, obs_ids, kind_labels, top=2) == 0.5
    by_kind = describe_accuracy_by_kind(describer, archive, obs_ids, kind_labels, top=2)
    assert by_kind == {"first": 1.0, "never": 0.0, "second": 1.0}
    assert describe_accuracy(describer, archive, obs_ids[:1], kind_labels, top=1) == 1.0


def test_describe_accuracy_needs_truth(engine, describer, tiny_archive, tmp_path):
    obs_ids = _obs_ids(engine)[:2]
    with pytest.raises(ArchiveError, match="truth.csv"):
        describe_accuracy(describer, tiny_archive, obs_ids)
    archive = _archive_with_truth(tmp_path, {obs_ids[0]: "comet"})
    with pytest.raises(ArchiveError, match="lacks"):
        describe_accuracy(describer, archive, obs_ids)
    with pytest.raises(ArchiveError, match="no observations"):
        describe_accuracy(describer, archive, [])


# --- the demo model on held-out proposals --------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(1500)  # may build the demo archive (the session fixture)
def test_held_out_demo_observations_are_described_correctly(demo_first_run):
    from vo_clip.archive import Archive
    from vo_clip.config import Config
    from vo_clip.ml.pairs import archive_pairs
    from vo_clip.workspace import open_engine

    config = Config(home=demo_first_run[0])
    demo = open_engine(config, progress=False)
    archive = Archive.open(config.archive_dir)
    held_out = held_out_obs_ids(archive, demo.model)
    pairs = archive_pairs(archive)
    proposals = {p for o, p in zip(pairs.obs_ids, pairs.proposals) if o in set(held_out)}
    assert sorted(proposals) == demo.model.card.training_data["validation_proposals"]

    describer = Describer(demo)
    accuracy = {k: describe_accuracy(describer, archive, held_out, top=k) for k in (1, 3, 5)}
    per_kind = describe_accuracy_by_kind(describer, archive, held_out)
    print(f"\ndescription retrieval on {len(held_out)} held-out previews: top-1 "
          f"{accuracy[1]:.3f}, top-3 {accuracy[3]:.3f}, top-5 {accuracy[5]:.3f}")
    print("top-3 per kind: " + ", ".join(f"{k} {v:.2f}" for k, v in per_kind.items()))
    assert accuracy[3] >= 0.70
    assert accuracy[1] <= accuracy[3] <= accuracy[5]
