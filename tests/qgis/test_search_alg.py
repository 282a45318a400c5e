"""satplugin:searchproducts through processing.run and qgis_process, against loopback servers."""
from datetime import datetime, timedelta, timezone

import pytest
from qgis.core import (
    QgsFeature,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsProcessingException,
    QgsProject,
    QgsVectorLayer,
)
from shapely.geometry import box

from tests.conftest import run_qgis_process
from tests.qgis.conftest import stored_basic_auth
from tests.servers.items import catalog_item, stac_item
from tests.servers.product_folders import make_cog_folder, make_safe
from tests.servers.sentinelhub_api import SentinelHubServer
from tests.servers.stac_api import StacApiServer

UTC = timezone.utc
TILE_AOI = "-11.5,-11.4,24.5,24.6 [EPSG:4326]"  # inside tile 29RKH of the generated items
EXPECTED_FIELDS = [
    "product_id", "datetime", "platform", "mgrs_tile", "rel_orbit", "baseline", "collection", "cloud",
    "aoi_cover", "aoi_cloud", "rank", "selected", "backend", "download", "acq_group",
]


def run(params):
    import processing

    return processing.run("satplugin:searchproducts", params)


def load(path):
    layer = QgsVectorLayer(f"{path}|layername=products", "products", "ogr")
    assert layer.isValid()
    return layer


def stac_items(n=12):
    start = datetime(2023, 4, 1, 11, 20, tzinfo=UTC)
    return [stac_item(when=start + timedelta(days=5 * i), cloud=(i * 37) % 90, sequence=i) for i in range(n)]


@pytest.fixture
def stac_server():
    with StacApiServer(stac_items(), max_limit=5) as server:  # 12 items: three pages
        yield server


def test_stac_backend_ranks_pages_and_styles(satplugin_provider, stac_server, tmp_path):
    result = run(
        {
            "BACKEND": 2, "SERVICE_URL": stac_server.url, "AOI": TILE_AOI,
            "START_DATE": "2023-04-01", "END_DATE": "2023-06-30", "COLLECTION": 0, "MAX_CLOUD": 50,
            "MAX_PRODUCTS": 3, "STRATEGY": 0, "OUTPUT": str(tmp_path / "products.gpkg"),
        }
    )
    clouds = sorted((i * 37) % 90 for i in range(12))
    expected = [c for c in clouds if c <= 50]
    assert result["PRODUCT_COUNT"] == len(expected) and result["SELECTED_COUNT"] == 3
    assert len(stac_server.requests_to("/search")) >= 2  # more than one page was fetched
    layer = load(result["OUTPUT"])
    assert [f.name() for f in layer.fields()][1:] == EXPECTED_FIELDS  # after the GeoPackage fid
    features = sorted(layer.getFeatures(), key=lambda f: f["rank"])
    assert [f["cloud"] for f in features] == expected  # ranked by cloud
    assert [f["selected"] for f in features] == [1, 1, 1] + [0] * (len(expected) - 3)
    assert all(f["aoi_cover"] == pytest.approx(100.0) and f["mgrs_tile"] == "29RKH" for f in features)
    assert features[0]["acq_group"].endswith("_R037")
    # The footprint is clipped to the AOI, and the style travels inside the GeoPackage.
    assert features[0].geometry().area() == pytest.approx(0.01, rel=1e-3)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsGraduatedSymbolRenderer) and renderer.classAttribute() == "cloud"
    assert len(renderer.ranges()) == 4


def test_even_spread_through_processing(satplugin_provider, stac_server, tmp_path):
    result = run(
        {
            "BACKEND": 2, "SERVICE_URL": stac_server.url, "AOI": TILE_AOI,
            "START_DATE": "2023-04-01", "END_DATE": "2023-05-30", "MAX_PRODUCTS": 2, "STRATEGY": 1,
            "OUTPUT": str(tmp_path / "even.gpkg"),
        }
    )
    layer = load(result["OUTPUT"])
    chosen = sorted(f["datetime"][:10] for f in layer.getFeatures() if f["selected"])
    # Items every 5 days from Apr 1 with cloud (37 i) % 90. Two 30-day bins, targets about
    # Apr 16 and May 16: Apr 16 (cloud 21, on target) beats Apr 26 (cloud 5, 10 days off);
    # May 21 (cloud 10, 5 days off: 0.18 + 0.10) beats May 16 (cloud 63: 0.02 + 0.63).
    assert chosen == ["2023-04-16", "2023-05-21"]


def test_cdse_backend_with_qgis_auth_config(satplugin_provider, tmp_path, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    config_id = stored_basic_auth("cdse test", "test-client", "test-secret")
    items = [catalog_item(when=datetime(2023, 6, 1 + i, 11, tzinfo=UTC), cloud=10 * i) for i in range(4)]
    with SentinelHubServer(items) as server:
        result = run(
            {
                "BACKEND": 0, "SERVICE_URL": server.url, "TOKEN_URL": server.token_url, "AUTHCFG": config_id,
                "AOI": TILE_AOI, "START_DATE": "2023-06-01", "END_DATE": "2023-06-30",
                "OUTPUT": str(tmp_path / "cdse.gpkg"),
            }
        )
        token_requests = [r for r in server.requests if r.path == server.token_url[len(server.url):]]
    assert result["PRODUCT_COUNT"] == 4
    # The token was asked for with the id and secret from the QGIS authentication database.
    assert token_requests and token_requests[0].form["client_id"] == "test-client"
    layer = load(result["OUTPUT"])
    assert {f["backend"] for f in layer.getFeatures()} == {"cdse"}
    # Only the authcfg id is a parameter: the secret is in no output.
    assert b"test-secret" not in (tmp_path / "cdse.gpkg").read_bytes()


def test_refused_credentials_say_how_to_fix_them(satplugin_provider, tmp_path, monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    monkeypatch.setenv("SH_CLIENT_ID", "someone-else")
    monkeypatch.setenv("SH_CLIENT_SECRET", "s3cr3t-value")
    with SentinelHubServer([]) as server:
        with pytest.raises(QgsProcessingException, match="refused") as error:
            run(
                {
                    "BACKEND": 0, "SERVICE_URL": server.url, "TOKEN_URL": server.token_url, "AOI": TILE_AOI,
                    "START_DATE": "2023-06-01", "END_DATE": "2023-06-30", "OUTPUT": str(tmp_path / "x.gpkg"),
                }
            )
    assert "s3cr3t-value" not in str(error.value)
    assert "SH_CLIENT_ID" in str(error.value) or "authentication" in str(error.value)
    assert not (tmp_path / "x.gpkg").exists()


def test_no_product_gives_a_valid_empty_layer(satplugin_provider, stac_server, tmp_path):
    result = run(
        {
            "BACKEND": 2, "SERVICE_URL": stac_server.url, "AOI": TILE_AOI,
            "START_DATE": "2019-01-01", "END_DATE": "2019-01-31", "OUTPUT": str(tmp_path / "none.gpkg"),
        }
    )
    assert result["PRODUCT_COUNT"] == 0
    layer = load(result["OUTPUT"])
    assert layer.featureCount() == 0 and layer.fields().indexOf("cloud") >= 0


def test_aoi_layer_uses_only_selected_features(satplugin_provider, stac_server, tmp_path):
    aoi = QgsVectorLayer("Polygon?crs=EPSG:4326", "aoi", "memory")
    inside, far = QgsFeature(), QgsFeature()
    inside.setGeometry(QgsGeometry.fromWkt(box(-11.5, 24.5, -11.45, 24.55).wkt))
    far.setGeometry(QgsGeometry.fromWkt(box(30, 10, 31, 11).wkt))
    aoi.dataProvider().addFeatures([inside, far])
    QgsProject.instance().addMapLayer(aoi)
    aoi.selectByIds([1])
    result = run(
        {
            "BACKEND": 2, "SERVICE_URL": stac_server.url, "AOI_LAYER": aoi, "START_DATE": "2023-04-01",
            "END_DATE": "2023-04-30", "OUTPUT": str(tmp_path / "sel.gpkg"),
        }
    )
    features = list(load(result["OUTPUT"]).getFeatures())
    # With both polygons the far one would halve coverage; with the selection it is 100 %.
    assert features and all(f["aoi_cover"] == pytest.approx(100.0) for f in features)


def test_local_folder_through_qgis_process(tmp_path):
    library = tmp_path / "products"
    (library / "2023").mkdir(parents=True)
    june = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)
    make_safe(library / "2023", when=june, cloud=12.5)
    make_safe(library, when=june + timedelta(days=3), cloud=3.0, zipped=True)
    make_safe(library, when=june + timedelta(days=5), cloud=8.0, level="L1C")
    make_cog_folder(library, when=june, cloud=41.67)  # elsewhere: does not touch the AOI
    proc, answer = run_qgis_process(
        "--json", "run", "satplugin:searchproducts", "--", "BACKEND=3", f"SERVICE_URL={library}",
        "AOI=12.6,12.8,45.4,45.6 [EPSG:4326]", "START_DATE=2023-06-01", "END_DATE=2023-06-30",
        "COLLECTION=0", "MIN_AOI_COVERAGE=50", f"OUTPUT={tmp_path / 'local.gpkg'}",
    )
    results = answer["results"]
    layer = load(results["OUTPUT"])
    rows = sorted((f["rank"], f["cloud"], f["collection"], f["backend"], f["datetime"][:10]) for f in layer.getFeatures())
    # The two L2A SAFEs (a folder and a zip), best cloud first; not the L1C, not the COG elsewhere.
    assert rows == [(1, 3.0, "L2A", "local", "2023-06-15"), (2, 12.5, "L2A", "local", "2023-06-12")]
    assert results["PRODUCT_COUNT"] == 2


def test_missing_aoi_is_a_clear_error(satplugin_provider, tmp_path):
    with pytest.raises(QgsProcessingException, match="Give the area of interest"):
        run({"BACKEND": 2, "START_DATE": "2023-04-01", "END_DATE": "2023-04-30", "OUTPUT": str(tmp_path / "x.gpkg")})


def test_stac_backend_through_qgis_process(stac_server, tmp_path):
    """The qgis_process subprocess reaches the test's loopback STAC API like a real one."""
    _, answer = run_qgis_process(
        "--json", "run", "satplugin:searchproducts", "--", "BACKEND=2", f"SERVICE_URL={stac_server.url}",
        f"AOI={TILE_AOI}", "START_DATE=2023-04-01", "END_DATE=2023-06-30", "MAX_CLOUD=50", "MAX_PRODUCTS=2",
        f"OUTPUT={tmp_path / 'stac.gpkg'}",
    )
    results = answer["results"]
    assert results["PRODUCT_COUNT"] == sum(1 for i in range(12) if (i * 37) % 90 <= 50)
    assert results["SELECTED_COUNT"] == 2
    selected = sorted(f["cloud"] for f in load(results["OUTPUT"]).getFeatures() if f["selected"])
    assert selected == [0, 5]


def test_planetary_computer_backend_and_least_cloud_order(satplugin_provider, tmp_path):
    """BACKEND=4 against a loopback Planetary Computer; STRATEGY=2 ranks by least cloud, not by clear share."""
    from tests.servers.items import pc_item
    from tests.servers.planetary import PlanetaryComputerServer

    when = datetime(2023, 4, 6, 11, 20, tzinfo=UTC)
    partial = {"type": "Polygon", "coordinates": [[[-11.43, 24.5], [-10.8, 24.5], [-10.8, 24.6], [-11.43, 24.6],
                                                   [-11.43, 24.5]]]}  # 70 % of the AOI
    items = [pc_item(when=when, cloud=12.0), pc_item(when=when + timedelta(days=5), cloud=2.0, geometry=partial)]
    with PlanetaryComputerServer(items) as pc:
        by_cloud, by_clear = (
            run({"BACKEND": 4, "SERVICE_URL": pc.stac_url, "AOI": TILE_AOI, "START_DATE": "2023-04-01",
                 "END_DATE": "2023-04-30", "MAX_PRODUCTS": 1, "STRATEGY": strategy,
                 "OUTPUT": str(tmp_path / f"pc{strategy}.gpkg")})
            for strategy in (2, 0)
        )
    for result in (by_cloud, by_clear):
        assert (result["PRODUCT_COUNT"], result["SELECTED_COUNT"], result["SELECTED_DATES"]) == (2, 1, 1)
    chosen = [(f["datetime"][:10], f["backend"]) for f in load(by_cloud["OUTPUT"]).getFeatures() if f["selected"]]
    assert chosen == [("2023-04-11", "planetary_computer")]  # 2 % cloud over 70 % of the AOI
    chosen = [f["datetime"][:10] for f in load(by_clear["OUTPUT"]).getFeatures() if f["selected"]]
    assert chosen == ["2023-04-06"]  # 88 % of the AOI clear beats 68.6 %
