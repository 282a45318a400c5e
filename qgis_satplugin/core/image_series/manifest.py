"""``manifest.json``: the download folder format. This module is its one writer and its one reader.

The manifest lists the grid, the bands and, per file, its acquisition, products, size and
SHA-256. A rerun of the download recomputes each planned file's checksum and skips the
files whose checksum (and inputs) match, so an interrupted download resumes where it
stopped and a corrupted file is fetched again. It is rewritten (atomically) after every
file, so it never lists a file that is not complete, and it holds no timestamps: two runs
that produce the same files produce the same manifest.

Writing: :func:`write_manifest` (entries made by :func:`file_entry`). Reading:
:func:`load_manifest` is the one strict reader (a user may have edited the file by hand)
and returns a :class:`Manifest`; :func:`read_manifest` is the download's resume view of it
(None instead of an error), and :func:`verify_listed_files` checks the listed files
against their sizes and checksums. The export and super-resolution steps read download
folders through :func:`..reader.open_image_series`, which uses these.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from ..atomic import user_error_for
from ..errors import SatPluginError
from ..feedback import Feedback
from ..grid import PixelGrid
from ..sentinel2 import REFLECTANCE_SCALE

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


# What a failed download keeps, for the messages: complete files stay listed in the manifest.
RESUME_NOTE = "Complete files are kept, and a rerun resumes from them."
# Listed files are checked against their SHA-256 when they total at most this much
# (a second or two of hashing); larger folders are checked by size, and a file that
# then fails to decode is named in the read error.
CHECKSUM_BUDGET_BYTES = 2 << 30
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
KINDS = ("image", "mask")


def manifest_error(path, problem: str) -> SatPluginError:
    """The one sentence for a manifest that cannot be used: what is wrong, and what to do."""
    return SatPluginError(
        f"{path} {problem}; run the download again into a new folder, or restore the manifest it wrote."
    )


@dataclass(frozen=True)
class Manifest:
    """A checked ``manifest.json``: what :func:`load_manifest` returns."""

    folder: Path
    body: dict  # the JSON object as written (every key, "grid" as written too)
    grid: PixelGrid
    bands: list  # band names, in file order
    complete: bool  # False while a download is still writing (or stopped early)
    entries: list  # the checked file entries, in manifest order

    @property
    def path(self) -> Path:
        return self.folder / NAME

    @property
    def reflectance_scale(self):
        """The scale a download states for its DN (reflectance = scale x DN), or None."""
        return self.body.get("reflectance_scale")


def load_manifest(folder) -> Manifest:
    """Read and check ``folder/manifest.json``; raise one clear :class:`SatPluginError` when unusable.

    Every file entry is checked by :func:`check_entry`. Keys a hand-written manifest may
    lack (``format``, ``complete``, sizes, checksums) are only checked when present.
    """
    folder = Path(folder)
    path = folder / NAME
    if not path.is_file():
        raise SatPluginError(f"{folder} holds no {NAME}; give a download folder, or a list of image rasters.")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise manifest_error(path, "is not UTF-8 text") from None
    except ValueError as exc:
        raise manifest_error(path, f"is not valid JSON ({exc})") from None
    except OSError as exc:
        raise SatPluginError(f"Cannot read {path}: {exc.strerror or exc}.") from None
    return _checked(body, folder)


def _checked(body, folder: Path) -> Manifest:
    path = folder / NAME
    if not isinstance(body, dict):
        raise manifest_error(path, f"holds a JSON {_json_kind(body)}, not the object a download writes")
    if "format" in body and body["format"] != FORMAT:
        raise manifest_error(path, f"has the format {body['format']!r}, not {FORMAT!r}")
    complete = body.get("complete", True)
    if not isinstance(complete, bool):
        raise manifest_error(path, f'has "complete": {json.dumps(complete)}, which is neither true nor false')
    grid = _check_grid(body.get("grid"), path)
    bands = body.get("bands", [])
    if not isinstance(bands, list) or not all(isinstance(b, str) and b for b in bands):
        raise manifest_error(path, f'has "bands": {_short(bands)}, not a list of band names')
    scale = body.get("reflectance_scale")
    if scale is not None and not (_is_number(scale) and math.isfinite(scale) and scale > 0):
        raise manifest_error(path, f'has "reflectance_scale": {_short(scale)}, not a positive number')
    files = body.get("files")
    if not isinstance(files, list):
        raise manifest_error(path, f'has "files": {_short(files)}, not a list of file entries')
    seen = set()
    entries = []
    for index, entry in enumerate(files):
        entry = check_entry(entry, index, folder)
        if entry["path"] in seen:
            raise manifest_error(path, f"lists {entry['path']!r} twice")
        seen.add(entry["path"])
        entries.append(entry)
    return Manifest(folder, body, grid, list(bands), complete, entries)


def check_entry(entry, index: int, folder) -> dict:
    """One file entry: a safe relative ``path``, and well-formed kind, datetime, size and checksum."""
    path = Path(folder) / NAME
    if not isinstance(entry, dict):
        raise manifest_error(path, f"has file entry {index + 1} = {_short(entry)}, not an object with a path")
    name = entry.get("path")
    listed_path(folder, name, index)
    kind = entry.get("kind", "image")
    if kind not in KINDS:
        raise manifest_error(path, f"gives {name!r} the kind {_short(kind)}, not image or mask")
    when = entry.get("datetime")
    if when is not None and not isinstance(when, str):
        raise manifest_error(path, f"gives {name!r} the datetime {_short(when)}, not ISO 8601 text")
    size = entry.get("size")
    if size is not None and not (isinstance(size, int) and not isinstance(size, bool) and size >= 0):
        raise manifest_error(path, f"gives {name!r} the size {_short(size)}, not a number of bytes")
    digest = entry.get("sha256")
    if digest is not None and not (isinstance(digest, str) and _SHA256.match(digest)):
        raise manifest_error(path, f"gives {name!r} the sha256 {_short(digest)}, not 64 hexadecimal digits")
    for key in ("product_id", "mask"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise manifest_error(path, f"gives {name!r} the {key} {_short(entry[key])}, not text")
    ids = entry.get("product_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
        raise manifest_error(path, f"gives {name!r} the product_ids {_short(ids)}, not a list of product ids")
    return entry


def listed_path(folder, name, index: int = 0) -> Path:
    """The file ``name`` of a manifest in ``folder``, refused unless it stays inside the folder.

    A download writes plain file names; an absolute path, ``..``, a drive, a URL or a
    GDAL ``/vsi`` path in an edited manifest would make the export read (and its card
    name) files from anywhere. A link that leads out of the folder is refused too.
    """
    folder = Path(folder)
    where = folder / NAME
    if not isinstance(name, str) or not name.strip():
        raise manifest_error(where, f"has file entry {index + 1} without a file name (\"path\": {_short(name)})")
    posix = PurePosixPath(name)
    if "\0" in name or "\\" in name or ":" in name or posix.is_absolute() or ".." in posix.parts:
        raise manifest_error(
            where, f"lists the file {name!r}, which is not a plain path inside the download folder "
            "(absolute paths, '..', drives, URLs and GDAL /vsi paths are refused)",
        )
    resolved = (folder / posix).resolve()
    try:
        resolved.relative_to(folder.resolve())
    except ValueError:
        raise manifest_error(where, f"lists the file {name!r}, which leads outside the download folder") from None
    return folder / posix


def verify_listed_files(folder, entries, feedback: Feedback | None = None, budget_bytes: int | None = None) -> None:
    """Check that every listed file is there, has its listed size and (within the budget) its SHA-256.

    A truncated or damaged file would otherwise fail deep inside a read with GDAL's own
    error, or worse, decode into wrong pixels.
    """
    feedback = Feedback.of(feedback)
    folder = Path(folder)
    sizes = []
    for entry in entries:
        path = folder / entry["path"]
        what = "cloud mask" if entry.get("kind") == "mask" else "image"
        try:
            actual = path.stat().st_size if path.is_file() else None
        except OSError:
            actual = None
        if actual is None:
            raise SatPluginError(
                f"The {what} {path} listed in the manifest is missing; run the download again into this folder "
                "(it fetches missing files again)."
            )
        if entry.get("size") is not None and actual != entry["size"]:
            raise SatPluginError(
                f"The {what} {path} is {actual} bytes but the manifest lists {entry['size']}: it is truncated or "
                "was changed; run the download again into this folder (it fetches damaged files again)."
            )
        sizes.append(actual)
    with_sums = [e for e in entries if e.get("sha256")]
    total = sum(size for size, e in zip(sizes, entries) if e.get("sha256"))
    if total > (CHECKSUM_BUDGET_BYTES if budget_bytes is None else budget_bytes):
        feedback.log(f"Checked the sizes of the {len(entries)} listed files ({total / 2**30:.1f} GiB: checksums would take "
                     "a while); a damaged file is named if it fails to read.")
        return
    for entry in with_sums:
        path = folder / entry["path"]
        if sha256_of(path) != entry["sha256"]:
            raise SatPluginError(
                f"{path} does not match the SHA-256 in the manifest: the file is damaged or was changed; run the "
                "download again into this folder (it fetches damaged files again)."
            )


def _check_grid(g, path) -> PixelGrid:
    from pyproj import CRS
    from pyproj.exceptions import CRSError

    if not isinstance(g, dict):
        raise manifest_error(path, f'has "grid": {_short(g)}, not the grid object a download writes')
    crs = g.get("crs")
    if not isinstance(crs, str) or not crs.strip():
        raise manifest_error(path, f"gives the grid the CRS {_short(crs)}, not a CRS name or WKT")
    try:
        CRS.from_user_input(crs)
    except CRSError:
        raise manifest_error(path, f"gives the grid an unknown CRS {_short(crs)}") from None
    t = g.get("transform")
    if not (isinstance(t, list) and len(t) == 6 and all(_is_number(v) and math.isfinite(v) for v in t)):
        raise manifest_error(path, f'gives the grid the transform {_short(t)}, not six finite numbers')
    width, height = g.get("width"), g.get("height")
    for key, value in (("width", width), ("height", height)):
        if not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
            raise manifest_error(path, f"gives the grid the {key} {_short(value)}, not a whole number of pixels >= 1")
    from affine import Affine

    try:
        return PixelGrid.from_transform(crs, Affine(*(float(v) for v in t)), width, height)
    except SatPluginError as exc:
        raise manifest_error(path, f"describes a grid that cannot be used ({exc})") from None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _json_kind(value) -> str:
    return {list: "list", str: "string", int: "number", float: "number", bool: "boolean"}.get(type(value), "null")


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_manifest(folder: Path) -> Manifest | None:
    """The previous run's manifest for resuming, or None when absent or unusable (then nothing is skipped).

    The download's view of :func:`load_manifest`: it rewrites an unusable manifest, so it
    only needs to know which files to trust.
    """
    try:
        return load_manifest(folder)
    except SatPluginError:
        return None


def reusable_entries(old: Manifest | None, grid: PixelGrid, harmonize: bool) -> dict:
    """Entries of the previous manifest by path, if it was made for the same grid and scale."""
    if old is None or old.body.get("grid") != grid_record(grid) or old.body.get("harmonize") != bool(harmonize):
        return {}
    return {e["path"]: e for e in old.entries}


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
        "reflectance_scale": REFLECTANCE_SCALE,
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
        error = user_error_for(exc, folder, RESUME_NOTE)
        raise error or SatPluginError(f"Cannot write {target}: {exc.strerror or exc}. {RESUME_NOTE}") from exc
    return target
