"""The engine's command line: a step run in a child process from its job spec.

``python -m <core> run <step> job.json`` streams progress and log lines as JSON, ends with the
result or one sentence, and a SIGTERM cancels it without leaving an output behind. The child
is a real process; the parent replays its lines into a Feedback as the plugin will.
"""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import shapely
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback, replay_event
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths
from satplugin.qgis_satplugin.core.ground_truth import run as run_ground_truth
from satplugin.qgis_satplugin.core.steps import STEPS, step

from tests.plugin_link import link_plugin_package

CORE = "satplugin.qgis_satplugin.core"


def engine(*args, **popen):
    env = {**os.environ, "PYTHONPATH": str(link_plugin_package())}
    return subprocess.Popen([sys.executable, "-m", CORE, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, **popen)


def job_for(folder, grid, n=40, strip_rows=1024):
    boxes = [shapely.box(grid.x_min + 37.0 * i, grid.y_max - 25.0 * (i + 1) - 300, grid.x_min + 37.0 * i + 290,
                         grid.y_max - 25.0 * i) for i in range(n)]
    outputs = OutputPaths(class_raster=str(folder / "class.tif"), id_raster=str(folder / "id.tif"),
                          coverage_raster=str(folder / "coverage.tif"), class_table=str(folder / "classes.csv"))
    return GroundTruthOptions(polygons=tuple(shapely.to_wkb(boxes, hex=True).tolist()),
                              class_values=tuple(1 + i % 4 for i in range(n)), source_crs=grid.crs, grid=grid,
                              outputs=outputs, min_coverage=0.3, strip_rows=strip_rows)


def test_every_step_is_named_once():
    assert sorted(STEPS) == ["build_dataset", "download", "export", "ground_truth", "search", "superres"]
    for name in STEPS:
        options_class, run = step(name)
        assert options_class.__name__.endswith("Options") and run.__name__ == "run"
    with pytest.raises(SatPluginError, match="There is no step 'rasterize'"):
        step("rasterize")


def test_the_export_step_takes_the_sharpener_from_superres_without_loading_it_until_asked():
    """No step imports another: the steps table hands the export its sharpener, imported only when called."""
    code = ("import sys; from satplugin.qgis_satplugin.core.steps import step; options, run = step('export'); "
            "import inspect; print(run.__name__, inspect.signature(run.__wrapped__).parameters['sharpener'].kind.name, "
            "any('core.superres' in m for m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(link_plugin_package())}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["run", "KEYWORD_ONLY", "False"]


def test_a_step_runs_in_a_child_and_streams_its_feedback(tmp_path):
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 10.0, 200, 300)
    (tmp_path / "child").mkdir()
    (tmp_path / "here").mkdir()
    options = job_for(tmp_path / "child", grid, strip_rows=128)
    job = tmp_path / "job.json"
    job.write_text(options.to_json())
    child = engine("run", "ground_truth", job)
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    seen = {"progress": [], "log": []}
    parent = Feedback(progress=seen["progress"].append, log=seen["log"].append)
    lines = out.splitlines()
    assert all(replay_event(line, parent) for line in lines[:-1])
    assert seen["progress"] == pytest.approx([1 / 3, 2 / 3, 1.0])  # one report per strip of 128 rows
    result = json.loads(lines[-1])["result"]

    here = run_ground_truth(job_for(tmp_path / "here", grid, strip_rows=128))
    assert result["labelled_pixels"] == here.labelled_pixels > 0
    assert result["class_table"] == [list(row) if isinstance(row, tuple) else row for row in json.loads(
        json.dumps(here.to_dict()))["class_table"]]
    for name in ("class.tif", "id.tif", "coverage.tif", "classes.csv"):
        assert (tmp_path / "child" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name


def test_a_bad_job_is_one_sentence_and_exit_1(tmp_path):
    job = tmp_path / "job.json"
    job.write_text('{"options": "GroundTruthOptions", "polygons": [], "colour": 1}')
    child = engine("run", "ground_truth", job)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1
    assert json.loads(out.splitlines()[-1]) == {"error": "GroundTruthOptions has no option colour."}
    job.write_text('{"start": "2023-06-01", "end": "2023-06-30"}')
    child = engine("run", "search", job)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1
    assert json.loads(out.splitlines()[-1]) == {"error": "SearchOptions needs area."}
    child = engine("run", "ground_truth", tmp_path / "missing.json")
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 1
    assert json.loads(out)["error"].startswith(f"The job file {tmp_path / 'missing.json'} cannot be read")


def test_sigterm_cancels_within_two_seconds_and_leaves_nothing(tmp_path):
    # Many strips of a large grid, so the run is still going when the parent cancels it.
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 2.5, 4000, 40000)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "notes.txt").write_text("mine")
    job = tmp_path / "job.json"
    job.write_text(job_for(out_dir, grid, n=400, strip_rows=128).to_json())
    child = engine("run", "ground_truth", job)
    while "progress" not in json.loads(child.stdout.readline()):  # the first strip is done: work is under way
        pass
    sent = time.monotonic()
    child.send_signal(signal.SIGTERM)
    out, _ = child.communicate(timeout=30)
    took = time.monotonic() - sent
    assert child.returncode == 3, out
    assert json.loads(out.splitlines()[-1])["error"].startswith("Canceled")
    assert took < 2.0, f"the child took {took:.1f} s to stop"
    assert sorted(p.name for p in out_dir.iterdir()) == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["job.json", "out"]


@pytest.mark.slow
def test_kernels_cached_under_the_plugin_name_load_in_the_engine(tmp_path):
    """One numba cache for both names of the same files (core/compiled.py): kernels compiled in
    QGIS's own process (satplugin.qgis_satplugin.core) load in an engine (satplugin_engine)."""
    import shutil

    from tests.plugin_link import ROOT

    core = tmp_path / "core"  # a fresh copy: its __pycache__ holds only what this test compiles
    shutil.copytree(ROOT / "qgis_satplugin" / "core", core, ignore=shutil.ignore_patterns("__pycache__"))
    plugin_site, engine_site = tmp_path / "plugin", tmp_path / "engine"
    (plugin_site / "satplugin" / "qgis_satplugin").mkdir(parents=True)
    for init in (plugin_site / "satplugin" / "__init__.py", plugin_site / "satplugin" / "qgis_satplugin" / "__init__.py"):
        init.write_text("")
    (plugin_site / "satplugin" / "qgis_satplugin" / "core").symlink_to(core, target_is_directory=True)
    engine_site.mkdir()
    (engine_site / "satplugin_engine").symlink_to(core, target_is_directory=True)

    def python(site, *args):
        return subprocess.run([sys.executable, *args], env={**os.environ, "PYTHONPATH": str(site)}, cwd=tmp_path,
                              capture_output=True, text=True, timeout=300)

    compiled = python(plugin_site, "-c", "from satplugin.qgis_satplugin.core.ground_truth import warm_up; warm_up()")
    assert compiled.returncode == 0, compiled.stderr[-3000:]
    assert any((core / "ground_truth" / "__pycache__").glob("burn_kernel.burn_strip-*.nbi"))
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 10.0, 200, 300)
    (tmp_path / "out").mkdir()
    (tmp_path / "job.json").write_text(job_for(tmp_path / "out", grid).to_json())
    ran = python(engine_site, "-m", "satplugin_engine", "run", "ground_truth", str(tmp_path / "job.json"))
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    assert json.loads(ran.stdout.strip().splitlines()[-1])["result"]["labelled_pixels"] > 0
