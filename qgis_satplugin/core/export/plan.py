"""Which patches are exported, with which dates, into which split: decided before writing.

The plan reads only the small rasters (the class labels and the uint8 cloud masks), so
every filter's effect is known before any image pixel is copied: a run that would export
nothing fails at once with the count removed by each filter, and formats that need the
dataset's size up front (zarr) get it.

Filters, in the order their drops are counted:

1. ``min_labelled``: share of the patch's label pixels that have a class (> 0);
2. the split: a patch touching blocks of two splits (or blocks without a split) is dropped;
3. dates: per patch and date, the share of pixels that are cloud (SCL 3 cloud shadow, 8, 9
   cloud, 10 cirrus; CLM 1) or no data (mask no-data, or image no-data where there is no
   mask) must be at most ``max_cloud`` %, and a date where the patch is all no-data is
   always dropped; a patch keeps only its clear dates, needs at least ``min_dates`` of
   them, and above ``max_dates`` keeps ``max_dates`` spread evenly in time.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import SatPluginError
from ..feedback import Feedback
from ..image_series.dates import even_in_time
from ..image_series.reader import ImageSeries
from ..sentinel2 import MASK_CLOUD_VALUES, MASK_NODATA
from .label_rasters import LabelSet, labelled
from .splits import (
    NO_SPLIT,
    SPLITS,
    BlockGrid,
    BlockHistogram,
    assign_blocks_balanced,
    assign_blocks_from_polygons,
    patch_splits,
)
from .windows import PatchGrid

# Rows read at once by the planning passes (uint8 or small label rasters).
PLAN_READ_ROWS = 1024


@dataclass
class Plan:
    rows: np.ndarray  # kept patches, row-major
    cols: np.ndarray
    splits: np.ndarray  # split code per kept patch
    dates: list  # per kept patch: indices into the series' dates, in time order
    cloud: np.ndarray  # [kept, T] % cloud or no data per patch and date
    n_candidates: int
    dropped: dict = field(default_factory=dict)  # reason -> count, in filter order
    split_info: dict = field(default_factory=dict)
    class_pixels: dict = field(default_factory=dict)  # split -> {class: label pixels under its patches, each once}

    def __len__(self) -> int:
        return self.rows.size

    @property
    def max_dates(self) -> int:
        return max((d.size for d in self.dates), default=0)


def _row_groups(starts: np.ndarray, size: int, max_rows: int) -> list:
    """Consecutive window-row starts whose rows span at most ``max(size, max_rows)``."""
    groups, current = [], []
    for r in starts.tolist():
        if current and r + size - current[0] > max(size, max_rows):
            groups.append(current)
            current = []
        current.append(r)
    if current:
        groups.append(current)
    return groups


def _window_sums(bad: np.ndarray, cols: np.ndarray, width: int) -> np.ndarray:
    """Per window (all rows of ``bad``, columns ``c..c+width``): the count of True pixels."""
    cs = np.concatenate([[0], np.cumsum(bad.sum(axis=0, dtype=np.int64))])
    return cs[cols + width] - cs[cols]


def _labelled_fractions(labels: LabelSet, pg: PatchGrid, hist: BlockHistogram, width: int, feedback: Feedback) -> np.ndarray:
    """Share of labelled label pixels per patch; fills the block histogram on the way."""
    k, size = labels.scale, pg.size
    nodata = labels.rasters["class"].nodata
    out = np.empty((pg.row_starts.size, pg.col_starts.size), dtype=np.float64)
    counted_to = 0
    for group in _row_groups(pg.row_starts, size, max(1, PLAN_READ_ROWS // k)):
        feedback.check_canceled()
        top, bottom = group[0], group[-1] + size
        classes = labels.read("class", top, bottom, 0, width)
        lab = labelled(classes, nodata)
        for r in group:
            part = lab[(r - top) * k : (r - top + size) * k]
            out[np.searchsorted(pg.row_starts, r)] = _window_sums(part, pg.col_starts * k, size * k) / float((size * k) ** 2)
        new_from = max(top, counted_to)
        if new_from < bottom:
            hist.add_rows(new_from, bottom - new_from, classes[(new_from - top) * k :], k, nodata)
            counted_to = bottom
    return out.ravel()


def _cloud_percent(series: ImageSeries, pg: PatchGrid, feedback: Feedback) -> tuple[np.ndarray, np.ndarray]:
    """[patches, T]: % cloud or no data, and whether the patch is all no-data, per date."""
    import rasterio

    n, t_count, size = len(pg), len(series.images), pg.size
    width = series.grid.width
    cloud = np.zeros((n, t_count), dtype=np.float32)
    empty = np.zeros((n, t_count), dtype=bool)
    area = float(size * size)
    for t, image in enumerate(series.images):
        if image.mask_path is not None:
            path, band, kind = image.mask_path, 1, image.mask_kind or "SCL"
            bad_values, nodata = MASK_CLOUD_VALUES[kind], MASK_NODATA[kind]
        elif series.nodata is not None:
            path, band, bad_values, nodata = image.path, series.band_index[0], (), series.nodata
        else:
            continue
        with rasterio.open(path) as ds:
            for group in _row_groups(pg.row_starts, size, PLAN_READ_ROWS):
                feedback.check_canceled()
                top = group[0]
                values = ds.read(band, window=((top, group[-1] + size), (0, width)))
                missing = values == nodata
                bad = missing | np.isin(values, bad_values) if bad_values else missing
                for r in group:
                    i = np.searchsorted(pg.row_starts, r)
                    sl = slice(i * pg.col_starts.size, (i + 1) * pg.col_starts.size)
                    rows = slice(r - top, r - top + size)
                    cloud[sl, t] = 100.0 * _window_sums(bad[rows], pg.col_starts, size) / area
                    empty[sl, t] = _window_sums(missing[rows], pg.col_starts, size) == area
        feedback.set_progress((t + 1) / t_count)
    return cloud, empty


def _class_pixels(labels: LabelSet, plan: Plan, size: int, height: int, width: int, feedback: Feedback) -> dict:
    """Label pixels per split and class (no-data left out) under the kept patches, each pixel once.

    Overlapping patches (a stride under the patch size, the inward-shifted edge windows)
    share pixels; summing per-patch histograms would count those pixels again, so a
    class's share would lean toward wherever patches overlap most and not match the
    raster. As no pixel is in two splits, the three splits' counts add up to the label
    pixels the dataset holds. Read strip by strip, like the other planning passes.
    """
    k = labels.scale
    nodata = labels.rasters["class"].nodata
    rows, cols, splits = plan.rows, plan.cols, plan.splits
    totals = {s: {} for s in SPLITS}
    step = max(size, PLAN_READ_ROWS // k)
    for top in range(0, min(int(rows.max()) + size, height), step):
        bottom = min(top + step, height)
        here = np.flatnonzero((rows < bottom) & (rows + size > top))
        if not here.size:
            continue
        feedback.check_canceled()
        owner = np.full((bottom - top, width), NO_SPLIT, dtype=np.int8)  # split of each image pixel of the strip
        for i in here.tolist():
            owner[max(rows[i] - top, 0) : rows[i] + size - top, cols[i] : cols[i] + size] = splits[i]
        classes = labels.read("class", top, bottom, 0, width)
        if k > 1:
            owner = np.repeat(np.repeat(owner, k, axis=0), k, axis=1)
        valid = classes != nodata
        for code, split in enumerate(SPLITS):
            values, counts = np.unique(classes[valid & (owner == code)], return_counts=True)
            for value, count in zip(values.tolist(), counts.tolist()):
                totals[split][value] = totals[split].get(value, 0) + count
    return totals


def plan_patches(series: ImageSeries, labels: LabelSet | None, pg: PatchGrid, *, min_labelled: float, max_cloud: float,
                 min_dates: int, max_dates, block_size: int, ratios: np.ndarray, seed: int, split_polygons,
                 feedback: Feedback) -> Plan:
    """``split_polygons``: [(geometry in the images' CRS, split name)] or None (balanced blocks)."""
    grid = series.grid
    n = len(pg)
    rows, cols = pg.rows, pg.cols
    blocks = BlockGrid.cover(grid.height, grid.width, block_size, pg.size)
    hist = BlockHistogram(blocks)
    has_class = labels is not None and "class" in labels
    if has_class:
        frac = _labelled_fractions(labels, pg, hist, grid.width, feedback)
    else:
        hist.add_rows(0, grid.height, None, 1, None)
        frac = np.full(n, np.nan)
    feedback.set_progress(0.2)
    cloud, empty = _cloud_percent(series, pg, feedback.sub_range(0.2, 0.9))

    dropped = {}
    alive = np.ones(n, dtype=bool)
    if min_labelled > 0:
        low = alive & ~(frac >= min_labelled - 1e-12)
        dropped[f"under min_labelled={min_labelled:g} labelled share"] = int(low.sum())
        alive &= ~low

    split_info = {"block_size": blocks.size, "blocks": len(blocks)}
    if split_polygons is not None:
        block_codes, info = assign_blocks_from_polygons(split_polygons, grid, blocks)
        split_info.update(info, method="polygons")
    else:
        block_codes = assign_blocks_balanced(hist.matrix(), ratios, seed)
        split_info.update(method="balanced blocks", seed=int(seed))
    split_info["blocks_per_split"] = {s: int((block_codes == i).sum()) for i, s in enumerate(SPLITS)}
    codes = patch_splits(block_codes, blocks, rows, cols, pg.size)
    off_split = alive & (codes == NO_SPLIT)
    reason = "outside the split polygons or across two splits" if split_polygons is not None else "across two split blocks"
    dropped[reason] = int(off_split.sum())
    alive &= ~off_split

    times = np.array([d.timestamp() for d in series.dates])
    clear = (cloud <= max_cloud + 1e-9) & ~empty
    date_lists = [None] * n
    few = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(alive):
        idx = np.flatnonzero(clear[i])
        if idx.size < min_dates:
            few[i] = True
            continue
        if max_dates is not None and idx.size > max_dates:
            idx = idx[even_in_time(times[idx], max_dates)]
        date_lists[i] = idx
    dropped[f"fewer than min_dates={min_dates} dates with at most max_cloud={max_cloud:g} % cloud or no data"] = int(few.sum())
    alive &= ~few

    keep = np.flatnonzero(alive)
    plan = Plan(rows[keep], cols[keep], codes[keep], [date_lists[i] for i in keep], cloud[keep], n, dropped, split_info)
    if not len(plan):
        details = "; ".join(f"{count} {why}" for why, count in dropped.items() if count)
        raise SatPluginError(
            f"Every one of the {n} patches was filtered out ({details}). Relax that filter and run again."
        )
    plan.class_pixels = (_class_pixels(labels, plan, pg.size, grid.height, grid.width, feedback) if has_class
                         else {s: {} for s in SPLITS})
    feedback.set_progress(1.0)
    for i, s in enumerate(SPLITS):
        if ratios[i] > 0 and not (plan.splits == i).any() and split_polygons is None:
            feedback.log(f"Warning: no patch went to the {s} split; use a smaller split_block_size or a larger area.")
    drops = ", ".join(f"{c} dropped {why}" for why, c in dropped.items() if c)
    feedback.log(f"{len(plan)} of {n} patches kept" + (f"; {drops}." if drops else "."))
    return plan
