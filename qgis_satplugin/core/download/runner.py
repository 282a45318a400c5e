"""The download's ``run``: plan the outputs, fetch pieces in parallel, publish complete files.

The main thread owns every file: it plans, writes the pieces that worker threads
fetch into staging files, publishes finished files and the manifest, reports progress
and log lines, and polls the user's cancel flag (every :data:`POLL_S`). Workers only
fetch and compute; they see cancellation through a shared event, and they never call
the run's :class:`~..feedback.Feedback` (a QGIS feedback behind it is meant for one
thread): their log lines come to the main thread through a queue.

At most ``max_concurrent`` pieces are fetched at once (one request per worker at a
time), and only a few acquisitions are open at a time, so memory and open files stay
bounded whatever the number of dates; what those pieces need is checked against the
machine's memory before anything is fetched (:func:`check_download_memory`).

The output folder is locked for the whole run (:class:`OutputLock`): a second download
into it refuses at once instead of deleting the first one's staging files, and the
run holding the lock removes what killed runs left there.
"""

from __future__ import annotations

import os
import queue
import re
import threading
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import shapely

from ..area import prepare_aoi
from ..atomic import user_error_for
from ..errors import Canceled, SatPluginError
from ..feedback import Feedback
from ..grid import PixelGrid, check_memory, utm_grid_for_bounds
from ..image_series.manifest import (
    RESUME_NOTE,
    file_entry,
    file_is_current,
    read_manifest,
    reusable_entries,
    write_manifest,
)
from ..locks import OutputLock, remove_leftovers
from ..options import plain
from ..sentinel2 import MASK_NODATA, REFLECTANCE_SCALE
from .acquisitions import Acquisition, file_stem, group_acquisitions
from .cog_writer import StagedRaster
from .file_sources import FileSources
from .harmonize import apply_harmonization
from .options import DownloadOptions
from .product_list import as_products
from .sentinelhub import ProcessApi
from .transfer import ClientPool

POLL_S = 0.2
# After a failure or a cancel, how long to wait for workers still inside GDAL (a local
# warp, or a read the cancel flag stops at its next chunk): returning while one runs lets
# QGIS's exit tear GDAL down under it (a segfault, seen at pytest-qgis's teardown).
JOIN_S = 1.5
# The temp files a killed download leaves: its staging and publishing files, named after the
# acquisition stems it writes (``20230612T101559_S2B_T32TQM...``), and its manifest temp.
# Only these: another step's temp files in the same folder are locked by that step, not here.
_LEFTOVER = re.compile(
    r"^\.\d{8}T\d{6}_[^/]*\.(staging|partial)-[0-9a-f]{8}\.tif(\.aux\.xml)?$|^\.manifest\.json\.[0-9a-f]{8}\.tmp$"
)
# Peak bytes per output pixel of one piece in flight. A band read onto the whole grid
# holds GDAL's warp target, its copy, the harmonization's int32 and its result (peak
# RSS measured at 11.7 B per pixel for a harmonized 5000 x 5000 px band); a Process API
# window holds the response, the decoded array and its harmonized copy per band.
BAND_PIECE_BYTES_PER_PX = 12
WINDOW_PIECE_BYTES_PER_PX_BAND = 8


@dataclass
class DownloadResult:
    output_folder: Path
    manifest_path: Path
    grid: PixelGrid
    bands: list[str]
    files: list[dict]  # the manifest's file entries
    written: list[str] = field(default_factory=list)  # relative paths written by this run
    skipped: list[str] = field(default_factory=list)  # complete already (checksum matched)
    transferred_bytes: int = 0
    requests: int = 0

    @property
    def dates(self) -> list[str]:
        return sorted({f["datetime"] for f in self.files})

    def to_dict(self) -> dict:
        """The result as JSON values: paths as strings, the grid as a dict, the dates too."""
        return {
            "output_folder": str(self.output_folder),
            "manifest_path": str(self.manifest_path),
            "grid": plain(self.grid),
            "bands": plain(self.bands),
            "files": plain(self.files),
            "written": plain(self.written),
            "skipped": plain(self.skipped),
            "transferred_bytes": int(self.transferred_bytes),
            "requests": int(self.requests),
            "dates": self.dates,
        }


@dataclass
class _Job:
    """One output file of one acquisition."""

    acq: Acquisition
    entry: dict  # planned manifest entry (no size/checksum yet)
    mask: str | None
    tasks: list = field(default_factory=list)
    remaining: int = 0
    staged: StagedRaster | None = None
    has_data: bool = False


def run(
    options: DownloadOptions,
    feedback: Feedback | None = None,
    *,
    credentials=None,
    client_options: dict | None = None,
) -> DownloadResult:
    """Download ``options.bands`` of ``options.products`` onto one grid, one COG per date (+ mask), resumable.

    See the package docstring for the rules. ``credentials`` (client id and secret) are
    for the Sentinel Hub backends; ``client_options`` go to every HTTP client on top of
    the options' deadlines (``sleep``, ``max_attempts``, ``timeout``, ``backoff_base``,
    ``rng``... for tests).
    """
    feedback = Feedback.of(feedback)
    feedback.check_canceled()
    # Again here, not only when the options were made: the records are dicts a caller could change since.
    options.check()
    products = as_products(options.products)
    band_list = options.band_list()
    grid = options.reference_grid
    if grid is None:
        grid = grid_for_aoi(options.area.lonlat(), options.pixel_size)
    grid.check_size()
    check_download_memory(grid, band_list, products, options.max_concurrent, options.max_request_px)
    refuse_folder_among_sources(options.output_folder, products)
    folder = prepare_folder(options.output_folder)
    harmonize = options.harmonize
    network = {"request_deadline": options.request_deadline, "run_deadline": options.run_deadline, **(client_options or {})}
    with OutputLock([folder], "download"):
        # Only while holding the lock: without it these could be another run's files.
        remove_leftovers(folder, _LEFTOVER)
        messages: queue.Queue = queue.Queue()
        cancel_event = threading.Event()
        # The workers' clients stop on the run's cancel event and send their lines to the main thread.
        pool = ClientPool(network, Feedback(log=messages.put, is_canceled=cancel_event.is_set))
        acqs = group_acquisitions(products, feedback)
        file_sources = FileSources(pool, grid)
        process_api = ProcessApi(
            pool,
            grid,
            service_url=options.service_url,
            token_url=options.token_url,
            credentials=credentials,
            max_request_px=options.max_request_px,
        )

        def backend(acq):
            return process_api if acq.kind == "sentinelhub" else file_sources

        jobs = _plan_jobs(acqs, band_list, options.include_masks, backend, feedback)
        reusable = reusable_entries(read_manifest(folder), grid, harmonize)
        entries: dict[str, dict] = {}
        skipped = []
        todo = []
        for job in jobs:
            if feedback.is_canceled():  # checksumming large files takes a moment each
                raise Canceled()
            old = reusable.get(job.entry["path"])
            if file_is_current(folder, old, job.entry):
                entries[job.entry["path"]] = old
                skipped.append(job.entry["path"])
            else:
                todo.append(job)
        for acq in acqs:
            paths = [j.entry["path"] for j in jobs if j.acq is acq]
            if paths and all(p in skipped for p in paths):
                feedback.log(f"{acq.iso_datetime} {acq.stem}: already complete (checksums match); skipped.")

        runner = _Runner(folder, grid, band_list, harmonize, pool, backend, entries, options.max_concurrent, feedback, messages)
        written = runner.run(todo, cancel_event)
        if not any(e["kind"] == "image" for e in entries.values()):
            raise SatPluginError(
                f"None of the {len(products)} products has data over the area ({_describe_area(grid)}); nothing was "
                "written. Choose products from a search of this area."
            )
        manifest_path = write_manifest(folder, grid, band_list, harmonize, list(entries.values()), complete=True)
        feedback.set_progress(1.0)
        return DownloadResult(
            output_folder=folder,
            manifest_path=manifest_path,
            grid=grid,
            bands=band_list,
            files=sorted(entries.values(), key=lambda e: (e["datetime"], e["kind"] != "image", e["path"])),
            written=written,
            skipped=skipped,
            transferred_bytes=pool.stats.bytes,
            requests=pool.stats.requests,
        )


def _describe_area(grid: PixelGrid) -> str:
    """The grid's extent in degrees, as a user would check it against the products' tiles."""
    from ..grid import transform_bounds

    west, south, east, north = transform_bounds(grid.bounds, grid.crs, "EPSG:4326")
    return f"{west:.4f}..{east:.4f} E, {south:.4f}..{north:.4f} N"


def grid_for_aoi(aoi, pixel_size: float) -> PixelGrid:
    """The AOI's UTM zone, origin on the Sentinel-2 60 m lattice, at ``pixel_size``."""
    if aoi is None:
        raise SatPluginError("Give an area of interest or a reference grid.")
    if isinstance(aoi, (bytes, bytearray, memoryview)):
        aoi = shapely.from_wkb(bytes(aoi))
    elif isinstance(aoi, str):
        aoi = shapely.from_wkt(aoi)
    elif isinstance(aoi, (tuple, list)) and len(aoi) == 4:
        aoi = shapely.box(*aoi)
    geom = prepare_aoi(aoi)
    return utm_grid_for_bounds(geom.bounds, "EPSG:4326", float(pixel_size))


def refuse_folder_among_sources(path, products) -> None:
    """Refuse an output folder that is a local product's folder, lies inside one or holds one:
    the download would write among the user's source files."""
    if not path:
        return  # prepare_folder says what is missing
    out = Path(path).expanduser().resolve()
    for product in products:
        download = product.download or {}
        if download.get("kind") != "local" or not download.get("path"):
            continue
        source = Path(str(download["path"]).removeprefix("/vsizip/")).expanduser().resolve()
        if _is_or_lies_in(out, source) or _is_or_lies_in(source, out):
            raise SatPluginError(
                f"The output folder {out} and the product {product.product_id} ({source}) overlap; choose an "
                "output folder outside the products' folders, so that the download never writes among them."
            )


def _is_or_lies_in(path: Path, folder: Path) -> bool:
    """Whether ``path`` (which need not exist yet) is ``folder`` or lies inside it.

    By name, and by the file system's own identity of the folders that exist: a
    case-insensitive volume (macOS, Windows) or a bind mount gives one folder several names.
    """
    if path.is_relative_to(folder):
        return True
    try:
        target = folder.stat()
    except OSError:
        return False
    for candidate in (path, *path.parents):
        try:
            if os.path.samestat(candidate.stat(), target):
                return True
        except OSError:
            continue  # not created yet
    return False


def prepare_folder(path) -> Path:
    if not path:
        raise SatPluginError("Choose an output folder for the downloaded images.")
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise SatPluginError(f"The output folder {folder} is a file; choose a folder.")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SatPluginError(f"Cannot create the output folder {folder}: {exc.strerror or exc}.") from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise SatPluginError(f"The output folder {folder} is not writable; choose another folder or change its permissions.")
    return folder


def check_download_memory(grid: PixelGrid, band_list, products, max_concurrent: int, max_request_px: int) -> None:
    """Refuse, before anything is fetched, a download whose pieces in flight would not fit in memory.

    Each of ``max_concurrent`` workers holds one piece: a whole band on the grid for
    STAC and local files, a window of at most ``max_request_px`` squared pixels (all
    bands) for the Process API.
    """
    workers = max(1, int(max_concurrent))
    per_piece = 0
    kinds = {(p.download or {}).get("kind") for p in products}
    if kinds - {"sentinelhub"}:
        per_piece = grid.n_pixels * BAND_PIECE_BYTES_PER_PX
    if "sentinelhub" in kinds:
        window_px = min(grid.width, max_request_px) * min(grid.height, max_request_px)
        per_piece = max(per_piece, window_px * len(band_list) * WINDOW_PIECE_BYTES_PER_PX_BAND)
    check_memory(
        workers * per_piece,
        f"Downloading onto a {grid.width} x {grid.height} px grid ({grid.pixel_width:g} m pixels) with {workers} "
        "parallel requests",
        "use a larger PIXEL_SIZE or a smaller area, or fewer parallel requests (MAX_CONCURRENT).",
    )


def _plan_jobs(acqs, band_list, include_masks, backend, feedback: Feedback) -> list[_Job]:
    jobs = []
    for acq in acqs:
        stem = file_stem(acq)
        common = {
            "datetime": acq.iso_datetime,
            "product_id": acq.product_ids[0],
            "product_ids": acq.product_ids,
            "platform": acq.platform,
            "tiles": acq.tiles,
            "collection": acq.collection,
            "processing_baseline": ",".join(acq.baselines) or None,
        }
        jobs.append(_Job(acq, {"path": f"{stem}.tif", "kind": "image", "bands": list(band_list), "mask": None, **common}, None))
        if not include_masks:
            continue
        mask = backend(acq).mask_name(acq)
        if mask is None:
            feedback.log(f"{acq.stem}: no cloud mask available for these {acq.collection} products from this source; image only.")
            continue
        entry = {"path": f"{stem}_{mask}.tif", "kind": "mask", "bands": [mask], "mask": mask, **common}
        jobs.append(_Job(acq, entry, mask))
    return jobs


class _Runner:
    def __init__(self, folder, grid, band_list, harmonize, pool, backend, entries, max_concurrent, feedback: Feedback, messages):
        self.folder = folder
        self.grid = grid
        self.band_list = band_list
        self.harmonize = harmonize
        self.pool = pool
        self.backend = backend
        self.entries = entries
        self.max_concurrent = max(1, int(max_concurrent))
        self.feedback = feedback
        self.messages = messages
        self.written: list[str] = []
        self.dates_without_data: set = set()  # acquisitions (their ids) whose image had no data over the area

    def run(self, todo: list[_Job], cancel_event) -> list[str]:
        if not todo:
            return []
        groups: dict[int, list[_Job]] = {}
        for job in todo:
            groups.setdefault(id(job.acq), []).append(job)
        waiting = list(groups.values())  # acquisitions in time order
        total_units = sum(self._task_count(job) + 1 for job in todo)
        done_units = 0
        max_open = max(2, self.max_concurrent)
        open_jobs: list[_Job] = []
        futures = {}
        executor = ThreadPoolExecutor(max_workers=self.max_concurrent, thread_name_prefix="satplugin-download")
        try:
            while waiting or futures:
                while waiting and len({id(j.acq) for j in open_jobs}) < max_open:
                    for job in waiting.pop(0):
                        self._open(job)
                        open_jobs.append(job)
                        for task in job.tasks:
                            futures[executor.submit(task)] = job
                done, _ = wait(list(futures), timeout=POLL_S, return_when=FIRST_COMPLETED)
                self._drain_messages()
                if self.feedback.is_canceled():
                    raise Canceled()
                for fut in done:
                    job = futures.pop(fut)
                    bands, window, data = fut.result()
                    job.staged.write(data, bands, window=window)
                    job.has_data = job.has_data or bool((data != job.staged.nodata).any())
                    job.remaining -= 1
                    done_units += 1
                    if job.remaining == 0:
                        for settled in self._settle(job, open_jobs):
                            open_jobs.remove(settled)
                        done_units += 1
                        if not any(j.acq is job.acq for j in open_jobs):
                            self._log_acquisition(job.acq)
                    self.feedback.set_progress(min(0.99, done_units / total_units))
                    if self.feedback.is_canceled():
                        raise Canceled()
            return self.written
        except BaseException as exc:
            cancel_event.set()  # stops the workers' transfers and retry waits at once
            executor.shutdown(wait=False, cancel_futures=True)
            wait([f for f in futures if not f.cancelled()], timeout=JOIN_S)
            error = user_error_for(exc, self.folder, RESUME_NOTE)  # before the staging files free their space
            for job in open_jobs:
                if job.staged is not None:
                    job.staged.discard()
            self._drain_messages()
            if isinstance(exc, Canceled) and self.written:
                raise Canceled(
                    f"Canceled by the user; {len(self.written)} complete file(s) were kept, and a rerun resumes from them."
                ) from None
            if error is not None:
                raise error from exc
            raise
        finally:
            # Workers still waiting on a slow server finish on their own; they write nothing.
            executor.shutdown(wait=False, cancel_futures=True)

    def _task_count(self, job: _Job) -> int:
        source = self.backend(job.acq)
        if isinstance(source, ProcessApi):
            return len(source.windows())
        return len(self.band_list) if job.mask is None else 1

    def _open(self, job: _Job) -> None:
        """Create the staging file and the fetch tasks of one output file."""
        acq, source = job.acq, self.backend(job.acq)
        if job.mask is None:
            count, dtype, nodata = len(self.band_list), "uint16", 0
        else:
            count, dtype, nodata = 1, "uint8", MASK_NODATA.get(job.mask, 0)
        if isinstance(source, ProcessApi):
            bands = self.band_list if job.mask is None else [job.mask]
            for window in source.windows():
                job.tasks.append(_process_task(source, acq, window, bands, job.mask is not None, self.harmonize))
        elif job.mask is None:
            for i, band in enumerate(self.band_list, start=1):
                job.tasks.append(_band_task(source, acq, band, i, False, self.harmonize))
        else:
            job.tasks.append(_band_task(source, acq, job.mask, 1, True, self.harmonize))
        job.remaining = len(job.tasks)
        job.staged = StagedRaster(self.folder / job.entry["path"], self.grid, count, dtype, nodata)

    def _settle(self, job: _Job, open_jobs: list) -> list:
        """Publish a finished file, or hold it; returns the jobs settled (published or dropped).

        A mask is kept only beside its date's image: it waits while the image is still being
        fetched, and is dropped when the image had no data over the area.
        """
        key = id(job.acq)
        if job.mask is not None:
            if key in self.dates_without_data:
                self._drop(job, "its date's image has no data over the area")
                return [job]
            if any(j.acq is job.acq and j.mask is None for j in open_jobs):
                return []
            self._publish(job)
            return [job]
        self._publish(job)
        if not job.has_data:
            self.dates_without_data.add(key)
        held = [j for j in open_jobs if j.acq is job.acq and j.mask is not None and j.remaining == 0]
        for mask in held:
            self._settle(mask, [])
        return [job, *held]

    def _drop(self, job: _Job, why: str) -> None:
        job.staged.discard()
        job.staged = None
        self.feedback.log(f"{job.entry['path']}: {why}; not written.")

    def _publish(self, job: _Job) -> None:
        acq, entry = job.acq, job.entry
        if not job.has_data:
            # Not a file of no-data pixels: the products do not reach the area (their footprint
            # misses it, or holds no data there). A rerun fetches them again to find out.
            self._drop(job, "the products have no data over the area")
            return
        tags = {
            "ACQUISITION_DATETIME": acq.iso_datetime,
            "PRODUCT_ID": ",".join(acq.product_ids),
            "PROCESSING_BASELINE": ",".join(acq.baselines) or "unknown",
        }
        if job.mask is None:
            harmonization = self.backend(acq).harmonization(acq, self.harmonize)
            harm = [{"product_id": pid, **h.as_dict()} for pid, h in harmonization.items()]
            entry["harmonization"] = harm
            first = next(iter(harmonization.values()))
            tags.update(
                HARMONIZED="true" if self.harmonize else "false",
                HARMONIZATION="; ".join(f"{h['product_id']}: {h['reason']}" for h in harm),
                REFLECTANCE="scale * DN + offset (per band)",
            )
            job.staged.finish(
                descriptions=self.band_list,
                tags=tags,
                scales=[REFLECTANCE_SCALE] * len(self.band_list),
                offsets=[first.band_offset] * len(self.band_list),
                resampling="AVERAGE",
            )
        else:
            tags["MASK"] = job.mask
            job.staged.finish(descriptions=[job.mask], tags=tags, resampling="NEAREST")
        job.staged = None
        self.entries[entry["path"]] = file_entry(self.folder, entry)
        self.written.append(entry["path"])
        write_manifest(self.folder, self.grid, self.band_list, self.harmonize, list(self.entries.values()), complete=False)

    def _log_acquisition(self, acq: Acquisition) -> None:
        names = [e["path"] for e in self.entries.values() if e["datetime"] == acq.iso_datetime and e["path"] in self.written]
        if names:  # else each file already said why it was not written
            self.feedback.log(f"{acq.iso_datetime} {acq.stem}: wrote {', '.join(sorted(names))}.")

    def _drain_messages(self) -> None:
        while True:
            try:
                line = self.messages.get_nowait()
            except queue.Empty:
                return
            self.feedback.log(line)


def _band_task(source: FileSources, acq, band: str, index: int, mask: bool, harmonize: bool):
    def task():
        source.pool.check_canceled()
        harmonization = None if mask else source.harmonization(acq, harmonize)
        return [index], None, source.read_band(acq, band, mask=mask, harmonization=harmonization)

    return task


def _process_task(api: ProcessApi, acq, window, bands, mask: bool, harmonize: bool):
    def task():
        api.pool.check_canceled()
        data = api.fetch(acq, window, bands, mask=mask)
        if not mask:
            data = apply_harmonization(data, api.subtraction(acq, harmonize))
        return list(range(1, len(bands) + 1)), window, data

    return task
