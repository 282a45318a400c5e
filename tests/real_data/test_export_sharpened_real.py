"""The export's sharpened band resolution on real Sentinel-2 scenes (Slovenia 0 and 1).

The scenes' 20 m bands lie in whole native pixels that start at their second row: as given,
the runtime cannot keep those pixels' values (and the card says so); cropped by that row, as
the download step's grids are, every 20 m pixel keeps its value through the export. Either
way the 20 m bands are what Super-resolve gives with the same model. Dates are invented
(the scenes carry none), as in test_export_real. Skipped when ../shared/data is absent.
"""
import csv
import json
import shutil

import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.export import ExportOptions
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.superres import SuperResolveOptions
from satplugin.qgis_satplugin.core.superres import run as superresolve
from satplugin.qgis_satplugin.core.superres.options import SHARPEN_MODEL
from satplugin.qgis_satplugin.core.steps import step

pytest.importorskip("onnxruntime")
DATES = {0: "20210615", 1: "20210410"}
L1C = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
SHARPENED = ["B05", "B06", "B07", "B8A", "B11", "B12"]
PATCH = 32


def _scenes(real_data, folder, on_native_pixels: bool) -> list:
    folder.mkdir()
    paths = []
    for i, day in DATES.items():
        source, target = real_data / "slovenia_s2_l1c" / f"scene_{i}.tif", folder / f"S2_L1C_{day}_scene{i}.tif"
        if not on_native_pixels:
            shutil.copy(source, target)
        else:  # from the second row, where the 20 m pixels start
            with rasterio.open(source) as ds:
                window = ((1, ds.height), (0, ds.width))
                profile = {**ds.profile, "height": ds.height - 1, "transform": ds.window_transform(window)}
                with rasterio.open(target, "w", **profile) as out:
                    out.write(ds.read(window=window))
                    out.descriptions = ds.descriptions
        paths.append(target)
    return paths


def _blocks(a):
    h, w = a.shape[-2] // 2 * 2, a.shape[-1] // 2 * 2
    return a[..., :h, :w].reshape(*a.shape[:-2], h // 2, 2, w // 2, 2).mean(axis=(-3, -1))


@pytest.mark.parametrize("on_native_pixels", [False, True], ids=["as given", "on the native pixels"])
def test_real_scenes_sharpened_in_the_export_are_the_super_resolve_output(real_data, tmp_path, on_native_pixels):
    paths = _scenes(real_data, tmp_path / "scenes", on_native_pixels)
    reference = {}
    for p in paths:
        superresolve(SuperResolveOptions(inputs=[str(p)], output=str(tmp_path / f"sr-{p.name}"),
                                         model=str(SHARPEN_MODEL), max_cloud=100))
        with rasterio.open(tmp_path / f"sr-{p.name}") as ds:
            reference[p.name] = ds.read().astype(np.float64)
    logs = []
    step("export")[1](ExportOptions(images=tuple(str(p) for p in paths), output_folder=str(tmp_path / "dataset"), patch_size=PATCH,
                      band_resolution="sharpened", split_block_size=PATCH), Feedback(log=logs.append))
    dataset = tmp_path / "dataset"
    card = json.loads((dataset / "dataset.json").read_text())
    assert card["sharpening"]["reflectance_preserved"] == {"dates": 2, "preserved": 2 if on_native_pixels else 0}
    line = next(m for m in logs if m.startswith("Sharpened B05, B06, B07, B8A, B11, B12 to 10 m on 2 dates"))
    assert ("(each 20 m pixel's value kept on 0 of 2)" in line) != on_native_pixels
    names = [s["file"] for s in card["sources"]]
    n, largest_change = 0, 0.0
    with open(dataset / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        r, c = int(row["row"]), int(row["col"])
        with np.load(dataset / row["path"]) as z:
            images, scale, index = z["images"].astype(np.float64), z["scale"], z["date_index"]
        assert images.shape[1:] == (len(L1C), PATCH, PATCH)
        for slot, t in enumerate(index):
            with rasterio.open(paths[0].parent / names[t]) as ds:
                original = ds.read(window=((r, r + PATCH), (c, c + PATCH))).astype(np.float64)
            for i, band in enumerate(L1C):
                if band not in SHARPENED:
                    np.testing.assert_array_equal(images[slot, i], original[i])
                    continue
                got = images[slot, i] * scale[slot, i]
                model = reference[names[t]][SHARPENED.index(band), r:r + PATCH, c:c + PATCH]
                np.testing.assert_allclose(got, model, rtol=0, atol=0.5e-4 + 1e-7)
                largest_change = max(largest_change, float(np.abs(got - original[i] * 1e-4).max()))
                if on_native_pixels and r % 2 == 0 and c % 2 == 0:  # each 20 m pixel's value, to half a DN step
                    np.testing.assert_allclose(_blocks(got), _blocks(original[i] * 1e-4), rtol=0, atol=0.5e-4 + 1e-7)
            n += 1
    assert n == 2 * len(rows) >= 2 * 9
    assert largest_change > 0.01  # sharpened: within-block detail the blocky bands did not have
