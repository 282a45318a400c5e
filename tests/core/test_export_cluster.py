"""The export on Dask distributed: the same bytes with no cluster, local:1, local:2 and a real scheduler + workers.

The real cluster is a `dask scheduler` and two `dask worker` processes started here on
127.0.0.1 from this environment's own command-line tools; the workers import the plugin
the way the tests do (the `satplugin` link on PYTHONPATH). Chunks are made small so that
one export is dozens of tasks.
"""
import shutil
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from satplugin.qgis_satplugin.core.cluster.identity import differences, engine_identity
from satplugin.qgis_satplugin.core.cluster.scheduler import Scheduler, parse_scheduler
from satplugin.qgis_satplugin.core.cluster.tasks import TaskFailed
from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.export import windows
from satplugin.qgis_satplugin.core.feedback import Feedback

from ..cluster_fixtures import RealCluster, checksums
from .test_export_helpers import export, make_folder, parcel_labels

pytest.importorskip("distributed")
K = 2
PATCH = 16
BANDS = ("B02", "B03", "B04", "B08")
# About two patch columns of 5 dates per chunk: dozens of chunks (tasks) per export.
SMALL_BUDGET = 2 * 2 * 5 * len(BANDS) * PATCH * PATCH * 2


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cluster")
    src, grid, _ = make_folder(tmp, width=160, height=128, n_dates=5, cloud_cover=[0, 30, 0, 10, 0], bands=BANDS)
    return src, parcel_labels(tmp, grid, K, 30, seed=5), tmp


@pytest.fixture()
def small_chunks(monkeypatch):
    monkeypatch.setattr(windows, "CHUNK_BUDGET_BYTES", SMALL_BUDGET)


def _export(source, out, fmt, scheduler=None, feedback=None):
    src, labels, _ = source
    return export(src, out, labels=labels, label_scale=K, patch_size=PATCH, stride=12, format=fmt, max_cloud=20,
                  split_block_size=48, dask_scheduler=scheduler, feedback=feedback)


@pytest.mark.parametrize("fmt", ["npz", "zarr", "geotiff", "deepsatdata"])
def test_every_file_is_the_same_bytes_with_no_cluster_local_1_local_2_and_a_real_cluster(
        source, fmt, tmp_path, small_chunks, real_cluster):
    runs = {"none": None, "local:1": "local:1", "local:2": "local:2", "real": real_cluster.address}
    if fmt in ("geotiff", "deepsatdata"):
        runs.pop("local:1")  # one local cluster is enough to show it for these two
    logs = {}
    for name, scheduler in runs.items():
        lines = []
        result = _export(source, tmp_path / name, fmt, scheduler, Feedback(log=lines.append))
        logs[name] = lines
    assert result.n_samples > 40
    reference = checksums(tmp_path / "none")
    assert len(reference) > result.n_samples  # every sample's own files, the tables, the catalog and the card
    for name in runs:
        assert checksums(tmp_path / name) == reference, name
    assert any("Running on a local Dask cluster of 2 worker processes: 2 workers" in line for line in logs["local:2"])
    assert any(f"Running on the Dask cluster at {real_cluster.address}: 2 workers" in line for line in logs["real"])
    assert not any("Dask" in line for line in logs["none"])


def test_an_export_has_dozens_of_tasks_here(source, small_chunks):
    from satplugin.qgis_satplugin.core.export.context import ExportContext
    from satplugin.qgis_satplugin.core.export.options import ExportOptions
    from satplugin.qgis_satplugin.core.export.plan import plan_patches
    from satplugin.qgis_satplugin.core.export.stream import chunk_works

    src, labels, tmp = source
    ctx = ExportContext.open(ExportOptions(images=str(src), output_folder=str(tmp / "x"), patch_size=PATCH, stride=12),
                             Feedback())
    plan = plan_patches(ctx.series, None, ctx.patches, min_labelled=0, max_cloud=20, min_dates=1, max_dates=None,
                        block_size=48, ratios=ctx.options.ratios(), seed=0, split_polygons=None, feedback=Feedback())
    works = chunk_works(ctx.series, plan, PATCH)
    assert len(works) >= 24
    assert sorted(i for w in works for i in w.patches) == list(range(len(plan)))


def test_a_worker_killed_mid_run_has_its_tasks_rerun_and_the_bytes_stay_the_same(source, tmp_path, small_chunks):
    _export(source, tmp_path / "none", "npz")
    cluster = RealCluster(tmp_path)
    try:
        # Once a third of the writing is done, one worker dies without warning.
        _export(source, tmp_path / "killed", "npz", cluster.address, Feedback(progress=cluster.kill_one_at(0.35)))
    finally:
        cluster.close()
    assert cluster.killed.is_set() and cluster.workers[0].returncode == -signal.SIGKILL
    assert checksums(tmp_path / "killed") == checksums(tmp_path / "none")
    assert not list((tmp_path / "killed").rglob("*.part"))


def test_a_worker_with_another_engine_version_is_named_before_any_work(source, tmp_path, small_chunks):
    preload = tmp_path / "other_version.py"
    preload.write_text("import satplugin.qgis_satplugin.core as engine\nengine.__version__ = '0.0.1'\n")
    cluster = RealCluster(tmp_path, n_workers=1, preload=str(preload))
    try:
        with pytest.raises(SatPluginError) as err:
            _export(source, tmp_path / "out", "npz", cluster.address)
    finally:
        cluster.close()
    message = str(err.value)
    assert message.startswith("The Dask worker tcp://127.0.0.1:")
    assert "satplugin-engine " in message and " here, 0.0.1 there" in message
    assert "pip install satplugin-engine==" in message
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_a_cancel_stops_the_cluster_run_and_leaves_nothing(source, tmp_path, small_chunks, real_cluster):
    canceled = threading.Event()
    started = []

    def progress(fraction):
        if fraction > 0.2 and not started:
            started.append(time.monotonic())
            canceled.set()

    out = tmp_path / "out"
    with pytest.raises(Canceled):
        _export(source, out, "npz", real_cluster.address, Feedback(progress=progress, is_canceled=canceled.is_set))
    assert time.monotonic() - started[0] < 3.0
    assert not out.exists() or not any(out.iterdir())
    assert not [p for p in tmp_path.iterdir() if p.name != "out"]  # no staging folder left beside it


def test_chunks_that_keep_failing_are_named_and_nothing_is_written(source, tmp_path, real_cluster):
    """One date's strip of rows 75..100 is garbage: the planning pass (masks only) passes, its chunks fail."""
    import rasterio

    folder = tmp_path / "files"
    folder.mkdir()
    for path in source[0].glob("*.tif"):
        shutil.copy(path, folder / path.name)
    images = sorted(str(p) for p in folder.glob("*.tif") if not p.stem.endswith("_SCL"))
    with rasterio.open(images[2]) as ds:
        assert ds.block_shapes[0][0] == 25
        offset = int(ds.get_tag_item("BLOCK_OFFSET_0_3", "TIFF", bidx=1))
        size = int(ds.get_tag_item("BLOCK_SIZE_0_3", "TIFF", bidx=1))
    with open(images[2], "r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * size)
    out = tmp_path / "out"
    with pytest.raises(TaskFailed) as err:
        export(tuple(images), out, patch_size=PATCH, stride=12, format="npz", dask_scheduler=real_cluster.address)
    failed = {name for name, _ in err.value.failures}
    # Windows are 16 rows tall at a stride of 12: those starting at rows 60, 72, 84 and 96 read the strip.
    assert {n.split(" (")[1] for n in failed} == {f"image rows {r}..{r + 16}, columns 0..160)" for r in (60, 72, 84, 96)}
    assert str(err.value).startswith(f"4 tasks failed on the Dask cluster: chunk 6 of 10 (image rows 60..76, columns 0..160): "
                                     f"Cannot read {images[2]}")
    assert str(err.value).endswith("or replace the file.")
    assert not out.exists() or not any(out.iterdir())


def test_a_scheduler_is_empty_local_n_or_an_address():
    assert parse_scheduler("") is None and parse_scheduler(None) is None and parse_scheduler("  ") is None
    assert parse_scheduler("local:3") == Scheduler(local_workers=3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == Scheduler(address="tcp://10.0.0.5:8786")
    for bad, words in (("local:0", "asks for no workers"), ("local", "is not empty, local:N"),
                       ("10.0.0.5:8786", "is not empty, local:N"), ("tcp://host", "is not empty, local:N")):
        with pytest.raises(SatPluginError, match=words):
            parse_scheduler(bad)


def test_the_identity_names_each_difference_engine_first():
    mine = engine_identity()
    assert mine["satplugin-engine"] and mine["dask"] and mine["GDAL"]
    theirs = {**mine, "numpy": "0.1", "satplugin-engine": "0.0.1"}
    assert differences(mine, theirs) == [f"satplugin-engine {mine['satplugin-engine']} here, 0.0.1 there",
                                         f"numpy {mine['numpy']} here, 0.1 there"]
    assert differences(mine, dict(mine)) == []


def test_tasks_take_the_gdal_settings_but_no_local_path_and_no_secret(monkeypatch):
    import rasterio
    from satplugin.qgis_satplugin.core.cluster.tasks import gdal_settings

    monkeypatch.setenv("GDAL_HTTP_TIMEOUT", "17")
    monkeypatch.setenv("CPL_VSIL_CURL_CHUNK_SIZE", "1048576")
    monkeypatch.setenv("GDAL_DATA", "/only/here/gdal")
    monkeypatch.setenv("GDAL_HTTP_AUTH_TOKEN", "s3cret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cret")
    monkeypatch.setenv("GDAL_HTTP_USERPWD", "me:s3cret")
    monkeypatch.setenv("GDAL_HTTP_HEADERS", "Authorization: Bearer s3cret")
    monkeypatch.setenv("CPL_TMPDIR", "/only/here/tmp")
    with rasterio.Env(GDAL_CACHEMAX=123456789):
        found = gdal_settings()
    assert found["GDAL_HTTP_TIMEOUT"] == "17" and found["CPL_VSIL_CURL_CHUNK_SIZE"] == "1048576"
    assert found["GDAL_CACHEMAX"] == 123456789
    assert "GDAL_DATA" not in found and "s3cret" not in repr(found) and "/only/here" not in repr(found)


def test_local_workers_start_from_this_process_own_interpreter():
    from satplugin.qgis_satplugin.core.cluster.tasks import own_interpreter

    python = Path(own_interpreter())
    assert python.is_file() and python.parent.parent == Path(sys.prefix)
    assert python.name.startswith("python")


def test_a_worker_keeps_one_open_context_per_thread_and_run_until_released():
    from satplugin.qgis_satplugin.core.cluster import worker_cache

    class Opened:
        def __init__(self, name):
            self.name, self.closed = name, False

        def close(self):
            self.closed = True

    worker_cache.release()
    first = worker_cache.cached("run-a", lambda: Opened("a"))
    assert worker_cache.cached("run-a", lambda: Opened("again")) is first
    other = []
    thread = threading.Thread(target=lambda: other.append(worker_cache.cached("run-a", lambda: Opened("thread"))))
    thread.start()
    thread.join()
    assert other[0] is not first and not first.closed  # another thread opens its own
    second = worker_cache.cached("run-b", lambda: Opened("b"))
    assert first.closed and not second.closed  # a new run closes this thread's old one
    assert worker_cache.release() == 2 and second.closed and other[0].closed


def test_what_killed_workers_leave_half_written_is_recognised(tmp_path):
    from satplugin.qgis_satplugin.core.atomic import _PART_NAME, remove_parts, replaced

    def is_part(name):
        return _PART_NAME.match(name) is not None

    (tmp_path / "train").mkdir()
    leftovers = [tmp_path / "train" / ".r00000_c00000.npz.0123abcd.part.npz", tmp_path / ".index.gpkg.89abcdef.part.gpkg",
                 tmp_path / "train" / ("0.0.0.0.0." + "a" * 32 + ".partial")]
    kept = [tmp_path / "train" / "r00000_c00000.npz", tmp_path / "notes.part", tmp_path / ".hidden.part.txt"]
    for path in leftovers + kept:
        path.write_bytes(b"x")
    assert remove_parts(tmp_path) == 3
    assert not any(p.exists() for p in leftovers) and all(p.exists() for p in kept)
    with replaced(tmp_path / "index.gpkg") as temp:
        assert temp.name.startswith(".index.gpkg.") and temp.suffix == ".gpkg" and is_part(temp.name)
        temp.write_bytes(b"gpkg")
    assert (tmp_path / "index.gpkg").read_bytes() == b"gpkg" and remove_parts(tmp_path) == 0


def test_two_samples_never_share_a_file(tmp_path):
    from satplugin.qgis_satplugin.core.export.runner import _check_distinct_paths

    _check_distinct_paths([{"path": "train/a.pickle", "sample_id": "r0_c0"}, {"path": "train/b.pickle", "sample_id": "r0_c2"}])
    with pytest.raises(SatPluginError, match="The samples r0_c0 and r0_c2 would both be train/a.pickle"):
        _check_distinct_paths([{"path": "train/a.pickle", "sample_id": "r0_c0"},
                               {"path": "train/a.pickle", "sample_id": "r0_c2"}])
