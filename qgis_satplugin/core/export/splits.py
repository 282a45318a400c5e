"""Spatially blocked train/val/test splits that cannot leak pixels between splits.

Neighbouring patches share fields, and overlapping patches share pixels, so a random
split per patch lets a model see its test pixels in training. Instead the raster is cut
into square blocks, whole blocks go to splits, and a patch is kept only when every block
it touches has the same split. Patches straddling two splits are dropped (and counted),
so no pixel of one split is inside a patch of another.

Blocks start at the grid's origin every ``size`` px. Where ``size`` does not divide the
grid and the strip left at the right or bottom edge is narrower than a patch, the last
block of each row and column takes that strip too: a block of its own there would hold no
patch, yet every window shifted inward to end at the edge (:mod:`.windows`) would cross
into it and be dropped whenever its split differed from its neighbour's, and it would
count as a whole block toward the ratios. A strip as wide as a patch stays a block of its
own (a small area keeps more than one block, so every split can get some).

Blocks are assigned greedily toward the target ratios of every class at once: each block
(largest class shares first, ties in a seeded random order) goes to the split whose
remaining need for that block's classes it fills best. A column of plain pixel counts
takes part too, so unlabelled areas are spread by area. The result depends only on the
labels, the ratios and the seed.

With split polygons (a field value train/val/test per polygon), a block takes the split
of the polygons it overlaps; blocks overlapping polygons of two splits, or none, are
left out.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import SatPluginError

SPLITS = ("train", "val", "test")
_ALIASES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val", "test": "test", "testing": "test"}
NO_SPLIT = -1


def normalise_ratios(ratios) -> np.ndarray:
    values = np.asarray(list(ratios), dtype=np.float64)
    if values.shape != (3,) or not np.all(np.isfinite(values)) or (values < 0).any() or values.sum() <= 0:
        raise SatPluginError(f"split_ratios must be three non-negative numbers (train, val, test) with a positive sum, got {ratios!r}.")
    return values / values.sum()


def split_code(name) -> int:
    key = _ALIASES.get(str(name).strip().lower())
    if key is None:
        raise SatPluginError(f"Unknown split {name!r} in the split polygons; use train, val or test.")
    return SPLITS.index(key)


@dataclass(frozen=True)
class BlockGrid:
    """Blocks of ``size`` px over a ``height`` x ``width`` grid; an edge strip narrower than
    ``patch`` px belongs to the last block of its row or column (module docstring)."""

    size: int
    height: int
    width: int
    patch: int = 1

    @classmethod
    def cover(cls, height: int, width: int, size: int, patch: int = 1) -> "BlockGrid":
        if size < 1:
            raise SatPluginError(f"split_block_size must be at least 1 pixel, got {size}.")
        return cls(int(size), int(height), int(width), int(patch))

    @property
    def n_rows(self) -> int:
        return _count(self.height, self.size, self.patch)

    @property
    def n_cols(self) -> int:
        return _count(self.width, self.size, self.patch)

    def row_edges(self) -> np.ndarray:
        """``n_rows + 1`` pixel rows: block row ``i`` is rows ``edges[i]..edges[i + 1]``."""
        return _edges(self.n_rows, self.size, self.height)

    def col_edges(self) -> np.ndarray:
        return _edges(self.n_cols, self.size, self.width)

    def row_of(self, pixel_rows) -> np.ndarray:
        """Block row of each pixel row (the edge strip's rows are in the last block row)."""
        return np.minimum(np.asarray(pixel_rows) // self.size, self.n_rows - 1)

    def col_of(self, pixel_cols) -> np.ndarray:
        return np.minimum(np.asarray(pixel_cols) // self.size, self.n_cols - 1)

    def __len__(self) -> int:
        return self.n_rows * self.n_cols


def _count(length: int, size: int, patch: int) -> int:
    """Blocks along an axis: the whole ones, and the edge strip when a patch fits in it."""
    return max(1, length // size + (length % size >= patch))


def _edges(n: int, size: int, length: int) -> np.ndarray:
    edges = np.arange(n + 1, dtype=np.int64) * size
    edges[-1] = length  # the last block reaches the edge
    return edges


class BlockHistogram:
    """Pixels per block and label pixels per (block, class), accumulated strip by strip."""

    def __init__(self, blocks: BlockGrid):
        self.blocks = blocks
        self.area = np.zeros(len(blocks), dtype=np.int64)
        self.counts: dict = {}  # class id -> int64 array over blocks

    def add_rows(self, row0: int, n_rows: int, classes: np.ndarray | None, k: int, nodata):
        """Image rows ``row0..row0+n_rows`` (all columns); ``classes`` are their label pixels.

        Counted block by block with ``bincount``: memory stays at one block's slice.
        """
        blocks = self.blocks
        n_cols = blocks.n_cols
        row_edges, col_edges = blocks.row_edges(), blocks.col_edges()
        widths = np.diff(col_edges)
        top = row0
        while top < row0 + n_rows:
            block_row = int(blocks.row_of(top))
            bottom = min(int(row_edges[block_row + 1]), row0 + n_rows)
            base = block_row * n_cols
            self.area[base : base + n_cols] += (bottom - top) * widths
            if classes is not None:
                rows = classes[(top - row0) * k : (bottom - row0) * k]
                for bc in range(n_cols):
                    part = rows[:, col_edges[bc] * k : col_edges[bc + 1] * k]
                    values = part.ravel()
                    if values.dtype.kind != "u":  # signed rasters: negatives cannot be counted by bincount
                        values = values[values > 0]
                    counts = np.bincount(values)
                    for cls in np.flatnonzero(counts).tolist():
                        if cls == 0 or cls == nodata:
                            continue
                        arr = self.counts.get(cls)
                        if arr is None:
                            arr = self.counts[cls] = np.zeros(len(self.blocks), dtype=np.int64)
                        arr[base + bc] += int(counts[cls])
            top = bottom

    def matrix(self) -> np.ndarray:
        """[blocks, 1 + classes]: pixel area first, then one column per class present."""
        cols = [self.area] + [self.counts[c] for c in sorted(self.counts)]
        return np.stack(cols, axis=1).astype(np.float64)


def assign_blocks_balanced(hist: np.ndarray, ratios: np.ndarray, seed: int) -> np.ndarray:
    """Split code per block, greedy toward ``ratios`` for every column of ``hist``."""
    n_blocks, n_cols = hist.shape
    totals = hist.sum(axis=0)
    weights = np.where(totals > 0, 1.0 / np.maximum(totals, 1), 0.0)
    target = ratios[:, None] * totals[None, :]
    have = np.zeros((3, n_cols))
    count = np.zeros(3)
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(n_blocks)
    # Blocks holding a large share of some class first: they are the hard ones to place.
    share = (hist * weights[None, :]).max(axis=1)
    order = shuffled[np.argsort(-share[shuffled], kind="stable")]
    codes = np.full(n_blocks, NO_SPLIT, dtype=np.int8)
    for blk in order:
        h = hist[blk]
        need = np.maximum(target - have, 0.0)
        fill = np.minimum(h[None, :], need)
        gain = ((fill - (h[None, :] - fill)) * weights[None, :]).sum(axis=1)
        gain[ratios == 0] = -np.inf
        block_need = ratios * (n_blocks) - count
        best = max(range(3), key=lambda s: (gain[s], block_need[s], -s))
        codes[blk] = best
        have[best] += h
        count[best] += 1
    return codes


def assign_blocks_from_polygons(polygons, grid, blocks: BlockGrid) -> tuple[np.ndarray, dict]:
    """Split code per block from (geometry, split name) pairs in the image CRS."""
    import shapely

    pairs = list(polygons)
    if not pairs:
        raise SatPluginError("split_polygons is empty; give polygons with a split field, or leave it out.")
    geoms = np.asarray([g for g, _ in pairs], dtype=object)
    codes_of = np.asarray([split_code(s) for _, s in pairs])
    bi, bj = np.divmod(np.arange(len(blocks)), blocks.n_cols)
    rows, cols = blocks.row_edges(), blocks.col_edges()
    x0 = grid.x_min + cols[bj] * grid.pixel_width
    x1 = grid.x_min + cols[bj + 1] * grid.pixel_width
    y1 = grid.y_max - rows[bi] * grid.pixel_height
    y0 = grid.y_max - rows[bi + 1] * grid.pixel_height
    boxes = shapely.box(x0, y0, x1, y1)
    tree = shapely.STRtree(geoms)
    blk, poly = tree.query(boxes, predicate="intersects")
    # Touching along an edge is not overlapping.
    area = shapely.area(shapely.intersection(boxes[blk], geoms[poly]))
    blk, poly = blk[area > 0], poly[area > 0]
    seen = np.zeros((len(blocks), 3), dtype=bool)
    seen[blk, codes_of[poly]] = True
    n_splits = seen.sum(axis=1)
    codes = np.where(n_splits == 1, seen.argmax(axis=1), NO_SPLIT).astype(np.int8)
    info = {"blocks_mixed": int((n_splits > 1).sum()), "blocks_outside": int((n_splits == 0).sum())}
    return codes, info


def patch_splits(block_codes: np.ndarray, blocks: BlockGrid, rows: np.ndarray, cols: np.ndarray, size: int) -> np.ndarray:
    """Split code per patch: the one split of every block it touches, else NO_SPLIT."""
    r0, r1 = blocks.row_of(rows), blocks.row_of(rows + size - 1)
    c0, c1 = blocks.col_of(cols), blocks.col_of(cols + size - 1)
    grid_codes = block_codes.reshape(blocks.n_rows, blocks.n_cols)
    out = np.empty(rows.size, dtype=np.int8)
    for i in range(rows.size):
        touched = grid_codes[r0[i] : r1[i] + 1, c0[i] : c1[i] + 1]
        first = touched.flat[0]
        out[i] = first if (first != NO_SPLIT and (touched == first).all()) else NO_SPLIT
    return out
