"""ADQL translation: what TOPCAT and taplint send is accepted, everything else is refused
with a message that names what is wrong, and nothing unpublished reaches SQL."""

import sqlite3

import pytest

from vo_clip.vo.adql import FUNCTIONS, translate
from vo_clip.vo.faults import LimitFault, UsageFault
from vo_clip.vo.limits import TapLimits

ACCEPTED = [
    # taplint
    "SELECT TOP 10 obs_id FROM ivoa.ObsCore",
    "SELECT TOP 8 s_ra, s_dec AS taplint_c_2, i.obs_id FROM ivoa.ObsCore AS i",
    'SELECT principal, indexed, std, "size" FROM TAP_SCHEMA.columns',
    "SELECT TOP 100 * FROM TAP_SCHEMA.tables",
    "SELECT obs_id FROM ivoa.ObsCore WHERE calib_level NOT BETWEEN 0 AND 4",
    "SELECT DISTINCT TOP 4 dataproduct_type FROM ivoa.ObsCore WHERE dataproduct_type "
    "NOT IN ('image', 'cube') AND dataproduct_type IS NOT NULL",
    # TOPCAT
    "SELECT COUNT(*) AS n FROM ivoa.ObsCore",
    "SELECT instrument_name, COUNT(*), MIN(t_min), MAX(t_max), AVG(t_exptime), SUM(s_fov) "
    "FROM ivoa.ObsCore GROUP BY instrument_name HAVING COUNT(*) > 1 ORDER BY instrument_name",
    "SELECT TOP 5 o.obs_id, h.proposal_id FROM ivoa.ObsCore AS o JOIN hst.observations AS h "
    "USING (obs_id) WHERE o.target_name LIKE 'DEMO-%'",
    "SELECT TOP 5 * FROM ivoa.ObsCore o LEFT OUTER JOIN hst.observations h ON o.obs_id = h.obs_id",
    "SELECT * FROM ivoa.ObsCore WHERE 1=CONTAINS(POINT('ICRS', s_ra, s_dec), "
    "CIRCLE('ICRS', 10.5, -3.2, 0.1))",
    "SELECT * FROM ivoa.ObsCore WHERE CONTAINS(POINT(s_ra, s_dec), BOX(10, 20, 2, 1)) = 1",
    "SELECT * FROM ivoa.ObsCore WHERE INTERSECTS(s_region, POLYGON('', 1, 1, 2, 1, 2, 2)) = 1",
    "SELECT obs_id, DISTANCE(POINT('ICRS', s_ra, s_dec), POINT('ICRS', 1, 2)) AS d, "
    "DISTANCE(s_ra, s_dec, 1, 2) AS d21 FROM ivoa.ObsCore",
    "SELECT obs_id FROM ivoa.ObsCore WHERE obs_id IN (SELECT obs_id FROM hst.observations "
    "WHERE proposal_cycle > 5)",
    "SELECT ABS(s_ra), CEILING(s_dec), DEGREES(PI()), EXP(1), FLOOR(2.5), LOG(2), LOG10(2), "
    "MOD(7, 3), POWER(2, 3), RADIANS(180), SQRT(2), ROUND(s_ra, 2), TRUNCATE(s_ra, 1), "
    "SIN(1), COS(1), TAN(1), COT(1), ASIN(0.5), ACOS(0.5), ATAN(1), ATAN2(1, 2), RAND(), "
    "UPPER(obs_id), LOWER(obs_id), obs_id || '-x' FROM ivoa.ObsCore -- a comment",
    "SELECT obs_id FROM ivoa.ObsCore WHERE target_name ILIKE 'demo%' OR NOT (s_ra <> 3)",
    "select top 3 OBS_ID from IVOA.OBSCORE",
    # the similarity functions
    "SELECT TOP 20 obs_id, vo_clip_similarity('barred spiral galaxy') AS similarity "
    "FROM ivoa.ObsCore WHERE instrument_name LIKE 'ACS%' ORDER BY similarity DESC",
    "SELECT TOP 5 o.obs_id FROM ivoa.ObsCore o JOIN hst.observations h USING (obs_id) "
    "WHERE vo_clip_similarity(h.obs_publisher_did, 'nebula') > 0.2 "
    "ORDER BY vo_clip_similarity_to(o.obs_id, 'obs001') DESC",
]


@pytest.mark.parametrize("adql", ACCEPTED)
def test_accepted_queries_translate_to_sql_sqlite_can_prepare(adql):
    translation = translate(adql)
    db = _schema_only_database()
    db.execute(f"EXPLAIN {translation.sql}")
    if translation.restricted_sql:
        db.execute(f"EXPLAIN {translation.restricted_sql}", ("[1, 2]",))


REFUSED = [
    ("", "empty"),
    ("   ", "empty"),
    ("DUFF QUERY", "expected a SELECT"),
    ("SELECT FROM WHERE", "syntax error"),
    ("SELECT 'unterminated FROM ivoa.ObsCore", "syntax error"),
    ("SELECT * FROM ivoa.nothing", "unknown table 'ivoa.nothing'"),
    ("SELECT nothing FROM ivoa.ObsCore", "unknown column 'nothing'"),
    ('SELECT "S_RA" FROM ivoa.ObsCore', "unknown column 'S_RA'"),
    ("SELECT * FROM ivoa.ObsCore; DROP TABLE observations", "2 statements"),
    ("DROP TABLE observations", "expected a SELECT"),
    ("SELECT * FROM sqlite_master", "unknown table 'sqlite_master'"),
    ("SELECT * FROM main.observations", "unknown table 'main.observations'"),
    ("SELECT load_extension('/tmp/x.so') FROM ivoa.ObsCore", "load_extension is not supported"),
    ("SELECT readfile('/etc/passwd') FROM ivoa.ObsCore", "readfile is not supported"),
    ("SELECT * FROM ivoa.ObsCore WHERE vo_clip_score(0, 1) > 0", "vo_clip_score is not supported"),
    ("SELECT AREA(CIRCLE('ICRS', 1, 2, 3)) FROM ivoa.ObsCore", "AREA is not supported"),
    ("SELECT CAST(s_ra AS INTEGER) FROM ivoa.ObsCore", "CAST is not supported"),
    ("SELECT obs_id FROM ivoa.ObsCore UNION SELECT obs_id FROM hst.observations", "UNION"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "WITH is not supported"),
    ("SELECT ? FROM ivoa.ObsCore", "'?' parameter"),
    ("SELECT * FROM ivoa.ObsCore LIMIT 5", "LIMIT is not ADQL"),
    ("SELECT obs_id FROM ivoa.ObsCore WHERE CONTAINS(POINT('GALACTIC', 1, 2), "
     "CIRCLE(1, 2, 3)) = 1", "coordinate system 'GALACTIC'"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM ivoa.ObsCore", "nested too deeply"),
    ("SELECT POINT('ICRS', s_ra, s_dec) FROM ivoa.ObsCore", "selecting a POINT"),
    ("SELECT * FROM ivoa.ObsCore WHERE 1=CONTAINS(POINT(1, 2), POLYGON(1, 2, 3, 4))",
     "three vertices"),
    ("SELECT SQRT(1, 2) FROM ivoa.ObsCore", "SQRT takes 1 argument(s), not 2"),
    ("SELECT vo_clip_similarity(s_ra, 'x') FROM ivoa.ObsCore", "first argument must be"),
    ("SELECT vo_clip_similarity(obs_id) FROM ivoa.ObsCore", "in quotes"),
    ("SELECT vo_clip_similarity('') FROM ivoa.ObsCore", "in quotes"),
    ("SELECT vo_clip_similarity('x') FROM TAP_SCHEMA.tables", "needs ivoa.ObsCore"),
    ("SELECT " + "s_ra + " * 20_000 + "1 FROM ivoa.ObsCore", "characters long"),
]


@pytest.mark.parametrize("adql, needle", REFUSED)
def test_refused_queries_say_why(adql, needle):
    with pytest.raises(UsageFault) as caught:
        translate(adql)
    assert needle in str(caught.value)
    assert "\x1b[" not in str(caught.value)  # no terminal colour codes from the parser
    assert caught.value.parameter == "QUERY"


NUMERIC = sorted(name for name, f in FUNCTIONS.items()
                 if (f.kind == "math" and f.max_args > 0) or name in ("SUM", "AVG"))


@pytest.mark.parametrize("name", NUMERIC)
@pytest.mark.parametrize("text", ["obs_id", "o.target_name", "'12'", "UPPER(obs_id)",
                                  "(obs_id || 'x')"])
def test_a_string_given_to_a_numeric_function_is_refused(name, text):
    arguments = [text] + ["1"] * (max(FUNCTIONS[name].min_args, 1) - 1)
    with pytest.raises(UsageFault, match=f"{name} takes numeric arguments") as caught:
        translate(f"SELECT {name}({', '.join(arguments)}) FROM ivoa.ObsCore AS o")
    assert caught.value.parameter == "QUERY"


def _concatenated(levels: int) -> str:
    """obs_id concatenated 4^levels times, through nested derived tables."""
    query = "SELECT obs_id AS s FROM ivoa.ObsCore"
    for level in range(levels):
        query = f"SELECT s || s || s || s AS s FROM ({query}) AS t{level}"
    return query


def _or_chain(terms: int) -> str:
    return "SELECT obs_id FROM ivoa.ObsCore WHERE " + " OR ".join(
        f"s_ra = {i}" for i in range(terms))


@pytest.mark.parametrize("adql, limits, limit", [
    ("SELECT obs_id FROM ivoa.ObsCore WHERE obs_id = '" + "x" * 200 + "'",
     TapLimits(query_max_length=100), "query_max_length"),
    (_or_chain(300), TapLimits(), "query_max_depth"),
    (_or_chain(40), TapLimits(query_max_depth=30), "query_max_depth"),
    ("SELECT obs_id FROM ivoa.ObsCore WHERE s_ra IN ("
     + ",".join(str(i) for i in range(12_000)) + ")", TapLimits(), "query_max_nodes"),
    ("SELECT " + ", ".join(["*"] * 200) + " FROM ivoa.ObsCore", TapLimits(), "query_max_nodes"),
    ("SELECT " + "(" * 3000 + "1" + ")" * 3000 + " FROM ivoa.ObsCore", TapLimits(),
     "query_max_depth"),
    (_concatenated(levels=7), TapLimits(), "query_max_nodes"),  # 4^7 copies of obs_id
    ("SELECT TOP 1 obs_id FROM ivoa.ObsCore ORDER BY "
     + " + ".join(f"vo_clip_similarity('text {i}')" for i in range(11)), TapLimits(),
     "query_max_texts"),
    ("SELECT TOP 1 obs_id FROM ivoa.ObsCore ORDER BY "
     + " + ".join("vo_clip_similarity_to('obs001')" for _ in range(51)), TapLimits(),
     "query_max_similarities"),
])
def test_queries_beyond_a_limit_are_refused_naming_it(adql, limits, limit):
    with pytest.raises(LimitFault) as caught:
        translate(adql, limits)
    assert caught.value.limit == limit and limit in str(caught.value)
    assert caught.value.parameter == "QUERY" and caught.value.status == 400


def test_queries_within_the_limits_translate():
    assert translate(_or_chain(200)).sql.count(" OR ") == 199
    assert translate("SELECT obs_id FROM ivoa.ObsCore WHERE obs_id IN ("
                     + ", ".join(f"'o{i}'" for i in range(4000)) + ")")
    assert len(translate("SELECT TOP 1 obs_id FROM ivoa.ObsCore ORDER BY " + " + ".join(
        f"vo_clip_similarity('text {i % 10}')" for i in range(50))).similarities) == 50
    assert translate(_concatenated(levels=5))  # 4^5 copies: within query_max_nodes
    joined = translate("SELECT x.a, y.b FROM (SELECT obs_id AS a, s_ra + s_dec AS b FROM "
                       "ivoa.ObsCore) AS x JOIN (SELECT obs_id, proposal_cycle * 2 AS b FROM "
                       "hst.observations) AS y ON x.a = y.obs_id WHERE x.b > y.b")
    assert [c.name for c in joined.columns] == ["a", "b"]
    star = translate("SELECT " + ", ".join(["*"] * 20) + " FROM ivoa.ObsCore")
    assert len(star.columns) == 20 * 30


def test_select_star_follows_the_published_column_order():
    from vo_clip.vo.schema import published_tables

    obscore = published_tables()[0]
    names = [c.name for c in translate("SELECT * FROM ivoa.ObsCore").columns]
    assert names == [c.name for c in obscore.columns]


def test_result_columns_are_named_by_alias_column_or_function_and_unique():
    columns = translate("SELECT obs_id, obs_id, s_ra AS ra, COUNT(*), s_ra + 1, "
                        "vo_clip_similarity('x') FROM ivoa.ObsCore GROUP BY obs_id, s_ra").columns
    assert [c.name for c in columns] == ["obs_id", "obs_id_2", "ra", "count", "expr",
                                         "vo_clip_similarity"]
    assert columns[2].column.unit == "deg" and columns[2].column.ucd == "pos.eq.ra"
    assert columns[3].column.datatype == "long"
    assert columns[5].column.datatype == "double"


def test_ordering_by_similarity_with_a_limit_is_marked_for_candidate_restriction():
    ranked = translate("SELECT TOP 5 obs_id, vo_clip_similarity('x') AS s FROM ivoa.ObsCore "
                       "WHERE s_dec > 0 ORDER BY s DESC")
    assert ranked.ranking.descending and ranked.ranking.slot == 0
    assert "json_each(?)" in ranked.restricted_sql.lower()
    assert ranked.top == 5 and "LIMIT" not in ranked.sql.upper()
    grouped = translate("SELECT instrument_name, MAX(vo_clip_similarity('x')) AS s "
                        "FROM ivoa.ObsCore GROUP BY instrument_name ORDER BY s DESC")
    assert grouped.ranking is None
    joined = translate("SELECT TOP 3 o.obs_id FROM ivoa.ObsCore o JOIN hst.observations h "
                       "USING (obs_id) ORDER BY vo_clip_similarity(h.obs_id, 'x')")
    assert joined.ranking is None  # bound to the joined table: restricted SQL would differ


def test_the_cone_constraint_becomes_an_indexable_band():
    sql = translate("SELECT obs_id FROM ivoa.ObsCore WHERE "
                    "1=CONTAINS(POINT('ICRS', s_ra, s_dec), CIRCLE('ICRS', 10, 20, 0.5))").sql
    assert "BETWEEN" in sql and "vo_clip_angdist" in sql.lower()
    db = _schema_only_database(with_index=True)
    plan = " ".join(str(row) for row in db.execute(f"EXPLAIN QUERY PLAN {sql}"))
    assert "observations_s_dec" in plan


def test_similarity_arguments_become_slots():
    translation = translate("SELECT vo_clip_similarity('a'), vo_clip_similarity_to("
                            "'ivo://example.org/vo_clip?obs001') FROM ivoa.ObsCore")
    assert [(s.kind, s.argument) for s in translation.similarities] == [
        ("text", "a"), ("observation", "obs001")]


def _schema_only_database(with_index: bool = False) -> sqlite3.Connection:
    """An empty catalog behind the SQLite backend (its views, functions and sandbox),
    to prepare SQL against."""
    import tempfile
    from pathlib import Path

    from vo_clip.archive.columns import all_columns
    from vo_clip.search.backends.sqlite import SqliteBackend
    from vo_clip.vo.schema import published_tables
    from vo_clip.vo.tap_schema import tap_schema_rows

    path = Path(tempfile.mkdtemp(prefix="vo_clip_adql_")) / "catalog.sqlite"
    with sqlite3.connect(path) as db:
        columns = ", ".join(f'"{c.name}"' for c in all_columns())
        db.execute(f"CREATE TABLE observations (row_index INTEGER PRIMARY KEY, {columns})")
        if with_index:
            db.execute("CREATE INDEX observations_s_dec ON observations(s_dec)")
    db.close()
    tables = published_tables()
    backend = SqliteBackend(path, authority="example.org", tables=tables,
                            tap_schema_rows=tap_schema_rows(tables), string_max_bytes=10**6)
    connection, _ = backend._connection()
    return connection


# -- a query's texts as parameters of a cached template -----------------------------------

TEMPLATED = [
    "SELECT TOP 100 obs_id, vo_clip_similarity('spiral galaxy') AS s FROM ivoa.ObsCore "
    "ORDER BY s DESC",
    "SELECT TOP 9 obs_id, VO_CLIP_SIMILARITY( ' it''s a ring ' ) AS s FROM ivoa.ObsCore "
    "ORDER BY s",
    # equal texts share a slot's text; the count of distinct texts is what is limited
    "SELECT TOP 5 obs_id, vo_clip_similarity('a') AS s, vo_clip_similarity('a') AS t, "
    "vo_clip_similarity('b') AS u FROM ivoa.ObsCore ORDER BY s DESC",
    # the same words as a plain literal stay in the SQL; the column named by the call
    "SELECT TOP 5 obs_id, vo_clip_similarity('spiral') FROM ivoa.ObsCore "
    "WHERE target_name = 'spiral' ORDER BY 2 DESC",
    "SELECT TOP 5 obs_id, vo_clip_similarity('x') AS s FROM ivoa.ObsCore "
    "WHERE obs_id = 'vo_clip_similarity(''y'')' ORDER BY s",
    "SELECT TOP 5 obs_id, vo_clip_similarity('x') AS s, "
    "vo_clip_similarity_to('hst_1') AS t FROM ivoa.ObsCore ORDER BY s",
]
#: Queries whose similarity text is not a template's parameter, and their errors.
NOT_TEMPLATED = [
    "SELECT TOP 5 obs_id FROM ivoa.ObsCore -- vo_clip_similarity('x')\n",
    "SELECT TOP 5 obs_id, vo_clip_similarity('   ') AS s FROM ivoa.ObsCore ORDER BY s",
    "SELECT TOP 5 obs_id, vo_clip_similarity('x') AS s FROM ivoa.ObsCore ORDER BY nope",
]


def _untemplated(adql):
    from vo_clip.vo import adql as module

    return module._translate_cached.__wrapped__(adql, TapLimits(), module.SQLITE)


@pytest.mark.parametrize("adql", TEMPLATED)
def test_a_new_text_reuses_the_translation_of_its_template(adql):
    """Each new text re-translated took 6 ms of a 60 ms query; from the template, none."""
    from vo_clip.vo import adql as module

    expected = _untemplated(adql)
    before = module._translate_cached.cache_info()
    got = translate(adql)
    assert got == expected  # the query's own translation: SQL, columns, similarities
    other = adql.replace("'spiral galaxy'", "'a ring galaxy'").replace("'x'", "'z'")
    assert translate(other) == _untemplated(other)
    assert module._translate_cached.cache_info().hits > before.hits
    assert module._translate_cached.cache_info().misses <= before.misses + 1


@pytest.mark.parametrize("adql", NOT_TEMPLATED)
def test_texts_outside_a_similarity_call_are_translated_as_they_are(adql):
    from vo_clip.vo import adql as module

    assert module._translate_as_template(adql, TapLimits(), module.SQLITE) is None
    try:
        expected = _untemplated(adql)
    except UsageFault as fault:
        with pytest.raises(UsageFault) as raised:
            translate(adql)
        assert str(raised.value) == str(fault)
    else:
        assert translate(adql) == expected


def test_a_template_keeps_the_limit_on_distinct_texts():
    limits = TapLimits(query_max_texts=2)
    calls = ", ".join(f"vo_clip_similarity('{t}') AS s{i}" for i, t in enumerate("aab"))
    translate(f"SELECT TOP 5 {calls} FROM ivoa.ObsCore", limits=TapLimits(query_max_texts=2))
    calls = ", ".join(f"vo_clip_similarity('{t}') AS s{i}" for i, t in enumerate("abc"))
    with pytest.raises(LimitFault, match="3 different texts"):
        translate(f"SELECT TOP 5 {calls} FROM ivoa.ObsCore", limits=limits)
