"""The export's job spec: :class:`ExportOptions`, plain values only, checked once.

Each field's ``help`` is the one description of that parameter: the Processing
algorithm's help is built from it, and the dataset card's ``parameters`` come from
:meth:`ExportOptions.to_dict`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from ..area import Area
from ..cluster.scheduler import SCHEDULER_HELP, parse_scheduler
from ..errors import SatPluginError
from ..image_series.dates import parse_month_day
from ..options import StepOptions, option
from .splits import normalise_ratios, split_code

STAC_COLLECTION_ID = "satplugin-patches"  # the default id of an export's STAC collection

# The ground-truth rasters an export can take, by kind (see .label_rasters).
LABEL_NAMES = ("class", "id", "coverage", "conflict", "distance")

FORMATS = ("npz", "zarr", "geotiff", "deepsatdata")
BAND_RESOLUTIONS = ("resample", "native", "sharpened")
DEFAULT_BLOCK_PATCHES = 8  # split blocks of 8 x 8 patches unless split_block_size says otherwise


@dataclass(frozen=True)
class SplitArea(StepOptions):
    """A polygon area (WKT + its CRS) whose patches go to one split."""

    area: Area = option(help="the polygons, in any CRS (reprojected to the images' CRS by the export)")
    split: str = option(help="train, val or test (also training, valid, validation, testing; any case)")

    def check(self) -> None:
        split_code(self.split)


@dataclass(frozen=True)
class ExportOptions(StepOptions):
    """What to cut into patches, and how (see :func:`.runner.run`)."""

    images: Union[str, tuple[str, ...]] = option(help=(
        "A download folder (read through its manifest.json; an incomplete download is refused), or one raster per "
        "date, dated by its ACQUISITION_DATETIME tag or its file name (20230612, 2023-06-12, 20230612T101559), "
        "refused when it has neither. A <name>_SCL.tif (or _CLM.tif) beside an image is its cloud mask. Every date "
        "must be on one grid with the same bands: the export does not resample, and says which files differ."))
    output_folder: str = option(help=(
        "The dataset folder: new, empty, or an earlier export, which is replaced once the new one is complete. Only "
        "the files an export listed in its dataset.json are ever replaced: any other file there (your notes, "
        "checkpoints) makes the export refuse, naming it. A folder that is, holds or lies inside the images or "
        "labels is refused, and so is a second export into a folder another one is writing to."))
    labels: Optional[dict[str, str]] = option(None, help=(
        "Outputs of Rasterize ground truth by kind (class, id, coverage, conflict, distance; the algorithm "
        "recognises them by their band description, in any order). They must sit exactly on the image lattice, "
        "the label scale times finer, and may cover only part of the images (no-data outside)."))
    patch_size: int = option(64, help="The width and height of a patch, in image pixels.")
    stride: Optional[int] = option(None, help=(
        "Image pixels from one patch to the next; unset (0): the patch size, so patches do not overlap; smaller "
        "strides overlap. The last window of a row or column is shifted inward to end at the edge, not dropped."))
    label_scale: int = option(1, help=(
        "How many times finer the labels' grid is than the images' (2.5 m labels under 10 m images: 4)."))
    bands: Optional[tuple[Union[str, int], ...]] = option(None, help=(
        "Band names (B02, B8A) or 1-based band numbers, in export order; unset (empty): all bands."))
    band_resolution: str = option("resample", help=(
        "resample: every band on the image grid, one array [T, C, P, P]; native: band groups as in DeepSatData "
        "(10 m bands at P, 20 m at P/2, 60 m at P/6 px, by no-data-aware block means; the patch size and stride "
        "must be multiples of the factor); sharpened: as resample, on a 10 m grid, with the 20 m bands (B05, B06, B07, "
        "B8A, B11, B12) sharpened by the shipped band-sharpening model (s2_sharpen_20m.onnx, as Super-resolve gives "
        "them) on every date exported, each 20 m pixel keeping its value where the native pixels start at the "
        "grid's origin (the download step's grids do; the log and the card say on how many dates it held); the "
        "60 m bands stay as the images hold them. With DASK_SCHEDULER the model runs on the cluster too. It needs the 10 m and 20 m bands in the images, and room beside the output for the six sharpened "
        "bands of each date while the export runs."))
    min_labelled: float = option(0.0, help=(
        "The share (0 to 1) of a patch's label pixels that must have a class; needs the class labels."))
    max_cloud: float = option(100.0, help=(
        "The most cloud (SCL 3, 8, 9, 10 or CLM 1) or no data a patch may have on a date, in %: a cloudy date is "
        "dropped for that patch only, and a date where the patch is all no-data always."))
    min_dates: int = option(1, help="The fewest clear dates a patch needs to be kept.")
    max_dates: Optional[int] = option(None, help=(
        "The most dates per sample; above it the dates are subsampled evenly in time, first and last kept. "
        "Unset (0): no maximum."))
    season_start: Optional[str] = option(None, help=(
        "The first day of the season, MM-DD (unset: 01-01); a season may cross New Year (11-01 to 02-28)."))
    season_end: Optional[str] = option(None, help="The last day of the season, MM-DD (unset: 12-31).")
    format: str = option("npz", help=(
        "npz (one file per sample: arrays [T, C, H, W] + dates + labels), zarr (one chunked store for the whole "
        "dataset), geotiff (GeoTIFF chips per date + label chips) or deepsatdata (DeepSatData pickles: band names, "
        "doy, year, labels, ids, masks, ratios, distances)."))
    split_block_size: Optional[int] = option(None, help=(
        "The side of the square split blocks, in image pixels; unset (0): 8 patches (1 patch with split areas). "
        "The last block of a row or column also takes a strip left at the grid's edge that is narrower than a patch, so the edge patches "
        "stay in one block. Whole blocks go to one split and a patch that would straddle two splits is dropped, so no pixel is in two "
        "splits."))
    split_ratios: tuple[float, ...] = option((0.7, 0.15, 0.15), help=(
        "The shares of train, val and test the blocks are assigned toward, for every class at once "
        "(class-balanced where possible)."))
    seed: int = option(0, help="The seed of the block assignment: the same seed gives the same splits.")
    stac_collection_id: str = option(STAC_COLLECTION_ID, help=(
        "The id of the STAC collection (collection.json) and of every item's collection; a dataset of several "
        "exports (one per MGRS tile) gives each its own."))
    split_areas: Optional[tuple[SplitArea, ...]] = option(None, help=(
        "Polygons that give the split instead (train, val or test each): a block takes the split of the polygons "
        "it overlaps; blocks overlapping two splits, or none, are left out."))
    dask_scheduler: Optional[str] = option(None, help=SCHEDULER_HELP + (
        " Each chunk of patches is one task; the workers write into the output's staging folder."))

    def __post_init__(self):
        # One band may be given alone, and as a numpy number (a band index from an array).
        if self.bands is not None:
            bands = (self.bands,) if isinstance(self.bands, (str, int, np.integer)) else self.bands
            object.__setattr__(self, "bands", tuple(int(b) if isinstance(b, np.integer) else b for b in bands))
        super().__post_init__()

    def check(self) -> None:
        if not self.images:
            raise SatPluginError("Give the images: a download folder, or one raster per date.")
        if not self.output_folder:
            raise SatPluginError("Choose an output folder for the dataset.")

        def whole(name, value, lowest):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
                raise SatPluginError(f"{name} must be a whole number >= {lowest}, got {value!r}.")

        whole("patch_size", self.patch_size, 1)
        whole("stride", self.patch_stride, 1)
        whole("label_scale", self.label_scale, 1)
        whole("min_dates", self.min_dates, 1)
        if self.max_dates is not None:
            whole("max_dates", self.max_dates, 1)
            if self.max_dates < self.min_dates:
                raise SatPluginError(f"max_dates ({self.max_dates}) is below min_dates ({self.min_dates}).")
        if not 0.0 <= float(self.min_labelled) <= 1.0:
            raise SatPluginError(f"min_labelled is a share of the patch between 0 and 1, got {self.min_labelled}.")
        if not 0.0 <= float(self.max_cloud) <= 100.0:
            raise SatPluginError(f"max_cloud is a percentage between 0 and 100, got {self.max_cloud}.")
        if not isinstance(self.stac_collection_id, str) or not self.stac_collection_id.strip():
            raise SatPluginError("stac_collection_id must be a non-empty text.")
        if self.format not in FORMATS:
            raise SatPluginError(f"Unknown format {self.format!r}; choose one of {', '.join(FORMATS)}.")
        self.ratios()
        if self.band_resolution not in BAND_RESOLUTIONS:
            raise SatPluginError(f"band_resolution must be 'resample', 'native' or 'sharpened', got {self.band_resolution!r}.")
        unknown = set(self.labels or {}) - set(LABEL_NAMES)
        if unknown:
            raise SatPluginError(f"Unknown label kinds {sorted(unknown)}; use {', '.join(LABEL_NAMES)}.")
        if self.min_labelled > 0 and "class" not in (self.labels or {}):
            raise SatPluginError("min_labelled needs the class label raster (labels={'class': ...}).")
        if self.season_start:
            parse_month_day(self.season_start, "The season start")
        if self.season_end:
            parse_month_day(self.season_end, "The season end")
        parse_scheduler(self.dask_scheduler)
        if self.split_areas is not None:
            if not self.split_areas:
                raise SatPluginError("split_polygons is empty; give polygons with a split field, or leave it out.")
            wrong = next((a for a in self.split_areas if not isinstance(a, SplitArea)), None)
            if wrong is not None:
                raise SatPluginError(f"split_areas holds SplitArea(Area(wkt, crs), split) values, not {type(wrong).__name__}.")

    @property
    def patch_stride(self) -> int:
        """The stride in pixels (unset: the patch size)."""
        return self.patch_size if self.stride is None else self.stride

    def ratios(self) -> np.ndarray:
        """The split ratios as shares summing to 1."""
        return normalise_ratios(self.split_ratios)

    def block_size(self) -> int:
        """The split block size in pixels (unset: 8 patches, or 1 patch with split areas)."""
        if self.split_block_size is not None:
            return self.split_block_size
        return self.patch_size if self.split_areas is not None else DEFAULT_BLOCK_PATCHES * self.patch_size

    def card_parameters(self, bands: list) -> dict:
        """The dataset card's ``parameters``: the options with defaults resolved, paths left out.

        The paths are in the card's ``sources`` and ``labels``; the split areas are a flag
        there (their polygons are the user's file).
        """
        values = self.to_dict()
        # The outputs do not depend on where the work ran: the scheduler is left out too.
        for name in ("images", "output_folder", "labels", "split_areas", "dask_scheduler"):
            values.pop(name)
        values.update(stride=self.patch_stride, bands=list(bands), split_block_size=self.block_size(),
                      split_ratios=[float(r) for r in self.ratios()], split_polygons=self.split_areas is not None)
        return values

