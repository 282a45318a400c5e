"""Super-resolve against hostile paths: an output on an input or a folder, damaged inputs, a full disk, two runs.

Through ``processing.run`` (and a real ``qgis_process`` where the exit status matters),
checking the message and the sha256 of every file that must not change.
"""
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException

from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder
from satplugin.qgis_satplugin.core.grid import PixelGrid
from tests.adversarial.conftest import fill_disk, sha256_tree
from tests.conftest import run_qgis_process
from tests.superres_fixtures import dated_series, make_model

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture
def model(tmp_path):
    (tmp_path / "models").mkdir()
    return make_model(tmp_path / "models" / "mean.onnx", combine="mean")


@pytest.fixture
def revisits(tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "revisits").mkdir()
    return dated_series(tmp_path / "revisits", [rng.integers(200, 3000, (4, 40, 52)) for _ in range(2)])


@pytest.fixture
def series(tmp_path):
    grid = PixelGrid.square("EPSG:32633", 499980.0, 5000040.0, 10.0, 64, 48)
    return write_download_folder(tmp_path / "series", grid,
                                 date_series(datetime(2023, 5, 1, 10, 30, tzinfo=timezone.utc), 2, 10))


def sr(params):
    import processing

    return processing.run("satplugin:superresolve", {"TILE_SIZE": 32, "OVERLAP": 4, "MAX_CLOUD": 100, **params})


def refused(params, match):
    with pytest.raises(QgsProcessingException, match=match) as info:
        sr(params)
    return str(info.value)


def no_partials(folder: Path) -> bool:
    return not [p for p in Path(folder).rglob("*") if ".partial-" in p.name]


# --- item 6: an output on an input ----------------------------------------------------------


def test_output_equal_to_an_input_is_refused_before_any_work(satplugin_provider, tmp_path, revisits, model):
    before = sha256_tree(tmp_path / "revisits")
    message = refused({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(revisits[1])},
                      r"OUTPUT \(.*\) would overwrite the input INPUT \(S2_20230511.tif\); choose another output path.")
    assert message.endswith("Nothing was changed.")
    assert sha256_tree(tmp_path / "revisits") == before and no_partials(tmp_path)

    proc, _ = run_qgis_process("run", "satplugin:superresolve", "--", *[f"INPUT={p}" for p in revisits],
                               f"MODEL={model}", f"OUTPUT={revisits[0]}", expect_success=False)
    assert proc.returncode != 0
    assert "would overwrite the input INPUT (S2_20230501.tif)" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sha256_tree(tmp_path / "revisits") == before and no_partials(tmp_path)


def test_output_on_the_cloud_mask_beside_an_input_is_refused(satplugin_provider, tmp_path, model):
    """The mask is an input the user did not name: S2_20230511_SCL.tif pairs with S2_20230511.tif."""
    rng = np.random.default_rng(6)
    (tmp_path / "masked").mkdir()
    scls = [np.full((40, 52), 4, np.uint8) for _ in range(2)]
    images = dated_series(tmp_path / "masked", [rng.integers(200, 3000, (4, 40, 52)) for _ in range(2)], scls=scls)
    mask = images[1].with_name(images[1].stem + "_SCL.tif")
    assert mask.is_file()
    before = sha256_tree(tmp_path / "masked")
    message = refused({"INPUT": [str(p) for p in images], "MODEL": str(model), "OUTPUT": str(mask)},
                      r"OUTPUT \(.*\) would overwrite the input INPUT's cloud mask \(S2_20230511_SCL.tif\); "
                      r"choose another output path. Nothing was changed.")
    assert message.count("would overwrite") == 1
    assert sha256_tree(tmp_path / "masked") == before and no_partials(tmp_path)


def test_output_inside_the_download_folder_is_refused(satplugin_provider, tmp_path, series, model):
    before = sha256_tree(series)
    refused({"INPUT": [str(series)], "MODEL": str(model), "OUTPUT": str(series / "sr.tif")},
            "would overwrite the input INPUT; choose another output path")
    assert sha256_tree(series) == before


# --- item 10: an output that is a folder ------------------------------------------------------


def test_output_that_is_an_existing_folder(satplugin_provider, tmp_path, revisits, model):
    folder = tmp_path / "sr.tif"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    refused({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(folder)},
            rf"The output {folder} is an existing folder; give a file name.")
    proc, _ = run_qgis_process("run", "satplugin:superresolve", "--", *[f"INPUT={p}" for p in revisits],
                               f"MODEL={model}", f"OUTPUT={folder}", expect_success=False)
    assert proc.returncode != 0 and "is an existing folder; give a file name" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert sha256_tree(folder) == {"keep.txt": sha256_tree(folder / "keep.txt")["keep.txt"]}
    assert no_partials(tmp_path)


# --- items 5 and 10: a damaged or edited download folder --------------------------------------


def test_a_truncated_image_in_the_download_folder(satplugin_provider, tmp_path, series, model):
    image = sorted(series.glob("*T33TVM.tif"))[0]
    data = image.read_bytes()
    image.write_bytes(data[: len(data) - 100])
    refused({"INPUT": [str(series)], "MODEL": str(model), "OUTPUT": str(tmp_path / "sr.tif")},
            rf"{image.name} is {len(data) - 100} bytes but the manifest lists {len(data)}: it is truncated")
    image.write_bytes(data[:-100] + bytes(100))
    refused({"INPUT": [str(series)], "MODEL": str(model), "OUTPUT": str(tmp_path / "sr.tif")},
            f"{image.name} does not match the SHA-256 in the manifest")
    assert not (tmp_path / "sr.tif").exists() and no_partials(tmp_path)


@pytest.mark.parametrize("edit, match", [
    (lambda m: [m], "holds a JSON list, not the object a download writes"),
    (lambda m: {**m, "complete": "false"}, '"complete": "false", which is neither true nor false'),
    (lambda m: {**m, "files": [{**m["files"][0], "path": "/etc/passwd"}]}, "'/etc/passwd', which is not a plain path"),
])
def test_an_edited_manifest(satplugin_provider, tmp_path, series, model, edit, match):
    path = series / "manifest.json"
    path.write_text(json.dumps(edit(json.loads(path.read_text()))))
    before = sha256_tree(series)
    refused({"INPUT": [str(series)], "MODEL": str(model), "OUTPUT": str(tmp_path / "sr.tif")}, match)
    assert sha256_tree(series) == before and not (tmp_path / "sr.tif").exists()


# --- a full disk ---------------------------------------------------------------------------------


def test_a_full_disk_keeps_the_previous_output(satplugin_provider, tmp_path, revisits, model, small_fs):
    fs = small_fs("4M")
    out = fs / "sr.tif"
    sr({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(out)})
    before = sha256_tree(out)
    filler = fill_disk(fs, keep_bytes=16 * 1024)
    message = refused({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(out)},
                      f"The disk is full at {fs}; free some space and run again.")
    assert message.endswith("No output was written; a previous file of that name is unchanged.")
    assert sha256_tree(out) == before
    assert sorted(p.name for p in fs.iterdir()) == sorted([filler.name, "sr.tif"])


# --- two runs at once --------------------------------------------------------------------------


def test_a_second_run_into_a_locked_output_refuses(satplugin_provider, tmp_path, revisits, model):
    out = tmp_path / "sr.tif"
    sr({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(out)})
    before = sha256_tree(out)
    code = ("import sys, time; from satplugin.qgis_satplugin.core.locks import OutputLock; "
            "lock = OutputLock([sys.argv[1]], 'super-resolution').__enter__(); print('locked', flush=True); "
            "time.sleep(60)")
    env = {**os.environ, "PYTHONPATH": str(Path(sys.modules["satplugin"].__file__).parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        start = time.monotonic()
        refused({"INPUT": [str(p) for p in revisits], "MODEL": str(model), "OUTPUT": str(out)},
                rf"Another super-resolution is writing to {out} \(process {holder.pid}\)")
        assert time.monotonic() - start < 5
    finally:
        holder.kill()
        holder.wait()
    assert sha256_tree(out) == before and no_partials(tmp_path)


def test_a_disk_that_fills_while_writing_leaves_nothing_and_releases_the_output(small_fs):
    # The write fails, and so does GDAL's close of the half-written file: the close's own error
    # must not hide the full disk, and the temp file and the output's lock must go.
    from satplugin.qgis_satplugin.core.errors import SatPluginError
    from satplugin.qgis_satplugin.core.grid import PixelGrid
    from satplugin.qgis_satplugin.core.superres.output_raster import OutputRaster

    fs = small_fs("2M")
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 5.0, 1024, 1024)
    noise = np.random.default_rng(0).random((4, 1024, 1024), dtype=np.float32)  # incompressible
    raster = OutputRaster(fs / "sr.tif", grid, 4, "float32", float("nan"))
    with pytest.raises(SatPluginError, match=f"^The disk is full at {fs}; free some space and run again."):
        try:  # as the super-resolution run drives its writer
            for row in range(0, 1024, 256):
                raster.append(noise[:, row:row + 256])
            raster.finish(descriptions=["B02", "B03", "B04", "B08"], units=["reflectance"] * 4, tags={},
                          band_tags=[{}] * 4)
        except BaseException as exc:
            if not raster.finished:
                raster.abort(exc)
            raise
    assert list(fs.iterdir()) == []
    again = OutputRaster(fs / "sr.tif", PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 5.0, 64, 64), 1,
                         "float32", float("nan"))  # not "another super-resolution is writing"
    again.append(np.zeros((1, 64, 64), dtype=np.float32))
    assert again.finish(descriptions=["B02"], units=["reflectance"], tags={}, band_tags=[{}]) == fs / "sr.tif"
