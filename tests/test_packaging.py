"""Packaging: metadata, pb_tool.cfg, the release zip, a QGIS-free core, the benchmark script."""
import configparser
import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PY if VENV_PY.exists() else Path(sys.executable))

# Fields QGIS and plugins.qgis.org need. plugins.qgis.org also refuses an upload without
# UPLOAD_METADATA, which stay out of metadata.txt until the maintainers give real ones.
REQUIRED_METADATA = ("name", "qgisMinimumVersion", "description", "about", "version", "author")
UPLOAD_METADATA = ("email", "repository")
# Placeholders that once stood in for real addresses: never again.
PLACEHOLDERS = ("example.org", "example.com", "github.com/satplugin/satplugin")


def _metadata():
    meta = configparser.ConfigParser(interpolation=None)
    meta.optionxform = str  # keep camelCase keys as written (qgisMinimumVersion)
    assert meta.read(ROOT / "metadata.txt", encoding="utf-8"), "metadata.txt is missing"
    return meta["general"]


def _pb_tool_cfg():
    cfg = configparser.ConfigParser()
    assert cfg.read(ROOT / "pb_tool.cfg", encoding="utf-8"), "pb_tool.cfg is missing"
    return cfg


def test_metadata_has_every_field_the_plugin_repository_requires():
    general = _metadata()
    missing = [key for key in REQUIRED_METADATA if not general.get(key, "").strip()]
    assert missing == []
    assert general["hasProcessingProvider"].strip() == "yes"
    assert re.fullmatch(r"\d+\.\d+\.\d+", general["version"].strip()), general["version"]
    assert re.fullmatch(r"3\.\d+", general["qgisMinimumVersion"].strip())
    for key in ("email", "homepage", "repository", "tracker"):
        value = general.get(key, "")
        assert not any(p in value for p in PLACEHOLDERS), f"{key}={value} is a placeholder"
    if general.get("email", "").strip():
        assert "@" in general["email"]
    for key in ("homepage", "repository", "tracker"):
        if general.get(key, "").strip():
            assert general[key].strip().startswith("https://"), general[key]
    icon = general.get("icon", "").strip()
    assert icon, "metadata.txt has no icon"
    assert (ROOT / icon).is_file(), f"icon {icon} does not exist"


def test_pb_tool_cfg_is_valid_and_lists_existing_paths():
    cfg = _pb_tool_cfg()
    # The options `pb_tool validate` requires (empty values are allowed).
    for section, option in [
        ("plugin", "name"),
        ("files", "python_files"),
        ("files", "main_dialog"),
        ("files", "resource_files"),
        ("files", "extras"),
        ("help", "dir"),
        ("help", "target"),
    ]:
        assert cfg.has_option(section, option), f"[{section}] {option} is missing"
    assert cfg.get("plugin", "name") == "satplugin"

    files = []
    for option in ("python_files", "main_dialog", "compiled_ui_files", "resource_files", "extras"):
        files += cfg.get("files", option, fallback="").split()
    dirs = cfg.get("files", "extra_dirs", fallback="").split()
    if cfg.get("help", "dir", fallback="").strip():
        dirs.append(cfg.get("help", "dir").strip())
    assert {"__init__.py", "metadata.txt", "LICENSE"} <= set(files)
    assert {"qgis_satplugin", "processing_algs"} <= set(dirs)
    assert [f for f in files if not (ROOT / f).is_file()] == []
    assert [d for d in dirs if not (ROOT / d).is_dir()] == []


def test_license_is_gpl2_or_later():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "either version 2 of the License, or\n(at your option) any later version" in text
    assert "GNU GENERAL PUBLIC LICENSE" in text and "Version 2, June 1991" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_package_builds_a_clean_plugin_zip(tmp_path):
    proc = subprocess.run(
        [PYTHON, str(ROOT / "scripts" / "package.py"), "--output-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Without the e-mail and repository an upload needs, the build says so (and still succeeds).
    missing_for_upload = [key for key in UPLOAD_METADATA if not _metadata().get(key, "").strip()]
    if missing_for_upload:
        assert "plugins.qgis.org refuses an upload" in proc.stderr, proc.stderr
        for key in missing_for_upload:
            assert f"no {key}" in proc.stderr, proc.stderr
    else:
        assert "plugins.qgis.org" not in proc.stderr, proc.stderr
    version = _metadata()["version"].strip()
    zips = list(tmp_path.glob("*.zip"))
    assert [z.name for z in zips] == [f"satplugin-{version}.zip"]
    assert str(zips[0]) in proc.stdout
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".zip"], "a temporary file was left behind"

    with zipfile.ZipFile(zips[0]) as zf:
        names = zf.namelist()
        assert zf.testzip() is None
        zipped_metadata = zf.read("satplugin/metadata.txt").decode("utf-8")
        zipped_readme = zf.read("satplugin/README.md").decode("utf-8")
    assert re.search(rf"\({len(names)} files\)", proc.stdout), proc.stdout
    assert [n for n in names if not n.startswith("satplugin/")] == []
    for required in (
        "satplugin/LICENSE",
        "satplugin/metadata.txt",
        "satplugin/__init__.py",
        "satplugin/processing_algs/rasterize_ground_truth.py",
        "satplugin/qgis_satplugin/core/ground_truth/runner.py",
        "satplugin/qgis_satplugin/core/resources/superres/s2_sr_x2_rgbn.onnx",
        "satplugin/qgis_satplugin/core/resources/workflows/ground_truth.model3",
    ):
        assert required in names
    assert f"satplugin/{_metadata()['icon'].strip()}" in names
    assert f"\nversion={version}\n" in zipped_metadata
    # What the packaged README shows and links to under docs/ travels with it.
    assert "satplugin/docs/images/dock.png" in names
    images = re.findall(r"!\[[^\]]*\]\(([^)\s]+)\)|<img[^>]*\bsrc=\"([^\"]+)\"", zipped_readme)
    images = [a or b for a, b in images]
    assert "docs/images/dock.png" in images
    links = [target.split("#")[0] for target in re.findall(r"\]\((docs/[^)\s]+)\)", zipped_readme)]
    assert links, "the README links to no page under docs/"
    assert [f for f in images + links if not f.startswith(("http://", "https://")) and f"satplugin/{f}" not in names] == []
    unwanted = [
        n
        for n in names
        if "__pycache__" in n
        or n.endswith((".pyc", ".pyo"))
        or n.startswith(("satplugin/tests/", "satplugin/benchmarks/", "satplugin/scripts/", "satplugin/.venv/",
                          "satplugin/models/"))
        or "synthetic" in n
        or any(part.startswith(".") for part in n.split("/"))
        or n in ("satplugin/Makefile", "satplugin/pytest.ini")
    ]
    assert unwanted == []


_IMPORT_CORE = r"""
import importlib, json, sys
from pathlib import Path
root = Path(sys.argv[1])
sys.path.insert(0, str(root))
names = []
for path in sorted((root / "qgis_satplugin" / "core").rglob("*.py")):
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    names.append(".".join(parts))
for name in names:
    importlib.import_module(name)
qgis = sorted(m for m in sys.modules if m == "qgis" or m.startswith("qgis."))
print(json.dumps({"imported": names, "qgis": qgis}))
"""


def test_core_imports_no_qgis():
    proc = subprocess.run(
        [PYTHON, "-c", _IMPORT_CORE, str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "qgis_satplugin.core.ground_truth.runner" in result["imported"]
    assert len(result["imported"]) == len(list((ROOT / "qgis_satplugin" / "core").rglob("*.py")))
    assert result["qgis"] == []


@pytest.mark.slow
def test_benchmark_runs_at_small_size():
    proc = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "bench_rasterize.py"), "--parcels", "300", "--size", "400", "--sample", "5",
         "--no-qgis"],  # the run through a stock QGIS is tests/test_stock_qgis.py's
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    ratio_lines = [
        line for line in proc.stdout.splitlines() if "gdal_rasterize" in line and re.search(r"\|\s*\d[\d,]*\.\d+x\s*\|", line)
    ]
    assert ratio_lines, proc.stdout
    assert re.search(r"\| Parcels \| 300 \|", proc.stdout)
    assert re.search(r"\| Grid \| 400 x 400 px", proc.stdout)


@pytest.mark.slow
def test_superres_benchmark_runs_at_small_size():
    proc = subprocess.run(
        [PYTHON, str(ROOT / "benchmarks" / "bench_superres.py"), "--tiny"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if re.match(r"\| (64 x 64|128 x 128) \|", line)]
    assert len(rows) == 2, proc.stdout
    for row in rows:  # ours s, MP/s, bare s and the overhead are numbers
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert int(cells[2]) == 1  # the automatic batch size on the CPU
        assert float(cells[3]) > 0 and float(cells[4]) > 0 and float(cells[5]) > 0
        assert re.fullmatch(r"[+-]\d+\.\d %", cells[6])
