"""``run(BuildDatasetOptions, feedback)``: polygons and a season -> one dataset over every MGRS tile they touch.

1. read the polygons (any CRS; classes numbered once for the region, so every tile shares
   the class ids) and decide every polygon's split for the whole region (:mod:`.splits`);
2. search once over the region; group the selected products by MGRS tile; each polygon
   belongs to the first tile (sorted) whose footprint holds its centre (:mod:`.tiles`);
3. one task per tile with polygons (:mod:`.tile_job`): download onto a grid in the tile's
   own UTM zone covering its polygons, ground truth from every polygon on that grid,
   export with the region's splits as split areas; a tile whose work is complete (its
   marker holds this job's hash) is skipped, so an interrupted build resumes;
4. the region's files, from the tiles' in tile order (:mod:`.merge`): ``index.gpkg``,
   ``dataset.json``/``dataset.md`` (tiles, counts, failures) and ``collection.json``.

A tile whose task keeps failing is named in the log and the card; the others still make
the dataset. The output folder is locked for the run; it must be new, empty or a build
of this same job (``region.json`` holds the job's hash).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..area import Area
from ..atomic import replaced
from ..class_table import build_class_table
from ..cluster.scheduler import parse_scheduler
from ..cluster.tasks import error_sentence
from ..errors import Canceled, SatPluginError
from ..feedback import Feedback
from ..grid import snapped_grid, transform_bounds
from ..options import plain
from .merge import write_region_files
from .options import BuildDatasetOptions
from .splits import polygon_splits, to_crs
from .tile_job import build_tile, tile_payload
from .tiles import owners, products_by_tile, tile_crs

MARKER = "region.json"
TILES, WORK = "tiles", "work"


@dataclass
class BuildDatasetResult:
    output_folder: str
    tiles: list  # [{tile, samples, samples_per_split, skipped}]
    n_samples: int
    samples_per_split: dict
    failures: list = field(default_factory=list)  # [{tile, error}]
    files: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return plain(self)


def job_sha256(options: BuildDatasetOptions, polygons: dict) -> str:
    """What makes two builds the same job: the recorded options, with the polygons as read (not their file's
    name: QGIS hands a selection or a filtered layer over as a new temporary file each run)."""
    values = options.recorded()
    values["polygons"] = {**values["polygons"], "path": None, "content": _sha256_json(polygons)}
    return _sha256_json(values)


def _sha256_json(values) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode("utf-8")).hexdigest()


def run(options: BuildDatasetOptions, feedback: Feedback | None = None) -> BuildDatasetResult:
    from ..export.staging import export_lock
    from ..ground_truth.polygon_file import read_polygons
    from ..search import SearchOptions
    from ..search import run as search

    feedback = Feedback.of(feedback)
    scheduler = parse_scheduler(options.dask_scheduler)
    root = Path(os.path.abspath(options.output_folder))
    found = read_polygons(options.polygons)
    job = job_sha256(options, found)
    with export_lock(root):
        _claim(root, job)
        polygons = _polygons(found, options)
        feedback.log(f"{len(polygons['lonlat'])} polygons, {len(polygons['names'])} classes.")
        codes, split_info = polygon_splits(polygons["lonlat"], polygons["class_ids"], options.split_ratios,
                                           options.seed, options.split_block_m)
        import shapely

        region = shapely.envelope(shapely.union_all(shapely.envelope(polygons["lonlat"])))
        result = search(SearchOptions(area=Area.from_geometry(region), start=options.start, end=options.end,
                                      backend=options.backend, collection=options.collection,
                                      max_cloud=options.max_cloud, max_products=options.max_products,
                                      strategy=options.strategy, service_url=options.service_url),
                        feedback.sub_range(0.0, 0.05))
        by_tile = products_by_tile(_selected_records(result))
        if not by_tile:
            raise SatPluginError(f"No product in {options.service_url} covers the polygons in "
                                 f"{options.start} .. {options.end}.")
        footprints = {t: shapely.union_all([shapely.from_wkt(r["footprint"]) for r in rs]) for t, rs in by_tile.items()}
        owner = owners(shapely.centroid(polygons["lonlat"]), footprints)
        uncovered = int((owner < 0).sum())
        if uncovered:
            feedback.log(f"{uncovered} polygons lie in no product's footprint: they are left out.")
        tasks, skipped = _tile_tasks(options, root, job, by_tile, owner, polygons, codes, feedback)
        outcomes = _run_tiles(tasks, scheduler, feedback.sub_range(0.05, 0.97))
        outcomes.update(skipped)
        card = write_region_files(root, options, outcomes, polygons["names"], split_info, feedback)
        feedback.set_progress(1.0)
    return BuildDatasetResult(
        output_folder=str(root), tiles=card["tiles"], n_samples=card["n_samples"],
        samples_per_split=card["samples_per_split"], failures=card["failures"],
        files={"index": str(root / "index.gpkg"), "card_json": str(root / "dataset.json"),
               "stac": str(root / "collection.json")})


def _claim(root: Path, job: str) -> None:
    """Refuse a folder holding anything but a build of this job; mark it as this job's."""
    marker = root / MARKER
    if root.exists():
        if not root.is_dir():
            raise SatPluginError(f"{root} exists and is a file; choose a folder for the dataset.")
        entries = sorted(p.name for p in root.iterdir())
        if entries:
            mine = marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("job_sha256") == job
            if not mine:
                raise SatPluginError(
                    f"{root} holds {entries[0]}, which is not a build of this job: choose a new or empty folder "
                    "(a folder is resumed only by the same job).")
            return
    root.mkdir(parents=True, exist_ok=True)
    with replaced(marker) as temp:
        temp.write_text(json.dumps({"format": "satplugin-region/1", "job_sha256": job}) + "\n", encoding="utf-8")


def _selected_records(result) -> list:
    from ..search.result import product_record

    return [product_record(p) for p in result.selected]


def _polygons(found: dict, options: BuildDatasetOptions) -> dict:
    """The polygons in EPSG:4326 and their region-wide class ids (text classes numbered in sorted order)."""
    import shapely

    if not found["crs"]:
        raise SatPluginError(f"The polygon file {options.polygons.path} has no CRS; set one (QGIS: Assign projection).")
    keep = [i for i, g in enumerate(found["polygons"]) if g is not None]
    wkb = [bytes.fromhex(found["polygons"][i]) for i in keep]
    geometries = shapely.make_valid(shapely.from_wkb(wkb))
    table, ids = build_class_table([found["class_values"][i] for i in keep],
                                   None if found["class_names"] is None else [found["class_names"][i] for i in keep])
    names = {cid: str(value) for value, cid in table.ids.items()}
    names.update(table.names)
    return {"lonlat": to_crs(geometries, found["crs"], "EPSG:4326"), "class_ids": np.asarray(ids, dtype=np.int64),
            "parcel_ids": np.asarray([found["parcel_ids"][i] for i in keep], dtype=np.int64), "names": names}


def _tile_tasks(options, root: Path, job: str, by_tile: dict, owner: np.ndarray, polygons: dict, codes: np.ndarray,
                feedback: Feedback) -> tuple:
    """One plain-data task per tile owning polygons; tiles already complete as outcomes instead."""
    import shapely

    lonlat = polygons["lonlat"]
    tasks, skipped = [], {}
    for i, tile in enumerate(by_tile):
        mine = owner == i
        if not mine.any():
            feedback.log(f"Tile {tile}: no polygon has its centre there; skipped.")
            continue
        crs = tile_crs(tile)
        owned_bounds = shapely.total_bounds(lonlat[mine])
        grid = snapped_grid(transform_bounds(tuple(owned_bounds), "EPSG:4326", crs), crs, options.pixel_size)
        touching = shapely.intersects(lonlat, shapely.box(*transform_bounds(grid.bounds, crs, "EPSG:4326")))
        payload = tile_payload(options, tile, by_tile[tile], grid, root / TILES / tile, root / WORK / tile,
                               lonlat[touching], polygons["class_ids"][touching], polygons["parcel_ids"][touching],
                               polygons["names"], codes[touching], job)
        done = _finished(payload)
        if done is not None:
            skipped[tile] = done
        else:
            tasks.append((tile, payload))
    if skipped:
        feedback.log(f"{len(skipped)} tile{'s' if len(skipped) > 1 else ''} already complete, skipped: {', '.join(skipped)}.")
    return tasks, skipped


def _finished(payload: dict) -> dict | None:
    """The outcome of a tile a previous run of this job completed, or None."""
    marker = Path(payload["marker"])
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    # The tile's own task as well as the job: new products for the tile (same options) redo it.
    if done.get("task_sha256") != payload["task_sha256"] or not (Path(payload["export_folder"]) / "dataset.json").is_file():
        return None
    return {**done["outcome"], "skipped": True}


def _run_tiles(tasks: list, scheduler, feedback: Feedback) -> dict:
    """tile -> outcome ({"samples", ...} or {"error"}), for every task, in tile order."""
    outcomes = {}
    if not tasks:
        return outcomes
    if scheduler is None:
        for n, (tile, payload) in enumerate(tasks):
            feedback.log(f"Tile {tile} ({n + 1} of {len(tasks)}): download, ground truth, export.")
            part = feedback.sub_range(n / len(tasks), (n + 1) / len(tasks))
            try:
                outcomes[tile] = build_tile(payload, part)
            except Canceled:
                raise
            except Exception as exc:  # as on a cluster: the tile fails, the region goes on
                feedback.log(f"Tile {tile} failed: {error_sentence(exc)}")
                outcomes[tile] = {"tile": tile, "error": error_sentence(exc)}
        return outcomes
    from ..cluster.tasks import Task, dask_client, run_tasks

    jobs = [Task(f"tile-{tile}", payload, f"tile {tile}") for tile, payload in tasks]
    with dask_client(scheduler, feedback) as client:
        # A tile's steps each write atomically: a cancel need not wait for the tiles being built.
        results, failures = run_tasks(client, build_tile, jobs, feedback, raise_failures=False, wait_after_cancel=False)
    for key, outcome in results.items():
        outcomes[outcome["tile"]] = outcome
    for name, error in failures:
        tile = name.split(" ", 1)[1]
        feedback.log(f"Tile {tile} failed: {error}")
        outcomes[tile] = {"tile": tile, "error": error}
    return dict(sorted(outcomes.items()))

