"""One band of tile rows of a super-resolution as a Dask task: its rows into a part file of its own.

The payload is the run's id, the job spec (JSON, absolute paths), the model's sha256, the
band's tile rows and its part file. A worker loads the model once per run and thread
(:mod:`..cluster.worker_cache`; one intra-op thread: the workers are the parallelism), after checking that its copy of the model is the client's,
and keeps it with the open series for the next band. An ONNX Runtime session cannot be
pickled, so only the path and the hash travel. The rows go to the part file as they are
finished (raw arrays, one after another), so a band's memory is one strip of tiles; the
engine process appends the parts to the output in band order.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import replaced
from ..errors import SatPluginError
from ..cluster.worker_cache import cached
from ..feedback import Feedback
from ..image_series.manifest import sha256_of
from .input_strips import StripReader
from .options import DEFAULT_MODEL, SuperResolveOptions
from .reflectance import reflectance_check
from .runner import run_tiles, auto_batch_size, plan_tiles
from .session import load_model

# Tile rows per band: at most MAX (a band redoes the tile row above it, the overlap: 1/8 more
# inference), fewer to give each worker two bands or more, but not under MIN.
MAX_TILE_ROWS, MIN_TILE_ROWS = 8, 2
WORKER_THREADS = 1


class _Open:
    def __init__(self, job: str, model_sha256: str):
        options = SuperResolveOptions.from_json(job)
        path = Path(options.model) if options.model else DEFAULT_MODEL
        if sha256_of(path) != model_sha256:
            raise SatPluginError(f"The model {path} on this Dask worker is not the engine's (its sha256 differs): "
                                 "give the workers the same file at the same path, or the same engine version.")
        self.loaded = load_model(path, options.provider, Feedback(), threads=WORKER_THREADS)
        self.plan = plan_tiles(options, self.loaded.contract, Feedback())
        self.reader = StripReader(self.plan.series, self.plan.chosen, self.plan.positions, self.loaded.contract,
                                  self.plan.layout)
        self.batch_size = options.batch_size or auto_batch_size(self.loaded.provider)
        self.preserve_reflectance = options.preserve_reflectance

    def close(self):
        self.reader.close()


class _PartFile:
    """Rows as they are emitted, one raw array after another; their shapes say how to read them back."""

    def __init__(self, f):
        self.f = f
        self.shapes, self.dtype = [], None

    def append(self, rows: np.ndarray) -> None:
        rows = np.ascontiguousarray(rows)
        self.dtype = rows.dtype.str
        self.f.write(rows.tobytes())
        self.shapes.append(list(rows.shape))


def tile_rows_per_band(n_rows: int, n_workers: int) -> int:
    """How many tile rows each band (task) takes: the bands' bounds do not change the output's bytes."""
    return max(MIN_TILE_ROWS, min(MAX_TILE_ROWS, -(-n_rows // (2 * max(n_workers, 1)))))


def superresolve_band(task: dict) -> dict:
    opened = cached(task["run"], lambda: _Open(task["job"], task["model_sha256"]))
    part = Path(task["part"])
    reflectance = reflectance_check(opened.loaded.contract, opened.preserve_reflectance,
                                    resampling=opened.plan.coarse_resampling)
    with replaced(part) as temp, open(temp, "wb") as f:
        rows = _PartFile(f)
        seconds = run_tiles(opened.loaded, opened.plan.layout, opened.reader, rows, opened.loaded.contract,
                            opened.batch_size, Feedback(), tuple(task["tile_rows"]), reflectance)
    return {"part": str(part), "shapes": rows.shapes, "dtype": rows.dtype, "provider": opened.loaded.provider_label,
            "seconds": seconds, "reflectance": None if reflectance is None else reflectance.record()}


def read_part(result: dict):
    """The rows of one band, in the order they were emitted."""
    with open(result["part"], "rb") as f:
        for shape in result["shapes"]:
            yield np.fromfile(f, dtype=np.dtype(result["dtype"]), count=int(np.prod(shape))).reshape(shape)
