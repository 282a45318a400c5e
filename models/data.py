"""Training and evaluation data: real Sentinel-2 scenes, degraded 10 m -> 20 m.

Degradation protocol (the same for training, evaluation and every baseline):
    high resolution (HR) = the 10 m bands as stored, reflectance = DN / 10000, cropped to an
                           even size (the Slovenia scenes are 101 x 100 px: the last row goes);
    low resolution (LR)  = the mean of each 2 x 2 block of HR pixels (a 20 m pixel is the
                           average of the four 10 m pixels it covers; no extra blur by default:
                           ``blur_sigma`` > 0 applies a Gaussian of that sigma, in HR pixels,
                           before the block mean).
The model sees LR and is scored against HR. Real 10 m input at run time is finer and sharper
than this synthetic 20 m, so figures measured here describe the 20 m -> 10 m task only.

Scenes: ``slovenia_s2_l1c/scene_0..3`` train, ``scene_4`` is held out for evaluation and is
read only by :mod:`evaluate` (and by train.py *after* training, to write the metrics).
Tile 29RKH (``s2_l2a_29RKH_100m``, another continent, its 10 m bands stored at 100 m) is split
by rows: the top ``RKH_TRAIN_ROWS`` may train, the rows below are the cross-area evaluation's.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script from a checkout: the core is importable
    sys.path.insert(0, str(ROOT))

from qgis_satplugin.core.superres.contract import band_match_key  # noqa: E402

BANDS = ("B02", "B03", "B04", "B08")
DN_SCALE = 1e-4
SCALE = 2
TRAIN_SCENES = (0, 1, 2, 3)
HELD_OUT_SCENE = 4
RKH_FOLDER = "s2_l2a_29RKH_100m"
RKH_TRAIN_ROWS = 824  # of 1098: the top three quarters; the bottom 274 rows stay held out


def real_data_dir() -> Path:
    """The shared real-data folder (``SATPLUGIN_REAL_DATA`` or ``../shared/data``)."""
    return Path(os.environ.get("SATPLUGIN_REAL_DATA", ROOT.parent / "shared" / "data"))


def scene_path(index: int, folder: Path = None) -> Path:
    return Path(folder or real_data_dir()) / "slovenia_s2_l1c" / f"scene_{index}.tif"


def read_bands(path, bands=BANDS) -> np.ndarray:
    """``[bands, H, W]`` float32 reflectance (DN * 1e-4) of the named bands of one GeoTIFF."""
    import rasterio

    with rasterio.open(path) as src:
        names = [band_match_key(d) if d else "" for d in src.descriptions]
        missing = [b for b in bands if band_match_key(b) not in names]
        if missing:
            raise ValueError(f"{path} lacks bands {missing} (it has {src.descriptions})")
        indexes = [names.index(band_match_key(b)) + 1 for b in bands]
        return src.read(indexes).astype(np.float32) * np.float32(DN_SCALE)


def read_single_band_files(folder, bands=BANDS) -> np.ndarray:
    """``[bands, H, W]`` reflectance from one GeoTIFF per band (``B02.tif``...), as in a COG folder."""
    import rasterio

    out = []
    for band in bands:
        with rasterio.open(Path(folder) / f"{band}.tif") as src:
            out.append(src.read(1).astype(np.float32) * np.float32(DN_SCALE))
    return np.stack(out)


def even_crop(image: np.ndarray, scale: int = SCALE) -> np.ndarray:
    h, w = image.shape[-2:]
    return image[..., : h - h % scale, : w - w % scale]


def gaussian_kernel(sigma: float, radius: int = None) -> np.ndarray:
    radius = int(np.ceil(3 * sigma)) if radius is None else radius
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of ``[..., H, W]`` with edge replication."""
    kernel = gaussian_kernel(sigma)
    r = len(kernel) // 2
    out = image.astype(np.float64)
    for axis in (-2, -1):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (r, r)
        padded = np.pad(out, pad, mode="edge")
        windows = np.lib.stride_tricks.sliding_window_view(padded, len(kernel), axis=axis)
        out = windows @ kernel
    return out.astype(np.float32)


def degrade(hr: np.ndarray, scale: int = SCALE, blur_sigma: float = 0.0) -> np.ndarray:
    """The LR image: optional Gaussian blur, then the mean of each ``scale x scale`` block."""
    hr = even_crop(hr, scale)
    if blur_sigma > 0:
        hr = _blur(hr, blur_sigma)
    h, w = hr.shape[-2:]
    blocks = hr.reshape(*hr.shape[:-2], h // scale, scale, w // scale, scale)
    return blocks.mean(axis=(-3, -1), dtype=np.float64).astype(np.float32)


def load_rkh(part: str, folder: Path = None, bands=BANDS) -> np.ndarray:
    """Tile 29RKH's ``train`` rows (the top ``RKH_TRAIN_ROWS``) or its ``held_out`` rows (the rest), even-cropped."""
    image = read_single_band_files(Path(folder or real_data_dir()) / RKH_FOLDER, bands)
    rows = {"train": slice(0, RKH_TRAIN_ROWS), "held_out": slice(RKH_TRAIN_ROWS, None)}[part]
    return even_crop(image[:, rows])


def load_scenes(indices, folder: Path = None, bands=BANDS):
    """HR images (even-cropped), one ``[bands, H, W]`` array per scene index."""
    return [even_crop(read_bands(scene_path(i, folder), bands)) for i in indices]


def band_statistics(images) -> tuple:
    """Per-band mean and standard deviation over ``images`` (rounded: they go into the metadata)."""
    stack = np.concatenate([im.reshape(im.shape[0], -1) for im in images], axis=1)
    mean = [round(float(v), 4) for v in stack.mean(axis=1)]
    std = [round(float(v), 4) for v in stack.std(axis=1)]
    return mean, std


def haze_score(image: np.ndarray) -> float:
    """Mean blue (B02, band 0) reflectance: the brighter, the hazier or cloudier.

    These L1C scenes carry no cloud masks; blue brightness is the simplest proxy for the
    "clearest first" ranking the runtime does with masks.
    """
    return float(image[0].mean())


def clearest_first(indices, images) -> list:
    """``indices`` sorted by :func:`haze_score` of the matching images (clearest first)."""
    return [i for _, i in sorted(zip((haze_score(im) for im in images), indices))]


class PatchSampler:
    """Random training patches: crops, flips, rot90, and revisit stacks.

    ``hr`` is a list of HR scenes of one area (co-registered, e.g. different dates); LR
    images are derived once. A multi-frame sample takes a random scene as the reference (it
    is also the target), then fills the other ``revisits - 1`` slots from the other scenes in
    random order; with probability ``p_repeat`` a slot repeats a revisit already in the stack
    instead, and with probability ``p_alone`` the reference fills every slot, so the model
    learns to tolerate stacks padded by repetition and the no-auxiliary case.

    ``single_dates``: scenes of other areas with one date each (any size), a share
    ``p_single_dates`` of the samples; their stacks are the reference in every slot.
    """

    def __init__(self, hr, *, revisits: int = 1, patch: int = 24, scale: int = SCALE, blur_sigma: float = 0.0,
                 p_repeat: float = 0.15, p_alone: float = 0.1, seed: int = 0, single_dates=(),
                 p_single_dates: float = 0.0):
        self.hr = [even_crop(np.asarray(im, np.float32), scale) for im in hr]
        self.lr = [degrade(im, scale, blur_sigma) for im in self.hr]
        shape = self.lr[0].shape
        if any(im.shape != shape for im in self.lr):
            raise ValueError("the scenes of one sampler must share one grid")
        self.single_hr = [even_crop(np.asarray(im, np.float32), scale) for im in single_dates]
        self.single_lr = [degrade(im, scale, blur_sigma) for im in self.single_hr]
        if patch > min(min(im.shape[-2:]) for im in self.lr + self.single_lr):
            raise ValueError(f"patch {patch} is larger than the scenes ({shape[-2:]})")
        if p_single_dates and not self.single_lr or not 0.0 <= p_single_dates < 1.0:
            raise ValueError("p_single_dates is a share below 1, and needs single_dates")
        self.revisits, self.patch, self.scale = revisits, patch, scale
        self.p_repeat, self.p_alone, self.p_single_dates = p_repeat, p_alone, p_single_dates
        self.rng = np.random.default_rng(seed)

    def _stack(self, reference: int) -> list:
        order = [reference]
        if self.revisits == 1 or self.rng.random() < self.p_alone:
            return order * self.revisits
        others = [i for i in self.rng.permutation(len(self.lr)) if i != reference]
        while len(order) < self.revisits:
            if not others or self.rng.random() < self.p_repeat:
                order.append(order[int(self.rng.integers(len(order)))])
            else:
                order.append(int(others.pop()))
        return order

    def sample(self, batch: int):
        """``(lr, hr)``: ``[batch, revisits, bands, p, p]`` and ``[batch, bands, p*s, p*s]`` float32."""
        p, s = self.patch, self.scale
        lrs, hrs = [], []
        for _ in range(batch):
            # Without single dates no extra draw is made, so the stream of samples is what it always was.
            if self.p_single_dates and self.rng.random() < self.p_single_dates:
                pool_lr, pool_hr = self.single_lr, self.single_hr
                ref = int(self.rng.integers(len(pool_lr)))
                order = [ref] * self.revisits
            else:
                pool_lr, pool_hr = self.lr, self.hr
                ref = int(self.rng.integers(len(self.lr)))
                order = self._stack(ref)
            h, w = pool_lr[ref].shape[-2:]
            y, x = int(self.rng.integers(h - p + 1)), int(self.rng.integers(w - p + 1))
            lr = np.stack([pool_lr[i][:, y:y + p, x:x + p] for i in order])
            hr = pool_hr[ref][:, y * s:(y + p) * s, x * s:(x + p) * s]
            # A flip or rotation of an even crop maps each 2x2 block onto a 2x2 block, so LR and
            # HR stay consistent when both get the same transform.
            k = int(self.rng.integers(4))
            lr, hr = np.rot90(lr, k, axes=(-2, -1)), np.rot90(hr, k, axes=(-2, -1))
            if self.rng.random() < 0.5:
                lr, hr = lr[..., ::-1], hr[..., ::-1]
            lrs.append(lr)
            hrs.append(hr)
        return np.ascontiguousarray(np.stack(lrs)), np.ascontiguousarray(np.stack(hrs))
