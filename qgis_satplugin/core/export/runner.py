"""``run(ExportOptions, feedback)``: a time series of images (+ labels) -> a patch dataset on disk.

The steps, each in its own module:

0. check the options (:mod:`options`: every value on its own, before any file is read);
1. check the inputs (:mod:`image_series`, :mod:`label_rasters`, :mod:`band_layout`);
2. plan: windows, filters, splits (:mod:`windows`, :mod:`plan`, :mod:`splits`), reading
   only labels and masks, so an export that would be empty fails before writing;
3. stream: chunk by chunk (:func:`windows.read_chunks`), read the window of every date
   once, cut the patches, hand each finished sample to the format's writer
   (``format_*.py``) and its STAC item (:mod:`stac_catalog`), and forget it; memory
   stays at one chunk across all dates (:mod:`stream`). With ``dask_scheduler`` each
   chunk is a task on a Dask cluster instead (:mod:`chunk_task`), and the results are
   added up in the same chunk order, so the dataset is the same bytes;
4. finish: ``samples.csv``, ``index.gpkg``, the STAC collection, ``croissant.json`` and
   the dataset card, then rename the hidden staging folder onto the output (:mod:`staging`).

The output folder is locked for the whole run (a second export into it refuses at
once), and an output that is, holds or lies inside one of the inputs is refused before
any work.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..atomic import check_output_paths, remove_parts
from ..cluster.scheduler import parse_scheduler
from ..errors import SatPluginError
from ..feedback import Feedback
from ..gdal_cache import small_block_cache
from ..image_series.dates import iso_z
from ..image_series.reader import absolute_inputs, input_paths, input_read_errors
from ..options import plain
from .context import ExportContext
from .croissant import NAME as CROISSANT_NAME
from .croissant import write_croissant
from .dataset_card import CONTENTS_KEY, FORMAT, JSON_NAME, MD_NAME, licence_line, source_rows, write_card
from .format_zarr import import_zarr
from .index_gpkg import NAME as INDEX_NAME
from .index_gpkg import write_index
from .options import ExportOptions
from .plan import plan_patches
from .sharpening import Sharpener, remove_folder, sharpening_folder
from .samples_table import NAME as SAMPLES_NAME
from .samples_table import write_samples_csv
from .splits import SPLITS
from .stac_catalog import COLLECTION as STAC_COLLECTION
from .stac_catalog import LICENSE as STAC_LICENSE
from .stac_catalog import LICENSE_URL, CatalogWriter, ItemFiles
from .staging import StagedFolder, export_lock, listing, prepare_target
from .stream import DatasetTotals, SampleSink, chunk_works, stream_samples

PLAN_SHARE = 0.15  # of the progress bar
SHARPEN_SHARE = 0.45  # with band_resolution sharpened: the model's runs, after the plan


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
    class_pixels: dict = field(default_factory=dict)  # split -> {class id: label pixels, each once per split}
    normalisation: dict = field(default_factory=dict)
    files: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return plain(self)


def run(options: ExportOptions, feedback: Feedback | None = None, *, sharpener=None) -> ExportResult:
    """Cut ``options.images`` (a download folder or rasters, one date each) into patches.

    See :class:`ExportOptions` for every option and the package docstring for the outputs.
    ``sharpener``: for ``band_resolution`` "sharpened", what makes the date sharpener from a
    feedback (the super-resolution step's ``ShippedSharpener``; :mod:`.sharpening`).
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
        ctx = ExportContext.open(options, feedback)
        sharpening = Sharpener.check(ctx.series, sharpener, feedback) if options.band_resolution == "sharpened" else None
        grid = ctx.series.grid
        # Split areas come in any CRS; the blocks they are matched against are in the images'.
        split_polygons = None
        if options.split_areas is not None:
            split_polygons = [(a.area.in_crs(grid.crs), a.split) for a in options.split_areas]

        # Every raster is read strip by strip or chunk by chunk; GDAL's default cache would grow with the AOI.
        with small_block_cache():
            card = _plan_and_write(ctx, target, split_polygons, sharpening, feedback)
        feedback.set_progress(1.0)
        per_split = {s: card["splits"][s]["samples"] for s in SPLITS}
        n_samples = card["n_samples"]
        feedback.log(f"Exported {n_samples} samples ({', '.join(f'{s} {n}' for s, n in per_split.items())}) to {target}.")
        return ExportResult(
            output_folder=str(target), format=fmt, n_samples=n_samples, samples_per_split=per_split,
            n_candidates=card["candidates"], dropped=dict(card["dropped"]), dates=[iso_z(d) for d in ctx.series.dates],
            bands=list(ctx.series.bands), class_pixels={s: card["splits"][s]["class_pixels"] for s in SPLITS},
            normalisation=card["normalisation"],
            files={"index": str(target / INDEX_NAME), "samples": str(target / SAMPLES_NAME),
                   "card_json": str(target / "dataset.json"), "card_md": str(target / "dataset.md"),
                   "stac": str(target / STAC_COLLECTION), "croissant": str(target / CROISSANT_NAME)},
        )


def _plan_and_write(ctx: ExportContext, target, split_polygons, sharpening: Sharpener | None,
                    feedback: Feedback) -> dict:
    """Plan (nothing written yet), sharpen the dates it keeps when asked, then write everything into the
    staging folder; returns the card."""
    options, series, label_set = ctx.options, ctx.series, ctx.label_set
    scheduler = parse_scheduler(options.dask_scheduler)
    sharpened_folder = None
    if label_set:
        label_set.open()
    try:
        plan = plan_patches(
            series, label_set, ctx.patches, min_labelled=options.min_labelled, max_cloud=options.max_cloud,
            min_dates=options.min_dates, max_dates=options.max_dates, block_size=options.block_size(),
            ratios=options.ratios(), seed=options.seed, split_polygons=split_polygons,
            feedback=feedback.sub_range(0.0, PLAN_SHARE),
        )
        meta = ctx.meta(len(plan), plan.max_dates)
        works = chunk_works(series, plan, meta.patch_size)
        start = PLAN_SHARE
        reading = series  # the rasters the pixels are read from
        if sharpening is not None:
            sharpened_folder = sharpening_folder(target)
            used = sorted({int(t) for dates in plan.dates for t in dates})
            reading = sharpening.sharpen(series, used, sharpened_folder, feedback.sub_range(start, start + SHARPEN_SHARE),
                                        options.dask_scheduler)
            start += SHARPEN_SHARE
        with StagedFolder(target) as temp:
            info = ctx.catalog_info(meta)
            writer = ctx.writer_class.create(temp, meta)
            totals = DatasetTotals(meta, writer, CatalogWriter(temp, info))
            # The last 3 % of the writing share is the tables, the catalog and the card.
            writing = feedback.sub_range(start, start + (1 - start) * 0.97)
            if scheduler is None:
                sink = SampleSink(ctx.writer_class, temp, meta, ctx.class_nodata, totals, writing, ItemFiles(temp, info))
                try:
                    stream_samples(reading, label_set, works, sink, writing)
                finally:
                    sink.close()
            else:
                _write_on_cluster(scheduler, options, works, meta, temp, totals, writing,
                                  [str(im.path.absolute()) for im in reading.images])
            writer.close()
            _check_distinct_paths(totals.records)
            write_samples_csv(temp, totals.records)
            write_index(temp, totals.index_rows, meta.crs_wkt)
            summary = {"stats": totals.stats}
            card = _card(ctx, plan, meta, options.card_parameters(series.bands), summary, sharpening)
            # The collection and the Croissant file come before the file list, so it names them too.
            totals.catalog.close(card)
            write_croissant(temp, card)
            card[CONTENTS_KEY] = sorted(listing(temp) + [JSON_NAME, MD_NAME])
            write_card(temp, card)
    finally:
        if label_set:
            label_set.close()
        if sharpened_folder is not None:
            remove_folder(sharpened_folder)
    return card


def _write_on_cluster(scheduler, options: ExportOptions, works: list, meta, temp, totals: DatasetTotals,
                      feedback: Feedback, sources: list) -> None:
    """One task per chunk on the Dask cluster; the results added up in chunk order.

    ``sources``: the raster each date's pixels are read from (its sharpened VRT, or its own file)."""
    from ..cluster.tasks import Task, dask_client, run_tasks
    from .chunk_task import export_chunk, payload

    job = _with_absolute_paths(options).to_json()  # workers start elsewhere
    staging = Path(os.path.abspath(temp))
    tasks = [Task(f"chunk-{n:06d}", payload(job, meta.n_samples, meta.max_dates, staging, w, sources),
                  f"chunk {n + 1} of {len(works)} (image rows {w.row0}..{w.row1}, columns {w.col0}..{w.col1})")
             for n, w in enumerate(works)]
    with dask_client(scheduler, feedback) as client:
        results, _ = run_tasks(client, export_chunk, tasks, feedback)
    removed = remove_parts(staging)
    if removed:
        feedback.log(f"Removed {removed} partial file{'s' if removed > 1 else ''} of tasks whose worker died (their tasks ran again).")
    for key in sorted(results):
        totals.add(results[key])


def _check_distinct_paths(records: list) -> None:
    """Two samples written to one file (DeepSatData names round a patch's origin to the metre, per chunk) fail here."""
    seen = {}
    for r in records:
        other = seen.setdefault(r["path"], r["sample_id"])
        if other != r["sample_id"]:
            raise SatPluginError(
                f"The samples {other} and {r['sample_id']} would both be {r['path']}: their origins round to the same "
                "metre in this format's file names. Use a larger stride or patch size, or another format.")


def _with_absolute_paths(options: ExportOptions) -> ExportOptions:
    images = absolute_inputs(options.images)
    labels = {k: os.path.abspath(p) for k, p in options.labels.items()} if options.labels else options.labels
    return replace(options, images=images, labels=labels, output_folder=os.path.abspath(options.output_folder))


def _card(ctx: ExportContext, plan, meta, params, summary, sharpening: Sharpener | None = None) -> dict:
    series, layout, fmt = ctx.series, ctx.layout, ctx.options.format
    grid = series.grid
    splits = {}
    for i, s in enumerate(SPLITS):
        splits[s] = {
            "samples": int((plan.splits == i).sum()),
            "class_pixels": {str(c): int(n) for c, n in sorted(plan.class_pixels[s].items())},
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
            "crs": ctx.crs_name(),
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
        "sharpening": sharpening.describe() if sharpening else None,
        "bands": list(series.bands),
        "band_groups": layout.describe(),
        "dtype": series.dtype,
        "nodata": series.nodata,
        "dates": [iso_z(d) for d in series.dates],
        "date_scales": series.scales.tolist(),
        "date_offsets": series.offsets.tolist(),
        "sources": source_rows(series),
        "labels": meta.labels,
        "class_table": ctx.class_table,
        "normalisation": {"split": "train", "unit": "reflectance = scale x DN + offset",
                          "bands": summary["stats"].as_dict()},
        "attribution": licence_line(series.dates),
        "licence": "Sentinel data are free and open under the Copernicus licence; cite the source as above.",
        # No SPDX identifier exists for the Copernicus terms: STAC's "other" with a link to them.
        "licence_terms": {"spdx": None, "stac_license": STAC_LICENSE, "url": LICENSE_URL},
        "files": {"index": INDEX_NAME, "samples": SAMPLES_NAME, "card": "dataset.json", "stac": STAC_COLLECTION,
                  "croissant": CROISSANT_NAME},
    }
