"""Issue 12, "right on real-world data": what real catalogues and folders look like.

Loopback servers answer with items in the real shapes: Earth Search's (built from the
real recorded item of tile 29RKH when ../shared/data is present, else the generated
copy of it), Earth Search Collection 1, Planetary Computer (band-id keys, ``s2:mgrs_tile``,
``sat:relative_orbit``, SAS-signed blob URLs) and Landsat, from servers that do not
filter by collection. Dates, clouds and geometries are varied by the builders and are
invented; pixel values come from the synthetic world of ``s2_world``.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import rasterio
from shapely import affinity
from shapely.geometry import box, shape

from satplugin.qgis_satplugin.core.download import read_products_gpkg
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search import (
    LocalBackend,
    StacBackend,
    TokenCache,
    aoi_cloud_percent,
    make_backend,
    write_footprints_gpkg,
)
from satplugin.qgis_satplugin.core.http.client import JsonClient
from satplugin.qgis_satplugin.core.search.period import normalise_period
from satplugin.qgis_satplugin.core.http.signing import check_signing
from tests.servers import s2_world
from tests.servers.files import RangeFileServer
from tests.servers.items import TILE_29RKH, c1_item, landsat_item, pc_item, real_data_dir, stac_item
from tests.servers.planetary import PlanetaryComputerServer, SignedBlobServer, planetary_product
from tests.servers.product_folders import cog_footprint_4326, make_cog_folder
from tests.servers.stac_api import StacApiServer
from satplugin.tests.fixtures.step_runs import run_download, search

UTC = timezone.utc
AOI_29RKH = box(-11.5, 24.5, -11.4, 24.6)
FEB = ("2020-02-01", "2020-02-29")
FEB_19 = datetime(2020, 2, 19, 11, 34, 25, tzinfo=UTC)
REAL_ID = "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947"
WHEN = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)  # the synthetic world's products


def no_sleep(_seconds):
    pass


def stac(url, **kw) -> StacBackend:
    return StacBackend(url, client_options={"sleep": no_sleep}, **kw)


def needs_real_data(*parts) -> Path:
    root = real_data_dir()
    if root is None or not (root.joinpath(*parts)).exists():
        pytest.skip("shared real data not found (set SATPLUGIN_REAL_DATA or provide ../shared/data)")
    return root.joinpath(*parts)


# --- 1: an item's own mission and level ------------------------------------------------------


def mixed_catalogue():
    """One of each, over 29RKH in February 2020, as a catalogue that mixes collections holds them."""
    return [
        stac_item(when=FEB_19, cloud=4.0),  # legacy Earth Search L2A
        c1_item(when=FEB_19 + timedelta(days=5), cloud=6.0),  # Collection 1 L2A
        stac_item(when=FEB_19 + timedelta(days=10), level="L1C", cloud=2.0),
        landsat_item(when=FEB_19 + timedelta(days=1), cloud=1.0),
    ]


def test_items_of_other_missions_and_levels_are_left_out_and_counted():
    log = []
    with StacApiServer(mixed_catalogue(), filter_collections=False) as server:
        l2a = search(stac(server.url), AOI_29RKH, *FEB, log=log.append)
        l1c = search(stac(server.url), AOI_29RKH, *FEB, collection="L1C", log=log.append)
    assert [(p.datetime.day, p.collection, p.platform) for p in l2a] == [(19, "L2A", "S2A"), (24, "L2A", "S2A")]
    assert l2a[1].download["collection"] == "sentinel-2-c1-l2a"
    assert [(p.product_id, p.collection) for p in l1c] == [
        ("S2A_MSIL1C_20200229T113425_N0214_R037_T29RKH_20200229T123425", "L1C")
    ]
    # No Landsat file ever became a Sentinel-2 band.
    assert not any("landsat" in href for p in l2a + l1c for href in p.download["assets"].values())
    assert "Left out 2 item(s) that are not Sentinel-2 L2A (1 Sentinel-2 L1C, 1 landsat-8)" in "\n".join(log)
    assert "Left out 3 item(s) that are not Sentinel-2 L1C (2 Sentinel-2 L2A, 1 landsat-8)" in "\n".join(log)


def test_real_recorded_item_among_foreign_items():
    path = needs_real_data("s2_l2a_29RKH_100m", "S2A_29RKH_20200219_0_L2A.json")
    real = json.loads(path.read_text())  # exactly as recorded, self link s3:// and all
    l1c_twin = json.loads(path.read_text())
    l1c_twin["id"] = "S2A_29RKH_20200219_0_L1C"
    l1c_twin["collection"] = "sentinel-2-l1c"
    l1c_twin["properties"]["s2:product_type"] = "S2MSI1C"
    l1c_twin["properties"]["s2:product_uri"] = "S2A_MSIL1C_20200219T112111_N0209_R037_T29RKH_20200219T114728.SAFE"
    log = []
    with StacApiServer([landsat_item(), l1c_twin, real], filter_collections=False) as server:
        found = search(stac(server.url), AOI_29RKH, *FEB, collection="L2A", log=log.append)
    (p,) = found
    assert (p.product_id, p.collection, p.mgrs_tile, p.relative_orbit) == (REAL_ID, "L2A", "29RKH", 37)
    assert p.cloud_cover == pytest.approx(4.051854)
    assert p.download["boa_offset_applied"] is False  # as the real item states it
    assert p.download["assets"]["B04"].startswith("https://sentinel-cogs.s3.us-west-2.amazonaws.com/")
    assert "Left out 2 item(s) that are not Sentinel-2 L2A (1 Sentinel-2 L1C, 1 landsat-8)" in "\n".join(log)


def test_planetary_computer_items_are_read_from_their_own_keys():
    item = pc_item(when=FEB_19, cloud=4.05)
    with PlanetaryComputerServer([item, landsat_item()], filter_collections=False) as pc:
        (p,) = search("planetary_computer", AOI_29RKH, *FEB, service_url=pc.stac_url)
        sent = pc.requests_to("/api/stac/v1/search")[0].json
    assert sent["collections"] == ["sentinel-2-l2a"]
    assert (p.product_id, p.platform, p.mgrs_tile, p.relative_orbit) == (
        "S2A_MSIL2A_20200219T113425_N0214_R037_T29RKH_20200219T123425", "S2A", "29RKH", 37)
    assert (p.collection, p.processing_baseline, p.acq_group, p.backend) == ("L2A", "02.14", "2020-02-19_R037",
                                                                             "planetary_computer")
    assert set(p.download["assets"]) == set(item["assets"]) - {"visual", "rendered_preview"}
    assert p.download["assets"]["B04"].endswith("/R10m/T29RKH_20200219T113425_B04_10m.tif")
    assert p.download["assets"]["SCL"].endswith("_SCL_20m.tif")
    assert p.download["signing"] == {"kind": "planetary_computer", "token_url": f"{pc.url}/api/sas/v1/token/sentinel-2-l2a"}
    assert p.download["boa_offset_applied"] is None  # Planetary Computer does not say


# --- 2: harmonization comes from the search ---------------------------------------------------


def search_gpkg(items, tmp_path, **kw) -> Path:
    """Search a loopback STAC API and write the product list, as the QGIS algorithm does."""
    with StacApiServer(items) as server:
        found = search(stac(server.url), s2_world.aoi_4326(), "2023-06-01", "2023-06-30", **kw)
    return Path(write_footprints_gpkg(found, tmp_path / "products.gpkg"))


def test_the_offset_flag_travels_with_the_product_list_when_the_self_link_is_gone(tmp_path):
    root = tmp_path / "cogs"
    root.mkdir()
    with RangeFileServer(root) as files:
        # Baseline 05.09 COGs whose provider already removed the offset (the files hold DN, not DN + 1000).
        folder, item = s2_world.make_cog_product(root, when=WHEN, baseline="05.09", asset_base=files.url,
                                                 boa_offset_applied=True, bands=("B04",))
        item["links"] = [{"rel": "self", "href": f"{files.url}/gone/{item['id']}.json"}]  # answers 404
        gpkg = search_gpkg([item], tmp_path)
        log = []
        result = run_download(read_products_gpkg(gpkg), s2_world.aoi_4326(), tmp_path / "out", ["B04"],
                              include_masks=False, log=log.append)
        gone = [r for r in files.requests if r.path.startswith("/gone/")]
    (entry,) = result.files
    with rasterio.open(tmp_path / "out" / entry["path"]) as ds:  # not 1000 DN too dark
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B04", result.grid))
    (harm,) = entry["harmonization"]
    assert (harm["subtract_dn"], harm["provider_removed_offset"]) == (0, True)
    assert gone == []  # nothing was asked of the self link
    assert not any("does not say" in line for line in log)


def test_an_unstated_offset_flag_is_said_not_guessed_silently(tmp_path):
    root = tmp_path / "cogs"
    root.mkdir()
    with RangeFileServer(root) as files:
        _, item = s2_world.make_cog_product(root, when=WHEN, baseline="05.09", asset_base=files.url, bands=("B04",))
        item["properties"].pop("earthsearch:boa_offset_applied", None)
        gpkg = search_gpkg([item], tmp_path)
        log = []
        result = run_download(read_products_gpkg(gpkg), s2_world.aoi_4326(), tmp_path / "out", ["B04"],
                              include_masks=False, log=log.append)
    (entry,) = result.files
    (harm,) = entry["harmonization"]
    assert (harm["subtract_dn"], harm["provider_removed_offset"]) == (1000, None)
    assert "does not say whether its provider already removed it" in harm["reason"]
    with rasterio.open(tmp_path / "out" / entry["path"]) as ds:  # the files hold DN + 1000: the rule is right here
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B04", result.grid))
        assert "does not say" in ds.tags()["HARMONIZATION"]
    (said,) = [line for line in log if "does not say whether the provider already removed" in line]
    assert entry["product_id"] in said and "HARMONIZE off" in said


# --- 3: current collections, s3:// L1C, Planetary Computer signing ----------------------------


def test_collection_1_is_searched_first_and_the_legacy_collection_still_counts():
    legacy = stac_item(when=FEB_19, baseline="05.00", processed=FEB_19 + timedelta(hours=2), cloud=4.0)
    # The same ESA product in Collection 1 (same SAFE name), and a date only the legacy collection has.
    current = c1_item(when=FEB_19, baseline="05.00", processed=FEB_19 + timedelta(hours=2), cloud=4.0)
    older = stac_item(when=FEB_19 + timedelta(days=5), cloud=3.0)
    log = []
    with StacApiServer([legacy, older, current]) as server:
        found = search(stac(server.url), AOI_29RKH, *FEB, log=log.append)
        sent = server.requests_to("/search")[0].json["collections"]
    assert sent == ["sentinel-2-c1-l2a", "sentinel-2-l2a"]
    found.sort(key=lambda p: p.datetime)
    assert [(p.datetime.day, p.download["collection"]) for p in found] == [(19, "sentinel-2-c1-l2a"),
                                                                           (24, "sentinel-2-l2a")]
    assert found[0].download["assets"]["B04"].startswith("https://e84-earth-search-sentinel-data.s3.us-west-2")
    assert found[0].download["boa_offset_applied"] is False
    assert any("listed in more than one collection" in line for line in log)


def earth_search_l1c_item():
    """An Earth Search v1 L1C item: every band a JPEG 2000 in the requester-pays bucket."""
    item = stac_item(tile="33TWM", when=WHEN, level="L1C", baseline="05.09", geometry=s2_world.footprint_4326())
    item["assets"] = {
        key: {"href": f"s3://sentinel-s2-l1c/tiles/33/T/WM/2023/6/12/0/{band}.jp2", "roles": ["data"]}
        for key, band in (("blue", "B02"), ("green", "B03"), ("red", "B04"), ("nir", "B08"))
    }
    item["assets"]["granule_metadata"] = {"href": "https://roda.sentinel-hub.com/sentinel-s2-l1c/tiles/33/T/WM/metadata.xml"}
    return item


def test_earth_search_l1c_in_s3_is_refused_before_the_download_starts(tmp_path):
    log = []
    with StacApiServer([earth_search_l1c_item()]) as server:
        (p,) = search(stac(server.url), s2_world.aoi_4326(), "2023-06-01", "2023-06-30",
                               collection="L1C", log=log.append)
        server.requests.clear()
        with pytest.raises(SatPluginError, match=r"lists its B04 file only at s3:// \(.*requester-pays.*\): search L1C with CDSE or Sentinel Hub"):
            run_download([p], s2_world.aoi_4326(), tmp_path / "out", ["B04"], include_masks=False)
        asked = list(server.requests)
    assert p.download["assets"] == {}
    assert p.download["refused"] == {"B02": "s3", "B03": "s3", "B04": "s3", "B08": "s3"}
    assert any("requester-pays" in line and "CDSE or Sentinel Hub" in line for line in log)
    assert asked == [] and not (tmp_path / "out").exists()


def test_planetary_computer_files_are_signed_and_the_token_is_never_written(tmp_path):
    root = tmp_path / "blobs"
    with PlanetaryComputerServer() as pc, SignedBlobServer(root, pc) as blobs:
        item = planetary_product(root, blobs.url)
        pc.items.append(item)
        unsigned = JsonClient(sleep=no_sleep, max_attempts=1)
        with pytest.raises(SatPluginError, match="HTTP 403"):  # the blob store refuses a read without a token
            unsigned.send("GET", item["assets"]["B04"]["href"], read=lambda r, w: r.content)
        blobs.requests.clear()
        log = []
        found = search("planetary_computer", s2_world.aoi_4326(), "2023-06-01", "2023-06-30",
                                service_url=pc.stac_url, aoi_cloud=True, log=log.append,
                                client_options={"sleep": no_sleep})
        gpkg = Path(write_footprints_gpkg(found, tmp_path / "products.gpkg"))
        result = run_download(read_products_gpkg(gpkg), s2_world.aoi_4326(), tmp_path / "out", ["B04"],
                              include_masks=True, log=log.append, client_options={"sleep": no_sleep})
        tokens = pc.tokens()
        reads = [r for r in blobs.requests if r.path.endswith(".tif")]
    (p,) = found
    local_scl = root / urlsplit(p.download["assets"]["SCL"]).path.lstrip("/")
    assert p.aoi_cloud == pytest.approx(aoi_cloud_percent(str(local_scl), s2_world.aoi_4326()))  # read, signed
    image, mask = result.files
    with rasterio.open(tmp_path / "out" / image["path"]) as ds:  # the offset the files carry is removed
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("B04", result.grid))
    with rasterio.open(tmp_path / "out" / mask["path"]) as ds:
        np.testing.assert_array_equal(ds.read(1), s2_world.expected_on_grid("SCL", result.grid))
    assert image["harmonization"][0]["subtract_dn"] == 1000
    assert 1 <= len(tokens) <= 3  # one per run, not one per request
    assert reads and all(pc.valid(r.query["sig"][0]) for r in reads)
    # A signed URL is a credential: not in the product list, the manifest, the files' tags or the log.
    written = [gpkg.read_bytes(), result.manifest_path.read_bytes(), "\n".join(log).encode()]
    with rasterio.open(tmp_path / "out" / image["path"]) as ds:
        written.append(json.dumps(ds.tags()).encode())
    for token in tokens:
        assert not any(token.encode() in blob for blob in written)


def test_a_token_is_renewed_before_it_expires_and_only_sent_to_blob_storage():
    clock = [time.time()]  # the emulator's expiry is real time
    with PlanetaryComputerServer(lifetime_s=3600) as pc:
        record = {"kind": "planetary_computer", "token_url": f"{pc.url}/api/sas/v1/token/sentinel-2-l2a"}
        cache = TokenCache(clock=lambda: clock[0])
        client = JsonClient(sleep=no_sleep)
        first = cache.sign("https://x.blob.core.windows.net/c/B04.tif", record, client)
        again = cache.sign("https://x.blob.core.windows.net/c/B05.tif?a=1", record, client)
        clock[0] += 3600 - 200  # inside the renewal margin
        later = cache.sign("https://x.blob.core.windows.net/c/B04.tif", record, client)
        asked = len(pc.token_requests)
    token = first.split("?", 1)[1]
    assert again == f"https://x.blob.core.windows.net/c/B05.tif?a=1&{token}"
    assert later != first and asked == 2
    check_signing("P", record, "https://sentinel2l2a01.blob.core.windows.net/sentinel2-l2/B04.tif")
    with pytest.raises(SatPluginError, match="not in Azure Blob Storage"):
        check_signing("P", record, "https://elsewhere.example/B04.tif")


def test_planetary_computer_has_no_l1c():
    with pytest.raises(SatPluginError, match="no Sentinel-2 L1C collection; search L1C with another backend"):
        make_backend("planetary_computer").search_body(AOI_29RKH, *normalise_period(*FEB), "L1C")


# --- 4: the local backend at any depth ---------------------------------------------------------

BUCKET_PATH = ("sentinel-s2-l2a-cogs", "29", "R", "KH", "2020", "2", "S2A_29RKH_20200219_0_L2A")


def test_the_real_bucket_layout_is_found_from_its_top(tmp_path):
    source = needs_real_data("s2_l2a_29RKH_100m")
    product = tmp_path.joinpath("X", *BUCKET_PATH)
    shutil.copytree(source, product)
    (p,) = search("local", AOI_29RKH, *FEB, service_url=str(tmp_path / "X"))
    assert (p.product_id, p.collection, p.cloud_cover) == (REAL_ID, "L2A", pytest.approx(4.051854))
    assert p.download["path"] == str(product) and len(p.download["assets"]) == 13
    assert p.download["assets"]["B04"] == str(product / "B04.tif")
    assert p.download["boa_offset_applied"] is False


def test_a_generated_product_deep_in_a_bucket_copy_is_found(tmp_path):
    parent = tmp_path.joinpath("X", "mirror", *BUCKET_PATH[:-1])  # eight levels down
    folder = make_cog_folder(parent, when=WHEN, tile="29RKH", name=BUCKET_PATH[-1])
    (p,) = LocalBackend(tmp_path / "X").search(cog_footprint_4326(), *normalise_period("2023-06-01", "2023-06-30"), "L2A")
    assert p.download["path"] == str(folder) and p.mgrs_tile == "29RKH"


def test_a_folder_without_products_says_how_much_was_looked_at(tmp_path):
    for name in ("a", "b/c"):
        (tmp_path / "lib" / name).mkdir(parents=True)
    (tmp_path / "lib" / "notes.txt").write_text("no product here")
    (tmp_path / "lib" / "b" / "c" / "photo.tif").write_bytes(b"")
    with pytest.raises(SatPluginError, match=r"No Sentinel-2 product was found in .*lib \(looked at 4 folder\(s\) "
                                             r"and 2 file\(s\), at every depth\)"):
        search("local", AOI_29RKH, *FEB, service_url=str(tmp_path / "lib"))
    with pytest.raises(SatPluginError, match="stopping there at the limit of 3"):
        LocalBackend(tmp_path / "lib", max_entries=3).search(AOI_29RKH, *normalise_period(*FEB), "L2A")


# --- 5: acquisitions, not tiles ----------------------------------------------------------------

WEST = shape(TILE_29RKH)
EAST = affinity.translate(WEST, xoff=1.0)  # an invented neighbour tile
AOI_ACROSS = box(-10.95, 24.6, -10.6, 24.8)  # about a fifth in WEST, all of it in EAST


def two_tile_dates():
    """Three overpasses, each with both tiles: (day, west cloud, east cloud)."""
    items = []
    for day, west, east in ((19, 30.0, 30.0), (24, 5.0, 5.0), (29, 0.0, 60.0)):
        when = datetime(2020, 2, day, 11, 34, 25, tzinfo=UTC)
        items += [stac_item(tile="29RKH", when=when, geometry=WEST, cloud=west),
                  stac_item(tile="29RLH", when=when, geometry=EAST, cloud=east)]
    return items


@pytest.mark.parametrize("strategy", ["all", "even"])
def test_max_products_counts_dates_and_a_dates_tiles_come_together(strategy):
    with StacApiServer(two_tile_dates()) as server:
        found = search(stac(server.url), AOI_ACROSS, *FEB, max_products=2, strategy=strategy)
    rows = [(p.rank, p.datetime.day, p.mgrs_tile, p.selected) for p in found]
    if strategy == "all":
        # Clear share: Feb 24 95 %, Feb 19 70 %, Feb 29 about 50 % (its clear tile covers a fifth).
        assert rows == [(1, 24, "29RKH", True), (1, 24, "29RLH", True), (2, 19, "29RKH", True),
                        (2, 19, "29RLH", True), (3, 29, "29RKH", False), (3, 29, "29RLH", False)]
    else:
        # Two 14.5-day bins, targets Feb 8 and Feb 22: Feb 19 is nearest the first, Feb 24 the second.
        assert rows[:4] == [(1, 19, "29RKH", True), (1, 19, "29RLH", True), (2, 24, "29RKH", True),
                            (2, 24, "29RLH", True)]
        assert [r[3] for r in rows[4:]] == [False, False]


def test_all_ranks_by_the_clear_share_of_the_aoi_unless_asked_for_least_cloud():
    aoi = box(10.0, 0.0, 11.0, 1.0)
    small = stac_item(tile="32NPF", when=datetime(2020, 2, 19, 10, tzinfo=UTC), cloud=1.0, geometry=box(10.97, 0, 12, 1))
    large = stac_item(tile="32NPF", when=datetime(2020, 2, 24, 10, tzinfo=UTC), cloud=10.0, geometry=box(10.66, 0, 12, 1))
    with StacApiServer([small, large]) as server:
        by_clear = search(stac(server.url), aoi, *FEB)
        by_cloud = search(stac(server.url), aoi, *FEB, strategy="cloud")
    assert [round(p.aoi_coverage) for p in by_clear] == [34, 3]  # 34 % x 0.90 clear beats 3 % x 0.99
    assert [p.datetime.day for p in by_clear] == [24, 19]
    assert [p.datetime.day for p in by_cloud] == [19, 24]
