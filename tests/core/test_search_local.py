"""Local folder backend and SCL cloud over the AOI, on product folders generated here."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio
from shapely.geometry import box, shape

from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.search import LocalBackend, aoi_cloud_percent, scan_folder
from satplugin.qgis_satplugin.core.search.period import normalise_period
from tests.servers.files import RangeFileServer
from tests.servers.items import real_data_dir
from tests.servers.product_folders import (
    SAFE_FOOTPRINT,
    cog_footprint_4326,
    cog_quadrant_4326,
    make_cog_folder,
    make_safe,
)
from satplugin.tests.fixtures.step_runs import search

UTC = timezone.utc
SAFE_AOI = box(12.6, 45.4, 12.8, 45.6)


def when(day, month=6):
    return datetime(2023, month, day, 10, 15, 59, tzinfo=UTC)


@pytest.fixture
def library(tmp_path):
    root = tmp_path / "downloads"
    (root / "2023" / "06").mkdir(parents=True)
    make_safe(root / "2023" / "06", when=when(12), cloud=12.5)
    make_safe(root / "2023" / "06", when=when(15), cloud=3.0, zipped=True, write_band=True)
    make_safe(root, when=when(12), level="L1C", cloud=11.0)
    make_safe(root, when=when(20), cloud=1.0, footprint=None, write_band=True)  # fallback: band bounds
    make_safe(root, when=when(22), cloud=1.0, footprint=None)  # no footprint, nothing to take it from
    make_safe(root, when=when(2, month=8), cloud=0.0)  # outside the period
    (root / "notes").mkdir()
    (root / "notes" / "readme.json").write_text(json.dumps({"hello": "world"}))
    (root / "S2_not_a_product.zip").write_bytes(b"not a zip")
    return root


def test_scan_reads_safe_metadata(library):
    log = []
    found = {p.product_id: p for p in scan_folder(library, feedback=Feedback(log=log.append))}
    name = "S2B_MSIL2A_20230612T101559_N0509_R065_T32TQM_20230612T131559"
    p = found[name]
    assert p.datetime == datetime(2023, 6, 12, 10, 15, 59, 24000, tzinfo=UTC)
    assert (p.platform, p.mgrs_tile, p.relative_orbit, p.processing_baseline) == ("S2B", "32TQM", 65, "05.09")
    assert p.collection == "L2A"
    assert p.cloud_cover == 12.5
    assert p.processing_time == datetime(2023, 6, 12, 13, 15, 59, tzinfo=UTC)
    # EXT_POS_LIST is lat/lon: the footprint must come back in lon/lat.
    assert p.footprint.symmetric_difference(SAFE_FOOTPRINT).area < 1e-9
    assets = p.download["assets"]
    assert set(assets) == {"B01", "B02", "SCL"}
    assert assets["B02"].endswith("IMG_DATA/R10m/T32TQM_20230612T101559_B02_10m.jp2")  # finest resolution
    assert p.download["kind"] == "local" and p.download["path"].endswith(name + ".SAFE")

    l1c = found["S2B_MSIL1C_20230612T101559_N0509_R065_T32TQM_20230612T131559"]
    assert l1c.collection == "L1C" and l1c.cloud_cover == 11.0
    assert set(l1c.download["assets"]) == {"B02", "B8A"}

    assert len(found) == 5
    assert any("no footprint in the metadata and no readable band" in line for line in log)
    assert any("S2_not_a_product.zip" in line for line in log)


def test_zipped_safe_is_read_in_place(library):
    p = next(p for p in scan_folder(library) if p.download["path"].endswith(".zip"))
    assert p.product_id == "S2B_MSIL2A_20230615T101559_N0509_R065_T32TQM_20230615T131559"
    assert p.cloud_cover == 3.0
    b02 = p.download["assets"]["B02"]
    assert b02.startswith("/vsizip/") and b02.endswith("_B02_10m.jp2")
    with rasterio.open(b02) as src:  # the path really opens inside the archive
        assert src.width == 200 and src.read(1).sum() == 200 * 200


def test_missing_footprint_falls_back_to_band_extent(library):
    p = next(p for p in scan_folder(library) if p.datetime.day == 20)
    # The band is the generated 4 km grid in UTM 32N; its outline in lon/lat covers the same place.
    assert p.footprint.symmetric_difference(cog_footprint_4326()).area < 1e-8


def test_local_search_filters_period_collection_and_aoi(library):
    found = search("local", SAFE_AOI, "2023-06-01", "2023-06-30", collection="L2A", service_url=str(library))
    ids = [p.product_id for p in found]
    # June L2A products over the AOI; the band-extent one lies elsewhere; best cloud first.
    assert ids == [
        "S2B_MSIL2A_20230615T101559_N0509_R065_T32TQM_20230615T131559",
        "S2B_MSIL2A_20230612T101559_N0509_R065_T32TQM_20230612T131559",
    ]
    assert all(p.backend == "local" for p in found)
    assert found[0].aoi_coverage == pytest.approx(100.0)
    l1c = search("local", SAFE_AOI, "2023-06-01", "2023-06-30", collection="L1C", service_url=str(library))
    assert [p.product_id for p in l1c] == ["S2B_MSIL1C_20230612T101559_N0509_R065_T32TQM_20230612T131559"]


def test_local_backend_needs_an_existing_folder(tmp_path):
    from satplugin.qgis_satplugin.core.errors import SatPluginError

    with pytest.raises(SatPluginError, match="does not exist"):
        LocalBackend(tmp_path / "missing").search(SAFE_AOI, *normalise_period("2023-06-01", "2023-06-30"), "L2A")


def test_cog_folder_and_scl_cloud(tmp_path):
    folder = make_cog_folder(tmp_path, when=when(12))
    (p,) = scan_folder(tmp_path)
    assert p.product_id == "S2B_MSIL2A_20230612T101559_N0509_R065_T32TQM_20230612T111559"
    assert p.download["assets"] == {b: str(folder / f"{b}.tif") for b in ("B02", "B04", "B8A", "SCL")}
    scl = p.download["assets"]["SCL"]
    assert aoi_cloud_percent(scl, cog_footprint_4326().buffer(-1e-4)) == pytest.approx(100 * 12500 / 30000, abs=0.2)
    assert aoi_cloud_percent(scl, cog_quadrant_4326(0, 0).buffer(-1e-6)) == pytest.approx(25.0)
    assert aoi_cloud_percent(scl, cog_quadrant_4326(0, 1).buffer(-1e-6)) == pytest.approx(100.0)
    assert aoi_cloud_percent(scl, cog_quadrant_4326(1, 1).buffer(-1e-6)) is None  # only no-data there
    assert aoi_cloud_percent(scl, box(0, 0, 0.1, 0.1)) is None  # elsewhere


def test_scl_cloud_over_http_range_requests(tmp_path):
    make_cog_folder(tmp_path, when=when(12), name="product")
    aoi = cog_quadrant_4326(0, 0).buffer(-1e-6)
    with RangeFileServer(tmp_path / "product") as server:
        remote = aoi_cloud_percent(f"{server.url}/SCL.tif", aoi)
        assert any(r.headers.get("range") for r in server.requests)  # read by ranges, not whole
    assert remote == pytest.approx(25.0)


def test_local_search_with_aoi_cloud(tmp_path):
    make_cog_folder(tmp_path, when=when(12), cloud=60.0)
    aoi = cog_quadrant_4326(0, 0).buffer(-1e-6)
    plain = search("local", aoi, "2023-06-01", "2023-06-30", max_cloud=50, service_url=str(tmp_path))
    assert plain == []  # the scene is too cloudy...
    measured = search(
        "local", aoi, "2023-06-01", "2023-06-30", max_cloud=100, service_url=str(tmp_path), aoi_cloud=True
    )
    assert measured[0].aoi_cloud == pytest.approx(25.0)  # ...but the AOI is mostly clear
    strict = search(
        "local", aoi, "2023-06-01", "2023-06-30", max_cloud=20, service_url=str(tmp_path), aoi_cloud=True
    )
    assert strict == []  # scene filter first (60 > 20)


def test_real_cog_folder_from_shared_data():
    root = real_data_dir()
    if root is None or not (root / "s2_l2a_29RKH_100m").is_dir():
        pytest.skip("shared real data not found (set SATPLUGIN_REAL_DATA or provide ../shared/data)")
    folder = root / "s2_l2a_29RKH_100m"
    (p,) = scan_folder(folder)
    assert p.product_id == "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"
    assert p.download["assets"]["SCL"] == str(folder / "SCL.tif")
    assert len(p.download["assets"]) == 13
    # Cloud over the whole footprint agrees with counting the real SCL classes directly.
    with rasterio.open(folder / "SCL.tif") as src:
        scl = src.read(1)
    valid = scl[scl != 0]
    direct = 100.0 * np.isin(valid, (3, 8, 9, 10)).sum() / valid.size
    assert direct == pytest.approx(4.06, abs=0.01)
    assert aoi_cloud_percent(str(folder / "SCL.tif"), p.footprint) == pytest.approx(direct, abs=0.1)
    # And the scene figure of the real item says the same.
    item = json.loads((folder / "S2A_29RKH_20200219_0_L2A.json").read_text())
    assert item["properties"]["eo:cloud_cover"] == pytest.approx(direct, abs=0.1)
    assert shape(item["geometry"]).equals(p.footprint)
