"""Read, cut and write the planned samples, one chunk at a time, with the same code in any process.

A chunk (:func:`windows.read_chunks`) is a window of the images and the patches inside it.
:class:`ChunkWork` is its plain data; :func:`read_chunk` reads the window of every needed
date once and cuts each patch's slice into its own array; :func:`write_samples` hands the
samples to the format's writer, writes their STAC items and returns a :class:`ChunkResult`
(table rows, train statistics). :class:`DatasetTotals` adds the results up
in chunk order. In the engine process (:class:`SampleSink`) one background thread writes
a chunk while the main thread reads the next (GDAL's decoding and the file writes both
release the GIL, so on two cores they overlap); at most one chunk waits for it, and each
gets half the memory budget, so peak memory stays within the budget whatever the AOI
size or the number of dates. On a Dask cluster each chunk is one task (:mod:`chunk_task`)
running the same two functions, and the engine adds the results up in the same order, so
the dataset is the same bytes.
"""
from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import Canceled
from ..feedback import Feedback
from . import windows
from .band_layout import block_mean
from .dataset_card import BandStatistics
from .index_gpkg import index_row
from .sample import DatasetMeta, Sample, patch_transform, sample_id
from .samples_table import record
from .splits import SPLITS
from .stac_catalog import ItemFiles, ItemsWritten


@dataclass(frozen=True)
class ChunkWork:
    """One chunk as plain data: its image window and, per patch (ascending plan index), what the plan decided."""

    row0: int
    row1: int
    col0: int
    col1: int
    patches: list  # plan indices
    rows: list  # top-left pixel of each patch
    cols: list
    splits: list  # split codes
    dates: list  # per patch: indices into the series' dates
    cloud: list  # per patch: % cloud or no data on each of its dates
    cloud_dtype: str

    @classmethod
    def of(cls, plan, chunk: windows.ReadChunk) -> "ChunkWork":
        idx = chunk.patches.tolist()
        return cls(chunk.row0, chunk.row1, chunk.col0, chunk.col1, idx, plan.rows[idx].tolist(), plan.cols[idx].tolist(),
                   plan.splits[idx].tolist(), [plan.dates[i].tolist() for i in idx],
                   [plan.cloud[i, plan.dates[i]].tolist() for i in idx], plan.cloud.dtype.str)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ChunkWork":
        return cls(**values)


def chunk_works(series, plan, patch_size: int) -> list:
    """The plan's chunks, in reading order (row-major)."""
    per_patch = max(plan.max_dates, 1) * len(series.bands) * patch_size * patch_size * np.dtype(series.dtype).itemsize
    chunks = windows.read_chunks(plan.rows, plan.cols, patch_size, per_patch, series.block_rows,
                                 windows.CHUNK_BUDGET_BYTES // 2)
    return [ChunkWork.of(plan, chunk) for chunk in chunks]


@dataclass
class ChunkResult:
    """What one chunk's samples add to the dataset-wide files."""

    records: list  # samples.csv rows
    index_rows: list  # index.gpkg rows (each with the sample's own class histogram)
    stats: BandStatistics  # of the train samples
    items: ItemsWritten | None  # the STAC items written
    extras: list  # the format writer's (SampleWriter.take_extras)


def _class_hist(values: np.ndarray, nodata) -> dict:
    uniq, counts = np.unique(values[values != nodata], return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist()))


def _group_images(values: np.ndarray, meta: DatasetMeta, nodata) -> dict:
    """[T, C, P, P] on the image grid -> the arrays of each band group."""
    if meta.band_resolution != "native":
        return {meta.groups[0].key: values}
    return {g.key: block_mean(values[:, list(g.band_index)], g.factor, nodata) for g in meta.groups}


def read_chunk(sources: list, series, label_set, work: ChunkWork, meta: DatasetMeta, feedback: Feedback) -> list:
    """The chunk's samples: each date's window read once (``sources``: the open rasters, one per date)."""
    size, k = meta.patch_size, meta.label_scale
    r0, r1, c0, c1 = work.row0, work.row1, work.col0, work.col1
    cloud_dtype = np.dtype(work.cloud_dtype)
    users = defaultdict(list)  # date -> [(patch, slot)]
    buffers = []
    for j, dates in enumerate(work.dates):
        buffers.append(np.empty((len(dates), len(series.bands), size, size), dtype=series.dtype))
        for slot, t in enumerate(dates):
            users[t].append((j, slot))
    for t in sorted(users):
        feedback.check_canceled()
        data = sources[t].read(series.band_index, window=((r0, r1), (c0, c1)))
        for j, slot in users[t]:
            r, c = work.rows[j] - r0, work.cols[j] - c0
            buffers[j][slot] = data[:, r : r + size, c : c + size]
        del data
    label_windows = {n: label_set.read(n, r0, r1, c0, c1) for n in label_set.names} if label_set else {}
    samples = []
    for j, i in enumerate(work.patches):
        row, col = work.rows[j], work.cols[j]
        idx = np.asarray(work.dates[j], dtype=np.int64)
        lr, lc = (row - r0) * k, (col - c0) * k
        samples.append(Sample(
            index=i, sample_id=sample_id(row, col), split=SPLITS[work.splits[j]], row=row, col=col,
            date_index=idx, dates=[series.dates[t] for t in idx],
            images=_group_images(buffers[j], meta, series.nodata),
            labels={n: w[lr : lr + size * k, lc : lc + size * k].copy() for n, w in label_windows.items()},
            transform=patch_transform(meta.grid_transform, row, col),
            scale=series.scales[idx], offset=series.offsets[idx], cloud=np.asarray(work.cloud[j], dtype=cloud_dtype),
        ))
        buffers[j] = None
    return samples


def write_samples(samples: list, writer, meta: DatasetMeta, class_nodata, items: ItemFiles | None,
                  feedback: Feedback) -> ChunkResult:
    """Write the samples' files (``writer``: a ``SampleWriter.for_task``) and their items; return what the tables need."""
    stats = BandStatistics(meta.bands)
    records, index_rows = [], []
    for sample in samples:
        if feedback.is_canceled():
            raise Canceled()
        path = writer.write(sample)
        hist = _class_hist(sample.labels["class"], class_nodata) if "class" in sample.labels else {}
        if sample.split == "train":
            for g in meta.groups:
                stats.add(sample.images[g.key], g.band_index, sample.scale, sample.offset, meta.nodata)
        records.append(record(sample, path))
        index_rows.append(index_row(sample, path, hist, meta.patch_size))
    written = items.write(index_rows) if items is not None else None
    return ChunkResult(records, index_rows, stats, written, writer.take_extras())


class DatasetTotals:
    """The chunks' results added up in chunk order, and handed to the dataset writer and the catalog."""

    def __init__(self, meta: DatasetMeta, writer, catalog=None):
        self.writer = writer  # SampleWriter.create
        self.catalog = catalog  # stac_catalog.CatalogWriter
        self.stats = BandStatistics(meta.bands)
        self.records, self.index_rows = [], []

    def add(self, result: ChunkResult) -> None:
        self.records += result.records
        self.index_rows += result.index_rows
        self.stats.merge(result.stats)
        self.writer.absorb(result.extras)
        if self.catalog is not None:
            self.catalog.absorb(result.items)


class SampleSink:
    """In the engine process: each chunk's samples written on one background thread, the totals kept in chunk order."""

    def __init__(self, writer_class, root, meta: DatasetMeta, class_nodata, totals: DatasetTotals, feedback: Feedback,
                 items: ItemFiles | None = None):
        self.writer_class, self.root = writer_class, root
        self.meta = meta
        self.class_nodata = class_nodata
        self.totals = totals
        self.items = items
        self.feedback = feedback  # only its cancel check: progress is the reading loop's
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satplugin-export")
        self.pending = None

    def _write(self, samples):
        writer = self.writer_class.for_task(self.root, self.meta)
        self.totals.add(write_samples(samples, writer, self.meta, self.class_nodata, self.items, self.feedback))

    def submit(self, samples: list):
        self.wait()
        self.pending = self.pool.submit(self._write, samples)

    def wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # re-raises the writer's error (a full disk, a cancel) here

    def close(self):
        """Stop the thread after success or failure alike (the first error is already raised)."""
        if self.pending is not None:
            self.pending.exception()
            self.pending = None
        self.pool.shutdown(wait=True)


def stream_samples(series, label_set, works: list, sink: SampleSink, feedback: Feedback) -> None:
    """Every chunk in the engine process: read here, written on the sink's thread."""
    import rasterio

    total, done = sum(len(w.patches) for w in works), 0
    sources = [rasterio.open(im.path) for im in series.images]
    try:
        for work in works:
            sink.submit(read_chunk(sources, series, label_set, work, sink.meta, feedback))
            done += len(work.patches)
            feedback.set_progress(done / total)
        sink.wait()
    finally:
        for ds in sources:
            ds.close()
