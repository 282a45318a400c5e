"""Read, cut and write the planned samples, one chunk at a time.

For each chunk (:func:`windows.read_chunks`) the window of every needed date is read
once and each patch's slice is copied into its own array; the finished samples then go
to a single background thread that writes them (format writer, class counts, train
statistics, index rows, STAC items) while the main thread reads the next chunk. GDAL's decoding
and the file writes both release the GIL, so on two cores reading and writing overlap.
At most one chunk waits for the writer, and each chunk gets half the memory budget, so
peak memory stays within the budget whatever the AOI size or the number of dates.
"""
from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor

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


def _class_hist(values: np.ndarray, nodata) -> dict:
    uniq, counts = np.unique(values[values != nodata], return_counts=True)
    return dict(zip(uniq.tolist(), counts.tolist()))


def _group_images(values: np.ndarray, meta: DatasetMeta, nodata) -> dict:
    """[T, C, P, P] on the image grid -> the arrays of each band group."""
    if meta.band_resolution == "resample":
        return {meta.groups[0].key: values}
    return {g.key: block_mean(values[:, list(g.band_index)], g.factor, nodata) for g in meta.groups}


class SampleSink:
    """Everything that happens to a finished sample, on one background thread."""

    def __init__(self, writer, meta: DatasetMeta, class_nodata, feedback: Feedback, catalog=None):
        self.writer = writer
        self.catalog = catalog  # stac_catalog.CatalogWriter: one STAC item per sample, per chunk
        self.meta = meta
        self.class_nodata = class_nodata
        self.feedback = feedback  # only its cancel check: progress is the reading loop's
        self.stats = BandStatistics(meta.bands)
        self.class_pixels = {s: defaultdict(int) for s in SPLITS}
        self.records, self.index_rows = [], []
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="satplugin-export")
        self.pending = None

    def _write_all(self, samples):
        first_row = len(self.index_rows)
        for sample in samples:
            if self.feedback.is_canceled():
                raise Canceled()
            path = self.writer.write(sample)
            hist = _class_hist(sample.labels["class"], self.class_nodata) if "class" in sample.labels else {}
            for cls, n in hist.items():
                self.class_pixels[sample.split][cls] += n
            if sample.split == "train":
                for g in self.meta.groups:
                    self.stats.add(sample.images[g.key], g.band_index, sample.scale, sample.offset, self.meta.nodata)
            self.records.append(record(sample, path))
            self.index_rows.append(index_row(sample, path, hist, self.meta.patch_size))
        if self.catalog is not None:
            self.catalog.add(self.index_rows[first_row:])

    def submit(self, samples: list):
        self.wait()
        self.pending = self.pool.submit(self._write_all, samples)

    def wait(self):
        if self.pending is not None:
            pending, self.pending = self.pending, None
            pending.result()  # re-raises the writer's error (a full disk, a cancel) here

    def finish(self):
        self.wait()
        self.writer.close()

    def close(self):
        """Stop the thread after success or failure alike (the first error is already raised)."""
        if self.pending is not None:
            self.pending.exception()
            self.pending = None
        self.pool.shutdown(wait=True)


def stream_samples(series, label_set, plan, sink: SampleSink, feedback: Feedback) -> None:
    import rasterio

    meta = sink.meta
    size, k = meta.patch_size, meta.label_scale
    n_bands = len(series.bands)
    per_patch = max(plan.max_dates, 1) * n_bands * size * size * np.dtype(series.dtype).itemsize
    chunks = windows.read_chunks(plan.rows, plan.cols, size, per_patch, series.block_rows, windows.CHUNK_BUDGET_BYTES // 2)
    done = 0
    sources = [rasterio.open(im.path) for im in series.images]
    try:
        for chunk in chunks:
            r0, r1, c0, c1 = chunk.row0, chunk.row1, chunk.col0, chunk.col1
            users = defaultdict(list)  # date -> [(patch, slot)]
            buffers = {}
            for i in chunk.patches.tolist():
                buffers[i] = np.empty((len(plan.dates[i]), n_bands, size, size), dtype=series.dtype)
                for slot, t in enumerate(plan.dates[i].tolist()):
                    users[t].append((i, slot))
            for t in sorted(users):
                feedback.check_canceled()
                data = sources[t].read(series.band_index, window=((r0, r1), (c0, c1)))
                for i, slot in users[t]:
                    r, c = plan.rows[i] - r0, plan.cols[i] - c0
                    buffers[i][slot] = data[:, r : r + size, c : c + size]
                del data
            label_windows = {n: label_set.read(n, r0, r1, c0, c1) for n in label_set.names} if label_set else {}
            samples = []
            for i in chunk.patches.tolist():
                row, col = int(plan.rows[i]), int(plan.cols[i])
                idx = plan.dates[i]
                lr, lc = (row - r0) * k, (col - c0) * k
                samples.append(Sample(
                    index=i, sample_id=sample_id(row, col), split=SPLITS[plan.splits[i]], row=row, col=col,
                    date_index=idx, dates=[series.dates[t] for t in idx],
                    images=_group_images(buffers.pop(i), meta, series.nodata),
                    labels={n: w[lr : lr + size * k, lc : lc + size * k].copy() for n, w in label_windows.items()},
                    transform=patch_transform(meta.grid_transform, row, col),
                    scale=series.scales[idx], offset=series.offsets[idx], cloud=plan.cloud[i, idx],
                ))
            del label_windows
            sink.submit(samples)
            del samples
            done += chunk.patches.size
            feedback.set_progress(done / len(plan))
        sink.finish()
    finally:
        for ds in sources:
            ds.close()
