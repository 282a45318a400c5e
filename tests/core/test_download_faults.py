"""Reliability: retries, truncated and corrupt answers, timeouts, cancel, resume, disk errors.

After every disturbance the output folder may hold only complete files (no temp files,
each listed in the manifest with its checksum), and once the download has finished
every file must be byte-identical to the one an undisturbed run wrote.
"""

from __future__ import annotations

import errno
import random
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from rasterio.io import MemoryFile

from satplugin.qgis_satplugin.core.download import cog_writer
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.search.catalog import CatalogBackend
from satplugin.qgis_satplugin.core.search.stac import product_from_stac_item
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files, folder_hashes
from tests.servers.files import RangeFileServer
from tests.servers.items import catalog_item
from tests.servers.process_api import Acquisition, ProcessApiServer
from satplugin.tests.fixtures.step_runs import run_download

pytestmark = pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")

UTC = timezone.utc
DATES = [
    (datetime(2021, 7, 3, 10, 20, 21, tzinfo=UTC), "03.01"),
    (datetime(2022, 8, 2, 10, 10, 31, tzinfo=UTC), "04.00"),
    (datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC), "05.09"),
]
BANDS = ["B02", "B04", "B08"]
CREDS = ("test-client", "test-secret")
PROCESS = "/api/v1/process"
LIMIT = 80  # 152 x 130 px -> 2 x 2 windows per file


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


# --- Sentinel Hub ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def sh(tmp_path_factory):
    """The emulator, the products, and the checksums of an undisturbed run."""
    mp = pytest.MonkeyPatch()
    mp.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    items = [catalog_item(when=w, baseline=b, tile="33TWM", geometry=s2_world.footprint_4326()) for w, b in DATES]
    with ProcessApiServer([Acquisition(w, b) for w, b in DATES], items=items, max_px=LIMIT) as server:
        products = CatalogBackend(server.url, server.token_url, CREDS).search(
            s2_world.aoi_4326(), datetime(2021, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC), "L2A"
        )
        reference = tmp_path_factory.mktemp("sh_reference")
        sh_run(server, products, reference)
        yield server, products, folder_hashes(reference)
    mp.undo()


def sh_run(server, products, folder, sleeps=None, **kw):
    options = {"sleep": sleeps if sleeps is not None else Sleeps(), "rng": random.Random(3), **kw.pop("client_options", {})}
    return run_download(
        products, s2_world.aoi_4326(), folder, BANDS, credentials=CREDS, service_url=server.url, token_url=server.token_url,
        max_request_px=LIMIT, client_options=options, **kw,
    )


def finished_like_reference(folder, reference):
    assert_only_complete_files(folder)
    assert folder_hashes(folder) == reference


def test_reference_run_is_deterministic(sh, tmp_path):
    server, products, reference = sh
    assert len(reference) == 3 * 2 + 1
    sh_run(server, products, tmp_path, max_concurrent=1)
    finished_like_reference(tmp_path, reference)


def test_429_waits_what_retry_after_says(sh, tmp_path):
    server, products, reference = sh
    sleeps = Sleeps()
    server.script(429, path=PROCESS, headers={"Retry-After": "1500"}, body={"error": {"status": 429}})
    sh_run(server, products, tmp_path, sleeps)
    assert sleeps == [1.5]  # Sentinel Hub sends milliseconds
    finished_like_reference(tmp_path, reference)


def test_5xx_then_success_backs_off(sh, tmp_path):
    server, products, reference = sh
    sleeps = Sleeps()
    server.script(500, path=PROCESS)
    server.script(503, path=PROCESS)
    sh_run(server, products, tmp_path, sleeps, client_options={"backoff_base": 1.0}, max_concurrent=1)
    first, second = sleeps  # one request failed twice: exponential backoff, half of it random
    assert 0.5 <= first <= 1.0 and 1.0 <= second <= 2.0
    finished_like_reference(tmp_path, reference)


def test_connection_dropped_mid_body(sh, tmp_path):
    server, products, reference = sh
    server.fault(PROCESS, drop_after=300, skip=2)
    lines = []
    sh_run(server, products, tmp_path, log=lines.append)
    assert any("the body ended after 300 of" in line for line in lines)
    finished_like_reference(tmp_path, reference)


def test_slow_answer_times_out_and_is_retried(sh, tmp_path):
    server, products, reference = sh
    server.fault(PROCESS, delay_s=1.5, skip=1)
    lines = []
    sh_run(server, products, tmp_path, log=lines.append, client_options={"timeout": 0.5})
    assert any("ReadTimeout" in line for line in lines)
    finished_like_reference(tmp_path, reference)


def test_corrupt_or_wrong_size_tiff_is_never_saved(sh, tmp_path):
    server, products, reference = sh
    with MemoryFile() as mem:
        with mem.open(driver="GTiff", width=7, height=7, count=3, dtype="uint16") as ds:
            ds.write(ds.read() + 9)
        wrong_size = mem.read()
    server.fault(PROCESS, corrupt=True, skip=3)
    server.script(200, path=PROCESS, headers={"Content-Type": "image/tiff"}, body=wrong_size, skip=5)
    lines = []
    sh_run(server, products, tmp_path, log=lines.append)
    assert any("not a readable GeoTIFF" in line for line in lines)
    assert any("got a 7 x 7 image" in line for line in lines)
    finished_like_reference(tmp_path, reference)


def test_gives_up_after_the_last_attempt(sh, tmp_path):
    server, products, _ = sh
    for _ in range(3):
        server.script(502, path=PROCESS)
    with pytest.raises(SatPluginError, match="Gave up on .*/api/v1/process after 3 attempts .*HTTP 502"):
        sh_run(server, products[:1], tmp_path, client_options={"max_attempts": 3}, max_concurrent=1)
    assert_only_complete_files(tmp_path)
    assert not any(p.suffix == ".tif" for p in tmp_path.iterdir())


def test_cancel_midway_then_resume(sh, tmp_path):
    server, products, reference = sh
    flag = threading.Event()
    flagged_at = []

    def log(line):
        if "wrote" in line and not flag.is_set():
            flag.set()
            flagged_at.append(time.monotonic())

    server.delay_s = 0.05
    try:
        with pytest.raises(Canceled, match="complete file"):
            sh_run(server, products, tmp_path, log=log, is_canceled=flag.is_set, max_concurrent=2)
        stopped = time.monotonic() - flagged_at[0]
    finally:
        server.delay_s = 0.0
    assert stopped < 2.0
    manifest = assert_only_complete_files(tmp_path)
    assert manifest["complete"] is False and 1 <= len(manifest["dates"]) < 3
    kept = {f["path"] for f in manifest["files"]}

    before = len(server.requests_to(PROCESS))
    result = sh_run(server, products, tmp_path)
    assert set(result.skipped) == kept and set(result.written) == set(reference) - kept - {"manifest.json"}
    assert len(server.requests_to(PROCESS)) - before == 4 * len(result.written)  # 4 windows per missing file only
    finished_like_reference(tmp_path, reference)


def test_cancel_during_a_retry_wait_is_quick(sh, tmp_path):
    server, products, _ = sh
    server.script(429, path=PROCESS, headers={"Retry-After": "30000"})  # 30 s
    start = time.monotonic()
    with pytest.raises(Canceled):
        run_download(
            products[:1], s2_world.aoi_4326(), tmp_path, BANDS, credentials=CREDS, service_url=server.url, token_url=server.token_url,
            max_request_px=LIMIT, is_canceled=lambda: time.monotonic() - start > 0.5, max_concurrent=1,
        )
    assert time.monotonic() - start < 2.0
    assert [p.name for p in tmp_path.iterdir()] == []
    server._script.clear()


def test_resume_skips_complete_files_and_refetches_a_corrupted_one(sh, tmp_path):
    server, products, reference = sh
    sh_run(server, products, tmp_path)
    before = len(server.requests_to(PROCESS))
    again = sh_run(server, products, tmp_path)
    assert len(server.requests_to(PROCESS)) == before  # nothing fetched
    assert again.written == [] and len(again.skipped) == 6 and again.requests == 0
    victim = tmp_path / "20220802T101031_S2A_T33TWM.tif"
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    third = sh_run(server, products, tmp_path)
    assert third.written == [victim.name] and len(server.requests_to(PROCESS)) - before == 4
    finished_like_reference(tmp_path, reference)
    (tmp_path / "20210703T102021_S2A_T33TWM_SCL.tif").unlink()  # a missing file is fetched again too
    assert sh_run(server, products, tmp_path).written == ["20210703T102021_S2A_T33TWM_SCL.tif"]
    finished_like_reference(tmp_path, reference)


# --- STAC (HTTP range reads) -----------------------------------------------------------


@pytest.fixture(scope="module")
def stac(tmp_path_factory):
    root = tmp_path_factory.mktemp("stac_src")
    with RangeFileServer(root) as server:
        products = []
        for when, baseline in DATES[1:]:
            _, item = s2_world.make_cog_product(root, when=when, baseline=baseline, asset_base=server.url, bands=("B02", "B04", "B08", "SCL"))
            products.append(product_from_stac_item(item))
        reference = tmp_path_factory.mktemp("stac_reference")
        stac_run(products, reference)
        yield server, products, folder_hashes(reference)


def stac_run(products, folder, sleeps=None, **kw):
    options = {"sleep": sleeps if sleeps is not None else Sleeps(), "rng": random.Random(5), **kw.pop("client_options", {})}
    return run_download(products, s2_world.aoi_4326(), folder, BANDS, client_options=options, **kw)


def band_path(products, band, i=0):
    from urllib.parse import urlsplit

    return urlsplit(products[i].download["assets"][band]).path


@pytest.mark.parametrize(
    "disturb, expect",
    [
        (lambda s, p: s.script(429, path=band_path(p, "B04"), headers={"Retry-After": "2"}), "HTTP 429"),
        (lambda s, p: s.script(500, path=band_path(p, "B08", 1)), "HTTP 500"),
        (lambda s, p: s.fault(band_path(p, "B02"), drop_after=1000, skip=1), "the body ended after 1000 of"),
        (lambda s, p: s.fault(band_path(p, "B02", 1), corrupt=True, skip=1), "could not read B02.tif"),
        (lambda s, p: s.fault(band_path(p, "SCL"), delay_s=1.5), "ReadTimeout"),
    ],
    ids=["429", "500", "dropped", "corrupt-tile", "slow"],
)
def test_stac_reads_survive(stac, tmp_path, disturb, expect):
    server, products, reference = stac
    disturb(server, products)
    sleeps, lines = Sleeps(), []
    stac_run(products, tmp_path, sleeps, log=lines.append, client_options={"timeout": 0.5})
    assert any(expect in line for line in lines), lines
    if expect == "HTTP 429":
        assert sleeps == [2.0]  # standard servers send seconds
    finished_like_reference(tmp_path, reference)


def test_stac_resume_reads_no_band(stac, tmp_path):
    server, products, reference = stac
    stac_run(products, tmp_path)
    server.requests.clear()
    (tmp_path / ".20220802T101031_S2B_T33TWM.staging-0123abcd.tif").write_bytes(b"left by a killed run")
    result = stac_run(products, tmp_path)
    assert server.requests == [] and result.requests == 0 and len(result.skipped) == 4
    finished_like_reference(tmp_path, reference)


# --- the output folder ------------------------------------------------------------------


def test_output_folder_that_cannot_be_used(stac, tmp_path, monkeypatch):
    _, products, _ = stac
    a_file = tmp_path / "taken.txt"
    a_file.write_text("x")
    with pytest.raises(SatPluginError, match="is a file"):
        stac_run(products, a_file)
    with pytest.raises(SatPluginError, match="Cannot create the output folder"):
        stac_run(products, a_file / "sub")
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = __import__("os").access
    monkeypatch.setattr("os.access", lambda p, mode: False if Path(p) == folder else real_access(p, mode))
    with pytest.raises(SatPluginError, match="not writable"):
        stac_run(products, folder)
    assert list(folder.iterdir()) == []


def test_permission_refused_while_writing(stac, tmp_path, monkeypatch):
    _, products, _ = stac

    def refuse(staging, target, resampling):
        raise PermissionError(errno.EACCES, "Permission denied", str(target))

    monkeypatch.setattr(cog_writer, "copy_to_cog", refuse)
    with pytest.raises(SatPluginError, match="Permission denied"):
        stac_run(products, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_full_disk_leaves_no_partial_file_and_a_rerun_completes(stac, tmp_path, monkeypatch):
    _, products, reference = stac
    real_copy = cog_writer.copy_to_cog
    calls = []

    def copy_then_fill_the_disk(staging, target, resampling):
        calls.append(target)
        if len(calls) == 3:  # the third file: half written, then the disk is full
            Path(target).write_bytes(b"II*\x00" + b"\x00" * 5000)
            raise OSError(errno.ENOSPC, "No space left on device")
        real_copy(staging, target, resampling)

    monkeypatch.setattr(cog_writer, "copy_to_cog", copy_then_fill_the_disk)
    with pytest.raises(SatPluginError, match="The disk is full at .*; free some space and run again. Complete files are kept"):
        stac_run(products, tmp_path, max_concurrent=1)
    manifest = assert_only_complete_files(tmp_path)
    assert len(manifest["files"]) == 2
    monkeypatch.setattr(cog_writer, "copy_to_cog", real_copy)
    result = stac_run(products, tmp_path)
    assert len(result.skipped) == 2 and len(result.written) == 2
    finished_like_reference(tmp_path, reference)
