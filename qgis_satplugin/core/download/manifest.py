"""``manifest.json``: what the output folder holds, and the key to resuming a download.

It lists the grid, the bands and, per file, its acquisition, products, size and
SHA-256. A rerun recomputes each planned file's checksum and skips the files whose
checksum (and inputs) match, so an interrupted download resumes where it stopped and
a corrupted file is fetched again. It is rewritten (atomically) after every file, so
it never lists a file that is not complete, and it holds no timestamps: two runs that
produce the same files produce the same manifest.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

from ..atomic import _is_disk_full
from ..errors import SatPluginError
from ..grid import PixelGrid

NAME = "manifest.json"
FORMAT = "satplugin-download/1"


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def grid_record(grid: PixelGrid) -> dict:
    t = grid.transform
    return {
        "crs": grid.crs,
        "transform": [t.a, t.b, t.c, t.d, t.e, t.f],
        "width": grid.width,
        "height": grid.height,
        "pixel_size": [grid.pixel_width, grid.pixel_height],
        "bounds": list(grid.bounds),
    }


def read_manifest(folder: Path) -> dict | None:
    """The previous run's manifest, or None when absent or unreadable (then nothing is skipped)."""
    path = Path(folder) / NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("format") == FORMAT else None


def reusable_entries(old: dict | None, grid: PixelGrid, harmonize: bool) -> dict:
    """Entries of the previous manifest by path, if it was made for the same grid and scale."""
    if not old or old.get("grid") != grid_record(grid) or old.get("harmonize") != bool(harmonize):
        return {}
    return {e["path"]: e for e in old.get("files") or [] if isinstance(e, dict) and "path" in e}


def file_is_current(folder: Path, entry: dict | None, planned: dict) -> bool:
    """True when ``entry`` (old manifest) describes ``planned`` and the file on disk matches its checksum."""
    if not entry:
        return False
    for key in ("kind", "product_ids", "bands", "mask"):
        if entry.get(key) != planned.get(key):
            return False
    path = Path(folder) / entry["path"]
    try:
        if path.stat().st_size != entry.get("size"):
            return False
        return sha256_of(path) == entry.get("sha256")
    except OSError:
        return False


def file_entry(folder: Path, planned: dict) -> dict:
    """``planned`` plus the finished file's size and checksum."""
    path = Path(folder) / planned["path"]
    return {**planned, "size": path.stat().st_size, "sha256": sha256_of(path)}


def write_manifest(folder: Path, grid: PixelGrid, bands: list[str], harmonize: bool, entries: list[dict], complete: bool) -> Path:
    """Write the manifest under a temp name and rename it into place."""
    files = sorted(entries, key=lambda e: (e["datetime"], e["kind"] != "image", e["path"]))
    body = {
        "format": FORMAT,
        "complete": complete,
        "grid": grid_record(grid),
        "bands": list(bands),
        "harmonize": bool(harmonize),
        "reflectance_scale": 0.0001,
        "nodata": 0,
        "dates": sorted({e["datetime"] for e in files}),
        "files": files,
    }
    text = json.dumps(body, indent=2, sort_keys=True) + "\n"
    target = Path(folder) / NAME
    temp = target.with_name(f".{NAME}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        temp.write_text(text, encoding="utf-8")
        os.replace(temp, target)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise SatPluginError(f"The disk holding {folder} is full; free some space and run again.") from exc
        raise SatPluginError(f"Cannot write {target}: {exc.strerror or exc}") from exc
    return target
