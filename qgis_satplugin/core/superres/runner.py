"""Super-resolve a revisit stack with an ONNX model, tile by tile, into a georeferenced raster.

The flow, one row of tiles at a time (so memory holds one strip of input and one of
output, whatever the raster's size):

1. load the model and check its contract (:mod:`.session`, :mod:`.contract`);
2. open the series (a download folder or rasters on one grid), match the model's bands,
   and choose and order the revisits (:mod:`.revisits`);
3. read a strip of the stack, padded by reflection at the raster's edges, while the
   previous strip is being inferred (:mod:`.input_strips`);
4. run its tiles in batches, blend them with windows that sum to 1 (:mod:`.tiling`),
   and hand the finished rows to the writer (:mod:`.output_raster`).

The output covers exactly the input's extent, in its CRS, at the input pixel size
divided by the model's scale.
"""
from __future__ import annotations

import os
import re
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..atomic import check_output_paths, check_writable_folder
from ..dependencies import require
from ..errors import SatPluginError
from ..feedback import Feedback
from ..grid import PixelGrid
from ..locks import remove_leftovers
from ..cluster.scheduler import parse_scheduler
from ..image_series.manifest import sha256_of
from ..image_series.reader import ImageSeries, absolute_inputs, input_paths, input_read_errors, mask_inputs, open_image_series
from ..options import plain
from .contract import ModelContract
from .input_strips import StripReader
from .options import DEFAULT_MODEL, SuperResolveOptions
from .output_raster import OutputRaster
from .reflectance import ReflectanceCheck, coarse_resampling, reflectance_check
from .revisits import choose_revisits, describe_revisits
from .session import LoadedModel, load_model
from .tiling import TileLayout, aligned_tiling, context_margin

FLOAT_NODATA = float("nan")
UINT16_NODATA = 0


@dataclass
class SuperResolveResult:
    output: Path
    provider: str
    model: str
    scale: int
    width: int
    height: int
    revisits: list = field(default_factory=list)  # the stack fed, in order (dicts)
    tiles: int = 0
    seconds_inference: float = 0.0

    def to_dict(self) -> dict:
        return {"output": str(self.output), "provider": self.provider, "model": self.model, "scale": self.scale,
                "width": self.width, "height": self.height, "revisits": plain(self.revisits), "tiles": self.tiles,
                "seconds_inference": self.seconds_inference}


def auto_batch_size(provider: str) -> int:
    """One tile a call on the CPU (measured fastest there: the activations stay in cache,
    and memory is a third of a batch of 4); four on an accelerator, which batches pay on."""
    return 1 if provider == "CPUExecutionProvider" else 4


def output_grid(grid: PixelGrid, scale: int) -> PixelGrid:
    """The input's extent and CRS at ``scale`` times finer pixels."""
    return PixelGrid(grid.crs, grid.x_min, grid.y_max, grid.pixel_width / scale, grid.pixel_height / scale,
                     grid.width * scale, grid.height * scale)


def run(options: SuperResolveOptions, feedback: Feedback | None = None, *,
        loaded_model: LoadedModel | None = None) -> SuperResolveResult:
    """Run the model over ``options.inputs`` (a download folder, or raster paths, one per revisit).

    ``loaded_model`` is a model already loaded with :func:`.session.load_model` (several runs
    on one session); it must be the file ``options.model`` names (unset: the shipped default).
    """
    feedback = Feedback.of(feedback)
    inputs, output = options.inputs, Path(options.output)
    model_path = Path(options.model) if options.model else DEFAULT_MODEL
    if loaded_model is not None and not _same_file(loaded_model.path, model_path):
        raise SatPluginError(f"The loaded model is {loaded_model.path} but the options name {model_path}; "
                             "give the same model to both.")
    # Before any work: an output that would overwrite an input (or the model), that is a
    # folder, or whose folder cannot be written.
    require("Super-resolution", "onnxruntime", "cv2")
    check_output_paths({"OUTPUT": output}, {**input_paths(inputs, "INPUT"), "MODEL": model_path})
    check_writable_folder(output)
    scheduler = parse_scheduler(options.dask_scheduler)
    with input_read_errors(inputs):
        loaded = loaded_model or load_model(model_path, options.provider, feedback)
        contract = loaded.contract
        batch_size = options.batch_size or auto_batch_size(loaded.provider)
        plan = plan_tiles(options, contract, feedback)
        series, layout, margin, overlap = plan.series, plan.layout, plan.layout.margin, plan.layout.overlap
        check_output_paths({"OUTPUT": output}, mask_inputs(series, "INPUT"))  # found beside the images just now
        stack = describe_revisits(series, plan.chosen)
        feedback.log("Revisits fed, in order: " + "; ".join(
            f"{r['datetime'] or 'undated ' + Path(r['path']).name} "
            f"({'?' if r['cloud_percent'] is None else r['cloud_percent']} % cloud)" for r in stack))
        if contract.receptive_field is not None and contract.receptive_field > margin:
            feedback.log(
                f"Warning: the model sees {contract.receptive_field} px around each pixel but OVERLAP {overlap} leaves "
                f"{margin} px of context at tile edges: tiles may differ slightly where they meet. "
                f"Use OVERLAP >= {2 * contract.receptive_field + 1} for tile-exact results.")
        grid = output_grid(series.grid, contract.scale)
        dtype = contract.output_dtype
        nodata = UINT16_NODATA if dtype == "uint16" else FLOAT_NODATA
        writer = OutputRaster(output, grid, len(contract.output_bands), dtype, nodata)
        reader = None
        try:
            reflectance = reflectance_check(contract, options.preserve_reflectance, feedback, plan.coarse_resampling)
            if scheduler is None:
                reader = StripReader(series, plan.chosen, plan.positions, contract, layout)
                seconds = run_tiles(loaded, layout, reader, writer, contract, batch_size, feedback,
                                    reflectance=reflectance)
                provider = loaded.provider_label
            else:
                seconds, provider = _run_on_cluster(scheduler, options, loaded.path, layout, writer, feedback,
                                                    reflectance)
            tags = {
                "SOURCE": "satplugin:superresolve",
                "MODEL": contract.name or loaded.path.stem,
                "MODEL_VERSION": contract.version,
                "MODEL_FILE": loaded.path.name,
                "SCALE": contract.scale,
                "PROVIDER": provider,
                "REVISITS": len(stack),
                "REVISIT_DATES": ",".join(r["datetime"] or "undated" for r in stack),
                "LICENSE": contract.license,
            }
            band_tags = [{"UNITS": u} for u in contract.output_units]
            tags["PRESERVE_REFLECTANCE"] = "yes" if reflectance is not None else "no"
            if reflectance is not None:
                _report_reflectance(reflectance, contract, band_tags, feedback)
            scales = [contract.output_dn_scale] * len(contract.output_bands) if dtype == "uint16" else None
            writer.finish(descriptions=contract.output_bands, units=contract.output_units, tags=tags,
                          band_tags=band_tags, scales=scales)
        except BaseException as exc:
            if not writer.finished:
                writer.abort(exc)
            raise
        finally:
            if reader is not None:
                reader.close()
        feedback.log(f"Wrote {output.name}: {grid.width} x {grid.height} px of {grid.pixel_width:g} m, "
                     f"{len(contract.output_bands)} bands, {layout.count} tiles, provider {provider}.")
        return SuperResolveResult(output, provider, loaded.path.name, contract.scale, grid.width, grid.height,
                                  stack, layout.count, seconds)


@dataclass
class TilePlan:
    """The series, the revisits chosen from it and the tiles over it: what every part of a run shares."""

    series: ImageSeries
    positions: list  # the model's bands in the series
    chosen: list  # the revisits, in the order fed
    layout: TileLayout
    coarse_resampling: str | None = None  # how the reference's coarse bands lie on the grid (reflectance)


def plan_tiles(options: SuperResolveOptions, contract: ModelContract, feedback: Feedback) -> TilePlan:
    # No date is needed to super-resolve: undated rasters are taken in the order given.
    series = open_image_series(options.inputs, feedback=feedback, undated_ok=True)
    positions = contract.band_positions(series.bands, "The input")
    chosen = choose_revisits(series, contract, options.max_cloud, feedback)
    align = contract.block_pixels
    # Reflectance is kept over align x align blocks: tiles must start on them (see tiling).
    tile, overlap = aligned_tiling(options.tile_size, options.overlap, align)
    if (tile, overlap) != (options.tile_size, options.overlap):
        feedback.log(f"The model keeps reflectance over {align} x {align} pixel blocks: using TILE_SIZE {tile} and "
                     f"OVERLAP {overlap} (multiples of {align}) instead of {options.tile_size} and {options.overlap}.")
    margin = context_margin(overlap, contract.receptive_field, align)
    layout = TileLayout(series.grid.height, series.grid.width, tile, overlap, contract.scale, margin, align)
    resampling = coarse_resampling(series, chosen, positions, contract)
    if resampling in ("nearest", "bilinear") and options.preserve_reflectance:
        feedback.log("The coarse bands lie on the grid in whole blocks (nearest neighbour): their block means are "
                     "their native values." if resampling == "nearest" else
                     "The coarse bands were resampled onto the grid (bilinearly, as the download step does): their "
                     "native values are recovered from it for PRESERVE_REFLECTANCE.")
    return TilePlan(series, positions, chosen, layout, resampling)


def _report_reflectance(check: ReflectanceCheck, contract: ModelContract, band_tags: list, feedback: Feedback) -> None:
    corrections = check.mean_abs()
    for j, value in corrections.items():
        band_tags[j]["REFLECTANCE_CORRECTION_MEAN_ABS"] = f"{value:.3e}"
    s = contract.scale
    figures = ", ".join(f"{contract.output_bands[j]} {v:.2e}" for j, v in corrections.items())
    if s > 1:
        what = f"each {s} x {s} block of the output averages to the reference input under it"
    else:
        sides = " or ".join(f"{f} x {f}" for f in sorted({f for f in contract.consistency_factors if f}))
        what = f"each band's {sides} pixel blocks (its native pixels) average to those of its input"
    feedback.log(f"Reflectance preserved: {what} (mean absolute correction: {figures or 'none'})."
                 + (f" The {contract.output_dtype} output holds it to half a DN step "
                    f"({contract.output_dn_scale / 2:g})." if contract.output_dtype == "uint16" else "")
                 + (f" Not corrected (not an input band in reflectance): {', '.join(check.skipped)}." if check.skipped else ""))


def _run_on_cluster(scheduler, options: SuperResolveOptions, model_path: Path, layout: TileLayout, writer,
                    feedback: Feedback, reflectance: ReflectanceCheck | None) -> tuple:
    """Bands of tile rows on the Dask cluster, each into its own part file, appended in order; (seconds, provider)."""
    from ..cluster.tasks import Task, dask_client, run_tasks
    from .band_task import read_part, superresolve_band, tile_rows_per_band

    n = layout.row_starts.size
    output = Path(options.output).absolute()
    # Workers start elsewhere: every path absolute. The parts lie beside the output (the workers must see it).
    job = replace(options, inputs=absolute_inputs(options.inputs), output=str(output),
                  model=os.path.abspath(options.model) if options.model else None, dask_scheduler=None).to_json()
    # The parts of an earlier run that was killed (the output is locked: no run is using them).
    remove_leftovers(output.parent, re.compile(rf"^\.{re.escape(output.name)}\.parts-[0-9a-f]{{8}}$"))
    parts = output.parent / f".{output.name}.parts-{uuid.uuid4().hex[:8]}"
    parts.mkdir()
    model_sha256 = sha256_of(model_path)
    try:
        with dask_client(scheduler, feedback) as client:
            per_band = tile_rows_per_band(n, len(client.scheduler_info()["workers"]))
            tasks = []
            for i, k0 in enumerate(range(0, n, per_band)):
                k1 = min(k0 + per_band, n)
                tasks.append(Task(f"band-{i:05d}", {"job": job, "model_sha256": model_sha256, "tile_rows": [k0, k1],
                                                    "part": str(parts / f"band-{i:05d}.bin")},
                                  f"tile rows {k0 + 1}..{k1} of {n}"))
            # A cancel does not wait for the bands being inferred: their part files go with the folder.
            results, _ = run_tasks(client, superresolve_band, tasks, feedback, wait_after_cancel=False)
        for key in sorted(results):
            for rows in read_part(results[key]):
                feedback.check_canceled()
                writer.append(rows)
            if reflectance is not None:
                reflectance.absorb(results[key]["reflectance"])
    finally:
        shutil.rmtree(parts, ignore_errors=True)
    providers = sorted({r["provider"] for r in results.values()})
    return sum(r["seconds"] for r in results.values()), "+".join(providers)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and a.samefile(b))
    except OSError:
        return False


def first_contributing_row(layout: TileLayout, k0: int) -> int:
    """The first tile row whose output reaches the rows tile row ``k0`` finishes (the tiles overlap)."""
    starts = layout.row_starts
    return int(np.flatnonzero(starts + layout.tile_h > starts[k0])[0])


def run_tiles(loaded: LoadedModel, layout: TileLayout, reader: StripReader, writer, contract: ModelContract,
              batch_size: int, feedback: Feedback, tile_rows: tuple | None = None,
              reflectance: ReflectanceCheck | None = None) -> float:
    """Infer the tiles and stream the blended rows to ``writer``; returns seconds in ONNX Runtime.

    ``tile_rows`` (k0, k1): only the output rows that tile rows k0..k1-1 finish (a band of a
    cluster run). The tile rows before k0 that overlap them are inferred too, in the same
    order as in a whole run, so every pixel sums the same tiles in the same order: the band
    is bit for bit the same rows as a whole run writes. ``reflectance``: corrects each finished
    row of blocks so that it degrades back to the reference input (:mod:`.reflectance`).
    """
    import time

    s, m = contract.scale, layout.margin
    height, width = layout.height, layout.width
    th, tw = layout.tile_h, layout.tile_w
    row_starts, col_starts = layout.row_starts, layout.col_starts
    k0, k1 = tile_rows or (0, row_starts.size)
    j0 = first_contributing_row(layout, k0)
    wy, wx = layout.row_weights(), layout.col_weights()
    bands_out = len(contract.output_bands)
    padded_w = layout.padded_width * s
    acc = np.zeros((bands_out, th * s, padded_w), dtype=np.float32)
    done, total = 0, (k1 - j0) * col_starts.size
    infer_seconds = 0.0
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="superres-read")
    try:
        pending = pool.submit(reader.read, int(row_starts[j0]), th)
        for k in range(j0, k1):
            r0 = row_starts[k]
            strip = pending.result()
            if k + 1 < k1:
                pending = pool.submit(reader.read, int(row_starts[k + 1]), th)
            tiles = [strip.values[..., int(c0):int(c0) + tw] for c0 in col_starts]
            for b0 in range(0, len(tiles), batch_size):
                feedback.check_canceled()
                batch = np.stack(tiles[b0:b0 + batch_size])
                if not contract.multi_frame:
                    batch = batch[:, 0]
                t0 = time.perf_counter()
                out = loaded.session.run(None, {loaded.input_name: batch})[0]
                infer_seconds += time.perf_counter() - t0
                _check_output(out, batch.shape[0], bands_out, th * s, tw * s)
                for j, tile_out in enumerate(out, start=b0):
                    c = int(col_starts[j]) * s
                    np.multiply(tile_out, np.outer(wy[k], wx[j])[None], out=tile_out)
                    acc[:, :, c:c + tw * s] += tile_out
                done += batch.shape[0]
                feedback.set_progress(done / total)
            last = k + 1 == row_starts.size
            final = th * s if last else (int(row_starts[k + 1]) - int(r0)) * s
            if k >= k0:
                if reflectance is not None:
                    # The raster's rows and columns relative to these padded input rows.
                    inside = (m - int(r0), m + height - int(r0), m, m + width)
                    extended = None
                    if reflectance.context:  # rows of context around these, for bilinear coarse bands
                        extended = reader.read(int(r0) - reflectance.context,
                                               final // s + 2 * reflectance.context).values[0]
                    reflectance.apply(acc[:, :final], strip.values[0, :, :final // s], strip.valid[:final // s], inside,
                                      extended)
                # Input validity at output resolution, for the rows this strip covers (None: all valid).
                valid = None if strip.valid.all() else np.repeat(np.repeat(strip.valid, s, axis=0), s, axis=1)
                _emit(writer, contract, acc[:, :final], None if valid is None else valid[:final], int(r0) * s, m * s,
                      height * s, width * s)
            acc[:, : th * s - final] = acc[:, final:]
            acc[:, th * s - final:] = 0.0
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return infer_seconds


def _emit(writer, contract: ModelContract, rows: np.ndarray, valid, top: int,
          margin: int, height: int, width: int) -> None:
    """Crop the padding off finished rows (padded output coordinates from ``top``) and write them."""
    a = max(top, margin)
    b = min(top + rows.shape[1], margin + height)
    if b <= a:
        return
    data = rows[:, a - top:b - top, margin:margin + width]
    ok = None if valid is None else valid[a - top:b - top, margin:margin + width][None]
    if contract.output_dtype == "uint16":
        # Valid pixels keep at least DN 1 so that they never read as no data (0).
        dn = np.clip(np.rint(data / contract.output_dn_scale), 1, np.iinfo(np.uint16).max)
        writer.append((dn if ok is None else np.where(ok, dn, UINT16_NODATA)).astype(np.uint16))
    else:
        writer.append(data if ok is None else np.where(ok, data, np.float32(FLOAT_NODATA)))


def _check_output(out: np.ndarray, batch: int, bands: int, height: int, width: int) -> None:
    if out.shape != (batch, bands, height, width):
        raise SatPluginError(
            f"The model returned an array of shape {tuple(out.shape)} for {batch} tiles; its contract "
            f"promises ({batch}, {bands}, {height}, {width}) (scale and output_bands do not fit what it computes).")
