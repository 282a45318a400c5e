"""Synthetic download folders for tests, benchmarks and demos (deterministic per seed).

A folder looks like the download step's output: one multi-band uint16 GeoTIFF per date
(band descriptions, scale 0.0001, no-data 0, ``ACQUISITION_DATETIME`` tag), its SCL mask
(``..._SCL.tif``, uint8, no-data 0) and a ``manifest.json``. Every pixel's value varies
with its position, band and date, so a patch cut from the wrong place or date shows.
Callers can pass exact SCL arrays to test the cloud filter pixel by pixel.
"""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from ..grid import PixelGrid
from ..sentinel2 import REFLECTANCE_SCALE, SCL_CLOUD_MEDIUM, SCL_NOT_VEGETATED, SCL_VEGETATION
from .dates import DATE_TAG, iso_z

BASE_REFLECTANCE = {"B01": 0.06, "B02": 0.05, "B03": 0.08, "B04": 0.07, "B05": 0.12, "B06": 0.2, "B07": 0.24,
                    "B08": 0.3, "B8A": 0.31, "B09": 0.1, "B10": 0.01, "B11": 0.2, "B12": 0.12}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def synthetic_image(grid: PixelGrid, bands, t: int, seed: int) -> np.ndarray:
    """[C, H, W] uint16 DN (1..65535): a smooth field + per-pixel noise + a date term."""
    rng = np.random.default_rng([seed, t])
    h, w = grid.height, grid.width
    yy = np.linspace(0, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(0, 1, w, dtype=np.float32)[None, :]
    smooth = 0.05 * np.sin(6.0 * xx + 4.0 * yy + 0.3 * t)
    out = np.empty((len(bands), h, w), dtype=np.uint16)
    for c, band in enumerate(bands):
        noise = rng.integers(0, 200, size=(h, w), dtype=np.int32)
        dn = (BASE_REFLECTANCE.get(band, 0.1) + smooth + 0.01 * t) * 10000 + noise
        out[c] = np.clip(dn, 1, 65535).astype(np.uint16)
    return out


def synthetic_scl(grid: PixelGrid, t: int, seed: int, cloud_cover: float) -> np.ndarray:
    """Vegetation/soil with a cloud blob covering about ``cloud_cover`` % of the grid."""
    rng = np.random.default_rng([seed, t, 7])
    scl = np.where(rng.random((grid.height, grid.width)) < 0.5, SCL_VEGETATION, SCL_NOT_VEGETATED).astype(np.uint8)
    if cloud_cover > 0:
        cy, cx = rng.random(2) * (grid.height, grid.width)
        yy, xx = np.mgrid[0 : grid.height, 0 : grid.width]
        dist = np.hypot(yy - cy, xx - cx)
        scl[dist <= np.quantile(dist, cloud_cover / 100.0)] = SCL_CLOUD_MEDIUM
    return scl


def _write(path: Path, data: np.ndarray, grid: PixelGrid, nodata, descriptions=None, tags=None, scale=None, block=256):
    import rasterio

    profile = dict(driver="GTiff", width=grid.width, height=grid.height, count=data.shape[0], dtype=data.dtype.name,
                   crs=grid.pyproj_crs().to_wkt(), transform=grid.transform, nodata=nodata, compress="zstd",
                   zstd_level=1, interleave="band")
    if grid.width >= block and grid.height >= block:
        profile.update(tiled=True, blockxsize=block, blockysize=block)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
        if descriptions:
            for i, text in enumerate(descriptions, start=1):
                ds.set_band_description(i, text)
        if scale is not None:
            ds.scales = (scale,) * data.shape[0]
            ds.offsets = (0.0,) * data.shape[0]
        if tags:
            ds.update_tags(**tags)


def write_download_folder(folder, grid: PixelGrid, dates: list, bands=("B02", "B03", "B04", "B08"), seed: int = 0,
                          cloud_cover=None, scl: dict | None = None, masks: bool = True, nodata_cols: dict | None = None,
                          block: int = 256) -> Path:
    """Write a download folder; returns it. ``dates`` are aware datetimes.

    ``cloud_cover``: % per date (default 0); ``scl``: {date index: exact SCL array};
    ``nodata_cols``: {date index: n} sets the first n columns to no-data (a swath edge).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for t, when in enumerate(dates):
        stem = f"{when:%Y%m%dT%H%M%S}_S2B_T33TVM"
        image = synthetic_image(grid, bands, t, seed)
        mask = (scl or {}).get(t)
        if mask is None:
            mask = synthetic_scl(grid, t, seed, (cloud_cover or [0] * len(dates))[t])
        mask = np.asarray(mask, dtype=np.uint8).copy()
        n = (nodata_cols or {}).get(t, 0)
        if n:
            image[:, :, :n] = 0
            mask[:, :n] = 0
        _write(folder / f"{stem}.tif", image, grid, 0, list(bands), {DATE_TAG: iso_z(when)}, REFLECTANCE_SCALE, block)
        entries = [(f"{stem}.tif", "image")]
        if masks:
            _write(folder / f"{stem}_SCL.tif", mask[None], grid, 0, ["SCL"], {DATE_TAG: iso_z(when)}, None, block)
            entries.append((f"{stem}_SCL.tif", "mask"))
        for name, kind in entries:
            files.append({"path": name, "kind": kind, "datetime": iso_z(when), "product_ids": [f"SYNTHETIC_{stem}"],
                          "size": (folder / name).stat().st_size, "sha256": _sha256(folder / name),
                          **({"mask": "SCL"} if kind == "mask" else {})})
    t = grid.transform
    manifest = {
        "format": "satplugin-download/1",
        "complete": True,
        "grid": {"crs": grid.crs, "transform": [t.a, t.b, t.c, t.d, t.e, t.f], "width": grid.width,
                 "height": grid.height, "pixel_size": [grid.pixel_width, grid.pixel_height], "bounds": list(grid.bounds)},
        "bands": list(bands),
        "harmonize": True,
        "reflectance_scale": REFLECTANCE_SCALE,
        "nodata": 0,
        "dates": [iso_z(d) for d in dates],
        "files": files,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return folder


def date_series(start: datetime, n: int, every_days: int = 5) -> list:
    """``n`` dates from ``start``, one every ``every_days`` days."""
    return [start + timedelta(days=every_days * i) for i in range(n)]
