"""Coverage, filters, duplicate collapse and the two selection strategies."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest
from pyproj import Geod
from shapely import affinity
from shapely.geometry import box, shape

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search import (
    Product,
    StacBackend,
    annotate_coverage,
    collapse_duplicates,
    coverage_percent,
    filter_products,
    rank_products,
    season_periods,
    select_even,
)
from satplugin.qgis_satplugin.core.search.period import normalise_period
from satplugin.qgis_satplugin.core.search.ranking import W_CLOUD, W_COVER, W_TIME, even_cost, even_targets
from tests.servers.items import TILE_29RKH, stac_item
from tests.servers.stac_api import StacApiServer
from satplugin.tests.fixtures.step_runs import search

UTC = timezone.utc
WEST = shape(TILE_29RKH)  # the real 29RKH data footprint
EAST = affinity.translate(WEST, xoff=1.0)  # a neighbouring tile, invented, overlapping WEST by ~0.1 deg
AOI_ACROSS = box(-10.95, 24.6, -10.6, 24.8)  # west tile ends near -10.88, east starts near -10.97
GEOD = Geod(ellps="WGS84")


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def geodesic_area(geom) -> float:
    return abs(GEOD.geometry_area_perimeter(geom)[0])


def product(pid, when, cloud=0.0, cover=100.0, **kw):
    defaults = dict(
        platform="S2A",
        mgrs_tile="29RKH",
        relative_orbit=37,
        processing_baseline="05.00",
        collection="L2A",
        footprint=WEST,
        backend="test",
    )
    defaults.update(kw)
    p = Product(product_id=pid, datetime=when, cloud_cover=cloud, **defaults)
    p.aoi_coverage = cover
    return p


def at(day, hour=10, month=1, year=2023):
    return datetime(year, month, day, hour, 0, tzinfo=UTC)


# --- coverage -----------------------------------------------------------------------


def test_coverage_of_an_aoi_across_two_tiles_matches_geodesic_areas():
    west = coverage_percent(WEST, AOI_ACROSS)
    east = coverage_percent(EAST, AOI_ACROSS)
    # Independent reference: ellipsoidal (geodesic) areas from pyproj.Geod.
    expect_west = 100 * geodesic_area(WEST.intersection(AOI_ACROSS)) / geodesic_area(AOI_ACROSS)
    expect_east = 100 * geodesic_area(EAST.intersection(AOI_ACROSS)) / geodesic_area(AOI_ACROSS)
    assert west == pytest.approx(expect_west, abs=0.05)
    assert east == pytest.approx(expect_east, abs=0.05)
    # The western tile ends near -10.88: about 0.07 of the AOI's 0.35 degrees.
    assert 17 < west < 22
    assert east == pytest.approx(100.0, abs=1e-6)
    # In degrees the answer would differ; in m² it must not depend on that.
    assert coverage_percent(AOI_ACROSS, AOI_ACROSS) == pytest.approx(100.0)
    assert coverage_percent(box(0, 0, 1, 1), AOI_ACROSS) == 0.0


def test_coverage_is_area_not_degrees_at_high_latitude():
    # A footprint covering the southern half (in degrees) of an AOI from 60 to 70 N covers
    # more than half of its area (about 54.7 %), because meridians converge northwards.
    aoi = box(10, 60, 12, 70)
    south = box(10, 60, 12, 65)
    expected = 100 * geodesic_area(south) / geodesic_area(aoi)
    assert coverage_percent(south, aoi) == pytest.approx(expected, abs=0.05)
    assert 54 < coverage_percent(south, aoi) < 55.5


def test_search_across_two_tiles_end_to_end():
    when = datetime(2020, 2, 19, 11, 34, 25, tzinfo=UTC)
    items = [
        stac_item(tile="29RKH", when=when, geometry=WEST, cloud=2.0),
        stac_item(tile="29RLH", when=when, geometry=EAST, cloud=8.0),
        stac_item(tile="29RMH", when=when, geometry=affinity.translate(WEST, xoff=3.0)),  # far east: no overlap
    ]
    with StacApiServer(items) as server:
        found = search(
            StacBackend(server.url, client_options={"sleep": Sleeps()}), AOI_ACROSS, "2020-02-01", "2020-02-29"
        )
    assert [p.mgrs_tile for p in found] == ["29RKH", "29RLH"]  # one acquisition: its tiles in tile order
    by_tile = {p.mgrs_tile: p for p in found}
    assert by_tile["29RKH"].aoi_coverage == pytest.approx(coverage_percent(WEST, AOI_ACROSS))
    assert by_tile["29RLH"].aoi_coverage == pytest.approx(100.0)
    # Same date and orbit: one overpass, recognisable in the output.
    assert by_tile["29RKH"].acq_group == by_tile["29RLH"].acq_group == "2020-02-19_R037"
    assert by_tile["29RKH"].aoi_footprint.equals(WEST.intersection(AOI_ACROSS))
    # Issue 12: the tiles of one overpass are ranked and selected together.
    assert [p.rank for p in found] == [1, 1] and all(p.selected for p in found)
    # A minimum coverage judges the date's tiles together: Feb 19 covers the AOI, a later
    # date with only the western tile (about a fifth of the AOI) does not.
    later = stac_item(tile="29RKH", when=when + timedelta(days=10), geometry=WEST, cloud=0.0)
    with StacApiServer([*items, later]) as server:
        strict = search(
            StacBackend(server.url, client_options={"sleep": Sleeps()}),
            AOI_ACROSS,
            "2020-02-01",
            "2020-02-29",
            min_aoi_coverage=90,
        )
    assert [(p.mgrs_tile, p.datetime.day) for p in strict] == [("29RKH", 19), ("29RLH", 19)]


def test_filters_are_inclusive_and_prefer_aoi_cloud():
    a = product("a", at(1), cloud=20.0, cover=50.0)
    b = product("b", at(2), cloud=20.0001, cover=100.0)
    c = product("c", at(3), cloud=90.0, cover=100.0)
    c.aoi_cloud = 0.0  # cloudy scene, clear AOI
    d = product("d", at(4), cloud=0.0, cover=0.0)  # does not touch the AOI
    kept = filter_products([a, b, c, d], max_cloud=20, min_aoi_coverage=50)
    assert [p.product_id for p in kept] == ["a", "c"]


# --- duplicates ---------------------------------------------------------------------


def test_reprocessed_products_collapse_to_newest_baseline():
    t = datetime(2020, 2, 19, 11, 34, 25, tzinfo=UTC)
    items = [
        stac_item(when=t, baseline="02.14", processed=datetime(2020, 2, 19, 12, 39, tzinfo=UTC), sequence=0),
        stac_item(when=t, baseline="04.00", processed=datetime(2022, 1, 5, 8, 0, tzinfo=UTC), sequence=1),
        stac_item(when=t, baseline="04.00", processed=datetime(2022, 3, 9, 8, 0, tzinfo=UTC), sequence=2),
        stac_item(when=t + timedelta(days=10), baseline="02.14", sequence=0),
        # Same day and tile, but the other satellite: a different datatake.
        stac_item(when=t, platform="S2B", baseline="02.14", orbit=37, sequence=0),
    ]
    with StacApiServer(items) as server:
        found = search(
            StacBackend(server.url, client_options={"sleep": Sleeps()}),
            box(-11.5, 24.5, -11.4, 24.6),
            "2020-02-01",
            "2020-03-31",
        )
    ids = sorted(p.product_id for p in found)
    assert ids == sorted(
        [
            "S2A_MSIL2A_20200219T113425_N0400_R037_T29RKH_20220309T080000",
            "S2A_MSIL2A_20200229T113425_N0214_R037_T29RKH_20200229T123425",
            "S2B_MSIL2A_20200219T113425_N0214_R037_T29RKH_20200219T123425",
        ]
    )


def test_collapse_keeps_order_and_distinct_orbits():
    a = product("a", at(5), relative_orbit=37, processing_baseline="04.00")
    b = product("b", at(5), relative_orbit=80, processing_baseline="04.00")  # another orbit the same day
    c = product("c", at(5, hour=11), relative_orbit=37, processing_baseline="05.10")
    assert [p.product_id for p in collapse_duplicates([a, b, c])] == ["c", "b"]


# --- strategies ---------------------------------------------------------------------


def even_fixture():
    return [
        product("A", at(2), cloud=0.0),
        product("B", at(6), cloud=60.0),
        product("C", at(7), cloud=5.0),
        product("D", at(15), cloud=0.0, cover=50.0),
        product("E", at(17), cloud=10.0),
        product("F", at(25), cloud=0.0),
        product("G", at(27), cloud=0.0),
    ]


def test_even_spread_chooses_known_products():
    start, end = normalise_period(date(2023, 1, 1), date(2023, 1, 31))
    ranked = select_even(even_fixture(), start, end, 3)
    chosen = [p.product_id for p in ranked if p.selected]
    # Targets: Jan 6 ~04:00, Jan 16 ~12:00, Jan 26 ~20:00 (bins of 10.33 days).
    # Jan 6: C (1.25 d off, 5 % cloud) beats B (on the day but 60 % cloud) and A (3.75 d off).
    # Jan 16: E (10 % cloud) beats D (closer, clear, but covers half the AOI: +1.0).
    # Jan 26: G (0.58 d off) beats F (1.42 d off).
    assert chosen == ["C", "E", "G"]
    assert [p.rank for p in ranked[:3]] == [1, 2, 3]
    # The rest follow in "all" order: clearest first, then coverage, then date.
    assert [p.product_id for p in ranked[3:]] == ["A", "F", "D", "B"]
    assert [p.rank for p in ranked[3:]] == [4, 5, 6, 7]


def test_even_cost_uses_documented_weights():
    start, end = normalise_period(date(2023, 1, 1), date(2023, 1, 31))
    targets, bin_days = even_targets(start, end, 3)
    assert bin_days == pytest.approx(31 / 3, rel=1e-6)
    assert targets[0] == start + (end - start) / 6
    p = product("X", targets[0] + timedelta(days=2), cloud=30.0, cover=80.0)
    assert (W_TIME, W_CLOUD, W_COVER) == (1.0, 1.0, 2.0)
    assert even_cost(p, targets[0], bin_days) == pytest.approx(2 / bin_days + 0.3 + 0.4)


def test_even_tie_goes_to_earlier_then_lower_id():
    start, end = normalise_period(date(2023, 1, 1), date(2023, 1, 10))
    (target,), _ = even_targets(start, end, 1)
    early = product("Z-early", target - timedelta(days=1), cloud=10.0)
    late = product("A-late", target + timedelta(days=1), cloud=10.0)
    assert [p.product_id for p in select_even([late, early], start, end, 1) if p.selected] == ["Z-early"]
    # Two acquisitions at the same time: other orbits (the same orbit would be one acquisition).
    twin_b = product("twin-b", target, cloud=10.0, relative_orbit=80)
    twin_a = product("twin-a", target, cloud=10.0, relative_orbit=8)
    assert [p.product_id for p in select_even([twin_b, twin_a], start, end, 1) if p.selected] == ["twin-a"]


def test_even_with_fewer_products_than_targets_selects_all():
    start, end = normalise_period(date(2023, 1, 1), date(2023, 1, 31))
    ranked = select_even(even_fixture()[:2], start, end, 5)
    assert all(p.selected for p in ranked)
    assert sorted(p.product_id for p in ranked) == ["A", "B"]


def test_all_strategy_order_and_max_products():
    a = product("a", at(1), cloud=10.0, cover=100.0)
    b = product("b", at(2), cloud=10.0, cover=100.0)
    c = product("c", at(3), cloud=10.0, cover=60.0)
    d = product("d", at(4), cloud=50.0, cover=100.0)
    d.aoi_cloud = 1.0  # measured over the AOI: nearly clear there
    ranked = rank_products([c, b, a, d], "all", 2, at(1), at(31))
    assert [p.product_id for p in ranked] == ["d", "a", "b", "c"]
    assert [p.selected for p in ranked] == [True, True, False, False]
    assert all(p.selected for p in rank_products([a, b], "all", 0, at(1), at(31)))
    with pytest.raises(SatPluginError, match="MAX_PRODUCTS"):
        rank_products([a], "even", None, at(1), at(31))
    with pytest.raises(SatPluginError, match="Unknown strategy"):
        rank_products([a], "best", 1, at(1), at(31))


# --- seasons ------------------------------------------------------------------------


def test_season_across_new_year():
    dates = [
        datetime(2023, 10, 31, 11, 0, tzinfo=UTC),
        datetime(2023, 11, 1, 11, 0, tzinfo=UTC),
        datetime(2023, 12, 20, 11, 0, tzinfo=UTC),
        datetime(2024, 1, 10, 11, 0, tzinfo=UTC),
        datetime(2024, 2, 28, 11, 0, tzinfo=UTC),  # the last day counts whole
        datetime(2024, 2, 29, 11, 0, tzinfo=UTC),
    ]
    items = [stac_item(when=d) for d in dates]
    with StacApiServer(items) as server:
        found = search(
            StacBackend(server.url, client_options={"sleep": Sleeps()}),
            box(-11.5, 24.5, -11.4, 24.6),
            "2023-11-01",
            "2024-02-28",
            strategy="even",
            max_products=2,
        )
        sent = server.requests_to("/search")[0].json["datetime"]
    assert sent == "2023-11-01T00:00:00Z/2024-02-28T23:59:59.999999Z"
    assert sorted(p.datetime.date() for p in found) == [
        date(2023, 11, 1),
        date(2023, 12, 20),
        date(2024, 1, 10),
        date(2024, 2, 28),
    ]
    # Two targets, Dec 1 and Jan 30 (centres of two 60-day bins): Dec 20 is 19.5 days from
    # the first (Nov 1 is 29.5), Jan 10 is 19.5 days from the second (Feb 28 is 29.5).
    assert [p.datetime.date() for p in found if p.selected] == [date(2023, 12, 20), date(2024, 1, 10)]


def test_season_periods_helper():
    assert season_periods([2022, 2023], "11-01", "02-28") == [
        (date(2022, 11, 1), date(2023, 2, 28)),
        (date(2023, 11, 1), date(2024, 2, 28)),
    ]
    assert season_periods([2023], (11, 1), (2, 29)) == [(date(2023, 11, 1), date(2024, 2, 29))]
    assert season_periods([2022], "12-01", "02-29") == [(date(2022, 12, 1), date(2023, 2, 28))]
    assert season_periods([2024], "04-01", "09-30") == [(date(2024, 4, 1), date(2024, 9, 30))]
    with pytest.raises(SatPluginError, match="before it starts"):
        normalise_period("2024-02-28", "2023-11-01")


def test_annotate_coverage_sets_clipped_footprint():
    p = product("a", at(1), footprint=WEST)
    annotate_coverage([p], AOI_ACROSS)
    assert p.aoi_footprint.within(AOI_ACROSS.buffer(1e-9))
    assert p.aoi_coverage == pytest.approx(coverage_percent(WEST, AOI_ACROSS))
