"""Bad input gives one clear message and no dataset; a cancel leaves nothing behind."""
import builtins
import errno
import json
import shutil

import numpy as np
import pytest
import rasterio
from affine import Affine

from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.export import ExportedDataset
from satplugin.qgis_satplugin.core.export import format_npz
from satplugin.qgis_satplugin.core.feedback import Feedback

from .test_export_helpers import export, image_paths, leftovers, make_folder, position_ids, write_label


@pytest.fixture
def folder(tmp_path):
    return make_folder(tmp_path, width=96, height=64, n_dates=3)


def _fails(tmp_path, match, *args, **kwargs):
    out = tmp_path / "out"
    with pytest.raises(SatPluginError, match=match) as info:
        export(*args, output_folder=out, **kwargs)
    assert not out.exists()
    assert leftovers(tmp_path) == []
    return str(info.value)


def test_images_on_different_grids(folder, tmp_path):
    src, _, _ = folder
    paths = image_paths(src)
    shifted = tmp_path / "20230501_shifted.tif"
    with rasterio.open(paths[0]) as ds:
        profile, data = ds.profile, ds.read()
    profile["transform"] = Affine.translation(5, 0) * ds.transform
    with rasterio.open(shifted, "w", **profile) as out:
        out.write(data)
    message = _fails(tmp_path, "different grids", [paths[1], shifted])
    assert "20230501_shifted.tif" in message and "are not resampled here" in message


def test_labels_that_do_not_overlap(folder, tmp_path):
    src, grid, _ = folder
    far = write_label(tmp_path / "class.tif", np.ones((64, 96), dtype=np.uint8), grid, nodata=255, col_off=5000)
    _fails(tmp_path, "do not overlap the images", src, labels={"class": far})


def test_misaligned_labels(folder, tmp_path):
    src, grid, _ = folder
    shifted = write_label(tmp_path / "id.tif", position_ids(grid, 4), grid, scale=4, nodata=-1, x_shift_px=0.5)
    message = _fails(tmp_path, "misaligned", src, labels={"id": shifted}, label_scale=4)
    assert "+0.500" in message


def test_labels_at_another_scale(folder, tmp_path):
    src, grid, _ = folder
    ids = write_label(tmp_path / "id.tif", position_ids(grid, 4), grid, scale=4, nodata=-1)
    _fails(tmp_path, "Check label_scale", src, labels={"id": ids}, label_scale=2)


def test_patch_larger_than_the_area(folder, tmp_path):
    src, _, _ = folder
    _fails(tmp_path, r"patch \(128 px\) is larger than the images \(64 px", src, patch_size=128)


def test_every_patch_filtered_out_by_clouds(tmp_path):
    cloudy = np.full((64, 96), 9, dtype=np.uint8)
    src, _, _ = make_folder(tmp_path, width=96, height=64, n_dates=2, scl={0: cloudy, 1: cloudy})
    message = _fails(tmp_path, "Every one of the 6 patches was filtered out", src, patch_size=32, max_cloud=50,
                     split_block_size=1000)
    assert "6 fewer than min_dates=1 dates with at most max_cloud=50 %" in message


def test_every_patch_filtered_out_by_labels(folder, tmp_path):
    src, grid, _ = folder
    empty = write_label(tmp_path / "class.tif", np.zeros((64, 96), dtype=np.uint8), grid, nodata=255)
    message = _fails(tmp_path, "filtered out", src, labels={"class": empty}, patch_size=32, min_labelled=0.1)
    assert "6 under min_labelled=0.1" in message


def test_min_labelled_without_class_labels(folder, tmp_path):
    src, _, _ = folder
    _fails(tmp_path, "min_labelled needs the class label raster", src, min_labelled=0.2, patch_size=32)


def test_a_file_without_a_date(folder, tmp_path):
    src, _, _ = folder
    with rasterio.open(image_paths(src)[0]) as ds:
        profile, data = ds.profile, ds.read()
    undated = tmp_path / "scene_0.tif"
    with rasterio.open(undated, "w", **profile) as out:
        out.write(data)  # no ACQUISITION_DATETIME tag, no date in the name
    _fails(tmp_path, "Cannot tell the acquisition date of scene_0.tif", [undated])


def test_two_files_of_the_same_time(folder, tmp_path):
    src, _, _ = folder
    a = image_paths(src)[0]
    b = tmp_path / "copy.tif"
    shutil.copy(a, b)
    _fails(tmp_path, "have the same acquisition time 2023-04-01T10:15:59Z", [a, b])


def test_season_without_dates(folder, tmp_path):
    src, _, _ = folder
    _fails(tmp_path, r"falls in the season 11-01 \.\. 02-28", src, season_start="11-01", season_end="02-28")


def test_unknown_band_and_bad_parameters(folder, tmp_path):
    src, _, _ = folder
    _fails(tmp_path, "Band 'B11' is not in the images; they have B02, B03, B04, B08", src, bands=["B02", "B11"])
    _fails(tmp_path, "Unknown format 'hdf5'", src, format="hdf5")
    _fails(tmp_path, "max_cloud is a percentage", src, max_cloud=120)
    _fails(tmp_path, "split_ratios must be three", src, split_ratios=(1, 0))
    _fails(tmp_path, "max_dates .* is below min_dates", src, min_dates=3, max_dates=2)


def test_incomplete_download(folder, tmp_path):
    src, _, _ = folder
    manifest = json.loads((src / "manifest.json").read_text())
    manifest["complete"] = False
    (src / "manifest.json").write_text(json.dumps(manifest))
    _fails(tmp_path, "incomplete", src)


def test_a_folder_without_a_manifest(tmp_path):
    (tmp_path / "empty").mkdir()
    _fails(tmp_path, "holds no manifest.json", tmp_path / "empty")


def test_a_folder_with_other_files_is_never_overwritten(folder, tmp_path):
    src, _, _ = folder
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(SatPluginError, match="not an exported dataset"):
        export(src, out)
    assert (out / "notes.txt").read_text() == "mine"


def test_a_previous_export_survives_a_failure_and_is_replaced_on_success(folder, tmp_path, monkeypatch):
    src, _, _ = folder
    out = tmp_path / "out"
    export(src, out, patch_size=32, split_block_size=1000)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))

    def disk_full(self, sample):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(format_npz.NpzWriter, "write", disk_full)
    with pytest.raises(SatPluginError, match="is full"):
        export(src, out, patch_size=16, split_block_size=1000)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert leftovers(tmp_path) == []
    monkeypatch.undo()
    export(src, out, patch_size=16, split_block_size=1000)
    assert len(ExportedDataset(out)) == 4 * 6
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("when", ["planning", "writing"])
def test_cancel_leaves_nothing(folder, tmp_path, when):
    src, _, _ = folder
    out = tmp_path / "out"
    written = []

    def is_canceled():
        if when == "planning":
            return True
        # Cancel once the staging folder holds a few samples.
        staged = [p for p in tmp_path.glob(".out.partial-*/**/*.npz")]
        written.append(len(staged))
        return len(staged) >= 3

    with pytest.raises(Canceled):
        export(src, out, Feedback(is_canceled=is_canceled), patch_size=16, split_block_size=1000)
    assert not out.exists() and leftovers(tmp_path) == []
    if when == "writing":
        assert max(written) == 3


def test_zarr_missing_gives_a_clear_error(folder, tmp_path, monkeypatch):
    src, _, _ = folder
    real_import = builtins.__import__

    def no_zarr(name, *args, **kwargs):
        if name in ("zarr", "numcodecs"):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_zarr)
    _fails(tmp_path, r"The zarr format needs the zarr package.*or choose npz, geotiff or deepsatdata", src, format="zarr")
    # The other formats do not need it.
    export(src, tmp_path / "npz", patch_size=32, split_block_size=1000)
    assert len(ExportedDataset(tmp_path / "npz")) == 6
