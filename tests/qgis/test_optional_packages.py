"""A missing optional package: one sentence naming the option and the install command, before any work."""
import sys

import numpy as np
import pytest
import shapely
from qgis.core import QgsProcessingException

from tests.superres_fixtures import dated_series


@pytest.fixture
def without(monkeypatch):
    """Make modules unimportable for the test, as on a machine where they were never installed."""
    def hide(*names):
        for name in names:
            monkeypatch.setitem(sys.modules, name, None)  # `import name` then raises ImportError
    return hide


def test_without_numba_qgis_python_is_no_engine(satplugin_provider, without, tmp_path):
    """The rasterizer is compiled with numba: without it QGIS's own Python cannot run the step in-process."""
    import geopandas as gpd
    import processing

    path = tmp_path / "fields.gpkg"
    gpd.GeoDataFrame({"crop": [1]}, geometry=[shapely.box(500040, 4999440, 500100, 4999500)],
                     crs="EPSG:32633").to_file(path, driver="GPKG")
    without("numba")
    with pytest.raises(QgsProcessingException) as error:
        processing.run("satplugin:rasterizegroundtruth", {
            "INPUT": str(path), "CLASS_FIELD": "crop", "OUTPUT_CLASS": str(tmp_path / "c.tif")})
    assert str(error.value).startswith("This step needs the plugin's engine, which is not installed: install it with")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fields.gpkg"]


def test_distance_output_needs_no_opencv(satplugin_provider, without, tmp_path):
    import geopandas as gpd
    import processing

    path = tmp_path / "fields.gpkg"
    gpd.GeoDataFrame({"crop": [1]}, geometry=[shapely.box(500040, 4999440, 500100, 4999500)],
                     crs="EPSG:32633").to_file(path, driver="GPKG")
    without("cv2")
    result = processing.run("satplugin:rasterizegroundtruth", {
        "INPUT": str(path), "CLASS_FIELD": "crop", "OUTPUT_CLASS": str(tmp_path / "c.tif"),
        "OUTPUT_DISTANCE": str(tmp_path / "d.tif")})
    assert result["LABELLED_PIXELS"] == 36
    import rasterio

    with rasterio.open(tmp_path / "d.tif") as ds:
        assert ds.read(1).max() == pytest.approx(25.0)  # 6 x 6 pixels: the centre pixels are 2.5 pixels in


def test_super_resolve_without_onnx_runtime(satplugin_provider, without, tmp_path):
    import processing

    paths = dated_series(tmp_path, [np.full((4, 8, 8), 1000)])
    without("onnxruntime")
    with pytest.raises(QgsProcessingException) as error:
        processing.run("satplugin:superresolve", {"INPUT": [str(p) for p in paths], "OUTPUT": str(tmp_path / "sr.tif")})
    assert str(error.value).startswith(
        "Super-resolution needs the Python package onnxruntime-gpu, which is not installed: install it into QGIS's "
        "Python with 'python -m pip install \"onnxruntime-gpu==1.31.1\"'")
    assert not (tmp_path / "sr.tif").exists()


def test_copernicus_search_needs_no_sentinelhub_package(satplugin_provider, without, tmp_path, monkeypatch):
    """The Catalog and Process API backends speak HTTP themselves: sentinelhub-py is optional."""
    from datetime import datetime, timezone

    import processing

    from tests.qgis.conftest import stored_basic_auth
    from tests.qgis.test_search_alg import TILE_AOI
    from tests.servers.items import catalog_item
    from tests.servers.sentinelhub_api import SentinelHubServer

    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    config_id = stored_basic_auth("cdse no sentinelhub", "test-client", "test-secret")
    items = [catalog_item(when=datetime(2023, 6, 1 + i, 11, tzinfo=timezone.utc), cloud=10 * i) for i in range(3)]
    without("sentinelhub")
    with SentinelHubServer(items) as server:
        result = processing.run("satplugin:searchproducts", {
            "BACKEND": 0, "SERVICE_URL": server.url, "TOKEN_URL": server.token_url, "AUTHCFG": config_id,
            "AOI": TILE_AOI, "START_DATE": "2023-06-01", "END_DATE": "2023-06-30",
            "OUTPUT": str(tmp_path / "cdse.gpkg")})
    assert result["PRODUCT_COUNT"] == 3
