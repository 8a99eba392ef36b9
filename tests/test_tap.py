"""TAP query execution on the tiny index: results against numpy and Python, MAXREC and
overflow, formats, the candidate restriction of ranked queries, and the SQL sandbox."""

import csv
import io
import math
import time
from urllib.parse import quote

import numpy as np
import pytest
from conftest import BACKENDS, tap_on_backend
from astropy.io.votable import parse

from vo_clip.ml.model import load_model
from vo_clip.search.engine import Query, SearchEngine
from vo_clip.search.index import EmbeddingIndex
from vo_clip.vo import tap as tap_module
from vo_clip.vo.faults import LimitFault, TransientFault, UsageFault
from vo_clip.search.backends import CompiledQuery, StatementRefused
from vo_clip.vo.tap import TapService
from vo_clip.vo.limits import TapLimits

BASE = "http://127.0.0.1:9999"


@pytest.fixture(scope="module")
def engine(tiny_index, tiny_model_path):
    index = EmbeddingIndex.open(tiny_index)
    return SearchEngine(index, load_model(str(tiny_model_path)))


@pytest.fixture(scope="module", params=BACKENDS)
def tap(engine, tiny_index, request):
    with tap_on_backend(request, request.param, tiny_index, engine=lambda: engine,
                        limits=TapLimits(default_maxrec=20, hard_maxrec=30)) as service:
        yield service


def run(tap, query, **params):
    return tap.execute({"LANG": "ADQL", "QUERY": query, **params}, base_url=BASE)


def column(result, name):
    position = [f.name for f in result.fields].index(name)
    return [row[position] for row in result.rows]


def test_similarity_ranking_matches_numpy_under_a_filter(tap, engine):
    result = run(tap, "SELECT TOP 5 obs_id, vo_clip_similarity('a bright compact source') AS sim "
                      "FROM ivoa.ObsCore WHERE instrument_name LIKE 'WFC3%' ORDER BY sim DESC")
    everything = np.arange(len(engine.index))
    catalog = engine.index.catalog.fetch(everything, ["obs_id", "instrument_name"])
    scores = engine.index.embeddings @ engine.vector(Query(text="a bright compact source"))
    keep = np.array([name.startswith("WFC3") for name in catalog["instrument_name"]])
    best = np.flatnonzero(keep)[np.argsort(-scores[keep], kind="stable")[:5]]
    assert column(result, "obs_id") == list(catalog["obs_id"][best])
    np.testing.assert_allclose(column(result, "sim"), scores[best], rtol=1e-6)
    assert result.fields[1].datatype == "double" and result.fields[1].ucd == "stat.correlation"


def test_candidate_restriction_gives_the_full_scan_answer(tap, monkeypatch):
    query = ("SELECT TOP 4 obs_id, vo_clip_similarity('faint diffuse glow') AS sim FROM "
             "ivoa.ObsCore WHERE instrument_name = 'STIS/CCD' ORDER BY sim {}")
    for direction in ("DESC", "ASC"):
        monkeypatch.setattr(tap_module, "_CANDIDATE_CEILING", 0.0)  # always score every row
        full = run(tap, query.format(direction)).rows
        monkeypatch.setattr(tap_module, "_CANDIDATE_CEILING", 1.0)
        monkeypatch.setattr(tap_module, "_MIN_CANDIDATES", 2)  # 8 candidates, then 64
        monkeypatch.setattr(tap_module, "_CANDIDATE_FACTOR", 2)
        restricted = run(tap, query.format(direction)).rows
        assert restricted == full and len(full) == 4


def test_similarity_to_an_observation_puts_it_first(tap):
    result = run(tap, "SELECT TOP 3 obs_id, vo_clip_similarity_to('ivo://example.org/vo_clip?obs007')"
                      " AS sim FROM ivoa.ObsCore ORDER BY sim DESC")
    assert column(result, "obs_id")[0] == "obs007"
    assert column(result, "sim")[0] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(UsageFault, match="no observation with obs_id 'nope'"):
        run(tap, "SELECT vo_clip_similarity_to('nope') FROM ivoa.ObsCore")


def test_similarity_threshold_in_where_and_across_a_join(tap, engine):
    scores = engine.index.embeddings @ engine.vector(Query(text="stars"))
    threshold = float(np.median(scores))
    result = run(tap, "SELECT o.obs_id, h.obs_publisher_did FROM ivoa.ObsCore AS o JOIN "
                      "hst.observations AS h USING (obs_id) WHERE "
                      f"vo_clip_similarity(h.obs_publisher_did, 'stars') > {threshold!r}")
    assert len(result.rows) == int((scores > threshold).sum())


def test_derived_columns_carry_the_service_identity(tap):
    result = run(tap, "SELECT o.obs_id, o.obs_publisher_did, o.access_url, o.access_format, "
                      "h.preview_url FROM ivoa.ObsCore o JOIN hst.observations h "
                      "ON o.obs_id = h.obs_id WHERE o.obs_id = 'obs003'")
    (row,) = result.rows
    did = "ivo://example.org/vo_clip?obs003"
    assert row[1:] == (did, f"{BASE}/datalink/links?ID={quote(did, safe='')}",
                       "application/x-votable+xml;content=datalink", f"{BASE}/preview/obs003")


def test_aggregates_and_group_by(tap, engine):
    result = run(tap, "SELECT instrument_name, COUNT(*) AS n, MAX(s_dec) AS top_dec "
                      "FROM ivoa.ObsCore GROUP BY instrument_name ORDER BY instrument_name")
    table = engine.index.catalog.fetch(np.arange(len(engine.index)), ["instrument_name", "s_dec"])
    expected = sorted({name for name in table["instrument_name"]})
    assert column(result, "instrument_name") == expected
    assert sum(column(result, "n")) == len(table)
    assert [f.datatype for f in result.fields] == ["char", "long", "double"]
    assert result.fields[2].unit == "deg"


def test_cone_search_matches_python(tap, engine):
    result = run(tap, "SELECT obs_id FROM ivoa.ObsCore WHERE "
                      "1=CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 20, -25, 6))")
    table = engine.index.catalog.fetch(np.arange(len(engine.index)), ["obs_id", "s_ra", "s_dec"])
    expected = [row["obs_id"] for row in table
                if _separation(row["s_ra"], row["s_dec"], 20, -25) <= 6]
    assert sorted(column(result, "obs_id")) == sorted(expected) and expected


def _separation(ra1, dec1, ra2, dec2):
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    cos = (math.sin(dec1) * math.sin(dec2)
           + math.cos(dec1) * math.cos(dec2) * math.cos(ra1 - ra2))
    return math.degrees(math.acos(min(1.0, cos)))


@pytest.mark.parametrize("params, rows, overflow", [
    ({}, 20, True),  # the default MAXREC cuts the 36 rows
    ({"MAXREC": "5"}, 5, True),
    ({"MAXREC": "36"}, 30, True),  # capped at the hard limit, never refused
    ({"MAXREC": "0"}, 0, True),
])
def test_maxrec_and_overflow(tap, params, rows, overflow):
    result = run(tap, "SELECT obs_id FROM ivoa.ObsCore", **params)
    assert (len(result.rows), result.overflow) == (rows, overflow)
    assert [f.name for f in result.fields] == ["obs_id"]


def test_top_below_maxrec_is_not_an_overflow(tap):
    result = run(tap, "SELECT TOP 3 obs_id FROM ivoa.ObsCore", MAXREC="5")
    assert (len(result.rows), result.overflow) == (3, False)
    result = run(tap, "SELECT TOP 10 obs_id FROM ivoa.ObsCore", MAXREC="5")
    assert (len(result.rows), result.overflow) == (5, True)


def test_every_format_carries_the_same_rows(tap):
    query = "SELECT TOP 6 obs_id, s_ra, proposal_cycle, target_name FROM ivoa.ObsCore " \
            "JOIN hst.observations USING (obs_id) ORDER BY s_ra"
    expected = run(tap, query).rows
    for fmt in ("votable", "votable/b2", "application/x-votable+xml;serialization=BINARY2"):
        document = b"".join(run(tap, query, RESPONSEFORMAT=fmt).render())
        table = parse(io.BytesIO(document), verify="exception").get_first_table().to_table()
        assert [tuple(row) for row in table] == expected
    for fmt, delimiter in (("csv", ","), ("text/tab-separated-values", "\t")):
        text = b"".join(run(tap, query, RESPONSEFORMAT=fmt).render()).decode()
        rows = list(csv.reader(io.StringIO(text), delimiter=delimiter))
        assert rows[0] == ["obs_id", "s_ra", "proposal_cycle", "target_name"]
        assert [r[0] for r in rows[1:]] == [r[0] for r in expected]


@pytest.mark.parametrize("params, needle", [
    ({"LANG": None}, "LANG parameter is missing"),
    ({"LANG": "OOBLECK"}, "unsupported LANG 'OOBLECK'"),
    ({"QUERY": None}, "QUERY parameter is missing"),
    ({"MAXREC": "many"}, "MAXREC must be an integer"),
    ({"MAXREC": "-1"}, "must not be negative"),
    ({"RESPONSEFORMAT": "fits"}, "unsupported RESPONSEFORMAT 'fits'"),
    ({"UPLOAD": "t,param:t"}, "UPLOAD is not supported"),
])
def test_bad_parameters_are_usage_faults(tap, params, needle):
    request = {"LANG": "ADQL", "QUERY": "SELECT TOP 1 obs_id FROM ivoa.ObsCore", **params}
    with pytest.raises(UsageFault, match=needle):
        tap.execute({k: v for k, v in request.items() if v is not None}, base_url=BASE)


def test_lang_accepts_versions_in_any_case(tap):
    for lang in ("adql", "ADQL-2.0", "adql-2.1"):
        assert len(tap.execute({"LANG": lang, "QUERY": "SELECT TOP 1 obs_id FROM ivoa.ObsCore"},
                               base_url=BASE).rows) == 1


def test_the_time_limit_stops_a_query(tap):
    heavy = ("SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c, "
             "ivoa.ObsCore d, ivoa.ObsCore e "
             "WHERE SIN(a.s_ra + b.s_ra + c.s_ra + d.s_ra + e.s_ra) > 2")
    started = time.monotonic()
    with pytest.raises(TransientFault, match="time limit"):
        tap.execute({"LANG": "ADQL", "QUERY": heavy}, base_url=BASE, deadline=time.time() + 0.2)
    # stopped: alone, the query runs for hours on SQLite and many seconds on PostgreSQL
    assert time.monotonic() - started < 30
    assert len(run(tap, "SELECT TOP 2 obs_id FROM ivoa.ObsCore").rows) == 2  # still serving


def test_an_aborted_job_stops_its_query(tap):
    heavy = "SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c, ivoa.ObsCore d"
    with pytest.raises(TransientFault, match="aborted"):
        tap.execute({"LANG": "ADQL", "QUERY": heavy}, base_url=BASE, cancelled=lambda: True)


def test_a_sync_query_past_the_sync_limit_is_stopped_naming_it(engine):
    tap = TapService(engine.index, limits=TapLimits(sync_execution_limit=1))
    heavy = ("SELECT COUNT(*) FROM ivoa.ObsCore a, ivoa.ObsCore b, ivoa.ObsCore c, "
             "ivoa.ObsCore d, ivoa.ObsCore e "
             "WHERE SIN(a.s_ra + b.s_ra + c.s_ra + d.s_ra + e.s_ra) > 2")
    with pytest.raises(TransientFault, match=r"time limit of 1 s \(sync_execution_limit\)") \
            as caught:
        run(tap, heavy)
    assert caught.value.limit == "sync_execution_limit"
    assert "/tap/async" in str(caught.value)


@pytest.mark.parametrize("function", ["TRUNCATE(x.obs_id, 1)", "TRUNCATE(1.5, x.obs_id)",
                                      "COT(x.obs_id)", "RAND(x.obs_id)"])
def test_a_string_reaching_a_numeric_function_at_run_time_is_the_query_error(tap, function):
    # the derived table's column has no declared type: the translator cannot tell
    # SQLite's functions see the value; PostgreSQL's planner only its type
    with pytest.raises(UsageFault, match="takes numbers, not ('obs0|a character string)") \
            as caught:
        run(tap, f"SELECT {function} FROM (SELECT obs_id FROM ivoa.ObsCore) AS x")
    assert caught.value.status == 400


def test_numeric_functions_take_extreme_arguments(tap):
    result = run(tap, "SELECT TOP 1 TRUNCATE(1.25, 400), TRUNCATE(1.25, -400), "
                      "TRUNCATE(1.25, 1e30), COT(0), TRUNCATE(1e308, 300) FROM ivoa.ObsCore")
    assert result.rows == [(1.25, 0.0, 1.25, None, 1e308)]


def test_a_query_building_a_long_string_is_refused_naming_the_limit(engine):
    tap = TapService(engine.index, limits=TapLimits(query_max_string_bytes=1000))
    query = "SELECT obs_id AS s FROM ivoa.ObsCore"
    for level in range(4):  # 4^4 copies of obs_id: 1,536 bytes
        query = f"SELECT s || s || s || s AS s FROM ({query}) AS t{level}"
    with pytest.raises(LimitFault, match="query_max_string_bytes") as caught:
        run(tap, query)
    assert caught.value.limit == "query_max_string_bytes"
    assert len(run(tap, query.replace("s || s || s || s", "s || s", 1)).rows) == len(engine.index)


def test_a_result_larger_than_the_limit_is_refused_naming_it(engine):
    tap = TapService(engine.index, limits=TapLimits(result_max_bytes=2000))
    with pytest.raises(LimitFault, match="result_max_bytes") as caught:
        run(tap, "SELECT * FROM ivoa.ObsCore")
    assert caught.value.limit == "result_max_bytes" and caught.value.status == 400
    assert len(run(tap, "SELECT TOP 3 obs_id FROM ivoa.ObsCore").rows) == 3


def test_a_candidate_list_longer_than_the_string_limit_scores_every_row(engine, monkeypatch):
    query = ("SELECT TOP 3 obs_id, vo_clip_similarity('faint diffuse glow') AS sim FROM "
             "ivoa.ObsCore ORDER BY sim DESC")
    monkeypatch.setattr(tap_module, "_CANDIDATE_CEILING", 1.0)  # always restrict, if it can
    expected = run(TapService(engine.index, engine=lambda: engine), query).rows
    short = TapService(engine.index, engine=lambda: engine,
                       limits=TapLimits(query_max_string_bytes=50))
    assert run(short, query).rows == expected and len(expected) == 3


@pytest.mark.parametrize("sql", [
    "SELECT * FROM sqlite_master",
    "SELECT * FROM main.sqlite_master",
    "ATTACH '/tmp/other.db' AS other",
    "PRAGMA table_info(observations)",
    "CREATE TEMP TABLE x (a)",
    "INSERT INTO observations (row_index) VALUES (99999)",
    "DELETE FROM observations",
    "SELECT load_extension('x')",
    "SELECT sqlite_version()",
])
def test_the_sql_connection_refuses_anything_but_reading_published_tables(tap, sql):
    with tap.catalog.session(seconds=30, limit="test") as session:
        with pytest.raises(StatementRefused,
                           match="not published|prohibited|cannot be run|read-only"):
            session.run(CompiledQuery(sql), [], None, 10, 10**6)


def test_the_sql_connection_runs_one_statement_only(tap):
    with tap.catalog.session(seconds=30, limit="test") as session, \
            pytest.raises(StatementRefused, match="one statement|multiple commands"):
        session.run(CompiledQuery("SELECT 1 FROM vo_clip_obscore; SELECT 2 FROM "
                                  "vo_clip_obscore"), [], None, 10, 10**6)


def test_tap_schema_is_queryable_and_matches_the_published_tables(tap):
    result = run(tap, "SELECT table_name, column_name, datatype, unit FROM TAP_SCHEMA.columns "
                      "WHERE table_name = 'ivoa.ObsCore'", MAXREC="30")
    assert len(result.rows) == 30
    published = {c.name: c for c in tap.tables[0].columns}
    for _, name, datatype, unit in result.rows:
        assert published[name].datatype == datatype and published[name].unit == unit
