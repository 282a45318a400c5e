"""The architecture, checked: steps sit on shared floors, and what ships holds only what runs.

- no step package (search, download, ground_truth, export, superres) imports another one;
  what two steps share lives in a floor module or package of the core;
- the region build (region/) sits above the steps and composes them: no step and no floor
  imports it, and floors import no step;
- the runtime (qgis_satplugin/, processing_algs/) imports nothing from tests/, from the
  training code in models/, or torch;
- the core imports nothing from the QGIS side (gui, processing_algs).
"""
import ast
import os
import re
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "qgis_satplugin" / "core"
STEPS = ("search", "download", "ground_truth", "export", "superres")
COMPOSITES = ("region",)  # above the steps: they may import steps, nothing in the core imports them
RUNTIME = [ROOT / "qgis_satplugin", ROOT / "processing_algs", ROOT / "__init__.py"]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["satplugin", *parts])


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import in ``path``, relative ones resolved."""
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            else:
                names = [node.module]
            found += [(node.lineno, name) for name in names]
    return found


def python_files(*tops: Path) -> list[Path]:
    files = []
    for top in tops:
        files += [top] if top.is_file() else sorted(top.rglob("*.py"))
    return files


def step_of(module: str):
    parts = module.split(".")
    if parts[:3] == ["satplugin", "qgis_satplugin", "core"] and len(parts) > 3 and parts[3] in STEPS:
        return parts[3]
    return None


def test_the_import_resolver_sees_relative_and_absolute_imports(tmp_path):
    # A check that cannot fail proves nothing: resolve a known module's imports.
    found = dict((name, line) for line, name in imports_of(CORE / "superres" / "runner.py"))
    assert "satplugin.qgis_satplugin.core.image_series.reader" in found
    assert "satplugin.qgis_satplugin.core.superres.tiling" in found
    assert step_of("satplugin.qgis_satplugin.core.export.runner") == "export"
    assert step_of("satplugin.qgis_satplugin.core.image_series.reader") is None


def test_no_step_package_imports_another():
    sideways = []
    for path in python_files(CORE):
        own = step_of(module_name(path))
        if own is None:
            continue
        for line, name in imports_of(path):
            other = step_of(name)
            if other is not None and other != own:
                sideways.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert sideways == []


def _composite_of(module: str):
    parts = module.split(".")
    return parts[3] if parts[:3] == ["satplugin", "qgis_satplugin", "core"] and len(parts) > 3 \
        and parts[3] in COMPOSITES else None


def test_floors_import_no_step():
    upward = []
    for path in python_files(CORE):
        if step_of(module_name(path)) is not None or _composite_of(module_name(path)) is not None:
            continue
        upward += [f"{path.relative_to(ROOT)}:{line} imports {name}"
                   for line, name in imports_of(path) if step_of(name) is not None]
    assert upward == []


def test_nothing_in_the_core_below_the_region_build_imports_it():
    upward = [f"{path.relative_to(ROOT)}:{line} imports {name}"
              for path in python_files(CORE) if _composite_of(module_name(path)) is None
              for line, name in imports_of(path) if _composite_of(name) is not None]
    assert upward == []


# The dataset loaders the export writes for the user's training code are the only runtime
# modules that import torch (lazily, in the user's environment).
TORCH_LOADERS = {"qgis_satplugin/core/export/torch_dataset.py", "qgis_satplugin/core/export/torchgeo_dataset.py"}


def test_only_the_dataset_loaders_import_torch():
    found = sorted({path.relative_to(ROOT).as_posix()
                    for path in python_files(*RUNTIME)
                    for _, name in imports_of(path) if name.split(".")[0] in ("torch", "torchgeo")})
    assert found == sorted(TORCH_LOADERS)


@pytest.mark.parametrize("forbidden", ["satplugin.tests", "tests", "satplugin.models", "models"])
def test_the_runtime_imports_no_tests_no_training_code(forbidden):
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in python_files(*RUNTIME)
             for line, name in imports_of(path)
             if name == forbidden or name.startswith(forbidden + ".")]
    assert found == []


def test_the_core_imports_nothing_from_the_qgis_side():
    qgis_side = ("satplugin.qgis_satplugin.gui", "satplugin.qgis_satplugin.plugin", "satplugin.processing_algs", "qgis")
    found = [f"{path.relative_to(ROOT)}:{line} imports {name}"
             for path in python_files(CORE)
             for line, name in imports_of(path)
             if name.startswith(qgis_side) or name == "qgis"]
    assert found == []


def test_no_fixture_or_scene_generator_in_the_runtime():
    names = [p.relative_to(ROOT).as_posix() for p in python_files(*RUNTIME)]
    assert [n for n in names if "synthetic" in n or "fixture" in n] == []
    assert (ROOT / "tests" / "fixtures" / "synthetic_series.py").is_file()


# Import name -> distribution name, where they differ.
DISTRIBUTIONS = {"cv2": "opencv-python-headless"}
# Imported by the dataset loaders the export writes, in the user's training environment.
USER_ENVIRONMENT = {"torch", "torchgeo", "geopandas"}
# Installed with a declared dependency (requests brings urllib3).
CARRIED = {"urllib3": "requests"}


def declared_distributions() -> set:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    specs = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        specs += [s for s in extra if not s.startswith("satplugin-engine")]
    return {re.split(r"[<>=!\[ ;]", spec, maxsplit=1)[0].lower() for spec in specs}


def test_the_core_imports_only_what_the_engine_declares():
    """What the core imports installs from PyPI wheels with the engine (osgeo, for one, does not)."""
    declared = declared_distributions()
    undeclared = []
    for path in python_files(CORE):
        for line, name in imports_of(path):
            top = name.split(".")[0]
            if top == "satplugin" or top in sys.stdlib_module_names or top in USER_ENVIRONMENT:
                continue
            dist = DISTRIBUTIONS.get(top, CARRIED.get(top, top)).lower()
            if dist not in declared:
                undeclared.append(f"{path.relative_to(ROOT)}:{line} imports {name}")
    assert undeclared == []
    assert {"numpy", "rasterio", "onnxruntime", "onnxruntime-gpu", "pyogrio"} <= declared


QGIS_SHIPS_NOT = ("shapely", "rasterio", "affine", "pyogrio", "pandas", "geopandas", "cv2", "numba", "onnxruntime",
                  "sentinelhub", "zarr", "numcodecs", "requests", "urllib3", "pyproj")
BLOCKER = """
import importlib.abc, sys
BLOCKED = set(sys.argv[1].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is not in a stock QGIS")
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[2])
import importlib
for module in sys.argv[3:]:
    importlib.import_module(module)
from satplugin.qgis_satplugin.core.ground_truth.options import GroundTruthOptions  # the options build, too
from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.search.options import SearchOptions
Area("POLYGON ((0 0, 1 0, 1 1, 0 0))")
SearchOptions(area=Area("POLYGON ((14 46, 14.1 46, 14.1 46.1, 14 46))"), start="2023-05-01", end="2023-06-01")
print("ok")
"""


def test_the_qgis_side_imports_only_what_qgis_ships(tmp_path):
    """The provider, every algorithm, the dock and the options load without the engine's packages."""
    import subprocess
    import sys

    from tests.plugin_link import link_plugin_package

    modules = ["satplugin", "satplugin.processing_algs.provider"] + [
        f"satplugin.qgis_satplugin.gui.{p.stem}" for p in (ROOT / "qgis_satplugin" / "gui").glob("*.py") if p.stem != "__init__"
    ] + [f"satplugin.qgis_satplugin.core.{step}.options" for step in ("search", "download", "ground_truth", "export", "superres")]
    proc = subprocess.run([sys.executable, "-c", BLOCKER, ",".join(QGIS_SHIPS_NOT), str(link_plugin_package()), *modules],
                          capture_output=True, text=True, env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-3000:]
