"""Rasterize ground-truth polygons: classes, parcel ids, exact coverage, conflicts, distance.

The entry :func:`run` takes a :class:`GroundTruthOptions`. The grid is processed in strips
of rows, so memory is bounded by a few strips whatever the number of parcels or the grid
size. Within a strip every (polygon, pixel) share is exact; each pixel goes to the
polygon with the largest share, ties broken by parcel id then class, so the result does
not depend on feature order (``burn_kernel``, compiled). Polygons are prepared in
``polygons`` and ``edges``, written in ``writer`` while the next strip is burnt, and the
distance raster is measured in ``distance``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import AtomicOutputs
from ..class_table import ClassTable, build_class_table
from ..dependencies import require
from ..errors import SatPluginError
from ..feedback import Feedback
from ..gdal_cache import small_block_cache
from ..grid import PixelGrid
from ..options import plain
from .burn_kernel import burn_strip, new_scratch
from .edges import kernel_edges
from .input_notes import note_background_class, note_shared_parcel_ids
from .options import GroundTruthOptions, OutputPaths
from .polygon_file import with_polygons_read
from .polygons import clip_to_grid, prepare_polygons
from .strips import feature_ranks, strip_rows_for, tile_row_bytes
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
    seconds: dict = field(default_factory=dict)  # wall time of each phase (see PHASES)

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
                "seconds": self.seconds,
            }
        )


# What a run's ``seconds`` time: reading a polygon file (0 for polygons sent inline); decoding,
# repairing, reprojecting and clipping them; burning the strips while they are written behind;
# the last writes, the checks of every output and their publication.
PHASES = ("read", "prepare", "burn", "write")


class _Laps:
    """Wall time per phase, each lap ending the previous one."""

    def __init__(self):
        self.seconds: dict = {}
        self._start = time.perf_counter()

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._start, 3)
        self._start = now


def run(options: GroundTruthOptions, feedback: Feedback | None = None) -> GroundTruthResult:
    """Burn the options' polygons onto their grid. See the module docstring for the rules."""
    feedback = Feedback.of(feedback)
    laps = _Laps()
    options = with_polygons_read(options)
    laps.lap("read")
    outputs, grid = options.outputs, options.grid
    raster_paths = {name: Path(path) for name, path in outputs.rasters().items()}
    table_path = Path(outputs.class_table) if outputs.class_table else None
    require("Rasterizing ground truth", "numba")
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
    if options.parcel_ids is not None:
        note_shared_parcel_ids(ids, class_of, table, feedback)
    note_background_class(class_of, feedback)
    rank = feature_ranks(ids, class_of)
    # Indexed by a strip's owner (1 + rank); the leading row maps "no winner" to background and nodata.
    class_by_owner = np.zeros(len(keep) + 1, dtype=table.dtype)
    id_by_owner = np.full(len(keep) + 1, ID_NODATA, dtype=np.int32)
    class_by_owner[rank + 1], id_by_owner[rank + 1] = class_of, ids
    edges = kernel_edges(clipped[keep], grid)
    for cid in np.unique(class_of):
        table.parcel_count[int(cid)] = int((class_of == cid).sum())
    feedback.log(f"Rasterizing {len(keep)} of {n_features} polygons onto a {grid.width} x {grid.height} grid.")

    pixel_counts = np.zeros(int(table.max_id) + 1, dtype=np.int64)
    laps.lap("prepare")
    conflict_counts = np.zeros(3, dtype=np.int64)
    verify = {path: raster_check(grid, name, table) for name, path in raster_paths.items()}
    if table_path:
        verify[table_path] = class_table_check(table)
    final_paths = list(raster_paths.values()) + ([table_path] if table_path else [])
    scratch = new_scratch(strip_rows, grid.width)
    with AtomicOutputs(final_paths, verify=verify, what="ground-truth run") as temp, small_block_cache(tile_row_bytes(grid)):
        datasets = open_rasters({k: temp[p] for k, p in raster_paths.items()}, grid, table)
        writer = StripWriter(datasets, min(grid.pixel_width, grid.pixel_height), strip_rows)
        try:
            n_strips = -(-grid.height // strip_rows)
            for index, row0 in enumerate(range(0, grid.height, strip_rows)):
                feedback.check_canceled()
                row1 = min(row0 + strip_rows, grid.height)
                shape = (row1 - row0, grid.width)
                layers = {"class": np.empty(shape, table.dtype), "id": np.empty(shape, np.int32),
                          "coverage": np.empty(shape, np.float32), "conflict": np.empty(shape, np.uint8)}
                burn_strip(*edges, rank, class_of, row0, row1, grid.width, options.min_coverage, class_by_owner,
                           id_by_owner, scratch, *layers.values(), pixel_counts, conflict_counts)
                writer.submit(row0, layers)
                feedback.set_progress((index + 1) / n_strips)
            laps.lap("burn")
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

    laps.lap("write")
    labelled_total = int(pixel_counts[1:].sum())
    feedback.log(
        f"Labelled {labelled_total} pixels in {len(table.ids)} classes; conflicts: "
        f"{int(conflict_counts[1])} mixed-class pixels, {int(conflict_counts[2])} overlapped pixels."
    )
    feedback.log("Seconds: " + ", ".join(f"{phase} {laps.seconds[phase]:.2f}" for phase in PHASES) + ".")
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
        seconds=laps.seconds,
    )


def warm_up() -> None:
    """Compile the rasterizer's kernels into numba's cache: a tiny run with every output, in a temporary folder.

    The plugin's installer calls it (``python -m satplugin_engine warm-up``), so that a user's
    first ground truth does not wait for the compiler.
    """
    import tempfile

    import shapely

    grid = PixelGrid.square("EPSG:32633", 500000.0, 5000080.0, 10.0, 8, 8)
    polygon = shapely.box(500005.0, 5000005.0, 500045.0, 5000075.0).wkb_hex
    with tempfile.TemporaryDirectory(prefix="satplugin-warm-up-") as tmp:
        folder = Path(tmp)
        outputs = OutputPaths(**{f"{name}_raster": folder / f"{name}.tif" for name in ("class", "id", "coverage", "conflict", "distance")})
        for class_id in (1, 300):  # a class raster of bytes, and one of 16 bits (classes above 254)
            run(GroundTruthOptions(polygons=(polygon,), class_values=(class_id,), source_crs=grid.crs, grid=grid, outputs=outputs))
