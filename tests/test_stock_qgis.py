"""The plugin as a new user gets it: the zip in a fresh profile of a stock QGIS, steps run in the engine.

Real ``qgis_process.bin`` with QGIS's own Python only (``env -i``: no ``.venv``, no
PYTHONPATH; that Python has numpy, pyproj and GDAL's bindings and none of rasterio,
shapely, pyogrio, OpenCV or ONNX Runtime). The plugin must list its algorithms there, say
what to do when a step has no engine, install the engine offline from the wheelhouse that
``make setup`` downloads, and then run ground truth, super-resolution and the export in the
engine process with the same results as the developer environment (which runs the steps
in its own process, with rasterio built on QGIS's GDAL).
"""
import csv
import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np
import pyogrio
import pyproj
import pytest
import rasterio

from satplugin.qgis_satplugin.core import __version__
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels
from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder
from tests.conftest import run_qgis_process
from tests.stock_qgis import QGIS_PROCESS, STOCK_PYTHON, WHEELHOUSE, StockQgis

ALGORITHMS = ("searchproducts", "downloadproducts", "rasterizegroundtruth", "exportpatches", "superresolve",
              "builddataset", "installengine", "removeengine")
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def stock(tmp_path_factory):
    if not QGIS_PROCESS.is_file() or not STOCK_PYTHON.is_file():
        pytest.skip("QGIS's qgis_process.bin and /usr/bin/python3 are not here")
    if not (WHEELHOUSE / ".stamp").is_file():
        pytest.skip(f"{WHEELHOUSE} is missing: `make setup` downloads it")
    lacks = subprocess.run([str(STOCK_PYTHON), "-I", "-c", "import shapely"], capture_output=True,
                           env={"PATH": "/usr/bin:/bin"})
    if lacks.returncode == 0:
        pytest.skip("QGIS's Python here has shapely: this machine is not a stock QGIS")
    return StockQgis(tmp_path_factory.mktemp("stock-qgis"))


@pytest.fixture(scope="module")
def parcels(tmp_path_factory):
    """Parcels with an integer class field, written by QGIS's own GDAL (ogr2ogr would do as well)."""
    import geopandas as gpd

    polys, classes, ids = synthetic_parcels((500040.0, 4999440.0, 500640.0, 5000040.0), 36, seed=4)
    frame = gpd.GeoDataFrame({"crop_id": classes, "parcel": ids}, geometry=list(polys), crs="EPSG:32633")
    path = tmp_path_factory.mktemp("parcels") / "parcels.gpkg"
    frame.to_file(path, driver="GPKG")
    return path


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series") / "download"
    grid = PixelGrid.square("EPSG:32633", 500040.0, 5000040.0, 10.0, 60, 60)
    from datetime import datetime

    write_download_folder(folder, grid, date_series(datetime(2023, 5, 1, 10, 0), 3), seed=3)
    return folder


def _ground_truth_args(parcels, folder):
    return ["run", "satplugin:rasterizegroundtruth", "--", f"INPUT={parcels}", "CLASS_FIELD=crop_id",
            "ID_FIELD=parcel", "PIXEL_SIZE=10", "MIN_COVERAGE=0.5", f"OUTPUT_CLASS={folder / 'class.tif'}",
            f"OUTPUT_ID={folder / 'id.tif'}", f"OUTPUT_COVERAGE={folder / 'coverage.tif'}",
            f"OUTPUT_CONFLICT={folder / 'conflict.tif'}", f"OUTPUT_DISTANCE={folder / 'distance.tif'}",
            f"OUTPUT_CLASS_TABLE={folder / 'classes.csv'}"]


def test_1_the_plugin_loads_with_qgis_python_only(stock):
    listed = stock.run("list")
    assert listed.returncode == 0, listed.stderr
    assert "error starting plugin" not in listed.stdout + listed.stderr
    for name in ALGORITHMS:
        assert f"satplugin:{name}" in listed.stdout, name
    for name in ALGORITHMS:
        helped = stock.run("help", f"satplugin:{name}")
        assert helped.returncode == 0 and "Example" in helped.stdout, name
    assert "OUTPUT_CONFLICT" in stock.run("help", "satplugin:rasterizegroundtruth").stdout


def test_2_a_step_without_an_engine_says_what_to_do(stock, parcels, tmp_path):
    proc = stock.run(*_ground_truth_args(parcels, tmp_path))
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert "This step needs the plugin's engine, which is not installed" in text
    assert "qgis_process run satplugin:installengine" in text
    assert "Traceback" not in text
    assert not list(tmp_path.iterdir())


def test_3_installengine_installs_offline_from_the_wheelhouse(stock):
    answer = stock.run_json("run", "satplugin:installengine", "--", f"WHEELHOUSE={WHEELHOUSE}")
    assert answer["results"]["VERSION"] == __version__
    assert Path(answer["results"]["ENGINE_PYTHON"]) == stock.engine_python
    # An isolated environment: QGIS's Python packages are not on its path, nor .venv's.
    paths = subprocess.run([str(stock.engine_python), "-c", "import sys; print(sys.path)"], capture_output=True,
                           text=True, env=stock.env, check=True).stdout
    assert "dist-packages" not in paths and ".venv" not in paths
    providers = subprocess.run([str(stock.engine_python), "-c", "import onnxruntime; print(onnxruntime.get_available_providers())"],
                               capture_output=True, text=True, env=stock.env, check=True).stdout
    assert "CPUExecutionProvider" in providers  # the CPU build: this machine has no NVIDIA driver


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _same_raster(a: Path, b: Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(), y.read(), equal_nan=True), a.name
        assert x.transform == y.transform and x.crs == y.crs, a.name
        assert x.nodata == y.nodata or (np.isnan(x.nodata) and np.isnan(y.nodata)), a.name
        assert x.descriptions == y.descriptions and x.tags() == y.tags(), a.name


def test_4_ground_truth_runs_in_the_engine_like_the_developer_path(stock, parcels, tmp_path):
    engine_out, dev_out = tmp_path / "engine", tmp_path / "dev"
    engine_out.mkdir()
    dev_out.mkdir()
    results = stock.run_json(*_ground_truth_args(parcels, engine_out))["results"]
    _, dev = run_qgis_process("--json", *_ground_truth_args(parcels, dev_out))
    for key in ("LABELLED_PIXELS", "CLASSES", "RASTERIZED_FEATURES", "CONFLICT_PIXELS"):
        assert results[key] == dev["results"][key], key
    assert results["RASTERIZED_FEATURES"] == 36 and results["LABELLED_PIXELS"] > 900
    for name in ("class.tif", "id.tif", "coverage.tif", "conflict.tif", "distance.tif", "classes.csv"):
        assert _sha256(engine_out / name) == _sha256(dev_out / name), name  # byte for byte
    _same_raster(engine_out / "class.tif", dev_out / "class.tif")
    rows = list(csv.DictReader((engine_out / "classes.csv").open()))
    assert sum(int(r["parcel_count"]) for r in rows) == 36


def test_5_super_resolve_and_export_run_in_the_engine(stock, series, parcels, tmp_path):
    for runner, folder in ((stock.run_json, tmp_path / "engine"), (lambda *a: run_qgis_process("--json", *a)[1], tmp_path / "dev")):
        folder.mkdir()
        answer = runner("run", "satplugin:superresolve", "--", f"INPUT={series}", "PROVIDER=1",
                        "TILE_SIZE=32", "OVERLAP=8", f"OUTPUT={folder / 'sr.tif'}")
        assert answer["results"]["PROVIDER_USED"] == "CPU"
        assert answer["results"]["SCALE"] == 2
        runner(*_ground_truth_args(parcels, folder))
        answer = runner("run", "satplugin:exportpatches", "--", f"IMAGES={series}",
                        f"LABELS={folder / 'class.tif'}", "PATCH_SIZE=16", "FORMAT=0", f"OUTPUT_FOLDER={folder / 'dataset'}")
        assert answer["results"]["SAMPLE_COUNT"] > 0
    _same_raster(tmp_path / "engine" / "sr.tif", tmp_path / "dev" / "sr.tif")
    engine_files = sorted(p.relative_to(tmp_path / "engine" / "dataset") for p in (tmp_path / "engine" / "dataset").rglob("*") if p.is_file())
    dev_files = sorted(p.relative_to(tmp_path / "dev" / "dataset") for p in (tmp_path / "dev" / "dataset").rglob("*") if p.is_file())
    assert engine_files == dev_files and len(engine_files) > 5
    assert _sha256(tmp_path / "engine" / "sr.tif") == _sha256(tmp_path / "dev" / "sr.tif")  # byte for byte
    patches = [name for name in engine_files if name.suffix == ".npz"]
    assert len(patches) > 5
    engine, dev = tmp_path / "engine" / "dataset", tmp_path / "dev" / "dataset"
    for name in engine_files:  # every patch, table, catalog and card, byte for byte
        if str(name) not in ("index.gpkg", "croissant.json"):
            assert _sha256(engine / name) == _sha256(dev / name), name
    # A GeoPackage's bytes are the GDAL version's that writes it (GeoPackage 1.4 and other R-tree
    # triggers in the engine's wheels, 1.2 in QGIS 3.22's GDAL): the same rows, and each Croissant
    # file differs only in the checksum it gives its own index.
    engine_rows, dev_rows = (pyogrio.read_dataframe(folder / "index.gpkg") for folder in (engine, dev))
    assert engine_rows.to_wkb().equals(dev_rows.to_wkb()) and len(engine_rows) == len(patches)
    croissants = []
    for folder in (engine, dev):
        doc = json.loads((folder / "croissant.json").read_text())
        index = next(d for d in doc["distribution"] if d["@id"] == "index.gpkg")
        assert index.pop("sha256") == _sha256(folder / "index.gpkg")
        croissants.append(doc)
    assert croissants[0] == croissants[1]
    with np.load(engine / patches[0]) as z:  # the CRS every PROJ writes alike
        assert str(z["crs"]) == pyproj.CRS.from_epsg(32633).to_wkt("WKT1_GDAL")


def test_5c_the_sharpened_export_runs_in_the_engine_like_the_developer_path(stock, tmp_path):
    """BAND_RESOLUTION sharpened: the engine's steps table hands the export the super-resolution step's model."""
    from datetime import datetime

    from satplugin.qgis_satplugin.core.sentinel2 import L1C_BANDS

    series = write_download_folder(tmp_path / "download", PixelGrid.square("EPSG:32633", 500040.0, 5000040.0, 10.0, 48, 40),
                                   date_series(datetime(2023, 5, 1, 10, 0), 2), bands=L1C_BANDS, seed=5)
    for runner, folder in ((stock.run_json, tmp_path / "engine"), (lambda *a: run_qgis_process("--json", *a)[1], tmp_path / "dev")):
        answer = runner("run", "satplugin:exportpatches", "--", f"IMAGES={series}", "PATCH_SIZE=16", "BAND_RESOLUTION=2",
                        "FORMAT=0", f"OUTPUT_FOLDER={folder}")
        assert answer["results"]["SAMPLE_COUNT"] == 9  # 3 x 3 windows of 16 px over 48 x 40 (the last shifted in)
    engine, dev = tmp_path / "engine", tmp_path / "dev"
    patches = sorted(p.relative_to(engine) for p in engine.rglob("*.npz"))
    assert patches == sorted(p.relative_to(dev) for p in dev.rglob("*.npz")) and len(patches) == 9
    for name in patches + [Path("dataset.json"), Path("samples.csv")]:
        assert _sha256(engine / name) == _sha256(dev / name), name
    card = json.loads((engine / "dataset.json").read_text())
    assert card["sharpening"]["bands"] == ["B05", "B06", "B07", "B8A", "B11", "B12"]
    assert card["sharpening"]["reflectance_preserved"] == {"dates": 2, "preserved": 2}


def test_5b_builddataset_runs_on_local_workers_of_the_managed_engine(stock, tmp_path):
    """Four MGRS tiles in two UTM zones, on two local workers started from the engine's own Python (not QGIS's)."""
    from satplugin.tests.fixtures.synthetic_region import write_region

    parcels, products, _ = write_region(tmp_path)
    args = ["run", "satplugin:builddataset", "--", f"INPUT={parcels}", "CLASS_FIELD=crop", "ID_FIELD=parcel_id",
            "BACKEND=3", f"SERVICE_URL={products}", "START_DATE=2023-06-01", "END_DATE=2023-07-31", "PATCH_SIZE=16",
            "SPLIT_BLOCK_M=400"]
    engine = stock.run_json(*args, "DASK_SCHEDULER=local:2", f"OUTPUT_FOLDER={tmp_path / 'engine'}")["results"]
    dev = run_qgis_process("--json", *args, f"OUTPUT_FOLDER={tmp_path / 'dev'}")[1]["results"]
    assert engine["TILE_COUNT"] == dev["TILE_COUNT"] == 4 and engine["FAILED_TILES"] == 0
    assert engine["SAMPLE_COUNT"] == dev["SAMPLE_COUNT"] > 100
    cards = [json.loads((tmp_path / name / "dataset.json").read_text()) for name in ("engine", "dev")]
    assert cards[0]["tiles"] == cards[1]["tiles"] and cards[0]["class_table"] == cards[1]["class_table"]
    patches = sorted(p.relative_to(tmp_path / "engine") for p in (tmp_path / "engine" / "tiles").rglob("*.npz"))
    assert len(patches) == engine["SAMPLE_COUNT"]
    for name in patches:  # the same pixels, labels, dates and CRS text in either environment
        assert _sha256(tmp_path / "engine" / name) == _sha256(tmp_path / "dev" / name), name


def test_5d_the_engine_is_neither_removed_nor_updated_while_a_step_runs_in_it(stock, tmp_path):
    """A search held by its loopback STAC server runs in the engine while another qgis_process tries to
    remove and to update the engine: both refuse at once with one sentence; the step then ends well."""
    import threading

    from tests.servers.items import stac_item
    from tests.servers.stac_api import StacApiServer

    release = threading.Event()

    class HeldStac(StacApiServer):
        def handle(self, req):
            release.wait(300)  # until the test has tried to remove the engine
            return super().handle(req)

    with HeldStac([stac_item()], prefix="/v1") as server:
        step = subprocess.Popen(
            [str(QGIS_PROCESS), "run", "satplugin:searchproducts", "--", "BACKEND=2", f"SERVICE_URL={server.stac_url}",
             "AOI=-11.5,-11.4,24.5,24.6 [EPSG:4326]", "START_DATE=2020-02-01", "END_DATE=2020-02-28",
             f"OUTPUT={tmp_path / 'products.gpkg'}"], env=stock.env, cwd=stock.folder, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            for _ in range(1200):  # the search reaches the server from the engine's process only
                if server.requests or step.poll() is not None:
                    break
                time.sleep(0.1)
            assert server.requests, step.communicate()[0] if step.poll() is not None else "no search came"
            engine_files = sorted(p.relative_to(stock.engine_python.parents[1]) for p in stock.engine_python.parents[1].rglob("*.py"))
            for args, what in ((("run", "satplugin:removeengine"), "remove it"),
                               (("run", "satplugin:installengine", "--", f"WHEELHOUSE={WHEELHOUSE}"), "install")):
                proc = stock.run(*args)
                assert proc.returncode != 0, proc.stdout
                assert (f"A step is running in the engine at {stock.engine_python.parents[1]} (in this or another QGIS or "
                        f"qgis_process); wait for it to end, or cancel it, then {what} again. The engine was left as it "
                        "was.") in proc.stdout + proc.stderr
            assert sorted(p.relative_to(stock.engine_python.parents[1])
                          for p in stock.engine_python.parents[1].rglob("*.py")) == engine_files
            assert not stock.engine_python.parents[1].with_name("satplugin-engine.new").exists()
        finally:
            release.set()
            output = step.communicate(timeout=300)[0]
    assert step.returncode == 0, output[-3000:]
    assert "The search returned 1 product(s)." in output and "PRODUCT_COUNT:\t1" in output, output[-3000:]


def test_6_removeengine_removes_it(stock, parcels, tmp_path):
    answer = stock.run_json("run", "satplugin:removeengine")
    assert answer["results"]["REMOVED"] == 1
    assert not stock.engine_python.exists()
    proc = stock.run(*_ground_truth_args(parcels, tmp_path))
    assert proc.returncode != 0 and "not installed" in proc.stdout + proc.stderr
