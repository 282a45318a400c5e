"""Issue 11, the network side: hostile servers and hostile product lists, through processing.run.

Every test starts its own loopback servers (127.0.0.1 only, bounded in time) and drives
``satplugin:searchproducts`` or ``satplugin:downloadproducts`` the way QGIS does. What is
asserted is what the user sees (the exception and its message, the log, the outputs) and
what must not happen: a request reaching the wrong server, a secret leaving, a file
changing.
"""
from __future__ import annotations

import json
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from qgis.core import QgsProcessingException, QgsVectorLayer

from satplugin.qgis_satplugin.core.search.catalog import CatalogBackend
from satplugin.qgis_satplugin.core.search.footprints_gpkg import write_footprints_gpkg
from satplugin.qgis_satplugin.core.http.client import origin
from satplugin.qgis_satplugin.core.search.stac import product_from_stac_item
from tests.adversarial.conftest import sha256_tree
from tests.fixtures.processing_feedback import KeptLines as Feedback
from tests.servers import s2_world
from tests.servers.hostile import CatchServer, TrickleServer, endless_json, zip_bomb
from tests.servers.items import catalog_item, stac_item
from tests.servers.process_api import Acquisition, ProcessApiServer
from tests.servers.product_folders import make_safe, safe_name
from tests.servers.sentinelhub_api import CATALOG_PATH, TOKEN_PATH, SentinelHubServer
from tests.servers.stac_api import StacApiServer

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

UTC = timezone.utc
TILE_AOI = "-11.5,-11.4,24.5,24.6 [EPSG:4326]"  # inside tile 29RKH of the generated items
SECRET = "s3cr3t-d0-not-leak"
WHEN = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)


def run(alg, params, feedback=None):
    import processing

    return processing.run(f"satplugin:{alg}", params, feedback=feedback or Feedback())


def refused(alg, params, feedback=None) -> tuple[str, float]:
    """The message of the QgsProcessingException the run ends with, and how long it took."""
    started = time.monotonic()
    with pytest.raises(QgsProcessingException) as info:
        run(alg, params, feedback)
    return str(info.value), time.monotonic() - started


def aoi_param(geom=None) -> str:
    b = (geom or s2_world.aoi_4326()).bounds
    return f"{b[0]},{b[2]},{b[1]},{b[3]} [EPSG:4326]"


def search_params(server_url, tmp_path, **extra):
    return {"BACKEND": 2, "SERVICE_URL": server_url, "AOI": TILE_AOI, "START_DATE": "2020-02-01",
            "END_DATE": "2020-02-28", "OUTPUT": str(tmp_path / "products.gpkg"), **extra}


def assets_of(gpkg) -> list[dict]:
    layer = QgsVectorLayer(f"{gpkg}|layername=products", "p", "ogr")
    assert layer.isValid()
    return [json.loads(f["download"])["assets"] for f in layer.getFeatures()]


@pytest.fixture
def sh_env(monkeypatch):
    monkeypatch.setenv("SH_CLIENT_ID", "test-client")
    monkeypatch.setenv("SH_CLIENT_SECRET", SECRET)


def sentinelhub_products_gpkg(server, path: Path, service_url=None) -> Path:
    """A product list as the search writes it, from the emulator; ``service_url`` forges the stored address."""
    items = [catalog_item(when=WHEN, baseline="05.09", tile="33TWM", geometry=s2_world.footprint_4326())]
    server.items[:] = items
    products = CatalogBackend(server.url, server.token_url, ("test-client", SECRET)).search(
        s2_world.aoi_4326(), datetime(2023, 6, 1, tzinfo=UTC), datetime(2023, 6, 30, tzinfo=UTC), "L2A"
    )
    assert len(products) == 1
    for p in products:
        p.selected = True
        if service_url is not None:
            p.download["service_url"] = service_url
    write_footprints_gpkg(products, path)
    server.requests.clear()
    return path


def stac_products_gpkg(path: Path, assets: dict, self_url=None) -> Path:
    """A one-product STAC product list whose assets are exactly ``assets`` (a hand-edited file)."""
    item = stac_item(tile="33TWM", when=WHEN, baseline="05.09", geometry=s2_world.footprint_4326())
    product = product_from_stac_item(item)
    product.download["assets"] = dict(assets)
    product.download["self"] = self_url
    product.selected = True
    write_footprints_gpkg([product], path)
    return path


def secret_raster(path: Path) -> Path:
    """A local GeoTIFF over the AOI whose pixels must never reach a dataset (all 4242)."""
    grid = s2_world.native_raster("B02")
    with rasterio.open(path, "w", driver="GTiff", width=grid[0].shape[1], height=grid[0].shape[0], count=1,
                       dtype="uint16", crs=s2_world.CRS, transform=grid[1]) as dst:
        dst.write(np.full(grid[0].shape, 4242, dtype=np.uint16), 1)
    return path


# --- 3: the client secret and the token never follow a redirect ---------------------------


def test_token_redirect_to_another_port_never_gets_the_secret(satplugin_provider, sh_env, tmp_path):
    with SentinelHubServer([], client_secret=SECRET) as server, CatchServer() as thief:
        server.script(307, headers={"Location": thief.url + TOKEN_PATH + "?from=redirect"}, path=TOKEN_PATH)
        message, _ = refused("searchproducts", search_params(
            server.url, tmp_path, BACKEND=0, TOKEN_URL=server.token_url))
        token_requests = server.requests_to(TOKEN_PATH)
        caught = list(thief.requests)
    assert f"redirect to {origin(thief.url)}" in message and "never sent on" in message
    assert "TOKEN_URL" in message and SECRET not in message and "from=redirect" not in message
    assert caught == []  # the second server never saw the form, the secret or anything else
    assert len(token_requests) == 1  # and a redirect is not retried either
    assert not (tmp_path / "products.gpkg").exists()


def test_catalog_request_with_the_token_is_not_redirected(satplugin_provider, sh_env, tmp_path):
    with SentinelHubServer([], client_secret=SECRET) as server, CatchServer() as thief:
        server.script(308, headers={"Location": thief.url + CATALOG_PATH}, path=CATALOG_PATH)
        message, _ = refused("searchproducts", search_params(
            server.url, tmp_path, BACKEND=0, TOKEN_URL=server.token_url))
        tokens = set(server.tokens)
        caught = list(thief.requests)
    assert f"redirect to {origin(thief.url)}" in message
    assert caught == [] and tokens and not any(t in message for t in tokens)


def test_process_api_request_with_the_token_is_not_redirected(satplugin_provider, sh_env, tmp_path):
    with ProcessApiServer([Acquisition(WHEN, "05.09")], client_secret=SECRET) as server, CatchServer() as thief:
        gpkg = sentinelhub_products_gpkg(server, tmp_path / "products.gpkg")
        server.script(307, headers={"Location": thief.url + "/api/v1/process"}, path="/api/v1/process")
        message, _ = refused("downloadproducts", {
            "PRODUCTS": str(gpkg), "AOI": aoi_param(), "BANDS": [0], "SERVICE_URL": server.url,
            "TOKEN_URL": server.token_url, "MAX_CONCURRENT": 1, "OUTPUT_FOLDER": str(tmp_path / "out")})
        caught = list(thief.requests)
    assert f"redirect to {origin(thief.url)}" in message and SECRET not in message
    assert caught == []
    assert not list((tmp_path / "out").glob("*.tif"))


# --- 4: a product list cannot choose where the token goes ------------------------------------


@pytest.mark.parametrize("user_service", [False, True], ids=["default-service", "user-service"])
def test_stored_service_url_cannot_steer_the_token(satplugin_provider, sh_env, tmp_path, user_service):
    with ProcessApiServer([Acquisition(WHEN, "05.09")], client_secret=SECRET) as server, CatchServer() as thief:
        gpkg = sentinelhub_products_gpkg(server, tmp_path / "shared.gpkg", service_url=thief.url)
        before = sha256_tree(gpkg)
        params = {"PRODUCTS": str(gpkg), "AOI": aoi_param(), "BANDS": [0], "TOKEN_URL": server.token_url,
                  "OUTPUT_FOLDER": str(tmp_path / "out")}
        if user_service:
            params["SERVICE_URL"] = server.url
        message, _ = refused("downloadproducts", params)
        caught, reached = list(thief.requests), list(server.requests)
    chosen = server.url if user_service else "https://sh.dataspace.copernicus.eu"
    assert f"was found on {thief.url}" in message and f"would send your token to {chosen}" in message
    assert "SERVICE_URL" in message
    assert caught == [] and reached == []  # refused before any token request, anywhere
    assert sha256_tree(gpkg) == before
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# --- 5: files come from where they must ------------------------------------------------------


def test_search_keeps_only_http_asset_hrefs(satplugin_provider, tmp_path):
    secret = secret_raster(tmp_path / "private.tif")
    item = stac_item(cloud=3.0)
    with StacApiServer([item]) as server, CatchServer() as thief:
        own = f"{server.url}/collections/sentinel-2-l2a/items/{item['id']}"
        item["links"] = [{"rel": "self", "href": own}]
        item["assets"] = {
            "blue": {"href": str(secret)},  # an absolute local path
            "green": {"href": "../assets/B03.tif"},  # relative: resolved against the item's own URL
            "red": {"href": f"/vsicurl/{thief.url}/B04.tif"},
            "nir": {"href": f"file://{secret}"},
            "swir16": {"href": "s3://bucket/B11.tif"},
            "scl": {"href": f"/vsicurl/{thief.url}/SCL.tif"},
        }
        feedback = Feedback()
        result = run("searchproducts", search_params(server.url, tmp_path, AOI_CLOUD=True), feedback)
        caught = list(thief.requests)
    assert result["PRODUCT_COUNT"] == 1
    assert assets_of(result["OUTPUT"]) == [{"B03": f"{server.url}/collections/sentinel-2-l2a/assets/B03.tif"}]
    assert "Left out 5 band file(s) (B02, B04, B08, B11, SCL) whose href is not an http(s) URL" in feedback.text()
    assert caught == []  # GDAL never went to the other host, not even for the AOI cloud


@pytest.mark.parametrize("kind", ["local-path", "relative", "vsicurl", "vsis3", "file-url"])
def test_download_refuses_a_product_list_with_local_or_gdal_paths(satplugin_provider, tmp_path, kind):
    secret = secret_raster(tmp_path / "private.tif")
    with CatchServer() as thief:
        href = {
            "local-path": str(secret),
            "relative": "../private.tif",
            "vsicurl": f"/vsicurl/{thief.url}/B02.tif",
            "vsis3": "/vsis3/some-bucket/B02.tif",
            "file-url": f"file://{secret}",
        }[kind]
        gpkg = stac_products_gpkg(tmp_path / "edited.gpkg", {"B02": href, "B03": f"{thief.url}/B03.tif"})
        before = sha256_tree(secret)
        message, _ = refused("downloadproducts", {
            "PRODUCTS": str(gpkg), "AOI": aoi_param(), "BANDS": [4], "INCLUDE_MASKS": False,
            "OUTPUT_FOLDER": str(tmp_path / "out")})
        caught = list(thief.requests)
    assert "its B02 file" in message and "is not an http(s) URL" in message and "search again" in message
    assert caught == []  # refused before anything was read, from anywhere
    assert sha256_tree(secret) == before
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.tif"))


def test_safe_image_files_stay_inside_the_product(satplugin_provider, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    outside = secret_raster(tmp_path / "T33TWM_20230612T101559_B02_10m.jp2")  # GDAL reads it by content
    safe = s2_world.make_safe_l2a(library, when=WHEN, baseline="05.09")
    mtd = safe / "MTD_MSIL2A.xml"
    text = mtd.read_text()
    b02 = next(line for line in text.split("<IMAGE_FILE>")[1:] if "_B02_10m" in line).split("</IMAGE_FILE>")[0]
    mtd.write_text(text.replace(b02, "../../T33TWM_20230612T101559_B02_10m"))  # climbs out of the product
    feedback = Feedback()
    result = run("searchproducts", {"BACKEND": 3, "SERVICE_URL": str(library), "AOI": aoi_param(),
                                    "START_DATE": "2023-06-01", "END_DATE": "2023-06-30",
                                    "OUTPUT": str(tmp_path / "local.gpkg")}, feedback)
    assert "ignored 1 IMAGE_FILE entr(ies) of its metadata that point outside the product" in feedback.text()
    (assets,) = assets_of(result["OUTPUT"])
    assert "B02" not in assets and all(a.startswith(str(safe)) for a in assets.values())
    # A hand-edited list cannot bring the outside file back either.
    product = product_from_stac_item(stac_item(tile="33TWM", when=WHEN, geometry=s2_world.footprint_4326()))
    product.download = {"kind": "local", "path": str(safe), "assets": {**assets, "B02": str(outside)}}
    product.selected = True
    write_footprints_gpkg([product], tmp_path / "edited.gpkg")
    message, _ = refused("downloadproducts", {
        "PRODUCTS": str(tmp_path / "edited.gpkg"), "AOI": aoi_param(), "BANDS": [4], "INCLUDE_MASKS": False,
        "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert "its B02 file" in message and "is not inside the product" in message
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.tif"))


# --- 8: deadlines, logged waits, quick cancel ------------------------------------------------


def page_bytes() -> bytes:
    return json.dumps({"type": "FeatureCollection", "features": [], "links": [], "pad": "x" * 500}).encode()


@pytest.mark.parametrize("factory", [TrickleServer.body_trickle, TrickleServer.header_trickle], ids=["body", "headers"])
def test_trickling_server_hits_the_request_deadline(satplugin_provider, tmp_path, factory):
    with factory(page_bytes(), interval_s=0.2) as server:
        message, elapsed = refused("searchproducts", search_params(server.url, tmp_path, REQUEST_DEADLINE=1))
    assert "did not finish answering within 1 s, the deadline of one request" in message
    assert "REQUEST_DEADLINE" in message
    assert elapsed < 3.0  # not the minutes a trickle holds a per-read timeout
    assert not (tmp_path / "products.gpkg").exists()


def test_trickling_server_hits_the_run_deadline(satplugin_provider, tmp_path):
    with TrickleServer.body_trickle(page_bytes(), interval_s=0.2) as server:
        message, elapsed = refused("searchproducts", search_params(server.url, tmp_path, RUN_DEADLINE=1))
    assert "used up its network deadline of 1 s" in message and "RUN_DEADLINE" in message
    assert elapsed < 3.0


def test_trickling_file_server_hits_the_deadline_in_a_download(satplugin_provider, tmp_path):
    with TrickleServer.body_trickle(b"II*\x00" + b"\x00" * 20000, interval_s=0.2) as server:
        gpkg = stac_products_gpkg(tmp_path / "p.gpkg", {b: f"{server.url}/{b}.tif" for b in ("B02", "B03", "B04", "B08")})
        message, elapsed = refused("downloadproducts", {
            "PRODUCTS": str(gpkg), "AOI": aoi_param(), "BANDS": [0], "INCLUDE_MASKS": False, "MAX_CONCURRENT": 2,
            "REQUEST_DEADLINE": 1, "OUTPUT_FOLDER": str(tmp_path / "out")})
    assert "did not finish answering within 1 s" in message
    assert elapsed < 4.0
    assert not list((tmp_path / "out").glob("*.tif"))


def retry_after_date(seconds: float) -> str:
    return format_datetime(datetime.now(UTC) + timedelta(seconds=seconds), usegmt=True)


def test_retry_after_date_past_the_run_deadline_is_refused_at_once(satplugin_provider, tmp_path):
    with StacApiServer([stac_item()]) as server:
        server.script(429, headers={"Retry-After": retry_after_date(590)}, path="/search")
        message, elapsed = refused("searchproducts", search_params(server.url, tmp_path, RUN_DEADLINE=60))
    assert "asks for a wait of 5" in message and "(HTTP 429), which would pass the run deadline of 60 s" in message
    assert elapsed < 2.0


def test_a_long_wait_is_logged_first_and_cancel_stops_it_quickly(satplugin_provider, tmp_path):
    with StacApiServer([stac_item()]) as server:
        server.script(429, headers={"Retry-After": retry_after_date(30)}, path="/search")
        feedback = Feedback()
        timer = threading.Timer(0.7, feedback.cancel)
        timer.start()
        try:
            message, elapsed = refused("searchproducts", search_params(server.url, tmp_path), feedback)
        finally:
            timer.cancel()
    waits = [line for line in feedback.lines if "(HTTP 429); retrying" in line]
    assert waits and "retrying in" in waits[0] and "s of waiting for this request in all" in waits[0]
    assert "Canceled" in message
    assert elapsed < 0.7 + 2.0


def test_cancel_during_a_stalled_read_is_quick(satplugin_provider, tmp_path):
    with TrickleServer.body_trickle(page_bytes(), interval_s=0.5) as server:
        feedback = Feedback()
        timer = threading.Timer(0.5, feedback.cancel)
        timer.start()
        try:
            message, elapsed = refused("searchproducts", search_params(server.url, tmp_path), feedback)
        finally:
            timer.cancel()
    assert "Canceled" in message
    assert elapsed < 0.5 + 2.0


# --- 9: size caps -----------------------------------------------------------------------------


def test_a_300_mb_json_answer_is_cut_at_the_cap(satplugin_provider, tmp_path):
    with StacApiServer([]) as server:
        server.script(200, headers={"Content-Type": "application/json"}, body=endless_json(300 << 20), path="/search")
        message, elapsed = refused("searchproducts", search_params(server.url, tmp_path))
        sent = server.streamed_bytes
    assert "sent a JSON answer larger than 64 MiB" in message and "service URL" in message
    assert sent < 150 << 20  # the client stopped reading long before the end
    assert elapsed < 10.0
    assert not (tmp_path / "products.gpkg").exists()


def test_a_zip_bomb_metadata_is_refused_without_inflating_it(satplugin_provider, tmp_path):
    library = tmp_path / "library"
    library.mkdir()
    make_safe(library, when=WHEN, cloud=3.0, zipped=True)
    name = safe_name("S2B", "L2A", WHEN + timedelta(days=1), "05.09", 65, "32TQM")
    bomb = zip_bomb(library / f"{name}.SAFE.zip", f"{name}.SAFE/MTD_MSIL2A.xml", 1536 << 20)
    assert bomb.stat().st_size < 2 << 20  # 1.5 MB on disk, 1.5 GB inflated
    feedback = Feedback()
    started = time.monotonic()
    result = run("searchproducts", {"BACKEND": 3, "SERVICE_URL": str(library), "AOI": "12.6,12.8,45.4,45.6 [EPSG:4326]",
                                    "START_DATE": "2023-06-01", "END_DATE": "2023-06-30",
                                    "OUTPUT": str(tmp_path / "local.gpkg")}, feedback)
    assert time.monotonic() - started < 5.0
    assert result["PRODUCT_COUNT"] == 1  # the good product is still found
    assert f"Skipped {bomb.name}: its product metadata is larger than 64 MiB" in feedback.text()


# --- 10: a read-only output folder ------------------------------------------------------------


@pytest.fixture
def read_only_folder(tmp_path):
    """A folder on a read-only file system holding a previous products.gpkg (root only: root ignores chmod)."""
    point = tmp_path / "ro"
    point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1M", "tmpfs", str(point)], capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip() or proc.returncode}")
    try:
        write_footprints_gpkg([], point / "products.gpkg")
        proc = subprocess.run(["mount", "-o", "remount,ro", str(point)], capture_output=True, text=True)
        if proc.returncode != 0:
            pytest.skip(f"cannot make the tmpfs read-only: {proc.stderr.strip() or proc.returncode}")
        yield point
    finally:
        subprocess.run(["umount", "-l", str(point)], capture_output=True)


def test_read_only_search_output_folder_is_one_sentence_before_any_search(satplugin_provider, read_only_folder):
    before = sha256_tree(read_only_folder)
    with StacApiServer([stac_item()]) as server:
        message, _ = refused("searchproducts", search_params(server.url, read_only_folder))
        reached = list(server.requests)
    assert message.startswith(f"Cannot write {read_only_folder / 'products.gpkg'}")
    assert f"the folder {read_only_folder} is not writable" in message and message.count(". ") == 0
    assert reached == []  # checked before the search, which would otherwise be lost
    assert sha256_tree(read_only_folder) == before
