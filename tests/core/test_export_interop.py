"""The export read by the field's own tools: xarray (zarr), pystac (STAC), mlcroissant, TorchGeo.

Each test asserts what the tool reads against the source rasters or the export's own
tables: pixel values, dates, coordinates, splits, checksums, validation results.
"""
import glob
import hashlib
import json
from datetime import datetime
from pathlib import PurePosixPath

import numpy as np
import pyproj
import pytest
import shapely
from pyproj import Transformer

from satplugin.qgis_satplugin.core.export import ExportedDataset
from satplugin.qgis_satplugin.core.export.samples_table import read_samples_csv
from satplugin.qgis_satplugin.core.grid import PixelGrid

from .test_export_helpers import (CRS, X0, Y0, export, image_paths, make_folder, parcel_labels, read_window,
                                  write_label)

K = 2  # label pixels per image pixel
PATCH = 32
BANDS = ("B02", "B05", "B01", "B08")


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """4 dates (clouds on two, so series lengths differ), class and parcel-id labels at 5 m."""
    tmp = tmp_path_factory.mktemp("interop")
    src, grid, dates = make_folder(tmp, width=120, height=96, n_dates=4, cloud_cover=[0, 35, 0, 20], bands=BANDS)
    return src, parcel_labels(tmp, grid, K, 24, seed=3), dates, tmp


def _export(source, fmt, band_resolution="resample"):
    """Overlapping 32 px patches (stride 24), or 60 px native-resolution ones; exported once per module."""
    src, labels, _, tmp = source
    out = tmp / f"{fmt}_{band_resolution}"
    if not out.exists():
        native = band_resolution == "native"
        export(src, out, labels=labels, label_scale=K, patch_size=60 if native else PATCH,
               stride=60 if native else PATCH - 8, band_resolution=band_resolution, max_cloud=10, format=fmt,
               split_block_size=1000 if native else 48, split_ratios=(0.5, 0.25, 0.25), seed=1)
    return out


def _utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


# --- xarray --------------------------------------------------------------------------------


def test_zarr_opens_in_xarray_as_a_labelled_dataset(source):
    xr = pytest.importorskip("xarray")
    src, _, dates, _ = source
    out = _export(source, "zarr")
    rows = read_samples_csv(out)
    ds = xr.open_zarr(out / "dataset.zarr", chunks=None, mask_and_scale=False)
    longest = max(r["n_dates"] for r in rows)
    assert ds["images"].dims == ("sample", "time", "band", "y", "x")
    assert ds["images"].shape == (len(rows), longest, len(BANDS), PATCH, PATCH) and ds["images"].dtype == np.uint16
    assert ds["label_class"].dims == ("sample", "y_label", "x_label") and ds["label_class"].shape[1:] == (PATCH * K,) * 2
    assert ds["sample"].values.tolist() == [r["sample_id"] for r in rows]
    assert ds["band"].values.tolist() == list(BANDS)
    assert [str(d) for d in ds["dates"].values] == [f"{d:%Y-%m-%dT%H:%M:%SZ}" for d in dates]
    assert {"date", "x_coord", "y_coord", "x_coord_label", "y_coord_label", "spatial_ref"} <= set(ds.coords)
    assert ds["spatial_ref"].attrs["crs_wkt"] == pyproj.CRS.from_epsg(32633).to_wkt("WKT1_GDAL") and ds["images"].attrs["grid_mapping"] == "spatial_ref"
    files = image_paths(src)
    short = next(r for r in rows if r["n_dates"] < longest)  # a sample whose series is padded
    for r in (rows[0], short):
        s = ds.sel(sample=r["sample_id"])
        t = r["n_dates"]
        # Pixel values: the source rasters' window at this sample's dates, and no-data padding after them.
        for slot, date_i in enumerate(r["date_index"]):
            np.testing.assert_array_equal(s["images"].values[slot], read_window(files[date_i], r["row"], r["col"], PATCH))
        assert (s["images"].values[t:] == 0).all()
        # Dates: decoded to datetime64, NaT on padding.
        expected = np.array([np.datetime64(_utc(d).replace(tzinfo=None), "ns") for d in r["dates"]])
        np.testing.assert_array_equal(s["date"].values[:t], expected)
        assert np.isnat(s["date"].values[t:]).all()
        # Coordinates: pixel centres of this patch, 10 m for the images and 5 m for the labels.
        x0, y1 = X0 + 10 * r["col"], Y0 - 10 * r["row"]
        np.testing.assert_allclose(s["x_coord"].values, x0 + 5 + 10 * np.arange(PATCH))
        np.testing.assert_allclose(s["y_coord"].values, y1 - 5 - 10 * np.arange(PATCH))
        np.testing.assert_allclose(s["x_coord_label"].values, x0 + 2.5 + 5 * np.arange(PATCH * K))
        assert s["transform"].values.tolist() == [10.0, 0.0, x0, 0.0, -10.0, y1]
        assert ["train", "val", "test"][int(s["split"])] == r["split"]
    # Default decoding masks the no-data (0) and the padding as NaN.
    masked = xr.open_zarr(out / "dataset.zarr", chunks=None)["images"].sel(sample=short["sample_id"]).values
    assert np.isnan(masked[short["n_dates"]:]).all() and not np.isnan(masked[: short["n_dates"]]).any()
    assert ds["split"].attrs["flag_meanings"] == "train val test"


def test_zarr_native_resolution_groups_have_their_own_dimensions(source):
    xr = pytest.importorskip("xarray")
    out = _export(source, "zarr", "native")
    ds = xr.open_zarr(out / "dataset.zarr", chunks=None, mask_and_scale=False)
    assert ds["images_10m"].dims == ("sample", "time", "band_10m", "y", "x") and ds["images_10m"].shape[-1] == 60
    assert ds["images_20m"].dims == ("sample", "time", "band_20m", "y_20m", "x_20m") and ds["images_20m"].shape[-1] == 30
    assert ds["images_60m"].shape[-1] == 10
    assert ds["band_10m"].values.tolist() == ["B02", "B08"] and ds["band_20m"].values.tolist() == ["B05"]
    assert ds["band"].values.tolist() == list(BANDS)  # every band, the axis of date_scale/date_offset
    assert ds["date_scale"].dims == ("series_date", "band")
    reference = ExportedDataset(out)
    first = reference[0]
    x0 = first["transform"][2]
    np.testing.assert_allclose(ds["x_coord_20m"].values[0], x0 + 10 + 20 * np.arange(30))
    np.testing.assert_allclose(ds["x_coord_60m"].values[0], x0 + 30 + 60 * np.arange(10))
    np.testing.assert_array_equal(ds["images_20m"].values[0, : len(first["dates"])], first["images_20m"])


def test_zarr_stores_of_the_earlier_layout_still_read_back(source, tmp_path):
    """Stores written before dimension names kept labels in a 'labels' group and ids in 'sample_id'."""
    zarr = pytest.importorskip("zarr")
    import shutil

    out = tmp_path / "old"
    shutil.copytree(_export(source, "zarr"), out)
    new = ExportedDataset(out)
    expected = [new[i] for i in (0, len(new) - 1)]
    group = zarr.open_group(str(out / "dataset.zarr"), mode="r+")
    for name in ("class", "id"):
        group.create_dataset(f"labels/{name}", data=group[f"label_{name}"][:])
        del group[f"label_{name}"]
    group.create_dataset("sample_id", data=group["sample"][:])
    del group["sample"]
    zarr.consolidate_metadata(group.store)
    old = ExportedDataset(out)
    for want, i in zip(expected, (0, len(old) - 1)):
        got = old[i]
        assert got["sample_id"] == want["sample_id"] and got["dates"] == want["dates"]
        np.testing.assert_array_equal(got["images"], want["images"])
        for name in ("class", "id"):
            np.testing.assert_array_equal(got["labels"][name], want["labels"][name])


def _without_nodata(paths: list, folder, zero_cols: int = 3) -> list:
    """Copies of ``paths`` that declare no no-data value, their first ``zero_cols`` columns real zeros."""
    import rasterio

    folder.mkdir()
    out = []
    for p in paths:
        with rasterio.open(p) as ds:
            data, profile, tags, descriptions = ds.read(), ds.profile, ds.tags(), ds.descriptions
        data[:, :, :zero_cols] = 0
        profile.update(nodata=None)
        target = folder / p.name
        with rasterio.open(target, "w", **profile) as dst:
            dst.write(data)
            dst.update_tags(**tags)
            dst.descriptions = descriptions
        out.append(target)
    return out


def test_zarr_declares_a_fill_value_only_for_inputs_with_no_data(source, tmp_path):
    """Without a no-data value in the inputs, xarray must not turn real zeros (images or labels) into NaN."""
    xr = pytest.importorskip("xarray")
    zarr = pytest.importorskip("zarr")
    src, _, _, tmp = source
    images = _without_nodata(image_paths(src), tmp_path / "images")
    grid = PixelGrid.square(CRS, X0, Y0, 10.0, 120, 96)
    coverage = np.zeros((96, 120), dtype=np.uint8)
    coverage[:, 60:] = 100  # a coverage-like label, 0 a real value, no no-data declared
    cov = write_label(tmp_path / "id.tif", coverage.astype(np.int32), grid)
    out = tmp_path / "zarr"
    export(images, out, labels={"id": cov}, patch_size=PATCH, format="zarr", split_block_size=1000)
    group = zarr.open_consolidated(str(out / "dataset.zarr"), mode="r")
    assert group["images"].fill_value is None and group["label_id"].fill_value is None
    ds = xr.open_zarr(out / "dataset.zarr", chunks=None)
    assert "_FillValue" not in ds["images"].encoding and "_FillValue" not in ds["label_id"].encoding
    first = ds["images"].sel(sample="r00000_c00000").values
    assert ds["images"].dtype == np.uint16 and (first[..., :3] == 0).all()  # real zeros stay zeros
    np.testing.assert_array_equal(first[0], read_window(images[0], 0, 0, PATCH))
    ids = ds["label_id"].sel(sample="r00000_c00000").values  # columns 0..31: coverage 0
    assert ds["label_id"].dtype == np.int32 and (ids == 0).all()
    assert (ds["label_id"].sel(sample="r00000_c00064").values == 100).all()
    card = json.loads((out / "dataset.json").read_text())
    assert card["nodata"] is None and card["labels"]["id"]["nodata"] is None
    # The same rasters with no-data 0 (the download step's): fill value 0, masked as NaN by xarray.
    masked_out = tmp_path / "masked"
    export(src, masked_out, patch_size=PATCH, format="zarr", split_block_size=1000)
    assert zarr.open_consolidated(str(masked_out / "dataset.zarr"), mode="r")["images"].fill_value == 0
    assert xr.open_zarr(masked_out / "dataset.zarr", chunks=None)["images"].encoding["_FillValue"] == 0


def test_geotiff_chips_declare_no_data_only_when_the_inputs_do(source, tmp_path):
    import rasterio

    src, _, _, _ = source
    images = _without_nodata(image_paths(src), tmp_path / "images")
    grid = PixelGrid.square(CRS, X0, Y0, 10.0, 120, 96)
    ids = write_label(tmp_path / "id.tif", np.zeros((96, 120), dtype=np.int32), grid)
    out = tmp_path / "geotiff"
    export(images, out, labels={"id": ids}, patch_size=PATCH, format="geotiff", split_block_size=1000)
    folder = out / ExportedDataset(out).rows[0]["path"]
    chips = sorted(folder.glob("*.tif"))
    assert len(chips) > 1
    for chip in chips:
        with rasterio.open(chip) as ds:
            assert ds.nodata is None, chip.name


# --- STAC ----------------------------------------------------------------------------------

LABEL_FIELDS = {"label:type", "label:properties", "label:description", "label:tasks", "label:classes", "label:overviews"}
ML_AOI_ASSET_FIELDS = {"ml-aoi:role", "ml-aoi:reference-grid", "ml-aoi:resampling-method"}
EXTENSIONS = {
    "https://stac-extensions.github.io/label/v1.0.1/schema.json",
    "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json",
    "https://stac-extensions.github.io/projection/v2.0.0/schema.json",
}


@pytest.fixture
def offline(monkeypatch):
    """Any attempt to fetch a schema (or anything else) over the network fails the test."""
    import urllib.request

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[:1]}")

    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def _validator():
    pytest.importorskip("pystac")
    pytest.importorskip("referencing", reason="pystac validation needs jsonschema>=4.18 (pystac[validation])")
    from pystac.validation import JsonSchemaSTACValidator

    return JsonSchemaSTACValidator()


def _ring(transformer, x0, y1, size):
    xs = [x0, x0 + size, x0 + size, x0, x0]
    ys = [y1 - size, y1 - size, y1, y1, y1 - size]
    lon, lat = transformer.transform(xs, ys)
    return list(zip(lon, lat))


@pytest.mark.parametrize("fmt", ["npz", "geotiff", "zarr"])
def test_stac_catalog_validates_offline_and_describes_every_sample(source, fmt, offline):
    validator = _validator()
    import pystac
    from pystac.extensions.label import LabelExtension, LabelType
    from pystac.stac_object import STACObjectType

    out = _export(source, fmt)
    rows = read_samples_csv(out)
    card = json.loads((out / "dataset.json").read_text())
    class_ids = sorted(r["class_id"] for r in card["class_table"])
    collection = pystac.Collection.from_file(str(out / "collection.json"))
    # Core STAC 1.1 schemas (shipped with pystac): the collection and every item, as written on disk.
    uri = validator.validate_core(json.loads((out / "collection.json").read_text()), STACObjectType.COLLECTION, "1.1.0")
    assert uri == "https://schemas.stacspec.org/v1.1.0/collection-spec/json-schema/collection.json"
    items = list(collection.get_items())
    assert [it.id for it in items] == [r["sample_id"] for r in rows]
    assert collection.license == "other" and card["licence_terms"]["stac_license"] == "other"
    assert collection.get_single_link("license").href == card["licence_terms"]["url"]
    assert collection.summaries.get_list("ml-aoi:split") == ["train", "validate", "test"]
    ext_bbox = collection.extent.spatial.bboxes[0]
    assert collection.extent.temporal.intervals[0] == [_utc(card["dates"][0]), _utc(card["dates"][-1])]
    to_wgs84 = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    reference = ExportedDataset(out)
    for i, (item, row) in enumerate(zip(items, rows)):
        raw = json.loads((out / "stac" / f"{row['sample_id']}.json").read_text())
        assert validator.validate_core(raw, STACObjectType.ITEM, "1.1.0").endswith("item-spec/json-schema/item.json")
        # The extension schemas cannot be fetched offline: their fields are checked here instead.
        assert set(raw["stac_extensions"]) == EXTENSIONS
        props = item.properties
        assert {k for k in props if k.startswith("label:")} <= LABEL_FIELDS
        assert {k for k in props if k.startswith("ml-aoi:")} == {"ml-aoi:split"}
        assert props["ml-aoi:split"] == {"train": "train", "val": "validate", "test": "test"}[row["split"]]
        x0, y1 = X0 + 10 * row["col"], Y0 - 10 * row["row"]
        size = 10 * PATCH
        assert props["proj:code"] == "EPSG:32633" and props["proj:shape"] == [PATCH, PATCH]
        assert props["proj:transform"] == [10.0, 0.0, x0, 0.0, -10.0, y1]
        assert props["proj:bbox"] == [x0, y1 - size, x0 + size, y1]
        # Footprint: the patch's corners in WGS 84, counter-clockwise.
        np.testing.assert_allclose(item.geometry["coordinates"][0], _ring(to_wgs84, x0, y1, size), atol=1e-7)
        poly = shapely.geometry.shape(item.geometry)
        assert poly.exterior.is_ccw and np.allclose(item.bbox, poly.bounds, atol=1e-12)
        assert ext_bbox[0] <= item.bbox[0] and ext_bbox[2] >= item.bbox[2] and ext_bbox[1] <= item.bbox[1]
        # Dates: a range, the sample's first and last.
        assert item.datetime is None
        assert props["start_datetime"] == row["dates"][0] and props["end_datetime"] == row["dates"][-1]
        # Labels, read through pystac's label extension.
        label = LabelExtension.ext(item)
        assert label.label_type == LabelType.RASTER and label.label_properties is None
        assert [c.to_dict() for c in label.label_classes] == [{"name": None, "classes": class_ids}]
        cls = reference[i]["labels"]["class"]
        values, counts = np.unique(cls[cls != 255], return_counts=True)
        assert {c.name: c.count for c in label.label_overviews[0].counts} == dict(zip(map(str, values.tolist()), counts.tolist()))
        for key, asset in raw["assets"].items():
            assert {k for k in asset if k.startswith("ml-aoi:")} <= ML_AOI_ASSET_FIELDS
            assert asset["ml-aoi:role"] == ("label" if key.startswith("label") else "feature")
            assert (out / "stac" / asset["href"]).resolve().exists(), asset["href"]
        _check_assets(fmt, raw["assets"], row)


def _check_assets(fmt, assets, row):
    if fmt == "geotiff":
        stamps = [d.replace("-", "").replace(":", "")[:15] for d in row["dates"]]
        images = {k: a for k, a in assets.items() if k.startswith("image_")}
        assert list(images) == [f"image_{s}" for s in stamps]
        assert [a["datetime"] for a in images.values()] == row["dates"]
        assert all(a["href"] == f"../{row['path']}/{s}.tif" for a, s in zip(images.values(), stamps))
        assert images[f"image_{stamps[0]}"]["bands"] == [{"name": b} for b in BANDS]
        label = assets["label_class"]
        assert label["proj:shape"] == [PATCH * K] * 2 and label["proj:transform"][0] == 5.0
    else:
        path = "../dataset.zarr" if fmt == "zarr" else f"../{row['path']}"
        assert assets["images"]["href"] == assets["labels"]["href"] == path
        assert set(assets) == {"images", "labels"}
        if fmt == "zarr":
            assert assets["images"]["description"].startswith(f"sample {row['index']} ")
            assert assets["images"]["type"] == "application/vnd+zarr"


@pytest.mark.parametrize("fmt", ["npz", "geotiff", "zarr", "deepsatdata"])
def test_a_rerun_elsewhere_and_later_writes_the_same_bytes_and_lists_them(source, fmt, tmp_path, monkeypatch):
    """Every file, in another folder, with Python's clock a day and a second later."""
    import time

    src, labels, _, _ = source
    runs = [tmp_path / "a", tmp_path / "later" / "b"]
    runs[1].parent.mkdir()
    export(src, runs[0], labels=labels, label_scale=K, patch_size=PATCH, format=fmt, split_block_size=48)
    clock = time.time
    monkeypatch.setattr(time, "time", lambda: clock() + 86401.0)
    export(src, runs[1], labels=labels, label_scale=K, patch_size=PATCH, format=fmt, split_block_size=48)
    card = json.loads((runs[0] / "dataset.json").read_text())
    items = sorted(p.name for p in (runs[0] / "stac").iterdir())
    assert items == sorted(f"{r['sample_id']}.json" for r in read_samples_csv(runs[0]))
    assert {"collection.json", "croissant.json", "stac/"} | {f"stac/{n}" for n in items} <= set(card["contents"])
    files = sorted(str(p.relative_to(runs[0])) for p in runs[0].rglob("*") if p.is_file())
    assert files == sorted(str(p.relative_to(runs[1])) for p in runs[1].rglob("*") if p.is_file())
    assert len(files) > len(items) + 5
    for rel in files:
        assert _sha256(runs[0] / rel) == _sha256(runs[1] / rel), rel


def test_the_crs_text_is_gdal_wkt1_for_an_epsg_crs_and_wkt2_otherwise():
    utm = PixelGrid.square("EPSG:32633", X0, Y0, 10.0, 4, 4)
    assert utm.crs_wkt() == pyproj.CRS.from_epsg(32633).to_wkt("WKT1_GDAL")
    assert utm.crs_wkt().endswith('AUTHORITY["EPSG","32633"]]')
    custom = PixelGrid.square("+proj=tmerc +lat_0=0 +lon_0=14.5 +k=0.9996 +x_0=500000 +ellps=GRS80 +units=m", X0, Y0, 10.0, 4, 4)
    assert custom.crs_wkt().startswith("PROJCRS[") and pyproj.CRS.from_wkt(custom.crs_wkt()) == custom.pyproj_crs()


# --- Croissant -----------------------------------------------------------------------------


def _sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fmt", ["npz", "geotiff", "zarr"])
def test_croissant_validates_with_mlcroissant_and_reads_the_samples(source, fmt):
    mlc = pytest.importorskip("mlcroissant")
    out = _export(source, fmt)
    rows = read_samples_csv(out)
    card = json.loads((out / "dataset.json").read_text())
    dataset = mlc.Dataset(jsonld=out / "croissant.json")  # raises mlc.ValidationError on any error
    issues = dataset.metadata.ctx.issues
    assert not issues.errors
    # Only the recommended properties a deterministic export cannot fill (no clock, no release version).
    assert all("datePublished" in w or "version" in w for w in issues.warnings), issues.warnings
    records = list(dataset.records("samples"))
    assert [r["samples/sample_id"].decode() for r in records] == [r["sample_id"] for r in rows]
    assert [r["samples/split"].decode() for r in records] == [r["split"] for r in rows]
    assert [r["samples/path"].decode() for r in records] == [r["path"] for r in rows]
    assert [r["samples/n_dates"] for r in records] == [r["n_dates"] for r in rows]
    assert [r["samples/dates"].decode().split(";") for r in records] == [r["dates"] for r in rows]
    splits = {r["splits/name"]: r["splits/url"] for r in dataset.records("splits")}
    assert splits == {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}
    classes = [(r["classes/class_id"], r["classes/name"]) for r in dataset.records("classes")]
    assert classes == [(t["class_id"], t["name"]) for t in card["class_table"]]
    doc = json.loads((out / "croissant.json").read_text())
    files = {d["@id"]: d for d in doc["distribution"]}
    for name in ("samples.csv", "index.gpkg", "collection.json"):
        assert files[name]["sha256"] == _sha256(out / name)
    # The FileSet's glob pattern picks exactly the sample files.
    found = sorted(p for p in glob.glob(files["sample-files"]["includes"], root_dir=out, recursive=True, include_hidden=True)
                   if (out / p).is_file())
    if fmt == "npz":
        assert found == sorted(r["path"] for r in rows)
    elif fmt == "geotiff":
        assert {str(PurePosixPath(p).parent) for p in found} == {r["path"] for r in rows}
        assert len(found) == sum(r["n_dates"] + 2 for r in rows)  # a chip per date, two label chips
    else:  # the whole store: its metadata and every chunk
        assert {"dataset.zarr/.zmetadata", "dataset.zarr/images/0.0.0.0.0"} <= set(found)
        assert all(p.startswith("dataset.zarr/") for p in found)
    assert doc["license"] == card["licence_terms"]["url"] and doc["citeAs"] == card["attribution"]


# --- TorchGeo ------------------------------------------------------------------------------


def _torchgeo():
    """TorchGeo, or a skip: it is not installable next to this project's CPU torch (see the README)."""
    try:
        import torchgeo.samplers
    except Exception as exc:  # ImportError, or a torchvision built for another torch (RuntimeError/OSError)
        pytest.skip(f"TorchGeo is not usable here: {type(exc).__name__}: {exc}")
    return torchgeo


@pytest.mark.parametrize("fmt", ["npz", "zarr"])
def test_torchgeo_sampler_keeps_every_date(source, fmt):
    torchgeo = _torchgeo()
    import pandas as pd
    import torch
    from torchgeo.samplers import PreChippedGeoSampler, RandomGeoSampler

    from satplugin.qgis_satplugin.core.export import torch_dataset
    from satplugin.qgis_satplugin.core.export.torchgeo_dataset import ExportedGeoDataset

    out = _export(source, fmt)
    ds = ExportedGeoDataset(out, split="train")
    reference = ExportedDataset(out, split="train")
    assert isinstance(ds, torchgeo.datasets.GeoDataset) and len(ds) == len(reference) > 1
    by_id = {reference.rows[i]["sample_id"]: reference[i] for i in range(len(reference))}
    seen = []
    for query in PreChippedGeoSampler(ds):
        sample = ds[query]
        ref = by_id[sample["sample_id"]]
        assert sample["dates"] == ref["dates"] and sample["image"].shape == (len(ref["dates"]), 4, PATCH, PATCH)
        np.testing.assert_array_equal(sample["image"].numpy(), ref["images"])
        np.testing.assert_array_equal(sample["mask"].numpy(), ref["labels"]["class"])
        assert sample["doy"].tolist() == ref["doy"].tolist()
        seen.append(sample["sample_id"])
    assert sorted(seen) == sorted(by_id)
    # A time of interest keeps the dates inside it, not a mosaic of them.
    ref_id = next(i for i, d in by_id.items() if len(d["dates"]) > 2)
    ref = by_id[ref_id]
    toi = pd.Interval(pd.Timestamp(ref["dates"][1][:-1]), pd.Timestamp(ref["dates"][-1][:-1]), closed="both")
    row = next(r for r in reference.rows if r["sample_id"] == ref_id)
    x0, y1 = X0 + 10 * row["col"], Y0 - 10 * row["row"]
    sample = ds[x0:x0 + 10 * PATCH, y1 - 10 * PATCH:y1, toi.left:toi.right]
    assert sample["dates"] == ref["dates"][1:]
    np.testing.assert_array_equal(sample["image"].numpy(), ref["images"][1:])
    # Random windows inside a sample: the same pixels as that sample's sub-window, every date kept.
    for query in RandomGeoSampler(ds, size=16, length=4, generator=torch.Generator().manual_seed(0)):
        sample = ds[query]
        ref = by_id[sample["sample_id"]]
        r = next(r for r in reference.rows if r["sample_id"] == sample["sample_id"])
        col = int(round((query[0].start - (X0 + 10 * r["col"])) / 10))
        row_off = int(round(((Y0 - 10 * r["row"]) - query[1].stop) / 10))
        np.testing.assert_array_equal(sample["image"].numpy(), ref["images"][:, :, row_off:row_off + 16, col:col + 16])
        assert sample["mask"].shape == (16 * K, 16 * K) and sample["dates"] == ref["dates"]
    loader = torch.utils.data.DataLoader(ds, sampler=PreChippedGeoSampler(ds), batch_size=3,
                                         collate_fn=torch_dataset.pad_collate)
    batch = next(iter(loader))
    longest = max(len(d) for d in batch["dates"])
    assert batch["image"].shape == (3, longest, 4, PATCH, PATCH) and batch["mask"].shape == (3, PATCH * K, PATCH * K)
    assert batch["date_mask"].sum(dim=1).tolist() == [len(d) for d in batch["dates"]]
