"""One MGRS tile of a region build as a task: download -> ground truth -> export on the tile's own grid.

The payload is plain data: the three steps' job specs (JSON, absolute paths), the marker
file and the region job's hash. It runs in the engine process, or on a Dask worker that
sees the same files. The marker (the task's hash and its outcome) is written last, so a
tile counts as done, and a rerun skips it, only once its export is complete and only for the
very same task (the same products, polygons and options).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..area import Area
from ..atomic import replaced
from ..export.splits import SPLITS
from ..feedback import Feedback
from ..options import plain

MARKER = "done.json"


def tile_payload(options, tile: str, records: list, grid, export_folder: Path, work: Path, lonlat, class_ids,
                 parcel_ids, names: dict, codes, job_sha256: str) -> dict:
    """The tile's task: ``lonlat`` are every region polygon touching ``grid``, with their classes, ids and splits."""
    import shapely

    from ..download.options import DownloadOptions
    from ..export.options import ExportOptions, SplitArea
    from ..ground_truth.options import GroundTruthOptions, OutputPaths

    series, labels = work / "series", work / "labels"
    download = DownloadOptions(products=tuple(records), output_folder=str(series), bands=tuple(options.bands),
                               reference_grid=grid, include_masks=True, harmonize=True)
    ground_truth = GroundTruthOptions(
        polygons=tuple(shapely.to_wkb(lonlat, hex=True).tolist()), class_values=tuple(int(c) for c in class_ids),
        source_crs="EPSG:4326", grid=grid,
        outputs=OutputPaths(class_raster=str(labels / "class.tif"), id_raster=str(labels / "id.tif")),
        parcel_ids=tuple(int(i) for i in parcel_ids), class_names=tuple(names.get(int(c)) for c in class_ids))
    # The region's splits as split areas: one (multi)polygon per split, of the polygons here.
    split_areas = tuple(SplitArea(Area.from_geometry(shapely.union_all(lonlat[codes == s]), "EPSG:4326"), SPLITS[s])
                        for s in range(len(SPLITS)) if (codes == s).any())
    export = ExportOptions(
        images=str(series), output_folder=str(export_folder),
        labels={"class": str(labels / "class.tif"), "id": str(labels / "id.tif")}, patch_size=options.patch_size,
        stride=options.stride, format=options.format, max_cloud=options.patch_max_cloud, min_dates=options.min_dates,
        max_dates=options.max_dates, split_areas=split_areas, seed=options.seed,
        stac_collection_id=f"satplugin-patches-{tile}")
    # What makes the tile's work the same: the region job (options and polygons), the tile's products and grid;
    # not the dataset's folder, so the marker holds the same bytes wherever the dataset is.
    task = {"job_sha256": job_sha256, "tile": tile, "products": list(records), "grid": plain(grid)}
    return {"tile": tile, "crs": grid.crs, "download": download.to_json(), "ground_truth": ground_truth.to_json(),
            "export": export.to_json(), "export_folder": str(export_folder), "labels": str(labels),
            "marker": str(work / MARKER),
            "task_sha256": hashlib.sha256(json.dumps(task, sort_keys=True).encode("utf-8")).hexdigest()}


def build_tile(payload: dict, feedback: Feedback | None = None) -> dict:
    """Run the tile's three steps; returns its outcome (also kept in its marker)."""
    from ..download import DownloadOptions
    from ..download import run as download
    from ..export import ExportOptions
    from ..ground_truth import GroundTruthOptions
    from ..ground_truth import run as ground_truth
    from ..steps import step

    export = step("export")[1]  # with the services it takes from other steps (band_resolution sharpened)
    feedback = Feedback.of(feedback)
    download(DownloadOptions.from_json(payload["download"]), feedback.sub_range(0.0, 0.5))
    Path(payload["labels"]).mkdir(parents=True, exist_ok=True)
    Path(payload["export_folder"]).parent.mkdir(parents=True, exist_ok=True)
    ground_truth(GroundTruthOptions.from_json(payload["ground_truth"]), feedback.sub_range(0.5, 0.6))
    result = export(ExportOptions.from_json(payload["export"]), feedback.sub_range(0.6, 1.0))
    outcome = {"tile": payload["tile"], "crs": payload["crs"], "samples": result.n_samples,
               "samples_per_split": result.samples_per_split, "class_pixels": result.class_pixels,
               "dates": result.dates}
    with replaced(Path(payload["marker"])) as temp:
        temp.write_text(json.dumps({"task_sha256": payload["task_sha256"], "outcome": outcome}) + "\n",
                        encoding="utf-8")
    return outcome
