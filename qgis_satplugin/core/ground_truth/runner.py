"""Rasterize ground-truth polygons: classes, parcel ids, exact coverage, conflicts, distance.

The entry :func:`run` takes a :class:`GroundTruthOptions`. The grid is processed in strips
of rows, so memory is bounded by two strips (one being computed, one being written)
whatever the number of parcels or the grid size. Within a strip every (polygon, pixel)
share is exact (see ``coverage``); each pixel goes to the polygon with the largest share,
ties broken by parcel id then class, so the result does not depend on feature order
(``strips``). Polygons are prepared in ``polygons``, written in ``writer``, and the
distance raster is measured in ``distance``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import AtomicOutputs
from ..class_table import ClassTable, build_class_table
from ..coverage import polygon_segments, strip_coverage
from ..dependencies import require
from ..errors import SatPluginError
from ..feedback import Feedback
from ..grid import PixelGrid
from ..options import plain
from .options import GroundTruthOptions
from .polygon_file import with_polygons_read
from .polygons import clip_to_grid, prepare_polygons
from .strips import feature_ranks, resolve_strip, strip_rows_for
from .writer import ID_NODATA, StripWriter, class_table_check, open_rasters, raster_check, update_class_table_tag


@dataclass
class GroundTruthResult:
    grid: PixelGrid
    class_table: ClassTable
    n_features: int
    n_rasterized: int
    n_repaired: int
    n_skipped_empty: int
    labelled_pixels: int
    conflict_pixels: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain JSON values; the class table as its rows (what the class table file holds)."""
        return plain(
            {
                "grid": self.grid,
                "class_table": list(self.class_table.rows()),
                "n_classes": len(self.class_table.ids),
                "n_features": self.n_features,
                "n_rasterized": self.n_rasterized,
                "n_repaired": self.n_repaired,
                "n_skipped_empty": self.n_skipped_empty,
                "labelled_pixels": self.labelled_pixels,
                "conflict_pixels": self.conflict_pixels,
                "outputs": self.outputs,
            }
        )


def run(options: GroundTruthOptions, feedback: Feedback | None = None) -> GroundTruthResult:
    """Burn the options' polygons onto their grid. See the module docstring for the rules."""
    feedback = Feedback.of(feedback)
    options = with_polygons_read(options)
    outputs, grid = options.outputs, options.grid
    raster_paths = {name: Path(path) for name, path in outputs.rasters().items()}
    table_path = Path(outputs.class_table) if outputs.class_table else None
    if outputs.distance_raster:
        require("OUTPUT_DISTANCE", "cv2", alternative="leave OUTPUT_DISTANCE empty")
    strip_rows = strip_rows_for(grid, options.strip_rows)  # refuses a grid too wide for memory, before any work
    table, class_of = build_class_table(options.class_values, options.class_names)
    geoms, n_repaired, n_empty = prepare_polygons(options.polygons, options.source_crs, grid, feedback)
    n_features = len(geoms)
    ids = options.parcel_id_array()

    clipped, inside = clip_to_grid(geoms, grid)
    if not inside.any():
        raise SatPluginError(
            f"None of the {n_features} polygons overlaps the grid {grid.bounds} ({grid.pyproj_crs().to_string()}). "
            "Check the CRS of the layer and the grid."
        )
    keep = np.flatnonzero(inside)
    class_of, ids = class_of[keep], ids[keep]
    rank = feature_ranks(ids, class_of)
    class_by_rank, id_by_rank = np.empty_like(class_of), np.empty_like(ids)
    class_by_rank[rank], id_by_rank[rank] = class_of, ids
    seg = polygon_segments(clipped[keep], grid.x_min, grid.y_max, grid.pixel_width, grid.pixel_height)
    for cid in np.unique(class_of):
        table.parcel_count[int(cid)] = int((class_of == cid).sum())
    feedback.log(f"Rasterizing {len(keep)} of {n_features} polygons onto a {grid.width} x {grid.height} grid.")

    pixel_counts = np.zeros(int(table.max_id) + 1, dtype=np.int64)
    conflict_counts = np.zeros(3, dtype=np.int64)
    seg_y_lo, seg_y_hi = seg.y_lo, seg.y_hi
    verify = {path: raster_check(grid, name, table) for name, path in raster_paths.items()}
    if table_path:
        verify[table_path] = class_table_check(table)
    final_paths = list(raster_paths.values()) + ([table_path] if table_path else [])
    with AtomicOutputs(final_paths, verify=verify, what="ground-truth run") as temp:
        datasets = open_rasters({k: temp[p] for k, p in raster_paths.items()}, grid, table)
        writer = StripWriter(datasets, min(grid.pixel_width, grid.pixel_height))
        try:
            n_strips = -(-grid.height // strip_rows)
            for index, row0 in enumerate(range(0, grid.height, strip_rows)):
                feedback.check_canceled()
                row1 = min(row0 + strip_rows, grid.height)
                near = (seg_y_hi > row0) & (seg_y_lo < row1)
                cov = strip_coverage(seg.subset(near), row0, row1, grid.width)
                strip = resolve_strip(cov, row0, row1 - row0, grid.width, rank, class_of, options.min_coverage)
                # A leading sentinel maps "no winner" (-1) to background and nodata.
                strip_class = np.r_[0, class_by_rank].astype(table.dtype)[strip.winner + 1]
                pixel_counts += np.bincount(strip_class.ravel(), minlength=pixel_counts.size)
                conflict_counts += np.bincount(strip.conflict.ravel(), minlength=3)
                strip_ids = np.r_[ID_NODATA, id_by_rank].astype(np.int32)[strip.winner + 1]
                writer.submit(
                    row0, {"class": strip_class, "id": strip_ids, "coverage": strip.coverage, "conflict": strip.conflict}
                )
                feedback.set_progress((index + 1) / n_strips)
            writer.finish()
        finally:
            writer.close()
        for cid, count in enumerate(pixel_counts):
            if count or cid in table.names or cid in table.ids.values():
                table.pixel_count[cid] = int(count)
        if table_path:
            table.write(temp[table_path])
        if "class" in raster_paths:
            update_class_table_tag(temp[raster_paths["class"]], table)

    labelled_total = int(pixel_counts[1:].sum())
    feedback.log(
        f"Labelled {labelled_total} pixels in {len(table.ids)} classes; conflicts: "
        f"{int(conflict_counts[1])} mixed-class pixels, {int(conflict_counts[2])} overlapped pixels."
    )
    return GroundTruthResult(
        grid=grid,
        class_table=table,
        n_features=n_features,
        n_rasterized=len(keep),
        n_repaired=n_repaired,
        n_skipped_empty=n_empty,
        labelled_pixels=labelled_total,
        conflict_pixels={1: int(conflict_counts[1]), 2: int(conflict_counts[2])},
        outputs={**{k: str(v) for k, v in raster_paths.items()}, **({"class_table": str(table_path)} if table_path else {})},
    )
