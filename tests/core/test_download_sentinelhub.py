"""Download through the Sentinel Hub Process API, against a loopback emulator.

The emulator parses the real request (box, CRS, size, evalscript bands, time range,
processing options) and answers with GeoTIFFs cut from the synthetic world of
``tests/servers/s2_world.py``, whose values are known everywhere; a small per-request
size limit forces the grid to be split, and the stitched result must equal the world.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import numpy as np
import pytest
import rasterio

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search.catalog import CatalogBackend
from satplugin.qgis_satplugin.core.http.client import CredentialsRefused
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files
from tests.servers.items import catalog_item
from tests.servers.process_api import Acquisition, ProcessApiServer
from satplugin.tests.fixtures.step_runs import run_download

# rasterio sometimes warns about its own temporary in-memory datasets when the emulator
# reprojects from several server threads at once; the pixel checks below are what count.
pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

UTC = timezone.utc
BANDS = ["B02", "B03", "B04", "B08"]
OLD = datetime(2021, 7, 3, 10, 20, 21, tzinfo=UTC)  # baseline 03.01
NEW = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)  # baseline 05.09
CREDS = ("test-client", "test-secret")
LIMIT = 64


@pytest.fixture
def server(monkeypatch):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    acqs = [Acquisition(OLD, "03.01"), Acquisition(NEW, "05.09")]
    items = [catalog_item(when=a.datetime, baseline=a.baseline, tile="33TWM", geometry=s2_world.footprint_4326()) for a in acqs]
    with ProcessApiServer(acqs, items=items, max_px=LIMIT) as s:
        yield s


def found_products(server, level="L2A"):
    backend = CatalogBackend(server.url, server.token_url, CREDS)
    return backend.search(s2_world.aoi_4326(), datetime(2021, 1, 1, tzinfo=UTC), datetime(2023, 12, 31, tzinfo=UTC), level)


def run(server, folder, products=None, **kw):
    kw.setdefault("max_request_px", LIMIT)
    return run_download(
        products or found_products(server), s2_world.aoi_4326(), folder, kw.pop("bands", BANDS),
        credentials=CREDS, service_url=server.url, token_url=server.token_url, **kw,
    )


def test_split_requests_stitch_exactly_and_harmonize_both_baselines(server, tmp_path):
    lines = []
    result = run(server, tmp_path / "out", log=lines.append, progress=(progress := []).append)
    grid = result.grid
    assert grid.crs == "EPSG:32633" and grid.x_min % 60 == 0 and grid.y_max % 60 == 0
    assert (grid.width, grid.height) == (152, 130)

    # Every request stays within the limit, and each output's windows tile the grid exactly once.
    requests = server.parsed
    assert len(requests) == 2 * 2 * 9  # 2 dates x (image + mask) x 3 x 3 windows
    assert max(max(r.width, r.height) for r in requests) <= LIMIT
    for date in (OLD, NEW):
        for bands in (BANDS + ["dataMask"], ["SCL", "dataMask"]):
            reqs = [r for r in requests if r.time_from <= date <= r.time_to and r.bands == bands]
            cover = np.zeros((grid.height, grid.width), dtype=int)
            for r in reqs:
                assert r.crs == "http://www.opengis.net/def/crs/EPSG/0/32633"
                col = round((r.bbox[0] - grid.x_min) / 10)
                row = round((grid.y_max - r.bbox[3]) / 10)
                assert (r.bbox[2] - r.bbox[0], r.bbox[3] - r.bbox[1]) == (r.width * 10, r.height * 10)
                cover[row : row + r.height, col : col + r.width] += 1
                assert r.harmonize_values is False and r.units == "DN" and r.accept == "image/tiff"
                assert (r.time_to - r.time_from).total_seconds() == 1200
            assert (cover == 1).all()
    image_reqs = [r for r in requests if "B02" in r.bands]
    assert all((r.upsampling, r.downsampling, r.sample_type) == ("BILINEAR", "BILINEAR", "UINT16") for r in image_reqs)
    mask_reqs = [r for r in requests if "SCL" in r.bands]
    assert all((r.upsampling, r.sample_type) == ("NEAREST", "UINT8") for r in mask_reqs)

    names = [p.name for p in sorted((tmp_path / "out").iterdir())]
    assert names == [
        "20210703T102021_S2A_T33TWM.tif",
        "20210703T102021_S2A_T33TWM_SCL.tif",
        "20230612T101559_S2A_T33TWM.tif",
        "20230612T101559_S2A_T33TWM_SCL.tif",
        "manifest.json",
    ]
    with rasterio.open(tmp_path / "out" / names[0]) as old, rasterio.open(tmp_path / "out" / names[2]) as new:
        a, b = old.read(), new.read()
        assert old.descriptions == tuple(BANDS) and old.scales == (0.0001,) * 4 and old.offsets == (0.0,) * 4
        assert old.nodata == 0 and old.dtypes == ("uint16",) * 4
        assert old.tags()["PROCESSING_BASELINE"] == "03.01" and new.tags()["PROCESSING_BASELINE"] == "05.09"
        assert new.tags()["HARMONIZED"] == "true" and new.tags()["ACQUISITION_DATETIME"] == "2023-06-12T10:15:59Z"
        assert new.profile["tiled"] and new.profile["blockxsize"] == 512 and new.profile["compress"] == "deflate"
        assert new.crs.to_epsg() == 32633 and new.transform == grid.transform
    for i, band in enumerate(BANDS):
        expected = s2_world.expected_on_grid(band, grid)
        np.testing.assert_array_equal(a[i], expected)
        np.testing.assert_array_equal(b[i], expected)  # the +1000 of baseline 05.09 is gone
    assert (a[0] == 0).sum() > 0  # the world's no-data corner stays no data
    with rasterio.open(tmp_path / "out" / names[1]) as scl:
        assert scl.dtypes == ("uint8",) and scl.descriptions == ("SCL",)
        data_mask = s2_world.expected_on_grid("B02", grid) > 0  # the evalscript's dataMask
        np.testing.assert_array_equal(scl.read(1), np.where(data_mask, s2_world.expected_on_grid("SCL", grid), 0))

    manifest = assert_only_complete_files(tmp_path / "out")
    assert manifest["complete"] is True and manifest["bands"] == BANDS
    assert manifest["dates"] == ["2021-07-03T10:20:21Z", "2023-06-12T10:15:59Z"]
    assert manifest["grid"]["width"] == 152 and manifest["grid"]["crs"] == "EPSG:32633"
    harm = {f["path"]: f["harmonization"][0]["subtract_dn"] for f in manifest["files"] if f["kind"] == "image"}
    assert harm == {names[0]: 0, names[2]: 1000}
    assert sum("wrote" in line for line in lines) == 2
    assert progress == sorted(progress) and progress[-1] == 1.0
    assert result.requests == 36 and result.transferred_bytes > 0


def test_without_harmonization_the_offset_stays_and_the_metadata_says_so(server, tmp_path):
    run(server, tmp_path, harmonize=False, include_masks=False, bands=["B04"])
    with rasterio.open(tmp_path / "20230612T101559_S2A_T33TWM.tif") as ds:
        data = ds.read(1)
        assert ds.offsets == (pytest.approx(-0.1),) and ds.tags()["HARMONIZED"] == "false"
        expected = s2_world.expected_on_grid("B04", ds)
    np.testing.assert_array_equal(data, np.where(expected > 0, expected + 1000, 0))
    # scale * DN + offset gives the same reflectance as the old baseline's file
    with rasterio.open(tmp_path / "20210703T102021_S2A_T33TWM.tif") as old:
        assert old.offsets == (0.0,)
        np.testing.assert_allclose(old.read(1)[data > 0] * 1e-4, data[data > 0] * 1e-4 - 0.1, atol=1e-9)


def test_l1c_gets_the_clm_cloud_mask(monkeypatch, tmp_path):
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    acq = Acquisition(NEW, "05.09", collection="sentinel-2-l1c")
    item = catalog_item(when=NEW, baseline="05.09", tile="33TWM", geometry=s2_world.footprint_4326(), level="L1C")
    with ProcessApiServer([acq], items=[item]) as server:
        result = run(server, tmp_path, products=found_products(server, "L1C"), bands=["B10"], max_request_px=2500)
        assert len(server.parsed) == 2 and server.parsed[0].collection == "sentinel-2-l1c"
    assert [f["path"] for f in result.files] == ["20230612T101559_S2A_T33TWM.tif", "20230612T101559_S2A_T33TWM_CLM.tif"]
    with rasterio.open(tmp_path / result.files[1]["path"]) as clm:
        assert clm.nodata == 255
        data_mask = s2_world.expected_on_grid("B02", result.grid) > 0
        np.testing.assert_array_equal(clm.read(1), np.where(data_mask, s2_world.expected_on_grid("CLM", result.grid), 255))


def test_wrong_credentials_say_so(server, tmp_path):
    products = found_products(server)
    with pytest.raises(CredentialsRefused, match="refused the credentials"):
        run_download(products, s2_world.aoi_4326(), tmp_path, BANDS, credentials=("test-client", "wrong"), service_url=server.url, token_url=server.token_url)
    assert list(tmp_path.iterdir()) == []


def test_a_bad_request_is_reported_not_retried(server, tmp_path):
    server.max_px = 10  # the service now refuses our (64 px) windows
    with pytest.raises(SatPluginError, match="must not exceed 10 pixels"):
        run(server, tmp_path)
    sent = [r.json["input"]["bounds"]["bbox"] for r in server.requests_to("/api/v1/process")]
    assert len(server.parsed) == 0 and len(sent) == len({tuple(b) for b in sent})  # no window was sent twice
    assert [p.name for p in tmp_path.iterdir()] == []


def test_expired_token_is_renewed_once(server, tmp_path):
    products = found_products(server)[:1]
    token_path = "/auth/realms/CDSE/protocol/openid-connect/token"
    before_tokens, before_process = len(server.requests_to(token_path)), len(server.requests_to("/api/v1/process"))
    server.script(401, path="/api/v1/process", body={"error": {"status": 401, "message": "Token expired"}})
    result = run(server, tmp_path, products=products, include_masks=False, max_concurrent=1)
    assert len(server.requests_to(token_path)) - before_tokens == 2  # the run's token, then one fresh one
    assert len(server.requests_to("/api/v1/process")) - before_process == 9 + 1
    assert result.written == ["20210703T102021_S2A_T33TWM.tif"]


def test_reference_grid_is_used_as_is(server, tmp_path):
    from satplugin.qgis_satplugin.core.grid import PixelGrid

    grid = PixelGrid.square("EPSG:32633", 500520, 5096400, 20, 30, 20)
    result = run(server, tmp_path, reference_grid=grid, bands=["B03"], include_masks=False)
    assert result.grid == grid
    with rasterio.open(tmp_path / result.files[0]["path"]) as ds:
        assert (ds.width, ds.height, ds.transform) == (30, 20, grid.transform)
        assert json.loads((tmp_path / "manifest.json").read_text())["grid"]["pixel_size"] == [20.0, 20.0]
