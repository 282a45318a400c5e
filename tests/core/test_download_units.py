"""Download building blocks: bands, harmonization, grid, windows, requests, naming, GeoPackage input."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
from rasterio.windows import Window
from shapely.geometry import box

from satplugin.qgis_satplugin.core.download import (
    BAND_PRESETS,
    apply_harmonization,
    evalscript,
    grid_for_aoi,
    plan_harmonization,
    process_body,
    read_products_gpkg,
    resolve_bands,
    split_windows,
)
from satplugin.qgis_satplugin.core.download.acquisitions import group_acquisitions
from satplugin.qgis_satplugin.core.download.warp_read import choose_overview
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.search.footprints_gpkg import write_footprints_gpkg
from satplugin.qgis_satplugin.core.products import Product

UTC = timezone.utc


def product(pid_time="20230612T101559", tile="32TQM", baseline="05.09", orbit=65, platform="S2B", kind="local", **kw):
    when = datetime.strptime(pid_time, "%Y%m%dT%H%M%S").replace(tzinfo=UTC)
    pid = f"{platform}_MSIL2A_{pid_time}_N{baseline.replace('.', '')}_R{orbit:03d}_T{tile}_20230612T131420"
    return Product(
        product_id=pid, datetime=when, platform=platform, mgrs_tile=tile, relative_orbit=orbit,
        processing_baseline=baseline, collection=kw.pop("collection", "L2A"), cloud_cover=3.0,
        footprint=box(12, 45, 13, 46), backend=kind, download={"kind": kind, "assets": {}}, **kw,
    )


def test_band_presets_and_names():
    assert BAND_PRESETS["rgbn_10m"] == ["B02", "B03", "B04", "B08"]
    assert len(BAND_PRESETS["l2a_all"]) == 12 and "B10" not in BAND_PRESETS["l2a_all"]
    assert len(BAND_PRESETS["l1c_all"]) == 13 and "B10" in BAND_PRESETS["l1c_all"]
    assert resolve_bands(["blue", "b8a", "B02", "nir"]) == ["B02", "B8A", "B08"]
    assert resolve_bands("l2a_all") == BAND_PRESETS["l2a_all"]
    with pytest.raises(SatPluginError, match="Unknown Sentinel-2 band 'B13'"):
        resolve_bands(["B13"])
    with pytest.raises(SatPluginError, match="SCL is a mask"):
        resolve_bands(["SCL"])
    with pytest.raises(SatPluginError, match="at least one band"):
        resolve_bands([])


@pytest.mark.parametrize(
    "baseline, when, subtract, has_offset",
    [
        ("03.01", datetime(2021, 6, 1, tzinfo=UTC), 0, False),
        ("04.00", datetime(2022, 2, 1, tzinfo=UTC), 1000, True),
        ("05.09", datetime(2023, 6, 1, tzinfo=UTC), 1000, True),
        (None, datetime(2023, 6, 1, tzinfo=UTC), 1000, True),  # unknown: decided by the date
        (None, datetime(2020, 6, 1, tzinfo=UTC), 0, False),
    ],
)
def test_harmonization_rule(baseline, when, subtract, has_offset):
    h = plan_harmonization(baseline, when, True)
    assert (h.subtract_dn, h.has_offset, h.band_offset) == (subtract, has_offset, 0.0)
    raw = plan_harmonization(baseline, when, False)
    assert raw.subtract_dn == 0
    assert raw.band_offset == pytest.approx(-0.1 if has_offset else 0.0)


def test_harmonization_provider_flag_wins():
    h = plan_harmonization("05.09", datetime(2023, 6, 1, tzinfo=UTC), True, provider_removed=True)
    assert h.subtract_dn == 0 and not h.has_offset and "already removed" in h.reason


def test_apply_harmonization_keeps_nodata_and_valid_pixels():
    raw = np.array([[0, 1000, 1001, 1500], [65535, 2, 0, 3000]], dtype=np.uint16)
    out = apply_harmonization(raw, 1000)
    assert out.dtype == np.uint16
    # 0 stays no data; a valid pixel at or below the offset clips to 1, never to 0 (no data) nor wraps.
    assert out.tolist() == [[0, 1, 1, 500], [64535, 1, 0, 2000]]
    assert apply_harmonization(raw, 0) is raw


def test_grid_for_aoi_is_utm_on_the_60m_lattice():
    grid = grid_for_aoi(box(14.45, 46.02, 14.55, 46.08), 10.0)
    assert grid.crs == "EPSG:32633"
    assert grid.x_min % 60 == 0 and grid.y_max % 60 == 0
    assert grid.pixel_width == grid.pixel_height == 10.0
    same = grid_for_aoi(box(14.45, 46.02, 14.55, 46.08).wkb, 10.0)
    assert same == grid
    with pytest.raises(SatPluginError, match="area of interest or a reference grid"):
        grid_for_aoi(None, 10)


def test_split_windows_cover_the_grid_exactly_within_the_limit():
    windows = split_windows(5001, 2600, 2500)
    assert len(windows) == 3 * 2
    assert max(w.width for w in windows) <= 2500 and max(w.height for w in windows) <= 2500
    covered = np.zeros((2600, 5001), dtype=int)
    for w in windows:
        covered[w.row_off : w.row_off + w.height, w.col_off : w.col_off + w.width] += 1
    assert (covered == 1).all()
    assert split_windows(100, 100, 2500) == [Window(0, 0, 100, 100)]


def test_process_request_body():
    grid = PixelGrid.square("EPSG:32633", 500400, 5096520, 10, 152, 130)
    acq = group_acquisitions([product(kind="sentinelhub")])[0]
    body = process_body(acq, grid, Window(64, 10, 40, 30), ["B02", "B08"], mask=False)
    assert body["input"]["bounds"] == {
        "bbox": [500400 + 640, 5096520 - 400, 500400 + 1040, 5096520 - 100],
        "properties": {"crs": "http://www.opengis.net/def/crs/EPSG/0/32633"},
    }
    data = body["input"]["data"][0]
    assert data["type"] == "sentinel-2-l2a"
    assert data["dataFilter"]["timeRange"] == {"from": "2023-06-12T10:05:59Z", "to": "2023-06-12T10:25:59Z"}
    assert data["processing"] == {"upsampling": "BILINEAR", "downsampling": "BILINEAR", "harmonizeValues": False}
    assert (body["output"]["width"], body["output"]["height"]) == (40, 30)
    assert body["output"]["responses"] == [{"identifier": "default", "format": {"type": "image/tiff"}}]
    script = body["evalscript"]
    assert script.startswith("//VERSION=3")
    assert 'bands: ["B02", "B08", "dataMask"], units: "DN"' in script
    assert 'sampleType: "UINT16"' in script and "return [s.B02, s.B08];" in script
    mask = process_body(acq, grid, Window(0, 0, 10, 10), ["SCL"], mask=True)
    assert mask["input"]["data"][0]["processing"]["upsampling"] == "NEAREST"
    assert 'sampleType: "UINT8"' in mask["evalscript"]
    assert "return [255];" in evalscript(["CLM"], "UINT8", 255)


def test_overview_choice():
    assert choose_overview(10, 10, [2, 4, 8]) is None  # same resolution: full data
    assert choose_overview(10, 15, [2, 4, 8]) is None  # less than twice coarser: full data
    assert choose_overview(10, 40, [2, 4, 8]) == 1  # decimation 4
    assert choose_overview(10, 60, [2, 4, 8]) == 1  # never coarser than the target
    assert choose_overview(10, 200, [2, 4, 8]) == 2
    assert choose_overview(20, 10, [2]) is None


def test_acquisitions_group_tiles_of_one_overpass_and_sort_by_time():
    a = product("20230612T101559", tile="32TQM")
    b = product("20230612T101559", tile="32TPM")
    c = product("20230602T101559", tile="32TQM")
    d = product("20230612T101559", tile="32TQM", baseline="04.00")  # older reprocessing of a
    acqs = group_acquisitions([a, b, c, d])
    assert [x.stem for x in acqs] == ["20230602T101559_S2B_T32TQM", "20230612T101559_S2B_T32TPM-T32TQM"]
    assert acqs[1].product_ids == [b.product_id, a.product_id]


def test_file_names_use_the_safe_sensing_time_when_catalogues_disagree():
    p = product("20230612T101559")
    p.datetime = datetime(2023, 6, 12, 10, 27, 3, 120000, tzinfo=UTC)  # the tile's own time (Earth Search)
    (acq,) = group_acquisitions([p])
    assert acq.stem == "20230612T101559_S2B_T32TQM"
    assert acq.iso_datetime == "2023-06-12T10:27:03.120000Z"


def test_read_products_gpkg_selection_rule(tmp_path):
    prods = [product(f"202306{d:02d}T101559") for d in (2, 12, 22)]
    for p in prods:
        p.download = {"kind": "stac", "item_id": p.product_id, "self": None, "assets": {"B02": f"http://x/{p.product_id}/B02.tif"}}
    path = tmp_path / "products.gpkg"
    write_footprints_gpkg(prods, path)
    everything = read_products_gpkg(path)
    assert [p.product_id for p in everything] == [p.product_id for p in prods]  # none selected: all
    assert everything[1].download == prods[1].download
    assert everything[1].processing_baseline == "05.09" and everything[1].relative_orbit == 65
    prods[2].selected = True
    write_footprints_gpkg(prods, path)
    assert [p.product_id for p in read_products_gpkg(path)] == [prods[2].product_id]
    assert len(read_products_gpkg(path, selected_only=False)) == 3
    assert [p.product_id for p in read_products_gpkg(path, product_ids=[prods[0].product_id])] == [prods[0].product_id]
    with pytest.raises(SatPluginError, match="does not exist"):
        read_products_gpkg(tmp_path / "none.gpkg")


def test_products_as_dicts(tmp_path):
    from satplugin.qgis_satplugin.core.download import as_products

    row = {"product_id": product().product_id, "datetime": "2023-06-12T10:15:59Z", "download": json.dumps({"kind": "local", "assets": {}})}
    (p,) = as_products([row])
    assert p.mgrs_tile == "32TQM" and p.processing_baseline == "05.09" and p.collection == "L2A"
    with pytest.raises(SatPluginError, match="No products to download"):
        as_products([])
    with pytest.raises(SatPluginError, match="unknown download kind"):
        as_products([{**row, "download": {"kind": "ftp"}}])
