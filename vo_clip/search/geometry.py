"""ADQL geometry on the sphere, and its SQLite functions (Python user functions).

ADQL 2.0 §2.4 (and the geometry chapter of ADQL 2.1) gives TAP queries the region
constructors ``POINT``, ``CIRCLE``, ``BOX`` and ``POLYGON`` and the functions
``CONTAINS``, ``INTERSECTS`` and ``DISTANCE``. SQLite knows none of them, so the ADQL
translator emits calls of the ``vo_clip_*`` functions of :func:`sql_function`, which
the SQLite backend registers on its connections (PostgreSQL has pgsphere instead). A
geometry value travels through SQLite as an STC-S string (``Position ICRS ra dec``,
``Circle ICRS ra dec r``, ``Box ICRS ra dec width height``, ``Polygon ICRS ra1 dec1
...``): it is the form the ``s_region`` column of ObsCore already holds footprints in,
so a footprint column and a region literal are the same kind of value and need no
conversion.

The geometry is exact spherical geometry on unit vectors; angles are in degrees and
ICRS is the only frame (an STC-S ``FK5`` or ``J2000`` frame is read as ICRS: they
differ by less than 0.1 arcsec). Polygon edges are great-circle arcs. Polygons must be
smaller than a hemisphere: the inside of a polygon is the side of its edges that lies in the
hemisphere about its vertex centroid, so the order of the vertices (clockwise or
counter-clockwise) does not matter. Boundaries count as inside, within a tolerance of
about 2 micro-arcseconds that absorbs rounding.

Parsing is cached (:func:`parse_region`): a query such as ``CONTAINS(POINT(s_ra, s_dec),
CIRCLE(...))`` passes the same circle literal for every row.

SQLite turns an exception raised by a user function into an uninformative
``sqlite3.OperationalError``; the registered functions therefore also remember the
message of the last :class:`GeometryError` of the thread, for :func:`last_error`.
"""

from __future__ import annotations

import functools
import math
import threading
from dataclasses import dataclass, field


__all__ = [
    "Box",
    "Circle",
    "GeometryError",
    "Point",
    "Polygon",
    "Region",
    "angdist",
    "clear_error",
    "last_error",
    "parse_region",
    "sql_function",
]

#: Angular tolerance (radians, about 2 micro-arcseconds) on boundary comparisons.
_EPS = 1e-11

#: Tolerance on the triple products that place a point along an arc.
_ARC_TOL = 1e-15

_FRAMES = frozenset({"ICRS", "FK5", "J2000", "UNKNOWNFRAME"})

_state = threading.local()


class GeometryError(ValueError):
    """A geometry argument of the wrong type, out of range, or not parsable as STC-S."""


# --------------------------------------------------------------------------- vectors


def _vec(ra: float, dec: float) -> tuple[float, float, float]:
    """Unit vector of (ra, dec) in degrees."""
    a, d = math.radians(ra), math.radians(dec)
    cd = math.cos(d)
    return (cd * math.cos(a), cd * math.sin(a), math.sin(d))


def _dot(u, v) -> float:
    return u[0] * v[0] + u[1] * v[1] + u[2] * v[2]


def _cross(u, v) -> tuple[float, float, float]:
    return (u[1] * v[2] - u[2] * v[1], u[2] * v[0] - u[0] * v[2], u[0] * v[1] - u[1] * v[0])


def _norm(u) -> float:
    return math.sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2])


def _unit(u) -> tuple[float, float, float]:
    n = _norm(u)
    return (u[0] / n, u[1] / n, u[2] / n)


def _neg(u) -> tuple[float, float, float]:
    return (-u[0], -u[1], -u[2])


def _angle(u, v) -> float:
    """Angle in radians between unit vectors (atan2 form: accurate at all separations)."""
    return math.atan2(_norm(_cross(u, v)), _dot(u, v))


def _chord2(u, v) -> float:
    dx, dy, dz = u[0] - v[0], u[1] - v[1], u[2] - v[2]
    return dx * dx + dy * dy + dz * dz


def _chord2_of(angle: float) -> float:
    """Squared chord length of an angle in radians (clipped to half a turn)."""
    return (2.0 * math.sin(min(angle, math.pi) / 2.0)) ** 2


def _on_arc(x, a, b, n, tol: float = _ARC_TOL) -> bool:
    """Whether ``x`` (on, or projected onto, the great circle ``n`` of arc a->b) lies on the arc."""
    return _dot(_cross(a, x), n) >= -tol and _dot(_cross(x, b), n) >= -tol


def _arc_distance(p, a, b, n) -> float:
    """Angular distance (radians) from point ``p`` to the great-circle arc a->b of normal ``n``.

    If the projection of ``p`` onto the arc's great circle falls within the arc the
    distance is ``asin(|p.n|)``, otherwise it is the distance to the nearer endpoint.
    """
    s = _dot(p, n)
    q = (p[0] - s * n[0], p[1] - s * n[1], p[2] - s * n[2])
    if _on_arc(q, a, b, n, 0.0):
        return math.asin(min(1.0, abs(s)))
    return min(_angle(p, a), _angle(p, b))


def _arcs_meet(a, b, n1, c, d, n2, strict: bool = False) -> bool:
    """Whether the arcs a->b and c->d (normals ``n1``, ``n2``) share a point.

    With ``strict``, only a proper crossing counts: the meeting point lies inside both
    arcs, away from their endpoints, and the arcs are not on one great circle.
    """
    t = _cross(n1, n2)
    size = _norm(t)
    if size < 1e-14:  # one great circle: they meet where one holds an end of the other
        if strict:
            return False
        return any(abs(_dot(x, n)) < 1e-14 and _on_arc(x, e, f, n)
                   for x, e, f, n in ((c, a, b, n1), (d, a, b, n1), (a, c, d, n2), (b, c, d, n2)))
    t = (t[0] / size, t[1] / size, t[2] / size)
    tol = _ARC_TOL if strict else -_ARC_TOL
    for x in (t, _neg(t)):
        if (_dot(_cross(a, x), n1) > tol and _dot(_cross(x, b), n1) > tol
                and _dot(_cross(c, x), n2) > tol and _dot(_cross(x, d), n2) > tol):
            return True
    return False


# --------------------------------------------------------------------------- checks


def _fail(message: str) -> GeometryError:
    return GeometryError(message)


def _number(value, name: str) -> float:
    """``value`` as a finite float, or a GeometryError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(f"{name} must be a number, got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise _fail(f"{name} must be a finite number, got {value!r}.")
    return value


def _check_dec(dec: float, name: str = "dec") -> None:
    if not -90.0 <= dec <= 90.0:
        raise _fail(f"{name} must lie in [-90, 90] degrees, got {dec!r}.")


def _norm_ra(ra: float) -> float:
    ra = ra % 360.0
    return 0.0 if ra == 360.0 else ra


def _fmt(x: float) -> str:
    return repr(float(x))


# --------------------------------------------------------------------------- regions


class Region:
    """Base of the ADQL regions; all are immutable and hashable."""

    __slots__ = ()

    def contains(self, other: Region) -> bool:
        """Whether ``other`` lies entirely inside this region (boundary included).

        Parameters
        ----------
        other : Region
            The region tested; ADQL ``CONTAINS(a, b)`` is ``b.contains(a)``.

        Returns
        -------
        bool
        """
        outer, inner = _base(self), _base(other)
        return _CONTAINS[type(outer), type(inner)](outer, inner)

    def intersects(self, other: Region) -> bool:
        """Whether this region and ``other`` share at least one point (touching counts).

        Parameters
        ----------
        other : Region

        Returns
        -------
        bool
        """
        a, b = _base(self), _base(other)
        return _INTERSECTS[type(a), type(b)](a, b)

    def to_stcs(self) -> str:  # pragma: no cover - every subclass overrides
        """The region as an STC-S string in the ICRS frame."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class Point(Region):
    """A position on the sky (ADQL ``POINT``), degrees; ``ra`` is normalised to [0, 360).

    Parameters
    ----------
    ra, dec : float
        Right ascension and declination in degrees.

    Raises
    ------
    GeometryError
        If a coordinate is not a finite number or ``|dec| > 90``.
    """

    ra: float
    dec: float
    vec: tuple[float, float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        ra, dec = _number(self.ra, "ra"), _number(self.dec, "dec")
        _check_dec(dec)
        object.__setattr__(self, "ra", _norm_ra(ra))
        object.__setattr__(self, "dec", dec)
        object.__setattr__(self, "vec", _vec(ra, dec))

    def to_stcs(self) -> str:
        """``Position ICRS ra dec``."""
        return f"Position ICRS {_fmt(self.ra)} {_fmt(self.dec)}"


@dataclass(frozen=True, slots=True)
class Circle(Region):
    """A cone (ADQL ``CIRCLE``): all points within ``radius`` degrees of the centre.

    Parameters
    ----------
    ra, dec : float
        Centre in degrees.
    radius : float
        Radius in degrees, 0 to 180.

    Raises
    ------
    GeometryError
        If a value is not a finite number or is out of range.
    """

    ra: float
    dec: float
    radius: float
    vec: tuple[float, float, float] = field(init=False, repr=False, compare=False)
    rad: float = field(init=False, repr=False, compare=False)
    limit2: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        centre = Point(self.ra, self.dec)
        radius = _number(self.radius, "radius")
        if not 0.0 <= radius <= 180.0:
            raise _fail(f"radius must lie in [0, 180] degrees, got {radius!r}.")
        object.__setattr__(self, "ra", centre.ra)
        object.__setattr__(self, "dec", centre.dec)
        object.__setattr__(self, "radius", radius)
        object.__setattr__(self, "vec", centre.vec)
        object.__setattr__(self, "rad", math.radians(radius))
        object.__setattr__(self, "limit2", _chord2_of(math.radians(radius) + _EPS))

    def to_stcs(self) -> str:
        """``Circle ICRS ra dec radius``."""
        return f"Circle ICRS {_fmt(self.ra)} {_fmt(self.dec)} {_fmt(self.radius)}"


@dataclass(frozen=True, slots=True)
class Polygon(Region):
    """A spherical polygon (ADQL ``POLYGON``) with great-circle edges, smaller than a hemisphere.

    The inside is the side of the edges within the hemisphere about the vertex
    centroid, so clockwise and counter-clockwise vertex lists describe the same region.
    Self-intersecting outlines follow the even-odd rule. A closing vertex equal to the
    first, and repeated consecutive vertices, are dropped.

    Parameters
    ----------
    vertices : sequence of (ra, dec)
        At least three distinct vertices in degrees.

    Raises
    ------
    GeometryError
        On fewer than three distinct vertices, a bad coordinate, or an outline not
        contained in an open hemisphere.
    """

    vertices: tuple[tuple[float, float], ...]
    vecs: tuple = field(init=False, repr=False, compare=False)
    centre: tuple = field(init=False, repr=False, compare=False)
    reach: float = field(init=False, repr=False, compare=False)
    reach2: float = field(init=False, repr=False, compare=False)
    _normals: tuple | None = field(init=False, repr=False, compare=False)
    _plane: tuple | None = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        try:
            raw = [_vertex(v, i) for i, v in enumerate(self.vertices)]
        except TypeError:
            raise _fail(f"polygon vertices must be a sequence of (ra, dec) pairs, "
                        f"got {self.vertices!r}.") from None
        kept = _distinct(raw)
        if len(kept) < 3:
            raise _fail(f"a polygon needs at least 3 distinct vertices, got {len(kept)}.")
        vecs = tuple(v for _, _, v in kept)
        centre = _centroid(vecs)
        if min(_dot(v, centre) for v in vecs) <= 1e-12:
            raise _fail("polygon is not smaller than a hemisphere, which is not supported: "
                        + " ".join(f"({ra!r}, {dec!r})" for ra, dec, _ in kept) + ".")
        chord2 = max(_chord2(v, centre) for v in vecs)
        reach = 2.0 * math.asin(min(1.0, math.sqrt(chord2) / 2.0))
        set_ = object.__setattr__
        set_(self, "vertices", tuple((ra, dec) for ra, dec, _ in kept))
        set_(self, "vecs", vecs)
        set_(self, "centre", centre)
        set_(self, "reach", reach)
        set_(self, "reach2", _chord2_of(reach + _EPS))
        set_(self, "_normals", None)
        set_(self, "_plane", None)

    @property
    def normals(self) -> tuple:
        """Unit normals of the edges' great circles (computed on first use)."""
        if self._normals is None:
            vecs = self.vecs
            normals = tuple(_edge_normal(a, b) for a, b in zip(vecs, vecs[1:] + vecs[:1]))
            object.__setattr__(self, "_normals", normals)
        return self._normals

    @property
    def plane(self) -> tuple:
        """``(e1, e2, xy)``: tangent basis at the centre and the projected vertices."""
        if self._plane is None:
            centre = self.centre
            pole = (0.0, 0.0, 1.0) if abs(centre[2]) < 0.9 else (1.0, 0.0, 0.0)
            e1 = _unit(_cross(pole, centre))
            e2 = _cross(centre, e1)
            xy = tuple(_project(v, centre, e1, e2) for v in self.vecs)
            object.__setattr__(self, "_plane", (e1, e2, xy))
        return self._plane

    def to_stcs(self) -> str:
        """``Polygon ICRS ra1 dec1 ra2 dec2 ...``."""
        return "Polygon ICRS " + " ".join(f"{_fmt(r)} {_fmt(d)}" for r, d in self.vertices)

    def edges(self):
        """The edges as ``(a, b, normal)`` unit-vector triples."""
        vecs = self.vecs
        return zip(vecs, vecs[1:] + vecs[:1], self.normals)

    def has(self, p) -> bool:
        """Whether unit vector ``p`` lies in the polygon (boundary within tolerance included)."""
        if _chord2(p, self.centre) > self.reach2:
            return False
        e1, e2, xy = self.plane
        if _dot(p, self.centre) > 0.0 and _even_odd(_project(p, self.centre, e1, e2), xy):
            return True
        return any(_arc_distance(p, a, b, n) <= _EPS for a, b, n in self.edges())

    def edge_distance(self, p) -> float:
        """Smallest angular distance (radians) from unit vector ``p`` to the outline."""
        return min(_arc_distance(p, a, b, n) for a, b, n in self.edges())


@dataclass(frozen=True, slots=True)
class Box(Region):
    """An ADQL 2.0 ``BOX``: centre, full width along RA and full height along Dec, degrees.

    The box is approximated by the polygon with great-circle edges and the vertices
    ``(ra ± (width/2)/cos(dec), dec ± height/2)``. The corners sit exactly at
    ``dec ± height/2`` and the width is right (to first order) along the central
    parallel, but the top and bottom edges are great-circle arcs, not parallels of
    declination: they bulge poleward between the corners (a 2 x 1 degree box at
    dec 60 reaches dec 60.515 at its central RA, not 60.5), an error that grows with
    the width and with ``|dec|``. ADQL 2.1 deprecates BOX for this ambiguity; POLYGON
    says exactly what it means.

    Parameters
    ----------
    ra, dec : float
        Centre in degrees.
    width, height : float
        Full sizes in degrees, each in (0, 180].

    Raises
    ------
    GeometryError
        If a value is out of range, or the box would reach a pole or span a hemisphere.
    """

    ra: float
    dec: float
    width: float
    height: float
    polygon: Polygon = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        centre = Point(self.ra, self.dec)
        width, height = _number(self.width, "width"), _number(self.height, "height")
        for name, size in (("width", width), ("height", height)):
            if not 0.0 < size <= 180.0:
                raise _fail(f"box {name} must lie in (0, 180] degrees, got {size!r}.")
        half_h = height / 2.0
        if abs(centre.dec) + half_h >= 90.0:
            raise _fail(f"box of height {height!r} at dec {centre.dec!r} reaches a pole, "
                        "which the ADQL BOX approximation cannot represent.")
        half_w = (width / 2.0) / math.cos(math.radians(centre.dec))
        if half_w >= 90.0:
            raise _fail(f"box of width {width!r} at dec {centre.dec!r} spans a hemisphere "
                        "in right ascension, which is not supported.")
        ra, dec = centre.ra, centre.dec
        corners = ((ra - half_w, dec - half_h), (ra + half_w, dec - half_h),
                   (ra + half_w, dec + half_h), (ra - half_w, dec + half_h))
        set_ = object.__setattr__
        set_(self, "ra", ra)
        set_(self, "dec", dec)
        set_(self, "width", width)
        set_(self, "height", height)
        set_(self, "polygon", Polygon(corners))

    def to_stcs(self) -> str:
        """``Box ICRS ra dec width height``."""
        return (f"Box ICRS {_fmt(self.ra)} {_fmt(self.dec)} "
                f"{_fmt(self.width)} {_fmt(self.height)}")


# --------------------------------------------------------------------------- polygon helpers


def _vertex(vertex, index: int) -> tuple[float, float, tuple[float, float, float]]:
    """``(ra, dec, unit vector)`` of polygon vertex number ``index`` (from 0), checked."""
    try:
        ra, dec = vertex
    except (TypeError, ValueError):
        raise _fail(f"polygon vertex {index + 1} must be an (ra, dec) pair, "
                    f"got {vertex!r}.") from None
    if type(ra) is not float or type(dec) is not float:
        ra = _number(ra, f"polygon vertex {index + 1} ra")
        dec = _number(dec, f"polygon vertex {index + 1} dec")
    if not (-90.0 <= dec <= 90.0 and math.isfinite(ra)):
        _number(ra, f"polygon vertex {index + 1} ra")
        _check_dec(dec, f"polygon vertex {index + 1} dec")
    return _norm_ra(ra), dec, _vec(ra, dec)


def _distinct(vertices: list) -> list:
    """Drop vertices equal to their predecessor (and a closing copy of the first)."""
    kept: list = []
    for vertex in vertices:
        if not kept or _chord2(vertex[2], kept[-1][2]) > 1e-30:
            kept.append(vertex)
    while len(kept) > 1 and _chord2(kept[0][2], kept[-1][2]) <= 1e-30:
        kept.pop()
    return kept


def _centroid(vecs) -> tuple[float, float, float]:
    s = (sum(v[0] for v in vecs), sum(v[1] for v in vecs), sum(v[2] for v in vecs))
    if _norm(s) < 1e-12:
        raise _fail("polygon is not smaller than a hemisphere (its vertices balance out), "
                    "which is not supported.")
    return _unit(s)


def _edge_normal(a, b) -> tuple[float, float, float]:
    n = _cross(a, b)
    size = _norm(n)
    if size == 0.0:
        return (0.0, 0.0, 0.0)
    return (n[0] / size, n[1] / size, n[2] / size)


def _project(p, centre, e1, e2) -> tuple[float, float]:
    """Gnomonic projection about ``centre``: great circles become straight lines."""
    w = _dot(p, centre)
    return (_dot(p, e1) / w, _dot(p, e2) / w)


def _even_odd(point, xy) -> bool:
    """Planar even-odd point-in-polygon test."""
    px, py = point
    inside = False
    xj, yj = xy[-1]
    for xi, yi in xy:
        if (yi > py) != (yj > py) and px < (xj - xi) * (py - yi) / (yj - yi) + xi:
            inside = not inside
        xj, yj = xi, yi
    return inside


# --------------------------------------------------------------------------- predicates


def _base(region: Region) -> Region:
    if type(region) is Box:
        return region.polygon
    if not isinstance(region, Region):
        raise _fail(f"expected a geometry region, got {region!r}.")
    return region


def _point_in_point(outer: Point, inner: Point) -> bool:
    return _chord2(outer.vec, inner.vec) <= _EPS * _EPS


def _circle_in_point(outer: Point, inner: Circle) -> bool:
    return inner.rad <= _EPS and _point_in_point(outer, inner)


def _never(outer, inner) -> bool:
    return False


def _point_in_circle(outer: Circle, inner: Point) -> bool:
    return _chord2(outer.vec, inner.vec) <= outer.limit2


def _circle_in_circle(outer: Circle, inner: Circle) -> bool:
    return _angle(outer.vec, inner.vec) + inner.rad <= outer.rad + _EPS


def _polygon_in_circle(outer: Circle, inner: Polygon) -> bool:
    """All vertices inside; for a cap wider than a hemisphere also no edge reaching the rest.

    A cap of radius <= 90 degrees is convex, so for it the vertices being inside is
    enough; a wider cap's complement (a small cap about the antipode) must not meet an
    edge nor lie inside the polygon.
    """
    if not all(_chord2(outer.vec, v) <= outer.limit2 for v in inner.vecs):
        return False
    if outer.rad <= math.pi / 2:
        return True
    anti, gap = _neg(outer.vec), math.pi - outer.rad
    return inner.edge_distance(anti) >= gap - _EPS and not inner.has(anti)


def _point_in_polygon(outer: Polygon, inner: Point) -> bool:
    return outer.has(inner.vec)


def _circle_in_polygon(outer: Polygon, inner: Circle) -> bool:
    return outer.has(inner.vec) and outer.edge_distance(inner.vec) >= inner.rad - _EPS


def _polygon_in_polygon(outer: Polygon, inner: Polygon) -> bool:
    """Vertices inside, no proper edge crossing, and edge midpoints inside.

    Exact for a convex ``outer``; the midpoint test catches an edge of ``inner`` that
    leaves a non-convex ``outer`` through one of its reflex vertices, though an edge
    grazing several reflex vertices of a very ragged ``outer`` could still slip through.
    """
    if not all(outer.has(v) for v in inner.vecs):
        return False
    for a, b, n in inner.edges():
        if any(_arcs_meet(a, b, n, c, d, m, strict=True) for c, d, m in outer.edges()):
            return False
        if not outer.has(_unit((a[0] + b[0], a[1] + b[1], a[2] + b[2]))):
            return False
    return True


def _point_meets(a: Region, b: Region) -> bool:
    return b.contains(a) if type(a) is Point else a.contains(b)


def _circles_meet(a: Circle, b: Circle) -> bool:
    return _angle(a.vec, b.vec) <= a.rad + b.rad + _EPS


def _circle_meets_polygon(a: Circle, b: Polygon) -> bool:
    if _angle(a.vec, b.centre) > a.rad + b.reach + _EPS:
        return False
    return b.has(a.vec) or b.edge_distance(a.vec) <= a.rad + _EPS


def _polygons_meet(a: Polygon, b: Polygon) -> bool:
    if _angle(a.centre, b.centre) > a.reach + b.reach + _EPS:
        return False
    if any(b.has(v) for v in a.vecs) or any(a.has(v) for v in b.vecs):
        return True
    return any(_arcs_meet(p, q, n, r, s, m) for p, q, n in a.edges() for r, s, m in b.edges())


_CONTAINS = {
    (Point, Point): _point_in_point,
    (Point, Circle): _circle_in_point,
    (Point, Polygon): _never,
    (Circle, Point): _point_in_circle,
    (Circle, Circle): _circle_in_circle,
    (Circle, Polygon): _polygon_in_circle,
    (Polygon, Point): _point_in_polygon,
    (Polygon, Circle): _circle_in_polygon,
    (Polygon, Polygon): _polygon_in_polygon,
}

_INTERSECTS = {
    (Point, Point): _point_meets,
    (Point, Circle): _point_meets,
    (Point, Polygon): _point_meets,
    (Circle, Point): _point_meets,
    (Polygon, Point): _point_meets,
    (Circle, Circle): _circles_meet,
    (Circle, Polygon): _circle_meets_polygon,
    (Polygon, Circle): lambda a, b: _circle_meets_polygon(b, a),
    (Polygon, Polygon): _polygons_meet,
}


# --------------------------------------------------------------------------- STC-S


_SHAPES = {"position": (Point, 2), "circle": (Circle, 3), "box": (Box, 4),
           "polygon": (Polygon, None)}


def parse_region(text: str) -> Region:
    """Parse an STC-S region: ``Position``, ``Circle``, ``Box`` or ``Polygon``.

    Keywords are case-insensitive; the frame (``ICRS``, ``FK5``, ``J2000`` or
    ``UNKNOWNFrame``) is optional. Results are cached, since one region literal is
    typically parsed once per row of a query.

    Parameters
    ----------
    text : str
        For example ``"Circle ICRS 10 20 0.5"`` or ``"Polygon 10 20 11 20 11 21"``.

    Returns
    -------
    Region
        A :class:`Point`, :class:`Circle`, :class:`Box` or :class:`Polygon`.

    Raises
    ------
    GeometryError
        If the text is not one of these shapes with valid values.
    """
    if not isinstance(text, str):
        raise _fail(f"a region must be an STC-S string, got {text!r}.")
    return _parse(text)


@functools.lru_cache(maxsize=4096)
def _parse(text: str) -> Region:
    tokens = text.split()
    if not tokens or tokens[0].lower() not in _SHAPES:
        raise _fail(f"not an STC-S Position, Circle, Box or Polygon: {_short(text)!r}.")
    cls, count = _SHAPES[tokens[0].lower()]
    rest = tokens[1:]
    if rest and rest[0].upper() in _FRAMES:
        rest = rest[1:]
    values = [_stcs_number(tok, text) for tok in rest]
    if count is None:
        if len(values) % 2 or len(values) < 6:
            raise _fail(f"an STC-S Polygon needs at least 3 (ra, dec) pairs: {_short(text)!r}.")
        return Polygon(tuple(zip(values[::2], values[1::2])))
    if len(values) != count:
        raise _fail(f"an STC-S {tokens[0]} needs {count} numbers, got {len(values)}: "
                    f"{_short(text)!r}.")
    return cls(*values)


def _stcs_number(token: str, text: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise _fail(f"unexpected {token!r} in STC-S region {_short(text)!r} "
                    "(frames other than ICRS are not supported).") from None
    if not math.isfinite(value):
        raise _fail(f"non-finite number {token!r} in STC-S region {_short(text)!r}.")
    return value


def _short(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# --------------------------------------------------------------------------- SQL functions


def _region_arg(value, name: str) -> Region:
    if not isinstance(value, str):
        raise _fail(f"{name} must be an STC-S region string, got {value!r}.")
    return _parse(value)


def _point_arg(value, name: str) -> Point:
    region = _region_arg(value, name)
    if type(region) is not Point:
        raise _fail(f"{name} must be a point, got {_short(value)!r}.")
    return region


def _sql_point(ra, dec):
    """``vo_clip_point(ra, dec)``: ``Position ICRS ra dec``, or NULL."""
    if ra is None or dec is None:
        return None
    ra, dec = _number(ra, "POINT ra"), _number(dec, "POINT dec")
    _check_dec(dec, "POINT dec")
    return f"Position ICRS {_fmt(_norm_ra(ra))} {_fmt(dec)}"


def _sql_circle(*args):
    """``vo_clip_circle(ra, dec, r)`` or ``vo_clip_circle(point, r)``: ``Circle ICRS ...``."""
    if any(a is None for a in args):
        return None
    if len(args) == 2:
        centre = _point_arg(args[0], "CIRCLE centre")
        return Circle(centre.ra, centre.dec, args[1]).to_stcs()
    return Circle(*args).to_stcs()


def _sql_box(*args):
    """``vo_clip_box(ra, dec, width, height)`` or ``(point, width, height)``: ``Box ICRS ...``."""
    if any(a is None for a in args):
        return None
    if len(args) == 3:
        centre = _point_arg(args[0], "BOX centre")
        return Box(centre.ra, centre.dec, args[1], args[2]).to_stcs()
    return Box(*args).to_stcs()


def _sql_polygon(*args):
    """``vo_clip_polygon(ra1, dec1, ra2, dec2, ...)`` or of point strings: ``Polygon ICRS ...``."""
    if any(a is None for a in args):
        return None
    if args and all(isinstance(a, str) for a in args):
        points = [_point_arg(a, f"POLYGON vertex {i + 1}") for i, a in enumerate(args)]
        vertices = tuple((p.ra, p.dec) for p in points)
    else:
        if len(args) % 2 or len(args) < 6:
            raise _fail(f"POLYGON needs at least 3 (ra, dec) pairs, got {len(args)} values.")
        vertices = tuple(zip(args[::2], args[1::2]))
    if len(vertices) < 3:
        raise _fail(f"POLYGON needs at least 3 vertices, got {len(vertices)}.")
    return Polygon(vertices).to_stcs()


def _sql_contains(a, b):
    """``vo_clip_contains(a, b)``: 1 if region ``a`` lies inside region ``b``, else 0."""
    if a is None or b is None:
        return None
    outer = _region_arg(b, "CONTAINS argument 2")
    if type(outer) is Box:
        outer = outer.polygon
    kind = type(outer)
    if (kind is Circle or kind is Polygon) and type(a) is str:
        # The per-row case, a POINT of the row's columns in a constant region: skip the
        # cache (every row's point differs) and the Point object.
        vec = _position_vec(a)
        if vec is not None:
            if kind is Circle:
                return 1 if _chord2(outer.vec, vec) <= outer.limit2 else 0
            return 1 if outer.has(vec) else 0
    return 1 if outer.contains(_region_arg(a, "CONTAINS argument 1")) else 0


def _position_vec(text: str):
    """Unit vector of a valid ``Position ICRS ra dec`` as vo_clip_point writes it, else None.

    Anything else (another spelling, a bad value) returns None and takes the general,
    checking path.
    """
    parts = text.split(" ")
    if len(parts) != 4 or parts[0] != "Position" or parts[1] != "ICRS":
        return None
    try:
        ra, dec = float(parts[2]), float(parts[3])
    except ValueError:
        return None
    if -90.0 <= dec <= 90.0 and math.isfinite(ra):
        return _vec(ra, dec)
    return None


def _sql_intersects(a, b):
    """``vo_clip_intersects(a, b)``: 1 if the regions share a point, else 0."""
    if a is None or b is None:
        return None
    first = _region_arg(a, "INTERSECTS argument 1")
    return 1 if first.intersects(_region_arg(b, "INTERSECTS argument 2")) else 0


def _sql_distance(a, b):
    """``vo_clip_distance(p1, p2)``: the angular distance in degrees between two points."""
    if a is None or b is None:
        return None
    p, q = _point_arg(a, "DISTANCE argument 1"), _point_arg(b, "DISTANCE argument 2")
    return angdist(p.ra, p.dec, q.ra, q.dec)


def angdist(ra1, dec1, ra2, dec2):
    """Great-circle distance in degrees (haversine: stable at small separations)."""
    if None in (ra1, dec1, ra2, dec2):
        return None
    ra1, dec1, ra2, dec2 = map(math.radians, (ra1, dec1, ra2, dec2))
    s = (math.sin((dec2 - dec1) / 2) ** 2
         + math.cos(dec1) * math.cos(dec2) * math.sin((ra2 - ra1) / 2) ** 2)
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(s))))



def _sql_angdist(ra1, dec1, ra2, dec2):
    """``vo_clip_angdist(ra1, dec1, ra2, dec2)``: haversine distance in degrees."""
    if ra1 is None or dec1 is None or ra2 is None or dec2 is None:
        return None
    ra1, ra2 = _number(ra1, "ra1"), _number(ra2, "ra2")
    dec1, dec2 = _number(dec1, "dec1"), _number(dec2, "dec2")
    _check_dec(dec1, "dec1")
    _check_dec(dec2, "dec2")
    return angdist(ra1, dec1, ra2, dec2)


def _remembering(fn):
    """Wrap ``fn`` so that a GeometryError it raises is kept for :func:`last_error`."""

    @functools.wraps(fn)
    def wrapper(*args):
        try:
            return fn(*args)
        except GeometryError as exc:
            _state.message = str(exc)
            raise

    return wrapper


#: The SQL functions geometry offers SQLite, by the name the translator emits
#: (:mod:`vo_clip.search.backends.sqlite` registers them from its function table).
SQL_FUNCTIONS = {
    "vo_clip_point": _sql_point,
    "vo_clip_circle": _sql_circle,
    "vo_clip_box": _sql_box,
    "vo_clip_polygon": _sql_polygon,
    "vo_clip_contains": _sql_contains,
    "vo_clip_intersects": _sql_intersects,
    "vo_clip_distance": _sql_distance,
    "vo_clip_angdist": _sql_angdist,
}


def sql_function(name: str):
    """The SQLite implementation of geometry function ``name``; a GeometryError it
    raises is kept for :func:`last_error` (SQLite reports only that it failed).

    ``vo_clip_point(ra, dec)``, ``vo_clip_circle(ra, dec, r)`` (or ``(point, r)``),
    ``vo_clip_box(ra, dec, width, height)`` (or ``(point, width, height)``) and
    ``vo_clip_polygon(ra1, dec1, ...)`` (or of points) return STC-S strings;
    ``vo_clip_contains(a, b)`` (a inside b) and ``vo_clip_intersects(a, b)`` return 1 or
    0; ``vo_clip_distance(p1, p2)`` and ``vo_clip_angdist(ra1, dec1, ra2, dec2)`` return
    degrees. A NULL argument gives NULL.
    """
    return _remembering(SQL_FUNCTIONS[name])


def last_error() -> str | None:
    """The message of the last GeometryError a registered function raised in this thread.

    Returns
    -------
    str or None
        None if there was none since :func:`clear_error`.
    """
    return getattr(_state, "message", None)


def clear_error() -> None:
    """Forget the message :func:`last_error` returns (for this thread)."""
    _state.message = None
