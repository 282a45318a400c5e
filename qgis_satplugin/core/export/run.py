"""``export_patches``: a time series of images (+ labels) -> a patch dataset on disk.

The steps, each in its own module:

1. check the inputs (:mod:`image_series`, :mod:`label_rasters`, :mod:`band_layout`);
2. plan: windows, filters, splits (:mod:`windows`, :mod:`plan`, :mod:`splits`), reading
   only labels and masks, so an export that would be empty fails before writing;
3. stream: chunk by chunk (:func:`windows.read_chunks`), read the window of every date
   once, cut the patches, hand each finished sample to the format's writer
   (``format_*.py``) and its STAC item (:mod:`stac_catalog`), and forget it; memory
   stays at one chunk across all dates;
4. finish: ``samples.csv``, ``index.gpkg``, the STAC collection, ``croissant.json`` and
   the dataset card, then rename the hidden staging folder onto the output (:mod:`staging`).

The output folder is locked for the whole run (a second export into it refuses at
once), and an output that is, holds or lies inside one of the inputs is refused before
any work.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..atomic import check_output_paths
from ..errors import SatPluginError
from .band_layout import band_layout
from .croissant import NAME as CROISSANT_NAME
from .croissant import write_croissant
from .dataset_card import CONTENTS_KEY, FORMAT, JSON_NAME, MD_NAME, licence_line, source_rows, write_card
from ..image_series.dates import iso_z, season_mask
from .format_deepsatdata import DeepSatDataWriter
from .format_geotiff import GeoTiffWriter
from .format_npz import NpzWriter
from .format_zarr import ZarrWriter, import_zarr
from ..image_series.reader import input_paths, input_read_errors, open_image_series
from .index_gpkg import NAME as INDEX_NAME
from .index_gpkg import write_index
from .label_rasters import LabelSet
from .plan import plan_patches
from .sample import DatasetMeta
from .samples_table import NAME as SAMPLES_NAME
from .samples_table import write_samples_csv
from .splits import SPLITS, normalise_ratios
from .stac_catalog import COLLECTION as STAC_COLLECTION
from .stac_catalog import LICENSE as STAC_LICENSE
from .stac_catalog import LICENSE_URL, CatalogWriter, catalog_info
from .staging import StagedFolder, export_lock, listing, prepare_target
from .stream import SampleSink, stream_samples
from .windows import patch_grid

WRITERS = {"npz": NpzWriter, "zarr": ZarrWriter, "geotiff": GeoTiffWriter, "deepsatdata": DeepSatDataWriter}
FORMATS = tuple(WRITERS)
DEFAULT_BLOCK_PATCHES = 8
PLAN_SHARE = 0.15  # of the progress bar
GDAL_CACHE_MB = 64


@dataclass
class ExportResult:
    output_folder: str
    format: str
    n_samples: int
    samples_per_split: dict
    n_candidates: int
    dropped: dict
    dates: list
    bands: list
    class_pixels: dict = field(default_factory=dict)  # split -> {class id: label pixels}
    normalisation: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)


def _check_parameters(patch_size, stride, label_scale, min_labelled, max_cloud, min_dates, max_dates, fmt):
    def whole(name, value, lowest):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise SatPluginError(f"{name} must be a whole number >= {lowest}, got {value!r}.")

    whole("patch_size", patch_size, 1)
    whole("stride", stride, 1)
    whole("label_scale", label_scale, 1)
    whole("min_dates", min_dates, 1)
    if max_dates is not None:
        whole("max_dates", max_dates, 1)
        if max_dates < min_dates:
            raise SatPluginError(f"max_dates ({max_dates}) is below min_dates ({min_dates}).")
    if not 0.0 <= float(min_labelled) <= 1.0:
        raise SatPluginError(f"min_labelled is a share of the patch between 0 and 1, got {min_labelled}.")
    if not 0.0 <= float(max_cloud) <= 100.0:
        raise SatPluginError(f"max_cloud is a percentage between 0 and 100, got {max_cloud}.")
    if fmt not in WRITERS:
        raise SatPluginError(f"Unknown format {fmt!r}; choose one of {', '.join(FORMATS)}.")


def export_patches(
    images,
    output_folder,
    labels: Optional[dict] = None,
    patch_size: int = 64,
    stride: Optional[int] = None,
    label_scale: int = 1,
    bands=None,
    band_resolution: str = "resample",
    min_labelled: float = 0.0,
    max_cloud: float = 100.0,
    min_dates: int = 1,
    max_dates: Optional[int] = None,
    season_start: Optional[str] = None,
    season_end: Optional[str] = None,
    format: str = "npz",
    split_block_size: Optional[int] = None,
    split_ratios=(0.7, 0.15, 0.15),
    seed: int = 0,
    split_polygons=None,
    progress: Optional[Callable[[float], None]] = None,
    is_canceled: Optional[Callable[[], bool]] = None,
    log: Optional[Callable[[str], None]] = None,
) -> ExportResult:
    """Cut ``images`` (a download folder or a list of rasters, one date each) into patches.

    See the package docstring for every parameter and the output layouts.
    """
    progress = progress or (lambda f: None)
    is_canceled = is_canceled or (lambda: False)
    log = log or (lambda m: None)
    stride = patch_size if stride is None else stride
    _check_parameters(patch_size, stride, label_scale, min_labelled, max_cloud, min_dates, max_dates, format)
    ratios = normalise_ratios(split_ratios)
    target = Path(output_folder)
    inputs = {**input_paths(images, "IMAGES"), **{f"LABELS ({kind})": p for kind, p in (labels or {}).items()}}
    check_output_paths({"OUTPUT_FOLDER": target}, inputs)
    with export_lock(target), input_read_errors(images, labels):
        prepare_target(target)
        if format == "zarr":
            import_zarr()  # fail now, not after the planning pass
        series = open_image_series(images, bands, log)
        in_season = season_mask(series.dates, season_start, season_end)
        if not in_season.any():
            raise SatPluginError(
                f"None of the {len(series.dates)} dates ({iso_z(series.dates[0])[:10]} .. {iso_z(series.dates[-1])[:10]}) "
                f"falls in the season {season_start or '01-01'} .. {season_end or '12-31'}."
            )
        if not in_season.all():
            log(f"The season keeps {int(in_season.sum())} of {in_season.size} dates.")
            series = series.subset(in_season)
        grid = series.grid
        layout = band_layout(series.bands, band_resolution, grid.pixel_width, patch_size, stride)
        label_set = LabelSet(labels, grid, label_scale) if labels else None
        if min_labelled > 0 and (label_set is None or "class" not in label_set):
            raise SatPluginError("min_labelled needs the class label raster (labels={'class': ...}).")
        pg = patch_grid(grid.height, grid.width, patch_size, stride, layout.align)
        if split_block_size is None:
            split_block_size = patch_size if split_polygons is not None else DEFAULT_BLOCK_PATCHES * patch_size

        import rasterio

        # A small GDAL block cache (rasterio takes bytes; it restores the previous size after):
        # every raster is read strip by strip or chunk by chunk, and GDAL's default (5 % of
        # RAM) would otherwise let the cache grow with the AOI.
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB * 1024 * 1024):
            card = _plan_and_write(
                series, label_set, pg, layout, target, format, dict(
                    patch_size=patch_size, stride=stride, label_scale=label_scale, bands=list(series.bands),
                    band_resolution=band_resolution, min_labelled=min_labelled, max_cloud=max_cloud, min_dates=min_dates,
                    max_dates=max_dates, season_start=season_start, season_end=season_end, format=format,
                    split_block_size=split_block_size, split_ratios=[float(r) for r in ratios], seed=seed,
                    split_polygons=split_polygons is not None,
                ), ratios, split_polygons, progress, is_canceled, log)
        progress(1.0)
        per_split = {s: card["splits"][s]["samples"] for s in SPLITS}
        n_samples = card["n_samples"]
        log(f"Exported {n_samples} samples ({', '.join(f'{s} {n}' for s, n in per_split.items())}) to {target}.")
        return ExportResult(
            output_folder=str(target), format=format, n_samples=n_samples, samples_per_split=per_split,
            n_candidates=card["candidates"], dropped=dict(card["dropped"]), dates=[iso_z(d) for d in series.dates],
            bands=list(series.bands), class_pixels={s: card["splits"][s]["class_pixels"] for s in SPLITS},
            normalisation=card["normalisation"],
            files={"index": str(target / INDEX_NAME), "samples": str(target / SAMPLES_NAME),
                   "card_json": str(target / "dataset.json"), "card_md": str(target / "dataset.md"),
                   "stac": str(target / STAC_COLLECTION), "croissant": str(target / CROISSANT_NAME)},
        )


def _plan_and_write(series, label_set, pg, layout, target, fmt, params, ratios, split_polygons, progress, is_canceled, log) -> dict:
    """Plan (nothing written yet), then write everything into the staging folder; returns the card."""
    if label_set:
        label_set.open()
    try:
        plan = plan_patches(
            series, label_set, pg, min_labelled=params["min_labelled"], max_cloud=params["max_cloud"],
            min_dates=params["min_dates"], max_dates=params["max_dates"], block_size=params["split_block_size"],
            ratios=ratios, seed=params["seed"], split_polygons=split_polygons, is_canceled=is_canceled,
            progress=lambda f: progress(PLAN_SHARE * f), log=log,
        )
        grid = series.grid
        meta = DatasetMeta(
            crs_wkt=grid.pyproj_crs().to_wkt(), grid_transform=tuple(grid.transform)[:6], bands=list(series.bands),
            groups=list(layout.groups), band_resolution=params["band_resolution"], patch_size=params["patch_size"],
            label_scale=params["label_scale"], labels=label_set.describe() if label_set else {}, dates=series.dates,
            date_scales=series.scales, date_offsets=series.offsets, nodata=series.nodata, dtype=series.dtype,
            n_samples=len(plan), max_dates=plan.max_dates,
        )
        class_table = label_set.rasters["class"].class_table if label_set and "class" in label_set else None
        with StagedFolder(target) as temp:
            catalog = CatalogWriter(temp, catalog_info(fmt, meta, layout, _crs_name(grid), class_table))
            summary = _write_dataset(series, label_set, plan, meta, WRITERS[fmt](temp, meta), temp, is_canceled, progress,
                                     catalog)
            card = _card(series, label_set, plan, meta, layout, params, summary, fmt)
            # The collection and the Croissant file come before the file list, so it names them too.
            catalog.close(card)
            write_croissant(temp, card)
            card[CONTENTS_KEY] = sorted(listing(temp) + [JSON_NAME, MD_NAME])
            write_card(temp, card)
    finally:
        if label_set:
            label_set.close()
    return card


def _write_dataset(series, label_set, plan, meta: DatasetMeta, writer, temp: Path, is_canceled, progress,
                   catalog=None) -> dict:
    """Stream every sample through the writer (and the STAC catalog), then write the tables; returns what the card needs."""
    class_nodata = label_set.rasters["class"].nodata if label_set and "class" in label_set else None
    sink = SampleSink(writer, meta, class_nodata, is_canceled, catalog)
    try:
        stream_samples(series, label_set, plan, sink, is_canceled,
                       lambda f: progress(PLAN_SHARE + (1 - PLAN_SHARE) * 0.97 * f))
    finally:
        sink.close()
    write_samples_csv(temp, sink.records)
    write_index(temp, sink.index_rows, meta.crs_wkt)
    return {"stats": sink.stats, "class_pixels": sink.class_pixels}


def _crs_name(grid) -> str:
    crs = grid.pyproj_crs()
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_string()


def _card(series, label_set, plan, meta, layout, params, summary, fmt) -> dict:
    grid = series.grid
    splits = {}
    for i, s in enumerate(SPLITS):
        splits[s] = {
            "samples": int((plan.splits == i).sum()),
            "class_pixels": {str(c): int(n) for c, n in sorted(summary["class_pixels"][s].items())},
        }
    return {
        "format": FORMAT,
        "sample_format": fmt,
        "created_by": "satplugin export_patches",
        "parameters": params,
        "n_samples": len(plan),
        "candidates": plan.n_candidates,
        "dropped": plan.dropped,
        "split_method": plan.split_info,
        "splits": splits,
        "grid": {
            "crs": _crs_name(grid),
            "crs_wkt": meta.crs_wkt,
            "transform": list(meta.grid_transform),
            "width": grid.width,
            "height": grid.height,
            "pixel_size": [grid.pixel_width, grid.pixel_height],
        },
        "patch_size": meta.patch_size,
        "stride": params["stride"],
        "label_scale": meta.label_scale,
        "band_resolution": meta.band_resolution,
        "bands": list(series.bands),
        "band_groups": layout.describe(),
        "dtype": series.dtype,
        "nodata": series.nodata,
        "dates": [iso_z(d) for d in series.dates],
        "date_scales": series.scales.tolist(),
        "date_offsets": series.offsets.tolist(),
        "sources": source_rows(series),
        "labels": meta.labels,
        "class_table": label_set.rasters["class"].class_table if label_set and "class" in label_set else None,
        "normalisation": {"split": "train", "unit": "reflectance = scale x DN + offset",
                          "bands": summary["stats"].as_dict()},
        "attribution": licence_line(series.dates),
        "licence": "Sentinel data are free and open under the Copernicus licence; cite the source as above.",
        # No SPDX identifier exists for the Copernicus terms: STAC's "other" with a link to them.
        "licence_terms": {"spdx": None, "stac_license": STAC_LICENSE, "url": LICENSE_URL},
        "files": {"index": INDEX_NAME, "samples": SAMPLES_NAME, "card": "dataset.json", "stac": STAC_COLLECTION,
                  "croissant": CROISSANT_NAME},
    }
