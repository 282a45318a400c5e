"""Reading the revisit stack strip by strip, as the model wants it.

A strip is a band of raster rows, padded by reflection where it runs past the raster's
edge (so edge tiles see plausible context instead of the network's zero padding), with
every revisit and band converted to the model's input: reflectance from the file's own
scale and offset (the contract's ``dn_scale``/``dn_offset`` say what the model was trained
on; the file says what its numbers mean), then ``(reflectance - mean) / std``. Values are computed from the 16-bit
digital numbers in float32, which holds every uint16 value exactly: the whole 16-bit range
goes through without truncation or wrap.

Pixels a revisit cannot supply (no data, or cloud where it has a mask) are filled, per
pixel, from the first revisit in the stack's order that can: a cloudy reference pixel
takes the next clearest date's value instead of feeding the cloud. Pixels no revisit
has any data for are reported as invalid, and come out as no data.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..export.image_series import ImageSeries
from ..export.plan import CLOUD_VALUES, MASK_NODATA
from .contract import ModelContract


@dataclass
class Strip:
    values: np.ndarray  # float32 [revisits, bands, rows, padded width], model-normalised
    valid: np.ndarray  # bool [rows, padded width]: some revisit has data there


def _pad_mode(length: int) -> str:
    return "reflect" if length > 1 else "edge"


class StripReader:
    """Reads padded strips of the chosen revisits; keeps their files open between strips."""

    def __init__(self, series: ImageSeries, chosen: list, band_positions: list, contract: ModelContract, margin: int):
        import rasterio

        self.series = series
        self.order = [r.index for r in chosen]
        self.positions = band_positions
        self.margin = margin
        self.file_bands = [series.band_index[p] for p in band_positions]
        self.mean = np.asarray(contract.mean, dtype=np.float32)[:, None, None]
        self.std = np.asarray(contract.std, dtype=np.float32)[:, None, None]
        # Per date and band: reflectance = scale * DN + offset (the files' own tags, or the
        # Sentinel-2 convention, which ImageSeries assumes and logs for untagged integer files).
        self.scales = series.scales[:, band_positions].astype(np.float32)
        self.offsets = series.offsets[:, band_positions].astype(np.float32)
        unique = sorted(set(self.order))
        self._images = {i: rasterio.open(series.images[i].path) for i in unique}
        self._masks = {i: rasterio.open(series.images[i].mask_path) for i in unique
                       if series.images[i].mask_path is not None}

    def close(self):
        for ds in [*self._images.values(), *self._masks.values()]:
            ds.close()

    def read(self, padded_row: int, rows: int) -> Strip:
        """Padded rows ``[padded_row, padded_row + rows)``; padded row r is raster row r - margin."""
        height, width = self.series.grid.height, self.series.grid.width
        top = padded_row - self.margin
        a, b = max(0, top), min(height, top + rows)
        window = ((a, b), (0, width))
        nodata = self.series.nodata
        cache = {}
        for i in set(self.order):
            dn = self._images[i].read(self.file_bands, window=window)
            has_data = np.ones(dn.shape[1:], dtype=bool) if nodata is None else np.all(dn != nodata, axis=0)
            clear = has_data
            if i in self._masks:
                kind = self.series.images[i].mask_kind or "SCL"
                mask = self._masks[i].read(1, window=window)
                clear = has_data & ~np.isin(mask, CLOUD_VALUES[kind]) & (mask != MASK_NODATA[kind])
            refl = dn.astype(np.float32) * self.scales[i][:, None, None] + self.offsets[i][:, None, None]
            cache[i] = ((refl - self.mean) / self.std, has_data, clear)
        stack = np.stack([cache[i][0] for i in self.order])  # [N, C, h, w]
        has_data = np.stack([cache[i][1] for i in self.order])
        clear = np.stack([cache[i][2] for i in self.order])
        filled, valid = _fill_from_stack(stack, clear, has_data)
        pad_rows = (a - top, top + rows - b)
        pad = ((0, 0), (0, 0), pad_rows, (self.margin, self.margin))
        values = np.pad(filled, pad, mode=_pad_mode(min(b - a, width)))
        valid = np.pad(valid, (pad_rows, (self.margin, self.margin)), mode=_pad_mode(min(b - a, width)))
        return Strip(values, valid)


def _fill_from_stack(stack: np.ndarray, clear: np.ndarray, has_data: np.ndarray):
    """Replace what each revisit cannot supply by the first revisit that can (see module doc)."""
    # Per pixel, the first clear revisit; else the first with data (cloudy beats nothing).
    any_clear = clear.any(axis=0)
    source = np.where(any_clear, np.argmax(clear, axis=0), np.argmax(has_data, axis=0))
    valid = has_data.any(axis=0)
    fill = np.take_along_axis(stack, source[None, None], axis=0)[0]  # [C, h, w]
    use_own = np.where(any_clear[None], clear, has_data)
    out = np.where(use_own[:, None], stack, fill[None])
    out[:, :, ~valid] = 0.0  # the band means: neutral input where nothing is known
    return out, valid
