"""Reading the revisit stack strip by strip, as the model wants it.

A strip is a band of raster rows, padded by reflection where it runs past the raster's
edge (so edge tiles see plausible context instead of the network's zero padding), with
every revisit and band converted to the model's input: reflectance from the file's own
scale and offset (the contract's ``dn_scale``/``dn_offset`` say what the model was trained
on; the file says what its numbers mean), then ``(reflectance - mean) / std``. Values are computed from the 16-bit
digital numbers in float32, which holds every uint16 value exactly: the whole 16-bit range
goes through without truncation or wrap.

Pixels a revisit cannot supply (no data, or cloud where it has a mask, grown by
``CLOUD_BUFFER`` pixels) are filled, per pixel, from the first revisit in the stack's order
that can: a cloudy reference pixel
takes the next clearest date's value instead of feeding the cloud. Pixels no revisit
has any data for are reported as invalid, and come out as no data.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

from ..image_series.reader import ImageSeries
from ..sentinel2 import MASK_CLOUD_VALUES, MASK_NODATA
from .contract import ModelContract
from .tiling import TileLayout

# Cloud masks miss the thin, bright edges of clouds and shadows; treating a 2-px ring
# around them as cloudy too keeps those edges out of the fused image.
CLOUD_BUFFER = 2


def _buffer(flags: np.ndarray, pixels: int) -> np.ndarray:
    """``flags`` grown by ``pixels`` in every direction (a square structuring element)."""
    if pixels < 1 or not flags.any():
        return flags
    import cv2

    kernel = np.ones((2 * pixels + 1, 2 * pixels + 1), dtype=np.uint8)
    return cv2.dilate(flags.astype(np.uint8), kernel).astype(bool)


@dataclass
class Strip:
    values: np.ndarray  # float32 [revisits, bands, rows, padded width], model-normalised
    valid: np.ndarray  # bool [rows, padded width]: some revisit has data there


class StripReader:
    """Reads padded strips of the chosen revisits; keeps their files open between strips."""

    def __init__(self, series: ImageSeries, chosen: list, band_positions: list, contract: ModelContract,
                 layout: TileLayout):
        import rasterio

        self.series = series
        self.order = [r.index for r in chosen]
        self.positions = band_positions
        self.margin = layout.margin
        self.padded_width = layout.padded_width  # the margin on the left; the rest of the padding on the right
        self.file_bands = [series.band_index[p] for p in band_positions]
        # Per date and band: reflectance = scale * DN + offset (the files' own tags, or the
        # Sentinel-2 convention, which ImageSeries assumes and logs for untagged integer files);
        # model input = (reflectance - mean) / std, folded into one multiply-add per value.
        mean, std = np.asarray(contract.mean), np.asarray(contract.std)
        scales, offsets = series.scales[:, band_positions], series.offsets[:, band_positions]
        self.gain = (scales / std).astype(np.float32)[:, :, None, None]
        self.bias = ((offsets - mean) / std).astype(np.float32)[:, :, None, None]
        unique = sorted(set(self.order))
        self._images = {i: rasterio.open(series.images[i].path) for i in unique}
        self._masks = {i: rasterio.open(series.images[i].mask_path) for i in unique
                       if series.images[i].mask_path is not None}
        # The run prefetches the next strip in a thread while it may read rows of context in its own:
        # one reader's open files serve one read at a time.
        self._lock = threading.Lock()

    def close(self):
        for ds in [*self._images.values(), *self._masks.values()]:
            ds.close()

    def read(self, padded_row: int, rows: int) -> Strip:
        """Padded rows ``[padded_row, padded_row + rows)``; padded row r is raster row r - margin."""
        with self._lock:
            return self._read(padded_row, rows)

    def _read(self, padded_row: int, rows: int) -> Strip:
        height, width = self.series.grid.height, self.series.grid.width
        top = padded_row - self.margin
        a, b = max(0, top), min(height, top + rows)
        window = ((a, b), (0, width))
        nodata = self.series.nodata
        norm, has_data, clear = {}, {}, {}
        for i in set(self.order):
            dn = self._images[i].read(self.file_bands, window=window)
            has_data[i] = _has_data(dn, nodata)
            clear[i] = has_data[i]
            if i in self._masks:
                clear[i] = has_data[i] & self._clear_of_cloud(i, a, b)
            values = dn.astype(np.float32)
            values *= self.gain[i]
            values += self.bias[i]
            norm[i] = values
        # Written straight into the padded buffer: one copy of the strip, not three.
        pad_rows, pad_cols = (a - top, top + rows - b), (self.margin, self.padded_width - width - self.margin)
        n_bands = len(self.positions)
        values = np.empty((len(self.order), n_bands, rows, self.padded_width), dtype=np.float32)
        inner = values[:, :, pad_rows[0]:pad_rows[0] + (b - a), self.margin:self.margin + width]
        for n, i in enumerate(self.order):
            inner[n] = norm[i]
        valid = _fill_from_stack(inner, np.stack([clear[i] for i in self.order]),
                                 np.stack([has_data[i] for i in self.order]))
        valid_padded = np.empty((rows, self.padded_width), dtype=bool)
        valid_padded[pad_rows[0]:pad_rows[0] + (b - a), self.margin:self.margin + width] = valid
        for array in (values, valid_padded):
            _reflect_edges(array, pad_rows, pad_cols)
        return Strip(values, valid_padded)


    def _clear_of_cloud(self, i: int, a: int, b: int) -> np.ndarray:
        """Rows ``[a, b)`` of date ``i``: not cloud (nor within ``CLOUD_BUFFER`` px of one) and not no data.

        The mask is read ``CLOUD_BUFFER`` rows beyond the strip on both sides, so that a
        cloud just outside the strip grows into it as it does in the strip next to it: the
        buffer, hence the fill, does not depend on where the tiles split the raster.
        """
        kind = self.series.images[i].mask_kind or "SCL"
        a0, b0 = max(0, a - CLOUD_BUFFER), min(self.series.grid.height, b + CLOUD_BUFFER)
        mask = self._masks[i].read(1, window=((a0, b0), (0, self.series.grid.width)))
        cloud = _buffer(np.isin(mask, MASK_CLOUD_VALUES[kind]), CLOUD_BUFFER)[a - a0:b - a0]
        return ~cloud & (mask[a - a0:b - a0] != MASK_NODATA[kind])


def _reflect_index(before: int, n: int, after: int) -> np.ndarray:
    """For each padded position, the inner position it mirrors (reflection without the edge)."""
    idx = np.abs(np.arange(-before, n + after))
    period = 2 * (n - 1) if n > 1 else 1
    idx = idx % period if n > 1 else np.zeros_like(idx)
    return np.where(idx >= n, period - idx, idx)


def _reflect_edges(array: np.ndarray, pad_rows: tuple, pad_cols: tuple) -> None:
    """Fill the padding of ``array`` (last two axes) in place by reflecting its inner part."""
    (top, bottom), (left, right) = pad_rows, pad_cols
    rows, cols = array.shape[-2:]
    n_rows, n_cols = rows - top - bottom, cols - left - right
    inner_cols = slice(left, left + n_cols)
    if top or bottom:
        idx = _reflect_index(top, n_rows, bottom) + top
        edge = np.r_[0:top, top + n_rows:rows]
        array[..., edge, inner_cols] = array[..., idx[edge], inner_cols]
    if left or right:  # after the rows, so that the corners mirror too
        idx = _reflect_index(left, n_cols, right) + left
        edge = np.r_[0:left, left + n_cols:cols]
        array[..., edge] = array[..., idx[edge]]


def _has_data(dn: np.ndarray, nodata) -> np.ndarray:
    """[h, w]: where every band of ``dn`` [C, h, w] holds a value: not no-data, and (float DN) not NaN,
    which no comparison with a NaN no-data value finds, and which would spread through the network."""
    has = np.ones(dn.shape[1:], dtype=bool) if dn.dtype.kind != "f" else np.isfinite(dn).all(axis=0)
    if nodata is not None and not np.isnan(nodata):
        has &= np.all(dn != nodata, axis=0)
    return has


def _fill_from_stack(stack: np.ndarray, clear: np.ndarray, has_data: np.ndarray) -> np.ndarray:
    """In place: replace what each revisit cannot supply by the first revisit that can
    (see the module docstring). Returns where some revisit has data."""
    valid = has_data.any(axis=0)
    if clear.all():
        return valid
    # Per pixel, the first clear revisit; else the first with data (cloudy beats nothing).
    any_clear = clear.any(axis=0)
    source = np.where(any_clear, np.argmax(clear, axis=0), np.argmax(has_data, axis=0))
    fill = np.take_along_axis(stack, source[None, None], axis=0)[0]  # [C, h, w]
    use_own = np.where(any_clear[None], clear, has_data)
    for n in range(stack.shape[0]):
        np.copyto(stack[n], fill, where=~use_own[n][None])
    stack[:, :, ~valid] = 0.0  # the band means: neutral input where nothing is known
    return valid
