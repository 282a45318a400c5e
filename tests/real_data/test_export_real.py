"""Export patches from real Sentinel-2 data: pixels, labels, dates, splits, real cloud masks.

Reads ../shared/data (or $SATPLUGIN_REAL_DATA) and is skipped when it is absent. The
Slovenia scenes carry no acquisition dates, so they are copied to tmp under invented dates
(the data README's rule); the export is only checked here, no model is trained on it.
"""
import json
import shutil
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import rasterio
import shapely

from satplugin.qgis_satplugin.core.export import ExportedDataset, ExportOptions, run
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.export.windows import axis_starts
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run as run_ground_truth
from satplugin.qgis_satplugin.core.grid import PixelGrid

# Invented dates, deliberately not in scene order, so that sorting by date is visible.
INVENTED_DATES = {0: "20210615", 1: "20210410", 2: "20210830", 3: "20210520", 4: "20210725"}
L1C_BANDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
CLOUD = (3, 8, 9, 10)


def _grid_of(path, scale=1) -> PixelGrid:
    with rasterio.open(path) as ds:
        g = PixelGrid.from_transform(ds.crs.to_wkt(), ds.transform, ds.width, ds.height)
    return PixelGrid(g.crs, g.x_min, g.y_max, g.pixel_width / scale, g.pixel_height / scale, g.width * scale, g.height * scale)


@pytest.fixture
def slovenia(real_data, tmp_path):
    scenes = real_data / "slovenia_s2_l1c"
    series = []
    for i, day in INVENTED_DATES.items():
        target = tmp_path / "scenes" / f"S2_L1C_{day}_scene{i}.tif"  # the date lives only in the name
        target.parent.mkdir(exist_ok=True)
        shutil.copy(scenes / f"scene_{i}.tif", target)
        series.append(target)
    polygons = gpd.read_file(scenes / "lulc_polygons.gpkg")
    labels = {}
    for k, names in ((1, ("class", "coverage")), (4, ("id",))):
        paths = {n: tmp_path / f"{n}_x{k}.tif" for n in names}
        run_ground_truth(GroundTruthOptions(
            polygons=tuple(shapely.to_wkb(np.asarray(polygons.geometry), hex=True).tolist()),
            class_values=tuple(polygons["LULC_ID"].tolist()), source_crs=polygons.crs.to_wkt(),
            grid=_grid_of(series[0], k),
            outputs=OutputPaths(class_raster=paths.get("class"), coverage_raster=paths.get("coverage"),
                                id_raster=paths.get("id")),
        ))
        labels[k] = paths
    return series, labels, polygons


def test_slovenia_scenes_export_pixel_exact_with_aligned_labels(slovenia, tmp_path):
    series, labels, polygons = slovenia
    messages = []
    res = run(ExportOptions(list(series), tmp_path / "out", labels=labels[1], patch_size=32, stride=24,
                            split_block_size=48, seed=0), Feedback(log=messages.append))
    assert res.bands == L1C_BANDS
    assert res.dates == [f"2021-{m}T00:00:00Z" for m in ("04-10", "05-20", "06-15", "07-25", "08-30")]
    assert any("assuming reflectance = 0.0001 x DN" in m for m in messages)
    rows, cols = axis_starts(101, 32, 24), axis_starts(100, 32, 24)
    assert rows.tolist() == [0, 24, 48, 69] and cols.tolist() == [0, 24, 48, 68]
    assert res.n_candidates == 16 and res.n_samples + sum(res.dropped.values()) == 16
    ds = ExportedDataset(tmp_path / "out")
    by_date = [series[i] for i in (1, 3, 0, 4, 2)]  # the scenes in date order
    with rasterio.open(labels[1]["class"]) as cls_ds:
        classes = cls_ds.read(1)
    flags = np.zeros((101, 100), dtype=np.uint8)
    for i, row in enumerate(ds.rows):
        s = ds[i]
        r, c = row["row"], row["col"]
        assert s["images"].shape == (5, 13, 32, 32)
        for t in range(5):
            with rasterio.open(by_date[t]) as src:
                np.testing.assert_array_equal(s["images"][t], src.read(window=((r, r + 32), (c, c + 32))))
        np.testing.assert_array_equal(s["labels"]["class"], classes[r : r + 32, c : c + 32])
        assert s["doy"].tolist() == [100, 140, 166, 206, 242]
        flags[r : r + 32, c : c + 32] |= 1 << ("train", "val", "test").index(row["split"])
    assert not np.isin(flags, [3, 5, 6, 7]).any(), "a pixel lies in patches of two splits"
    assert res.class_pixels["train"] and sum(int(k) > 0 for k in res.class_pixels["train"]) >= 3


def test_slovenia_x4_labels_sit_inside_their_polygons(slovenia, tmp_path):
    series, labels, polygons = slovenia
    run(ExportOptions(list(series), tmp_path / "out", labels=labels[4], label_scale=4, patch_size=32,
                      split_block_size=10000))
    ds = ExportedDataset(tmp_path / "out")
    fine = _grid_of(series[0], 4)
    geoms = polygons.geometry.values
    checked = 0
    rng = np.random.default_rng(0)
    for i, row in enumerate(ds.rows):
        ids = ds[i]["labels"]["id"]
        assert ids.shape == (128, 128)
        with rasterio.open(labels[4]["id"]) as src:
            np.testing.assert_array_equal(ids, src.read(1, window=((row["row"] * 4, row["row"] * 4 + 128), (row["col"] * 4, row["col"] * 4 + 128))))
        # A labelled fine pixel's centre lies in (or within half a pixel of) its parcel.
        rr, cc = np.nonzero(ids >= 0)
        for j in rng.choice(rr.size, min(40, rr.size), replace=False):
            x = fine.x_min + (row["col"] * 4 + cc[j] + 0.5) * fine.pixel_width
            y = fine.y_max - (row["row"] * 4 + rr[j] + 0.5) * fine.pixel_height
            assert shapely.distance(geoms[ids[rr[j], cc[j]]], shapely.Point(x, y)) <= 0.71 * fine.pixel_width
            checked += 1
    assert checked > 200


def _download_folder_29rkh(real_data: Path, folder: Path) -> Path:
    """A one-date download folder: B02/B03/B04/B08 at 100 m, SCL (200 m) repeated 2 x 2 onto that grid."""
    src = real_data / "s2_l2a_29RKH_100m"
    folder.mkdir()
    bands = ["B02", "B03", "B04", "B08"]
    arrays = []
    for band in bands:
        with rasterio.open(src / f"{band}.tif") as ds:
            arrays.append(ds.read(1))
            profile = ds.profile
    with rasterio.open(src / "SCL.tif") as ds:
        scl = ds.read(1)
        assert ds.transform.c == profile["transform"].c and ds.transform.a == 2 * profile["transform"].a
    scl = np.repeat(np.repeat(scl, 2, axis=0), 2, axis=1)  # nearest neighbour onto the 100 m grid
    when = json.loads((src / "S2A_29RKH_20200219_0_L2A.json").read_text())["properties"]["datetime"]
    stem = "20200219T113425_S2A_T29RKH"
    profile.update(count=4, driver="GTiff", compress="deflate")
    with rasterio.open(folder / f"{stem}.tif", "w", **profile) as out:
        out.write(np.stack(arrays))
        out.descriptions = tuple(bands)
        out.scales, out.offsets = (0.0001,) * 4, (0.0,) * 4
    profile.update(count=1, dtype="uint8")
    with rasterio.open(folder / f"{stem}_SCL.tif", "w", **profile) as out:
        out.write(scl, 1)
    t = profile["transform"]
    manifest = {
        "grid": {"crs": profile["crs"].to_wkt(), "transform": [t.a, t.b, t.c, t.d, t.e, t.f], "width": profile["width"],
                 "height": profile["height"], "pixel_size": 100.0},
        "bands": bands,
        "dates": [when],
        "files": [{"path": f"{stem}.tif", "kind": "image", "datetime": when, "product_id": "S2A_29RKH_20200219_0_L2A"},
                  {"path": f"{stem}_SCL.tif", "kind": "mask", "datetime": when}],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return scl


def test_real_scl_drops_cloudy_patches(real_data, tmp_path):
    scl = _download_folder_29rkh(real_data, tmp_path / "download")
    res = run(ExportOptions(tmp_path / "download", tmp_path / "out", patch_size=64, max_cloud=5,
                            split_block_size=100000, format="geotiff"))
    starts = axis_starts(1098, 64, 64)
    expected = {}
    for r in starts:
        for c in starts:
            window = scl[r : r + 64, c : c + 64]
            bad = 100.0 * (np.isin(window, CLOUD) | (window == 0)).mean()
            if bad <= 5 and not (window == 0).all():
                expected[(int(r), int(c))] = bad
    ds = ExportedDataset(tmp_path / "out")
    got = {(r["row"], r["col"]): r["cloud"][0] for r in ds.rows}
    assert got.keys() == expected.keys()
    for key, bad in expected.items():
        assert got[key] == pytest.approx(bad, abs=1e-4)
    assert 0 < len(got) < len(starts) ** 2 and any(v > 0 for v in got.values())
    dropped = len(starts) ** 2 - len(got)
    assert [n for why, n in res.dropped.items() if "max_cloud=5" in why] == [dropped]
    s = ds[len(ds) // 2]
    r, c = ds.rows[len(ds) // 2]["row"], ds.rows[len(ds) // 2]["col"]
    with rasterio.open(real_data / "s2_l2a_29RKH_100m" / "B04.tif") as b04:
        np.testing.assert_array_equal(s["images"][0, 2], b04.read(1, window=((r, r + 64), (c, c + 64))))
    assert s["dates"] == ["2020-02-19T11:34:25Z"] and res.samples_per_split["train"] == len(got)
    card = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert card["attribution"] == "Contains modified Copernicus Sentinel data 2020"
    assert card["sources"][0]["product_id"] == "S2A_29RKH_20200219_0_L2A"
