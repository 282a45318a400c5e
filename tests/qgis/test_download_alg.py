"""satplugin:downloadproducts through processing.run, qgis_process and the search → download model."""
import json

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsProject, QgsVectorLayer

from tests.conftest import run_qgis_process
from satplugin.qgis_satplugin.core.grid import PixelGrid
from tests.qgis.conftest import AOI, GRID
from satplugin.qgis_satplugin.core.resources import resource_path


def run(params):
    import processing

    return processing.run("satplugin:downloadproducts", params)


def source_band(library, day, band):
    folder = next(library.glob(f"*_{day.replace('-', '')}_0_L2A"))
    with rasterio.open(folder / f"{band}.tif") as ds:
        return ds.read(1).astype(int), ds.transform


def test_selection_aoi_grid_values_and_harmonization(products_layer, library, tmp_path):
    products_layer.selectByExpression("\"datetime\" LIKE '2023-06-11%' OR \"datetime\" LIKE '2023-05-02%'")
    result = run({"PRODUCTS": products_layer, "AOI": AOI, "BANDS": [0], "OUTPUT_FOLDER": str(tmp_path / "series")})
    assert result["DATE_COUNT"] == 2 and result["FILES_WRITTEN"] == 4  # two images, two SCL masks
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    assert manifest["bands"] == ["B02", "B03", "B04", "B08"]
    images = sorted(f["path"] for f in manifest["files"] if f["kind"] == "image")
    assert [p[:8] for p in images] == ["20230502", "20230611"]
    for path, day, offset in ((images[0], "2023-05-02", 0), (images[1], "2023-06-11", 1000)):
        with rasterio.open(tmp_path / "series" / path) as ds:
            red = ds.read(3).astype(int)
            assert ds.crs.to_epsg() == 32633 and ds.res == (10.0, 10.0)
            assert ds.transform.c % 60 == 0 and ds.transform.f % 60 == 0
            assert ds.descriptions == ("B02", "B03", "B04", "B08") and ds.scales[0] == 0.0001
            assert ds.tags()["ACQUISITION_DATETIME"].startswith(day)
            col = int(round((ds.transform.c - GRID.x_min) / 10))
            row = int(round((GRID.y_max - ds.transform.f) / 10))
        source, _ = source_band(library, day, "B04")
        # Same 10 m lattice: identical pixels, less the +1000 DN of baseline 05.09 only.
        np.testing.assert_array_equal(red, source[row : row + red.shape[0], col : col + red.shape[1]] - offset)


def test_resume_skips_complete_files(products_layer, tmp_path):
    params = {"PRODUCTS": products_layer, "AOI": AOI, "BANDS": [4, 6], "OUTPUT_FOLDER": str(tmp_path / "s")}
    first = run(params)
    assert first["FILES_WRITTEN"] == 6 and first["FILES_SKIPPED"] == 0
    sums = {p.name: p.read_bytes() for p in (tmp_path / "s").glob("*.tif")}
    second = run(params)
    assert second["FILES_WRITTEN"] == 0 and second["FILES_SKIPPED"] == 6
    assert {p.name: p.read_bytes() for p in (tmp_path / "s").glob("*.tif")} == sums


def test_through_qgis_process_with_native_20m_band(products_layer, tmp_path):
    _, answer = run_qgis_process(
        "--json", "run", "satplugin:downloadproducts", "--", f"PRODUCTS={products_layer.source().split('|')[0]}",
        f"AOI={AOI}", "BANDS=4,11", "INCLUDE_MASKS=false", "PIXEL_SIZE=20", f"OUTPUT_FOLDER={tmp_path / 'q'}",
    )
    results = answer["results"]
    assert results["DATE_COUNT"] == 3 and results["FILES_WRITTEN"] == 3
    manifest = json.loads((tmp_path / "q" / "manifest.json").read_text())
    assert manifest["bands"] == ["B02", "B8A"] and manifest["grid"]["pixel_size"] == [20.0, 20.0]
    assert not list((tmp_path / "q").glob("*_SCL.tif"))


def test_search_download_model_through_qgis_process(library, tmp_path):
    aoi = tmp_path / "aoi.geojson"
    aoi.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[14.4871, 46.0444], [14.4948, 46.0444], [14.4948, 46.0497],
                                                          [14.4871, 46.0497], [14.4871, 46.0444]]]}}]}))
    run_qgis_process(
        "run", str(resource_path("workflows", "search_download.model3")), "--", "backend=3",
        f"service_url={library}", f"aoi={aoi}", "start_date=2023-04-01", "end_date=2023-09-30",
        "max_products=2", "max_cloud=50", f"search:products={tmp_path / 'p.gpkg'}",
        f"download:series={tmp_path / 'series'}",
    )
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    days = sorted(f["datetime"][:10] for f in manifest["files"] if f["kind"] == "image")
    assert len(days) == 2 and days[0] < days[1]  # two dates spread over the season


def test_a_layer_that_is_not_a_product_list_is_refused(satplugin_provider, tmp_path):
    layer = QgsVectorLayer("Polygon?crs=EPSG:4326&field=name:string", "x", "memory")
    QgsProject.instance().addMapLayer(layer)
    with pytest.raises(QgsProcessingException, match="product_id/download"):
        run({"PRODUCTS": layer, "AOI": AOI, "OUTPUT_FOLDER": str(tmp_path / "o")})
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_planetary_computer_search_then_download_signs_every_read(satplugin_provider, tmp_path):
    """Search (BACKEND=4) and download through processing: the layer carries no token, the reads all do."""
    import processing

    from tests.servers import s2_world
    from tests.servers.planetary import PlanetaryComputerServer, SignedBlobServer, planetary_product

    root = tmp_path / "blobs"
    bounds = s2_world.aoi_4326().bounds
    aoi = f"{bounds[0]},{bounds[2]},{bounds[1]},{bounds[3]} [EPSG:4326]"
    with PlanetaryComputerServer() as pc, SignedBlobServer(root, pc) as blobs:
        pc.items.append(planetary_product(root, blobs.url))
        found = processing.run("satplugin:searchproducts", {
            "BACKEND": 4, "SERVICE_URL": pc.stac_url, "AOI": aoi, "START_DATE": "2023-06-01",
            "END_DATE": "2023-06-30", "OUTPUT": str(tmp_path / "pc.gpkg")})
        result = run({"PRODUCTS": found["OUTPUT"], "AOI": aoi, "BANDS": [6], "INCLUDE_MASKS": False,
                      "OUTPUT_FOLDER": str(tmp_path / "series")})
        reads = [r for r in blobs.requests if r.path.endswith(".tif")]
        tokens = pc.tokens()
    assert found["PRODUCT_COUNT"] == 1 and result["DATE_COUNT"] == 1
    manifest = json.loads((tmp_path / "series" / "manifest.json").read_text())
    (image,) = manifest["files"]
    with rasterio.open(tmp_path / "series" / image["path"]) as ds:
        assert ds.descriptions == ("B04",)
        red = ds.read(1)
    grid = PixelGrid.from_transform(manifest["grid"]["crs"], rasterio.Affine(*manifest["grid"]["transform"]),
                                    manifest["grid"]["width"], manifest["grid"]["height"])
    np.testing.assert_array_equal(red, s2_world.expected_on_grid("B04", grid))  # signed, read, harmonized
    assert reads and all(pc.valid(r.query.get("sig", [None])[0]) for r in reads)
    stored = (tmp_path / "pc.gpkg").read_bytes() + (tmp_path / "series" / "manifest.json").read_bytes()
    assert tokens and not any(t.encode() in stored for t in tokens)


def test_a_background_run_reads_the_products_layer_in_the_main_thread(products_layer, tmp_path, monkeypatch):
    """The panel and the toolbox run algorithms as tasks: processAlgorithm in a worker thread, while
    the map may be drawing the products layer. The layer is read in prepareAlgorithm (main thread)."""
    import threading

    from pytest_qgis.utils import wait_until
    from qgis.core import QgsApplication, QgsProcessingAlgRunnerTask, QgsProcessingContext, QgsProcessingFeedback

    from satplugin.processing_algs import download_products

    threads = []

    def recording(read):
        def wrapper(*args):
            threads.append(threading.current_thread() is threading.main_thread())
            return read(*args)
        return wrapper

    monkeypatch.setattr(download_products, "_product_rows", recording(download_products._product_rows))
    monkeypatch.setattr(download_products, "_footprints_union_4326", recording(download_products._footprints_union_4326))
    algorithm = QgsApplication.processingRegistry().algorithmById("satplugin:downloadproducts")
    context, feedback = QgsProcessingContext(), QgsProcessingFeedback()
    context.setProject(QgsProject.instance())
    params = {"PRODUCTS": products_layer.id(), "BANDS": [0], "OUTPUT_FOLDER": str(tmp_path / "series")}
    task = QgsProcessingAlgRunnerTask(algorithm, params, context, feedback)
    results = []
    task.executed.connect(lambda ok, outputs: results.append((ok, outputs)))
    QgsApplication.taskManager().addTask(task)
    assert wait_until(lambda: bool(results), timeout_milliseconds=120_000)
    ok, outputs = results[0]
    assert ok and outputs["DATE_COUNT"] == 3
    assert threads == [True, True]  # the rows, then the footprints' union (no AOI given)
