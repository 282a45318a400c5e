"""Every format round-trips through the reader with identical values; card, index and torch."""
import json
import os
import pickle
import re
import subprocess
import sys

import numpy as np
import pyogrio
import pytest
import shapely
from pyproj import CRS

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import FORMATS, ExportedDataset
from satplugin.qgis_satplugin.core.export import torch_dataset
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run as run_ground_truth
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels

from .test_export_helpers import CRS as GRID_CRS
from .test_export_helpers import export, image_paths, make_folder, read_window

K = 2
LABELS = ("class", "id", "coverage", "conflict", "distance")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A 4-date folder (clouds on some dates) and all five label rasters at 5 m (x2)."""
    tmp = tmp_path_factory.mktemp("formats")
    src, grid, dates = make_folder(tmp, width=132, height=120, n_dates=4, cloud_cover=[0, 35, 0, 20],
                                   bands=("B02", "B05", "B01", "B08"))
    fine = PixelGrid.square(GRID_CRS, grid.x_min, grid.y_max, grid.pixel_width / K, grid.width * K, grid.height * K)
    polys, classes, ids = synthetic_parcels(grid.bounds, 30, seed=2, n_classes=4)
    paths = {name: tmp / f"{name}.tif" for name in LABELS}
    run_ground_truth(GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(polys, hex=True).tolist()), class_values=tuple(classes.tolist()),
        source_crs=GRID_CRS, grid=fine, outputs=OutputPaths(
            class_raster=paths["class"], id_raster=paths["id"], coverage_raster=paths["coverage"],
            conflict_raster=paths["conflict"], distance_raster=paths["distance"]), parcel_ids=tuple(ids.tolist())))
    return src, grid, paths, tmp


def _export(source, fmt, band_resolution="resample", name=None):
    src, _, labels, tmp = source
    out = tmp / (name or f"{fmt}_{band_resolution}")
    if not out.exists():
        export(src, out, labels=labels, label_scale=K, patch_size=36 if band_resolution == "resample" else 60,
               stride=24 if band_resolution == "resample" else 60, band_resolution=band_resolution,
               max_cloud=10, format=fmt, split_block_size=48 if band_resolution == "resample" else 1000,
               split_ratios=(0.5, 0.25, 0.25), seed=1)
    return out


def _same(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        if key == "crs":
            assert CRS.from_user_input(a[key]).equals(CRS.from_user_input(b[key]))
        elif key == "labels":
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert a[key][name].dtype == b[key][name].dtype, name
                np.testing.assert_array_equal(a[key][name], b[key][name])
        elif isinstance(a[key], np.ndarray):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
            if key.startswith("images"):
                assert a[key].dtype == b[key].dtype == np.uint16
        else:
            assert a[key] == b[key], key


@pytest.mark.parametrize("band_resolution", ["resample", "native"])
@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "npz"])
def test_every_format_reads_back_identical_to_npz(source, fmt, band_resolution):
    if fmt == "zarr":
        pytest.importorskip("zarr")
    reference = ExportedDataset(_export(source, "npz", band_resolution))
    other = ExportedDataset(_export(source, fmt, band_resolution))
    assert len(other) == len(reference) > 5
    assert [r["sample_id"] for r in other.rows] == [r["sample_id"] for r in reference.rows]
    lengths = {len(r["dates"]) for r in reference.rows}
    assert len(lengths) > 1, "the cloud filter should give series of different lengths"
    for i in range(len(reference)):
        _same(reference[i], other[i])


def test_npz_holds_the_source_pixels_and_labels(source):
    src, grid, labels, _ = source
    ds = ExportedDataset(_export(source, "npz"))
    files = image_paths(src)
    for i in (0, len(ds) // 2, len(ds) - 1):
        s, row = ds[i], ds.rows[i]
        for slot, t in enumerate(s["date_index"]):
            np.testing.assert_array_equal(s["images"][slot], read_window(files[t], row["row"], row["col"], 36))
        for name in LABELS:
            np.testing.assert_array_equal(s["labels"][name], read_window(labels[name], row["row"] * K, row["col"] * K, 36 * K, 1))
    assert set(s["labels"]) == set(LABELS) and s["labels"]["class"].shape == (72, 72)


def test_deepsatdata_keys_shapes_and_names(source):
    out = _export(source, "deepsatdata", "native")
    ds = ExportedDataset(out)
    assert len(ds) > 0
    for row in ds.rows:
        with open(out / row["path"], "rb") as f:
            content = pickle.load(f)
        t = row["n_dates"]
        assert set(content) == {"B02", "B05", "B01", "B08", "doy", "year", "labels", "ids", "masks", "ratios", "distances"}
        assert content["B02"].shape == content["B08"].shape == (t, 60, 60)
        assert content["B05"].shape == (t, 30, 30) and content["B01"].shape == (t, 10, 10)
        assert content["B02"].dtype == np.uint16
        assert content["doy"].shape == (t,) and content["year"].shape == (t,) and content["year"].dtype == np.int32
        assert np.all(np.diff(content["doy"]) > 0)
        for key in ("labels", "ids", "masks", "ratios", "distances"):
            assert content[key].shape == (60 * K, 60 * K)
        n, w, year = re.fullmatch(r"(?:train|val|test)/(\d+)_(\d+)_(\d{4})\.pickle", row["path"]).groups()
        assert int(w) == 499980 + 10 * row["col"] and int(n) == 5000040 - 10 * row["row"]
        assert int(year) == 2023


def test_zarr_store_layout(source):
    zarr = pytest.importorskip("zarr")
    out = _export(source, "zarr")
    group = zarr.open_consolidated(str(out / "dataset.zarr"), mode="r")
    ds = ExportedDataset(out)
    n, longest = len(ds), max(r["n_dates"] for r in ds.rows)
    assert group["images"].shape == (n, longest, 4, 36, 36) and group["images"].chunks == (1, longest, 4, 36, 36)
    assert group["label_class"].shape == (n, 72, 72)
    assert group["n_dates"][:].tolist() == [r["n_dates"] for r in ds.rows]
    short = next(r for r in ds.rows if r["n_dates"] < longest)
    assert (group["images"][short["index"], short["n_dates"]:] == 0).all()  # padding is no-data
    assert (group["date_index"][short["index"], short["n_dates"]:] == -1).all()
    assert group.attrs["bands"] == ["B02", "B05", "B01", "B08"]


def test_geotiff_chips_are_georeferenced(source):
    import rasterio

    out = _export(source, "geotiff")
    ds = ExportedDataset(out)
    row = ds.rows[3]
    folder = out / row["path"]
    chips = sorted(p.name for p in folder.glob("*.tif"))
    stamps = [d.replace("-", "").replace(":", "").rstrip("Z") for d in row["dates"]]
    assert chips == sorted([f"{s}.tif" for s in stamps] + [f"label_{n}.tif" for n in LABELS])
    with rasterio.open(folder / f"{stamps[0]}.tif") as chip:
        assert chip.transform.c == 499980 + 10 * row["col"] and chip.transform.f == 5000040 - 10 * row["row"]
        assert chip.descriptions == ("B02", "B05", "B01", "B08") and chip.scales == (0.0001,) * 4
        assert chip.crs.to_epsg() == 32633 and chip.nodata == 0
    with rasterio.open(folder / "label_class.tif") as chip:
        assert chip.transform.a == 5.0 and chip.shape == (72, 72) and chip.nodata == 255


def test_index_and_card(source):
    out = _export(source, "npz")
    ds = ExportedDataset(out)
    index = pyogrio.read_dataframe(out / "index.gpkg")
    assert len(index) == len(ds) and index.crs.to_epsg() == 32633
    card = json.loads((out / "dataset.json").read_text())
    train_values = {b: [] for b in card["bands"]}
    for i, row in enumerate(ds.rows):
        feature = index.iloc[i]
        assert feature["sample_id"] == row["sample_id"] and feature["split"] == row["split"]
        assert (out / feature["path"]).is_file() and feature["n_dates"] == row["n_dates"]
        x0, y1 = 499980 + 10 * row["col"], 5000040 - 10 * row["row"]
        assert shapely.equals(feature.geometry, shapely.box(x0, y1 - 360, x0 + 360, y1))
        s = ds[i]
        cls = s["labels"]["class"]
        expected = {str(c): int(n) for c, n in zip(*np.unique(cls[cls != 255], return_counts=True))}
        assert json.loads(feature["class_hist"]) == expected
        if row["split"] == "train":
            for c, band in enumerate(card["bands"]):
                v = s["images"][:, c].astype(float) * s["scale"][:, c, None, None] + s["offset"][:, c, None, None]
                train_values[band].append(v[s["images"][:, c] != 0])
    for band, chunks in train_values.items():
        values = np.concatenate(chunks)
        stats = card["normalisation"]["bands"][band]
        assert stats["pixels"] == values.size
        assert stats["mean"] == pytest.approx(values.mean(), abs=1e-6)
        assert stats["std"] == pytest.approx(values.std(), abs=1e-6)
    per_split = {s: sum(r["split"] == s for r in ds.rows) for s in ("train", "val", "test")}
    assert {s: v["samples"] for s, v in card["splits"].items()} == per_split
    assert card["attribution"] == "Contains modified Copernicus Sentinel data 2023"
    assert [s["datetime"] for s in card["sources"]] == card["dates"] and len(card["dates"]) == 4
    assert card["class_table"] and {r["class_id"] for r in card["class_table"]} >= {1, 2, 3, 4}
    md = (out / "dataset.md").read_text()
    assert "Contains modified Copernicus Sentinel data 2023" in md and f"| train | {per_split['train']} |" in md


def test_torch_module_imports_without_torch():
    assert hasattr(torch_dataset, "pad_collate")
    try:
        import torch  # noqa: F401
    except ImportError:
        with pytest.raises(SatPluginError, match="needs PyTorch"):
            torch_dataset.PatchDataset


def test_export_and_reader_work_without_torch(source, tmp_path):
    """torch unimportable (even where it is installed): export and read; PatchDataset names what is missing."""
    src, _, labels, _ = source
    out = tmp_path / "out"
    code = f"""import sys
sys.modules["torch"] = None  # 'import torch' now raises ImportError
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import ExportedDataset, ExportOptions, run, torch_dataset
res = run(ExportOptions({str(src)!r}, {str(out)!r}, labels={{"class": {str(labels["class"])!r}}}, label_scale={K},
                        patch_size=36))
assert len(ExportedDataset({str(out)!r})) == res.n_samples > 0
try:
    torch_dataset.PatchDataset
    raise SystemExit("PatchDataset was built without torch")
except SatPluginError as exc:
    assert "needs PyTorch" in str(exc), exc
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}  # 'satplugin' as conftest links it
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.parametrize("fmt", FORMATS)
def test_torch_dataset_yields_the_same_values(source, fmt):
    torch = pytest.importorskip("torch")
    if fmt == "zarr":
        pytest.importorskip("zarr")
    out = _export(source, fmt)
    numpy_ds = ExportedDataset(out, split="train")
    torch_ds = torch_dataset.PatchDataset(out, split="train", reflectance=True)
    assert isinstance(torch_ds, torch.utils.data.Dataset) and len(torch_ds) == len(numpy_ds)
    item, ref = torch_ds[0], numpy_ds[0]
    expected = ref["images"] * ref["scale"][:, :, None, None] + ref["offset"][:, :, None, None]
    np.testing.assert_allclose(item["images"].numpy(), expected, rtol=1e-6)
    np.testing.assert_array_equal(item["labels"]["class"].numpy(), ref["labels"]["class"])
    assert item["doy"].tolist() == ref["doy"].tolist() and item["dates"] == ref["dates"]
    loader = torch.utils.data.DataLoader(torch_ds, batch_size=4, collate_fn=torch_dataset.pad_collate)
    batch = next(iter(loader))
    assert batch["images"].shape[0] == min(4, len(torch_ds)) and batch["date_mask"].dtype == torch.bool
