"""Output rasters: assembled in a hidden staging file, published as a COG by rename.

Pieces (a band, or a window of all bands) arrive in any order from the download
threads; they are written into an uncompressed, sparse, tiled staging GeoTIFF beside
the output, so memory holds only the pieces in flight, whatever the AOI's size. When
every piece is in, GDAL's COG driver copies the staging file to a hidden temp name
(tiled 512, DEFLATE with a predictor, overviews) and the temp file is renamed onto the
final name (:class:`AtomicOutputs`): only complete files ever carry a final name, and
a full disk or a refused write becomes one clear :class:`SatPluginError`.

Outputs are deterministic: the same pixels and metadata give the same bytes (no
timestamps, fixed options; GDAL's compression threads write blocks in a fixed order),
which is what lets a resumed or retried download be checked against an undisturbed one
by checksum.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import rasterio
from rasterio.shutil import copy as rio_copy

from ..atomic import AtomicOutputs, user_error_for
from ..grid import PixelGrid
from ..image_series.manifest import RESUME_NOTE

COG_OPTIONS = {
    "COMPRESS": "DEFLATE",
    "LEVEL": "6",
    "PREDICTOR": "YES",
    "BLOCKSIZE": "512",
    "OVERVIEWS": "AUTO",
    "NUM_THREADS": "ALL_CPUS",  # the bytes do not depend on it (checked); the time does
    "BIGTIFF": "IF_SAFER",
}


class StagedRaster:
    """A hidden staging GeoTIFF on the output grid that pieces are written into."""

    def __init__(self, final_path: Path, grid: PixelGrid, count: int, dtype, nodata: int):
        self.final_path = Path(final_path)
        self.path = self.final_path.with_name(f".{self.final_path.stem}.staging-{uuid.uuid4().hex[:8]}.tif")
        self.count = count
        self.dtype = np.dtype(dtype)
        self.nodata = nodata
        # Uncompressed and sparse, unlike the outputs: pieces arrive in any order, the COG
        # copy compresses everything once at the end, and blocks not yet written take no space.
        self._ds = rasterio.open(
            self.path,
            "w",
            **grid.geotiff_profile(count, self.dtype.name, nodata),
            interleave="band",
            SPARSE_OK="TRUE",
        )

    def write(self, data: np.ndarray, bands: list[int], window=None) -> None:
        """``data`` is (len(bands), h, w) or (h, w) for one band; ``bands`` are 1-based."""
        if data.ndim == 2:
            data = data[None]
        self._ds.write(data.astype(self.dtype, copy=False), bands, window=window)

    def finish(self, *, descriptions, tags: dict, scales=None, offsets=None, resampling: str = "AVERAGE") -> None:
        """Write the metadata, copy to a COG under a temp name, rename onto ``final_path``."""
        ds = self._ds
        for i, text in enumerate(descriptions, start=1):
            ds.set_band_description(i, text)
        if scales is not None:
            ds.scales = tuple(float(s) for s in scales)
        if offsets is not None:
            ds.offsets = tuple(float(o) for o in offsets)
        ds.update_tags(**{k: str(v) for k, v in tags.items()})
        where = self.final_path.parent
        try:
            try:
                ds.close()  # flushes the last pieces: a full disk may show only here
            except Exception as exc:
                _raise_for_write(exc, where)
            with AtomicOutputs([self.final_path], what="download") as temp:
                try:
                    copy_to_cog(self.path, temp[self.final_path], resampling)
                except Exception as exc:
                    # Named here, while the temp file still takes its space, and with what a
                    # download keeps (the files already published stay).
                    _raise_for_write(exc, where)
        finally:
            self.discard()

    def discard(self) -> None:
        if not self._ds.closed:
            self._ds.close()
        for p in (self.path, Path(str(self.path) + ".aux.xml")):
            try:
                p.unlink(missing_ok=True)
            except OSError:
                pass


def copy_to_cog(staging: Path, target: Path, resampling: str) -> None:
    """GDAL's COG driver; a module function so that tests can make it fail."""
    with rasterio.open(staging) as src:
        rio_copy(src, target, driver="COG", RESAMPLING=resampling, **COG_OPTIONS)


def _raise_for_write(exc: BaseException, where) -> None:
    error = user_error_for(exc, where, RESUME_NOTE)
    if error is None:
        raise exc
    raise error from exc
