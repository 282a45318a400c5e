"""The search's job spec and result: JSON round trips, one-sentence errors, no secret in a dump."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import datetime, timedelta, timezone

import pytest
import shapely
from shapely.geometry import box

from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.search import (
    CatalogBackend,
    Credentials,
    LocalBackend,
    SearchBackend,
    SearchOptions,
    SearchResult,
    StacBackend,
    run,
)
from tests.servers.items import catalog_item
from tests.servers.product_folders import cog_quadrant_4326, make_cog_folder, make_safe
from tests.servers.sentinelhub_api import SentinelHubServer

UTC = timezone.utc
SAFE_AOI = box(12.6, 45.4, 12.8, 45.6)
SECRET = "s3cr3t-never-in-json"


def when(day):
    return datetime(2023, 6, day, 10, 15, 59, tzinfo=UTC)


def area(geometry=SAFE_AOI) -> Area:
    return Area.from_geometry(geometry)


def full_options(folder) -> SearchOptions:
    """Every option set to something other than its default."""
    return SearchOptions(
        area=Area("POLYGON ((12.6 45.4, 12.8 45.4, 12.8 45.6, 12.6 45.6, 12.6 45.4))", "OGC:CRS84"),
        start="2023-06-01",
        end="2023-06-30",
        backend="local",
        collection="L2A",
        max_cloud=80.0,
        min_aoi_coverage=10.0,
        max_products=1,
        strategy="even",
        service_url=str(folder),
        token_url="https://example.invalid/token",
        aoi_cloud=True,
        request_deadline=30.0,
        run_deadline=None,
    )


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "products"
    root.mkdir()
    make_safe(root, when=when(12), cloud=12.5)
    make_safe(root, when=when(15), cloud=3.0, zipped=True, write_band=True)
    make_safe(root, when=when(20), cloud=1.0, level="L1C")
    return root


def test_a_full_spec_round_trips_through_json_and_runs_the_same(library):
    options = full_options(library)
    text = options.to_json()
    again = SearchOptions.from_json(text)
    assert again == options
    assert again.to_json() == text
    assert isinstance(again.area, Area) and again.run_deadline is None and again.max_cloud == 80.0
    first, second = run(options), run(again)
    assert first.to_dict() == second.to_dict()
    assert first.to_dict()["product_count"] == 2


def test_every_option_is_described():
    described = dict(SearchOptions.help_lines())
    assert list(described) == [f.name for f in fields(SearchOptions)]
    assert all(text and "\n" not in text for text in described.values())


def test_the_result_is_plain_json(library):
    result = run(SearchOptions(area(), "2023-06-01", "2023-06-30", backend="local", service_url=str(library),
                               max_products=1))
    assert isinstance(result, SearchResult)
    record = json.loads(json.dumps(result.to_dict()))
    assert (record["product_count"], record["selected_count"], record["selected_dates"]) == (2, 1, 1)
    first = record["products"][0]
    assert first["product_id"] == result.products[0].product_id
    assert first["datetime"] == "2023-06-15T10:15:59.024000Z"  # ISO text, as in the product layer
    assert first["selected"] is True and first["rank"] == 1
    assert first["acq_group"] == "2023-06-15_R065"
    assert shapely.from_wkt(first["footprint"]).equals(result.products[0].footprint)
    assert shapely.from_wkt(first["aoi_footprint"]).equals(result.products[0].aoi_footprint)
    assert first["download"]["kind"] == "local"
    assert [p["product_id"] for p in record["products"]] == [p.product_id for p in result.products]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_cloud": 120}, "MAX_CLOUD is a percentage between 0 and 100, got 120."),
        ({"min_aoi_coverage": -1}, "MIN_AOI_COVERAGE is a percentage between 0 and 100, got -1."),
        ({"max_products": -1}, "MAX_PRODUCTS cannot be negative, got -1."),
        ({"strategy": "even"}, "The even strategy needs MAX_PRODUCTS: how many dates to spread over the period."),
        ({"strategy": "best"}, "Unknown strategy 'best': use one of all, even, cloud."),
        ({"backend": "planet"}, ("Unknown search backend 'planet': use one of earth_search, cdse, sentinelhub, "
                                 "local, planetary_computer.")),
        ({"collection": "L3"}, "Unknown Sentinel-2 collection 'L3': use L2A or L1C."),
        ({"end": "2023-05-01"}, "The search ends (2023-05-01) before it starts (2023-06-01)."),
        ({"end": "June"}, "The search period '2023-06-01' to 'June' is not ISO dates (YYYY-MM-DD)."),
        ({"start": None}, "Give both a start and an end date for the search."),
        ({"start": datetime(2023, 6, 1)}, "The start date is ISO text (YYYY-MM-DD), not datetime."),
        ({"area": None}, "The area of interest is missing."),
        ({"area": SAFE_AOI}, "The area of interest is an Area (WKT and CRS), not Polygon."),
        ({"area": area(box(0, 0, 1, 0))}, "The area of interest has no area"),
        ({"area": Area.from_geometry(box(500000, 5000000, 510000, 5010000))}, "The area of interest is not in longitude/latitude degrees"),
        ({"request_deadline": 0}, "REQUEST_DEADLINE is a positive number of seconds, got 0."),
        ({"run_deadline": -5.0}, "RUN_DEADLINE is a positive number of seconds, got -5.0."),
    ],
)
def test_bad_values_are_one_sentence_errors(change, message):
    values = {"area": area(), "start": "2023-06-01", "end": "2023-06-30", **change}
    with pytest.raises(SatPluginError) as error:
        SearchOptions(**values)
    assert str(error.value).startswith(message)


def test_an_area_in_another_crs_is_searched_in_lon_lat(library):
    utm = Area.from_geometry(box(1000, 5000, 2000, 6000), "EPSG:32633")  # somewhere else, but valid
    options = SearchOptions(utm, "2023-06-01", "2023-06-30", backend="local", service_url=str(library))
    assert options.area.lonlat().bounds[0] > -180
    assert run(options).products == []  # the products lie elsewhere


def test_json_from_elsewhere_is_checked():
    with pytest.raises(SatPluginError, match="SearchOptions has no option client_secret"):
        SearchOptions.from_dict({"area": {"wkt": SAFE_AOI.wkt}, "start": "2023-06-01", "end": "2023-06-30",
                                 "client_secret": SECRET})
    with pytest.raises(SatPluginError, match="MAX_CLOUD is a percentage"):
        SearchOptions.from_json(json.dumps({"area": {"wkt": SAFE_AOI.wkt}, "start": "2023-06-01",
                                            "end": "2023-06-30", "max_cloud": 101}))


def test_credentials_are_a_run_argument_and_never_in_a_dump(monkeypatch, tmp_path):
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # http:// token URL of the emulator
    items = [catalog_item(when=when(1) + timedelta(days=i), tile="29RKH", cloud=float(i)) for i in range(3)]
    with SentinelHubServer(items, client_secret=SECRET) as server:
        options = SearchOptions(area(box(-11.5, 24.5, -11.4, 24.6)), "2023-06-01", "2023-06-30", backend="cdse",
                                service_url=server.url, token_url=server.token_url)
        result = run(options, credentials=Credentials("test-client", SECRET))
        token_form = next(r.form for r in server.requests if r.path == server.token_url[len(server.url):])
    assert token_form["client_secret"] == SECRET  # the secret was used...
    assert len(result.products) == 3
    assert "credentials" not in {f.name for f in fields(SearchOptions)}
    assert SECRET not in options.to_json()  # ...and is in no dump
    assert SECRET not in json.dumps(result.to_dict())
    assert SECRET not in SearchOptions.from_json(options.to_json()).to_json()


def test_the_three_backends_are_search_backends_and_others_can_be_given(library):
    assert isinstance(StacBackend(), SearchBackend)
    assert isinstance(CatalogBackend(), SearchBackend)
    assert isinstance(LocalBackend(library), SearchBackend)

    class Listed:
        """A backend from elsewhere: it sends what it has, another level too."""

        def __init__(self, products):
            self.products = products

        def search(self, aoi, start, end, collection, max_cloud=None, *, feedback=None):
            Feedback.of(feedback).set_progress(1.0)
            return list(self.products)

    found = LocalBackend(library).search(SAFE_AOI, when(1), when(30), "L1C")
    log = []
    options = SearchOptions(area(), "2023-06-01", "2023-06-30", backend="local", service_url=str(library))
    result = run(options, Feedback(log=log.append), backend=Listed(found))
    assert result.products == []  # the L1C product is left out: L2A was asked for
    assert "Left out 1 product(s) that are not Sentinel-2 L2A." in log
    with pytest.raises(TypeError, match="search method"):
        run(options, backend=object())


def test_progress_is_on_the_zero_to_one_scale_with_the_aoi_cloud_step(tmp_path):
    make_cog_folder(tmp_path, when=when(12), cloud=60.0)
    seen = []
    options = SearchOptions(area(cog_quadrant_4326(0, 0).buffer(-1e-6)), "2023-06-01", "2023-06-30",
                            backend="local", service_url=str(tmp_path), aoi_cloud=True)
    (p,) = run(options, Feedback(progress=seen.append)).products
    assert p.aoi_cloud == pytest.approx(25.0)
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert 0.6 in seen  # the backend's search is the first 60 %, the AOI cloud the rest
    assert all(0.0 <= v <= 1.0 for v in seen)


def test_the_area_reaches_the_search_coordinate_for_coordinate():
    """The algorithm hands its AOI over as WKT: the search must see the very same floats."""
    ring = [(-0.03601399737571853, 45.4), (12.6 + 0.1 + 0.2, 45.400000000000006), (12.8, 45.6), (0.1 + 0.2, 45.6)]
    aoi = shapely.Polygon([*ring, ring[0]])
    options = SearchOptions(area(aoi), "2023-06-01", "2023-06-30")
    back = SearchOptions.from_json(options.to_json()).area.lonlat()
    assert shapely.to_wkb(back) == shapely.to_wkb(aoi)
