"""BAND_RESOLUTION sharpened: the export's 20 m bands are the super-resolve output of the shipped sharpening model.

A real download folder (13 L1C bands, masks, a swath edge of no-data on one date), the
shipped ``s2_sharpen_20m.onnx`` and the real runtime, both ways: the export, and
``superres.run`` on each date's raster with that model.
"""
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.sentinel2 import L1C_BANDS
from satplugin.qgis_satplugin.core.superres.options import SHARPEN_MODEL
from satplugin.tests.fixtures.synthetic_series import write_download_folder

from satplugin.qgis_satplugin.core.steps import step

from .test_export_helpers import export, image_paths, make_folder, utc

pytest.importorskip("onnxruntime")
SHARPENED = ["B05", "B06", "B07", "B8A", "B11", "B12"]
PATCH = 32
NODATA_COLS = 11  # of date 1: a swath edge


def export_step(images, output_folder, feedback=None, **options):
    """The export as every caller runs it: by its step name, with the services it takes from other steps."""
    options_class, run = step("export")
    return run(options_class(images=images, output_folder=output_folder, **options), feedback)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sharpened")
    folder, grid, dates = make_folder(tmp, width=96, height=80, n_dates=3, bands=L1C_BANDS, cloud_cover=[0, 0, 100],
                                      nodata_cols={1: NODATA_COLS})
    return folder, tmp


@pytest.fixture(scope="module")
def reference(source):
    """Each date's raster through ``superres.run`` with the shipped sharpening model: {file name: reflectance}."""
    from satplugin.qgis_satplugin.core.superres import SuperResolveOptions, run

    folder, tmp = source
    out = {}
    for path in image_paths(folder):
        target = tmp / f"superres-{path.name}"
        run(SuperResolveOptions(inputs=[str(path)], output=str(target), model=str(SHARPEN_MODEL), max_cloud=100))
        with rasterio.open(target) as ds:
            assert list(ds.descriptions) == SHARPENED
            out[path.name] = ds.read().astype(np.float64)
    return out


@pytest.fixture(scope="module")
def exported(source):
    folder, tmp = source
    logs = []
    result = export_step(folder, tmp / "dataset", patch_size=PATCH, band_resolution="sharpened", max_cloud=40,
                    split_block_size=PATCH, feedback=Feedback(log=logs.append))
    return tmp / "dataset", result, logs


def samples(dataset: Path):
    with open(dataset / "samples.csv", newline="") as f:
        for row in csv.DictReader(f):
            with np.load(dataset / row["path"]) as z:
                yield row, {k: z[k] for k in z.files}


def test_the_20_m_bands_are_the_super_resolve_output_and_the_others_the_images(source, reference, exported):
    folder, _ = source
    dataset, result, logs = exported
    card = json.loads((dataset / "dataset.json").read_text())
    names = [s["file"] for s in card["sources"]]
    with rasterio.open(image_paths(folder)[0]) as ds:
        assert ds.scales[0] == pytest.approx(1e-4)
    checked = {"dates": 0, "changed": 0.0}
    for row, z in samples(dataset):
        assert list(z["bands"]) == list(L1C_BANDS) and z["images"].dtype == np.uint16
        r, c = int(row["row"]), int(row["col"])
        for slot, t in enumerate(z["date_index"]):
            name = names[t]
            with rasterio.open(folder / name) as ds:
                original = ds.read(window=((r, r + PATCH), (c, c + PATCH))).astype(np.float64)
            dn = z["images"][slot].astype(np.float64)
            reflectance = dn * z["scale"][slot][:, None, None] + z["offset"][slot][:, None, None]
            for i, band in enumerate(L1C_BANDS):
                if band in SHARPENED:
                    model = reference[name][SHARPENED.index(band), r:r + PATCH, c:c + PATCH]
                    valid = original[i] != 0
                    # Every pixel with data: the runtime's value, to half a DN step of the uint16 encoding.
                    np.testing.assert_allclose(reflectance[i][valid], model[valid], rtol=0, atol=0.5e-4 + 1e-7)
                    assert (dn[i][~valid] == 0).all()  # no data stays no data
                    checked["changed"] = max(checked["changed"], float(np.abs(dn[i] - original[i]).max()))
                else:  # the 10 m and 60 m bands: the images' own DN
                    np.testing.assert_array_equal(dn[i], original[i])
            checked["dates"] += 1
    assert checked["dates"] == sum(int(row["n_dates"]) for row, _ in samples(dataset)) > 10
    assert checked["changed"] > 50  # the bands were sharpened, not copied (DN)
    assert card["band_resolution"] == "sharpened"
    assert card["sharpening"] == {
        "model": "s2_sharpen_20m.onnx", "model_sha256": hashlib.sha256(SHARPEN_MODEL.read_bytes()).hexdigest(),
        "bands": SHARPENED, "not_sharpened": ["B01", "B09", "B10"],
        "reflectance_preserved": {"dates": 2, "preserved": 2},
        "encoding": "the images' own (dtype, scale, offset): integer DN round to half a DN step"}
    assert ("Band resolution: sharpened (B05, B06, B07, B8A, B11, B12 sharpened to 10 m by `s2_sharpen_20m.onnx`, each "
            "20 m pixel keeping its value; B01, B09, B10 as the images hold them).") in (dataset / "dataset.md").read_text()
    # Date 2 is all cloud: no patch keeps it, so it is not sharpened (the model's time is not spent on it).
    assert sorted({int(t) for _, z in samples(dataset) for t in z["date_index"]}) == [0, 1]
    assert any(m.startswith("Sharpened B05, B06, B07, B8A, B11, B12 to 10 m on 2 dates with s2_sharpen_20m.onnx; "
                            "B01, B09, B10 as the images hold them.") for m in logs)
    # The sharpened copies are gone; nothing else beside the output.
    assert sorted(p.name for p in dataset.parent.iterdir() if p.name.startswith(".")) == []


def test_a_cluster_export_reads_the_sharpened_copies_too_and_gives_the_same_bytes(source, exported, tmp_path):
    pytest.importorskip("distributed")
    folder, _ = source
    dataset, _, _ = exported
    again = tmp_path / "dataset"
    export_step(folder, again, patch_size=PATCH, band_resolution="sharpened", max_cloud=40, split_block_size=PATCH,
           dask_scheduler="local:2")
    card = json.loads((again / "dataset.json").read_text())

    def digests(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in root.rglob("*") if p.is_file()}
    assert digests(again) == digests(dataset) and card["band_resolution"] == "sharpened"


@pytest.mark.parametrize("case,message", [
    ("20 m grid", r"BAND_RESOLUTION sharpened needs the images on a 10 m grid \(the sharpening model's\); these have "
                  r"20 x 20 m pixels\. Use resample or native\."),
    ("10 m bands only", r"BAND_RESOLUTION sharpened: .*\.tif lacks .*B05"),
    ("no 20 m band selected", r"BAND_RESOLUTION sharpened sharpens B05, B06, B07, B8A, B11, B12; the selected bands "
                              r"\(B02, B03, B01\) hold none of them\. Select some, or use resample\."),
])
def test_what_cannot_be_sharpened_is_refused_before_any_work(tmp_path, case, message):
    pixel = 20.0 if case == "20 m grid" else 10.0
    bands = ("B02", "B03", "B04", "B08") if case == "10 m bands only" else L1C_BANDS
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, pixel, 64, 64)
    folder = write_download_folder(tmp_path / "download", grid, [utc(2023, 5, 1, 10)], bands=bands)
    selection = ("B02", "B03", "B01") if case == "no 20 m band selected" else None
    with pytest.raises(SatPluginError, match=message):
        export_step(folder, tmp_path / "out", patch_size=PATCH, band_resolution="sharpened", bands=selection)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["download"]  # nothing written, no folder left


def test_a_cancel_while_sharpening_leaves_the_earlier_dataset_and_no_copies(source, exported, tmp_path):
    folder, _ = source
    dataset, _, _ = exported
    target = tmp_path / "dataset"
    export(folder, target, patch_size=PATCH, max_cloud=40)  # an earlier export, not sharpened
    before = {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()}
    stale = tmp_path / ".dataset.sharpened-0badc0de"  # what a killed export leaves
    stale.mkdir()
    (stale / "date-0000.tif").write_bytes(b"half")
    canceled = {"at": None}

    def progress(p):
        if p > 0.3 and canceled["at"] is None:
            canceled["at"] = p
    feedback = Feedback(progress=progress, is_canceled=lambda: canceled["at"] is not None)
    with pytest.raises(Canceled):
        export_step(folder, target, patch_size=PATCH, band_resolution="sharpened", max_cloud=40, feedback=feedback)
    assert 0.3 < canceled["at"] < 0.6  # within the sharpening share of the bar
    assert {p.name: p.read_bytes() for p in target.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dataset"]  # the stale copies and this run's are gone


def test_the_export_run_alone_says_where_the_sharpening_model_comes_from(source, tmp_path):
    """No step imports another: export.run is handed the sharpener; without it, one sentence and nothing written."""
    folder, _ = source
    with pytest.raises(SatPluginError, match=r"BAND_RESOLUTION sharpened needs the super-resolution step's sharpening "
                                             r"model: run the export by its step name"):
        export(folder, tmp_path / "out", patch_size=PATCH, band_resolution="sharpened")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("dtype,scale,offset,nodata", [
    ("uint16", 1e-4, 0.0, 0), ("uint16", 1e-4, -0.1, 0), ("int16", 1e-4, 0.3, -32768), ("float32", 1.0, 0.0, -9999.0),
    ("float32", 1.0, 0.0, float("nan"))])
def test_sharpened_reflectance_is_encoded_as_the_band_is(dtype, scale, offset, nodata):
    from satplugin.qgis_satplugin.core.export.sharpening import _encode

    dt = np.dtype(dtype)
    reflectance = np.array([[0.1234567, -0.5, 7.0, np.nan, 0.2]], np.float32)
    current = np.array([[100, 200, 300, 400, nodata]], dt)
    if dt.kind == "f":
        reflectance[0, 0] = nodata if np.isfinite(nodata) else 0.1234567  # a value exactly on no-data
    dn = _encode(reflectance, current, scale, offset, dt, nodata)
    assert dn.dtype == dt
    assert dn[0, 3] == current[0, 3]  # no model value: the image's
    assert dn[0, 4] == nodata or (np.isnan(nodata) and np.isnan(dn[0, 4]))  # no data stays no data
    if dt.kind in "ui":
        info = np.iinfo(dt)
        expected = np.clip(np.rint((np.float64(reflectance[0, :3]) - offset) / scale), info.min, info.max)
        expected[expected == nodata] = nodata + 1
        np.testing.assert_array_equal(dn[0, :3], expected)
        assert abs(dn[0, 0] * scale + offset - 0.1234567) <= scale / 2 + 1e-9  # half a DN step
    else:
        assert dn[0, 0] != nodata and np.isfinite(dn[0, 0]) and dn[0, 1] == -0.5 and dn[0, 2] == 7.0


def test_an_output_under_home_or_behind_a_link_keeps_its_copies_beside_the_real_folder(source, tmp_path, monkeypatch):
    folder, _ = source
    monkeypatch.setenv("HOME", str(tmp_path))
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    export_step(folder, "~/ds", patch_size=PATCH, band_resolution="sharpened", max_cloud=40)
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["band_resolution"] == "sharpened"
    export_step(folder, str(tmp_path / "link" / "inside"), patch_size=PATCH, band_resolution="sharpened", max_cloud=40)
    assert (real / "inside" / "dataset.json").is_file()
    assert sorted(p.name for p in tmp_path.rglob(".*")) == []  # no copies left, beside either folder


def test_without_onnx_runtime_the_sharpened_export_says_so_before_any_work(source, tmp_path, monkeypatch):
    import sys

    folder, _ = source
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a machine where it was never installed
    with pytest.raises(SatPluginError, match=r"^BAND_RESOLUTION sharpened needs the Python package onnxruntime-gpu, "
                                             r"which is not installed: .*, or use resample or native\.$"):
        export_step(folder, tmp_path / "out", patch_size=PATCH, band_resolution="sharpened")
    assert list(tmp_path.iterdir()) == []
