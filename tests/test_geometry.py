"""ADQL geometry in SQLite: STC-S parsing, the spherical predicates, and the SQL functions."""

from __future__ import annotations

import math
import sqlite3
import threading

import numpy as np
import pytest

from vo_clip.search.geometry import (
    Box,
    Circle,
    GeometryError,
    Point,
    Polygon,
    clear_error,
    last_error,
    parse_region,
)
from vo_clip.search.backends.sqlite import register_functions

ARCMIN = 1.0 / 60.0


@pytest.fixture
def db():
    connection = sqlite3.connect(":memory:")
    register_functions(connection, None)
    clear_error()
    yield connection
    connection.close()


def one(db, sql, *params):
    return db.execute("SELECT " + sql, params).fetchone()[0]


def square(ra, dec, half):
    """Counter-clockwise (on the sky) square of half-size ``half`` degrees about (ra, dec)."""
    return Polygon(((ra - half, dec - half), (ra + half, dec - half),
                    (ra + half, dec + half), (ra - half, dec + half)))


def deproject(ra0, dec0, xi, eta):
    """Inverse gnomonic projection, degrees (an independent implementation for the tests)."""
    ra0, dec0, xi, eta = map(math.radians, (ra0, dec0, xi, eta))
    d = math.cos(dec0) - eta * math.sin(dec0)
    ra = ra0 + math.atan2(xi, d)
    dec = math.atan2(math.sin(dec0) + eta * math.cos(dec0), math.hypot(xi, d))
    return math.degrees(ra) % 360.0, math.degrees(dec)


def footprint(ra, dec, side_deg, angle_deg):
    """A square footprint of ``side_deg`` rotated by ``angle_deg``, like an HST aperture."""
    h = side_deg / 2.0
    c, s = math.cos(math.radians(angle_deg)), math.sin(math.radians(angle_deg))
    corners = [(-h, -h), (h, -h), (h, h), (-h, h)]
    return Polygon(tuple(deproject(ra, dec, c * x - s * y, s * x + c * y) for x, y in corners))


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, expected", [
    ("Position ICRS 10 20", Point(10, 20)),
    ("position icrs 10 20", Point(10, 20)),
    ("POSITION 10 20", Point(10, 20)),
    ("Position FK5 -10 20", Point(350, 20)),
    ("Circle J2000 10 20 0.5", Circle(10, 20, 0.5)),
    ("circle UNKNOWNFrame 10 20 0.5", Circle(10, 20, 0.5)),
    ("Box ICRS 10 20 1 2", Box(10, 20, 1, 2)),
    ("Polygon ICRS 10 20 11 20 11 21", Polygon(((10, 20), (11, 20), (11, 21)))),
    ("  Polygon\tICRS 10 20  11 20 11 21 10 20 ", Polygon(((10, 20), (11, 20), (11, 21)))),
])
def test_parse_accepts_stcs_shapes(text, expected):
    assert parse_region(text) == expected


@pytest.mark.parametrize("region", [
    Point(10.25, -20.5), Circle(359.9, 89.0, 1.5), Box(0.5, -30.0, 2.0, 1.0),
    Polygon(((1.0, 2.0), (3.0, 2.5), (2.0, 4.0))),
])
def test_stcs_round_trip(region):
    assert parse_region(region.to_stcs()) == region


@pytest.mark.parametrize("text, words", [
    ("Circle GALACTIC 10 20 1", "'GALACTIC'"),
    ("Ellipse ICRS 10 20 1 2 3", "not an STC-S"),
    ("", "not an STC-S"),
    ("Circle ICRS 10 20", "needs 3 numbers"),
    ("Position ICRS 10 20 30", "needs 2 numbers"),
    ("Polygon ICRS 10 20 11 20", "at least 3"),
    ("Polygon ICRS 10 20 11 20 11", "at least 3"),
    ("Polygon ICRS 10 20 11 20 10 20", "at least 3 distinct"),
    ("Circle ICRS 10 nan 1", "non-finite"),
    ("Circle ICRS 10 20 -1", "radius"),
    ("Circle ICRS 10 20 181", "radius"),
    ("Position ICRS 10 90.5", "90.5"),
    ("Union ICRS (Circle 1 2 3 Circle 4 5 6)", "not an STC-S"),
])
def test_parse_rejects_bad_stcs(text, words):
    with pytest.raises(GeometryError, match=None) as info:
        parse_region(text)
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)


def test_parse_rejects_non_strings():
    with pytest.raises(GeometryError, match="STC-S string"):
        parse_region(12)
    with pytest.raises(GeometryError, match="STC-S string"):
        parse_region(["Position", 1, 2])


def test_polygon_larger_than_a_hemisphere_is_refused():
    with pytest.raises(GeometryError, match="hemisphere"):
        Polygon(((0, 0), (120, 0), (240, 0)))
    with pytest.raises(GeometryError, match="hemisphere"):
        Polygon(((0, -10), (120, -10), (240, -10), (0, 80)))


def test_point_normalises_ra_and_checks_dec():
    assert Point(-10, 5).ra == 350.0
    assert Point(720.5, 5).ra == 0.5
    with pytest.raises(GeometryError, match="-90.5"):
        Point(0, -90.5)
    with pytest.raises(GeometryError, match="number"):
        Point("ten", 5)


# --------------------------------------------------------------------------- circles


def test_point_in_circle():
    c = Circle(10, 20, 1)
    assert c.contains(Point(10, 20))
    assert c.contains(Point(10, 20.999))
    assert not c.contains(Point(10, 21.001))
    assert c.contains(Point(10, 21))  # the boundary is inside
    # one degree of RA at dec 20 is cos(20) degrees of arc
    assert c.contains(Point(11.05, 20))
    assert not c.contains(Point(11.1, 20.0))


def test_circle_across_ra_zero():
    c = Circle(359.9, 0.0, 0.2)
    assert c.contains(Point(0.05, 0.0))
    assert c.contains(Point(359.75, 0.1))
    assert not c.contains(Point(0.2, 0.0))
    assert Circle(0.05, 0.0, 0.2).contains(Point(359.9, 0.0))


def test_circle_at_the_poles():
    north = Circle(0, 90, 1)
    assert all(north.contains(Point(ra, 89.01)) for ra in range(0, 360, 15))
    assert not any(north.contains(Point(ra, 88.99)) for ra in range(0, 360, 15))
    assert north.contains(Point(123, 90))
    south = Circle(200, -90, 5)
    assert south.contains(Point(17, -85.5)) and not south.contains(Point(17, -84.5))


def test_far_away_and_antipodal_points_are_outside():
    c = Circle(10, 20, 30)
    assert not c.contains(Point(190, -20))
    assert not c.contains(Point(100, 20))
    assert Circle(10, 20, 180).contains(Point(190, -20))


def test_circle_contains_circle():
    assert Circle(10, 20, 1).contains(Circle(10, 20.5, 0.5))
    assert not Circle(10, 20, 1).contains(Circle(10, 20.5, 0.51))
    assert not Circle(10, 20, 1).contains(Circle(10, 20, 1.01))
    assert Circle(359.5, 0, 2).contains(Circle(0.5, 0, 0.5))


def test_circles_intersect():
    assert Circle(10, 0, 1).intersects(Circle(12, 0, 1))  # touching
    assert not Circle(10, 0, 1).intersects(Circle(12.01, 0, 1))
    assert Circle(359, 0, 1).intersects(Circle(1, 0, 1.01))
    assert Circle(0, 89, 1).intersects(Circle(180, 89, 1))  # across the pole
    assert not Circle(0, 89, 0.9).intersects(Circle(180, 89, 0.9))


# --------------------------------------------------------------------------- polygons


def test_point_in_polygon_either_vertex_order():
    ccw = square(10, 20, 1)
    cw = Polygon(tuple(reversed(ccw.vertices)))
    for p, inside in [(Point(10, 20), True), (Point(10.9, 20.9), True), (Point(11.2, 20), False),
                      (Point(10, 18.9), False), (Point(190, -20), False), (Point(100, 20), False)]:
        assert ccw.contains(p) is inside
        assert cw.contains(p) is inside


def test_polygon_edges_are_great_circles():
    # Four vertices on the parallel dec=60: each edge bulges towards the pole, to
    # dec 67.8 half-way, so (45, 65) lies outside though it is above dec 60.
    cap = Polygon(((0, 60), (90, 60), (180, 60), (270, 60)))
    assert cap.contains(Point(0, 90))
    assert cap.contains(Point(0, 61))
    assert cap.contains(Point(45, 68))
    assert not cap.contains(Point(45, 65))
    assert not cap.contains(Point(0, 59))


def test_polygon_across_ra_zero():
    p = Polygon(((359.5, -0.5), (0.5, -0.5), (0.5, 0.5), (359.5, 0.5)))
    assert p.contains(Point(0, 0)) and p.contains(Point(359.9, 0.1))
    assert not p.contains(Point(1, 0)) and not p.contains(Point(180, 0))


def test_polygon_around_the_south_pole():
    # the edge from (0, -80) to (120, -80) passes (60, -84.96)
    p = Polygon(((0, -80), (120, -80), (240, -80)))
    assert p.contains(Point(77, -90)) and p.contains(Point(0, -80.5))
    assert p.contains(Point(60, -85.0)) and not p.contains(Point(60, -84.9))
    assert not p.contains(Point(60, -74))


def test_point_on_a_tiny_hst_like_footprint():
    fp = footprint(150.1, 2.2, 3 * ARCMIN, 33.0)
    assert fp.contains(Point(150.1, 2.2))
    # 1.4 arcmin from the centre fits in any orientation of a 3-arcmin square; 2.2 never does
    for angle in range(0, 360, 30):
        ra, dec = deproject(150.1, 2.2, 1.4 * ARCMIN * math.sin(math.radians(angle)),
                            1.4 * ARCMIN * math.cos(math.radians(angle)))
        assert fp.contains(Point(ra, dec))
        ra, dec = deproject(150.1, 2.2, 2.2 * ARCMIN * math.sin(math.radians(angle)),
                            2.2 * ARCMIN * math.cos(math.radians(angle)))
        assert not fp.contains(Point(ra, dec))
    # a vertex itself is on the boundary, hence inside
    assert fp.contains(Point(*fp.vertices[2]))
    assert not fp.contains(Point(330.1, -2.2))


def test_point_in_convex_polygon_matches_the_half_space_test():
    """For a convex polygon, inside means on the inner side of every edge's great circle."""
    rng = np.random.default_rng(7)
    polygons = [footprint(0.0, 0.0, 4.0, 20.0), footprint(210.0, 75.0, 10.0, -35.0),
                footprint(45.0, -89.0, 1.0, 10.0)]
    for poly in polygons:
        vecs = [np.array(v) for v in poly.vecs]
        normals = [np.cross(a, b) for a, b in zip(vecs, vecs[1:] + vecs[:1])]
        centre = np.array(poly.centre)
        sign = np.sign(normals[0] @ centre)
        reversed_poly = Polygon(tuple(reversed(poly.vertices)))
        for _ in range(400):
            ra = (poly.vertices[0][0] + rng.uniform(-15, 15)) % 360
            dec = float(np.clip(poly.vertices[0][1] + rng.uniform(-8, 8), -90, 90))
            p = Point(ra, dec)
            v = np.array(p.vec)
            expected = bool(all(sign * (n @ v) > 0 for n in normals) and v @ centre > 0)
            assert poly.contains(p) is expected
            assert reversed_poly.contains(p) is expected


def test_polygon_contains_circle_and_polygon():
    big = square(10, 20, 2)
    assert big.contains(Circle(10, 20, 1.5))
    assert not big.contains(Circle(10, 20, 2.5))
    assert not big.contains(Circle(11.5, 20, 1))
    assert big.contains(square(10.5, 20.5, 1))
    assert not big.contains(square(11.5, 20, 1))
    assert big.contains(big)
    # a triangle whose vertices are inside a concave outline but whose edge crosses its notch
    notched = Polygon(((0, 0), (4, 0), (4, 4), (2, 1), (0, 4)))
    assert notched.contains(Point(1, 2)) and not notched.contains(Point(2, 3))
    assert not notched.contains(Polygon(((0.5, 3), (3.5, 3), (2, 0.5))))
    assert notched.contains(Polygon(((0.5, 0.5), (3.5, 0.5), (2, 0.8))))


def test_circle_contains_polygon():
    assert Circle(10, 20, 2).contains(square(10, 20, 1))
    assert not Circle(10, 20, 1.2).contains(square(10, 20, 1))  # corners stick out
    assert Circle(0, 0, 170).contains(square(5, 5, 1))
    assert not Circle(0, 0, 170).contains(square(180, 0, 1))
    # a cap wider than a hemisphere has a hole about its antipode (180, 0) of radius 1:
    hole = Circle(0, 0, 179)
    assert not hole.contains(square(180, 0, 3))  # vertices outside the hole, hole inside
    thin = Polygon(((175, 0.5), (185, 0.5), (185, 3)))
    assert all(hole.contains(Point(*v)) for v in thin.vertices)
    assert not hole.contains(thin)  # its lower edge runs through the hole
    assert hole.contains(Polygon(((175, 1.5), (185, 1.5), (185, 3))))


def test_circle_polygon_intersection_uses_edge_arcs():
    rect = Polygon(((0, 0), (10, 0), (10, 5), (0, 5)))
    assert rect.intersects(Circle(5, -0.5, 0.6))  # crosses the middle of an edge
    assert not rect.intersects(Circle(5, -0.5, 0.4))
    assert Circle(5, -0.5, 0.6).intersects(rect)
    # beyond the end of an edge the nearest point is the vertex (10, 0), 2 degrees away
    assert not rect.intersects(Circle(12, 0, 1.9))
    assert rect.intersects(Circle(12, 0, 2.1))
    assert rect.intersects(Circle(5, 2.5, 0.1))  # inside
    assert rect.intersects(Circle(5, 2.5, 40))  # all around
    assert not rect.intersects(Circle(185, -2.5, 30))
    assert square(0, 88, 1).intersects(Circle(180, 90, 1.1))  # near the pole


def test_polygons_intersect():
    a = square(10, 20, 1)
    assert a.intersects(square(11.5, 20.5, 1))  # overlapping corners
    assert not a.intersects(square(12.5, 20, 0.4))
    assert a.intersects(square(10, 20, 0.1))  # one inside the other
    assert square(10, 20, 0.1).intersects(a)
    # a plus sign: no vertex of either lies in the other, but the edges cross
    wide = Polygon(((5, 19.8), (15, 19.8), (15, 20.2), (5, 20.2)))
    tall = Polygon(((9.8, 15), (10.2, 15), (10.2, 25), (9.8, 25)))
    assert not any(tall.contains(Point(*v)) for v in wide.vertices)
    assert not any(wide.contains(Point(*v)) for v in tall.vertices)
    assert wide.intersects(tall) and tall.intersects(wide)
    # across RA 0
    assert square(359.5, 0, 0.6).intersects(square(0.5, 0, 0.6))
    assert not square(359.5, 0, 0.4).intersects(square(0.5, 0, 0.4))
    assert not a.intersects(square(190, -20, 1))


def test_point_intersections_are_containment():
    c, p = Circle(10, 20, 1), square(10, 20, 1)
    assert Point(10, 20.5).intersects(c) and c.intersects(Point(10, 20.5))
    assert not Point(10, 22).intersects(p) and not p.intersects(Point(10, 22))
    assert Point(10, 20).intersects(Point(10, 20)) and not Point(10, 20).intersects(Point(10, 21))
    assert Point(10, 20).contains(Point(10, 20)) and not Point(10, 20).contains(c)


# --------------------------------------------------------------------------- boxes


def test_box_is_the_adql_polygon_approximation():
    box = Box(30, 60, 2, 1)  # half-width of 1 degree of arc is 2 degrees of RA at dec 60
    assert box.polygon.vertices[0] == pytest.approx((28.0, 59.5))
    assert box.polygon.vertices[2] == pytest.approx((32.0, 60.5))
    assert box.contains(Point(31.9, 60)) and not box.contains(Point(32.1, 60))
    # the top edge is a great circle: it bulges poleward, to dec 60.515 at the central RA
    assert box.contains(Point(30, 60.514)) and not box.contains(Point(30, 60.516))
    assert box.contains(Point(31.9, 60.49)) and not box.contains(Point(31.9, 60.51))
    assert Box(0, 0, 1, 1).contains(Point(359.6, 0.4))
    assert Box(0, 0, 1, 1).intersects(Circle(1, 0, 0.55))


@pytest.mark.parametrize("args, words", [
    ((0, 89, 1, 3), "pole"), ((0, 0, 0, 1), "width"), ((0, 0, 1, 200), "height"),
    ((0, 80, 60, 1), "hemisphere"),
])
def test_bad_boxes(args, words):
    with pytest.raises(GeometryError, match=words):
        Box(*args)


# --------------------------------------------------------------------------- distances


def test_distances_match_astropy(db):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    rng = np.random.default_rng(42)
    n = 300
    ra1, ra2 = rng.uniform(0, 360, n), rng.uniform(0, 360, n)
    dec1 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    dec2 = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    # and some close pairs, where cancellation would show
    ra2[:50] = ra1[:50] + rng.normal(0, 1e-4, 50)
    dec2[:50] = np.clip(dec1[:50] + rng.normal(0, 1e-4, 50), -90, 90)
    expected = SkyCoord(ra1 * u.deg, dec1 * u.deg).separation(
        SkyCoord(ra2 * u.deg, dec2 * u.deg)).deg
    for args, want in zip(zip(ra1, dec1, ra2 % 360, dec2), expected):
        args = tuple(float(x) for x in args)
        assert one(db, "vo_clip_angdist(?, ?, ?, ?)", *args) == pytest.approx(want, abs=1e-9)
        got = one(db, "vo_clip_distance(vo_clip_point(?, ?), vo_clip_point(?, ?))", *args)
        assert got == pytest.approx(want, abs=1e-9)


# --------------------------------------------------------------------------- SQL


def test_sql_contains(db):
    assert one(db, "vo_clip_contains(vo_clip_point(10, 20), vo_clip_circle(10, 20.05, 0.1))") == 1
    assert one(db, "vo_clip_contains(vo_clip_point(10, 20), vo_clip_circle(10, 20.5, 0.1))") == 0
    assert one(db, "vo_clip_contains(vo_clip_point(0.05, 0), vo_clip_circle(359.9, 0, 0.2))") == 1
    assert one(db, "vo_clip_contains(vo_clip_point(10, 20), vo_clip_box(10, 20, 1, 1))") == 1
    assert one(db, "vo_clip_contains(vo_clip_point(10, 21), vo_clip_box(10, 20, 1, 1))") == 0
    assert one(db, "vo_clip_contains(vo_clip_point(10.5, 20.5), "
                   "vo_clip_polygon(10, 20, 11, 20, 11, 21, 10, 21))") == 1
    assert one(db, "vo_clip_contains(vo_clip_circle(10, 20, 0.1), vo_clip_circle(10, 20, 1))") == 1
    assert one(db, "vo_clip_contains(vo_clip_circle(10, 20, 1), vo_clip_circle(10, 20, 0.1))") == 0
    # a hand-written point string takes the general path
    assert one(db, "vo_clip_contains('position 10 20', vo_clip_circle(10, 20, 1))") == 1


def test_sql_constructors(db):
    assert one(db, "vo_clip_point(-10, 20)") == "Position ICRS 350.0 20.0"
    assert one(db, "vo_clip_circle(10, 20, 0.5)") == "Circle ICRS 10.0 20.0 0.5"
    assert one(db, "vo_clip_circle(vo_clip_point(10, 20), 0.5)") == "Circle ICRS 10.0 20.0 0.5"
    assert one(db, "vo_clip_box(10, 20, 1, 2)") == "Box ICRS 10.0 20.0 1.0 2.0"
    assert one(db, "vo_clip_box(vo_clip_point(10, 20), 1, 2)") == "Box ICRS 10.0 20.0 1.0 2.0"
    assert one(db, "vo_clip_polygon(1, 2, 3, 2, 3, 4)") == "Polygon ICRS 1.0 2.0 3.0 2.0 3.0 4.0"
    assert one(db, "vo_clip_polygon(vo_clip_point(1, 2), vo_clip_point(3, 2), "
                   "vo_clip_point(3, 4))") == "Polygon ICRS 1.0 2.0 3.0 2.0 3.0 4.0"


def test_sql_over_footprints(db):
    db.execute("CREATE TABLE obs (id INTEGER, s_ra REAL, s_dec REAL, s_region TEXT)")
    rows = [(1, 150.1, 2.2, footprint(150.1, 2.2, 3 * ARCMIN, 10).to_stcs()),
            (2, 150.2, 2.2, footprint(150.2, 2.2, 3 * ARCMIN, 50).to_stcs()),
            (3, 0.01, -5.0, "Polygon ICRS 359.9 -5.1 0.1 -5.1 0.1 -4.9 359.9 -4.9"),
            (4, 20.0, 89.95, "Circle ICRS 20.0 89.95 0.1"),
            (5, None, None, None)]
    db.executemany("INSERT INTO obs VALUES (?, ?, ?, ?)", rows)

    def ids(where, *params):
        return [r[0] for r in db.execute(f"SELECT id FROM obs WHERE {where} ORDER BY id", params)]

    assert ids("vo_clip_contains(vo_clip_point(150.1, 2.21), s_region) = 1") == [1]
    assert ids("vo_clip_contains(vo_clip_point(0, -5), s_region) = 1") == [3]
    assert ids("vo_clip_contains(vo_clip_point(200, 90), s_region) = 1") == [4]
    assert ids("vo_clip_intersects(s_region, vo_clip_circle(150.15, 2.2, 0.03)) = 1") == [1, 2]
    assert ids("vo_clip_intersects(vo_clip_circle(150.15, 2.2, 0.01), s_region) = 1") == []
    assert ids("vo_clip_contains(vo_clip_point(s_ra, s_dec), "
               "vo_clip_circle(?, ?, ?)) = 1", 150.0, 2.0, 0.5) == [1, 2]
    assert ids("vo_clip_contains(vo_clip_point(s_ra, s_dec), s_region) = 1") == [1, 2, 3, 4]
    assert ids("vo_clip_contains(vo_clip_point(s_ra, s_dec), s_region) IS NULL") == [5]
    assert ids("vo_clip_distance(vo_clip_point(s_ra, s_dec), vo_clip_point(150, 2)) < 0.3") == [1, 2]


@pytest.mark.parametrize("sql", [
    "vo_clip_point(NULL, 20)", "vo_clip_point(10, NULL)",
    "vo_clip_circle(10, 20, NULL)", "vo_clip_circle(NULL, 1)",
    "vo_clip_box(10, 20, NULL, 1)", "vo_clip_box(NULL, 1, 1)",
    "vo_clip_polygon(1, 2, 3, NULL, 3, 4)", "vo_clip_polygon(NULL)",
    "vo_clip_contains(NULL, vo_clip_circle(10, 20, 1))", "vo_clip_contains(vo_clip_point(1, 2), NULL)",
    "vo_clip_intersects(NULL, NULL)", "vo_clip_distance(vo_clip_point(1, 2), NULL)",
    "vo_clip_angdist(1, 2, NULL, 4)",
])
def test_sql_null_propagates(db, sql):
    assert one(db, sql) is None


@pytest.mark.parametrize("sql, words", [
    ("vo_clip_point(10, 95)", "95"),
    ("vo_clip_point('ten', 20)", "'ten'"),
    ("vo_clip_circle(10, 20, -1)", "-1.0"),
    ("vo_clip_circle(10, 20, 181)", "181"),
    ("vo_clip_circle(vo_clip_circle(10, 20, 1), 1)", "must be a point"),
    ("vo_clip_polygon(1, 2, 3, 4)", "at least 3"),
    ("vo_clip_polygon(1, 2, 3, 4, 5)", "at least 3"),
    ("vo_clip_polygon(vo_clip_point(1, 2), vo_clip_point(3, 4))", "at least 3"),
    ("vo_clip_polygon(1, 2, 3, 4, 5, 'x')", "'x'"),
    ("vo_clip_box(0, 89, 1, 3)", "pole"),
    ("vo_clip_contains(vo_clip_point(1, 2), 'Circle GALACTIC 1 2 3')", "GALACTIC"),
    ("vo_clip_contains(1, vo_clip_circle(1, 2, 3))", "STC-S region string"),
    ("vo_clip_intersects('Blob 1 2', vo_clip_circle(1, 2, 3))", "Blob"),
    ("vo_clip_distance(vo_clip_point(1, 2), vo_clip_circle(1, 2, 3))", "must be a point"),
    ("vo_clip_angdist(1, 2, 3, -91)", "-91"),
    ("vo_clip_angdist(1, 2, 'a', 3)", "'a'"),
])
def test_sql_bad_input_reports_the_reason(db, sql, words):
    assert last_error() is None
    with pytest.raises(sqlite3.OperationalError, match="user-defined function raised exception"):
        one(db, sql)
    assert words in last_error()
    clear_error()
    assert last_error() is None


def test_last_error_is_per_thread(db):
    with pytest.raises(sqlite3.OperationalError):
        one(db, "vo_clip_point(10, 95)")
    seen = []
    thread = threading.Thread(target=lambda: seen.append(last_error()))
    thread.start()
    thread.join()
    assert seen == [None]
    assert "95" in last_error()


def test_parsing_is_cached():
    text = "Circle ICRS 12.5 -30.25 0.75"
    assert parse_region(text) is parse_region(text)
