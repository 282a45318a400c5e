"""The plugin through the real qgis_process binary, as users and scripts run it."""
import csv
import re

import numpy as np
import pytest
import rasterio
import shapely

from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels
from tests.conftest import run_qgis_process
from satplugin.qgis_satplugin.core.resources import resource_path


@pytest.fixture(scope="module")
def parcels_gpkg(tmp_path_factory):
    """Project-generated parcels (UTM 33N) with an integer and a text class field."""
    import geopandas as gpd

    polys, classes, ids = synthetic_parcels((500040.0, 4999440.0, 500640.0, 5000040.0), 36, seed=4)
    names = np.array(["", "wheat", "barley", "maize", "rapeseed", "beet", "potato", "grass", "forest"])
    frame = gpd.GeoDataFrame(
        {"crop_id": classes, "crop": names[classes], "parcel": ids}, geometry=list(polys), crs="EPSG:32633"
    )
    path = tmp_path_factory.mktemp("parcels") / "parcels.gpkg"
    frame.to_file(path, driver="GPKG")
    return path, frame


def test_algorithm_is_listed_and_has_help():
    proc, _ = run_qgis_process("list")
    assert "satplugin:rasterizegroundtruth" in proc.stdout
    proc, _ = run_qgis_process("help", "satplugin:rasterizegroundtruth")
    assert "OUTPUT_CONFLICT" in proc.stdout and "Example" in proc.stdout


def test_run_with_json_output(parcels_gpkg, tmp_path):
    gpkg, frame = parcels_gpkg
    _, answer = run_qgis_process(
        "--json", "run", "satplugin:rasterizegroundtruth", "--",
        f"INPUT={gpkg}", "CLASS_FIELD=crop_id", "ID_FIELD=parcel", "PIXEL_SIZE=10", "MIN_COVERAGE=0",
        f"OUTPUT_CLASS={tmp_path / 'class.tif'}", f"OUTPUT_ID={tmp_path / 'id.tif'}",
        f"OUTPUT_COVERAGE={tmp_path / 'coverage.tif'}", f"OUTPUT_CLASS_TABLE={tmp_path / 'classes.csv'}",
    )
    results = answer["results"]
    assert results["RASTERIZED_FEATURES"] == 36
    with rasterio.open(results["OUTPUT_CLASS"]) as ds:
        classes = ds.read(1)
        assert ds.crs.to_epsg() == 32633 and ds.res == (10.0, 10.0)
        assert (ds.transform.c, ds.transform.f) == (500040.0, 5000040.0)  # on the 60 m lattice
    with rasterio.open(results["OUTPUT_ID"]) as ds:
        ids = ds.read(1)
    with rasterio.open(results["OUTPUT_COVERAGE"]) as ds:
        coverage = ds.read(1)
    assert results["LABELLED_PIXELS"] == int((classes > 0).sum())
    # Every labelled pixel's class is the class of the parcel its id names.
    class_of = dict(zip(frame["parcel"], frame["crop_id"]))
    labelled = classes > 0
    assert all(class_of[i] == c for i, c in zip(ids[labelled], classes[labelled]))
    # With MIN_COVERAGE=0 every touched pixel is labelled, so coverage adds up to the
    # parcels' area, less the shares lost where two parcels meet in one pixel.
    assert coverage.sum() * 100 == pytest.approx(shapely.union_all(frame.geometry).area, rel=0.01)
    rows = list(csv.DictReader((tmp_path / "classes.csv").open()))
    assert sum(int(r["pixel_count"]) for r in rows) == classes.size
    assert sum(int(r["parcel_count"]) for r in rows) == 36


def test_failure_exits_non_zero_with_the_message(parcels_gpkg, tmp_path):
    gpkg, _ = parcels_gpkg
    proc, _ = run_qgis_process(
        "run", "satplugin:rasterizegroundtruth", "--", f"INPUT={gpkg}", "CLASS_FIELD=crop_id",
        "FILTER=\"crop_id\" > 100", f"OUTPUT_CLASS={tmp_path / 'class.tif'}",
        expect_success=False,
    )
    assert proc.returncode == 1
    assert "no polygons to rasterize" in proc.stdout + proc.stderr
    assert not (tmp_path / "class.tif").exists()


def test_shipped_model_runs_through_qgis_process(parcels_gpkg, tmp_path):
    gpkg, _ = parcels_gpkg
    model = resource_path("workflows", "ground_truth.model3")
    _, answer = run_qgis_process(
        "--json", "run", str(model), "--",
        f"polygons={gpkg}", "class_field=crop", "pixel_size=5",
        f"rasterize:class_raster={tmp_path / 'class.tif'}", f"rasterize:conflict_raster={tmp_path / 'conflict.tif'}",
        f"rasterize:class_table={tmp_path / 'classes.csv'}",
    )
    with rasterio.open(tmp_path / "class.tif") as ds:
        classes = ds.read(1)
        assert ds.res == (5.0, 5.0)
    rows = {r["value"]: r for r in csv.DictReader((tmp_path / "classes.csv").open())}
    # Text classes map to 1..K in sorted order.
    assert rows["barley"]["class_id"] == "1" and int(rows["barley"]["pixel_count"]) == int((classes == 1).sum()) > 0
    assert answer["results"]["rasterize:class_raster"] == str(tmp_path / "class.tif")


def test_log_lines_never_run_into_the_progress_dots(products_layer, tmp_path):
    """qgis_process draws progress as "0...10...": a log line sent mid-way starts a new line."""
    from tests.qgis.conftest import AOI

    proc, _ = run_qgis_process(
        "run", "satplugin:downloadproducts", "--", f"PRODUCTS={products_layer.source().split('|')[0]}",
        f"AOI={AOI}", "BANDS=4,11", "PIXEL_SIZE=20", f"OUTPUT_FOLDER={tmp_path / 'q'}",
    )
    lines = proc.stdout.splitlines()
    wrote = [line for line in lines if ": wrote " in line]
    assert len(wrote) == 3  # one log line per date, sent while progress is drawn
    assert all(line.startswith("20") for line in wrote), wrote
    progress = re.compile(r"^[.\d]+( - done\.)?$")  # dots and percentages only
    dots = [line for line in lines if "..." in line]
    assert len(dots) >= 2 and all(progress.match(line) for line in dots), proc.stdout
