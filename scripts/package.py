#!/usr/bin/env python3
"""Build the plugin zip for plugins.qgis.org: dist/satplugin-<version>.zip.

The zip holds one top folder, ``satplugin/`` (the name QGIS installs the plugin under),
with the files git knows about: tracked files plus untracked files that .gitignore does
not exclude (``git ls-files --cached --others --exclude-standard``), so virtual
environments, caches and build outputs never get in. Development-only files (tests,
benchmarks, CI, scripts, build and test configuration) and hidden files are left out;
docs/ goes in, since the packaged README shows docs/images/ and links to docs/*.md, and
so does the engine, built as a wheel (``engine_wheel/``), which *Install engine* installs.
The version comes from metadata.txt; a build without the e-mail and repository address
that plugins.qgis.org requires for an upload says so (the zip still installs from file). The zip is written to a temporary file first and
then renamed, so an interrupted build never leaves a half-written zip behind.

Usage:  .venv/bin/python scripts/package.py [--output-dir DIR]
"""
from __future__ import annotations

import argparse
import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_DIR = "satplugin"
ENGINE_WHEEL_DIR = "engine_wheel"  # where the plugin's installer looks (qgis_satplugin/engine_env/install.py)

# Top-level folders and files that stay in the repository only: the zip holds what runs.
# models/ is training code (torch); the shipped ONNX models are in qgis_satplugin/core/resources/.
# docs/ is packaged: the README in the zip shows docs/images/dock.png and links to docs/*.md.
EXCLUDED_DIRS = {"tests", "benchmarks", ".ci", "scripts", "dist", "build-demo", "models"}
EXCLUDED_FILES = {".gitignore", "pytest.ini", "Makefile", "requirements-dev.txt", "pb_tool.cfg", "pyproject.toml"}
REQUIRED = ["LICENSE", "metadata.txt", "__init__.py", "README.md", "requirements.txt"]
REQUIRED_DIRS = ["qgis_satplugin", "processing_algs"]
# Optional for QGIS, required by plugins.qgis.org for an upload; no placeholder is written for them.
UPLOAD_METADATA = ("email", "repository")


def plugin_version(root: Path = ROOT) -> str:
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(root / "metadata.txt", encoding="utf-8")
    try:
        version = meta["general"]["version"].strip()
    except KeyError:
        sys.exit(f"package: {root / 'metadata.txt'} has no [general] version")
    if not version:
        sys.exit("package: the version in metadata.txt is empty")
    return version


def missing_upload_metadata(root: Path = ROOT) -> list[str]:
    """The fields plugins.qgis.org requires for an upload that metadata.txt leaves empty."""
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(root / "metadata.txt", encoding="utf-8")
    general = meta["general"] if meta.has_section("general") else {}
    return [key for key in UPLOAD_METADATA if not general.get(key, "").strip()]


def candidate_files(root: Path = ROOT) -> list[str]:
    """Repository-relative POSIX paths of tracked and untracked-but-not-ignored files."""
    proc = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=root,
        capture_output=True,
        check=True,
    )
    names = {name for name in proc.stdout.decode("utf-8").split("\0") if name}
    return sorted(names)


def is_packaged(name: str) -> bool:
    path = PurePosixPath(name)
    parts = path.parts
    if parts[0] in EXCLUDED_DIRS or (len(parts) == 1 and parts[0] in EXCLUDED_FILES):
        return False
    if "__pycache__" in parts or path.suffix in (".pyc", ".pyo"):
        return False
    # Hidden files and folders (.gitignore, .qgis-settings/, .ci/ ...) are never plugin content.
    if any(part.startswith(".") for part in parts):
        return False
    return True


def package_files(root: Path = ROOT) -> list[str]:
    files = [name for name in candidate_files(root) if is_packaged(name) and (root / name).is_file()]
    missing = [name for name in REQUIRED if name not in files]
    missing += [d + "/" for d in REQUIRED_DIRS if not any(f.startswith(d + "/") for f in files)]
    if missing:
        sys.exit(f"package: required plugin files are missing: {', '.join(missing)}")
    return files


def engine_wheel(folder: Path, root: Path = ROOT) -> Path:
    """The engine package (pyproject.toml) built as a wheel into ``folder``: what Install engine installs.

    Built from a copy of what it is made of: setuptools keeps a ``build/`` folder in the
    source tree, whose copies of deleted modules would otherwise ship again.
    """
    with tempfile.TemporaryDirectory(prefix="satplugin-engine-source-") as tmp:
        source = Path(tmp)
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            shutil.copy2(root / name, source / name)
        shutil.copytree(root / "qgis_satplugin" / "core", source / "qgis_satplugin" / "core",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        built = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--disable-pip-version-check",
             "-w", str(folder), str(source)],
        )
        if built.returncode != 0:
            sys.exit(f"package: building the engine wheel with {sys.executable} failed (pip said why, above); this "
                     "Python needs pip, setuptools and wheel: run `make package`, which uses .venv/bin/python")
    wheels = sorted(folder.glob(f"satplugin_engine-{plugin_version(root)}-*.whl"))
    if not wheels:
        sys.exit(f"package: building the engine wheel left no satplugin_engine-{plugin_version(root)} wheel in {folder}")
    return wheels[-1]


def build(output_dir: Path, root: Path = ROOT) -> tuple[Path, int]:
    version = plugin_version(root)
    files = package_files(root)
    output_dir.mkdir(parents=True, exist_ok=True)
    wheel_folder = Path(tempfile.mkdtemp(prefix="satplugin-engine-wheel-"))
    target = output_dir / f"{PLUGIN_DIR}-{version}.zip"
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=output_dir)
    try:
        with os.fdopen(fd, "wb") as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            for name in files:
                zf.write(root / name, f"{PLUGIN_DIR}/{name}")
            # The engine, as the wheel the plugin installs into its managed environment.
            wheel = engine_wheel(wheel_folder, root)
            zf.write(wheel, f"{PLUGIN_DIR}/{ENGINE_WHEEL_DIR}/{wheel.name}")
        # mkstemp creates the file 0600; give the zip the usual permissions.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_name, 0o666 & ~umask)
        os.replace(tmp_name, target)
    except BaseException:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        raise
    finally:
        shutil.rmtree(wheel_folder, ignore_errors=True)
    return target, len(files) + 1


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "dist", help="where to write the zip (default: dist/)")
    args = parser.parse_args(argv)
    target, count = build(args.output_dir.resolve())
    print(f"{target} ({count} files)")
    missing = missing_upload_metadata()
    if missing:
        print(
            f"package: metadata.txt has no {' and no '.join(missing)}: plugins.qgis.org refuses an upload "
            "without them, so add the maintainers' real ones before uploading (the zip installs from file as it is)",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
