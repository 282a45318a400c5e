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


def reflectance_check(contract: ModelContract, wanted: bool, feedback: Feedback | None = None):
    """The :class:`ReflectanceCheck` for a run, or None when it is not wanted or has no reference (logged)."""
    if not wanted:
        return None
    if contract.multi_frame and contract.revisit_order == "chronological":
        if feedback is not None:
            feedback.log("PRESERVE_REFLECTANCE is not applied: the model takes its revisits oldest first, so no "
                         "revisit is the reference the output should degrade back to.")
        return None
    return ReflectanceCheck(contract)


class ReflectanceCheck:
    def __init__(self, contract: ModelContract):
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

    def apply(self, rows: np.ndarray, reference: np.ndarray, valid: np.ndarray, inside: tuple) -> None:
        """Correct ``rows`` [bands, n*s, w*s] in place from ``reference`` [input bands, n, w] (model-normalised).

        ``valid`` [n, w]: where the input has data; ``inside``: (row0, row1, col0, col1) of the
        raster within these input rows (the rest is padding), for the record. ``n`` and ``w``
        are multiples of every block's side in input pixels, and row 0 starts a block (the
        tile layout's ``align``).
        """
        s = self.scale
        n, w = reference.shape[1], reference.shape[2]
        r0, r1, c0, c1 = inside
        for j, c, f in self.pairs:
            q = f // s  # the block's side in input pixels: 1 for super-resolution
            y = rows[j]
            x = reference[c] * self.std[c] + self.mean[c]
            residual = (x if q == 1 else _block_mean(x, n // q, q, w // q)) - _block_mean(y, n // q, f, w // q)
            if not np.isfinite(residual).all():  # a block with no finite output pixel, or a NaN input: left as is
                residual[~np.isfinite(residual)] = 0.0
            y += np.repeat(np.repeat(residual, f, axis=0), f, axis=1)
            block_valid = valid if q == 1 else valid.reshape(n // q, q, w // q, q).all(axis=(1, 3))
            inner = (slice(r0 // q, -(-r1 // q)), slice(c0 // q, -(-c1 // q)))
            kept = residual[inner][block_valid[inner]]
            self.sums[j].append(float(np.abs(kept, dtype=np.float64).sum()))
            self.counts[j] += int(kept.size)

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
