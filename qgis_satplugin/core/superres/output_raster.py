"""The super-resolved raster, written strip by strip under a temporary name.

Finished rows arrive top to bottom; they are written in whole rows of the file's
256-px blocks (so no compressed block is ever rewritten) on a background thread, which
overlaps compression with inference. On success, internal overviews are added (so QGIS
draws a large output at once) and the file is renamed onto its final name: a failure,
a full disk or a cancel leaves no partial file and keeps a previous output.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..atomic import AtomicOutputs
from ..grid import PixelGrid

BLOCK = 256


class OutputRaster:
    def __init__(self, path, grid: PixelGrid, count: int, dtype: str, nodata):
        import rasterio

        self.path = Path(path)
        self.grid = grid
        self._atomic = AtomicOutputs([self.path])
        self._temp = self._atomic.__enter__()[self.path]
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        predictor = 3 if self.dtype.kind == "f" else 2
        self._ds = rasterio.open(
            self._temp, "w", driver="GTiff", width=grid.width, height=grid.height, count=count,
            dtype=self.dtype.name, nodata=nodata, crs=grid.pyproj_crs().to_wkt(), transform=grid.transform,
            tiled=True, blockxsize=BLOCK, blockysize=BLOCK, compress="zstd", zstd_level=1, predictor=predictor,
            interleave="pixel" if count <= 4 else "band", BIGTIFF="IF_SAFER",
        )
        self._pending = []  # arrays [count, rows, width] not yet written
        self._pending_rows = 0
        self._next_row = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superres-write")
        self._job = None

    @property
    def finished(self) -> bool:
        """True once the file is closed: committed by :meth:`finish` or dropped by :meth:`abort`."""
        return self._ds.closed

    def append(self, rows: np.ndarray) -> None:
        """The next ``rows`` ([count, n, width]) from the top; written once whole blocks are in."""
        self._pending.append(rows.astype(self.dtype, copy=False))
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
        window = ((self._next_row, self._next_row + n), (0, self.grid.width))
        self._next_row += n
        self._job = self._pool.submit(self._ds.write, np.ascontiguousarray(head), window=window)

    def _wait(self) -> None:
        if self._job is not None:
            job, self._job = self._job, None
            job.result()  # re-raises a write error (a full disk) here, in the caller's thread

    def finish(self, *, descriptions, units, tags: dict, band_tags: list, scales=None) -> Path:
        """Write what is left and the metadata, add overviews, rename onto the final path."""
        from rasterio.enums import Resampling

        try:
            if self._pending_rows:
                self._flush(whole_blocks=False)
            self._wait()
            if self._next_row != self.grid.height:
                raise RuntimeError(f"{self._next_row} of {self.grid.height} rows written")
            ds = self._ds
            for i, (text, unit) in enumerate(zip(descriptions, units), start=1):
                ds.set_band_description(i, text)
                ds.set_band_unit(i, unit)
                ds.update_tags(i, **band_tags[i - 1])
            if scales is not None:
                ds.scales = tuple(float(s) for s in scales)
            ds.update_tags(**{k: str(v) for k, v in tags.items()})
            factors = []
            size = max(self.grid.width, self.grid.height)
            while size > BLOCK:
                factors.append(2 ** (len(factors) + 1))
                size //= 2
            if factors:
                ds.build_overviews(factors, Resampling.average)
            ds.close()
            self._pool.shutdown()
        except BaseException as exc:
            self.abort(exc)
            raise
        self._atomic.__exit__(None, None, None)
        return self.path

    def abort(self, exc: BaseException) -> None:
        """Drop the temporary file after ``exc``; a full disk or a refused write becomes a clear error."""
        self._discard()
        self._atomic.__exit__(type(exc), exc, exc.__traceback__)

    def _discard(self) -> None:
        try:
            self._wait()
        except Exception:
            pass
        self._pool.shutdown()
        if not self._ds.closed:
            self._ds.close()
        self._atomic.discard()
