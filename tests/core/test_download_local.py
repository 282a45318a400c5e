"""Download from products on disk: SAFE folders and zips (JPEG 2000), COG folders; harmonization.

Two L2A products with the same underlying reflectance, one of baseline 03.01 and one of
05.09 (which stores DN + 1000), must give identical numbers once harmonized.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search.local import scan_folder
from tests.conftest import with_bind_mount
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files
from satplugin.tests.fixtures.step_runs import run_download

UTC = timezone.utc
OLD = datetime(2021, 7, 3, 10, 20, 21, tzinfo=UTC)
NEW = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)
BANDS = ["B02", "B03", "B04", "B08"]


@pytest.fixture(scope="module")
def safes(tmp_path_factory):
    root = tmp_path_factory.mktemp("safe")
    s2_world.make_safe_l2a(root, when=OLD, baseline="03.01")
    s2_world.make_safe_l2a(root, when=NEW, baseline="05.09", zipped=True)  # read in place through /vsizip/
    products = sorted(scan_folder(root), key=lambda p: p.datetime)
    assert [p.processing_baseline for p in products] == ["03.01", "05.09"]
    assert products[1].download["assets"]["B02"].startswith("/vsizip/")
    return products


def read_all(path):
    with rasterio.open(path) as ds:
        return ds.read(), ds.tags(), ds.offsets


def test_both_sides_of_baseline_04_00_give_identical_numbers(safes, tmp_path):
    result = run_download(safes, s2_world.aoi_4326(), tmp_path, BANDS)
    images = [f for f in result.files if f["kind"] == "image"]
    assert [f["path"] for f in images] == ["20210703T102021_S2A_T33TWM.tif", "20230612T101559_S2A_T33TWM.tif"]
    (old, old_tags, _), (new, new_tags, new_offsets) = (read_all(tmp_path / f["path"]) for f in images)
    np.testing.assert_array_equal(old, new)
    for i, band in enumerate(BANDS):
        np.testing.assert_array_equal(new[i], s2_world.expected_on_grid(band, result.grid))
    assert (new == 0).any() and not ((new > 0) & (new < 100)).any()  # no-data stays 0, nothing wrapped
    assert "subtracted 1000 DN" in new_tags["HARMONIZATION"] and "03.01 < 04.00" in old_tags["HARMONIZATION"]
    assert new_offsets == (0.0,) * 4
    assert [f["harmonization"][0]["subtract_dn"] for f in images] == [0, 1000]
    masks = [f for f in result.files if f["kind"] == "mask"]
    assert [f["path"] for f in masks] == ["20210703T102021_S2A_T33TWM_SCL.tif", "20230612T101559_S2A_T33TWM_SCL.tif"]
    with rasterio.open(tmp_path / masks[1]["path"]) as scl:
        np.testing.assert_array_equal(scl.read(1), s2_world.expected_on_grid("SCL", result.grid))
    assert_only_complete_files(tmp_path)


def test_without_harmonization_the_new_baseline_keeps_its_offset(safes, tmp_path):
    result = run_download(safes, s2_world.aoi_4326(), tmp_path, ["B08"], harmonize=False, include_masks=False)
    (old, _, old_offsets), (new, tags, offsets) = (read_all(tmp_path / f["path"]) for f in result.files)
    assert tags["HARMONIZED"] == "false" and offsets == (pytest.approx(-0.1),) and old_offsets == (0.0,)
    np.testing.assert_array_equal(new, np.where(old > 0, old + 1000, 0))


def test_tiles_of_one_overpass_are_mosaicked(tmp_path):
    """Two COG folders of one date and orbit, each with data on one half: one file, data everywhere."""
    root = tmp_path / "src"
    halves = []
    for tile, keep_west in (("33TWM", True), ("33TWL", False)):
        folder, _ = s2_world.make_cog_product(root, when=NEW, baseline="05.09", tile=tile, bands=("B04",))
        path = folder / "B04.tif"
        with rasterio.open(path) as src:
            data, profile = src.read(1), src.profile
        mid = data.shape[1] // 2 + 7
        if keep_west:
            data[:, mid:] = 0
        else:
            data[:, :mid] = 0
        profile.update(driver="GTiff")
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data, 1)
        halves.append(folder)
    products = scan_folder(root)
    assert len(products) == 2 and {p.download["kind"] for p in products} == {"local"}
    aoi = s2_world.aoi_4326((s2_world.X0 + 5000, 5095230.0, s2_world.X0 + 7000, 5096480.0))  # across the seam
    lines = []
    result = run_download(products, aoi, tmp_path / "out", ["B04"], log=lines.append)
    assert [f["path"] for f in result.files] == ["20230612T101559_S2B_T33TWL-T33TWM.tif"]  # no SCL in these folders
    assert any("no cloud mask" in line for line in lines)
    assert len(result.files[0]["product_ids"]) == 2
    with rasterio.open(tmp_path / "out" / result.files[0]["path"]) as ds:
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B04", result.grid))
        assert "," in ds.tags()["PRODUCT_ID"]


def test_a_missing_band_file_is_named(safes, tmp_path):
    with pytest.raises(SatPluginError, match="has no B05 file"):
        run_download(safes[:1], s2_world.aoi_4326(), tmp_path, ["B05"])
    assert [p.name for p in tmp_path.iterdir()] == []


def test_b10_is_refused_for_l2a(safes, tmp_path):
    with pytest.raises(SatPluginError, match="B10 .* only in L1C"):
        run_download(safes, s2_world.aoi_4326(), tmp_path, ["B10"])


def _product_without_data(root, when, bands=("B04",)):
    """A COG product folder whose B04 holds only no-data: as over an area its footprint misses."""
    folder, _ = s2_world.make_cog_product(root, when=when, baseline="05.09", bands=bands)
    with rasterio.open(folder / "B04.tif") as src:
        profile = src.profile
        empty = np.zeros((src.height, src.width), src.dtypes[0])
    profile.update(driver="GTiff")
    with rasterio.open(folder / "B04.tif", "w", **profile) as dst:
        dst.write(empty, 1)


def test_a_date_without_data_over_the_area_is_not_written(tmp_path):
    s2_world.make_cog_product(tmp_path / "src", when=OLD, baseline="05.09", bands=("B04",))
    _product_without_data(tmp_path / "src", NEW)
    lines = []
    result = run_download(scan_folder(tmp_path / "src"), s2_world.aoi_4326(), tmp_path / "out", ["B04"], log=lines.append)
    assert [f["path"] for f in result.files] == ["20210703T102021_S2B_T33TWM.tif"] == result.written
    assert "20230612T101559_S2B_T33TWM.tif: the products have no data over the area; not written." in lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["20210703T102021_S2B_T33TWM.tif", "manifest.json"]


def test_a_mask_is_written_only_beside_its_dates_image(tmp_path):
    """A date whose image has no data over the area gets no mask either, even where its mask has values."""
    s2_world.make_cog_product(tmp_path / "src", when=OLD, baseline="05.09", bands=("B04", "SCL"))
    _product_without_data(tmp_path / "src", NEW, bands=("B04", "SCL"))
    lines = []
    result = run_download(scan_folder(tmp_path / "src"), s2_world.aoi_4326(), tmp_path / "out", ["B04"], log=lines.append)
    kept = ["20210703T102021_S2B_T33TWM.tif", "20210703T102021_S2B_T33TWM_SCL.tif"]
    assert sorted(f["path"] for f in result.files) == sorted(result.written) == kept
    assert "20230612T101559_S2B_T33TWM_SCL.tif: its date's image has no data over the area; not written." in lines
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [*kept, "manifest.json"]
    # Only such dates: nothing at all is written, as the error says.
    _product_without_data(tmp_path / "elsewhere", NEW, bands=("B04", "SCL"))
    with pytest.raises(SatPluginError, match="None of the 1 products has data over the area .*; nothing was written"):
        run_download(scan_folder(tmp_path / "elsewhere"), s2_world.aoi_4326(), tmp_path / "out2", ["B04"])
    assert not list((tmp_path / "out2").glob("*.tif"))


def test_products_without_data_over_the_area_are_refused_and_the_folder_kept(tmp_path):
    s2_world.make_cog_product(tmp_path / "src", when=OLD, baseline="05.09", bands=("B04",))
    run_download(scan_folder(tmp_path / "src"), s2_world.aoi_4326(), tmp_path / "out", ["B04"])
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    _product_without_data(tmp_path / "elsewhere", NEW)
    with pytest.raises(SatPluginError, match=r"None of the 1 products has data over the area \(1[45]\.\d{4}\.\.1[45]\.\d{4} E, "
                                             r"4\d\.\d{4}\.\.4\d\.\d{4} N\); nothing was written\. Choose products from a search"):
        run_download(scan_folder(tmp_path / "elsewhere"), s2_world.aoi_4326(), tmp_path / "out", ["B04"])
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before


@pytest.mark.parametrize("where", ["the product's folder", "inside it", "the folder that holds it"])
def test_an_output_folder_among_the_products_is_refused_before_any_write(tmp_path, where):
    folder, _ = s2_world.make_cog_product(tmp_path / "src", when=OLD, baseline="05.09", bands=("B04",))
    out = {"the product's folder": folder, "inside it": folder / "out", "the folder that holds it": tmp_path / "src"}[where]
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SatPluginError, match=r"and the product \S+ \(.+\) overlap; choose an output folder outside the products"):
        run_download(scan_folder(tmp_path / "src"), s2_world.aoi_4326(), out, ["B04"])
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_an_output_folder_that_names_a_products_folder_another_way_is_refused(tmp_path, engine_python):
    """A second name of the product's folder that resolve() does not undo, as a case-insensitive
    volume (macOS, Windows) or a bind mount gives: the file system's identity still refuses it.
    Here a bind mount, in a user and mount namespace of its own (unshare), so nothing outside changes."""
    folder, _ = s2_world.make_cog_product(tmp_path / "src", when=OLD, baseline="05.09", bands=("B04",))
    alias = tmp_path / "alias"
    alias.mkdir()
    check = ("import sys; from satplugin_engine.search.local import scan_folder; "
             "from satplugin_engine.download.runner import refuse_folder_among_sources; "
             "refuse_folder_among_sources(sys.argv[2], scan_folder(sys.argv[1]))")
    for out in (alias / folder.name / "out", alias / folder.name, tmp_path / "src" / folder.name / "new"):
        run = with_bind_mount(tmp_path / "src", alias, engine_python, "-c", check, tmp_path / "src", out)
        assert run.returncode == 1 and "overlap; choose an output folder outside the products" in run.stderr, (out, run.stderr)
    elsewhere = with_bind_mount(tmp_path / "src", alias, engine_python, "-c", check, tmp_path / "src", tmp_path / "out")
    assert elsewhere.returncode == 0, elsewhere.stderr
