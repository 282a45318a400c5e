"""``run(ExportOptions, feedback)``: a time series of images (+ labels) -> a patch dataset on disk.

The steps, each in its own module:

0. check the options (:mod:`options`: every value on its own, before any file is read);
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

from ..atomic import check_output_paths
from ..errors import SatPluginError
from ..feedback import Feedback
from ..gdal_cache import small_block_cache
from ..image_series.dates import iso_z, season_mask
from ..image_series.reader import input_paths, input_read_errors, open_image_series
from ..options import plain
from .band_layout import band_layout
from .croissant import NAME as CROISSANT_NAME
from .croissant import write_croissant
from .dataset_card import CONTENTS_KEY, FORMAT, JSON_NAME, MD_NAME, licence_line, source_rows, write_card
from .format_deepsatdata import DeepSatDataWriter
from .format_geotiff import GeoTiffWriter
from .format_npz import NpzWriter
from .format_zarr import ZarrWriter, import_zarr
from .index_gpkg import NAME as INDEX_NAME
from .index_gpkg import write_index
from .label_rasters import LabelSet
from .options import ExportOptions
from .plan import plan_patches
from .sample import DatasetMeta
from .samples_table import NAME as SAMPLES_NAME
from .samples_table import write_samples_csv
from .splits import SPLITS
from .stac_catalog import COLLECTION as STAC_COLLECTION
from .stac_catalog import LICENSE as STAC_LICENSE
from .stac_catalog import LICENSE_URL, CatalogWriter, catalog_info
from .staging import StagedFolder, export_lock, listing, prepare_target
from .stream import SampleSink, stream_samples
from .windows import patch_grid

# One writer per name in options.FORMATS.
WRITERS = {"npz": NpzWriter, "zarr": ZarrWriter, "geotiff": GeoTiffWriter, "deepsatdata": DeepSatDataWriter}
PLAN_SHARE = 0.15  # of the progress bar


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

    def to_dict(self) -> dict:
        return plain(self)


def run(options: ExportOptions, feedback: Feedback | None = None) -> ExportResult:
    """Cut ``options.images`` (a download folder or rasters, one date each) into patches.

    See :class:`ExportOptions` for every option and the package docstring for the outputs.
    """
    feedback = Feedback.of(feedback)
    images, labels, fmt = options.images, options.labels, options.format
    target = Path(options.output_folder)
    inputs = {**input_paths(images, "IMAGES"), **{f"LABELS ({kind})": p for kind, p in (labels or {}).items()}}
    check_output_paths({"OUTPUT_FOLDER": target}, inputs)
    with export_lock(target), input_read_errors(images, labels):
        prepare_target(target)
        if fmt == "zarr":
            import_zarr()  # fail now, not after the planning pass
        series = open_image_series(images, options.bands, feedback)
        season_start, season_end = options.season_start, options.season_end
        in_season = season_mask(series.dates, season_start, season_end)
        if not in_season.any():
            raise SatPluginError(
                f"None of the {len(series.dates)} dates ({iso_z(series.dates[0])[:10]} .. {iso_z(series.dates[-1])[:10]}) "
                f"falls in the season {season_start or '01-01'} .. {season_end or '12-31'}."
            )
        if not in_season.all():
            feedback.log(f"The season keeps {int(in_season.sum())} of {in_season.size} dates.")
            series = series.subset(in_season)
        grid = series.grid
        layout = band_layout(series.bands, options.band_resolution, grid.pixel_width, options.patch_size,
                             options.patch_stride)
        label_set = LabelSet(labels, grid, options.label_scale) if labels else None
        pg = patch_grid(grid.height, grid.width, options.patch_size, options.patch_stride, layout.align)
        # Split areas come in any CRS; the blocks they are matched against are in the images'.
        split_polygons = None
        if options.split_areas is not None:
            split_polygons = [(a.area.in_crs(grid.crs), a.split) for a in options.split_areas]

        # Every raster is read strip by strip or chunk by chunk; GDAL's default cache would grow with the AOI.
        with small_block_cache():
            card = _plan_and_write(series, label_set, pg, layout, target, options, split_polygons, feedback)
        feedback.set_progress(1.0)
        per_split = {s: card["splits"][s]["samples"] for s in SPLITS}
        n_samples = card["n_samples"]
        feedback.log(f"Exported {n_samples} samples ({', '.join(f'{s} {n}' for s, n in per_split.items())}) to {target}.")
        return ExportResult(
            output_folder=str(target), format=fmt, n_samples=n_samples, samples_per_split=per_split,
            n_candidates=card["candidates"], dropped=dict(card["dropped"]), dates=[iso_z(d) for d in series.dates],
            bands=list(series.bands), class_pixels={s: card["splits"][s]["class_pixels"] for s in SPLITS},
            normalisation=card["normalisation"],
            files={"index": str(target / INDEX_NAME), "samples": str(target / SAMPLES_NAME),
                   "card_json": str(target / "dataset.json"), "card_md": str(target / "dataset.md"),
                   "stac": str(target / STAC_COLLECTION), "croissant": str(target / CROISSANT_NAME)},
        )


def _plan_and_write(series, label_set, pg, layout, target, options: ExportOptions, split_polygons,
                    feedback: Feedback) -> dict:
    """Plan (nothing written yet), then write everything into the staging folder; returns the card."""
    fmt = options.format
    if label_set:
        label_set.open()
    try:
        plan = plan_patches(
            series, label_set, pg, min_labelled=options.min_labelled, max_cloud=options.max_cloud,
            min_dates=options.min_dates, max_dates=options.max_dates, block_size=options.block_size(),
            ratios=options.ratios(), seed=options.seed, split_polygons=split_polygons,
            feedback=feedback.sub_range(0.0, PLAN_SHARE),
        )
        grid = series.grid
        meta = DatasetMeta(
            crs_wkt=grid.crs_wkt(), grid_transform=tuple(grid.transform)[:6], bands=list(series.bands),
            groups=list(layout.groups), band_resolution=options.band_resolution, patch_size=options.patch_size,
            label_scale=options.label_scale, labels=label_set.describe() if label_set else {}, dates=series.dates,
            date_scales=series.scales, date_offsets=series.offsets, nodata=series.nodata, dtype=series.dtype,
            n_samples=len(plan), max_dates=plan.max_dates,
        )
        class_table = label_set.rasters["class"].class_table if label_set and "class" in label_set else None
        with StagedFolder(target) as temp:
            catalog = CatalogWriter(temp, catalog_info(fmt, meta, layout, _crs_name(grid), class_table))
            # The last 3 % of the writing share is the tables, the catalog and the card.
            writing = feedback.sub_range(PLAN_SHARE, PLAN_SHARE + (1 - PLAN_SHARE) * 0.97)
            summary = _write_dataset(series, label_set, plan, meta, WRITERS[fmt](temp, meta), temp, writing, catalog)
            card = _card(series, label_set, plan, meta, layout, options.card_parameters(series.bands), summary, fmt)
            # The collection and the Croissant file come before the file list, so it names them too.
            catalog.close(card)
            write_croissant(temp, card)
            card[CONTENTS_KEY] = sorted(listing(temp) + [JSON_NAME, MD_NAME])
            write_card(temp, card)
    finally:
        if label_set:
            label_set.close()
    return card


def _write_dataset(series, label_set, plan, meta: DatasetMeta, writer, temp: Path, feedback: Feedback,
                   catalog=None) -> dict:
    """Stream every sample through the writer (and the STAC catalog), then write the tables; returns what the card needs."""
    class_nodata = label_set.rasters["class"].nodata if label_set and "class" in label_set else None
    sink = SampleSink(writer, meta, class_nodata, feedback, catalog)
    try:
        stream_samples(series, label_set, plan, sink, feedback)
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
