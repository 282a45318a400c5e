"""One chunk of an export as a Dask task: plain data in, a :class:`~.stream.ChunkResult` out.

The payload is the job spec (JSON), the plan's sample and date counts, the staging folder
and the chunk's :class:`~.stream.ChunkWork`. A worker rebuilds the export's context from
the job spec once per run and thread and keeps it, with its open rasters, for the next chunk
(:mod:`..cluster.worker_cache`);
it writes only the chunk's own files into the staging folder, which the engine process
renames onto the output once every chunk is in.
"""
from __future__ import annotations

from pathlib import Path

from ..cluster.worker_cache import cached
from ..feedback import Feedback
from ..image_series.reader import input_read_errors
from .context import ExportContext
from .options import ExportOptions
from .stac_catalog import ItemFiles
from .stream import ChunkWork, read_chunk, write_samples


class _Open:
    def __init__(self, job: str, n_samples: int, max_dates: int, sources: list):
        import rasterio

        self.context = ExportContext.open(ExportOptions.from_json(job), Feedback())
        self.meta = self.context.meta(n_samples, max_dates)
        self.items_info = self.context.catalog_info(self.meta)
        self.sources = [rasterio.open(path) for path in sources]
        if self.context.label_set:
            self.context.label_set.open()

    def close(self):
        for ds in self.sources:
            ds.close()
        if self.context.label_set:
            self.context.label_set.close()


def payload(job: str, n_samples: int, max_dates: int, staging: Path, work: ChunkWork, sources: list) -> dict:
    """``sources``: the raster each date's pixels are read from (its sharpened VRT, or the date's own file)."""
    return {"job": job, "n_samples": n_samples, "max_dates": max_dates, "staging": str(staging), "chunk": work.to_dict(),
            "sources": list(sources)}


def export_chunk(task: dict):
    """Read, cut and write one chunk (see the module docstring)."""
    opened = cached(task["run"], lambda: _Open(task["job"], task["n_samples"], task["max_dates"], task["sources"]))
    ctx, meta = opened.context, opened.meta
    staging = Path(task["staging"])
    work = ChunkWork.from_dict(task["chunk"])
    with input_read_errors(ctx.options.images, ctx.options.labels):  # a damaged block: the sentence naming its file
        samples = read_chunk(opened.sources, ctx.series, ctx.label_set, work, meta, Feedback())
    writer = ctx.writer_class.for_task(staging, meta)
    return write_samples(samples, writer, meta, ctx.class_nodata, ItemFiles(staging, opened.items_info), Feedback())
