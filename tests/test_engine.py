"""Exact top-k and the catalog filters, checked against plain numpy and Python."""

import numpy as np
import pytest
from astropy.table import Table

from vo_clip.errors import QueryError, UnknownObservationError
from vo_clip.search.catalog import Catalog, SearchFilter
from vo_clip.search.engine import Query, top_k


def test_top_k_matches_a_full_sort():
    rng = np.random.default_rng(0)
    scores = rng.standard_normal(10_000).astype(np.float32)
    for k in (1, 7, 100, 10_000, 20_000):
        expected = np.argsort(-scores, kind="stable")[:k]
        np.testing.assert_array_equal(top_k(scores, k), expected)


def test_top_k_orders_ties_by_row():
    scores = np.array([0.5, 0.9, 0.5, 0.9, 0.1], dtype=np.float32)
    np.testing.assert_array_equal(top_k(scores, 5), [1, 3, 0, 2, 4])
    assert len(top_k(np.zeros(0, np.float32), 3)) == 0


def test_query_needs_exactly_one_thing():
    with pytest.raises(QueryError, match="exactly one"):
        Query()
    with pytest.raises(QueryError, match="exactly one"):
        Query(text="x", like="y")
    with pytest.raises(QueryError, match="empty"):
        Query(text="  ")


@pytest.fixture()
def catalog(tmp_path):
    table = Table({"obs_id": ["a", "b_1", "c%", "d"],
                   "instrument_name": ["ACS/WFC", "ACS_WFC", "WFC3/UVIS", None],
                   "s_ra": [10.0, 10.5, 200.0, 10.0], "s_dec": [0.0, 0.2, 0.0, 5.0]},
                  masked=True)
    table["instrument_name"].mask = [False, False, False, True]
    return Catalog.build(tmp_path / "c.sqlite", table)


def test_filters(catalog):
    assert list(catalog.select_rows(SearchFilter(instrument="acs/"))) == [0]
    assert list(catalog.select_rows(SearchFilter(instrument="ACS_"))) == [1]  # '_' is literal
    assert list(catalog.select_rows(SearchFilter(cone=(10.2, 0.0, 0.5)))) == [0, 1]
    assert list(catalog.select_rows(SearchFilter(where="s_ra > 100"))) == [2]
    combined = SearchFilter(where="s_dec < 1", cone=(10.0, 0.0, 1.0), instrument="ACS")
    assert list(catalog.select_rows(combined)) == [0, 1]
    with pytest.raises(QueryError, match="invalid filter"):
        catalog.select_rows(SearchFilter(where="nope(1)"))


def test_fetch_keeps_order_types_and_nulls(catalog):
    table = catalog.fetch(np.array([3, 0]), ["obs_id", "instrument_name", "s_ra", "t_min"])
    assert list(table["obs_id"]) == ["d", "a"]
    assert table["instrument_name"].mask.tolist() == [True, False]
    assert table["s_ra"].dtype == np.float64 and str(table["s_ra"].unit) == "deg"
    assert table["t_min"].mask.all()  # an ObsCore column the archive did not have
    assert catalog.row_of("c%") == 2
    with pytest.raises(UnknownObservationError):
        catalog.row_of("zzz")
