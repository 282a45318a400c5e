"""Spatially blocked splits: balanced, deterministic, and leak-free (no pixel in two splits)."""
import json

import numpy as np
import pytest
import shapely

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.export import ExportedDataset
from satplugin.qgis_satplugin.core.export.splits import (NO_SPLIT, SPLITS, BlockGrid, BlockHistogram,
                                                         assign_blocks_balanced, patch_splits)
from satplugin.qgis_satplugin.core.export.windows import axis_starts

from .test_export_helpers import X0, Y0, export, make_folder, split_areas, write_label


def _split_map(ds: ExportedDataset, shape, size) -> np.ndarray:
    """Per pixel: the set of splits whose patches cover it, as bit flags."""
    flags = np.zeros(shape, dtype=np.uint8)
    for r in ds.rows:
        flags[r["row"] : r["row"] + size, r["col"] : r["col"] + size] |= 1 << SPLITS.index(r["split"])
    return flags


def _block_classes(n_side=8, block=32, seed=3):
    """A class raster made of blocks: class 1 common, class 2 medium, class 3 rare (8 blocks)."""
    rng = np.random.default_rng(seed)
    per_block = rng.choice([1, 1, 1, 2, 2, 0], size=(n_side, n_side)).astype(np.uint8)
    rare = rng.choice(n_side * n_side, 8, replace=False)
    per_block.flat[rare] = 3
    return np.kron(per_block, np.ones((block, block), dtype=np.uint8))


def test_balanced_assignment_meets_the_ratios_per_class_and_is_deterministic():
    classes = _block_classes()
    blocks = BlockGrid.cover(*classes.shape, 32)
    hist = BlockHistogram(blocks)
    hist.add_rows(0, classes.shape[0], classes, 1, 255)
    matrix = hist.matrix()
    assert matrix.shape == (64, 4) and matrix[:, 0].sum() == classes.size
    ratios = np.array([0.7, 0.15, 0.15])
    codes = assign_blocks_balanced(matrix, ratios, seed=0)
    assert np.array_equal(codes, assign_blocks_balanced(matrix, ratios, seed=0))
    assert set(codes.tolist()) == {0, 1, 2}
    for col in range(1, 4):
        share = np.array([matrix[codes == s, col].sum() for s in range(3)]) / matrix[:, col].sum()
        assert np.abs(share - ratios).max() <= 0.13, (col, share)
    # The rare class (8 blocks) is split 6/1/1 or close, not all in one split.
    rare = np.array([matrix[codes == s, 3].sum() for s in range(3)]) / (32 * 32)
    assert rare[0] >= 5 and rare[1] >= 1 and rare[2] >= 1
    assert not np.array_equal(codes, assign_blocks_balanced(matrix, ratios, seed=1))


def test_zero_ratio_split_gets_no_block():
    matrix = np.ones((20, 1))
    codes = assign_blocks_balanced(matrix, np.array([0.8, 0.0, 0.2]), seed=0)
    assert (codes != 1).all() and (codes == 0).sum() == 16


def test_patches_touching_two_splits_are_dropped():
    blocks = BlockGrid.cover(128, 128, 64)
    codes = np.array([0, 1, 0, 0], dtype=np.int8)  # block (0, 1) is val
    rows = np.array([0, 0, 0, 64, 48])
    cols = np.array([0, 48, 64, 64, 48])
    assert patch_splits(codes, blocks, rows, cols, 32).tolist() == [0, NO_SPLIT, 1, 0, NO_SPLIT]


def test_no_pixel_is_in_two_splits_with_overlapping_patches(tmp_path):
    src, grid, _ = make_folder(tmp_path, width=256, height=256, n_dates=2)
    cls = write_label(tmp_path / "class.tif", _block_classes(), grid, nodata=255)
    res = export(src, tmp_path / "out", labels={"class": cls}, patch_size=32, stride=16, split_block_size=64,
                         split_ratios=(0.6, 0.2, 0.2), seed=5)
    ds = ExportedDataset(tmp_path / "out")
    flags = _split_map(ds, (256, 256), 32)
    assert not np.isin(flags, [3, 5, 6, 7]).any(), "a pixel lies in patches of two splits"
    assert all(n > 0 for n in res.samples_per_split.values())
    # Every candidate is either kept or counted as a straddler: 15 x 15 windows.
    n_candidates = len(axis_starts(256, 32, 16)) ** 2
    assert res.n_candidates == n_candidates
    assert res.n_samples + res.dropped["across two split blocks"] == n_candidates
    # Windows starting 16 px before a block edge straddle it (unless both blocks share a split).
    straddlers = [(r["row"], r["col"]) for r in ds.rows if r["row"] % 64 == 48 or r["col"] % 64 == 48]
    for row, col in straddlers:
        split = next(x["split"] for x in ds.rows if (x["row"], x["col"]) == (row, col))
        assert (flags[row : row + 32, col : col + 32] == 1 << SPLITS.index(split)).all()
    # Same inputs and seed: the same assignment.
    again = export(src, tmp_path / "again", labels={"class": cls}, patch_size=32, stride=16,
                           split_block_size=64, split_ratios=(0.6, 0.2, 0.2), seed=5)
    assert again.samples_per_split == res.samples_per_split
    assert [r["split"] for r in ExportedDataset(tmp_path / "again").rows] == [r["split"] for r in ds.rows]


def test_splits_from_polygons(tmp_path):
    src, grid, _ = make_folder(tmp_path, width=192, height=64, n_dates=1)
    # Columns 0..63 train, 64..127 val, 128..191 test (in map coordinates).
    polygons = [
        (shapely.box(X0, Y0 - 640, X0 + 640, Y0), "train"),
        (shapely.box(X0 + 640, Y0 - 640, X0 + 1280, Y0), "Validation"),
        (shapely.box(X0 + 1280, Y0 - 640, X0 + 1900, Y0), "test"),  # stops 2 px short of the edge
    ]
    res = export(src, tmp_path / "out", patch_size=32, stride=16, split_areas=split_areas(polygons))
    ds = ExportedDataset(tmp_path / "out")
    got = {(r["row"], r["col"]): r["split"] for r in ds.rows}
    for (row, col), split in got.items():
        expected = "train" if col + 32 <= 64 else "val" if 64 <= col and col + 32 <= 128 else "test"
        assert split == expected and (col + 32 <= 64 or col >= 64) and (col + 32 <= 128 or col >= 128)
    assert {(0, 48), (0, 112)}.isdisjoint(got)  # straddle two polygons
    assert (0, 160) in got and got[(0, 160)] == "test"  # the polygon partly covers its blocks
    assert res.samples_per_split == {"train": 3 * 3, "val": 3 * 3, "test": 3 * 3}
    flags = _split_map(ds, (64, 192), 32)
    assert not np.isin(flags, [3, 5, 6, 7]).any()


def test_unknown_split_name_is_refused(tmp_path):
    src, _, _ = make_folder(tmp_path, width=64, height=64, n_dates=1)
    with pytest.raises(SatPluginError, match="Unknown split 'holdout'"):
        export(src, tmp_path / "out", patch_size=32,
               split_areas=split_areas([(shapely.box(X0, Y0 - 640, X0 + 640, Y0), "holdout")]))
    assert not (tmp_path / "out").exists()


def test_the_last_block_of_a_row_or_column_absorbs_the_leftover_strip():
    # 100 px in blocks of 32 with 16 px patches: [0, 32), [32, 64), [64, 100); no 4 px block at the edge.
    blocks = BlockGrid.cover(100, 100, 32, 16)
    assert (blocks.n_rows, blocks.n_cols, len(blocks)) == (3, 3, 9)
    assert blocks.row_edges().tolist() == [0, 32, 64, 100] and blocks.col_edges().tolist() == [0, 32, 64, 100]
    assert BlockGrid.cover(96, 20, 32).col_edges().tolist() == [0, 20]  # smaller than a block: one block
    # A strip that holds a patch stays a block of its own (a small area keeps blocks for every split).
    wide = BlockGrid.cover(307, 100, 256, 32)
    assert wide.row_edges().tolist() == [0, 256, 307] and wide.col_edges().tolist() == [0, 100]
    assert BlockGrid.cover(307, 307, 256, 52).row_edges().tolist() == [0, 307]
    assert wide.row_of([255, 256, 306]).tolist() == [0, 1, 1]
    hist = BlockHistogram(blocks)
    hist.add_rows(0, 100, np.ones((100, 100), dtype=np.uint8), 1, 255)
    assert hist.matrix()[:, 0].tolist() == [32 * 32, 32 * 32, 32 * 36] * 2 + [36 * 32, 36 * 32, 36 * 36]
    # Every window of 16 px, the shifted-inward edge one (84) included, lies in one block, whatever the splits.
    codes = np.arange(9, dtype=np.int8) % 3
    starts = axis_starts(100, 16, 16)
    assert starts.tolist() == [0, 16, 32, 48, 64, 80, 84]
    rows, cols = np.repeat(starts, starts.size), np.tile(starts, starts.size)
    got = patch_splits(codes, blocks, rows, cols, 16)
    assert (got != NO_SPLIT).all()
    expected = codes.reshape(3, 3)[np.minimum(rows // 32, 2), np.minimum(cols // 32, 2)]
    assert got.tolist() == expected.tolist()


@pytest.mark.parametrize("patch,n_side", [(16, 7), (32, 4)])
def test_edge_windows_are_kept_when_the_block_size_does_not_divide_the_grid(tmp_path, patch, n_side):
    """The tester's case: 5 dates of 100 x 100 px, blocks of 32 px; the edge windows used to cross a 4 px block."""
    src, grid, _ = make_folder(tmp_path, width=100, height=100, n_dates=5)
    classes = np.kron(np.random.default_rng(0).choice([1, 2, 3], size=(4, 4)).astype(np.uint8),
                      np.ones((25, 25), dtype=np.uint8))
    cls = write_label(tmp_path / "class.tif", classes, grid, nodata=255)
    res = export(src, tmp_path / "out", labels={"class": cls}, patch_size=patch, split_block_size=32, seed=0)
    assert res.n_candidates == n_side * n_side
    assert res.n_samples == n_side * n_side and res.dropped["across two split blocks"] == 0
    card = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert card["split_method"]["blocks"] == 9 and sum(card["split_method"]["blocks_per_split"].values()) == 9
    ds = ExportedDataset(tmp_path / "out")
    assert sorted({r["col"] for r in ds.rows})[-1] == 100 - patch  # the shifted-inward window is there
    assert len({r["split"] for r in ds.rows}) > 1  # several splits, so blocks of two splits meet
    # A patch takes the split of its block (the last one of a row or column reaching the edge) ...
    split_of_block = {}
    for r in ds.rows:
        block = (min(r["row"] // 32, 2), min(r["col"] // 32, 2))
        assert split_of_block.setdefault(block, r["split"]) == r["split"]
    # ... and no pixel is in two splits.
    assert not np.isin(_split_map(ds, (100, 100), patch), [3, 5, 6, 7]).any()
