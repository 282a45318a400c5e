"""End-to-end export on synthetic download folders: pixels, labels, dates, filters."""
import json
import re
import shutil
import tracemalloc

import numpy as np
import pytest

from satplugin.qgis_satplugin.core.export import ExportedDataset
from satplugin.qgis_satplugin.core.export import windows as export_windows
from satplugin.qgis_satplugin.core.export.band_layout import block_mean
from satplugin.qgis_satplugin.core.export.windows import axis_starts
from satplugin.qgis_satplugin.core.feedback import Feedback

from .test_export_helpers import (X0, Y0, export, image_paths, make_folder, position_ids, read_window, utc,
                                  write_label)

ONE_BLOCK = 100000  # one split block over everything: no patch is dropped for the split


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("export"), n_dates=4)


def _by_position(ds: ExportedDataset) -> dict:
    return {(r["row"], r["col"]): ds[i] for i, r in enumerate(ds.rows)}


def test_patches_equal_the_source_pixels_at_their_offsets(folder, tmp_path):
    src, grid, dates = folder
    res = export(src, tmp_path / "out", patch_size=32, split_block_size=ONE_BLOCK)
    rows, cols = axis_starts(150, 32, 32), axis_starts(200, 32, 32)
    assert rows.tolist() == [0, 32, 64, 96, 118] and cols.tolist() == [0, 32, 64, 96, 128, 160, 168]
    ds = ExportedDataset(tmp_path / "out")
    samples = _by_position(ds)
    assert set(samples) == {(int(r), int(c)) for r in rows for c in cols}
    assert res.n_samples == len(samples) == 35
    files = image_paths(src)
    for (row, col), s in samples.items():
        assert s["images"].shape == (4, 4, 32, 32) and s["images"].dtype == np.uint16
        for t in range(4):
            np.testing.assert_array_equal(s["images"][t], read_window(files[t], row, col, 32))
        assert s["dates"] == ["2023-04-01T10:15:59Z", "2023-04-11T10:15:59Z", "2023-04-21T10:15:59Z", "2023-05-01T10:15:59Z"]
        assert s["doy"].tolist() == [91, 101, 111, 121]
        assert s["transform"] == (10.0, 0.0, X0 + 10 * col, 0.0, -10.0, Y0 - 10 * row)
        np.testing.assert_allclose(s["scale"], 0.0001)
        np.testing.assert_allclose(s["offset"], 0.0)
    assert s["bands"] == ["B02", "B03", "B04", "B08"]


@pytest.mark.parametrize("k", [1, 4])
def test_labels_align_with_the_patches(folder, tmp_path, k):
    src, grid, _ = folder
    ids = write_label(tmp_path / "id.tif", position_ids(grid, k), grid, scale=k, nodata=-1)
    export(src, tmp_path / "out", labels={"id": ids}, label_scale=k, patch_size=32, stride=24,
                   split_block_size=ONE_BLOCK)
    ds = ExportedDataset(tmp_path / "out")
    assert len(ds) == len(axis_starts(150, 32, 24)) * len(axis_starts(200, 32, 24)) == 6 * 8
    for i, r in enumerate(ds.rows):
        lab = ds[i]["labels"]["id"]
        assert lab.shape == (32 * k, 32 * k)
        expected = (k * r["row"] + np.arange(32 * k))[:, None] * 100000 + (k * r["col"] + np.arange(32 * k))[None, :]
        np.testing.assert_array_equal(lab, expected)


def test_labels_covering_part_of_the_images_read_as_nodata_outside(folder, tmp_path):
    src, grid, _ = folder
    k = 4
    full = position_ids(grid, k)
    # The label raster starts 40 label pixels right of and 8 below the image origin.
    part = write_label(tmp_path / "id.tif", full[8:300, 40:500].copy(), grid, scale=k, nodata=-1, row_off=8, col_off=40)
    export(src, tmp_path / "out", labels={"id": part}, label_scale=k, patch_size=32, split_block_size=ONE_BLOCK)
    s = _by_position(ExportedDataset(tmp_path / "out"))[(0, 0)]["labels"]["id"]
    expected = np.full((128, 128), -1, dtype=np.int32)
    expected[8:, 40:] = full[8:128, 40:128]
    np.testing.assert_array_equal(s, expected)


def test_overlapping_windows_share_identical_pixels(folder, tmp_path):
    src, _, _ = folder
    export(src, tmp_path / "out", patch_size=32, stride=16, split_block_size=ONE_BLOCK)
    samples = _by_position(ExportedDataset(tmp_path / "out"))
    assert len(samples) == len(axis_starts(150, 32, 16)) * len(axis_starts(200, 32, 16))
    a, b, c = samples[(16, 16)]["images"], samples[(16, 32)]["images"], samples[(32, 16)]["images"]
    np.testing.assert_array_equal(a[..., 16:], b[..., :16])
    np.testing.assert_array_equal(a[..., 16:, :], c[..., :16, :])


def test_season_across_new_year(tmp_path):
    dates = [utc(2022, 10, 20, 10), utc(2022, 11, 5, 10), utc(2022, 12, 30, 10), utc(2023, 1, 2, 10),
             utc(2023, 2, 27, 10), utc(2023, 3, 3, 10)]
    src, _, _ = make_folder(tmp_path, width=64, height=64, dates=dates)
    res = export(src, tmp_path / "out", patch_size=32, season_start="11-01", season_end="02-28",
                         split_block_size=ONE_BLOCK, format="deepsatdata")
    assert res.dates == ["2022-11-05T10:00:00Z", "2022-12-30T10:00:00Z", "2023-01-02T10:00:00Z", "2023-02-27T10:00:00Z"]
    ds = ExportedDataset(tmp_path / "out")
    s = ds[0]
    assert s["dates"] == res.dates
    assert s["doy"].tolist() == [309, 364, 2, 58]
    assert s["year"].tolist() == [2022, 2022, 2023, 2023]
    assert ds.rows[0]["path"].endswith("_2022.pickle")  # the season's first year names the file
    files = image_paths(src)
    np.testing.assert_array_equal(s["images"][2], read_window(files[3], 0, 0, 32))


def test_max_dates_subsamples_evenly_in_time(tmp_path):
    days = [0, 1, 2, 3, 10, 20, 30]
    dates = [utc(2023, 5, 1 + d, 10) for d in days]
    src, _, _ = make_folder(tmp_path, width=64, height=64, dates=dates)
    export(src, tmp_path / "out", patch_size=32, max_dates=3, split_block_size=ONE_BLOCK)
    ds = ExportedDataset(tmp_path / "out")
    files = image_paths(src)
    for i, r in enumerate(ds.rows):
        s = ds[i]
        assert s["dates"] == ["2023-05-01T10:00:00Z", "2023-05-11T10:00:00Z", "2023-05-31T10:00:00Z"]
        assert s["date_index"].tolist() == [0, 4, 6]
        np.testing.assert_array_equal(s["images"][1], read_window(files[4], r["row"], r["col"], 32))


def test_cloudy_and_empty_dates_are_dropped_per_patch(tmp_path):
    scl = np.full((64, 96), 4, dtype=np.uint8)
    scl[0:32, 0:32] = 9  # patch (0, 0): all cloud on date 1
    scl[0:32, 32:40] = 3  # patch (0, 32): 25 % cloud shadow on date 1
    scl[32:64, 64:68] = 10  # patch (32, 64): 12.5 % cirrus on date 1
    src, grid, dates = make_folder(tmp_path, width=96, height=64, n_dates=3, scl={1: scl}, nodata_cols={2: 40})
    res = export(src, tmp_path / "out", patch_size=32, max_cloud=20, split_block_size=ONE_BLOCK)
    got = {(r["row"], r["col"]): (r["date_index"], r["cloud"]) for r in ExportedDataset(tmp_path / "out").rows}
    # Date 2 has no data in columns 0..39: patches at column 0 are empty (always dropped),
    # patches at column 32 are 25 % no-data (over max_cloud=20).
    assert got[(0, 0)] == ([0], [0.0])
    assert got[(0, 32)] == ([0], [0.0])
    assert got[(0, 64)] == ([0, 1, 2], [0.0, 0.0, 0.0])
    assert got[(32, 0)] == ([0, 1], [0.0, 0.0])
    assert got[(32, 32)] == ([0, 1], [0.0, 0.0])
    assert got[(32, 64)] == ([0, 1, 2], [0.0, 12.5, 0.0])
    assert res.n_samples == 6
    # With max_cloud=100 the 25 % dates come back, the all-empty ones do not.
    export(src, tmp_path / "all", patch_size=32, max_cloud=100, split_block_size=ONE_BLOCK)
    got = {(r["row"], r["col"]): (r["date_index"], r["cloud"]) for r in ExportedDataset(tmp_path / "all").rows}
    assert got[(0, 0)] == ([0, 1], [0.0, 100.0])
    assert got[(0, 32)] == ([0, 1, 2], [0.0, 25.0, 25.0])


def test_min_dates_counts_the_dropped_patches(tmp_path):
    scl = np.full((64, 64), 5, dtype=np.uint8)
    scl[:32, :32] = 8
    src, _, _ = make_folder(tmp_path, width=64, height=64, n_dates=3, scl={0: scl, 2: scl})
    res = export(src, tmp_path / "out", patch_size=32, max_cloud=0, min_dates=2, split_block_size=ONE_BLOCK)
    assert res.n_samples == 3
    assert [n for why, n in res.dropped.items() if "min_dates" in why] == [1]
    assert (0, 0) not in {(r["row"], r["col"]) for r in ExportedDataset(tmp_path / "out").rows}


def test_min_labelled_keeps_patches_with_enough_labelled_pixels(folder, tmp_path):
    src, grid, _ = folder
    classes = np.zeros((150, 200), dtype=np.uint8)
    classes[:, :80] = 3  # columns 0..79 labelled
    classes[:10, :] = 255  # no-data rows count as unlabelled
    cls = write_label(tmp_path / "class.tif", classes, grid, nodata=255)
    res = export(src, tmp_path / "out", labels={"class": cls}, patch_size=32, min_labelled=0.5,
                         split_block_size=ONE_BLOCK)
    kept = {(r["row"], r["col"]) for r in ExportedDataset(tmp_path / "out").rows}
    expected = set()
    for r in axis_starts(150, 32, 32):
        for c in axis_starts(200, 32, 32):
            window = classes[r : r + 32, c : c + 32]
            if ((window > 0) & (window != 255)).mean() >= 0.5:
                expected.add((int(r), int(c)))
    # Columns 0 and 32 in every row; column 64 (exactly half labelled) except in row 0 (no-data rows).
    assert kept == expected and len(kept) == 14
    assert res.dropped["under min_labelled=0.5 labelled share"] == 35 - 14
    # Label pixels under the kept patches, each once (rows 96 and 118, shifted inward, overlap).
    covered = np.zeros(classes.shape, dtype=bool)
    for r, c in kept:
        covered[r : r + 32, c : c + 32] = True
    counts = {"0": int((covered & (classes == 0)).sum()), "3": int((covered & (classes == 3)).sum())}
    assert res.class_pixels["train"] == counts


def test_native_band_resolution_block_averages_coarse_bands(tmp_path):
    src, grid, _ = make_folder(tmp_path, width=132, height=120, n_dates=2, bands=("B02", "B05", "B01", "B08"))
    export(src, tmp_path / "out", patch_size=60, band_resolution="native", split_block_size=ONE_BLOCK)
    ds = ExportedDataset(tmp_path / "out")
    samples = _by_position(ds)
    assert set(samples) == {(0, 0), (0, 60), (0, 72), (60, 0), (60, 60), (60, 72)}  # 132 - 60 = 72 = 12 x 6
    files = image_paths(src)
    for (row, col), s in samples.items():
        src_px = read_window(files[1], row, col, 60)  # [4, 60, 60]
        assert s["images_10m"].shape == (2, 2, 60, 60) and s["images_20m"].shape == (2, 1, 30, 30)
        assert s["images_60m"].shape == (2, 1, 10, 10)
        np.testing.assert_array_equal(s["images_10m"][1], src_px[[0, 3]])
        np.testing.assert_array_equal(s["images_20m"][1], block_mean(src_px[[1]], 2, 0))
        np.testing.assert_array_equal(s["images_60m"][1], block_mean(src_px[[2]], 6, 0))
    expected = np.rint(src_px[2, :6, :6].astype(float).mean())
    assert s["images_60m"][1, 0, 0, 0] == expected


def test_a_list_of_rasters_gives_the_same_dataset_as_the_folder(folder, tmp_path):
    src, _, _ = folder
    listed = tmp_path / "listed"
    listed.mkdir()
    paths = []
    for p in image_paths(src):
        # Masks are found beside the images by name (<stem>_SCL.tif); the list is given out of order.
        target = listed / p.name
        shutil.copy(p, target)
        shutil.copy(p.with_name(p.stem + "_SCL.tif"), listed / (p.stem + "_SCL.tif"))
        paths.append(target)
    masks = sorted(listed.glob("*_SCL.tif"))
    # Masks listed with the images are recognised as masks, not dates.
    export(list(reversed(paths)) + masks[:1], tmp_path / "a", patch_size=32, split_block_size=ONE_BLOCK,
                   max_cloud=50)
    export(src, tmp_path / "b", patch_size=32, split_block_size=ONE_BLOCK, max_cloud=50)
    a, b = ExportedDataset(tmp_path / "a"), ExportedDataset(tmp_path / "b")
    assert [r["date_index"] for r in a.rows] == [r["date_index"] for r in b.rows]
    for i in range(len(a)):
        np.testing.assert_array_equal(a[i]["images"], b[i]["images"])
        assert a[i]["dates"] == b[i]["dates"]


def test_dates_come_from_the_tag_when_the_name_has_none(tmp_path):
    import rasterio

    src, _, dates = make_folder(tmp_path, width=64, height=64, n_dates=2)
    paths = []
    for i, p in enumerate(image_paths(src)):
        target = tmp_path / f"scene_{1 - i}.tif"  # names without dates, in reverse order
        shutil.copy(p, target)
        paths.append(target)
    with rasterio.open(paths[0]) as ds:
        assert ds.tags()["ACQUISITION_DATETIME"] == "2023-04-01T10:15:59Z"
    export(paths, tmp_path / "out", patch_size=64, split_block_size=ONE_BLOCK)
    s = ExportedDataset(tmp_path / "out")[0]
    assert s["dates"] == ["2023-04-01T10:15:59Z", "2023-04-11T10:15:59Z"]
    np.testing.assert_array_equal(s["images"][0], read_window(paths[0], 0, 0, 64))


def test_peak_memory_does_not_grow_with_the_area(tmp_path, monkeypatch):
    """Streaming: a 4x larger raster needs about the same peak memory (one chunk of all dates).

    With an unbounded budget the peak grows from about 3.8 to 7.8 MB here; with a 1 MB
    budget it stays between 1.4 and 2 MB.
    """
    monkeypatch.setattr(export_windows, "CHUNK_BUDGET_BYTES", 1 << 20)
    sources = {side: make_folder(tmp_path, width=side, height=side, n_dates=6, name=f"dl{side}")[0] for side in (256, 512)}
    export(sources[256], tmp_path / "warm-up", patch_size=32, split_block_size=ONE_BLOCK)  # first-use imports
    peaks = {}
    for side, src in sources.items():
        tracemalloc.start()
        export(src, tmp_path / f"out{side}", patch_size=32, split_block_size=ONE_BLOCK)
        peaks[side] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # What may grow is per-sample metadata (index rows: ~2 kB a sample), not pixels: the
    # series grows by 9.4 MB, the peak by well under a tenth of that.
    series_growth = (512 * 512 - 256 * 256) * 4 * 2 * 6
    assert peaks[512] - peaks[256] < series_growth / 10, peaks
    assert peaks[512] < 512 * 512 * 4 * 2 * 6 / 4, peaks


def test_progress_rises_to_one_and_the_log_explains(folder, tmp_path):
    src, _, _ = folder
    steps, messages = [], []
    export(src, tmp_path / "out", Feedback(progress=steps.append, log=messages.append), patch_size=32, stride=16,
           split_block_size=64, max_cloud=30)
    assert steps[-1] == 1.0 and all(b >= a for a, b in zip(steps, steps[1:])) and len(steps) > 5
    assert any(m.startswith("4 dates (2023-04-01T10:15:59Z .. 2023-05-01T10:15:59Z), 4 with a cloud mask") for m in messages)
    kept = [m for m in messages if " patches kept" in m]
    assert len(kept) == 1 and re.fullmatch(r"\d+ of \d+ patches kept(; \d+ dropped [^;]+)?\.", kept[0]), kept
    assert messages[-1].startswith("Exported ")
    one_date, messages = image_paths(src)[:1], []
    export(one_date, tmp_path / "one", Feedback(log=messages.append), patch_size=32, split_block_size=64)
    assert any(m.startswith("1 date (2023-04-01T10:15:59Z), 1 with a cloud mask") for m in messages), messages


def test_native_band_resolution_says_which_edge_pixels_no_window_covers(tmp_path):
    """100 px is 16 whole 60 m pixels and 4 px: the last window ends at 96, on the 60 m lattice, and the log says so."""
    src, grid, _ = make_folder(tmp_path, width=100, height=100, n_dates=2, bands=("B02", "B05", "B01", "B08"))
    messages = []
    res = export(src, tmp_path / "out", Feedback(log=messages.append), patch_size=24, band_resolution="native",
                 split_block_size=ONE_BLOCK)
    ds = ExportedDataset(tmp_path / "out")
    assert res.n_samples == 16 and sorted({r["col"] for r in ds.rows}) == [0, 24, 48, 72]
    note = [m for m in messages if "in no patch" in m]
    assert len(note) == 1 and "whole 60 m pixel" in note[0] and "last 4 rows and 4 columns" in note[0], messages
    # 30 px patches: 0, 30, 60 and the inward-shifted window at 66 (not 70: 70 is off the 60 m lattice).
    messages = []
    export(src, tmp_path / "out30", Feedback(log=messages.append), patch_size=30, band_resolution="native",
           split_block_size=ONE_BLOCK)
    assert sorted({r["col"] for r in ExportedDataset(tmp_path / "out30").rows}) == [0, 30, 60, 66]
    assert any("last 4 rows and 4 columns" in m for m in messages)
    # Without 60 m bands the factor is 2 and 100 px ends on the 20 m lattice: the edge window ends at the edge.
    messages = []
    export(src, tmp_path / "out20", Feedback(log=messages.append), patch_size=24, band_resolution="native",
           bands=["B02", "B05"], split_block_size=ONE_BLOCK)
    assert sorted({r["col"] for r in ExportedDataset(tmp_path / "out20").rows}) == [0, 24, 48, 72, 76]
    assert not any("in no patch" in m for m in messages)


@pytest.mark.parametrize("k", [1, 2])
def test_class_pixels_count_each_label_pixel_once_per_split_with_overlapping_patches(folder, tmp_path, k):
    src, grid, _ = folder
    classes = np.random.default_rng(4).choice([0, 1, 2, 255], size=(150 * k, 200 * k),
                                              p=[0.3, 0.4, 0.2, 0.1]).astype(np.uint8)
    cls = write_label(tmp_path / "class.tif", classes, grid, scale=k, nodata=255)
    res = export(src, tmp_path / "out", labels={"class": cls}, label_scale=k, patch_size=32, stride=16,
                 split_block_size=64, split_ratios=(0.6, 0.2, 0.2), seed=2)
    ds = ExportedDataset(tmp_path / "out")
    card = json.loads((tmp_path / "out" / "dataset.json").read_text())
    per_patch = {s: {} for s in ("train", "val", "test")}
    for split in per_patch:
        covered = np.zeros(classes.shape, dtype=bool)  # label pixels, k x k per image pixel
        for r in ds.rows:
            if r["split"] == split:
                covered[r["row"] * k : (r["row"] + 32) * k, r["col"] * k : (r["col"] + 32) * k] = True
        values, counts = np.unique(classes[covered & (classes != 255)], return_counts=True)
        expected = {str(v): int(n) for v, n in zip(values.tolist(), counts.tolist())}
        assert res.class_pixels[split] == expected and card["splits"][split]["class_pixels"] == expected, split
    # Overlapping patches: counting per patch would be about 3 times as many.
    assert sum(sum(v.values()) for v in res.class_pixels.values()) <= int((classes != 255).sum())
    md = (tmp_path / "out" / "dataset.md").read_text()
    assert "each label pixel counted once per split" in md
