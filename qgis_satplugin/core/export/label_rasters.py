"""The ground-truth rasters (the rasterize step's outputs) as seen from the image grid.

With ``label_scale`` k the labels sit on a k-times finer grid that shares the image
grid's lattice (a 2.5 m grid for 10 m images: every image pixel is k x k label pixels).
Alignment is checked exactly, not rounded: a label grid offset by a fraction of a label
pixel would shift every patch's labels, which is the defect DeepSatData's rounding has.
Label rasters may cover less than the images; pixels outside them read as no-data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import SatPluginError
from ..grid import PixelGrid
from .options import LABEL_NAMES

# The DeepSatData key of each label (see peers.md).
DEEPSATDATA_KEYS = {"class": "labels", "id": "ids", "conflict": "masks", "coverage": "ratios", "distance": "distances"}
ALIGN_TOLERANCE = 1e-3  # of a label pixel
# Band descriptions the rasterize step writes, so its outputs can be passed in any order.
KIND_OF_DESCRIPTION = {"class": "class", "parcel_id": "id", "coverage": "coverage", "conflict": "conflict", "distance_m": "distance"}


def labels_by_kind(paths, first_band_description=None) -> dict:
    """{kind: path} for rasterize outputs, recognised by their band description.

    ``first_band_description(path)`` reads it (default: with rasterio; the plugin's QGIS side
    passes one that uses QGIS's own GDAL bindings).
    """
    read = first_band_description or _first_band_description
    kinds: dict = {}
    for path in paths:
        description = read(path)
        kind = KIND_OF_DESCRIPTION.get(description)
        if kind is None:
            raise SatPluginError(
                f"{Path(path).name} is not an output of 'Rasterize ground truth' (band description "
                f"{description!r}; expected one of {', '.join(KIND_OF_DESCRIPTION)})."
            )
        if kind in kinds:
            raise SatPluginError(f"Two {kind} label rasters were given: {Path(kinds[kind]).name} and {Path(path).name}.")
        kinds[kind] = str(path)
    return kinds


def _first_band_description(path) -> str:
    import rasterio

    with rasterio.open(path) as ds:
        return (ds.descriptions[0] or "").strip()


@dataclass
class LabelRaster:
    name: str
    path: Path
    dtype: np.dtype
    nodata: float  # what fills pixels the raster does not cover: its no-data value, else 0
    row_off: int  # label-grid row of the raster's first row (image origin = 0)
    col_off: int
    height: int
    width: int
    class_table: list | None = None
    declares_nodata: bool = True  # False: ``nodata`` is the 0 above, not a value of the raster's

    @property
    def declared_nodata(self):
        """The raster's own no-data value as a JSON number, or None: what the outputs declare as no-data."""
        if not self.declares_nodata:
            return None
        return float(self.nodata) if self.dtype.kind == "f" else int(self.nodata)


class LabelSet:
    """Windows of every label raster, in image-pixel coordinates, at ``scale`` x detail."""

    def __init__(self, paths: dict, grid: PixelGrid, scale: int):
        import rasterio

        if not isinstance(scale, (int, np.integer)) or scale < 1:
            raise SatPluginError(f"label_scale must be a whole number >= 1, got {scale!r}.")
        unknown = set(paths) - set(LABEL_NAMES)
        if unknown:
            raise SatPluginError(f"Unknown label kinds {sorted(unknown)}; use {', '.join(LABEL_NAMES)}.")
        self.scale = int(scale)
        self.grid = grid
        self.rasters: dict[str, LabelRaster] = {}
        lw, lh = grid.pixel_width / scale, grid.pixel_height / scale
        for name in LABEL_NAMES:
            if not paths.get(name):
                continue
            path = Path(paths[name])
            if not path.is_file():
                raise SatPluginError(f"The {name} label raster {path} does not exist.")
            with rasterio.open(path) as ds:
                t = ds.transform
                from pyproj import CRS  # here: the plugin's QGIS side imports this module without pyproj

                if ds.crs is None or not CRS.from_user_input(ds.crs.to_wkt()).equals(grid.pyproj_crs()):
                    raise SatPluginError(
                        f"The {name} labels ({path.name}) are in {ds.crs.to_string() if ds.crs else 'no CRS'}, "
                        f"the images in {grid.pyproj_crs().to_string()}; rasterize them onto the image grid."
                    )
                if t.b or t.d or abs(t.a - lw) > 1e-6 * lw or abs(-t.e - lh) > 1e-6 * lh:
                    raise SatPluginError(
                        f"The {name} labels ({path.name}) have {t.a:g} x {-t.e:g} pixels; with label_scale={scale} "
                        f"they must be {lw:g} x {lh:g} (the image pixel / {scale}). Check label_scale."
                    )
                col = (t.c - grid.x_min) / lw
                row = (grid.y_max - t.f) / lh
                if abs(col - round(col)) > ALIGN_TOLERANCE or abs(row - round(row)) > ALIGN_TOLERANCE:
                    raise SatPluginError(
                        f"The {name} labels ({path.name}) are misaligned with the images by "
                        f"({col - round(col):+.3f}, {row - round(row):+.3f}) label pixels; rasterize them with the "
                        "image as the reference grid."
                    )
                raster = LabelRaster(
                    name, path, np.dtype(ds.dtypes[0]), ds.nodata if ds.nodata is not None else 0,
                    int(round(row)), int(round(col)), ds.height, ds.width, declares_nodata=ds.nodata is not None,
                )
                if name in ("class", "id") and raster.dtype.kind not in "ui":
                    raise SatPluginError(f"The {name} labels ({path.name}) hold {raster.dtype.name}; they must be integers.")
                if name == "class":
                    raster.class_table = _class_table(ds.tags(1).get("CLASS_TABLE"))
            r0, c0 = max(raster.row_off, 0), max(raster.col_off, 0)
            r1 = min(raster.row_off + raster.height, grid.height * scale)
            c1 = min(raster.col_off + raster.width, grid.width * scale)
            if r1 <= r0 or c1 <= c0:
                raise SatPluginError(
                    f"The {name} labels ({path.name}) do not overlap the images: check that they were "
                    "rasterized for this area."
                )
            self.rasters[name] = raster
        self._open = {}

    @property
    def names(self) -> list:
        return list(self.rasters)

    def __contains__(self, name) -> bool:
        return name in self.rasters

    def open(self):
        import rasterio

        self._open = {name: rasterio.open(r.path) for name, r in self.rasters.items()}
        return self

    def close(self):
        for ds in self._open.values():
            ds.close()
        self._open = {}

    def read(self, name: str, row0: int, row1: int, col0: int, col1: int) -> np.ndarray:
        """Label pixels under image rows ``row0..row1`` and columns ``col0..col1``."""
        r = self.rasters[name]
        k = self.scale
        out = np.full(((row1 - row0) * k, (col1 - col0) * k), r.nodata, dtype=r.dtype)
        # The part of the window the raster covers, in the raster's own pixel coordinates.
        top, left = row0 * k - r.row_off, col0 * k - r.col_off
        a0, b0 = max(top, 0), max(left, 0)
        a1, b1 = min(top + out.shape[0], r.height), min(left + out.shape[1], r.width)
        if a1 > a0 and b1 > b0:
            ds = self._open.get(name)
            data = ds.read(1, window=((a0, a1), (b0, b1)))
            out[a0 - top : a1 - top, b0 - left : b1 - left] = data
        return out

    def describe(self) -> dict:
        return {
            name: {"file": r.path.name, "dtype": r.dtype.name, "nodata": r.declared_nodata}
            for name, r in self.rasters.items()
        }


def labelled(class_values: np.ndarray, nodata) -> np.ndarray:
    """Pixels with a class (not background, not no-data)."""
    return (class_values > 0) & (class_values != nodata)


def _class_table(text):
    try:
        table = json.loads(text) if text else None
    except ValueError:
        return None
    return table if isinstance(table, list) else None
