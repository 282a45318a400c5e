"""The engine package: installed with pip into a fresh environment without QGIS, it runs a step.

The environment is a plain ``venv`` of the system Python without its site packages (so no
QGIS, no GDAL bindings, none of ``.venv``), filled from the wheelhouse that ``make setup``
downloads from PyPI (no network in the test). Ground truth runs there on a job spec the test
writes (``GroundTruthOptions`` as JSON, polygons inline), and its rasters must hold the same pixels, grid and class table as the plugin's core
writes in the developer environment. (The bytes differ: the PyPI rasterio wheel bundles a
newer GDAL than QGIS's, which lays out TIFF tags differently.)
"""
import json
import os
import re
import shutil
import subprocess
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely

from satplugin.qgis_satplugin.core import __version__
from satplugin.qgis_satplugin.core.export.options import ExportOptions
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run as run_ground_truth
from tests.cluster_fixtures import checksums
from tests.conftest import ROOT

WHEELHOUSE = ROOT / ".wheelhouse"
SYSTEM_PYTHON = Path("/usr/bin/python3")
GRID = PixelGrid.square("EPSG:32633", 500040.0, 5000040.0, 10.0, 40, 30)


def test_engine_version_is_the_plugins():
    metadata = (ROOT / "metadata.txt").read_text(encoding="utf-8")
    assert re.search(r"^version=(.+)$", metadata, re.M)[1].strip() == __version__
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    assert 'version = {attr = "satplugin_engine.__version__"}' in pyproject


def _polygons():
    boxes = [shapely.box(500040 + 60 * i, 4999800, 500100 + 60 * i + 5, 4999905) for i in range(5)]
    holed = shapely.Polygon(shapely.box(500100, 4999760, 500300, 4999790).exterior.coords,
                            [shapely.box(500150, 4999765, 500170, 4999785).exterior.coords])
    return boxes + [holed], [1, 2, 3, 1, 2, 3]


def _outputs_in(folder):
    return OutputPaths(class_raster=f"{folder}/class.tif", id_raster=f"{folder}/id.tif",
                       coverage_raster=f"{folder}/coverage.tif", class_table=f"{folder}/classes.csv")


DRIVER = textwrap.dedent(
    """
    import json, sys
    import shapely
    try:
        import qgis  # noqa: F401
    except ImportError:
        pass
    else:
        raise SystemExit("qgis is importable in the engine's environment")
    import numpy as np
    import rasterio
    import satplugin_engine
    from satplugin_engine.grid import PixelGrid
    from satplugin_engine.superres.output_raster import OutputRaster

    # The super-resolution writer calls the GDAL of this environment's rasterio wheel (ctypes):
    # a float raster with internal overviews, written strip by strip, reads back exactly.
    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000000.0, 5.0, 600, 520)
    values = np.arange(2 * 520 * 600, dtype="float32").reshape(2, 520, 600)
    out = OutputRaster(sys.argv[1], grid, 2, "float32", float("nan"))
    for row in range(0, 520, 130):
        out.append(values[:, row:row + 130])
    out.finish(descriptions=["B02", "B03"], units=["reflectance"] * 2, tags={"MODEL": "test"},
               band_tags=[{}, {}])
    with rasterio.open(sys.argv[1]) as ds:
        written = {"equal": bool(np.array_equal(ds.read(), values)), "overviews": ds.overviews(1),
                   "descriptions": list(ds.descriptions), "model": ds.tags()["MODEL"], "gdal": rasterio.__gdal_version__}

    print(json.dumps({"version": satplugin_engine.__version__, "module": satplugin_engine.__file__, "written": written}))
    """
)


@pytest.fixture(scope="module")
def installed_engine(tmp_path_factory):
    """(python, env) of a fresh venv with the engine installed from the wheelhouse, offline."""
    if not (WHEELHOUSE / ".stamp").is_file():
        pytest.skip(f"{WHEELHOUSE} is missing: `make setup` downloads it")
    if not SYSTEM_PYTHON.is_file():
        pytest.skip(f"{SYSTEM_PYTHON} is not here")
    tmp_path = tmp_path_factory.mktemp("engine")
    # Only what the package is made of, so the build leaves nothing in the checkout.
    source = tmp_path / "src"
    shutil.copytree(ROOT / "qgis_satplugin" / "core", source / "qgis_satplugin" / "core",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PIP_CONFIG_FILE": os.devnull}
    venv = tmp_path / "engine-env"
    subprocess.run([str(SYSTEM_PYTHON), "-m", "venv", str(venv)], check=True, env=env)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-index", "--find-links", str(WHEELHOUSE), f"{source}[all]"],
        capture_output=True, text=True, env=env)
    assert install.returncode == 0, install.stdout + install.stderr
    return python, env, venv


@pytest.mark.slow
def test_engine_installs_in_a_fresh_environment_and_runs_ground_truth(tmp_path, installed_engine):
    python, env, venv = installed_engine
    env = {**env, "HOME": str(tmp_path)}
    # No system site packages: the environment cannot see QGIS's Python packages.
    probe = subprocess.run([str(python), "-I", "-c", "import sys; print(sys.path)"],
                           capture_output=True, text=True, env=env, check=True)
    assert "dist-packages" not in probe.stdout and ".venv" not in probe.stdout

    polygons, classes = _polygons()
    job = tmp_path / "job.json"
    out_engine = tmp_path / "engine-out"
    out_engine.mkdir()
    options = GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(polygons, hex=True).tolist()), class_values=tuple(classes),
        source_crs="EPSG:32633", grid=GRID, outputs=_outputs_in(out_engine), min_coverage=0.3)
    job.write_text(options.to_json())
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    probe = subprocess.run([str(python), "-I", str(driver), str(tmp_path / "written.tif")], capture_output=True,
                           text=True, env=env, cwd=tmp_path)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    installed = json.loads(probe.stdout.strip().splitlines()[-1])
    assert installed["version"] == __version__
    assert str(venv) in installed["module"]  # the installed copy runs, not the checkout
    assert installed["written"] == {"equal": True, "overviews": [2, 4], "descriptions": ["B02", "B03"],
                                    "model": "test", "gdal": installed["written"]["gdal"]}
    # The step runs through the engine's command line, as the plugin's engine process will run it.
    run = subprocess.run([str(python), "-I", "-m", "satplugin_engine", "run", "ground_truth", str(job)],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert run.returncode == 0, run.stdout + run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]
    progress = [e["progress"] for e in events if "progress" in e]
    assert progress == sorted(progress) and progress[-1] == 1.0
    answer = {"labelled": events[-1]["result"]["labelled_pixels"]}

    out_dev = tmp_path / "dev-out"
    out_dev.mkdir()
    dev = run_ground_truth(replace(options, outputs=_outputs_in(out_dev)))
    assert answer["labelled"] == dev.labelled_pixels > 0
    for name in ("class.tif", "id.tif", "coverage.tif"):
        with rasterio.open(out_engine / name) as a, rasterio.open(out_dev / name) as b:
            assert np.array_equal(a.read(), b.read()), name
            assert a.transform == b.transform and a.crs == b.crs and a.nodata == b.nodata
            assert a.tags(1) == b.tags(1)
    assert (out_engine / "classes.csv").read_bytes() == (out_dev / "classes.csv").read_bytes()


@pytest.mark.slow
def test_the_installed_engine_exports_the_same_bytes_on_a_local_cluster_of_its_own(tmp_path, installed_engine):
    """local:2 workers are started by the engine process from its own Python; its JSON lines stay clean."""
    from tests.core.test_export_helpers import make_folder

    python, env, _ = installed_engine
    images, _, _ = make_folder(tmp_path, width=160, height=128, n_dates=5, cloud_cover=[0, 30, 0, 10, 0],
                               bands=("B02", "B03", "B04", "B08"))
    answers = {}
    for name, scheduler in (("single", None), ("cluster", "local:2")):
        job = tmp_path / f"{name}.json"
        job.write_text(ExportOptions(images=str(images), output_folder=str(tmp_path / name), patch_size=16, stride=12,
                                     max_cloud=20, split_block_size=48, dask_scheduler=scheduler).to_json())
        run = subprocess.run([str(python), "-I", "-m", "satplugin_engine", "run", "export", str(job)],
                             capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
        assert run.returncode == 0, run.stdout + run.stderr
        answers[name] = [json.loads(line) for line in run.stdout.splitlines()]  # every line is one JSON event
    logs = [e["log"] for e in answers["cluster"] if "log" in e]
    assert "Running on a local Dask cluster of 2 worker processes: 2 workers, all with this engine's versions." in logs
    assert answers["cluster"][-1]["result"]["n_samples"] == answers["single"][-1]["result"]["n_samples"] > 100
    reference = checksums(tmp_path / "single")
    assert len(reference) > 100 and checksums(tmp_path / "cluster") == reference


@pytest.mark.slow
def test_engine_wheel_holds_the_core_and_no_qgis_side(tmp_path):
    """The wheel scripts/package.py puts in the zip: exactly the core's modules, whatever build/ holds."""
    import importlib.util
    import zipfile

    spec = importlib.util.spec_from_file_location("package_script", ROOT / "scripts" / "package.py")
    package = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(package)
    stale = ROOT / "build" / "lib" / "satplugin_engine" / "removed_long_ago.py"  # what an old build leaves behind
    made = [p for p in (stale.parent.parent.parent, stale.parent.parent, stale.parent) if not p.exists()]
    stale.parent.mkdir(parents=True, exist_ok=True)
    stale.write_text("")
    try:
        package.engine_wheel(tmp_path / "w")
    finally:
        stale.unlink()
        for folder in reversed(made):
            folder.rmdir()
    wheel = next((tmp_path / "w").glob("satplugin_engine-*.whl"))
    assert wheel.name.startswith(f"satplugin_engine-{__version__}-py3-none-any")
    names = zipfile.ZipFile(wheel).namelist()
    modules = {n for n in names if n.endswith(".py")}
    # Every step's entry module, and the floors they share.
    for module in ("search/runner.py", "download/runner.py", "ground_truth/runner.py", "export/runner.py", "superres/runner.py",
                   "http/client.py", "image_series/manifest.py", "sentinel2.py", "feedback.py", "options.py"):
        assert f"satplugin_engine/{module}" in modules, module
    assert modules == {f"satplugin_engine/{p.relative_to(ROOT / 'qgis_satplugin' / 'core').as_posix()}"
                       for p in (ROOT / "qgis_satplugin" / "core").rglob("*.py")}
    assert not any(n.startswith(("processing_algs/", "qgis_satplugin/", "models/", "tests/")) for n in names)
    assert not any("gui/" in n or "synthetic" in n or n.endswith(".model3") for n in names)
    # The shipped default models travel with the engine, found through resources.resource_path.
    assert sorted(n for n in names if n.endswith(".onnx")) == [
        "satplugin_engine/resources/superres/s2_sharpen_20m.onnx",
        "satplugin_engine/resources/superres/s2_sr_x2_rgbn.onnx",
        "satplugin_engine/resources/superres/s2_sr_x2_rgbn_single.onnx"]
