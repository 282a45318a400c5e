"""Shared fixtures for the export tests: synthetic download folders and label rasters.

(Named test_export_* to live beside the tests; it holds no tests itself.)
"""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import rasterio

from satplugin.qgis_satplugin.core.area import Area
from satplugin.qgis_satplugin.core.export import ExportOptions, SplitArea, run
from satplugin.qgis_satplugin.core.grid import PixelGrid
from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder

CRS = "EPSG:32633"
X0, Y0 = 499980.0, 5000040.0  # on the 60 m Sentinel-2 lattice


def export(images, output_folder, feedback=None, **options):
    """The export of ``images`` into ``output_folder`` with these options."""
    return run(ExportOptions(images=images, output_folder=output_folder, **options), feedback)


def split_areas(pairs, crs: str = CRS) -> tuple:
    """[(shapely geometry in ``crs``, split name)] as the export's split areas."""
    return tuple(SplitArea(Area.from_geometry(geometry, crs), split) for geometry, split in pairs)


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def image_grid(width=200, height=150, pixel=10.0) -> PixelGrid:
    return PixelGrid.square(CRS, X0, Y0, pixel, width, height)


def make_folder(tmp_path: Path, width=200, height=150, n_dates=4, name="download", **kwargs):
    grid = image_grid(width, height)
    dates = kwargs.pop("dates", None) or date_series(utc(2023, 4, 1, 10, 15, 59), n_dates, every_days=10)
    folder = write_download_folder(tmp_path / name, grid, dates, **kwargs)
    return folder, grid, dates


def parcel_labels(folder: Path, grid: PixelGrid, scale: int, n_parcels: int, seed: int) -> dict:
    """Class and parcel-id rasters of synthetic parcels over ``grid``, ``scale`` times finer: {"class", "id"} paths."""
    import shapely

    from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths
    from satplugin.qgis_satplugin.core.ground_truth import run as run_ground_truth
    from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels

    fine = PixelGrid.square(CRS, grid.x_min, grid.y_max, grid.pixel_width / scale, grid.width * scale, grid.height * scale)
    polys, classes, ids = synthetic_parcels(grid.bounds, n_parcels, seed=seed, n_classes=3)
    labels = {"class": folder / "class.tif", "id": folder / "id.tif"}
    run_ground_truth(GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(polys, hex=True).tolist()), class_values=tuple(classes.tolist()), source_crs=CRS,
        grid=fine, outputs=OutputPaths(class_raster=labels["class"], id_raster=labels["id"]),
        parcel_ids=tuple(ids.tolist())))
    return labels


def write_label(path: Path, values: np.ndarray, grid: PixelGrid, scale: int = 1, nodata=None, x_shift_px: float = 0.0,
                row_off: int = 0, col_off: int = 0) -> Path:
    """A label raster on ``grid`` refined ``scale`` times, optionally offset by whole or fractional label pixels."""
    from affine import Affine

    lw, lh = grid.pixel_width / scale, grid.pixel_height / scale
    transform = Affine(lw, 0, grid.x_min + (col_off + x_shift_px) * lw, 0, -lh, grid.y_max - row_off * lh)
    with rasterio.open(path, "w", driver="GTiff", width=values.shape[1], height=values.shape[0], count=1,
                       dtype=values.dtype.name, crs=CRS, transform=transform, nodata=nodata) as ds:
        ds.write(values, 1)
    return path


def position_ids(grid: PixelGrid, scale: int) -> np.ndarray:
    """int32 label raster whose value encodes its own label-pixel position: row * 100000 + col."""
    rows = np.arange(grid.height * scale, dtype=np.int32)[:, None]
    cols = np.arange(grid.width * scale, dtype=np.int32)[None, :]
    return rows * 100000 + cols


def read_window(path: Path, row: int, col: int, size: int, indexes=None) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(indexes, window=((row, row + size), (col, col + size)))


def image_paths(folder: Path) -> list:
    return sorted(p for p in Path(folder).glob("*.tif") if not p.stem.endswith("_SCL"))


def leftovers(parent: Path) -> list:
    """Hidden staging folders left beside an output (there must be none)."""
    return sorted(p.name for p in Path(parent).iterdir() if p.name.startswith(".") and ("partial" in p.name or ".old-" in p.name))
