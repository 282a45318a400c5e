"""Which bands go into a sample, and at which pixel size.

``resample``: every band on the image grid (one array [T, C, P, P]), what most models
take; ``sharpened`` is the same layout, its 20 m bands sharpened first (:mod:`.sharpening`).
``native``: bands grouped by their native Sentinel-2 resolution as DeepSatData keeps them
(10 m at P, 20 m at P/2, 60 m at P/6 px). The download step writes every band on one grid,
so the coarser groups are rebuilt here by averaging blocks of the image grid (2 x 2 for
20 m bands, 6 x 6 for 60 m bands on a 10 m grid), ignoring no-data
pixels. For bands that were resampled from their native grid, the block mean is close to
(not bit-identical with) the original product's pixel; where the image grid's origin sits
on the 60 m Sentinel-2 lattice the blocks coincide with the native pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SatPluginError
from ..sentinel2 import L1C_BANDS, NATIVE_RESOLUTION_M

RESOLUTION_TOLERANCE = 1e-3  # relative; resampled rasters often carry 9.9948 m pixels


@dataclass(frozen=True)
class BandGroup:
    """Bands stored together: ``key`` names the array (``images`` or ``images_20m``)."""

    key: str
    bands: tuple[str, ...]
    factor: int  # image pixels per output pixel along each axis
    band_index: tuple[int, ...]  # position of each band in the exported band list


@dataclass(frozen=True)
class BandLayout:
    bands: tuple[str, ...]
    groups: tuple[BandGroup, ...]
    mode: str

    @property
    def align(self) -> int:
        """Window offsets must be multiples of this, so coarse pixels stay on their lattice."""
        return max(g.factor for g in self.groups)

    def describe(self) -> list[dict]:
        return [{"key": g.key, "bands": list(g.bands), "factor": g.factor} for g in self.groups]


def band_layout(bands: list[str], mode: str, pixel_size: float, patch_size: int, stride: int) -> BandLayout:
    if mode in ("resample", "sharpened"):  # sharpened: every band on the 10 m image grid too
        return BandLayout(tuple(bands), (BandGroup("images", tuple(bands), 1, tuple(range(len(bands)))),), mode)
    if mode != "native":
        raise SatPluginError(f"band_resolution must be 'resample', 'native' or 'sharpened', got {mode!r}.")
    by_res: dict[int, list[int]] = {}
    for i, band in enumerate(bands):
        if band not in L1C_BANDS:  # spectral bands only: a mask is not an image band
            raise SatPluginError(
                f"band_resolution='native' needs Sentinel-2 band names; band {i + 1} is {band!r}. "
                "Use band_resolution='resample'."
            )
        by_res.setdefault(NATIVE_RESOLUTION_M[band], []).append(i)
    groups = []
    for res in sorted(by_res):
        ratio = res / pixel_size
        factor = int(round(ratio))
        if factor < 1 or abs(ratio - factor) > RESOLUTION_TOLERANCE * ratio:
            raise SatPluginError(
                f"band_resolution='native' needs an image grid whose pixel divides the bands' native "
                f"{res} m; this grid has {pixel_size:g} m pixels. Use band_resolution='resample'."
            )
        for what, value in (("patch_size", patch_size), ("stride", stride)):
            if value % factor:
                raise SatPluginError(
                    f"With band_resolution='native' and {res} m bands, {what} must be a multiple of {factor} "
                    f"image pixels (got {value}), so the {res} m pixels line up."
                )
        idx = by_res[res]
        groups.append(BandGroup(f"images_{res}m", tuple(bands[i] for i in idx), factor, tuple(idx)))
    return BandLayout(tuple(bands), tuple(groups), mode)


def block_mean(values: np.ndarray, factor: int, nodata) -> np.ndarray:
    """Mean of ``factor`` x ``factor`` blocks over the last two axes, skipping no-data.

    A block with no valid pixel stays no-data. Rounded to the nearest integer DN (half to
    even) and kept in the input's dtype.
    """
    if factor == 1:
        return values
    *lead, h, w = values.shape
    blocks = values.reshape(*lead, h // factor, factor, w // factor, factor)
    if nodata is None:
        mean = blocks.mean(axis=(-3, -1), dtype=np.float64)
        return np.rint(mean).astype(values.dtype)
    valid = blocks != nodata
    total = np.where(valid, blocks, 0).sum(axis=(-3, -1), dtype=np.float64)
    count = valid.sum(axis=(-3, -1))
    out = np.full(total.shape, nodata, dtype=values.dtype)
    has = count > 0
    out[has] = np.rint(total[has] / count[has]).astype(values.dtype)
    return out
