"""Download from STAC items: COGs read by HTTP range requests from a loopback file server.

The project's own COGs (synthetic world, known values) always run; the real Earth
Search product of tile 29RKH runs too when the shared data folder is present. Values
are checked against the world's formula where the target grid is aligned with the
band, and otherwise against a direct rasterio read + reproject of the same file.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from rasterio.enums import Resampling
from rasterio.warp import reproject
from shapely.geometry import box, mapping, shape

from satplugin.qgis_satplugin.core.download import apply_harmonization
from satplugin.qgis_satplugin.core.search.stac import product_from_stac_item
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files
from tests.servers.files import RangeFileServer
from tests.servers.items import real_data_dir, stac_item
from satplugin.tests.fixtures.step_runs import run_download

UTC = timezone.utc
WHEN = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A baseline 05.09 product (values + 1000) behind a range file server."""
    root = tmp_path_factory.mktemp("cogs")
    with RangeFileServer(root) as server:
        folder, item = s2_world.make_cog_product(root, when=WHEN, baseline="05.09", asset_base=server.url)
        yield server, folder, product_from_stac_item(item)


def reference(path, grid, resampling, overview_level=None, subtract=0):
    """Independent check: the whole file (or one overview) read and reprojected at once."""
    options = {} if overview_level is None else {"overview_level": overview_level}
    with rasterio.open(path, **options) as src:
        data = src.read(1)
        out = np.zeros((grid.height, grid.width), dtype=data.dtype)
        reproject(data, out, src_transform=src.transform, src_crs=src.crs, src_nodata=0,
                  dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=0, resampling=resampling)
    return apply_harmonization(out, subtract)


def test_cog_bands_onto_the_grid(served, tmp_path):
    server, folder, product = served
    server.requests.clear()
    bands = ["B02", "B03", "B04", "B08", "B05"]
    result = run_download([product], s2_world.aoi_4326(), tmp_path, bands, max_concurrent=3)
    grid = result.grid
    assert [f["path"] for f in result.files] == ["20230612T101559_S2B_T33TWM.tif", "20230612T101559_S2B_T33TWM_SCL.tif"]
    with rasterio.open(tmp_path / result.files[0]["path"]) as ds:
        data = ds.read()
        assert ds.descriptions == tuple(bands) and ds.tags()["HARMONIZED"] == "true"
    for i, band in enumerate(bands[:4]):  # 10 m bands on a 10 m grid of the same lattice: the world's values
        np.testing.assert_array_equal(data[i], s2_world.expected_on_grid(band, grid))
    # 20 m band: bilinear, as a direct read + reproject of the whole file gives it
    np.testing.assert_array_equal(data[4], reference(folder / "B05.tif", grid, Resampling.bilinear, subtract=1000))
    assert data[4].max() < 6000 and (data[4] == 0).any()
    with rasterio.open(tmp_path / result.files[1]["path"]) as scl:
        np.testing.assert_array_equal(scl.read(1), s2_world.expected_on_grid("SCL", grid))
    assert_only_complete_files(tmp_path)

    # Only the window over the AOI was read, with range requests.
    b02 = server.requests_to(f"/{folder.name}/B02.tif")
    assert b02 and all(r.headers["range"].startswith("bytes=") for r in b02)
    ranges = [tuple(map(int, r.headers["range"][6:].split("-"))) for r in b02]
    fetched = sum(b - a + 1 for a, b in ranges)
    assert fetched < 0.25 * (folder / "B02.tif").stat().st_size
    assert result.transferred_bytes >= fetched and result.requests >= len(b02)
    item_reads = server.requests_to(f"/{folder.name}/{folder.name}.json")
    assert item_reads == []  # issue 12: the provider's offset flag comes with the search's output


def test_coarse_pixels_read_overviews(served, tmp_path):
    server, folder, product = served
    server.requests.clear()
    result = run_download([product], s2_world.aoi_4326(), tmp_path, ["B02", "B05"], pixel_size=40.0, include_masks=False)
    grid = result.grid
    with rasterio.open(folder / "B02.tif") as src:
        assert src.overviews(1)[:2] == [2, 4]
    with rasterio.open(tmp_path / result.files[0]["path"]) as ds:
        data = ds.read()
    # B02 (10 m) onto 40 m comes from the 4x overview; B05 (20 m) from its 2x overview.
    np.testing.assert_array_equal(data[0], reference(folder / "B02.tif", grid, Resampling.bilinear, 1, subtract=1000))
    np.testing.assert_array_equal(data[1], reference(folder / "B05.tif", grid, Resampling.bilinear, 0, subtract=1000))
    full = reference(folder / "B02.tif", grid, Resampling.bilinear, None, subtract=1000)
    assert not np.array_equal(data[0], full)  # the overview really was used


def test_provider_flag_prevents_a_second_subtraction(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    with RangeFileServer(root) as server:
        _, item = s2_world.make_cog_product(root, when=WHEN, baseline="05.09", asset_base=server.url, boa_offset_applied=True, bands=("B04",))
        result = run_download([product_from_stac_item(item)], s2_world.aoi_4326(), tmp_path / "out", ["B04"], include_masks=False)
    (entry,) = result.files
    assert entry["harmonization"][0]["subtract_dn"] == 0 and "already removed" in entry["harmonization"][0]["reason"]
    with rasterio.open(tmp_path / "out" / entry["path"]) as ds:
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B04", result.grid))
        assert ds.offsets == (0.0,)


@pytest.mark.parametrize("pixel_size", [100.0, 400.0])
def test_real_29rkh_product(tmp_path, pixel_size):
    """The real Earth Search COGs (1/10 resolution): B02 at 100 m, B05 at 200 m, B01 at 600 m, SCL at 200 m."""
    root = real_data_dir()
    if root is None or not (root / "s2_l2a_29RKH_100m" / "B02.tif").is_file():
        pytest.skip("real data folder absent (set SATPLUGIN_REAL_DATA or provide ../shared/data)")
    data_dir = root / "s2_l2a_29RKH_100m"
    with RangeFileServer(data_dir) as server:
        item = stac_item(asset_base=server.url)  # the real Earth Search item, assets on the loopback server
        product = product_from_stac_item(item)
        assert product.processing_baseline == "02.14"
        aoi = shape(rasterio.warp.transform_geom("EPSG:32629", "EPSG:4326", mapping(box(230050, 2720030, 250070, 2740090))))
        bands = ["B02", "B05", "B01"]
        result = run_download([product], aoi, tmp_path, bands, pixel_size=pixel_size)
    grid = result.grid
    assert grid.crs == "EPSG:32629" and grid.x_min % 60 == 0
    with rasterio.open(tmp_path / result.files[0]["path"]) as ds:
        data = ds.read()
        assert ds.tags()["PROCESSING_BASELINE"] == "02.14" and ds.tags()["PRODUCT_ID"].startswith("S2A_MSIL2A_20200219")
        assert ds.tags()["ACQUISITION_DATETIME"] == "2020-02-19T11:34:25Z"  # the item's own time
    stamp = product.product_id.split("_")[2]  # the SAFE name's sensing start names the file
    assert result.files[0]["path"] == f"{stamp}_S2A_T29RKH.tif"
    for i, band in enumerate(bands):
        path = data_dir / f"{band}.tif"
        with rasterio.open(path):
            level = {100.0: None, 400.0: {"B02": 1, "B05": 0, "B01": None}[band]}[pixel_size]
        expected = reference(path, grid, Resampling.bilinear, level)
        np.testing.assert_array_equal(data[i], expected)
        assert (expected > 0).mean() > 0.99  # real reflectance, not an empty window
    with rasterio.open(tmp_path / result.files[1]["path"]) as scl:
        level = 0 if pixel_size == 400.0 else None
        np.testing.assert_array_equal(scl.read(1), reference(data_dir / "SCL.tif", grid, Resampling.nearest, level))
    assert_only_complete_files(tmp_path)


def test_a_server_that_ignores_range_requests_is_read_once_per_file(tmp_path):
    class NoRanges(RangeFileServer):
        def handle(self, req):
            req.headers.pop("range", None)
            return super().handle(req)

    root = tmp_path / "src"
    root.mkdir()
    with NoRanges(root) as server:
        folder, item = s2_world.make_cog_product(root, when=WHEN, baseline="02.14", asset_base=server.url, bands=("B03",))
        item["links"] = []
        result = run_download([product_from_stac_item(item)], s2_world.aoi_4326(), tmp_path / "out", ["B03"], include_masks=False)
        assert len(server.requests_to(f"/{folder.name}/B03.tif")) == 1
    with rasterio.open(tmp_path / "out" / result.files[0]["path"]) as ds:
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B03", result.grid))
