"""The super-resolution runtime on models with known outputs: tiling, seams, georeferencing,
16-bit range, revisit order and skipping, providers, contract checks, cancel and atomicity."""
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.superres import ModelContractError, SuperResolveOptions, load_model, run
from satplugin.qgis_satplugin.core.superres.tiling import TileLayout

from ..superres_fixtures import BANDS, contract_metadata, dated_series, make_model, write_revisit

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def resolve(inputs, output, *, log=None, is_canceled=None, **options):
    """One run through the step's API: the options, and a feedback made of the callbacks."""
    return run(SuperResolveOptions(inputs=inputs, output=output, **options), Feedback(log=log, is_canceled=is_canceled))


def read(path):
    with rasterio.open(path) as ds:
        return ds.read()


@pytest.fixture
def box_model(tmp_path):
    return make_model(tmp_path / "box.onnx", combine="mean", box=True)


@pytest.fixture
def random_series(tmp_path):
    rng = np.random.default_rng(7)
    stacks = [rng.integers(1, 4000, (4, 45, 61)) for _ in range(3)]
    folder = tmp_path / "series"
    folder.mkdir()
    return dated_series(folder, stacks)


@pytest.mark.parametrize("tile,overlap", [(16, 4), (17, 5), (24, 8), (32, 12), (10, 4), (48, 16), (40, 19)])
def test_tiled_output_equals_the_whole_raster_at_once(tmp_path, box_model, random_series, tile, overlap):
    # The model's receptive field is 1 px: a margin of 1 makes every blended pixel exact.
    whole = resolve(random_series, tmp_path / "whole.tif", model=box_model, tile_size=256, overlap=4)
    assert whole.tiles == 1
    tiled = resolve(random_series, tmp_path / "tiled.tif", model=box_model, tile_size=tile, overlap=overlap,
                          batch_size=3)
    assert tiled.tiles == TileLayout(45, 61, tile, overlap, 2, margin=1).count > 1
    np.testing.assert_allclose(read(tmp_path / "tiled.tif"), read(tmp_path / "whole.tif"), rtol=0, atol=2e-7)


def test_without_context_margin_tiles_would_differ(tmp_path, box_model, random_series):
    # The check above can fail: without overlap there is no margin, and zero padding shows.
    resolve(random_series, tmp_path / "whole.tif", model=box_model, tile_size=256, overlap=4)
    logs = []
    resolve(random_series, tmp_path / "seams.tif", model=box_model, tile_size=16, overlap=0, log=logs.append)
    assert any("Use OVERLAP >= 3 for tile-exact results" in m for m in logs)
    assert np.abs(read(tmp_path / "seams.tif") - read(tmp_path / "whole.tif")).max() > 1e-3


@pytest.mark.parametrize("tile,overlap", [(16, 4), (21, 8), (48, 20), (256, 32)])
def test_constant_input_gives_a_constant_output_up_to_the_raster_edges(tmp_path, box_model, tile, overlap):
    dn = np.full((4, 30, 41), 1234)
    paths = dated_series(tmp_path, [dn, dn])
    resolve(paths, tmp_path / "out.tif", model=box_model, tile_size=tile, overlap=overlap)
    out = read(tmp_path / "out.tif")
    assert out.shape == (4, 60, 82)
    np.testing.assert_allclose(out, 0.1234, rtol=0, atol=1e-6)


@pytest.mark.parametrize("tile,overlap", [(16, 4), (19, 7), (32, 12)])
def test_linear_ramp_stays_linear_across_tile_boundaries(tmp_path, tile, overlap):
    model = make_model(tmp_path / "bilinear.onnx", resize="linear")
    rows, cols = np.mgrid[0:40, 0:50]
    dn = np.stack([1000 + 20 * cols + 7 * rows] * 4)
    paths = dated_series(tmp_path, [dn])
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=tile, overlap=overlap)
    out = read(tmp_path / "out.tif")[0].astype(np.float64)
    # Bilinear (half-pixel) upsampling of a ramp is the ramp at the output pixel centres.
    yy, xx = np.mgrid[0:80, 0:100]
    expected = (1000 + 20 * ((xx + 0.5) / 2 - 0.5) + 7 * ((yy + 0.5) / 2 - 0.5)) * 1e-4
    inner = (slice(2, -2), slice(2, -2))  # the outermost pixel reflects at the raster edge
    np.testing.assert_allclose(out[inner], expected[inner], rtol=0, atol=2e-6)
    # And no step anywhere: second differences vanish along both axes.
    assert np.abs(np.diff(out[inner], 2, axis=1)).max() < 2e-6
    assert np.abs(np.diff(out[inner], 2, axis=0)).max() < 2e-6


def test_output_georeferencing_is_the_input_extent_at_finer_pixels(tmp_path, box_model):
    paths = [write_revisit(tmp_path / "S2_20230601.tif", np.full((4, 33, 27), 500),
                           datetime(2023, 6, 1, tzinfo=timezone.utc), origin=(399960.0, 5100060.0), crs="EPSG:32632")]
    res = resolve(paths, tmp_path / "out.tif", model=box_model, tile_size=16, overlap=4)
    with rasterio.open(paths[0]) as src, rasterio.open(tmp_path / "out.tif") as out:
        assert out.crs == src.crs
        assert out.bounds == src.bounds
        assert (out.width, out.height) == (54, 66) == (res.width, res.height)
        assert out.transform.a == 5.0 and out.transform.e == -5.0
        assert (out.transform.c, out.transform.f) == (399960.0, 5100060.0)
        assert out.descriptions == tuple(BANDS)
        assert out.units == ("reflectance",) * 4
        assert out.dtypes[0] == "float32" and np.isnan(out.nodata)
        assert out.tags()["SCALE"] == "2" and out.tags()["REVISIT_DATES"] == "2023-06-01T00:00:00Z"


def test_sixteen_bit_range_goes_through_without_truncation_or_wrap(tmp_path):
    model = make_model(tmp_path / "nearest.onnx")
    dn = np.zeros((4, 12, 12), dtype=np.int64)
    dn[:, :, :4], dn[:, :, 4:8], dn[:, :, 8:] = 65535, 40000, 1
    paths = dated_series(tmp_path, [dn])
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=8, overlap=0)
    out = read(tmp_path / "out.tif")
    assert out[:, :, :8].min() == pytest.approx(6.5535, abs=1e-5)
    assert out[:, :, 8:16].max() == pytest.approx(4.0, abs=1e-5)
    assert out[:, :, 16:].max() == pytest.approx(0.0001, abs=1e-7)


def test_uint16_model_outputs_are_scaled_and_clipped(tmp_path):
    from satplugin.qgis_satplugin.core.superres.contract import metadata_props

    meta = contract_metadata(output_dtype="uint16", output_scaling={"dn_scale": 0.0001}, receptive_field=None)
    model = make_model(tmp_path / "u16.onnx", metadata=metadata_props(**meta))
    dn = np.full((4, 10, 10), 65535)
    dn[:, :5] = 123
    dn[:, 0, 0] = 0  # no data in every band
    paths = dated_series(tmp_path, [dn])
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=16, overlap=0)
    with rasterio.open(tmp_path / "out.tif") as ds:
        out = ds.read()
        assert ds.dtypes[0] == "uint16" and ds.nodata == 0 and ds.scales == (0.0001,) * 4
    assert (out[:, :2, :2] == 0).all()  # no data stays no data
    assert (out[:, 2:10] == 123).all() and (out[:, 10:] == 65535).all()


def test_nodata_pixels_are_filled_from_the_next_revisit_or_left_as_nodata(tmp_path):
    model = make_model(tmp_path / "ref.onnx")  # outputs revisit 0 (the reference)
    first = np.full((4, 8, 8), 1000)
    second = np.full((4, 8, 8), 2000)
    first[:, :2, :2] = 0
    first[:, 3, 3] = second[:, 3, 3] = 0  # no revisit has data there
    second[:, 7, 7] = 0
    paths = dated_series(tmp_path, [first, second])  # no masks: no data counts as cloud
    res = resolve(paths, tmp_path / "out.tif", model=model, tile_size=16, overlap=0, max_cloud=100)
    out = read(tmp_path / "out.tif")
    # Clearest first: the second date lacks 2 of 64 pixels, the first 5.
    assert [r["cloud_percent"] for r in res.revisits] == [3.125, 7.812]
    assert np.isnan(out[:, 6:8, 6:8]).all() and np.isnan(out).sum() == 4 * 4
    assert np.allclose(out[:, 14:16, 14:16], 0.1)  # the reference had no data: filled from the first date
    assert np.allclose(out[:, :4, :4], 0.2)  # the reference's own values where it has data
    assert np.allclose(np.nanmean(out), (0.2 * (256 - 4 - 4) + 0.1 * 4) / (256 - 4), atol=1e-6)


def test_clearest_first_order_and_cloud_skipping(tmp_path):
    model = make_model(tmp_path / "ref.onnx")
    stacks = [np.full((4, 10, 10), v) for v in (1000, 2000, 3000)]
    scls = [np.full((10, 10), 4, dtype=np.uint8) for _ in range(3)]
    scls[0][:6] = 9  # 60 % cloud: above MAX_CLOUD 50
    scls[1][8:] = 8  # 20 %
    scls[2][:1] = 3  # 10 % shadow: the clearest
    paths = dated_series(tmp_path, stacks, scls=scls)
    logs = []
    res = resolve(paths, tmp_path / "out.tif", model=model, tile_size=16, overlap=0, max_cloud=50, log=logs.append)
    assert [r["cloud_percent"] for r in res.revisits] == [10.0, 20.0]
    assert any("Skipping S2_20230501.tif" in m and "60.0 %" in m for m in logs)
    out = read(tmp_path / "out.tif")
    # Reference = the third date; its shadowed first row, grown by the 2-px cloud buffer, is
    # filled from the next clearest (2000): input rows 0-2, output rows 0-5.
    assert np.allclose(out[:, 6:, :], 0.3) and np.allclose(out[:, :6, :], 0.2)


def test_undated_rasters_are_taken_in_the_order_given_and_the_log_says_so(tmp_path):
    model = make_model(tmp_path / "ref.onnx")  # outputs revisit 0 (the reference)
    paths = [write_revisit(tmp_path / f"{name}.tif", np.full((4, 8, 8), v), None)
             for name, v in (("scene_c", 3000), ("scene_a", 1000), ("scene_b", 2000))]
    logs = []
    res = resolve(paths, tmp_path / "out.tif", model=model, tile_size=16, overlap=0, log=logs.append)
    assert [r["path"] for r in res.revisits] == [str(p) for p in paths]  # no masks: all as clear, in the given order
    assert [r["datetime"] for r in res.revisits] == [None, None, None]
    assert "3 of the 3 rasters have no date: they are ranked clearest first, ties in the order given." in logs
    assert any(m.startswith("3 rasters (3 undated: all kept in the order given)") for m in logs)
    assert any("Revisits fed, in order: undated scene_c.tif" in m for m in logs)
    assert np.allclose(read(tmp_path / "out.tif"), 0.3)  # the first given is the reference
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.tags()["REVISIT_DATES"] == "undated,undated,undated"


def test_chronological_model_and_fixed_revisits_repeat_when_short(tmp_path):
    meta = contract_metadata(revisits=3, revisit_order="chronological", receptive_field=None)
    from satplugin.qgis_satplugin.core.superres.contract import metadata_props

    model = make_model(tmp_path / "chrono.onnx", fixed_revisits=3, metadata=metadata_props(**meta))
    stacks = [np.full((4, 6, 6), v) for v in (1500, 2500)]
    scls = [np.full((6, 6), 4, dtype=np.uint8), np.full((6, 6), 4, dtype=np.uint8)]
    scls[0][0, :] = 9
    paths = dated_series(tmp_path, stacks, scls=scls)
    logs = []
    res = resolve(paths, tmp_path / "out.tif", model=model, tile_size=8, overlap=0, log=logs.append)
    assert [r["datetime"][:10] for r in res.revisits] == ["2023-05-01", "2023-05-11", "2023-05-01"]
    assert any("needs 3 revisits and 2 are usable" in m for m in logs)


def test_every_revisit_too_cloudy_is_a_clear_error(tmp_path, box_model):
    scls = [np.full((6, 6), 9, dtype=np.uint8)]
    paths = dated_series(tmp_path, [np.full((4, 6, 6), 100)], scls=scls)
    with pytest.raises(ModelContractError, match="Every revisit is above MAX_CLOUD 50 %.*100.0 %"):
        resolve(paths, tmp_path / "out.tif", model=box_model)
    assert not (tmp_path / "out.tif").exists()


def test_gpu_provider_requested_without_gpu_falls_back_to_cpu(tmp_path, box_model, random_series):
    import onnxruntime as ort

    logs = []
    res = resolve(random_series, tmp_path / "out.tif", model=box_model, provider="cuda", log=logs.append)
    assert res.provider == "CPU"
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.tags()["PROVIDER"] == "CPU"
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert any("CUDA provider could not start here" in m or "CUDA provider failed to load" in m for m in logs)
    else:
        assert any("CUDA provider is not in this ONNX Runtime build" in m for m in logs)
    logs.clear()
    assert load_model(box_model, "directml", Feedback(log=logs.append)).provider == "CPUExecutionProvider"
    assert "DirectML provider is not in this ONNX Runtime build" in logs[0]
    with pytest.raises(SatPluginError, match="PROVIDER must be one of auto, cpu, cuda"):
        load_model(box_model, "vulkan")


@pytest.mark.parametrize("drop,message", [
    (("scale",), "lacks the super-resolution metadata scale"),
    (("input_bands", "license"), "lacks the super-resolution metadata input_bands, license"),
    (("revisit_order",), "multi-frame model but lacks revisit_order"),
])
def test_missing_metadata_is_refused_at_load(tmp_path, drop, message):
    model = make_model(tmp_path / "m.onnx", drop_keys=drop)
    with pytest.raises(ModelContractError, match=message):
        load_model(model)


def test_contract_that_does_not_fit_the_model_or_the_input(tmp_path, random_series):
    fixed = make_model(tmp_path / "fixed.onnx", fixed_size=(32, 32))
    with pytest.raises(ModelContractError, match=r"fixed input size \[32, 32\].*dynamic height and width"):
        load_model(fixed)
    wrong_bands = make_model(tmp_path / "wrong.onnx", bands=["B02", "B03", "B04", "B11"])
    with pytest.raises(ModelContractError, match="lacks the band\\(s\\) B11 that the model needs"):
        resolve(random_series, tmp_path / "out.tif", model=wrong_bands)
    from satplugin.qgis_satplugin.core.superres.contract import metadata_props

    lying = metadata_props(**contract_metadata(output_bands=["B02", "B03"]))
    with pytest.raises(ModelContractError, match="output has 4 bands but its metadata lists 2"):
        load_model(make_model(tmp_path / "lying.onnx", metadata=lying))
    assert not (tmp_path / "out.tif").exists()


def test_cancel_leaves_no_file_and_keeps_the_previous_output(tmp_path, box_model, random_series):
    out = tmp_path / "out.tif"
    resolve(random_series, out, model=box_model, tile_size=16, overlap=4)
    before = out.read_bytes()
    calls = []

    def cancel_midway():  # 3 calls while ranking the revisits, then one per batch
        calls.append(1)
        return len(calls) > 5

    with pytest.raises(Canceled):
        resolve(random_series, out, model=box_model, tile_size=16, overlap=4, batch_size=1,
                      is_canceled=cancel_midway)
    assert len(calls) == 6
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.onnx", "out.tif", "series"]


def test_bad_parameters_give_clear_errors(tmp_path, box_model, random_series):
    with pytest.raises(SatPluginError, match="OVERLAP must be at least 0 and less than half of TILE_SIZE"):
        resolve(random_series, tmp_path / "o.tif", model=box_model, tile_size=32, overlap=16)
    with pytest.raises(SatPluginError, match="must be a GeoTIFF"):
        resolve(random_series, tmp_path / "o.png", model=box_model)
    with pytest.raises(SatPluginError, match="does not exist"):
        resolve(random_series, tmp_path / "o.tif", model=tmp_path / "missing.onnx")
    with pytest.raises(SatPluginError, match="not writable|does not exist"):
        resolve(random_series, tmp_path / "no" / "o.tif", model=box_model)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_overviews_are_the_means_of_the_level_below(tmp_path):
    model = make_model(tmp_path / "bilinear.onnx", resize="linear")
    rng = np.random.default_rng(1)
    dn = rng.integers(500, 3000, (4, 300, 283))
    dn[:, :3, :3] = 0  # no data: NaN at full resolution, ignored by the overview means
    paths = dated_series(tmp_path, [dn])
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=64, overlap=8)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.overviews(1) == [2, 4]
        full = ds.read()
        half = ds.read(out_shape=(4, 300, 283))  # GDAL reads the matching overview
        quarter = ds.read(out_shape=(4, 150, 142))
    expected = np.nanmean(full.reshape(4, 300, 2, 283, 2), axis=(2, 4))
    np.testing.assert_allclose(half, expected, rtol=1e-6)
    assert np.isnan(half[:, :3, :3]).all() and not np.isnan(half[:, 3:, 3:]).any()
    padded = np.pad(half, ((0, 0), (0, 0), (0, 1)), constant_values=np.nan)
    np.testing.assert_allclose(quarter, np.nanmean(padded.reshape(4, 150, 2, 142, 2), axis=(2, 4)), rtol=1e-6)


def test_full_disk_is_a_clear_error_and_leaves_no_file(tmp_path, box_model, random_series, monkeypatch):
    import errno

    from satplugin.qgis_satplugin.core.superres import output_raster

    def no_space(self, data, row):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(output_raster.OutputRaster, "_write", no_space)
    with pytest.raises(SatPluginError, match="The disk is full at .*; free some space and run again"):
        resolve(random_series, tmp_path / "out.tif", model=box_model, tile_size=16, overlap=4)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["box.onnx", "series"]


def test_the_output_is_written_without_the_osgeo_bindings(tmp_path, box_model, random_series, monkeypatch):
    # A pip-installed engine has rasterio's GDAL but no osgeo.gdal (it has no PyPI wheel).
    import sys

    monkeypatch.setitem(sys.modules, "osgeo", None)
    res = resolve(random_series, tmp_path / "out.tif", model=box_model, tile_size=16, overlap=4)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert (ds.width, ds.height) == (res.width, res.height) == (122, 90)
        assert ds.profile["compress"] == "zstd" and ds.profile["tiled"] and ds.block_shapes[0] == (256, 256)
        assert ds.tags()["MODEL_FILE"] == "box.onnx" and ds.descriptions == tuple(BANDS)
        assert not np.isnan(ds.read()).any()


def test_a_gdal_failure_is_a_runtime_error_with_gdals_message(tmp_path):
    from satplugin.qgis_satplugin.core.superres.gdal_writer import GeoTiff

    target = tmp_path / "no such folder" / "out.tif"
    with pytest.raises(RuntimeError, match="no such folder"):
        GeoTiff(target, 10, 10, 1, "float32", ["TILED=YES"])
    assert not target.parent.exists()
