"""Band-sharpening models in the super-resolution runtime (a known ONNX graph, no real data):
the contract type, tiles aligned on the 2 x 2 blocks of a 20 m band, reflectance kept per
block, tile-exactness on rasters of odd size, the same bytes on a cluster."""
import hashlib

import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.superres import ModelContractError, SuperResolveOptions, band_task, run
from satplugin.qgis_satplugin.core.superres.contract import ModelContract, metadata_props

from ..superres_fixtures import MEAN, STD, contract_metadata, make_model, write_revisit

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

# Two 20 m bands first (the fixture graph outputs its first channels), then two 10 m ones.
BANDS = ["B05", "B8A", "B04", "B08"]
RESOLUTIONS = [20, 20, 10, 10]


def sharpening_meta(**overrides) -> dict:
    meta = contract_metadata(model_type="band-sharpening", scale=1, input_bands=BANDS, output_bands=BANDS[:2],
                             input_resolutions=RESOLUTIONS, receptive_field=1,
                             input_scaling={"dn_scale": 0.0001, "dn_offset": 0.0, "mean": MEAN, "std": STD})
    meta.pop("revisits")
    meta.pop("revisit_order")
    meta.update(overrides)
    return meta


@pytest.fixture
def sharpener(tmp_path):
    """A 3 x 3 box over every band, the first two out: it blurs, so its 2 x 2 block means drift."""
    return make_model(tmp_path / "sharpen.onnx", box=True, scale=1, bands=BANDS, out_bands=BANDS[:2],
                      multi_frame=False, metadata=metadata_props(**sharpening_meta()))


def image(height, width, seed=4):
    """Smooth-ish reflectance, the 20 m bands in 2 x 2 blocks from row 0 and column 0 (as a real product's)."""
    rng = np.random.default_rng(seed)
    fine = rng.integers(300, 3000, (2, height, width))
    coarse = np.repeat(np.repeat(rng.integers(300, 3000, (2, -(-height // 2), -(-width // 2))), 2, 1), 2, 2)
    return np.concatenate([coarse[:, :height, :width], fine])


def resolve(inputs, output, *, log=None, **options):
    return run(SuperResolveOptions(inputs=inputs, output=output, **options), Feedback(log=log))


def read(path):
    with rasterio.open(path) as ds:
        return ds.read().astype(np.float64), {"transform": ds.transform, "crs": ds.crs, "shape": ds.shape,
                                               "descriptions": list(ds.descriptions)}


def block_means(a, f=2):
    c, h, w = a.shape
    return a[:, :h // f * f, :w // f * f].reshape(c, h // f, f, w // f, f).mean(axis=(2, 4))


def test_the_contract_type_and_its_consistency_blocks():
    contract = ModelContract.from_metadata(metadata_props(**sharpening_meta()))
    assert contract.model_type == "band-sharpening" and not contract.multi_frame and contract.scale == 1
    assert contract.consistency_factors == (2, 2) and contract.block_pixels == 2
    assert "band sharpening" in contract.describe()
    sixty = ModelContract.from_metadata(metadata_props(**sharpening_meta(
        input_resolutions=[20, 60, 10, 10], output_bands=["B05", "B8A", "NDVI"], output_units="reflectance")))
    assert sixty.consistency_factors == (2, 6, None) and sixty.block_pixels == 6
    x2 = ModelContract.from_metadata(metadata_props(**contract_metadata()))
    assert x2.consistency_factors == (2, 2, 2, 2) and x2.block_pixels == 1


@pytest.mark.parametrize("overrides,message", [
    ({"input_resolutions": None}, "band-sharpening model but lacks input_resolutions"),
    ({"scale": 2}, "its scale must be 1, not 2"),
    ({"input_resolutions": [20, 25, 10, 10]}, "positive multiples of the finest one"),
    ({"input_resolutions": [20, 10]}, r"one value per input band \(4\)"),
])
def test_a_band_sharpening_contract_that_does_not_hold_is_refused(overrides, message):
    with pytest.raises(ModelContractError, match=message):
        metadata_props(**sharpening_meta(**overrides))


def test_input_resolutions_belong_to_band_sharpening_models_only():
    with pytest.raises(ModelContractError, match="input_resolutions is for band-sharpening models; this one is single"):
        meta = contract_metadata(model_type="single", input_resolutions=[10, 10, 10, 10])
        meta.pop("revisits")
        metadata_props(**meta)


@pytest.mark.parametrize("height,width", [(40, 36), (37, 29)])
def test_the_output_keeps_the_grid_and_each_20_m_pixel_keeps_its_mean(tmp_path, sharpener, height, width):
    dn = image(height, width)
    path = write_revisit(tmp_path / "scene.tif", dn, None, bands=BANDS)
    logs = []
    resolve([path], tmp_path / "out.tif", model=sharpener, tile_size=64, overlap=8, log=logs.append)
    out, meta = read(tmp_path / "out.tif")
    with rasterio.open(path) as src:
        assert meta["transform"] == src.transform and meta["crs"] == src.crs and meta["shape"] == (height, width)
    assert meta["descriptions"] == BANDS[:2]
    reflectance = dn[:2] * 1e-4
    # Whole 2 x 2 blocks inside the raster: their mean is the input's (a 20 m pixel's value).
    np.testing.assert_allclose(block_means(out), block_means(reflectance), rtol=0, atol=2e-7)
    assert np.abs(out - reflectance).max() > 1e-3  # the model did change the pixels within blocks
    raw = tmp_path / "raw.tif"
    resolve([path], raw, model=sharpener, tile_size=64, overlap=8, preserve_reflectance=False)
    assert np.abs(block_means(read(raw)[0]) - block_means(reflectance)).max() > 1e-2
    assert any("Reflectance preserved: each band's 2 x 2 pixel blocks (its native pixels) average to those of "
               "its input (mean absolute correction: B05 " in m for m in logs)


@pytest.mark.parametrize("tile,overlap", [(16, 6), (17, 5), (24, 8), (12, 4)])
def test_tiles_start_on_the_blocks_so_tiling_changes_nothing(tmp_path, sharpener, tile, overlap):
    path = write_revisit(tmp_path / "scene.tif", image(37, 45), None, bands=BANDS)
    resolve([path], tmp_path / "whole.tif", model=sharpener, tile_size=128, overlap=8)
    logs = []
    result = resolve([path], tmp_path / "tiled.tif", model=sharpener, tile_size=tile, overlap=overlap,
                     log=logs.append)
    assert result.tiles > 4
    np.testing.assert_allclose(read(tmp_path / "tiled.tif")[0], read(tmp_path / "whole.tif")[0], rtol=0, atol=3e-7)
    rounded = tile % 2 or overlap % 2
    assert any(f"using TILE_SIZE {tile // 2 * 2} and OVERLAP {-(-overlap // 2) * 2}" in m for m in logs) == bool(rounded)


def test_a_cluster_run_gives_the_same_bytes(tmp_path, sharpener, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.setattr(band_task, "MIN_TILE_ROWS", 1)
    monkeypatch.setattr(band_task, "MAX_TILE_ROWS", 1)
    path = write_revisit(tmp_path / "scene.tif", image(61, 33), None, bands=BANDS)
    for name, scheduler in (("none", None), ("local", "local:2")):
        resolve([path], tmp_path / f"{name}.tif", model=sharpener, tile_size=16, overlap=6, dask_scheduler=scheduler)
    digests = {hashlib.sha256((tmp_path / f"{n}.tif").read_bytes()).hexdigest() for n in ("none", "local")}
    assert len(digests) == 1


def bilinear_onto_grid(coarse: np.ndarray) -> np.ndarray:
    """GDAL's bilinear warp of ``coarse`` [bands, h, w] onto the nested grid twice as fine (as the download does)."""
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    out = np.zeros((coarse.shape[0], coarse.shape[1] * 2, coarse.shape[2] * 2), dtype=np.float32)
    reproject(coarse.astype(np.float32), out, src_transform=from_origin(500000, 5000000, 20, 20), src_crs="EPSG:32633",
              dst_transform=from_origin(500000, 5000000, 10, 10), dst_crs="EPSG:32633", resampling=Resampling.bilinear)
    return out


@pytest.mark.parametrize("tile,overlap", [(128, 8), (16, 6), (24, 8)])
def test_bilinear_coarse_bands_keep_their_native_values_not_their_blurred_block_means(
        tmp_path, sharpener, tile, overlap):
    rng = np.random.default_rng(8)
    native = rng.uniform(0.03, 0.3, (2, 23, 21))  # the 20 m values
    fine = rng.uniform(0.03, 0.3, (2, 46, 42))
    reflectance = np.concatenate([bilinear_onto_grid(native), fine])
    path = tmp_path / "scene.tif"
    with rasterio.open(path, "w", driver="GTiff", width=42, height=46, count=4, dtype="float32", crs="EPSG:32633",
                       transform=rasterio.transform.from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(reflectance.astype(np.float32))
        for i, name in enumerate(BANDS, start=1):
            ds.set_band_description(i, name)
    logs = []
    resolve([path], tmp_path / "out.tif", model=sharpener, tile_size=tile, overlap=overlap, log=logs.append)
    out = read(tmp_path / "out.tif")[0]
    assert any("resampled onto the grid (bilinearly, as the download step does): their native values are "
               "recovered" in m for m in logs)
    # Every 20 m pixel, up to the raster's edges (GDAL repeats the edge value, the runtime mirrors to match).
    np.testing.assert_allclose(block_means(out), native, rtol=0, atol=2e-6)
    # Held to its own block means instead, the band would keep GDAL's blur of its 20 m values.
    assert np.abs(block_means(reflectance[:2]) - native).max() > 1e-2
    if tile != 128:
        resolve([path], tmp_path / "whole.tif", model=sharpener, tile_size=128, overlap=8)
        np.testing.assert_allclose(out, read(tmp_path / "whole.tif")[0], rtol=0, atol=5e-7)


def test_native_pixels_that_do_not_start_at_the_origin_are_not_corrected_and_the_log_says_why(tmp_path, sharpener):
    dn = image(41, 30)
    shifted = np.concatenate([dn[:2, 1:], dn[2:, :-1]])  # the 2 x 2 blocks now start at row 1
    path = write_revisit(tmp_path / "scene.tif", shifted, None, bands=BANDS)
    logs = []
    resolve([path], tmp_path / "out.tif", model=sharpener, tile_size=64, overlap=8, log=logs.append)
    with rasterio.open(tmp_path / "out.tif") as ds:
        assert ds.tags()["PRESERVE_REFLECTANCE"] == "no"
    assert any("PRESERVE_REFLECTANCE is not applied: the coarse bands lie on the grid in whole native pixels that "
               "do not start at the raster's first row and column" in m for m in logs)


@pytest.mark.parametrize("align", [2, 3, 6])
def test_tile_and_overlap_are_rounded_onto_blocks_and_still_valid(align):
    from satplugin.qgis_satplugin.core.superres.tiling import aligned_tiling, check_tiling

    for tile in range(8, 70):
        for overlap in range(tile // 2):
            t, o = aligned_tiling(tile, overlap, align)
            check_tiling(t, o)  # 60 m blocks used to leave the overlap at half the tile, or the tile under 8
            assert t % align == 0 and o % align == 0 and abs(t - tile) < align + 8, (tile, overlap)
            assert o >= overlap or o == (t // 2 - 1) // align * align, (tile, overlap)
    assert aligned_tiling(8, 3, 6) == (12, 0) and aligned_tiling(100, 48, 6) == (96, 42)
    assert aligned_tiling(17, 5, 1) == (17, 5)


def write_float(path, reflectance, nodata=None):
    bands, height, width = reflectance.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=bands, dtype="float32",
                       crs="EPSG:32633", nodata=nodata,
                       transform=rasterio.transform.from_origin(500000, 5000000, 10, 10)) as ds:
        ds.write(reflectance.astype(np.float32))
        for i, name in enumerate(BANDS, start=1):
            ds.set_band_description(i, name)
    return path


def bilinear_from(native: np.ndarray, q: int) -> np.ndarray:
    """GDAL's bilinear warp of ``native`` [h, w] at 10 q m onto the nested 10 m grid."""
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    out = np.zeros((native.shape[0] * q, native.shape[1] * q), dtype=np.float32)
    reproject(native.astype(np.float32), out, src_transform=from_origin(500000, 5000000, 10 * q, 10 * q),
              src_crs="EPSG:32633", dst_transform=from_origin(500000, 5000000, 10, 10), dst_crs="EPSG:32633",
              resampling=Resampling.bilinear)
    return out


def test_bands_of_two_block_sides_keep_their_native_values_across_tiles(tmp_path):
    """20 m and 30 m bands (blocks of 2 and 3): the context rows read around each chunk start on both blocks."""
    model = make_model(tmp_path / "sharpen.onnx", box=True, scale=1, bands=BANDS, out_bands=BANDS[:2],
                       multi_frame=False, metadata=metadata_props(**sharpening_meta(input_resolutions=[20, 30, 10, 10])))
    rng = np.random.default_rng(3)
    n20, n30 = rng.uniform(0.03, 0.3, (24, 21)), rng.uniform(0.03, 0.3, (16, 14))
    reflectance = np.stack([bilinear_from(n20, 2), bilinear_from(n30, 3), *rng.uniform(0.03, 0.3, (2, 48, 42))])
    path = write_float(tmp_path / "scene.tif", reflectance)
    logs = []
    resolve([path], tmp_path / "out.tif", model=model, tile_size=20, overlap=5, log=logs.append)
    assert any("using TILE_SIZE 18 and OVERLAP 6 (multiples of 6)" in m for m in logs)
    out = read(tmp_path / "out.tif")[0]
    np.testing.assert_allclose(block_means(out[:1], 2)[0], n20, rtol=0, atol=2e-6)
    np.testing.assert_allclose(block_means(out[1:2], 3)[0], n30, rtol=0, atol=2e-6)


@pytest.mark.parametrize("nodata_rows", [0, 300])
def test_how_the_coarse_bands_lie_is_judged_on_data_not_on_nodata(tmp_path, sharpener, nodata_rows):
    """Nodata at the top looked like whole blocks (nearest); NaN nodata inside blocks looked like bilinear."""
    rng = np.random.default_rng(5)
    height = nodata_rows + 40
    blocky = np.repeat(np.repeat(rng.uniform(0.03, 0.3, (2, height // 2, 10)), 2, 1), 2, 2)
    blurred = np.stack([bilinear_from(b, 2) for b in rng.uniform(0.03, 0.3, (2, height // 2, 10))])
    fine = rng.uniform(0.03, 0.3, (2, height, 20))
    for name, coarse, expected in (("blocky", blocky, "in whole blocks (nearest neighbour)"),
                                   ("blurred", blurred, "resampled onto the grid (bilinearly")):
        reflectance = np.concatenate([coarse, fine])
        reflectance[:, :nodata_rows] = np.nan
        reflectance[:, nodata_rows + 7, 3] = np.nan  # one NaN pixel inside a block
        path = write_float(tmp_path / f"{name}.tif", reflectance, nodata=float("nan"))
        logs = []
        resolve([path], tmp_path / f"{name}-out.tif", model=sharpener, tile_size=64, overlap=8, log=logs.append)
        assert any(expected in m for m in logs), (name, [m for m in logs if "coarse bands" in m])


def test_a_few_blocks_of_data_are_not_enough_to_judge_by(tmp_path, sharpener):
    """A flat tip of data in the first rows (it looks like whole blocks) does not decide; the rows below do."""
    rng = np.random.default_rng(6)
    height = 340
    blurred = np.stack([bilinear_from(b, 2) for b in rng.uniform(0.03, 0.3, (2, height // 2, 10))])
    reflectance = np.concatenate([blurred, rng.uniform(0.03, 0.3, (2, height, 20))])
    reflectance[:, :300] = np.nan
    reflectance[:, 10:14, 4:10] = 0.1  # 6 whole 2 x 2 blocks of one value
    path = write_float(tmp_path / "tip.tif", reflectance, nodata=float("nan"))
    logs = []
    resolve([path], tmp_path / "out.tif", model=sharpener, tile_size=64, overlap=8, log=logs.append)
    assert any("resampled onto the grid (bilinearly" in m for m in logs), [m for m in logs if "coarse bands" in m]


@pytest.mark.parametrize("nodata", [float("nan"), None])
def test_nan_pixels_are_no_data_and_do_not_spread_through_the_network(tmp_path, sharpener, nodata):
    """A NaN no-data value is equal to nothing, so NaN pixels were fed to the model: its 3 x 3 box spread them."""
    rng = np.random.default_rng(9)
    reflectance = np.concatenate([np.repeat(np.repeat(rng.uniform(0.03, 0.3, (2, 20, 24)), 2, 1), 2, 2),
                                  rng.uniform(0.03, 0.3, (2, 40, 48))])
    reflectance[:, 10:13, 20:25] = np.nan
    path = write_float(tmp_path / "hole.tif", reflectance, nodata=nodata)
    resolve([path], tmp_path / "out.tif", model=sharpener, tile_size=64, overlap=8)
    out = read(tmp_path / "out.tif")[0]
    assert [int(np.isnan(band).sum()) for band in out] == [15, 15]  # the hole, no wider
    assert np.isnan(out[:, 10:13, 20:25]).all()
