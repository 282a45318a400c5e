"""The rasterizer's exact shares (burn_kernel) against shapely's exact intersection areas."""
import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from satplugin.qgis_satplugin.core.ground_truth.edges import feature_windows, polygon_segments, strip_shares


def engine_shares(geoms, width, height, x_min=0.0, y_max=0.0, pw=1.0, ph=1.0, strip_rows=None):
    """{(feature, row, col): share} from the engine, over strips of ``strip_rows``."""
    seg = polygon_segments(geoms, x_min, y_max, pw, ph)
    windows = feature_windows(geoms, x_min, y_max, pw, ph)
    shares = {}
    step = strip_rows or height
    for row0 in range(0, height, step):
        for f, r, c, v in zip(*strip_shares(seg, windows, row0, min(row0 + step, height), width)):
            assert (f, r, c) not in shares, "one share per (polygon, pixel)"
            shares[(int(f), int(r), int(c))] = float(v)
    return shares


def shapely_shares(geoms, width, height, x_min=0.0, y_max=0.0, pw=1.0, ph=1.0):
    """The independent reference: intersection area with every pixel box."""
    out = {}
    for f, g in enumerate(geoms):
        for r in range(height):
            for c in range(width):
                cell = box(x_min + c * pw, y_max - (r + 1) * ph, x_min + (c + 1) * pw, y_max - r * ph)
                a = g.intersection(cell).area / (pw * ph)
                if a > 1e-12:
                    out[(f, r, c)] = a
    return out


def assert_same(got, want, tol=1e-9):
    keys = set(got) | set(want)
    worst = max((abs(got.get(k, 0.0) - want.get(k, 0.0)) for k in keys), default=0.0)
    assert worst < tol, f"largest share error {worst}"


def test_square_on_pixel_lines_is_whole_pixels():
    shares = engine_shares([box(1, -3, 3, -1)], 5, 5)
    assert shares == {(0, 1, 1): 1.0, (0, 1, 2): 1.0, (0, 2, 1): 1.0, (0, 2, 2): 1.0}


def test_half_pixel_offsets_give_exact_fractions():
    # 1.5 x 1.5 pixels starting at the corner of pixel (0, 0)
    shares = engine_shares([box(0, -1.5, 1.5, 0)], 3, 3)
    assert shares[(0, 0, 0)] == pytest.approx(1.0)
    assert shares[(0, 0, 1)] == pytest.approx(0.5)
    assert shares[(0, 1, 0)] == pytest.approx(0.5)
    assert shares[(0, 1, 1)] == pytest.approx(0.25)
    assert len(shares) == 4


def test_hole_and_multipolygon_match_shapely():
    outer = box(0.3, -7.6, 7.7, -0.2)
    with_hole = outer.difference(shapely.Point(4.1, -3.9).buffer(2.2))
    multi = shapely.MultiPolygon([box(0.5, -2.5, 2.5, -0.5), box(5.2, -7.9, 7.9, -5.3)])
    geoms = [with_hole, multi]
    assert_same(engine_shares(geoms, 8, 8), shapely_shares(geoms, 8, 8))


def test_ring_orientation_does_not_matter():
    poly = shapely.Polygon([(0.2, -0.3), (4.7, -1.1), (3.3, -4.6)], holes=[[(2, -1.5), (3, -1.8), (2.6, -2.6)]])
    cw = shapely.geometry.polygon.orient(poly, -1.0)
    ccw = shapely.geometry.polygon.orient(poly, 1.0)
    assert_same(engine_shares([cw], 6, 6), engine_shares([ccw], 6, 6), tol=1e-12)
    assert_same(engine_shares([cw], 6, 6), shapely_shares([poly], 6, 6))


def test_strips_and_non_square_pixels_match_shapely():
    rng = np.random.default_rng(7)
    geoms = [shapely.convex_hull(shapely.MultiPoint(rng.uniform([0, -90], [50, 0], (9, 2)))) for _ in range(3)]
    kwargs = dict(x_min=0.0, y_max=0.0, pw=4.9, ph=5.3)
    want = shapely_shares(geoms, 11, 18, **kwargs)
    for strip_rows in (1, 4, 7, 18):
        assert_same(engine_shares(geoms, 11, 18, strip_rows=strip_rows, **kwargs), want)


def test_polygon_beyond_the_grid_edge_only_counts_inside():
    big = box(-5.5, -2.5, 2.5, 7)  # crosses the left and top edges
    shares = engine_shares([big], 4, 4)
    assert_same(shares, shapely_shares([big], 4, 4))
    assert sum(shares.values()) == pytest.approx(big.intersection(box(0, -4, 4, 0)).area)


def test_an_edge_whose_rise_is_a_denormal_adds_nothing_and_spoils_nothing():
    """Found by the property test below: y = -2.2e-308 at two vertices made the slope of their edge
    overflow, and the NaN columns of its pieces cost the whole polygon its shares."""
    tiny = -2.2250738585072014e-308
    triangle = shapely.Polygon([(1.0, tiny), (0.5, tiny / 1.0526), (-0.6536436208636119, -0.7568024953079282)])
    assert triangle.exterior.coords[0][1] != triangle.exterior.coords[1][1]  # not a horizontal edge
    shares = engine_shares([triangle], 10, 10, strip_rows=1)
    assert sum(shares.values()) == pytest.approx(triangle.intersection(box(0, -10, 10, 0)).area, abs=1e-12)
    assert list(shares) == [(0, 0, 0)]


ring_point = st.tuples(st.floats(0.5, 3.0), st.floats(0, 2 * np.pi))


@st.composite
def polygons_with_holes(draw):
    """Star-shaped polygons (sorted angles) with an optional hole, anywhere on a 10x10 grid."""
    cx, cy = draw(st.floats(-2, 12)), draw(st.floats(-12, 2))
    pts = sorted(draw(st.lists(ring_point, min_size=3, max_size=9)), key=lambda p: p[1])
    shell = [(cx + r * np.cos(a), cy + r * np.sin(a)) for r, a in pts]
    poly = shapely.Polygon(shell)
    if not poly.is_valid or poly.area < 1e-3:
        poly = shapely.convex_hull(shapely.MultiPoint(shell)).buffer(0.01)
    if draw(st.booleans()):
        hole = shapely.Point(cx, cy).buffer(draw(st.floats(0.05, 0.4)), quad_segs=3)
        candidate = poly.difference(hole)
        if candidate.geom_type == "Polygon" and candidate.is_valid:
            poly = candidate
    return poly


@settings(max_examples=60, deadline=None)
@given(st.lists(polygons_with_holes(), min_size=1, max_size=5), st.integers(1, 10))
def test_property_coverage_times_pixel_area_equals_clipped_area(geoms, strip_rows):
    """Per polygon, the sum of its shares x pixel area is its area inside the grid."""
    pw, ph = 1.0, 1.0
    shares = engine_shares(geoms, 10, 10, pw=pw, ph=ph, strip_rows=strip_rows)
    grid_box = box(0, -10, 10, 0)
    for f, g in enumerate(geoms):
        total = sum(v for (ff, _, _), v in shares.items() if ff == f) * pw * ph
        assert total == pytest.approx(g.intersection(grid_box).area, abs=1e-7)
        assert all(0.0 <= v <= 1.0 + 1e-12 for (ff, _, _), v in shares.items() if ff == f)
