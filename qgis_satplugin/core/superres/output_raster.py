"""The super-resolved raster, written strip by strip under a temporary name.

Finished rows arrive top to bottom. They are written in whole rows of the file's 256-px
blocks, together with the matching rows of every overview level (2 x 2 means of the
level below, so QGIS draws a large output at once), and flushed, all on a background
thread: compression overlaps inference instead of piling up at close, and no
compressed block is ever rewritten. rasterio's GDAL writes the file, through the few C
calls of :mod:`.gdal_writer` (rasterio itself can neither write an overview level nor
flush a dataset's cache). On success the file is renamed onto its final name: a failure,
a full disk or a cancel leaves no partial file and keeps a previous output.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import AtomicOutputs, user_error_for
from ..grid import PixelGrid
from .gdal_writer import GeoTiff

LOST = "No output was written; a previous file of that name is unchanged."
BLOCK = 256
MAX_LEVELS = 8  # 2**8 = BLOCK: each block row of the file gives whole rows at every level


def overview_factors(width: int, height: int) -> list:
    """2, 4, 8, ... while the overview is still larger than one block."""
    factors = []
    size = max(width, height)
    while size > BLOCK and len(factors) < MAX_LEVELS:
        factors.append(2 ** (len(factors) + 1))
        size = (size + 1) // 2
    return factors


def halve(data: np.ndarray, nodata) -> np.ndarray:
    """2 x 2 means of ``[bands, rows, cols]`` (odd edges padded), ignoring no data."""
    bands, rows, cols = data.shape
    is_float = data.dtype.kind == "f"
    fill = np.nan if is_float else nodata
    if rows % 2 or cols % 2:
        data = np.pad(data, ((0, 0), (0, rows % 2), (0, cols % 2)), constant_values=fill)
    quads = (data[:, 0::2, 0::2], data[:, 0::2, 1::2], data[:, 1::2, 0::2], data[:, 1::2, 1::2])
    missing = [np.isnan(q) for q in quads] if is_float else [q == nodata for q in quads]
    if not any(m.any() for m in missing):  # the usual case: four values everywhere
        if is_float:
            return (quads[0] + quads[1] + quads[2] + quads[3]) * np.float32(0.25)
        total = quads[0].astype(np.uint32) + quads[1] + quads[2] + quads[3]
        return ((total + 2) // 4).astype(data.dtype)
    count = sum((~m).astype(np.uint8) for m in missing)
    total = sum(np.where(m, 0, q).astype(np.float64) for q, m in zip(quads, missing))
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = total / count
    if is_float:
        return np.where(count > 0, mean, np.nan).astype(data.dtype)
    return np.where(count > 0, np.rint(np.nan_to_num(mean)), nodata).astype(data.dtype)


class OutputRaster:
    def __init__(self, path, grid: PixelGrid, count: int, dtype: str, nodata):
        import rasterio

        self.path = Path(path)
        self.grid = grid
        self._atomic = AtomicOutputs([self.path], what="super-resolution")
        self._temp = self._atomic.__enter__()[self.path]
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        predictor = 3 if self.dtype.kind == "f" else 2
        options = ["TILED=YES", f"BLOCKXSIZE={BLOCK}", f"BLOCKYSIZE={BLOCK}", "COMPRESS=ZSTD", "ZSTD_LEVEL=1",
                   f"PREDICTOR={predictor}", "INTERLEAVE=PIXEL" if count <= 4 else "INTERLEAVE=BAND",
                   "BIGTIFF=IF_SAFER"]
        ds = None
        try:
            # An Env points rasterio's GDAL at its data files (a wheel's PROJ database), as for every read.
            with rasterio.Env():
                ds = GeoTiff(self._temp, grid.width, grid.height, count, self.dtype.name, options)
                ds.set_georeferencing(grid.transform.to_gdal(), grid.pyproj_crs().to_wkt())
                ds.set_nodata(float(nodata))
                self.factors = overview_factors(grid.width, grid.height)
                if self.factors:
                    # Internal overviews take the main image's compression and predictor.
                    ds.allocate_overviews(self.factors)  # allocated empty, filled as rows arrive
        except Exception as exc:
            if ds is not None:
                ds.close(check=False)
            self._fail(exc)
            raise
        self._ds = ds
        self._closed = False
        self._pending = []  # arrays [count, rows, width] not yet written
        self._pending_rows = 0
        self._next_row = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superres-write")
        self._job = None

    @property
    def finished(self) -> bool:
        """True once the file is closed: committed by :meth:`finish` or dropped by :meth:`abort`."""
        return self._closed

    def append(self, rows: np.ndarray) -> None:
        """The next ``rows`` ([count, n, width]) from the top; written once whole blocks are in.

        ``rows`` is copied: the caller may reuse its buffer at once."""
        self._pending.append(np.array(rows, dtype=self.dtype))
        self._pending_rows += rows.shape[1]
        if self._pending_rows >= BLOCK:
            self._flush(whole_blocks=True)

    def _flush(self, whole_blocks: bool) -> None:
        data = np.concatenate(self._pending, axis=1) if len(self._pending) > 1 else self._pending[0]
        n = (data.shape[1] // BLOCK) * BLOCK if whole_blocks else data.shape[1]
        head, tail = data[:, :n], data[:, n:]
        self._pending = [tail] if tail.shape[1] else []
        self._pending_rows = tail.shape[1]
        if n == 0:
            return
        self._wait()
        self._job = self._pool.submit(self._write, np.ascontiguousarray(head), self._next_row)
        self._next_row += n

    def _write(self, data: np.ndarray, row: int) -> None:
        """Runs on the writer thread: full resolution, then each overview level, then a flush."""
        self._ds.write(data, row)
        level = data
        for k, factor in enumerate(self.factors):
            level = halve(level, self.nodata)
            top = row // factor
            for b in range(1, data.shape[0] + 1):
                width, height = self._ds.overview_size(b, k)
                rows = min(level.shape[1], height - top)
                self._ds.write_overview(b, k, level[b - 1, :rows, :width], top)
        self._ds.flush()

    def _wait(self) -> None:
        if self._job is not None:
            job, self._job = self._job, None
            job.result()  # re-raises a write error (a full disk) here, in the caller's thread

    def finish(self, *, descriptions, units, tags: dict, band_tags: list, scales=None) -> Path:
        """Write what is left and the metadata, close, rename onto the final path."""
        try:
            if self._pending_rows:
                self._flush(whole_blocks=False)
            self._wait()
            if self._next_row != self.grid.height:
                raise RuntimeError(f"{self._next_row} of {self.grid.height} rows written")
            ds = self._ds
            for i, (text, unit) in enumerate(zip(descriptions, units), start=1):
                ds.describe_band(i, text, unit, {k: str(v) for k, v in band_tags[i - 1].items()},
                                 None if scales is None else scales[i - 1])
            ds.set_metadata({k: str(v) for k, v in tags.items()})
            ds.flush()
            self._close()
            self._pool.shutdown()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException) -> None:
        """Drop the temporary file after ``exc``; a full disk or a refused write raises one clear error."""
        try:
            self._wait()
        except Exception:
            pass
        self._pool.shutdown()
        self._close(check=False)
        self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        # Named before the temp file goes: GDAL reports a full disk without errno, and
        # the temp file is what fills it (see atomic.user_error_for).
        error = user_error_for(exc, self.path.parent, LOST)
        if error is not None:
            self._atomic.__exit__(type(error), error, None)
            raise error from exc
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def _close(self, *, check: bool = True) -> None:
        if not self._closed:
            self._closed = True
            self._ds.close(check=check)
