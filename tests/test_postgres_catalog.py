"""The PostgreSQL catalog backend against a real PostgreSQL 15 + pgsphere server.

An index with footprints of every kind (polygons, a box, a circle, a polygon pgsphere
refuses, none) is loaded into a throwaway cluster; what PostgreSQL serves is compared
with what the SQLite backend serves from the same catalog file, value for value.
"""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import numpy as np
import pytest
from astropy.table import Table
from PIL import Image

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg")

from vo_clip.search.backends import (CompiledQuery, ResultTooLarge,  # noqa: E402
                                     StatementFailed, StatementRefused, StatementStopped)
from vo_clip.search.backends.postgres import PostgresBackend  # noqa: E402
from vo_clip.search.backends.postgres_load import (PostgresSetupError,  # noqa: E402
                                                   load_catalog)
from vo_clip.vo.schema import published_tables  # noqa: E402
from vo_clip.vo.tap_schema import tap_schema_rows  # noqa: E402

AUTHORITY = "test.example"
WEB_ROLE = "vo_clip_test_web"
N = 30
SPECIAL_ID = "obs 005/ü&x"  # needs percent-encoding in the DataLink and preview URLs


def _region(i: int) -> str | None:
    ra, dec = 150 + i * 0.1, 2 + i * 0.05
    special = {1: "Box ICRS 150.1 2.05 0.2 0.1", 2: "Circle ICRS 150.2 2.1 0.05",
               3: "Polygon ICRS 150 2 151 3 151 2 150 3",  # its edges cross: pgsphere refuses
               4: None}
    if i in special:
        return special[i]
    return (f"Polygon ICRS {ra} {dec} {ra + 0.05} {dec} {ra + 0.05} {dec + 0.04} "
            f"{ra} {dec + 0.04}")


def _obs_id(i: int) -> str:
    return SPECIAL_ID if i == 5 else f"obs{i:03d}"


@pytest.fixture(scope="module")
def region_index(tmp_path_factory, tiny_model_path):
    """A small index whose catalog has every kind of s_region."""
    from vo_clip.archive import Archive
    from vo_clip.ml.model import load_model
    from vo_clip.search.index import build_index

    root = tmp_path_factory.mktemp("pg-archive")
    (root / "previews").mkdir()
    rng = np.random.default_rng(3)
    rows = []
    for i in range(N):
        preview = f"previews/p{i:03d}.png"
        Image.fromarray((rng.random((32, 32)) * 255).astype(np.uint8), mode="L").save(
            root / preview)
        rows.append((_obs_id(i), preview, 150 + i * 0.1 + 0.02, 2 + i * 0.05 + 0.02,
                     _region(i) or "", ["ACS/WFC", "WFC3/UVIS", "WFC3/IR"][i % 3],
                     f"{9000 + i % 4}", 2, 55000.5 + i, f"Programme {i % 4} 100% & <b>"))
    table = Table(rows=rows, names=["obs_id", "preview", "s_ra", "s_dec", "s_region",
                                    "instrument_name", "proposal_id", "calib_level", "t_min",
                                    "proposal_title"])
    archive = Archive.write(root, table, name="pg", source="tests")
    out = tmp_path_factory.mktemp("pg-index") / "index"
    build_index(archive, load_model(str(tiny_model_path)), out, progress=False)
    return out


@pytest.fixture(scope="module")
def database(postgres_server):
    with postgres_server.database() as db:
        yield db


@pytest.fixture(scope="module")
def web_dsn(database):
    """A login role that is neither superuser nor owner, as a service should connect."""
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (WEB_ROLE,)).fetchone():
            conn.execute(f"CREATE ROLE {WEB_ROLE} LOGIN")
        # a table of someone else's in the same database, which no query may read
        conn.execute("CREATE TABLE public.secret (value text)")
        conn.execute("INSERT INTO public.secret VALUES ('do not read')")
    return psycopg.conninfo.make_conninfo(database.dsn, user=WEB_ROLE)


def _load(dsn, index, **kwargs):
    tables = published_tables()
    return load_catalog(dsn, index / "catalog.sqlite", tables=tables,
                        tap_schema_rows=tap_schema_rows(tables), progress=False, **kwargs)


@pytest.fixture(scope="module")
def loaded(database, region_index, web_dsn):
    return _load(database.dsn, region_index, grant=[WEB_ROLE])


@pytest.fixture(scope="module")
def backend(loaded, web_dsn):
    tables = published_tables()
    backend = PostgresBackend(web_dsn, authority=AUTHORITY, tables=tables,
                              tap_schema_rows=tap_schema_rows(tables), expected_rows=N)
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def sqlite_backend(region_index):
    from vo_clip.search.backends.sqlite import SqliteBackend

    tables = published_tables()
    backend = SqliteBackend(region_index / "catalog.sqlite", authority=AUTHORITY,
                            tables=tables, tap_schema_rows=tap_schema_rows(tables),
                            string_max_bytes=1_000_000)
    yield backend
    backend.close()


def _run(backend, sql, *, seconds=10.0, scores=(), candidates=None, wanted=10_000,
         base_url="http://vo.test", cancelled=None, query=None, max_bytes=10**9):
    query = query or CompiledQuery(sql)
    with backend.session(seconds=seconds, limit="sync_execution_limit", base_url=base_url,
                         cancelled=cancelled) as session:
        return session.run(query, list(scores), candidates, wanted, max_bytes)


def _sqlite_rows(index, sql):
    import sqlite3

    with sqlite3.connect(index / "catalog.sqlite") as db:
        return db.execute(sql).fetchall()


# -- the load ---------------------------------------------------------------------------

def test_the_catalog_rows_equal_the_sqlite_catalog_value_for_value(loaded, database,
                                                                    region_index):
    expected = _sqlite_rows(region_index, "SELECT * FROM observations ORDER BY row_index")
    with psycopg.connect(database.dsn) as conn:
        columns = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = "
            "'vo_clip' AND table_name = 'observations' ORDER BY ordinal_position")]
        got = conn.execute(f"SELECT {', '.join(columns[:-1])} FROM vo_clip.observations "
                           "ORDER BY row_index").fetchall()
    assert columns[-1] == "vo_clip_region"
    assert loaded.rows == N and len(got) == N
    assert got == expected


def test_regions_become_pgsphere_polygons_and_the_rest_is_null_with_a_warning(loaded,
                                                                               database):
    with psycopg.connect(database.dsn) as conn:
        conn.execute("SELECT set_sphere_output('DEG')")
        regions = dict(conn.execute("SELECT row_index, vo_clip_region::text FROM "
                                    "vo_clip.observations").fetchall())
    assert regions[0] == "{(150d , 2d),(150.05d , 2d),(150.05d , 2.04d),(150d , 2.04d)}"
    assert regions[1] is not None and regions[1].count("(") == 4  # the box's polygon
    assert regions[2] is None and regions[3] is None and regions[4] is None
    assert sum(r is not None for r in regions.values()) == N - 3
    assert any("pgsphere refused the s_region polygon of 1 rows (row_index 3" in w
               for w in loaded.warnings), loaded.warnings
    assert any("1 s_region values are not polygons" in w for w in loaded.warnings)


def test_the_views_derived_columns_equal_the_sqlite_backends(backend, sqlite_backend):
    sql = ('SELECT o.obs_id, o.obs_publisher_did, o.access_url, o.access_format, o.s_region, '
           'h.preview_url, h.proposal_title FROM vo_clip_obscore AS o JOIN vo_clip_hst AS h '
           'ON h.obs_id = o.obs_id ORDER BY o.row_index')
    got = _run(backend, sql)
    assert got == _run(sqlite_backend, sql)
    special = next(row for row in got if row[0] == SPECIAL_ID)
    did = f"ivo://{AUTHORITY}/vo_clip?{SPECIAL_ID}"
    assert special[1] == did
    assert special[2] == "http://vo.test/datalink/links?ID=" + quote(did, safe="")
    assert special[5] == "http://vo.test/preview/" + quote(SPECIAL_ID, safe="")


def test_tap_schema_tables_hold_the_rows_the_tap_layer_gives(backend):
    tables = published_tables()
    rows = tap_schema_rows(tables)
    for table in tables:
        if table.embedded:
            continue
        names = ", ".join(f'"{c.name}"' for c in table.columns)
        got = _run(backend, f"SELECT {names} FROM tap_schema_{table.short_name}")
        assert sorted(got, key=repr) == sorted(rows[table.short_name], key=repr)


def test_a_reload_is_idempotent_and_swaps_in_the_new_catalog(loaded, database, region_index,
                                                             backend):
    again = _load(database.dsn, region_index, grant=[WEB_ROLE])
    assert again.rows == loaded.rows and set(again.timings) >= {"copy", "index", "swap"}
    assert _run(backend, "SELECT count(*) FROM vo_clip_obscore") == [(N,)]
    with psycopg.connect(database.dsn) as conn:
        schemas = [r[0] for r in conn.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'vo_clip%'")]
    assert sorted(schemas) == ["vo_clip", "vo_clip_uws"]  # no staging schema; the jobs' own schema


def test_a_schema_that_is_not_vo_clips_is_never_replaced(database, region_index):
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA theirs; CREATE TABLE theirs.keep (x int)")
    with pytest.raises(PostgresSetupError, match="schema theirs exists and is not vo_clip's"):
        _load(database.dsn, region_index, schema="theirs")
    with psycopg.connect(database.dsn) as conn:
        assert conn.execute("SELECT to_regclass('theirs.keep') IS NOT NULL").fetchone()[0]


def test_reload_while_reading_never_shows_half_a_catalog(database, region_index, backend,
                                                         loaded):
    seen, errors, stop = [], [], threading.Event()

    def read():
        while not stop.is_set():
            try:
                seen.append(_run(backend, "SELECT count(*), count(DISTINCT obs_id), "
                                          "max(row_index) FROM vo_clip_obscore")[0])
            except Exception as exc:  # noqa: BLE001 - any failure is the finding
                errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(2)]
    for thread in readers:
        thread.start()
    try:
        for _ in range(2):
            _load(database.dsn, region_index, grant=[WEB_ROLE])
    finally:
        stop.set()
        for thread in readers:
            thread.join(timeout=60)
    assert not errors, errors[:3]
    assert seen and set(seen) == {(N, N, N - 1)}


# -- the sandbox ------------------------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "SELECT * FROM vo_clip.observations",
    "SELECT * FROM public.secret",
    "SELECT * FROM vo_clip.vo_clip_catalog",
])
def test_queries_read_only_the_published_relations(backend, sql):
    with pytest.raises(StatementRefused, match="not published"):
        _run(backend, sql)


def test_queries_cannot_write_even_where_the_role_could(backend, database):
    with backend.session(seconds=5, limit="sync_execution_limit") as session:
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            session.connection.conn.execute("CREATE TABLE vo_clip.x (y int)")
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("SET ROLE vo_clip_reader")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("INSERT INTO vo_clip.tap_schema_schemas (schema_name) VALUES ('x')")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM vo_clip.observations")


def test_a_statement_past_its_time_limit_stops(backend):
    started = time.monotonic()
    with pytest.raises(StatementStopped) as stopped:
        _run(backend, "SELECT pg_sleep(30)", seconds=0.5)
    assert stopped.value.limit == "sync_execution_limit" and not stopped.value.cancelled
    assert "0.5 s" in stopped.value.message
    assert time.monotonic() - started < 15  # generous: the sleep alone is 30 s
    assert _run(backend, "SELECT 1") == [(1,)]  # the pooled connection still works


def test_the_session_sets_statement_timeout_role_and_settings(backend):
    got = _run(backend, "SELECT current_setting('statement_timeout'), current_user, "
                        "current_setting('vo_clip.base_url'), "
                        "current_setting('transaction_read_only')", seconds=42)
    timeout, role, base, read_only = got[0]
    assert role == "vo_clip_reader" and base == "http://vo.test" and read_only == "on"
    assert timeout == "42s"  # the time left in whole seconds; the watcher keeps the rest


def test_a_cancelled_statement_stops_promptly(backend):
    flag = threading.Event()
    threading.Timer(0.3, flag.set).start()
    started = time.monotonic()
    with pytest.raises(StatementStopped) as stopped:
        _run(backend, "SELECT pg_sleep(30)", seconds=60, cancelled=flag.is_set)
    assert stopped.value.cancelled
    assert time.monotonic() - started < 15


def test_errors_are_the_querys_or_the_services(backend):
    with pytest.raises(StatementRefused, match="division by zero"):
        _run(backend, "SELECT 1 / 0")
    with pytest.raises(StatementRefused, match=r"function MOD\(boolean, integer\) does not"):
        _run(backend, "SELECT vo_clip_mod(true, 2)")
    with pytest.raises(StatementRefused, match="geometry is not valid"):
        _run(backend, "SELECT vo_clip_polygon(10, 20, 11, 21, 11, 20, 10, 21)")
    with pytest.raises(ResultTooLarge):
        _run(backend, "SELECT proposal_title FROM vo_clip_hst", max_bytes=100)


def test_a_broken_connection_is_replaced(backend, database):
    assert _run(backend, "SELECT 1") == [(1,)]
    with psycopg.connect(database.dsn, autocommit=True) as admin:
        killed = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE usename = %s", (WEB_ROLE,)).fetchone()[0]
    assert killed >= 1
    time.sleep(0.2)
    assert _run(backend, "SELECT 2") == [(2,)]


def test_an_unreachable_server_is_a_transient_failure(loaded):
    gone = PostgresBackend("host=127.0.0.1 port=1 dbname=x connect_timeout=2")
    with pytest.raises(StatementFailed) as failed:
        _run(gone, "SELECT 1")
    assert failed.value.transient
    assert "cannot be reached" in gone.problem()


def test_values_come_back_as_sqlite_gives_them(backend):
    assert _run(backend, "SELECT 2.5::numeric, 4::numeric, true, false, "
                         "sum(calib_level) FROM vo_clip_obscore") == [(2.5, 4, 1, 0, 2 * N)]


# -- lookups and the service's questions ----------------------------------------------

def test_lookups_answer_as_the_sqlite_backend(backend, sqlite_backend):
    for name, arguments in [("observation", {"obs_id": SPECIAL_ID}),
                            ("observation", {"obs_id": "nope"}),
                            ("proposal", {"proposal_id": "9001"}),
                            ("preview", {"obs_id": "obs007"}),
                            ("first_observation", {}), ("last_observation", {})]:
        with backend.session(seconds=5, limit="lookup_time_limit") as pg, \
                sqlite_backend.session(seconds=5, limit="lookup_time_limit") as lite:
            assert pg.lookup(name, **arguments) == lite.lookup(name, **arguments), name


def test_row_count_describe_and_problem(backend):
    assert backend.row_count() == N
    described = backend.describe()
    assert described["mode"] == "native" and described["rows"] == N
    assert "vo_clip.vo_clip_obscore" in described["relations"]
    assert backend.problem() is None
    other = PostgresBackend(backend.dsn, expected_rows=N + 1)
    assert "has 30 rows and the index 31" in other.problem()
    other.close()


# -- translated ADQL on both backends ---------------------------------------------------

ADQL = [
    "SELECT TOP 5 obs_id, s_ra, s_dec FROM ivoa.ObsCore ORDER BY obs_id",
    "SELECT COUNT(*) AS n FROM ivoa.ObsCore WHERE instrument_name LIKE 'WFC3%'",
    "SELECT obs_id FROM ivoa.ObsCore WHERE 1 = CONTAINS(POINT('ICRS', s_ra, s_dec), "
    "CIRCLE('ICRS', 150.5, 2.25, 0.3)) ORDER BY obs_id",
    "SELECT obs_id FROM ivoa.ObsCore WHERE 1 = INTERSECTS(s_region, "
    "CIRCLE('ICRS', 150.52, 2.27, 0.05)) ORDER BY obs_id",
    "SELECT o.obs_id, h.proposal_id FROM ivoa.ObsCore AS o JOIN hst.observations AS h "
    "USING (obs_id) WHERE h.proposal_title LIKE '%100%%' ORDER BY o.obs_id",
    "SELECT TOP 3 obs_id, MOD(calib_level, 2) AS m, ROUND(s_ra, 1) AS r FROM ivoa.ObsCore "
    "ORDER BY t_min DESC",
    "SELECT table_name FROM TAP_SCHEMA.tables ORDER BY table_index",
]


@pytest.mark.parametrize("adql", ADQL)
def test_translated_adql_gives_the_sqlite_answer(backend, sqlite_backend, adql):
    from vo_clip.vo.adql import translate

    pg = translate(adql, dialect=backend.dialect).compiled
    lite = translate(adql, dialect=sqlite_backend.dialect).compiled
    got = _run(backend, None, query=pg)
    assert got == _run(sqlite_backend, None, query=lite)
    assert got  # every query of the corpus matches something


def test_similarity_ranks_with_scores_bound_as_arrays(backend, sqlite_backend):
    from vo_clip.vo.adql import translate

    adql = ("SELECT TOP 4 obs_id, vo_clip_similarity('a galaxy') AS sim FROM ivoa.ObsCore "
            "WHERE instrument_name LIKE 'WFC3%' ORDER BY sim DESC")
    scores = [np.random.default_rng(7).random(N)]
    pg = translate(adql, dialect=backend.dialect).compiled
    lite = translate(adql, dialect=sqlite_backend.dialect).compiled
    every = _run(backend, None, query=pg, scores=scores)
    assert every == _run(sqlite_backend, None, query=lite, scores=scores)
    assert [row[1] for row in every] == sorted((row[1] for row in every), reverse=True)
    best = np.argsort(-scores[0])[:12]
    assert _run(backend, None, query=pg, scores=scores, candidates=best) == \
        _run(sqlite_backend, None, query=lite, scores=scores, candidates=best)


# -- attach to an operator's ObsCore -----------------------------------------------------

DACHS_OBSCORE = """
CREATE SCHEMA ivoa;
CREATE TABLE ivoa.obscore (
    dataproduct_type text, dataproduct_subtype text, calib_level smallint,
    obs_collection text, obs_id text, obs_title text, obs_publisher_did text,
    obs_creator_did text, access_url text, access_format text, access_estsize bigint,
    target_name text, target_class text, s_ra double precision, s_dec double precision,
    s_fov double precision, s_region spoly, s_resolution double precision,
    t_min double precision, t_max double precision, t_exptime double precision,
    t_resolution double precision, em_min double precision, em_max double precision,
    em_res_power double precision, o_ucd text, pol_states text, facility_name text,
    instrument_name text, s_xel1 bigint, s_xel2 bigint, t_xel bigint, em_xel bigint,
    source_table text, preview text);
CREATE INDEX ON ivoa.obscore USING gist (spoint(radians(s_ra), radians(s_dec)));
"""


@pytest.fixture(scope="module")
def attached(database, region_index, loaded):
    """A DaCHS-like ivoa.obscore (without pol_xel) and vo_clip attached to it."""
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute(DACHS_OBSCORE)
        for i in range(0, N, 2):  # half of the index's observations, plus two of their own
            conn.execute(
                "INSERT INTO ivoa.obscore (dataproduct_type, calib_level, obs_collection, "
                "obs_id, obs_publisher_did, access_url, access_format, s_ra, s_dec, "
                "s_region, instrument_name) VALUES ('image', 3, 'HST', %s, %s, %s, "
                "'application/fits', %s, %s, %s::spoly, 'DACHS-CAM')",
                (_obs_id(i), f"ivo://dachs.test/~?hst/{i}", f"http://dachs.test/get/{i}",
                 150 + i * 0.1, 2 + i * 0.05,
                 f"{{({150 + i * 0.1}d, {2 + i * 0.05}d), ({150.05 + i * 0.1}d, "
                 f"{2 + i * 0.05}d), ({150.05 + i * 0.1}d, {2.04 + i * 0.05}d)}}"))
        conn.execute("INSERT INTO ivoa.obscore (obs_id, s_ra, s_dec) VALUES "
                     "('theirs-1', 10, 10), ('theirs-2', 11, 11)")
        before = conn.execute("SELECT md5(string_agg(o::text, ',' ORDER BY obs_id)) "
                              "FROM ivoa.obscore o").fetchone()[0]
    result = _load(database.dsn, region_index, schema="vo_attach", obscore="ivoa.obscore",
                   grant=[WEB_ROLE])
    web = psycopg.conninfo.make_conninfo(database.dsn, user=WEB_ROLE)
    tables = published_tables()
    backend = PostgresBackend(web, schema="vo_attach", authority=AUTHORITY, tables=tables,
                              tap_schema_rows=tap_schema_rows(tables))
    yield result, backend, before
    backend.close()


def test_attach_serves_their_rows_joined_to_the_index(attached):
    result, backend, _ = attached
    assert result.mode == "attach" and result.served_rows == N // 2
    rows = _run(backend, "SELECT row_index, obs_id, obs_publisher_did, access_url, "
                         "instrument_name, calib_level, s_region FROM vo_clip_obscore "
                         "ORDER BY row_index")
    assert [r[0] for r in rows] == list(range(0, N, 2))
    first = rows[0]
    assert first[1:6] == ("obs000", "ivo://dachs.test/~?hst/0", "http://dachs.test/get/0",
                          "DACHS-CAM", 3)
    assert first[6] == "Polygon ICRS 150 2 150.05 2 150.05 2.04"


def test_attach_warns_of_what_it_cannot_serve(attached):
    result, _, _ = attached
    text = " | ".join(result.warnings)
    assert "ivoa.obscore lacks the ObsCore columns pol_xel" in text
    assert "2 of the 17 rows of ivoa.obscore have no embedding" in text
    assert f"{N // 2} of the index's {N} observations are not in ivoa.obscore" in text


def test_attach_geometry_uses_their_spoly_and_similarity_their_rows(attached):
    from vo_clip.vo.adql import translate

    _, backend, _ = attached
    adql = ("SELECT obs_id FROM ivoa.ObsCore WHERE 1 = INTERSECTS(s_region, "
            "CIRCLE('ICRS', 150.42, 2.21, 0.01))")
    assert _run(backend, None, query=translate(adql, dialect=backend.dialect).compiled) == \
        [("obs004",)]
    ranked = translate("SELECT TOP 2 obs_id, vo_clip_similarity('x') AS s FROM ivoa.ObsCore "
                       "ORDER BY s DESC", dialect=backend.dialect).compiled
    scores = np.zeros(N)
    scores[[3, 8, 10]] = [0.9, 0.8, 0.7]  # row 3 is not in their ObsCore
    assert [r[0] for r in _run(backend, None, query=ranked, scores=[scores], wanted=2)] == \
        ["obs008", "obs010"]


def test_attach_leaves_their_table_as_it_was_and_unreadable_to_queries(attached, database):
    _, backend, before = attached
    with psycopg.connect(database.dsn) as conn:
        after = conn.execute("SELECT md5(string_agg(o::text, ',' ORDER BY obs_id)) "
                             "FROM ivoa.obscore o").fetchone()[0]
    assert after == before
    with pytest.raises(StatementRefused, match="not published"):
        _run(backend, "SELECT * FROM ivoa.obscore")


def test_attach_lookups_give_their_values_and_the_index_extras(attached):
    _, backend, _ = attached
    with backend.session(seconds=5, limit="lookup_time_limit") as session:
        row = session.lookup("observation", obs_id="obs002")[0]
        assert session.lookup("preview", obs_id="obs002") == [{"preview": "previews/p002.png"}]
    assert row["obs_publisher_did"] == "ivo://dachs.test/~?hst/2"
    assert row["proposal_title"] == "Programme 2 100% & <b>"


def test_attach_refuses_a_missing_table_or_key(database, region_index, loaded):
    with pytest.raises(PostgresSetupError, match="no table or view ivoa.nothing"):
        _load(database.dsn, region_index, schema="vo_bad", obscore="ivoa.nothing")


# -- the command line -------------------------------------------------------------------

def _cli(*args, index, home, **settings):
    import os
    import subprocess
    import sys

    env = {**os.environ, "VO_CLIP_HOME": str(home), "VO_CLIP_INDEX": str(index)}
    env.pop("VO_CLIP_CONFIG", None)
    env.pop("VO_CLIP_POSTGRES_DSN", None)
    env.update({f"VO_CLIP_{name.upper()}": value for name, value in settings.items()})
    return subprocess.run([sys.executable, "-m", "vo_clip", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_cli_load_then_check_as_the_service_role(postgres_database, region_index, tmp_path,
                                                 web_dsn):
    dsn = postgres_database.dsn
    loaded = _cli("postgres", "load", "--dsn", dsn, "--schema", "vo_cli", "--grant", WEB_ROLE,
                  index=region_index, home=tmp_path)
    assert loaded.returncode == 0, loaded.stderr
    assert f"loaded {N} observations into schema vo_cli (native; {N} served)" in loaded.stdout
    assert "pgsphere refused the s_region polygon of 1 rows" in loaded.stderr
    web = psycopg.conninfo.make_conninfo(dsn, user=WEB_ROLE)
    checked = _cli("postgres", "check", "--dsn", web, "--schema", "vo_cli",
                   index=region_index, home=tmp_path)
    assert checked.returncode == 0, checked.stderr
    assert f"ivoa.ObsCore {N} rows, hst.observations {N} rows" in checked.stdout
    assert checked.stdout.rstrip().endswith("ok") and "superuser" not in checked.stderr
    info = _cli("info", "--json", index=region_index, home=tmp_path, postgres_dsn=web,
                postgres_schema="vo_cli")
    assert info.returncode == 0, info.stderr
    catalog = json.loads(info.stdout)["catalog"]
    assert catalog["backend"] == "postgresql" and catalog["schema"] == "vo_cli"
    assert int(catalog["rows"]) == N and "ivoa" not in catalog.get("status", "")
    assert json.loads(_cli("info", "--json", index=region_index, home=tmp_path).stdout)[
        "catalog"]["backend"] == "sqlite (embedded)"


def test_cli_errors_are_one_line(postgres_database, region_index, tmp_path):
    from conftest import assert_one_line_error

    gone = _cli("postgres", "load", "--dsn", "host=127.0.0.1 port=1 dbname=x connect_timeout=3",
                index=region_index, home=tmp_path)
    assert_one_line_error(gone, "cannot connect to PostgreSQL")
    unloaded = _cli("postgres", "check", "--dsn", postgres_database.dsn, "--schema", "nothing",
                    index=region_index, home=tmp_path)
    assert_one_line_error(unloaded, "nothing")
    dsn = postgres_database.dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP EXTENSION pg_sphere")
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'vo_clip_test_plain'"
                            ).fetchone():
            conn.execute("CREATE ROLE vo_clip_test_plain LOGIN")
        conn.execute(f"GRANT CREATE ON DATABASE {postgres_database.name} TO vo_clip_test_plain")
    plain = psycopg.conninfo.make_conninfo(dsn, user="vo_clip_test_plain")
    missing = _cli("postgres", "load", "--dsn", plain, index=region_index, home=tmp_path)
    assert_one_line_error(missing, "pgsphere")
    assert "apt-get install postgresql-15-pgsphere" in missing.stderr
