"""Checks shared by the download tests: what a finished or interrupted output folder may hold."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import rasterio


def folder_hashes(folder: Path) -> dict:
    """sha256 of every file in the folder (hidden ones included), by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def assert_only_complete_files(folder: Path) -> dict:
    """No temp files; every raster is listed in the manifest with its checksum and opens. Returns the manifest."""
    folder = Path(folder)
    names = sorted(p.name for p in folder.iterdir())
    hidden = [n for n in names if n.startswith(".")]
    assert hidden == [], f"temporary files left behind: {hidden}"
    rasters = [n for n in names if n != "manifest.json"]
    if not rasters:
        return json.loads((folder / "manifest.json").read_text()) if "manifest.json" in names else {}
    manifest = json.loads((folder / "manifest.json").read_text())
    listed = {f["path"]: f for f in manifest["files"]}
    assert sorted(listed) == rasters, "the manifest and the folder disagree"
    for name, entry in listed.items():
        data = (folder / name).read_bytes()
        assert len(data) == entry["size"]
        assert hashlib.sha256(data).hexdigest() == entry["sha256"], name
        with rasterio.open(folder / name) as ds:
            ds.read()  # every block decodes
    return manifest
