"""Reflectance preserved: the output, degraded back by block means, equals the model's reference input degraded alike.

A network's output drifts a little from its input in the low frequencies (the shipped x2
model by up to 4.9e-4 reflectance in mean absolute terms on the worst band). After the
tiles are blended, each finished row of blocks gets ``r = x - D(y)`` added back to every
pixel of its block (nearest upsampling), where ``x`` is the reference revisit as the model
received it (cloud-filled, in reflectance) and ``D`` the s x s block mean that training
degrades with. Then ``D(y + U(r)) = D(y) + r = x`` exactly, up to float32 rounding. The
correction is local to each block, and the cloud fill of the reference does not depend
on where strips split the raster (:mod:`.input_strips`), so tiling and cluster bands do
not change it.

A band-sharpening model keeps the grid (s = 1): there ``D`` is the mean over the blocks of
the band's native pixels (2 x 2 for a 20 m band beside 10 m ones, the contract's
``consistency_factors``), applied to the output and to the input band alike, so the
sharpened band keeps the 20 m content its input carried. Tiles start on those blocks
(:mod:`.tiling`'s ``align``); at a raster edge of odd size the last block takes in the
reflection padding, in the output and the reference alike.

The block means of a coarse band are its native values only if the band lies on the grid in
blocks (nearest-neighbour resampling). The download step, like most GDAL users, resamples
bilinearly instead; then the block means of the input are a slightly blurred copy of the
native values (by [1/8, 3/4, 1/8] along each axis for 20 m on 10 m), and holding the output
to them would blur it (by 3.6 dB of PSNR in the Wald test). So the runtime looks at how the
reference's coarse bands were resampled (:func:`coarse_resampling`: blocks, or not) and, for
bilinear ones, recovers the native values exactly (to float rounding, away from the raster's
edges) by the inverse of that blur (:func:`bilinear_inverse_kernel`), read with the rows of
context it needs, so the tiling still does not change the result.

Only output bands that are input bands in reflectance (matched by name, unit
``reflectance``) are corrected; the others are left as the model wrote them and the log
says so. The mean absolute correction per band is kept as one sum per finished row of tiles
(the same rows give the same sums in a task or in one process), added up with ``math.fsum``
at the end, so the figure in the log and the tags is the same however the rows were split
between tasks.

The reference is revisit 0 of the stack fed: the image itself for a single-image model,
the clearest date for a ``clearest_first`` one. A ``chronological`` model has no such
reference (its first revisit is merely the oldest), so the correction is not applied to
it and the log says so. Output pixels the model returns as NaN or infinity stay so; they
do not spread to the rest of their block. A ``uint16`` output is rounded to its DN step
after the correction, so there the guarantee holds to half a DN step (``dn_scale / 2``).
"""
from __future__ import annotations

import math

import numpy as np

from ..feedback import Feedback
from .contract import ModelContract, band_match_key


# Recovering native values from bilinear resampling: the inverse filter's taps below this are dropped.
INVERSE_TOLERANCE = 1e-8
# How many rows of the reference :func:`coarse_resampling` looks at.
RESAMPLING_SAMPLE_ROWS = 256
RESAMPLING_MIN_BLOCKS = 256  # whole blocks of data to judge by, when the raster has them


def reflectance_check(contract: ModelContract, wanted: bool, feedback: Feedback | None = None,
                      resampling: str = "nearest"):
    """The :class:`ReflectanceCheck` for a run, or None when it is not wanted or has no reference (logged).

    ``resampling``: how the reference's coarse bands lie on the grid (:func:`coarse_resampling`).
    """
    if not wanted:
        return None
    if contract.multi_frame and contract.revisit_order == "chronological":
        if feedback is not None:
            feedback.log("PRESERVE_REFLECTANCE is not applied: the model takes its revisits oldest first, so no "
                         "revisit is the reference the output should degrade back to.")
        return None
    if resampling == "misaligned":
        if feedback is not None:
            feedback.log("PRESERVE_REFLECTANCE is not applied: the coarse bands lie on the grid in whole native "
                         "pixels that do not start at the raster's first row and column, so the blocks to keep are "
                         "not the output's. Clip the raster on the native pixels' edges (the download step's grids "
                         "are).")
        return None
    return ReflectanceCheck(contract, resampling)


def coarse_resampling(series, chosen: list, positions: list, contract: ModelContract) -> str | None:
    """How the reference's coarse bands lie on the grid, from its first rows: ``nearest`` (every block
    from the raster's origin constant), ``misaligned`` (constant blocks from another origin), or
    ``bilinear`` (anything else: GDAL's bilinear, the download step's); None without coarse bands."""
    import rasterio

    inputs = [band_match_key(b) for b in contract.input_bands]
    coarse = sorted({(inputs.index(band_match_key(b)), f // contract.scale)
                     for b, f in zip(contract.output_bands, contract.consistency_factors)
                     if f and f > contract.scale and band_match_key(b) in inputs})
    if not coarse:
        return None
    height, width = series.grid.height, series.grid.width
    found = "nearest"
    with rasterio.open(series.images[chosen[0].index].path) as ds:
        for c, q in coarse:
            band, valid = _sample_with_data(ds, series.band_index[positions[c]], q, height, width)
            if band is None or _in_blocks(band, valid, q, 0, 0) in (True, None):
                continue
            if any(_in_blocks(band, valid, q, dr, dc) for dr in range(q) for dc in range(q) if dr or dc):
                return "misaligned"  # whole native pixels, but not from the raster's origin
            found = "bilinear"
    return found


def _sample_with_data(ds, index: int, q: int, height: int, width: int) -> tuple:
    """``RESAMPLING_SAMPLE_ROWS`` rows (starting on a block) of band ``index`` holding at least
    ``RESAMPLING_MIN_BLOCKS`` whole q x q blocks of data (the first such rows; else those with the most),
    and where it has data; (None, None) where no rows hold one.

    Nodata (and NaN) would look like constant blocks, or break them: only blocks wholly of data count,
    and a few of them (the tip of a clipped area) are not enough to judge by.
    """
    rows, cols = min(height, RESAMPLING_SAMPLE_ROWS) // q * q, width // q * q
    if rows <= q or cols <= q:
        return None, None
    end = height // q * q
    best, most = (None, None), 0
    for top in sorted({*range(0, end - rows + 1, rows), (end - rows) // q * q}):  # the last rows too
        window = ((top, top + rows), (0, cols))
        band = ds.read(index, window=window)
        valid = (ds.read_masks(index, window=window) > 0) & np.isfinite(band)
        whole = int(valid.reshape(rows // q, q, cols // q, q).all(axis=(1, 3)).sum())
        if whole > most:
            best, most = (band, valid), whole
        if most >= RESAMPLING_MIN_BLOCKS:
            break
    return best


def _in_blocks(band: np.ndarray, valid: np.ndarray, q: int, dr: int, dc: int) -> bool | None:
    """Whether ``band`` is constant over every q x q block of data that starts at row ``dr``,
    column ``dc`` (None where no block there is wholly data)."""
    rows, cols = (band.shape[0] - dr) // q * q, (band.shape[1] - dc) // q * q
    blocks = band[dr:dr + rows, dc:dc + cols].reshape(rows // q, q, cols // q, q)
    whole = valid[dr:dr + rows, dc:dc + cols].reshape(rows // q, q, cols // q, q).all(axis=(1, 3))
    if not whole.any():
        return None
    return bool((blocks == blocks[:, :1, :, :1]).all(axis=(1, 3))[whole].all())


def bilinear_inverse_kernel(q: int) -> np.ndarray:
    """The 1-D filter that recovers native values from the q-pixel block means of their bilinear resampling.

    GDAL's bilinear onto a grid q times finer (pixel centres aligned, as the download step's
    nested grids are) followed by the q-block mean is a short symmetric filter (3 taps for
    q = 2: [1/8, 3/4, 1/8]); its inverse decays geometrically, so it is kept to the taps above
    ``INVERSE_TOLERANCE``, computed here from the two operators as matrices.
    """
    n = 96
    fine = (np.arange(n * q) + 0.5) / q - 0.5  # fine pixel centres in coarse pixel units
    left = np.floor(fine).astype(int)
    weight = fine - left
    upsample = np.zeros((n * q, n))
    rows = np.arange(n * q)
    np.add.at(upsample, (rows, np.clip(left, 0, n - 1)), 1 - weight)
    np.add.at(upsample, (rows, np.clip(left + 1, 0, n - 1)), weight)
    block_mean = np.kron(np.eye(n), np.full((1, q), 1.0 / q))
    inverse = np.linalg.inv(block_mean @ upsample)[n // 2]
    taps = np.flatnonzero(np.abs(inverse) > INVERSE_TOLERANCE)
    radius = int(max(n // 2 - taps[0], taps[-1] - n // 2))
    return inverse[n // 2 - radius:n // 2 + radius + 1]


class ReflectanceCheck:
    def __init__(self, contract: ModelContract, resampling: str = "nearest"):
        self.scale = contract.scale
        inputs = [band_match_key(b) for b in contract.input_bands]
        factors = contract.consistency_factors
        # (output band, input band, block side in output pixels)
        self.pairs = [(j, inputs.index(band_match_key(b)), factors[j]) for j, (b, unit) in
                      enumerate(zip(contract.output_bands, contract.output_units))
                      if band_match_key(b) in inputs and factors[j] and str(unit).strip().lower() == "reflectance"]
        self.skipped = [b for j, b in enumerate(contract.output_bands) if j not in {p[0] for p in self.pairs}]
        self.mean = np.asarray(contract.mean, dtype=np.float32)
        self.std = np.asarray(contract.std, dtype=np.float32)
        self.sums = {j: [] for j, _, _ in self.pairs}  # per band: the sum of |r| of each finished row of tiles
        self.counts = {j: 0 for j, _, _ in self.pairs}
        # Bilinear coarse bands: per block side q, the inverse filter; ``context`` input rows above
        # and below a chunk that :meth:`apply` needs to recover their native values.
        self.kernels = {f // self.scale: bilinear_inverse_kernel(f // self.scale) for _, _, f in self.pairs
                        if resampling == "bilinear" and f > self.scale}
        # A multiple of every block's side, so that the rows read above a chunk start on a block.
        align = contract.block_pixels
        self.context = -(-max([q * (len(k) // 2) for q, k in self.kernels.items()] or [0]) // align) * align

    def apply(self, rows: np.ndarray, reference: np.ndarray, valid: np.ndarray, inside: tuple,
              extended: np.ndarray | None = None) -> None:
        """Correct ``rows`` [bands, n*s, w*s] in place from ``reference`` [input bands, n, w] (model-normalised).

        ``valid`` [n, w]: where the input has data; ``inside``: (row0, row1, col0, col1) of the
        raster relative to these input rows (row0 < 0 or row1 > n where it goes on beyond them). ``n`` and ``w``
        are multiples of every block's side in input pixels, and row 0 starts a block (the
        tile layout's ``align``). ``extended`` [input bands, n + 2 * context, w]: the reference with
        ``context`` more rows on either side, when bilinear coarse bands need them.
        """
        s = self.scale
        n, w = reference.shape[1], reference.shape[2]
        r0, r1, c0, c1 = inside
        for j, c, f in self.pairs:
            q = f // s  # the block's side in input pixels: 1 for super-resolution
            y = rows[j]
            if q in self.kernels:
                context = self.context
                native = self._native(extended[c] * self.std[c] + self.mean[c], q, w,
                                      (r0 + context, r1 + context), (c0, c1))
            else:
                x = reference[c] * self.std[c] + self.mean[c]
                native = x if q == 1 else _block_mean(x, n // q, q, w // q)
            residual = native - _block_mean(y, n // q, f, w // q)
            finite = np.isfinite(residual)
            if not finite.all():  # a block with no finite output pixel, or a NaN input: left as is, not counted
                residual[~finite] = 0.0
            y += np.repeat(np.repeat(residual, f, axis=0), f, axis=1)
            block_valid = (valid if q == 1 else valid.reshape(n // q, q, w // q, q).all(axis=(1, 3))) & finite
            inner = (slice(max(r0, 0) // q, -(-min(r1, n) // q)), slice(c0 // q, -(-c1 // q)))
            kept = residual[inner][block_valid[inner]]
            self.sums[j].append(float(np.abs(kept, dtype=np.float64).sum()))
            self.counts[j] += int(kept.size)

    def _native(self, x: np.ndarray, q: int, w: int, rows: tuple, cols: tuple) -> np.ndarray:
        """The native values of a bilinear coarse band, [n/q, w/q] blocks, from ``x``: its rows with context.

        ``rows``, ``cols``: where the raster lies in ``x`` (input pixels). GDAL's bilinear repeats
        the edge value past the raster's edge, which is the same as mirroring the block means
        about the edge (half-sample symmetry): so they are mirrored, and the inverse holds up to
        the edge.
        """
        kernel = self.kernels[q]
        radius, skip = len(kernel) // 2, self.context // q - len(kernel) // 2
        means = _block_mean(x, x.shape[0] // q, q, w // q).astype(np.float64)
        means = _mirror_outside(means, 0, rows[0] // q, -(-rows[1] // q))
        means = means[skip:means.shape[0] - skip]
        native = np.lib.stride_tricks.sliding_window_view(means, len(kernel), axis=0) @ kernel
        a, b = cols[0] // q, -(-cols[1] // q)
        inner = np.pad(native[:, a:b], ((0, 0), (radius, radius)), mode="symmetric")
        native[:, a:b] = np.lib.stride_tricks.sliding_window_view(inner, len(kernel), axis=1) @ kernel
        return native.astype(np.float32)

    def record(self) -> dict:
        """Plain values to send back from a task."""
        return {"sums": {str(j): v for j, v in self.sums.items()}, "counts": {str(j): v for j, v in self.counts.items()}}

    def absorb(self, record: dict) -> None:
        """A task's record, in band order."""
        for j in self.sums:
            self.sums[j] += record["sums"][str(j)]
            self.counts[j] += record["counts"][str(j)]

    def mean_abs(self) -> dict:
        """Output band index -> mean absolute correction (reflectance) over the valid pixels."""
        return {j: math.fsum(self.sums[j]) / self.counts[j] if self.counts[j] else 0.0 for j in self.sums}


def _mirror_outside(a: np.ndarray, axis: int, start: int, stop: int) -> np.ndarray:
    """``a`` with its entries outside ``[start, stop)`` along ``axis`` mirrored from those inside (half-sample)."""
    if start <= 0 and stop >= a.shape[axis]:
        return a
    inside = np.take(a, np.arange(max(start, 0), min(stop, a.shape[axis])), axis=axis)
    pad = [(0, 0)] * a.ndim
    pad[axis] = (max(start, 0), a.shape[axis] - min(stop, a.shape[axis]))
    return np.pad(inside, pad, mode="symmetric")


def _block_mean(y: np.ndarray, n: int, s: int, w: int) -> np.ndarray:
    """[n, w] means of the s x s blocks of ``y``, over the finite pixels of each (NaN where none is)."""
    blocks = y.reshape(n, s, w, s)
    mean = blocks.mean(axis=(1, 3), dtype=np.float32)
    if np.isfinite(mean).all():
        return mean
    finite = np.isfinite(blocks)
    count = finite.sum(axis=(1, 3), dtype=np.float32)
    total = np.where(finite, blocks, np.float32(0)).sum(axis=(1, 3), dtype=np.float32)
    return np.divide(total, count, out=np.full_like(total, np.nan), where=count > 0)
