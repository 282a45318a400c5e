"""Download products against hostile sizes and folders: huge grids, a full disk, two runs, kills.

Through ``processing.run`` and real ``qgis_process`` runs against a slow loopback file
server (so that a run lasts long enough to be disturbed), checking the exit status or
message and the sha256 of every file that must stay as it was.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.grid import memory_budget_bytes
from satplugin.qgis_satplugin.core.search.footprints_gpkg import write_footprints_gpkg
from satplugin.qgis_satplugin.core.search.stac import product_from_stac_item
from tests.adversarial.conftest import fill_disk, sha256_tree
from tests.conftest import ROOT, run_qgis_process
from tests.qgis.conftest import AOI, library, products_layer  # noqa: F401 (fixtures)
from tests.servers import s2_world
from tests.servers.download_checks import assert_only_complete_files
from tests.servers.files import RangeFileServer
from satplugin.tests.fixtures.step_runs import run_download

UTC = timezone.utc
DATES = [datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC), datetime(2023, 7, 2, 10, 15, 59, tzinfo=UTC)]


def download(params):
    import processing

    return processing.run("satplugin:downloadproducts", {"BANDS": [0], **params})


def hidden(folder: Path) -> list:
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


# --- item 7: grids too large to hold ----------------------------------------------------------


def test_a_pixel_size_far_too_small_is_refused_before_anything(slow, tmp_path):
    server, products = slow[0], slow[3]
    out = tmp_path / "series"
    before = len(server.requests)
    with pytest.raises(SatPluginError, match=r"The grid would be \d+ x \d+ pixels .* use a larger PIXEL_SIZE or a "
                                             "smaller extent"):
        run_download(products, s2_world.aoi_4326(), out, ["B02"], pixel_size=0.0001)
    assert not out.exists() and len(server.requests) == before


def test_an_area_too_large_for_one_raster_is_refused(satplugin_provider, products_layer, tmp_path):  # noqa: F811
    out = tmp_path / "series"
    with pytest.raises(QgsProcessingException, match=r"The grid would be \d+ x \d+ pixels .*use a larger PIXEL_SIZE"):
        download({"PRODUCTS": products_layer, "AOI": "10.0,16.0,44.0,48.0 [EPSG:4326]", "PIXEL_SIZE": 0.5,
                  "OUTPUT_FOLDER": str(out)})
    assert not out.exists() or not any(out.iterdir())


def test_a_grid_that_fits_but_not_in_memory_is_refused_with_its_size(satplugin_provider, products_layer,  # noqa: F811
                                                                      tmp_path):
    out = tmp_path / "series"
    # About 155 x 220 km at 2 m: under the pixel limit, but four bands in flight need hundreds of GiB.
    with pytest.raises(QgsProcessingException) as info:
        download({"PRODUCTS": products_layer, "AOI": "13.0,15.0,45.0,47.0 [EPSG:4326]", "PIXEL_SIZE": 2.0,
                  "OUTPUT_FOLDER": str(out)})
    message = str(info.value)
    assert message.startswith("Downloading onto a ") and "px grid (2 m pixels) with 4 parallel requests needs about" in message
    needed = float(message.split("needs about ")[1].split(" GiB")[0])
    assert needed > memory_budget_bytes() / 2**30
    assert message.endswith("use a larger PIXEL_SIZE or a smaller area, or fewer parallel requests (MAX_CONCURRENT).")
    assert not out.exists() or not any(out.iterdir())


# --- a full disk -------------------------------------------------------------------------------


def test_a_full_disk_is_the_promised_sentence_and_keeps_what_was_there(satplugin_provider, products_layer,  # noqa: F811
                                                                        tmp_path, small_fs):
    fs = small_fs("4M")
    out = fs / "series"
    download({"PRODUCTS": products_layer, "AOI": AOI, "OUTPUT_FOLDER": str(out), "PIXEL_SIZE": 20})
    before = sha256_tree(out)
    filler = fill_disk(fs, keep_bytes=8 * 1024)
    with pytest.raises(QgsProcessingException, match=rf"The disk is full at {out}; free some space and run again. "
                                                      "Complete files are kept, and a rerun resumes from them."):
        download({"PRODUCTS": products_layer, "AOI": AOI, "OUTPUT_FOLDER": str(out), "PIXEL_SIZE": 10})
    assert sha256_tree(out) == before and hidden(out) == []
    filler.unlink()
    result = download({"PRODUCTS": products_layer, "AOI": AOI, "OUTPUT_FOLDER": str(out), "PIXEL_SIZE": 10})
    assert result["FILES_WRITTEN"] == 6
    assert_only_complete_files(out)


# --- items 11 and 12: two runs, SIGTERM, SIGKILL ------------------------------------------------


class SlowFiles(RangeFileServer):
    """Every answer takes ``delay_s``, and waits while ``gate`` is closed: a download from it
    lasts as long as a test needs to disturb it."""

    delay_s = 0.0

    def __init__(self, root):
        super().__init__(root)
        self.gate = threading.Event()
        self.gate.set()

    def handle(self, req):
        self.gate.wait(timeout=30)
        time.sleep(self.delay_s)
        return super().handle(req)


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    root = tmp_path_factory.mktemp("cogs")
    with SlowFiles(root) as server:
        products = [product_from_stac_item(s2_world.make_cog_product(root, when=when, baseline="05.09",
                                                                     asset_base=server.url)[1]) for when in DATES]
        gpkg = tmp_path_factory.mktemp("products") / "products.gpkg"
        write_footprints_gpkg(products, gpkg)
        reference = tmp_path_factory.mktemp("reference") / "series"
        run_download(products, s2_world.aoi_4326(), reference, ["B02", "B03", "B04", "B08"])
        yield server, gpkg, sha256_tree(reference), products


def _aoi() -> str:
    x0, y0, x1, y1 = s2_world.aoi_4326().bounds
    return f"{x0},{x1},{y0},{y1} [EPSG:4326]"


def _args(gpkg, out):
    return ["run", "satplugin:downloadproducts", "--", f"PRODUCTS={gpkg}", f"AOI={_aoi()}", "BANDS=0",
            f"OUTPUT_FOLDER={out}"]


def _start(gpkg, out) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / "scripts" / "qgis-process"), *_args(gpkg, out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_staging(folder: Path, proc, timeout=30.0) -> list:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        staged = list(folder.glob(".*.staging-*.tif")) if folder.is_dir() else []
        if staged:
            return staged
        time.sleep(0.02)
    raise AssertionError("the download never started writing")


def test_a_second_download_into_a_locked_folder_refuses(satplugin_provider, products_layer, tmp_path):  # noqa: F811
    out = tmp_path / "series"
    download({"PRODUCTS": products_layer, "AOI": AOI, "OUTPUT_FOLDER": str(out)})
    before = sha256_tree(out)
    code = ("import sys, time; from satplugin.qgis_satplugin.core.locks import OutputLock; "
            "lock = OutputLock([sys.argv[1]], 'download').__enter__(); print('locked', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(Path(sys.modules["satplugin"].__file__).parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(QgsProcessingException, match=rf"Another download is writing to {out} \(process "
                                                          rf"{holder.pid}\); wait for it to finish"):
            download({"PRODUCTS": products_layer, "AOI": AOI, "OUTPUT_FOLDER": str(out), "PIXEL_SIZE": 20})
    finally:
        holder.kill()
        holder.wait()
    assert sha256_tree(out) == before


@pytest.mark.slow
def test_two_qgis_process_downloads_into_one_folder(slow, tmp_path):
    server, gpkg, reference, _ = slow
    out = tmp_path / "series"
    server.gate.clear()  # the first run waits on the server until the second has tried
    try:
        first = _start(gpkg, out)
        _wait_for_staging(out, first)
        second, _ = run_qgis_process(*_args(gpkg, out), expect_success=False)
        assert second.returncode != 0
        assert f"Another download is writing to {out} (process {first.pid})" in second.stdout + second.stderr
        assert "Traceback" not in second.stdout + second.stderr
    finally:
        server.gate.set()
    assert first.wait(timeout=120) == 0, first.stdout.read()
    assert sha256_tree(out) == reference  # the first run, undisturbed by the second
    assert hidden(out) == []


@pytest.mark.slow
def test_sigterm_cleans_up_and_sigkill_leftovers_go_on_the_rerun(slow, tmp_path):
    server, gpkg, reference, products = slow
    out = tmp_path / "series"
    bands = ["B02", "B03", "B04", "B08"]
    run_download(products[:1], s2_world.aoi_4326(), out, bands)  # the previous output: the first date
    before = sha256_tree(out)
    server.delay_s = 0.15
    try:
        run = _start(gpkg, out)  # both dates: the second is fetched
        _wait_for_staging(out, run)
        run.send_signal(signal.SIGTERM)
        output = run.communicate(timeout=30)[0]
        assert run.returncode != 0
        assert "Canceled" in output and "Traceback" not in output
        assert hidden(out) == []
        assert sha256_tree(out) == before

        run = _start(gpkg, out)
        _wait_for_staging(out, run)
        run.kill()
        run.wait()
        assert any(".staging-" in name for name in hidden(out))  # a SIGKILL cannot be cleaned up after...
    finally:
        server.delay_s = 0.0
    run_download(products, s2_world.aoi_4326(), out, bands)
    assert hidden(out) == []  # ...the next run removes it
    assert sha256_tree(out) == reference
    assert json.loads((out / "manifest.json").read_text())["complete"] is True
