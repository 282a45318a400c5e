"""The shipped band-sharpening model through the runtime on real Sentinel-2 data.

Held-out Slovenia scene 4, Wald's protocol (models/sharpen_data.py): the degraded scene is
written as a 20 m GeoTIFF whose 20 m bands carry 40 m information resampled bilinearly by
GDAL, as the download step writes them, and sharpened by ``superres.run`` (what
satplugin:superresolve runs). It must beat bicubic by 3 dB or more (mean PSNR over the six
bands), beat Lanczos, match the card, keep each native pixel's value to 1e-5, and not depend
on the tiling. Skipped when ../shared/data is absent.
"""
import sys

import numpy as np
import pytest
import rasterio

from tests.conftest import ROOT

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

from models import data, evaluate_sharpen, sharpen_data as sd  # noqa: E402
from qgis_satplugin.core.superres.options import SHARPEN_MODEL  # noqa: E402

CARD = SHARPEN_MODEL.with_suffix(".md")


@pytest.fixture(scope="module")
def held_out():
    if not data.scene_path(data.HELD_OUT_SCENE).is_file():
        pytest.skip(f"real data folder {data.real_data_dir()} is absent (set SATPLUGIN_REAL_DATA)")
    return evaluate_sharpen.evaluate_held_out(SHARPEN_MODEL)


def test_sharpening_beats_bicubic_by_3_db_and_lanczos_on_every_band(held_out):
    model, bicubic, lanczos = held_out["model"], held_out["bicubic"], held_out["lanczos"]
    assert model["psnr_band_mean"] >= bicubic["psnr_band_mean"] + 3.0
    assert all(m > b + 3.0 for m, b in zip(model["psnr_bands"], bicubic["psnr_bands"]))
    assert all(m > lanczos_band for m, lanczos_band in zip(model["psnr_bands"], lanczos["psnr_bands"]))
    assert model["ssim"] > lanczos["ssim"]


def test_the_card_gives_the_figures_measured(held_out):
    card = CARD.read_text(encoding="utf-8")
    for key in ("model", "model_uncorrected", "bicubic", "lanczos"):
        row = next(line for line in card.splitlines() if line.startswith(f"| {evaluate_sharpen.LABELS[key]} |"))
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        assert float(cells[1]) == pytest.approx(held_out[key]["psnr_band_mean"], abs=0.006), key
        assert [float(v) for v in cells[3:]] == pytest.approx(held_out[key]["psnr_bands"], abs=0.006), key


@pytest.fixture(scope="module")
def wald_raster(tmp_path_factory):
    if not data.scene_path(data.HELD_OUT_SCENE).is_file():
        pytest.skip(f"real data folder {data.real_data_dir()} is absent (set SATPLUGIN_REAL_DATA)")
    pair = sd.wald_pair(sd.slovenia_native(data.HELD_OUT_SCENE))
    folder = tmp_path_factory.mktemp("wald")
    return pair, evaluate_sharpen.write_raster(folder / "scene_4_wald.tif", pair.inputs, sd.INPUT_BANDS, 20.0), folder


@pytest.mark.parametrize("tile,overlap", [(256, 32), (48, 22), (45, 21)])
def test_each_native_pixel_keeps_its_value_whatever_the_tiling(wald_raster, tile, overlap):
    pair, raster, folder = wald_raster
    out = evaluate_sharpen.run_model(SHARPEN_MODEL, raster, folder / f"t{tile}.tif", tile_size=tile, overlap=overlap)
    # The 40 m information the input carries (bilinearly resampled): recovered and kept, block by block.
    np.testing.assert_allclose(data.degrade(out, 2), pair.coarse_low, rtol=0, atol=1e-5)
    whole = evaluate_sharpen.run_model(SHARPEN_MODEL, raster, folder / "whole.tif", tile_size=256, overlap=32)
    np.testing.assert_allclose(out, whole, rtol=0, atol=2e-6)
    off = evaluate_sharpen.run_model(SHARPEN_MODEL, raster, folder / "off.tif", tile_size=tile, overlap=overlap,
                                     preserve_reflectance=False)
    assert np.abs(data.degrade(off, 2) - pair.coarse_low).max() > 1e-3
    with rasterio.open(folder / f"t{tile}.tif") as ds:
        assert list(ds.descriptions) == list(sd.COARSE_BANDS) and ds.res == (20.0, 20.0)
        assert ds.tags()["PRESERVE_REFLECTANCE"] == "yes"
        assert all(float(ds.tags(b)["REFLECTANCE_CORRECTION_MEAN_ABS"]) > 0 for b in range(1, 7))


def test_full_resolution_real_scenes_keep_their_20_m_values(tmp_path):
    if not data.scene_path(data.HELD_OUT_SCENE).is_file():
        pytest.skip(f"real data folder {data.real_data_dir()} is absent (set SATPLUGIN_REAL_DATA)")
    rows = evaluate_sharpen.consistency(SHARPEN_MODEL)
    assert [r["scene"] for r in rows][-1].startswith("29RKH") and len(rows) == 6
    for row in rows:
        assert max(row["corrected"]["mean_abs"]) < 1e-6, row["scene"]
        assert row["corrected"]["spectral_angle_deg"] < 1e-3
        assert max(row["uncorrected"]["mean_abs"]) > 10 * max(row["corrected"]["mean_abs"])
