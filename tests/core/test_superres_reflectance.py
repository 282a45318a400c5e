"""PRESERVE_REFLECTANCE on models with known outputs (no real data needed): the output degraded
back by block means equals the reference input, whatever the tiling, near clouds, with
bands that are not corrected, no-data pixels, NaN outputs and uint16 outputs; and which
inputs the revisit order refuses."""
import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.superres import ModelContractError, SuperResolveOptions, run
from satplugin.qgis_satplugin.core.superres.contract import ModelContract, metadata_props
from satplugin.qgis_satplugin.core.superres.reflectance import ReflectanceCheck

from ..superres_fixtures import MEAN, contract_metadata, dated_series, make_model, write_revisit

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")


def resolve(inputs, output, *, log=None, **options):
    return run(SuperResolveOptions(inputs=inputs, output=output, **options), Feedback(log=log))


def read(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags(), [ds.tags(b) for b in range(1, ds.count + 1)]


def degrade(y: np.ndarray, s: int = 2) -> np.ndarray:
    c, h, w = y.shape
    return y.reshape(c, h // s, s, w // s, s).mean(axis=(2, 4), dtype=np.float64)


@pytest.fixture
def cloudy_series(tmp_path):
    """Three dates of random reflectance with SCL clouds of a few pixels scattered over them."""
    rng = np.random.default_rng(11)
    stacks = [rng.integers(200, 4000, (4, 53, 47)) for _ in range(3)]
    scls = []
    for k in range(3):
        scl = np.full((53, 47), 4, dtype=np.uint8)
        for r, c in rng.integers(0, 45, (6, 2)):
            scl[r:r + 3, c:c + 2] = 9
        scls.append(scl)
    (tmp_path / "series").mkdir()
    return dated_series(tmp_path / "series", stacks, scls=scls)


def test_degraded_output_equals_the_cloud_filled_reference_whatever_the_tiling(tmp_path, cloudy_series):
    # Bilinear x2 smooths: its 2 x 2 block means are not the input's, so there is something to correct.
    model = make_model(tmp_path / "linear.onnx", resize="linear", box=True)
    outputs = {}
    for tile in (16, 24, 64):
        resolve(cloudy_series, tmp_path / f"t{tile}.tif", model=model, tile_size=tile, overlap=6, max_cloud=100)
        outputs[tile] = read(tmp_path / f"t{tile}.tif")[0]
    # Clouds straddle strip boundaries at 16 and 24 px: the cloud buffer still reaches across them.
    np.testing.assert_allclose(outputs[16], outputs[64], rtol=0, atol=3e-6)
    np.testing.assert_allclose(outputs[24], outputs[64], rtol=0, atol=3e-6)
    # The reference as fed: the clearest date, cloud pixels (grown by 2 px) from the next clearest.
    reference = _cloud_filled_reference(cloudy_series)
    np.testing.assert_allclose(degrade(outputs[16]), reference, rtol=0, atol=2e-6)
    resolve(cloudy_series, tmp_path / "raw.tif", model=model, tile_size=16, overlap=6, max_cloud=100,
            preserve_reflectance=False)
    assert np.abs(degrade(read(tmp_path / "raw.tif")[0]) - reference).max() > 1e-2


def _cloud_filled_reference(paths):
    """Computed here on the whole raster: the clearest date (by its mask's cloud share, ties by date),
    each cloud pixel grown by 2 px taken from the next clearest date that is clear there."""
    import cv2

    images, clear, shares = [], [], []
    for p in paths:
        with rasterio.open(p) as ds:
            images.append(ds.read().astype(np.float64) * 1e-4)
        with rasterio.open(p.with_name(p.stem + "_SCL.tif")) as ds:
            cloud = ds.read(1) == 9
        shares.append(cloud.mean())
        clear.append(~cv2.dilate(cloud.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool))
    order = sorted(range(len(paths)), key=lambda i: (shares[i], i))
    filled = images[order[0]].copy()
    todo = ~clear[order[0]]
    for i in order[1:]:
        take = todo & clear[i]
        filled[:, take] = images[i][:, take]
        todo &= ~take
    return filled


def test_bands_that_are_not_inputs_are_left_as_the_model_wrote_them(tmp_path):
    model = make_model(tmp_path / "two.onnx", resize="linear", out_bands=["B02", "NDVI_LIKE"])
    rng = np.random.default_rng(3)
    paths = dated_series(tmp_path, [rng.integers(100, 3000, (4, 20, 20))])
    logs = []
    resolve(paths, tmp_path / "on.tif", model=model, tile_size=64, overlap=0, log=logs.append)
    resolve(paths, tmp_path / "off.tif", model=model, tile_size=64, overlap=0, preserve_reflectance=False)
    on, tags, band_tags = read(tmp_path / "on.tif")
    off = read(tmp_path / "off.tif")[0]
    with rasterio.open(paths[0]) as ds:
        x = ds.read(1).astype(np.float64) * 1e-4
    np.testing.assert_allclose(degrade(on[:1])[0], x, rtol=0, atol=1e-6)
    assert np.array_equal(on[1], off[1])  # the second band is not an input band: untouched
    assert "REFLECTANCE_CORRECTION_MEAN_ABS" in band_tags[0] and "REFLECTANCE_CORRECTION_MEAN_ABS" not in band_tags[1]
    assert float(band_tags[0]["REFLECTANCE_CORRECTION_MEAN_ABS"]) == pytest.approx(
        np.abs(x - degrade(off[:1])[0]).mean(), rel=1e-3)
    assert any("Not corrected (not an input band in reflectance): NDVI_LIKE." in m for m in logs)


def test_no_data_pixels_stay_no_data_and_are_not_counted(tmp_path):
    model = make_model(tmp_path / "linear.onnx", resize="linear")
    rng = np.random.default_rng(5)
    dn = rng.integers(100, 3000, (4, 16, 16))
    dn[:, 4:6, 4:6] = 0  # no data on the only date
    paths = dated_series(tmp_path, [dn])
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=64, overlap=0, max_cloud=100)
    out, _, band_tags = read(tmp_path / "out.tif")
    assert np.isnan(out[:, 8:12, 8:12]).all() and np.isnan(out).sum() == 4 * 16
    valid = dn[0] > 0
    np.testing.assert_allclose(degrade(out)[:, valid], (dn * 1e-4)[:, valid], rtol=0, atol=1e-6)
    resolve(paths, tmp_path / "off.tif", model=model, tile_size=64, overlap=0, max_cloud=100,
            preserve_reflectance=False)
    off = read(tmp_path / "off.tif")[0]
    expected = np.abs((dn * 1e-4)[0][valid] - degrade(off)[0][valid]).mean()
    assert float(band_tags[0]["REFLECTANCE_CORRECTION_MEAN_ABS"]) == pytest.approx(expected, rel=1e-3)


def test_uint16_outputs_hold_it_to_half_a_dn_step(tmp_path):
    meta = contract_metadata(output_dtype="uint16", output_scaling={"dn_scale": 0.0001}, receptive_field=None)
    model = make_model(tmp_path / "u16.onnx", resize="linear", metadata=metadata_props(**meta))
    # Smooth enough that no corrected pixel leaves the uint16 range (clipping would break the equality).
    yy, xx = np.mgrid[0:18, 0:18]
    dn = np.stack([1500 + 700 * np.sin(xx / (3 + k)) * np.cos(yy / 4) for k in range(4)]).round()
    paths = dated_series(tmp_path, [dn])
    logs = []
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=64, overlap=0, log=logs.append)
    out = read(tmp_path / "out.tif")[0].astype(np.float64)
    error = np.abs(degrade(out) - dn)  # in DN: each pixel rounded by at most half a step
    assert error.max() <= 0.5 + 1e-9 and error.max() > 0
    assert any("The uint16 output holds it to half a DN step (5e-05)." in m for m in logs)


def test_nan_model_output_does_not_spread_to_its_block():
    contract = ModelContract.from_metadata(metadata_props(**contract_metadata()))
    check = ReflectanceCheck(contract)
    reference = np.zeros((4, 2, 3), dtype=np.float32)  # model-normalised: reflectance = the band means
    rows = np.full((4, 4, 6), 0.5, dtype=np.float32)
    rows[0, 0, 0] = np.nan  # one pixel of block (0, 0)
    rows[1, 0:2, 0:2] = np.nan  # a whole block
    check.apply(rows, reference, np.ones((2, 3), dtype=bool), (0, 2, 0, 3))
    assert np.isnan(rows).sum() == 5
    # Block (0, 0) of band 0: its three finite pixels average to the reference.
    assert rows[0, 0, 1] == rows[0, 1, 0] == rows[0, 1, 1] == pytest.approx(MEAN[0])
    np.testing.assert_allclose(degrade(rows[2:]), np.broadcast_to(np.array(MEAN[2:])[:, None, None], (2, 2, 3)),
                               atol=1e-7)
    means = check.mean_abs()
    assert all(np.isfinite(v) for v in means.values())
    assert means[1] == pytest.approx(abs(0.5 - MEAN[1]), rel=1e-5)  # the NaN block is not counted (was 5/6 of it)


def test_a_chronological_model_is_not_corrected_and_the_log_says_why(tmp_path):
    meta = contract_metadata(revisit_order="chronological", receptive_field=None)
    model = make_model(tmp_path / "chrono.onnx", resize="linear", metadata=metadata_props(**meta))
    rng = np.random.default_rng(1)
    paths = dated_series(tmp_path, [rng.integers(100, 3000, (4, 10, 10)) for _ in range(2)])
    logs = []
    resolve(paths, tmp_path / "out.tif", model=model, tile_size=64, overlap=0, log=logs.append)
    _, tags, band_tags = read(tmp_path / "out.tif")
    assert tags["PRESERVE_REFLECTANCE"] == "no"
    assert "REFLECTANCE_CORRECTION_MEAN_ABS" not in band_tags[0]
    assert any("PRESERVE_REFLECTANCE is not applied: the model takes its revisits oldest first" in m for m in logs)


def test_a_chronological_model_refuses_dated_and_undated_rasters_mixed(tmp_path):
    meta = contract_metadata(revisit_order="chronological", receptive_field=None)
    model = make_model(tmp_path / "chrono.onnx", metadata=metadata_props(**meta))
    dated = dated_series(tmp_path, [np.full((4, 8, 8), 1000)])
    undated = write_revisit(tmp_path / "scene_x.tif", np.full((4, 8, 8), 2000), None)
    with pytest.raises(ModelContractError, match=r"oldest first, and 1 of the 2 rasters have no date \(scene_x.tif "
                                                 r"among them\) while 1 have one"):
        resolve([undated, *dated], tmp_path / "out.tif", model=model)
    assert not (tmp_path / "out.tif").exists()
    logs = []  # a model that ranks by cloud takes the mix, and the log says the dates are not sorted
    resolve([undated, *dated], tmp_path / "mixed.tif", model=make_model(tmp_path / "ref.onnx"), log=logs.append)
    assert any("2 rasters (1 undated: all kept in the order given, the dated ones not sorted by date either)" in m
               for m in logs)


def test_a_raster_given_twice_or_two_of_one_time_are_refused(tmp_path):
    model = make_model(tmp_path / "ref.onnx")
    a = write_revisit(tmp_path / "scene_a.tif", np.full((4, 8, 8), 1000), None)
    b = write_revisit(tmp_path / "scene_b.tif", np.full((4, 8, 8), 2000), None)
    with pytest.raises(SatPluginError, match="scene_a.tif is given twice"):
        resolve([a, b, tmp_path / "." / "scene_a.tif"], tmp_path / "out.tif", model=model)
    (tmp_path / "d1").mkdir()
    (tmp_path / "d2").mkdir()
    first = dated_series(tmp_path / "d1", [np.full((4, 8, 8), 1000)])
    second = dated_series(tmp_path / "d2", [np.full((4, 8, 8), 3000)])
    # Same time, not next to each other in the given order (an undated raster between them).
    with pytest.raises(SatPluginError, match="S2_20230501.tif and S2_20230501.tif have the same acquisition time"):
        resolve([first[0], a, second[0]], tmp_path / "out.tif", model=model)
    assert not (tmp_path / "out.tif").exists()
