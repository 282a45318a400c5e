"""Band-sharpening data: Wald's reduced-resolution protocol on real Sentinel-2 bands.

Native data: the 10 m bands (``FINE_BANDS``) at their resolution and the 20 m bands
(``COARSE_BANDS``) at theirs, on grids that nest (each 20 m pixel covers 2 x 2 10 m ones).

- ``slovenia_s2_l1c/scene_<i>.tif`` stores every band on the 10 m grid; its 20 m bands were
  upsampled there by nearest neighbour, in 2 x 2 blocks that start at row 1, column 0 (checked
  by :func:`slovenia_native`), so rows 1..100 hold 50 x 50 whole 20 m pixels.
- ``s2_l2a_29RKH_100m`` stores each band in its own file, the 10 m bands at 100 m and the 20 m
  bands at 200 m: the same 2:1 nesting at a 10x coarser scale (another continent, desert).

Wald's protocol (Lanchantin et al.'s DSen2 trains the same way): degrade everything by 2, so
that the native 20 m bands become the target.

    fine input   = 10 m bands, 2 x 2 block mean          -> at 20 m
    coarse input = 20 m bands, 2 x 2 block mean          -> 40 m information,
                   then resampled onto the 20 m grid bilinearly by GDAL, as the download step
                   writes 20 m bands onto its 10 m grid
    target       = the 20 m bands at 20 m

The network sees the fine and the coarse input on one grid (as a download folder's raster
holds them) and is scored against the target. ``slovenia_s2_l1c/scene_4`` is held out.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models import data

FINE_BANDS = ("B02", "B03", "B04", "B08")
COARSE_BANDS = ("B05", "B06", "B07", "B8A", "B11", "B12")
INPUT_BANDS = FINE_BANDS + COARSE_BANDS
RESOLUTIONS = (10,) * len(FINE_BANDS) + (20,) * len(COARSE_BANDS)
RATIO = 2  # 20 m / 10 m
SLOVENIA_BLOCK_ORIGIN = (1, 0)  # row, column where the scenes' 2 x 2 blocks of 20 m pixels start
RKH_FOLDER = "s2_l2a_29RKH_100m"


@dataclass
class Native:
    """One scene's bands at their own resolutions, reflectance."""

    name: str
    fine: np.ndarray  # [4, 2H, 2W]
    coarse: np.ndarray  # [6, H, W]


@dataclass
class WaldPair:
    """One scene degraded by 2: the network input on one grid, the target, and the 40 m information."""

    name: str
    inputs: np.ndarray  # [10, H, W]: the fine bands, then the coarse bands resampled onto the grid
    target: np.ndarray  # [6, H, W]: the native coarse bands
    coarse_low: np.ndarray  # [6, H/2, W/2]: what the coarse input knows (baselines upsample this)

    @property
    def coarse_blocks(self) -> np.ndarray:
        """[6, H, W]: ``coarse_low`` in 2 x 2 blocks on the grid (what PRESERVE_REFLECTANCE holds the output to)."""
        return np.repeat(np.repeat(self.coarse_low, RATIO, axis=1), RATIO, axis=2)


def block_mean(image: np.ndarray, factor: int) -> np.ndarray:
    return data.degrade(image, factor)


def slovenia_native(index: int, folder: Path = None) -> Native:
    image = data.read_bands(data.scene_path(index, folder), INPUT_BANDS)
    r, c = SLOVENIA_BLOCK_ORIGIN
    image = image[:, r:, c:]
    image = image[:, : image.shape[1] // RATIO * RATIO, : image.shape[2] // RATIO * RATIO]
    coarse = image[len(FINE_BANDS):]
    blocks = coarse.reshape(coarse.shape[0], coarse.shape[1] // 2, 2, coarse.shape[2] // 2, 2)
    if not (blocks == blocks[:, :, :1, :, :1]).all():
        raise ValueError(f"scene_{index}: the 20 m bands are not in 2 x 2 blocks from row {r}, column {c}")
    return Native(f"slovenia scene_{index}", image[: len(FINE_BANDS)], blocks[:, :, 0, :, 0].copy())


def rkh_native(folder: Path = None) -> Native:
    root = Path(folder or data.real_data_dir()) / RKH_FOLDER
    fine = data.read_single_band_files(root, FINE_BANDS)
    coarse = data.read_single_band_files(root, COARSE_BANDS)
    return Native("29RKH (10 m bands at 100 m, 20 m at 200 m)", fine, coarse)


def onto_grid(low: np.ndarray, factor: int) -> np.ndarray:
    """``low`` [bands, h, w] resampled onto the grid ``factor`` times finer, bilinearly by GDAL.

    The download step reads a 20 m band onto its 10 m grid with GDAL's bilinear warp; this
    does the same between two nested grids, so training sees what users' rasters hold.
    """
    from rasterio.transform import from_origin
    from rasterio.warp import Resampling, reproject

    bands, h, w = low.shape
    out = np.zeros((bands, h * factor, w * factor), dtype=np.float32)
    crs = "EPSG:32633"
    x0, y0 = 500000.0, 5000000.0  # anywhere inside the zone: only the nesting of the two grids matters
    reproject(low.astype(np.float32), out, src_transform=from_origin(x0, y0, factor, factor), src_crs=crs,
              dst_transform=from_origin(x0, y0, 1, 1), dst_crs=crs, resampling=Resampling.bilinear)
    return out


def wald_pair(native: Native) -> WaldPair:
    h, w = native.coarse.shape[-2:]
    coarse = native.coarse[:, : h // 2 * 2, : w // 2 * 2]
    fine = native.fine[:, : coarse.shape[1] * 2, : coarse.shape[2] * 2]
    low = block_mean(coarse, RATIO)
    inputs = np.concatenate([block_mean(fine, RATIO), onto_grid(low, RATIO)])
    return WaldPair(native.name, inputs, coarse.copy(), low)


def full_resolution_input(native: Native) -> np.ndarray:
    """[10, 2H, 2W]: every band on the 10 m grid, the 20 m ones bilinear as the download writes them."""
    return np.concatenate([native.fine, onto_grid(native.coarse, RATIO)])


class SharpenSampler:
    """Random patches of Wald pairs: crops at even offsets (the 2 x 2 blocks stay whole), flips, rot90.

    ``weights``: how often each pair is drawn (the Slovenia scenes are tiny beside 29RKH).
    """

    def __init__(self, pairs, *, patch: int = 32, weights=None, seed: int = 0):
        self.pairs, self.patch = list(pairs), patch
        self.weights = np.asarray(weights if weights is not None else [1.0] * len(self.pairs), np.float64)
        self.weights /= self.weights.sum()
        if any(min(p.target.shape[-2:]) < patch for p in self.pairs):
            raise ValueError(f"patch {patch} is larger than a scene")
        self.rng = np.random.default_rng(seed)

    def sample(self, batch: int):
        """``(inputs, target, blocks)``: ``[batch, 10, p, p]``, ``[batch, 6, p, p]`` and ``[batch, 6, p, p]``
        reflectance, ``blocks`` the 40 m information in 2 x 2 blocks (:attr:`WaldPair.coarse_blocks`)."""
        p = self.patch
        out = ([], [], [])
        for _ in range(batch):
            pair = self.pairs[int(self.rng.choice(len(self.pairs), p=self.weights))]
            h, w = pair.target.shape[-2:]
            r = 2 * int(self.rng.integers((h - p) // 2 + 1))
            c = 2 * int(self.rng.integers((w - p) // 2 + 1))
            k, flip = int(self.rng.integers(4)), self.rng.random() < 0.5
            for arrays, image in zip(out, (pair.inputs, pair.target, pair.coarse_blocks)):
                patch = np.rot90(image[:, r:r + p, c:c + p], k, axes=(-2, -1))
                arrays.append(patch[..., ::-1] if flip else patch)
        return tuple(np.ascontiguousarray(np.stack(a)) for a in out)
