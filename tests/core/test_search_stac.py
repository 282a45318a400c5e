"""STAC API backend: item parsing and paging against a loopback Earth Search emulator."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box, shape

from satplugin.qgis_satplugin.core.search import StacBackend, product_from_stac_item
from satplugin.qgis_satplugin.core.search.period import normalise_period
from tests.servers.items import real_item_path, stac_item
from tests.servers.stac_api import StacApiServer
from satplugin.tests.fixtures.step_runs import search

UTC = timezone.utc
AOI = box(-11.5, 24.5, -11.4, 24.6)  # inside tile 29RKH


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def daily_items(n, start=datetime(2020, 1, 1, 11, 30, tzinfo=UTC), **kw):
    return [stac_item(when=start + timedelta(days=i), cloud=float(i % 50), **kw) for i in range(n)]


def test_real_earth_search_item_is_parsed_fully():
    path = real_item_path()
    if path is None:
        pytest.skip("shared real data not found (set SATPLUGIN_REAL_DATA or provide ../shared/data)")
    item = json.loads(path.read_text())
    p = product_from_stac_item(item, backend="earth_search")
    assert p.product_id == "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"
    assert p.datetime == datetime(2020, 2, 19, 11, 34, 25, 405000, tzinfo=UTC)
    assert (p.platform, p.mgrs_tile, p.relative_orbit) == ("S2A", "29RKH", 37)
    assert (p.processing_baseline, p.collection) == ("02.14", "L2A")
    assert p.cloud_cover == pytest.approx(4.051854)
    assert p.processing_time == datetime(2020, 2, 19, 12, 39, 47, tzinfo=UTC)
    assert p.footprint.equals(shape(item["geometry"]))
    assets = p.download["assets"]
    # Every band maps to its COG, not to the JPEG 2000 copy or the TCI.
    expected = {"B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12", "SCL"}
    assert set(assets) == expected
    assert assets["B08"].endswith("/S2A_29RKH_20200219_0_L2A/B08.tif")
    assert assets["SCL"].endswith("/SCL.tif")
    assert p.download["item_id"] == "S2A_29RKH_20200219_0_L2A"


def test_band_id_asset_keys_and_jp2_fallback():
    item = stac_item()
    item["assets"] = {
        "B02": {"href": "https://h/x/B02.tif"},
        "B8A": {"href": "https://h/x/B8A.tif"},
        "red-jp2": {"href": "https://h/x/B04.jp2"},
        "green-jp2": {"href": "s3://b/x/B03.jp2"},  # not http(s): refused (issue 11)
        "visual": {"href": "https://h/x/TCI.tif"},
        "thumbnail": {"href": "https://h/x/preview.jpg"},
    }
    refused = []
    p = product_from_stac_item(item, refused=refused)
    assert p.download["assets"] == {
        "B02": "https://h/x/B02.tif",
        "B8A": "https://h/x/B8A.tif",
        "B04": "https://h/x/B04.jp2",
    }
    assert refused == ["B03"]


def test_item_without_geometry_is_skipped_and_bbox_is_a_fallback():
    item = stac_item()
    item["geometry"] = None
    assert product_from_stac_item(item).footprint.equals(box(*item["bbox"]))
    item["bbox"] = None
    assert product_from_stac_item(item) is None


def test_search_body_is_a_stac_item_search():
    start, end = normalise_period("2020-01-01", "2020-03-31")
    body = StacBackend("http://h/v1").search_body(AOI, start, end, "L1C", max_cloud=30)
    assert body["collections"] == ["sentinel-2-l1c"]
    assert body["datetime"] == "2020-01-01T00:00:00Z/2020-03-31T23:59:59.999999Z"
    assert body["query"] == {"eo:cloud_cover": {"lte": 30.0}}
    assert shape(body["intersects"]).equals(AOI)
    assert body["limit"] == 100
    # No cloud query at all when every scene is acceptable.
    assert "query" not in StacBackend().search_body(AOI, start, end, "L2A", max_cloud=100)


@pytest.mark.parametrize("next_mode", ["post-body", "post-merge", "get"])
def test_pagination_follows_next_links(next_mode):
    items = daily_items(250)
    with StacApiServer(items, next_mode=next_mode) as server:
        backend = StacBackend(server.url, client_options={"sleep": Sleeps()})
        start, end = normalise_period("2020-01-01", "2020-12-31")
        found = backend.search(AOI, start, end, "L2A", max_cloud=None)
        searches = server.requests_to("/search")
    assert len(found) == 250
    assert len(searches) == 3
    assert len({p.product_id for p in found}) == 250
    assert found[0].datetime == datetime(2020, 1, 1, 11, 30, tzinfo=UTC)
    assert found[-1].datetime == datetime(2020, 1, 1, 11, 30, tzinfo=UTC) + timedelta(days=249)
    if next_mode == "get":
        assert [r.method for r in searches] == ["POST", "GET", "GET"]
    else:
        assert [r.method for r in searches] == ["POST", "POST", "POST"]
        # Follow-up pages keep the original query (the server would otherwise reset it).
        assert all(r.json["collections"] == ["sentinel-2-c1-l2a", "sentinel-2-l2a"] for r in searches)
        assert "next" in searches[1].json and "next" in searches[2].json


def test_server_side_filters_are_sent_and_applied():
    items = daily_items(60)  # cloud = day index % 50
    with StacApiServer(items) as server:
        backend = StacBackend(server.url, client_options={"sleep": Sleeps()})
        start, end = normalise_period("2020-01-01", "2020-01-31")
        found = backend.search(AOI, start, end, "L2A", max_cloud=10)
    # Days 1-11 of January have cloud 0..10 (inclusive limit); day 51+ are outside the period.
    assert sorted(p.datetime.day for p in found) == list(range(1, 12))


def test_429_then_results_waits_retry_after():
    sleeps = Sleeps()
    with StacApiServer(daily_items(3)) as server:
        server.script(429, headers={"Retry-After": "2"}, body={"code": "TooManyRequests"})
        backend = StacBackend(server.url, client_options={"sleep": sleeps})
        found = search(backend, AOI, "2020-01-01", "2020-01-31", max_cloud=100)
        assert len(server.requests_to("/search")) == 2
    assert sleeps == [2.0]
    assert len(found) == 3


def test_500_on_second_page_is_retried():
    sleeps = Sleeps()
    with StacApiServer(daily_items(150)) as server:
        server.script(500, body={"code": "InternalServerError"}, skip=1)
        backend = StacBackend(server.url, client_options={"sleep": sleeps})
        start, end = normalise_period("2020-01-01", "2020-12-31")
        found = backend.search(AOI, start, end, "L2A")
        statuses = len(server.requests_to("/search"))
    assert statuses == 3  # page 1, page 2 failing, page 2 again
    assert len(found) == 150
    assert len({p.product_id for p in found}) == 150
    assert len(sleeps) == 1


def test_empty_result_gives_empty_list():
    with StacApiServer(daily_items(5)) as server:
        backend = StacBackend(server.url, client_options={"sleep": Sleeps()})
        assert search(backend, AOI, "2021-06-01", "2021-06-30") == []
        far_away = box(10, 50, 10.1, 50.1)
        assert search(backend, far_away, "2020-01-01", "2020-01-31") == []


def test_progress_reaches_the_end_and_is_monotonic():
    seen = []
    with StacApiServer(daily_items(120)) as server:
        backend = StacBackend(server.url, client_options={"sleep": Sleeps()})
        search(backend, AOI, "2020-01-01", "2020-12-31", progress=seen.append)
    assert seen[-1] == 1.0  # the core's one progress scale: 0 to 1
    assert seen == sorted(seen)


def test_cancel_stops_the_search():
    from satplugin.qgis_satplugin.core.errors import Canceled

    with StacApiServer(daily_items(250)) as server:
        backend = StacBackend(server.url, client_options={"sleep": Sleeps()})
        pages = []
        with pytest.raises(Canceled):
            search(backend, AOI, "2020-01-01", "2020-12-31", progress=pages.append,
                            is_canceled=lambda: len(pages) >= 1)
        assert len(server.requests_to("/search")) == 1  # no page after the cancel
