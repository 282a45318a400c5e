"""Ground truth under hostile input and full disks, through the real qgis_process.

Each test runs what a user runs and asserts what they see: the exit status, the one
sentence that says what to change, and the sha256 of every file that must not change.
"""
import csv
import json
import re

import numpy as np
import pytest
import rasterio
import shapely

from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels
from tests.adversarial.conftest import fill_disk, sha256_tree
from tests.conftest import run_qgis_process

ALG = "satplugin:rasterizegroundtruth"
BOUNDS = (500040.0, 4999440.0, 500640.0, 5000040.0)


def _frame(n=36, seed=4):
    import geopandas as gpd

    polys, classes, ids = synthetic_parcels(BOUNDS, n, seed=seed)
    return gpd.GeoDataFrame({"crop_id": classes, "parcel": ids}, geometry=list(polys), crs="EPSG:32633")


@pytest.fixture(scope="module")
def parcels(tmp_path_factory):
    path = tmp_path_factory.mktemp("hostile-parcels") / "parcels.gpkg"
    _frame().to_file(path, driver="GPKG")
    return path


def _run(*params, expect_success=False):
    proc, _ = run_qgis_process("run", ALG, "--", *params, expect_success=expect_success)
    return proc, proc.stdout + proc.stderr


def _no_temp_files(folder):
    return [p.name for p in folder.iterdir() if ".partial-" in p.name]


@pytest.mark.parametrize(
    "room, pixel_size",
    # No room at all; room for the new files' first pages only, so the 60 x 60 px rasters,
    # held in GDAL's block cache, fail when they are flushed at close (which GDAL only
    # warns about: the case that used to exit 0 with broken outputs); and a larger grid
    # that fails while its blocks are written.
    [(0, "10"), (20000, "10"), (16 * 1024, "1")],
    ids=["full", "room-for-headers", "nearly-full"],
)
def test_full_disk_fails_and_keeps_every_previous_output(parcels, small_fs, room, pixel_size):
    out = small_fs("3M")
    names = {"OUTPUT_CLASS": "class.tif", "OUTPUT_ID": "id.tif", "OUTPUT_COVERAGE": "coverage.tif",
             "OUTPUT_CLASS_TABLE": "classes.csv"}
    params = [f"INPUT={parcels}", "CLASS_FIELD=crop_id", "ID_FIELD=parcel"] + [f"{k}={out / v}" for k, v in names.items()]
    proc, _ = _run(*params, "PIXEL_SIZE=2", "MIN_COVERAGE=0.3", expect_success=True)
    before = sha256_tree(out)
    assert set(before) == set(names.values())
    with rasterio.open(out / "class.tif") as ds:
        assert "CLASS_TABLE" in ds.tags(1)
    filler = fill_disk(out, keep_bytes=room)
    proc, text = _run(*params, f"PIXEL_SIZE={pixel_size}", "MIN_COVERAGE=0.6")
    assert proc.returncode != 0
    assert "The disk is full at" in text and "free some space" in text
    filler.unlink()
    assert sha256_tree(out) == before
    assert _no_temp_files(out) == []


def test_output_equal_to_reference_is_refused_before_any_work(parcels, tmp_path):
    reference = tmp_path / "reference.tif"
    _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS={reference}", expect_success=True)
    before = sha256_tree(reference)
    proc, text = _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", f"REFERENCE={reference}", f"OUTPUT_CLASS={reference}")
    assert proc.returncode != 0
    assert "OUTPUT_CLASS" in text and "would overwrite the input REFERENCE" in text
    assert sha256_tree(reference) == before


def test_output_equal_to_the_polygon_file_is_refused(parcels, tmp_path):
    copy = tmp_path / "fields.gpkg"
    copy.write_bytes(parcels.read_bytes())
    before = sha256_tree(copy)
    proc, text = _run(f"INPUT={copy}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS_TABLE={copy}", "OUTPUT_CLASS=")
    assert proc.returncode != 0
    assert "would overwrite the input INPUT" in text
    assert sha256_tree(copy) == before


def test_two_outputs_on_one_path_are_refused(parcels, tmp_path):
    target = tmp_path / "same.tif"
    proc, text = _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS={target}", f"OUTPUT_ID={target}")
    assert proc.returncode != 0
    assert "OUTPUT_CLASS and OUTPUT_ID point to the same place" in text
    assert not target.exists()


def test_tiny_pixel_size_is_refused_with_the_grid_size(parcels, tmp_path):
    proc, text = _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", "PIXEL_SIZE=0.0001", f"OUTPUT_CLASS={tmp_path / 'c.tif'}")
    assert proc.returncode != 0
    size = re.search(r"The grid would be (\d+) x (\d+) pixels", text)
    assert size and int(size[1]) > 5_000_000 and int(size[2]) > 5_000_000, text
    assert "use a larger PIXEL_SIZE or a smaller extent" in text
    assert "MemoryError" not in text and "Traceback" not in text
    assert list(tmp_path.iterdir()) == []


def test_polygon_across_the_antimeridian_is_refused_clearly(tmp_path):
    import geopandas as gpd

    # A field on Taveuni (Fiji), written with longitudes on both sides of 180 degrees.
    ring = [(179.99, -16.80), (-179.99, -16.80), (-179.99, -16.81), (179.99, -16.81)]
    path = tmp_path / "fiji.gpkg"
    gpd.GeoDataFrame({"crop_id": [1]}, geometry=[shapely.Polygon(ring)], crs="EPSG:4326").to_file(path, driver="GPKG")
    proc, text = _run(f"INPUT={path}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS={tmp_path / 'c.tif'}")
    assert proc.returncode != 0
    assert "crosses the antimeridian" in text and "split it at 180 degrees" in text
    assert not (tmp_path / "c.tif").exists()


def test_first_feature_without_geometry_is_skipped_not_a_traceback(tmp_path):
    frame = _frame(9, seed=1)
    frame.loc[0, "geometry"] = None
    path = tmp_path / "holes.gpkg"
    frame.to_file(path, driver="GPKG")
    out = tmp_path / "class.tif"
    proc, answer = run_qgis_process("--json", "run", ALG, "--", f"INPUT={path}", "CLASS_FIELD=crop_id",
                                    "ID_FIELD=parcel", f"OUTPUT_ID={out}", "OUTPUT_CLASS=")
    assert answer["results"]["RASTERIZED_FEATURES"] == 8
    with rasterio.open(out) as ds:
        ids = ds.read(1)
    assert set(np.unique(ids)) - {-1} == set(frame["parcel"][1:])


def test_output_that_is_a_folder_is_refused_and_leaves_nothing(parcels, tmp_path):
    folder = tmp_path / "a_folder.tif"
    folder.mkdir()
    (folder / "mine.txt").write_text("keep me")
    proc, text = _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS={folder}")
    assert proc.returncode != 0
    assert f"The output {folder} is an existing folder; give a file name." in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_folder.tif"]
    assert sha256_tree(folder) == {"mine.txt": sha256_tree(folder / "mine.txt")["mine.txt"]}


def test_formula_class_names_are_defused_in_csv_only(tmp_path):
    import geopandas as gpd

    hostile = ["=cmd|' /C calc'!A0", "+SUM(A1)", "-2+3", "@HYPERLINK(\"x\")", "wheat"]
    boxes = [shapely.box(500040 + 100 * i, 4999440, 500100 + 100 * i, 4999500) for i in range(len(hostile))]
    path = tmp_path / "hostile.gpkg"
    gpd.GeoDataFrame({"crop": hostile}, geometry=boxes, crs="EPSG:32633").to_file(path, driver="GPKG")
    table_csv, table_json, raster = tmp_path / "classes.csv", tmp_path / "classes.json", tmp_path / "class.tif"
    _run(f"INPUT={path}", "CLASS_FIELD=crop", f"OUTPUT_CLASS={raster}", f"OUTPUT_CLASS_TABLE={table_csv}",
         expect_success=True)
    _run(f"INPUT={path}", "CLASS_FIELD=crop", "OUTPUT_CLASS=", f"OUTPUT_CLASS_TABLE={table_json}", expect_success=True)
    with open(table_csv, newline="", encoding="utf-8") as f:
        cells = [row["value"] for row in csv.DictReader(f)][1:]
    assert cells == ["'" + v if v[0] in "=+-@" else v for v in sorted(hostile)]
    assert [row["value"] for row in json.loads(table_json.read_text())][1:] == sorted(hostile)
    with rasterio.open(raster) as ds:
        assert [row["value"] for row in json.loads(ds.tags(1)["CLASS_TABLE"])][1:] == sorted(hostile)


def test_filter_on_a_missing_field_names_the_field(parcels, tmp_path):
    proc, text = _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", "FILTER=\"crop_type\" = 'wheat'",
                      f"OUTPUT_CLASS={tmp_path / 'c.tif'}")
    assert proc.returncode != 0
    assert "FILTER uses the field 'crop_type', which the layer does not have" in text
    assert "crop_id" in text  # the fields it has
    assert not (tmp_path / "c.tif").exists()


def test_a_rerun_removes_what_a_killed_run_left_and_nothing_else(parcels, tmp_path):
    out = tmp_path / "class.tif"
    killed = tmp_path / ".class.partial-0a1b2c3d.tif"  # what a SIGKILL mid-write leaves
    killed.write_bytes(b"half a GeoTIFF")
    (tmp_path / ".class.partial-0a1b2c3d.tif.aux.xml").write_text("<PAMDataset/>")
    mine = tmp_path / ".class.partial-mine.tif"  # not a name this tool gives: the user's
    mine.write_text("keep")
    _run(f"INPUT={parcels}", "CLASS_FIELD=crop_id", f"OUTPUT_CLASS={out}", expect_success=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".class.partial-mine.tif", "class.tif"]
    assert mine.read_text() == "keep"
