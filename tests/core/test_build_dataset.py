"""builddataset over four MGRS tiles in two UTM zones: the same bytes at any scale, resumable, splits that hold.

Synthetic L2A products from the project's generator (tests/fixtures/synthetic_region.py), the
local-folder search backend, the real steps. Each build runs with no cluster, local:1,
local:2 and on a real `dask scheduler` with two `dask worker` processes; every file of every
build must have the same sha256.
"""
import json
import signal
import threading
from collections import defaultdict

import numpy as np
import pytest
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.ground_truth.options import PolygonFile
from satplugin.qgis_satplugin.core.region import BuildDatasetOptions, run
from satplugin.qgis_satplugin.core.region.tiles import tile_crs
from satplugin.tests.fixtures.synthetic_region import TILES, write_region

from ..cluster_fixtures import RealCluster, checksums

pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def region(tmp_path_factory):
    return write_region(tmp_path_factory.mktemp("region"))


def _build(region, out, scheduler=None, feedback=None, **overrides):
    parcels, products, _ = region
    options = dict(polygons=PolygonFile(str(parcels), "crop", id_field="parcel_id"), output_folder=str(out),
                   start="2023-06-01", end="2023-07-31", service_url=str(products), patch_size=16, split_block_m=400.0,
                   dask_scheduler=scheduler)
    return run(BuildDatasetOptions(**{**options, **overrides}), feedback)


@pytest.fixture(scope="module")
def reference(region, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "dataset"
    result = _build(region, out)
    return out, result


def test_four_tiles_in_two_zones_make_one_dataset(reference):
    out, result = reference
    assert [t["tile"] for t in result.tiles] == sorted(TILES)
    assert {tile_crs(t) for t in TILES} == {"EPSG:32632", "EPSG:32633"}
    card = json.loads((out / "dataset.json").read_text())
    assert [t["crs"] for t in card["tiles"]] == ["EPSG:32632", "EPSG:32632", "EPSG:32633", "EPSG:32633"]
    assert card["n_samples"] == result.n_samples == sum(t["samples"] for t in card["tiles"]) > 150
    assert all(n > 0 for n in result.samples_per_split.values())
    assert card["failures"] == [] and card["class_table"] == {"1": "barley", "2": "maize", "3": "wheat"}
    import pyogrio

    index = pyogrio.read_dataframe(out / "index.gpkg")
    assert len(index) == result.n_samples and index.crs.to_epsg() == 4326
    assert sorted(set(index["tile"])) == sorted(TILES)
    assert all((out / p).is_file() for p in index["path"])
    lon = index.geometry.bounds.minx
    assert (lon < 12.0).sum() > 0 and (lon > 12.0).sum() > 0  # both zones, in one CRS
    collection = json.loads((out / "collection.json").read_text())
    assert [link["href"] for link in collection["links"] if link["rel"] == "child"] == [
        f"./tiles/{t}/collection.json" for t in sorted(TILES)]
    pystac = pytest.importorskip("pystac")
    root = pystac.Collection.from_file(str(out / "collection.json"))
    root.validate()  # the core STAC schema, offline
    children = list(root.get_children())
    assert [c.id for c in children] == [f"satplugin-patches-{t}" for t in sorted(TILES)]  # one id per tile
    first = next(children[0].get_items())
    assert first.collection_id == children[0].id


def test_no_parcel_is_in_two_splits_even_where_tiles_overlap(reference):
    out, _ = reference
    splits_of = defaultdict(set)
    tiles_of = defaultdict(set)
    for tile in TILES:
        for path in (out / "tiles" / tile).glob("*/*.npz"):
            with np.load(path) as z:
                for pid in np.unique(z["label_id"]):
                    if pid >= 0:
                        splits_of[int(pid)].add(str(z["split"]))
                        tiles_of[int(pid)].add(tile)
    assert len(splits_of) > 60
    assert all(len(s) == 1 for s in splits_of.values()), {p: s for p, s in splits_of.items() if len(s) > 1}
    assert any(len(t) > 1 for t in tiles_of.values())  # some parcels are on two tiles' grids: same split there


def test_the_same_bytes_with_no_cluster_local_1_local_2_and_a_real_cluster(region, reference, tmp_path,
                                                                          real_cluster):
    out, _ = reference
    expected = checksums(out)
    assert len(expected) > 200
    for name, scheduler in (("local1", "local:1"), ("local2", "local:2"), ("real", real_cluster.address)):
        lines = []
        _build(region, tmp_path / name, scheduler, Feedback(log=lines.append))
        assert checksums(tmp_path / name) == expected, name
        assert any("Running on " in line for line in lines)


def test_a_worker_killed_mid_build_changes_nothing(region, reference, tmp_path):
    out, _ = reference
    cluster = RealCluster(tmp_path)
    try:
        _build(region, tmp_path / "killed", cluster.address, Feedback(progress=cluster.kill_one_at(0.3)))
    finally:
        cluster.close()
    assert cluster.killed.is_set() and cluster.workers[0].returncode == -signal.SIGKILL
    assert checksums(tmp_path / "killed") == checksums(out)


def test_an_interrupted_build_resumes_skipping_finished_tiles(region, reference, tmp_path):
    out, _ = reference
    stop = threading.Event()
    logs = []

    def log(line):
        logs.append(line)
        if line.startswith("Tile 32TQS (2 of 4)"):
            stop.set()  # the first tile is done: interrupt while the second one runs

    with pytest.raises(Canceled):
        _build(region, tmp_path / "ds", feedback=Feedback(log=log, is_canceled=stop.is_set))
    assert (tmp_path / "ds" / "work" / "32TQR" / "done.json").is_file()
    assert not (tmp_path / "ds" / "dataset.json").exists()
    again = []
    result = _build(region, tmp_path / "ds", feedback=Feedback(log=again.append))
    assert "1 tile already complete, skipped: 32TQR." in again
    assert [t["skipped"] for t in result.tiles] == [True, False, False, False]
    assert checksums(tmp_path / "ds") == checksums(out)


def test_a_tile_that_keeps_failing_is_named_and_the_rest_completes(region, tmp_path, real_cluster):
    import shutil

    parcels, products, _ = region
    copy = tmp_path / "products"
    shutil.copytree(products, copy)
    for band in (copy / "S2B_33TTL_20230611_0_L2A").glob("B0*.tif"):
        band.write_bytes(b"not a GeoTIFF any more")  # every attempt at this tile's download fails
    lines = []
    result = _build((parcels, copy, None), tmp_path / "ds", real_cluster.address, Feedback(log=lines.append))
    assert [f["tile"] for f in result.failures] == ["33TTL"]
    assert [t["tile"] for t in result.tiles] == ["32TQR", "32TQS", "33TTM"]
    card = json.loads((tmp_path / "ds" / "dataset.json").read_text())
    assert card["failures"] == result.failures and card["failures"][0]["error"].startswith("Cannot read ")
    assert any(line.startswith("Tile 33TTL failed: ") for line in lines)
    assert sorted(p.name for p in (tmp_path / "ds" / "tiles").iterdir()) == ["32TQR", "32TQS", "33TTM"]


def test_a_cancel_on_a_cluster_returns_within_seconds_and_leaves_no_region_files(region, tmp_path, real_cluster):
    import time

    canceled = threading.Event()
    at = []

    def log(line):
        if " tasks done " in line and not canceled.is_set():
            at.append(time.monotonic())
            canceled.set()

    with pytest.raises(Canceled):
        _build(region, tmp_path / "ds", real_cluster.address, Feedback(log=log, is_canceled=canceled.is_set))
    assert time.monotonic() - at[0] < 3.0
    assert not (tmp_path / "ds" / "dataset.json").exists() and not (tmp_path / "ds" / "index.gpkg").exists()


def test_the_job_is_the_polygons_read_not_their_file_name(region, tmp_path):
    import shutil

    from satplugin.qgis_satplugin.core.ground_truth.polygon_file import read_polygons
    from satplugin.qgis_satplugin.core.region.runner import job_sha256

    parcels = region[0]
    copy = tmp_path / "selection-1234.gpkg"  # what QGIS writes for a selection, under a new name each run
    shutil.copy(parcels, copy)
    options = BuildDatasetOptions(polygons=PolygonFile(str(parcels), "crop", id_field="parcel_id"), output_folder="a",
                                  start="2023-06-01", end="2023-07-31", service_url="p")
    moved = BuildDatasetOptions(**{**options.__dict__, "polygons": PolygonFile(str(copy), "crop", id_field="parcel_id"),
                                   "output_folder": "b", "dask_scheduler": "local:2"})
    spec = options.polygons
    assert job_sha256(options, read_polygons(spec)) == job_sha256(moved, read_polygons(moved.polygons))
    edited = read_polygons(spec)
    edited["class_values"] = ("maize",) + edited["class_values"][1:]
    assert job_sha256(options, edited) != job_sha256(options, read_polygons(spec))


def test_a_tile_whose_task_changed_is_built_again(region, reference, tmp_path):
    import shutil

    out, _ = reference
    shutil.copytree(out, tmp_path / "ds")
    marker = tmp_path / "ds" / "work" / "33TTM" / "done.json"
    done = json.loads(marker.read_text())
    marker.write_text(json.dumps({**done, "task_sha256": "0" * 64}))  # as if its products had changed
    logs = []
    result = _build(region, tmp_path / "ds", feedback=Feedback(log=logs.append))
    assert "3 tiles already complete, skipped: 32TQR, 32TQS, 33TTL." in logs
    assert [t["skipped"] for t in result.tiles] == [True, True, True, False]
    assert checksums(tmp_path / "ds") == checksums(out)


def test_a_folder_holding_something_else_is_refused(region, tmp_path):
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "notes.txt").write_text("mine")
    with pytest.raises(SatPluginError, match="holds notes.txt, which is not a build of this job"):
        _build(region, tmp_path / "ds")
    assert (tmp_path / "ds" / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in (tmp_path / "ds").iterdir()) == ["notes.txt"]
