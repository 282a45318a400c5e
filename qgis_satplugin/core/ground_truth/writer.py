"""The output files: the rasters opened on the grid, strips written behind the computation, checks.

Every raster is a tiled GeoTIFF on the grid (:meth:`PixelGrid.geotiff_profile`), ZSTD
compressed, with its band description and tags. Strips are written by one background
thread while the next ones are burnt and a second one measures distances; after the run
each file is checked whole before it takes its final name.
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
    """Writes finished strips behind the computation: one thread writes, another measures distances.

    Every write goes through the one writing thread, in the same order every run: the
    strips as they came, each distance chunk a fixed number of strips after the strip that
    completes it. GDAL's block cache is shared
    by all open rasters and flushes dirty tiles when it is full: were two threads writing,
    which tile reached a file first would depend on their timing, and two runs would give
    files with the same pixels but different bytes. Compression, the distance transform
    and the burning all release the GIL, so the three run at once. The writing thread
    holds at most two strips; the distance thread at most a chunk's worth of them.
    """

    def __init__(self, datasets, pixel_size, strip_rows: int):
        self.datasets = datasets
        self.distance = DistanceWindow(pixel_size) if "distance" in datasets else None
        # A strip's distances are written this many strips later (a fixed place, so the same
        # order every run), which gives the distance thread that long to measure a chunk.
        self.lag = max(1, self.distance.chunk_rows // strip_rows) if self.distance else 1
        self.measured: list = []  # futures of the distance chunks each strip completes, not yet queued
        # Two strips at most, each job a strip's rasters and then the distance chunks due. A
        # second strip waiting keeps the burning going while the writer waits for a chunk
        # (4.0 s against 4.2 s for a full tile, 25 MB more).
        self.rasters = _Lane("satplugin-writer", 2)
        self.distances = _Lane("satplugin-distance", self.lag)

    def submit(self, row0, layers):
        due = None
        if self.distance is not None:
            self.measured.append(self.distances.submit(self.distance.push, row0, layers["id"]))
            if len(self.measured) > self.lag:
                due = self.measured.pop(0)
        self.rasters.submit(self._write, row0, layers, due)

    def _write(self, row0, layers, due=None):
        for name, values in layers.items():
            if name in self.datasets and name != "distance":
                write_rows(self.datasets[name], row0, values)
        if due is not None:
            self._write_distances(due)

    def _write_distances(self, measured):
        for chunk in measured.result():  # waits for the distance thread if need be; re-raises its error
            write_rows(self.datasets["distance"], *chunk)

    def finish(self):
        if self.distance is not None:
            self.measured.append(self.distances.submit(self.distance.finish))  # the rows left
        while self.measured:
            self.rasters.submit(self._write_distances, self.measured.pop(0))
        self.rasters.wait()

    def close(self):
        """Stop and close everything, after success or failure alike."""
        self.distances.close()  # first: a write waiting for a chunk not yet measured then ends at once
        self.rasters.close()
        for dataset in self.datasets.values():
            dataset.close()


class _Lane:
    """One background thread taking jobs in order, with at most ``depth`` waiting or running."""

    def __init__(self, name: str, depth: int):
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self.depth = depth
        self.pending: list = []

    def submit(self, fn, *args):
        """Queue ``fn(*args)``, after waiting while the lane is full; returns its future."""
        while len(self.pending) >= self.depth:
            self.pending.pop(0).result()  # re-raises a write error (a full disk) in the caller
        job = self.pool.submit(fn, *args)
        self.pending.append(job)
        return job

    def wait(self):
        while self.pending:
            self.pending.pop(0).result()

    def close(self):
        """Drop the jobs not yet started and wait for the running one (its error is not raised again)."""
        for job in self.pending:
            job.cancel()
        self.pending = []
        self.pool.shutdown(wait=True, cancel_futures=True)


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
