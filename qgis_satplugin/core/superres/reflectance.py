"""Reflectance preserved: the output, degraded back by s x s block means, equals the model's reference input.

A network's output drifts a little from its input in the low frequencies (the shipped x2
model by up to 4.9e-4 reflectance in mean absolute terms on the worst band). After the
tiles are blended, each finished row of blocks gets ``r = x - D(y)`` added back to every
pixel of its block (nearest upsampling), where ``x`` is the reference revisit as the model
received it (cloud-filled, in reflectance) and ``D`` the s x s block mean that training
degrades with. Then ``D(y + U(r)) = D(y) + r = x`` exactly, up to float32 rounding. The
correction is local to each block, so tiling and cluster bands do not change it.

Only output bands that are input bands in reflectance (matched by name, unit
``reflectance``) are corrected; the others are left as the model wrote them and the log
says so. The mean absolute correction per band is kept as one sum per finished row of tiles
(the same rows give the same sums in a task or in one process), added up with ``math.fsum``
at the end, so the figure in the log and the tags is the same however the rows were split
between tasks.
"""
from __future__ import annotations

import math

import numpy as np

from .contract import ModelContract, band_match_key


class ReflectanceCheck:
    def __init__(self, contract: ModelContract):
        self.scale = contract.scale
        inputs = [band_match_key(b) for b in contract.input_bands]
        self.pairs = [(j, inputs.index(band_match_key(b))) for j, (b, unit) in
                      enumerate(zip(contract.output_bands, contract.output_units))
                      if band_match_key(b) in inputs and str(unit).strip().lower() == "reflectance"]
        self.skipped = [b for j, b in enumerate(contract.output_bands) if j not in {p[0] for p in self.pairs}]
        self.mean = np.asarray(contract.mean, dtype=np.float32)
        self.std = np.asarray(contract.std, dtype=np.float32)
        self.sums = {j: [] for j, _ in self.pairs}  # per band: the sum of |r| of each finished row of tiles
        self.counts = {j: 0 for j, _ in self.pairs}

    def apply(self, rows: np.ndarray, reference: np.ndarray, valid: np.ndarray, inside: tuple) -> None:
        """Correct ``rows`` [bands, n*s, w*s] in place from ``reference`` [input bands, n, w] (model-normalised).

        ``valid`` [n, w]: where the input has data; ``inside``: (row0, row1, col0, col1) of the
        raster within these input rows (the rest is padding), for the record.
        """
        s = self.scale
        n, w = reference.shape[1], reference.shape[2]
        r0, r1, c0, c1 = inside
        for j, c in self.pairs:
            y = rows[j]
            degraded = y.reshape(n, s, w, s).mean(axis=(1, 3), dtype=np.float32)
            residual = reference[c] * self.std[c] + self.mean[c] - degraded
            y += np.repeat(np.repeat(residual, s, axis=0), s, axis=1)
            kept = residual[r0:r1, c0:c1][valid[r0:r1, c0:c1]]
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
