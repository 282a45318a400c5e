"""Export patches against a hostile folder: the user's files, bad manifests, a full disk, two runs, kills.

Every case runs through the algorithm (``processing.run`` or a real ``qgis_process``)
and checks what the user sees (the exit status or exception and its sentence) and the
sha256 of every file that must not change.
"""
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest
from qgis.core import QgsProcessingException

from satplugin.qgis_satplugin.core.image_series import manifest as manifest_module
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import ExportOptions
from satplugin.qgis_satplugin.core.export import run as run_export  # tests here name a process 'run'
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder
from satplugin.qgis_satplugin.core.grid import PixelGrid
from tests.adversarial.conftest import fill_disk, sha256_tree
from tests.conftest import ROOT, run_qgis_process

START = datetime(2023, 4, 1, 10, 15, 59, tzinfo=timezone.utc)


def make_series(folder: Path, width=96, height=64, n_dates=3) -> Path:
    grid = PixelGrid.square("EPSG:32633", 499980.0, 5000040.0, 10.0, width, height)
    return write_download_folder(folder, grid, date_series(START, n_dates, every_days=10))


@pytest.fixture
def series(tmp_path):
    return make_series(tmp_path / "series")


@pytest.fixture(scope="module")
def big_series(tmp_path_factory):
    """A download folder an export takes several seconds over (for the kill tests)."""
    return make_series(tmp_path_factory.mktemp("big") / "series", 1024, 1024, 8)


def export(params):
    import processing

    return processing.run("satplugin:exportpatches", {"PATCH_SIZE": 16, "FORMAT": 0, **params})


def refused(params, match):
    with pytest.raises(QgsProcessingException, match=match) as info:
        export(params)
    return str(info.value)


def leftovers(parent: Path) -> list:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(".") and (".partial-" in p.name or ".old-" in p.name))


def qgis_process_args(images, out, patch_size=16):
    return ["run", "satplugin:exportpatches", "--", f"IMAGES={images}", f"PATCH_SIZE={patch_size}", "FORMAT=0",
            f"OUTPUT_FOLDER={out}"]


# --- item 2: the user's files in the output folder -----------------------------------------


def test_a_rerun_never_deletes_the_users_files(satplugin_provider, series, tmp_path):
    out = tmp_path / "dataset"
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out)})
    (out / "thesis.txt").write_text("three years of work")
    (out / "checkpoints").mkdir()
    (out / "checkpoints" / "epoch10.pt").write_bytes(b"\x80weights")
    before = sha256_tree(out)
    message = refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32},
                      "which the export there did not write; move it out or choose another folder")
    assert "checkpoints/ and 2 more" in message and "Nothing was changed" in message
    assert sha256_tree(out) == before
    assert leftovers(tmp_path) == []

    # The real qgis_process: a non-zero exit and the same sentence, the folder untouched.
    proc, _ = run_qgis_process(*qgis_process_args(series, out, 32), expect_success=False)
    assert proc.returncode != 0
    assert "which the export there did not write" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sha256_tree(out) == before


def test_a_rerun_replaces_exactly_its_own_files(satplugin_provider, series, tmp_path):
    out = tmp_path / "dataset"
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32})
    card = json.loads((out / "dataset.json").read_text())
    assert card["contents"] == sorted(card["contents"])
    assert {"dataset.json", "dataset.md", "index.gpkg", "samples.csv", "train/"} <= set(card["contents"])
    assert sorted(sha256_tree(out)) == sorted(c for c in card["contents"] if not c.endswith("/"))
    first = sha256_tree(out)
    # What QGIS writes beside a file it opened describes that file: it goes with it.
    (out / "index.gpkg.aux.xml").write_text("<PAMDataset/>")
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32})
    assert sha256_tree(out) == first  # the same export: the same bytes
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 16})
    card = json.loads((out / "dataset.json").read_text())
    assert card["patch_size"] == 16
    assert sorted(sha256_tree(out)) == sorted(c for c in card["contents"] if not c.endswith("/"))
    assert leftovers(tmp_path) == []


def test_an_export_that_recorded_no_file_list_is_refused(satplugin_provider, series, tmp_path):
    out = tmp_path / "dataset"
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out)})
    card = json.loads((out / "dataset.json").read_text())
    del card["contents"]  # what an export of an earlier version wrote
    (out / "dataset.json").write_text(json.dumps(card))
    before = sha256_tree(out)
    refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out)},
            "exported by an older version, which did not record its files.*delete or move that folder")
    assert sha256_tree(out) == before


def test_a_file_saved_while_the_export_runs_is_kept(series, tmp_path):
    out = tmp_path / "dataset"
    run_export(ExportOptions(series, out, patch_size=32))
    before = sha256_tree(out)

    def save_notes(fraction):
        if fraction > 0.5 and not (out / "notes.txt").exists():
            (out / "notes.txt").write_text("written during the export")

    with pytest.raises(SatPluginError, match="holds notes.txt, which the export there did not write"):
        run_export(ExportOptions(series, out, patch_size=16), Feedback(progress=save_notes))
    assert sha256_tree(out) == {**before, "notes.txt": sha256_tree(out / "notes.txt")["notes.txt"]}
    assert leftovers(tmp_path) == []


def test_a_run_killed_between_the_two_renames_loses_nothing(series, tmp_path):
    """Killed after moving the previous export aside and before renaming the new one in: the
    next run puts the previous export back (then replaces it only if it succeeds)."""
    out = tmp_path / "dataset"
    run_export(ExportOptions(series, out, patch_size=32))
    before = sha256_tree(out)
    out.rename(tmp_path / ".dataset.old-0123abcd")
    (tmp_path / ".dataset.partial-89abcdef").mkdir()  # the complete new export, never renamed
    with pytest.raises(SatPluginError, match="is larger than the images"):
        run_export(ExportOptions(series, out, patch_size=128))
    assert sha256_tree(out) == before and leftovers(tmp_path) == []


# --- item 6: an output on an input ----------------------------------------------------------


@pytest.mark.parametrize("where", ["the folder", "inside it", "around it"])
def test_output_on_the_download_folder_is_refused(satplugin_provider, tmp_path, where):
    series = make_series(tmp_path / "work" / "series")
    out = {"the folder": series, "inside it": series / "dataset", "around it": tmp_path / "work"}[where]
    before = sha256_tree(tmp_path / "work")
    refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out)},
            r"OUTPUT_FOLDER \(.*\) would overwrite the input IMAGES; choose another output path. Nothing was changed.")
    assert sha256_tree(tmp_path / "work") == before
    assert leftovers(out.parent) == []


# --- items 5 and 10: a download folder that was edited or damaged -----------------------


def _edit(manifest: dict, series: Path, case: str):
    first = manifest["files"][0]
    if case == "a list":
        return []
    if case == "an unknown CRS":
        manifest["grid"]["crs"] = "EPSG:999999"
    elif case == "files is a number":
        manifest["files"] = 5
    elif case == "complete is text":
        manifest["complete"] = "false"
    elif case == "an absolute path":
        first["path"] = str(series / first["path"])
    elif case == "a path out of the folder":
        first["path"] = "../elsewhere/" + first["path"]
    elif case == "a GDAL path":
        first["path"] = "/vsicurl/https://example.invalid/" + first["path"]
    elif case == "a link out of the folder":
        outside = series.parent / "outside.tif"
        outside.write_bytes((series / first["path"]).read_bytes())
        (series / "link.tif").symlink_to(outside)
        first["path"] = "link.tif"
    return manifest


MANIFEST_CASES = {
    "a list": "holds a JSON list, not the object a download writes",
    "an unknown CRS": "gives the grid an unknown CRS 'EPSG:999999'",
    "files is a number": '"files": 5, not a list of file entries',
    "complete is text": '"complete": "false", which is neither true nor false',
    "an absolute path": "which is not a plain path inside the download folder",
    "a path out of the folder": "which is not a plain path inside the download folder",
    "a GDAL path": "which is not a plain path inside the download folder",
    "a link out of the folder": "lists the file 'link.tif', which leads outside the download folder",
}


@pytest.mark.parametrize("case", list(MANIFEST_CASES))
def test_an_edited_manifest_is_one_sentence(satplugin_provider, series, tmp_path, case):
    path = series / "manifest.json"
    path.write_text(json.dumps(_edit(json.loads(path.read_text()), series, case)))
    before = sha256_tree(series)
    message = refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(tmp_path / "dataset")},
                      MANIFEST_CASES[case].replace("(", r"\(").replace(")", r"\)"))
    assert message.count(". ") <= 1 and message.rstrip().endswith("restore the manifest it wrote.")
    assert sha256_tree(series) == before
    assert not (tmp_path / "dataset").exists() or not any((tmp_path / "dataset").iterdir())


def test_a_truncated_image_is_named_before_any_work(satplugin_provider, series, tmp_path):
    image = sorted(series.glob("*T33TVM.tif"))[1]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])
    refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(tmp_path / "dataset")},
            rf"{image.name} is {len(data) // 2} bytes but the manifest lists {len(data)}: it is truncated or was "
            r"changed; run the download again into this folder \(it fetches damaged files again\)\.")
    # The same size, other bytes: the checksum says so.
    image.write_bytes(data[:100] + bytes(b ^ 0x55 for b in data[100:200]) + data[200:])
    refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(tmp_path / "dataset")},
            f"{image.name} does not match the SHA-256 in the manifest: the file is damaged")
    assert not (tmp_path / "dataset").exists() or not any((tmp_path / "dataset").iterdir())


def test_a_damaged_image_past_the_checksum_budget_is_named_when_read(satplugin_provider, series, tmp_path, monkeypatch):
    monkeypatch.setattr(manifest_module, "CHECKSUM_BUDGET_BYTES", 0)  # as for a folder of many GB
    image = sorted(series.glob("*T33TVM.tif"))[1]
    data = bytearray(image.read_bytes())
    for i in range(len(data) // 2, len(data) - 2000):  # compressed pixels: they no longer decode
        data[i] ^= 0xA5
    image.write_bytes(bytes(data))
    message = refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(tmp_path / "dataset")},
                      f"Cannot read {image}: it is damaged or truncated")
    assert message.rstrip().endswith("run the download again into its folder (it fetches damaged files again), "
                                     "or replace the file.")
    assert leftovers(tmp_path) == []


# --- a full disk ---------------------------------------------------------------------------


def test_a_full_disk_keeps_the_previous_export(satplugin_provider, series, small_fs):
    fs = small_fs("8M")
    out = fs / "dataset"
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32})
    before = sha256_tree(out)
    filler = fill_disk(fs, keep_bytes=64 * 1024)
    message = refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 16},
                      f"The disk is full at {fs}; free some space and run again.")
    assert message.endswith("No dataset was written; a previous one in that folder is unchanged.")
    assert sha256_tree(out) == before
    assert sorted(p.name for p in fs.iterdir()) == ["dataset", filler.name]
    filler.unlink()
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 16})
    assert json.loads((out / "dataset.json").read_text())["patch_size"] == 16


# --- item 11: two runs into one folder -------------------------------------------------------


def _lock_holder(path: Path) -> subprocess.Popen:
    """Another process holding the export lock on ``path`` (as a running export does)."""
    code = ("import sys, time; from satplugin.qgis_satplugin.core.export.staging import export_lock; "
            "lock = export_lock(sys.argv[1]).__enter__(); print('locked', flush=True); time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(sys.modules["satplugin"].__file__).parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "locked"
    return child


def test_a_second_export_into_a_locked_folder_refuses_at_once(satplugin_provider, series, tmp_path):
    out = tmp_path / "dataset"
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out)})
    before = sha256_tree(out)
    holder = _lock_holder(out)
    try:
        start = time.monotonic()
        refused({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32},
                rf"Another export is writing to {out} \(process {holder.pid}\); wait for it to finish or choose "
                "another output.")
        assert time.monotonic() - start < 2.0
        assert sha256_tree(out) == before
    finally:
        holder.kill()
        holder.wait()
    export({"IMAGES": [str(series)], "OUTPUT_FOLDER": str(out), "PATCH_SIZE": 32})  # free again


def _wait_for_staging(parent: Path, name: str, proc, min_files=20, timeout=40.0) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for staging in parent.glob(f".{name}.partial-*"):
            if sum(1 for _ in staging.rglob("*.npz")) >= min_files:
                return staging
        time.sleep(0.05)
    raise AssertionError("the export never started writing")


def _start_export(images, out) -> subprocess.Popen:
    return subprocess.Popen([str(ROOT / "scripts" / "qgis-process"), *qgis_process_args(images, out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_two_qgis_process_exports_into_one_folder(big_series, tmp_path):
    out, reference = tmp_path / "dataset", tmp_path / "reference"
    first = _start_export(big_series, out)
    _wait_for_staging(tmp_path, "dataset", first)
    second, _ = run_qgis_process(*qgis_process_args(big_series, out, 32), expect_success=False)
    assert second.returncode != 0
    assert f"Another export is writing to {out} (process {first.pid})" in second.stdout + second.stderr
    assert first.wait(timeout=120) == 0, first.stdout.read()
    run_export(ExportOptions(big_series, reference, patch_size=16))  # undisturbed
    assert sha256_tree(out) == sha256_tree(reference)
    assert leftovers(tmp_path) == []


# --- item 12: SIGTERM and SIGKILL -------------------------------------------------------------


@pytest.mark.slow
def test_sigterm_cleans_up_like_a_cancel_and_sigkill_leftovers_go_on_the_rerun(big_series, series, tmp_path):
    out = tmp_path / "dataset"
    run_export(ExportOptions(series, out, patch_size=32))  # the previous export
    before = sha256_tree(out)

    run = _start_export(big_series, out)
    _wait_for_staging(tmp_path, "dataset", run)
    run.send_signal(signal.SIGTERM)
    output = run.communicate(timeout=30)[0]
    assert run.returncode != 0
    assert "Canceled" in output and "Traceback" not in output
    assert leftovers(tmp_path) == []
    assert sha256_tree(out) == before

    run = _start_export(big_series, out)
    staging = _wait_for_staging(tmp_path, "dataset", run)
    run.kill()
    run.wait()
    assert staging.exists()  # nothing can clean up after a SIGKILL...
    run_export(ExportOptions(series, out, patch_size=16))
    assert leftovers(tmp_path) == []  # ...but the next run does
    assert json.loads((out / "dataset.json").read_text())["patch_size"] == 16
