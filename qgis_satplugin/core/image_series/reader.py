"""The input time series: one raster per date (and its cloud mask), all on one grid.

Images come either from a download folder, read through its ``manifest.json``, or from a
list of raster paths. Everything the export needs from them (grid, band names, dates,
per-band scale and offset, masks) is gathered and checked here once, before any output
exists, so that a bad input gives one clear message and no partial dataset.

The manifest is read and checked, paths and checksums included, by :mod:`.manifest`
(the one reader of the file); :func:`manifest_images` is the export and super-resolution
view of it: the images, each with its mask.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Optional

import numpy as np
from pyproj import CRS

from ..errors import SatPluginError
from ..feedback import Feedback
from ..grid import PixelGrid
from ..sentinel2 import REFLECTANCE_SCALE, canonical_band_name
from .dates import DATE_TAG, date_from_name, iso_z, parse_iso_datetime
from .manifest import NAME as MANIFEST_NAME
from .manifest import Manifest, listed_path, load_manifest, verify_listed_files

MASK_SUFFIXES = ("_SCL", "_CLM")
# A file that states no scale holds Sentinel-2 digital numbers (reflectance x 10000).
DEFAULT_REFLECTANCE_SCALE = REFLECTANCE_SCALE
RASTER_EXTENSIONS = (".tif", ".tiff", ".vrt", ".jp2", ".img")


@dataclass(frozen=True)
class DateImage:
    """One acquisition: its raster, its datetime (UTC) and, when there is one, its mask."""

    path: Path
    when: Optional[datetime]  # None: undated (accepted only where the caller says so)
    mask_path: Optional[Path] = None
    mask_kind: Optional[str] = None  # "SCL" or "CLM"
    product_id: Optional[str] = None


@dataclass
class ImageSeries:
    grid: PixelGrid
    bands: list  # selected band names, in export order
    band_index: list  # their 1-based indexes in the files
    images: list  # DateImage, sorted by time (undated: in the order given)
    dtype: str
    nodata: Optional[float]
    scales: np.ndarray  # [T, C] of the selected bands: reflectance = scale * DN + offset
    offsets: np.ndarray
    block_rows: int  # height of the files' internal blocks, to size reads
    source: str  # "manifest" or "files"

    @property
    def dates(self) -> list:
        return [im.when for im in self.images]

    @property
    def undated(self) -> bool:
        """True when some image has no date: then the images are in the order they were given."""
        return any(im.when is None for im in self.images)

    def subset(self, keep: np.ndarray) -> "ImageSeries":
        idx = np.flatnonzero(keep)
        return ImageSeries(
            self.grid, self.bands, self.band_index, [self.images[i] for i in idx], self.dtype, self.nodata,
            self.scales[idx], self.offsets[idx], self.block_rows, self.source,
        )


def manifest_images(manifest: Manifest) -> tuple[list, list]:
    """A download's images, each paired with its mask, and the manifest entries of those files.

    Returns ``([{"path", "datetime", "product_id", "mask_path", "mask_kind"}], [entries])``.
    Masks pair with the image of the same name plus ``_SCL`` (or ``_CLM``), else with the
    only mask of the same datetime. An incomplete download is refused.
    """
    folder = manifest.folder
    if not manifest.complete:
        raise SatPluginError(f"The download in {folder} is incomplete ({MANIFEST_NAME} says so); run the download again.")
    entries = manifest.entries
    masks = [e for e in entries if e.get("kind") == "mask" or Path(e["path"]).stem.upper().endswith(MASK_SUFFIXES)]
    images = [e for e in entries if e.get("kind", "image") == "image" and e not in masks]
    out, used = [], []
    for entry in images:
        image_path = listed_path(folder, entry["path"])
        when = entry.get("datetime")
        mask = _pair_mask(image_path, when, masks)
        pid = entry.get("product_id") or ",".join(entry.get("product_ids") or []) or None
        out.append({
            "path": image_path,
            "datetime": when,
            "product_id": pid,
            "mask_path": listed_path(folder, mask["path"]) if mask else None,
            "mask_kind": _mask_kind(mask) if mask else None,
        })
        used += [entry] + ([mask] if mask else [])
    return out, used


def input_paths(images, param: str) -> dict:
    """The image inputs an output must not overwrite, keyed for :func:`..atomic.check_output_paths`."""
    if isinstance(images, (str, Path)):
        return {param: images}
    return {f"{param} ({Path(p).name})": p for p in images or []}


def mask_inputs(series, param: str) -> dict:
    """The cloud masks paired with the series' images: inputs an output must not overwrite either,
    though the user named only the images (``<image>_SCL.tif`` beside a raster given by path)."""
    return {f"{param}'s cloud mask ({Path(r.mask_path).name})": r.mask_path for r in series.images if r.mask_path}


def absolute_inputs(images):
    """A download folder or rasters given by path, as absolute paths (for workers that start elsewhere)."""
    if isinstance(images, (str, Path)):
        return os.path.abspath(images)
    return tuple(os.path.abspath(p) for p in images)


@contextmanager
def input_read_errors(images, labels=None):
    """Turn GDAL's error for an input raster that fails to decode into one sentence naming it.

    Sizes (and, when cheap, checksums) are checked up front (:func:`verify_listed_files`),
    but a damaged block in a large folder, or in a raster given by path, only shows when
    it is read. GDAL's message names the file; an error naming no input (a write) is
    left as it is.
    """
    from rasterio._err import CPLE_BaseError
    from rasterio.errors import RasterioError

    try:
        yield
    except (RasterioError, CPLE_BaseError) as exc:
        # rasterio raises "Read failed. See previous exception": GDAL's own message, the
        # one naming the file, is further down the chain.
        texts, link = [], exc
        while link is not None and len(texts) < 8:
            texts.append(str(link).strip())
            link = link.__cause__ or link.__context__
        names = _input_names(images, labels)
        found = next(((name, text) for text in texts for name in names if name in text), None)
        if found is None:
            raise
        name, text = found
        raise SatPluginError(
            f"Cannot read {name}: it is damaged or truncated ({text}); run the download again into its "
            "folder (it fetches damaged files again), or replace the file."
        ) from exc


def _input_names(images, labels) -> list:
    """Input file paths as GDAL would print them, longest first (a folder's files, masks included)."""
    names = set()
    if isinstance(images, (str, Path)) and Path(images).is_dir():
        folder = Path(images)
        names.update(str(p) for p in folder.glob("*") if p.is_file())
        names.update(str(p) for p in folder.resolve().glob("*") if p.is_file())
    else:
        paths = [images] if isinstance(images, (str, Path)) else list(images or [])
        for p in paths:
            names.update({str(p), str(Path(p).resolve())})
            mask, _ = _mask_beside(Path(p))
            if mask is not None:
                names.add(str(mask))
    for p in (labels or {}).values():
        names.update({str(p), str(Path(p).resolve())})
    return sorted(names, key=len, reverse=True)


def _pair_mask(image_path: Path, when, masks: list) -> Optional[dict]:
    names = {image_path.stem + s for s in MASK_SUFFIXES}
    for m in masks:
        if Path(m["path"]).stem in names:
            return m
    same_time = [m for m in masks if when is not None and m.get("datetime") == when]
    return same_time[0] if len(same_time) == 1 else None


def _mask_kind(entry: dict) -> str:
    declared = str(entry.get("mask") or "").upper()
    if declared in ("SCL", "CLM"):
        return declared
    return "CLM" if Path(entry["path"]).stem.upper().endswith("_CLM") else "SCL"


def _mask_beside(path: Path) -> tuple[Optional[Path], Optional[str]]:
    for suffix in MASK_SUFFIXES:
        candidate = path.with_name(path.stem + suffix + path.suffix)
        if candidate.is_file():
            return candidate, suffix[1:]
    return None, None


def _is_mask_name(path: Path) -> bool:
    return path.stem.upper().endswith(MASK_SUFFIXES)


def _describe_grid(crs, transform, width, height) -> str:
    return f"{width} x {height} px, origin ({transform.c:.3f}, {transform.f:.3f}), pixel {transform.a:g} x {-transform.e:g}, {CRS.from_user_input(crs).to_string()}"


def same_grid(grid: PixelGrid, crs, transform, width, height) -> bool:
    if (width, height) != (grid.width, grid.height):
        return False
    if not CRS.from_user_input(crs).equals(grid.pyproj_crs()):
        return False
    ref = grid.transform
    px = min(grid.pixel_width, grid.pixel_height)
    return (
        abs(transform.b) < 1e-12 and abs(transform.d) < 1e-12
        and abs(transform.a - ref.a) <= 1e-9 * ref.a and abs(transform.e - ref.e) <= 1e-9 * abs(ref.e)
        and abs(transform.c - ref.c) <= 1e-6 * px and abs(transform.f - ref.f) <= 1e-6 * px
    )


def _select_bands(names: list, bands) -> list:
    """1-based indexes of the requested bands (names, or 1-based numbers)."""
    if bands is None:
        return list(range(1, len(names) + 1))
    if isinstance(bands, (str, int)):
        bands = [bands]
    out = []
    for b in bands:
        if isinstance(b, (int, np.integer)) and not isinstance(b, bool):
            if not 1 <= int(b) <= len(names):
                raise SatPluginError(f"Band number {b} does not exist; the images have {len(names)} bands.")
            idx = int(b)
        else:
            key = canonical_band_name(str(b)) or str(b)
            if key not in names:
                raise SatPluginError(f"Band {b!r} is not in the images; they have {', '.join(names)}.")
            idx = names.index(key) + 1
        if idx in out:
            raise SatPluginError(f"Band {b!r} is listed twice.")
        out.append(idx)
    if not out:
        raise SatPluginError("Choose at least one band.")
    return out


def open_image_series(images, bands=None, feedback: Feedback | None = None, undated_ok: bool = False) -> ImageSeries:
    """Check and describe the input series (see the module docstring).

    ``undated_ok``: a raster with no date is accepted (``when`` None) instead of refused, for
    steps that need no date (single-date super-resolution); when any image is undated, the
    images keep the order they were given in.
    """
    import rasterio

    feedback = Feedback.of(feedback)
    manifest = None
    if isinstance(images, (str, Path)) and Path(images).is_dir():
        manifest = load_manifest(images)
        entries, listed = manifest_images(manifest)
        verify_listed_files(images, listed, feedback)
        source = "manifest"
    else:
        paths = [Path(images)] if isinstance(images, (str, Path)) else [Path(p) for p in (images or [])]
        if not paths:
            raise SatPluginError("No images given: choose a download folder or at least one image raster.")
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise SatPluginError(f"These images do not exist: {', '.join(missing)}.")
        listed_masks = {p.resolve() for p in paths if _is_mask_name(p)}
        entries = []
        for p in paths:
            if p.resolve() in listed_masks:
                continue
            mask, kind = _mask_beside(p)
            entries.append({"path": p, "datetime": None, "product_id": None, "mask_path": mask, "mask_kind": kind})
        source = "files"
    if not entries:
        raise SatPluginError("The input holds no image rasters (only masks).")

    grid = manifest.grid if manifest else None
    first_name = None
    names = None
    dtype = nodata = None
    block_rows = 1
    records = []
    scales, offsets = [], []
    for entry in entries:
        path = Path(entry["path"])
        if not path.is_file():
            raise SatPluginError(f"The image {path} listed in the manifest is missing.")
        try:
            ds = rasterio.open(path)
        except Exception as exc:  # rasterio raises its own error types for unreadable files
            raise SatPluginError(
                f"Cannot read {path} as a raster ({exc}); replace the file, or run the download again into its folder."
            ) from exc
        with ds:
            if ds.crs is None:
                raise SatPluginError(f"{path.name} has no coordinate reference system.")
            if grid is None:
                grid = PixelGrid.from_transform(ds.crs.to_wkt(), ds.transform, ds.width, ds.height)
                first_name = path.name
            elif not same_grid(grid, ds.crs.to_wkt(), ds.transform, ds.width, ds.height):
                against = first_name or MANIFEST_NAME
                raise SatPluginError(
                    f"The images are on different grids: {path.name} is {_describe_grid(ds.crs.to_wkt(), ds.transform, ds.width, ds.height)}, "
                    f"{against} is {_describe_grid(grid.crs, grid.transform, grid.width, grid.height)}. "
                    "Images are not resampled here: put every date on one grid first (the download step does, "
                    "or gdalwarp with the same -te, -tr and -t_srs)."
                )
            file_names = _band_names(ds, manifest)
            if names is None:
                names, dtype, nodata = file_names, ds.dtypes[0], ds.nodata
                block_rows = int(ds.block_shapes[0][0])
            elif file_names != names:
                raise SatPluginError(f"{path.name} has bands {', '.join(file_names)}, the other images {', '.join(names)}.")
            elif ds.dtypes[0] != dtype:
                raise SatPluginError(f"{path.name} holds {ds.dtypes[0]}, the other images {dtype}.")
            when = _when(entry, ds, path, undated_ok)
            scales.append(np.asarray(ds.scales, dtype=np.float64))
            offsets.append(np.asarray(ds.offsets, dtype=np.float64))
        if entry["mask_path"] is not None:
            _check_mask(Path(entry["mask_path"]), grid)
        records.append(DateImage(path, when, entry["mask_path"], entry["mask_kind"], entry["product_id"]))

    undated = [r for r in records if r.when is None]
    if undated:
        order = list(range(len(records)))  # the order given: there is no time to sort by
    else:
        order = sorted(range(len(records)), key=lambda i: (records[i].when, str(records[i].path)))
    records = [records[i] for i in order]
    _refuse_repeats(records)
    band_index = _select_bands(names, bands)
    sel = np.asarray(band_index) - 1
    scale_arr = np.stack([scales[i] for i in order])[:, sel]
    offset_arr = np.stack([offsets[i] for i in order])[:, sel]
    if np.all(scale_arr == 1.0) and np.all(offset_arr == 0.0) and np.dtype(dtype).kind in "ui":
        assumed = float((manifest.reflectance_scale if manifest else None) or DEFAULT_REFLECTANCE_SCALE)
        scale_arr = np.full_like(scale_arr, assumed)
        feedback.log(f"The images carry no scale/offset; assuming reflectance = {assumed:g} x DN (Sentinel-2 convention).")
    n_masks = sum(r.mask_path is not None for r in records)
    if undated:
        mixed = len(undated) < len(records)
        what = (f"{len(records)} rasters ({len(undated)} undated: all kept in the order given"
                + (", the dated ones not sorted by date either)" if mixed else ")"))
    else:
        what = (f"1 date ({iso_z(records[0].when)})" if len(records) == 1
                else f"{len(records)} dates ({iso_z(records[0].when)} .. {iso_z(records[-1].when)})")
    feedback.log(f"{what}, {n_masks} with a cloud mask, "
                 f"{len(band_index)} bands, grid {grid.width} x {grid.height} px.")
    return ImageSeries(grid, [names[i - 1] for i in band_index], band_index, records, dtype, nodata,
                       scale_arr, offset_arr, block_rows, source)


def _refuse_repeats(records: list) -> None:
    """One raster given twice, or two rasters of one time, would weigh one acquisition twice."""
    seen_paths, seen_times = {}, {}
    for r in records:
        key = r.path.resolve()
        if key in seen_paths:
            raise SatPluginError(f"{r.path} is given twice (also as {seen_paths[key].path}): give each raster once.")
        seen_paths[key] = r
        if r.when is not None:
            if r.when in seen_times:
                raise SatPluginError(f"{seen_times[r.when].path.name} and {r.path.name} have the same acquisition "
                                     f"time {iso_z(r.when)}.")
            seen_times[r.when] = r


def _band_names(ds, manifest) -> list:
    descriptions = list(ds.descriptions)
    if all(descriptions):
        return [canonical_band_name(d) or d for d in descriptions]
    if manifest and len(manifest.bands) == ds.count:
        return [canonical_band_name(b) or b for b in manifest.bands]
    return [f"band_{i}" for i in range(1, ds.count + 1)]


def _when(entry: dict, ds, path: Path, undated_ok: bool = False) -> Optional[datetime]:
    if entry.get("datetime"):
        return parse_iso_datetime(entry["datetime"])
    tag = ds.tags().get(DATE_TAG)
    if tag:
        return parse_iso_datetime(tag)
    when = date_from_name(path.name)
    if when is None and not undated_ok:
        raise SatPluginError(
            f"Cannot tell the acquisition date of {path.name}: it has no {DATE_TAG} tag and no date "
            "(e.g. 20230612 or 2023-06-12) in its name."
        )
    return when


def _check_mask(path: Path, grid: PixelGrid) -> None:
    import rasterio

    if not path.is_file():
        raise SatPluginError(f"The cloud mask {path} is missing.")
    with rasterio.open(path) as ds:
        if not same_grid(grid, ds.crs.to_wkt() if ds.crs else grid.crs, ds.transform, ds.width, ds.height):
            raise SatPluginError(
                f"The cloud mask {path.name} is not on the images' grid ({_describe_grid(ds.crs.to_wkt(), ds.transform, ds.width, ds.height)}); "
                "resample it (nearest neighbour) onto the image grid."
            )
