"""The ground-truth job spec: the polygons inline, the grid, the outputs, as plain values.

The polygons travel as WKB hex strings (None for a feature without geometry) with their
class values, parcel ids and class names beside them, so a job is complete in itself:
it can be written as JSON, run in another process, and read back into an equal object.
"""
from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from ..class_table import build_class_table
from ..errors import SatPluginError
from ..grid import PixelGrid
from ..options import StepOptions, option

INT32_MAX = int(np.iinfo(np.int32).max)
# Rows per strip (see .strips): memory is about 85 bytes per pixel of a strip (~240 MB for a
# strip of a full 10980-pixel-wide tile), whatever the number of parcels or the grid's height.
# Taller strips are not faster: their work arrays no longer stay in the CPU's caches.
STRIP_ROWS = 256


@dataclass(frozen=True)
class OutputPaths(StepOptions):
    """Where each output goes; None skips it (and its cost)."""

    class_raster: Optional[str] = option(None, help="class id, 0 background")
    id_raster: Optional[str] = option(None, help="parcel id, nodata -1")
    coverage_raster: Optional[str] = option(None, help="share of the pixel covered by the labelling polygon")
    conflict_raster: Optional[str] = option(
        None, help="1: partly covered by polygons of different classes; 2: inside one polygon and also covered by another"
    )
    distance_raster: Optional[str] = option(
        None,
        help="metres from the pixel centre to the parcel edge, measured on the label raster; "
        "a parcel cut by the grid edge ends there; capped at 128 pixels",
    )
    class_table: Optional[str] = option(None, help=".csv or .json: class id, value, name, pixel and parcel counts")

    def rasters(self) -> dict:
        """Output name -> path of every raster asked for."""
        return {
            name: path
            for name, path in (
                ("class", self.class_raster),
                ("id", self.id_raster),
                ("coverage", self.coverage_raster),
                ("conflict", self.conflict_raster),
                ("distance", self.distance_raster),
            )
            if path
        }


@dataclass(frozen=True)
class PolygonFile(StepOptions):
    """Polygons the engine reads from a vector file itself, every feature in file order (see .polygon_file)."""

    path: str = option(help="a vector file GDAL reads (GeoPackage, shapefile, GeoJSON...)")
    class_field: str = option(help="the field that holds each polygon's class")
    layer: Optional[str] = option(None, help="the layer to read (default: the file's first)")
    id_field: Optional[str] = option(None, help="an integer field with the parcel ids (default: the feature id)")
    name_field: Optional[str] = option(None, help="a field that names the classes")

    def check(self) -> None:
        if not os.path.isfile(self.path):
            raise SatPluginError(f"The polygon file {self.path} does not exist.")
        if not self.class_field:
            raise SatPluginError("The polygon file needs CLASS_FIELD, the field that holds the class.")


@dataclass(frozen=True)
class GroundTruthOptions(StepOptions):
    """One rasterization: polygons in ``source_crs`` burnt onto ``grid``."""

    polygons: tuple[Optional[str], ...] = option(
        help="the polygons as WKB hex strings, one per feature (None for a feature without geometry); "
        "invalid ones are repaired; all are reprojected to the grid's CRS and clipped to the grid"
    )
    class_values: tuple[Union[int, str, None], ...] = option(
        help="one class per polygon: an integer field keeps its values; a text field maps to 1..K in sorted "
        "order. 0 is background"
    )
    source_crs: str = option(help="the CRS the polygons are in (EPSG code, WKT or PROJ string)")
    grid: PixelGrid = option(help="the pixel grid to burn onto (CRS, origin, pixel size, shape)")
    outputs: OutputPaths = option(help="the output files; each is optional and skipped ones cost nothing")
    parcel_ids: Optional[tuple[int, ...]] = option(
        None, help="one integer parcel id per polygon, 0 or more (default: the feature's index)"
    )
    class_names: Optional[tuple[Optional[str], ...]] = option(
        None, help="optionally names the classes in the class table (one name per polygon)"
    )
    min_coverage: float = option(
        0.5, help="a pixel is labelled when the polygon covering the largest share of it covers at least this share (0..1)"
    )
    polygons_file: Optional[PolygonFile] = option(
        None,
        help="instead of polygons, class_values, parcel_ids and class_names (left empty): a vector file the "
        "engine reads them from, which spares sending every polygon through the job",
    )
    strip_rows: int = option(
        STRIP_ROWS, help="rows of the grid computed at once (fewer on wide grids, to bound memory); the outputs do not depend on it"
    )

    def check(self) -> None:
        if not 0.0 <= self.min_coverage <= 1.0:
            raise SatPluginError(f"MIN_COVERAGE must lie between 0 and 1, got {self.min_coverage}.")
        if not self.outputs.rasters() and not self.outputs.class_table:
            raise SatPluginError("No output was requested; choose at least one output file.")
        self.grid.check_size()
        if isinstance(self.strip_rows, bool) or not isinstance(self.strip_rows, numbers.Integral) or self.strip_rows < 1:
            raise SatPluginError(f"Rows per strip must be a positive whole number, got {self.strip_rows}.")
        if self.polygons_file is not None:
            if self.polygons or self.class_values or self.parcel_ids is not None or self.class_names is not None:
                raise SatPluginError("Give the polygons either inline or as a polygon file, not both.")
            return  # the rest is checked once the engine has read the file (.polygon_file)
        build_class_table(self.class_values, self.class_names)
        if not self.polygons:
            raise SatPluginError("There are no polygons to rasterize: the layer, the selection or the filter is empty.")
        if any(p is not None and not isinstance(p, str) for p in self.polygons):
            raise SatPluginError("The polygons must be given as WKB hex strings (None for a missing geometry).")
        if len(self.class_values) != len(self.polygons):
            raise SatPluginError("There must be one class value per polygon.")
        if self.parcel_ids is not None:
            check_parcel_ids(self.parcel_ids, len(self.polygons))

    def parcel_id_array(self) -> np.ndarray:
        """The parcel ids as int64, the feature index where none were given."""
        if self.parcel_ids is None:
            return np.arange(len(self.polygons), dtype=np.int64)
        return np.asarray(list(self.parcel_ids))


def check_parcel_ids(parcel_ids, n_polygons: int) -> None:
    ids = np.asarray(list(parcel_ids))
    if ids.dtype.kind not in "iu":
        raise SatPluginError("Parcel ids must be integers; choose an integer ID field.")
    if ids.size and (ids.min() < 0 or ids.max() > INT32_MAX):
        raise SatPluginError(f"Parcel ids must lie in 0..{INT32_MAX}; found {ids.min()}..{ids.max()}.")
    if ids.size != n_polygons:
        raise SatPluginError("There must be one parcel id per polygon.")
