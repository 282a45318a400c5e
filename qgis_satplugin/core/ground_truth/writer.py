"""The output files: the rasters opened on the grid, strips written behind the computation, checks.

Every raster is a tiled GeoTIFF on the grid (:meth:`PixelGrid.geotiff_profile`), ZSTD
compressed, with its band description and tags. Strips are written on one background
thread; after the run each file is checked whole before it takes its final name.
"""
from __future__ import annotations

import csv
import errno
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import is_disk_full
from ..class_table import ClassTable
from ..errors import SatPluginError
from ..grid import PixelGrid
from .distance import DistanceWindow

CONFLICT_CODES = "0 none; 1 partly covered by polygons of different classes; 2 inside one polygon and covered by another"
ID_NODATA = -1
FLOAT_NODATA = -1.0
CONFLICT_NODATA = 255
SOURCE_TAG = "satplugin:rasterizegroundtruth"


class StripWriter:
    """Writes finished strips on one background thread.

    Compression and the distance transform release the GIL, so they overlap the next
    strip's coverage computation. At most one strip is in flight, which keeps memory at
    two strips.
    """

    def __init__(self, datasets, pixel_size):
        self.datasets = datasets
        self.distance = DistanceWindow(pixel_size) if "distance" in datasets else None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satplugin-writer")
        self.pending = None

    def submit(self, row0, layers):
        self._wait()
        self.pending = self.pool.submit(self._write, row0, layers)

    def _write(self, row0, layers):
        for name, values in layers.items():
            if name in self.datasets:
                write_rows(self.datasets[name], row0, values)
        if self.distance is not None:
            done = self.distance.push(row0, layers["id"])
            if done:
                write_rows(self.datasets["distance"], *done)

    def _wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # re-raises a write error (a full disk) in the caller

    def finish(self):
        self._wait()
        if self.distance is not None:
            write_rows(self.datasets["distance"], *self.distance.finish())

    def close(self):
        """Stop and close everything, after success or failure alike."""
        if self.pending is not None:
            self.pending.exception()  # wait; the first error is already propagating
            self.pending = None
        self.pool.shutdown(wait=True)
        for dataset in self.datasets.values():
            dataset.close()


def open_rasters(temp_paths, grid: PixelGrid, table: ClassTable):
    """Output name -> rasterio dataset open for writing at each (temporary) path."""
    import rasterio

    specs = {
        "class": (table.dtype, table.nodata, "class", {"CLASS_TABLE": table.to_json()}),
        "id": (np.int32, ID_NODATA, "parcel_id", {}),
        "coverage": (np.float32, FLOAT_NODATA, "coverage", {}),
        "conflict": (np.uint8, CONFLICT_NODATA, "conflict", {"CONFLICT_CODES": CONFLICT_CODES}),
        "distance": (np.float32, FLOAT_NODATA, "distance_m", {"UNITS": "metre"}),
    }
    datasets = {}
    for name, path in temp_paths.items():
        dtype, nodata, description, tags = specs[name]
        ds = rasterio.open(
            path,
            "w",
            **grid.geotiff_profile(1, dtype, nodata),
            # ZSTD level 1 writes 4x faster than DEFLATE here, and smaller; QGIS's GDAL reads it.
            compress="zstd",
            zstd_level=1,
            num_threads=1,
        )
        ds.set_band_description(1, description)
        ds.update_tags(1, **tags)
        ds.update_tags(SOURCE=SOURCE_TAG)
        datasets[name] = ds
    return datasets


def write_rows(dataset, row0, values):
    dataset.write(values, 1, window=((row0, row0 + values.shape[0]), (0, values.shape[1])))


def update_class_table_tag(path, table: ClassTable):
    """Store the final table (with pixel counts) in the class raster's metadata."""
    import rasterio

    with rasterio.open(path, "r+") as ds:
        ds.update_tags(1, CLASS_TABLE=table.to_json())


def raster_check(grid: PixelGrid, name: str, table: ClassTable):
    """A check that a written raster is whole: its header, shape and tags, every block.

    GDAL may report a block it could not flush at close (a full disk) as a warning
    only. Every block must have bytes that lie inside the file (read from the TIFF's
    tile tables, a few milliseconds for a full tile), and the last one must decode;
    decoding all of them would add seconds per raster.
    """
    expected_tag = {"class": "CLASS_TABLE", "conflict": "CONFLICT_CODES", "distance": "UNITS"}.get(name)

    def check(path: Path) -> None:
        import rasterio
        from rasterio.errors import RasterioError

        try:
            with rasterio.open(path) as ds:
                if (ds.width, ds.height, ds.count) != (grid.width, grid.height, 1):
                    raise SatPluginError(f"The {name} raster was written incompletely ({path.name}).")
                if expected_tag and expected_tag not in ds.tags(1):
                    raise SatPluginError(f"The {name} raster lost its {expected_tag} tag while being written.")
                windows = list(ds.block_windows(1))
                sizes = [ds.block_size(1, i, j) for (i, j), _ in windows]
                if min(sizes) <= 0 or sum(sizes) > path.stat().st_size:
                    raise SatPluginError(f"The {name} raster was written incompletely ({path.name}).")
                ds.read(1, window=windows[-1][1])
        except RasterioError as exc:
            if is_disk_full(exc):
                raise OSError(errno.ENOSPC, str(exc)) from exc
            raise SatPluginError(
                f"The {name} raster could not be read back after writing ({exc}); the disk may be full or failing."
            ) from exc

    return check


def class_table_check(table: ClassTable):
    """A check that the class table file holds every row of ``table``."""

    def check(path: Path) -> None:
        expected = len(list(table.rows()))
        with open(path, encoding="utf-8", newline="") as f:
            found = len(json.load(f)) if path.suffix.lower() == ".json" else sum(1 for _ in csv.reader(f)) - 1
        if found != expected:
            raise SatPluginError(f"The class table was written incompletely ({found} of {expected} rows).")

    return check
