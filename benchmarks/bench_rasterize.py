#!/usr/bin/env python3
"""Benchmark: our ground-truth rasterizer against gdal_rasterize and a per-pixel shapely loop.

Prints figures (a Markdown table), asserts nothing. All contenders work on the same
synthetic parcels (``tests/fixtures/synthetic_parcels.py``, fixed seed) and the same Sentinel-2-like grid
(UTM 33N, 10 m, origin 399960 E / 5100000 N; ``--size 10980`` is a full tile).

Each contender runs in its own child process, so its peak memory is measured cleanly
(``os.wait4`` returns the rusage of that one child):

* ours, all outputs   class, parcel id, coverage, conflict, distance rasters + class table
* ours, class only    the class raster alone
* gdal_rasterize      the Debian CLI, a plain burn of the ``class`` field (pixel-centre rule),
                      whole command time, from a GeoPackage written beforehand (not timed)
* per-pixel loop      DeepSatData-style: for each parcel, for each pixel of its bounding box
                      (plus 2 pixels), ``parcel.intersection(pixel_polygon).area`` in pure
                      Python; run on a contiguous block of ``--sample`` parcels and
                      extrapolated per parcel; ours is timed on that same block and a grid
                      that just covers it, for a like-for-like per-parcel ratio.
* through qgis_process the user's path: the plugin's zip in a fresh profile of a stock QGIS,
                      the engine installed from the wheelhouse (untimed), then the ground truth
                      with all outputs from the GeoPackage, whole and phase by phase (qgis_process
                      start-up, the engine's interpreter, and the engine's own read, prepare,
                      burn and write times from its log), the engine reading the file and QGIS
                      reading the features (a FILTER); skipped with --no-qgis.

Usage:  .venv/bin/python benchmarks/bench_rasterize.py [--parcels 100000] [--size 10980] [--sample 200] [--no-qgis]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import pickle
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The plugin imports as the package `satplugin`, as in QGIS and the tests.
sys.path.insert(0, str(REPO_ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()

CRS = "EPSG:32633"
X_MIN, Y_MAX, PIXEL = 399960.0, 5100000.0, 10.0
SEED = 0


def _grid(size):
    from satplugin.qgis_satplugin.core.grid import PixelGrid

    return PixelGrid.square(CRS, X_MIN, Y_MAX, PIXEL, size, size)


def _maxrss_bytes(usage) -> int:
    # Linux reports ru_maxrss in KiB, macOS in bytes.
    return int(usage.ru_maxrss) * (1 if sys.platform == "darwin" else 1024)


def _self_maxrss() -> int:
    import resource

    return _maxrss_bytes(resource.getrusage(resource.RUSAGE_SELF))


def _load(data_path):
    import shapely

    with open(data_path, "rb") as f:
        data = pickle.load(f)
    return shapely.from_wkb(data["wkb"]), data["classes"], data["ids"]


# --------------------------------------------------------------------------- workers
# Each worker prints one JSON line (the last line of its stdout) for the parent.


def _worker_ours(args):
    from satplugin.qgis_satplugin.core.ground_truth import GroundTruthOptions, OutputPaths, run, warm_up
    from satplugin.qgis_satplugin.core.grid import PixelGrid

    # Untimed: the engine's warm-up (tiny runs), which imports rasterio and loads the compiled
    # kernels from numba's cache. The engine does that in every run (see the runs through
    # qgis_process); in QGIS's own process it is paid once per session.
    warm_up()
    polys, classes, ids = _load(args.data)
    if args.select:
        import numpy as np

        pick = np.load(args.select)
        polys, classes, ids = polys[pick], classes[pick], ids[pick]
    if args.grid_json:
        g = json.loads(args.grid_json)
        grid = PixelGrid.square(CRS, g["x_min"], g["y_max"], PIXEL, g["width"], g["height"])
    else:
        grid = _grid(args.size)
    out = Path(args.out_dir)
    if args.worker == "ours-class":
        paths = OutputPaths(class_raster=out / "class.tif")
    else:
        paths = OutputPaths(
            class_raster=out / "class.tif",
            id_raster=out / "id.tif",
            coverage_raster=out / "coverage.tif",
            conflict_raster=out / "conflict.tif",
            distance_raster=out / "distance.tif",
            class_table=out / "classes.json",
        )
    # The job spec holds the polygons as WKB hex, as the QGIS algorithm gives them: encoding
    # them is the caller's, untimed; decoding and checking them are the engine's, timed.
    import shapely

    wkb_list, class_list, id_list = tuple(shapely.to_wkb(polys, hex=True).tolist()), tuple(classes.tolist()), tuple(ids.tolist())
    rss0 = _self_maxrss()
    t0 = time.perf_counter()
    res = run(GroundTruthOptions(polygons=wkb_list, class_values=class_list, source_crs=CRS, grid=grid, outputs=paths,
                                 parcel_ids=id_list))
    seconds = time.perf_counter() - t0
    rss1 = _self_maxrss()
    return {
        "seconds": seconds,
        "rss_growth": max(0, rss1 - rss0),
        "labelled": res.labelled_pixels,
        "n_rasterized": res.n_rasterized,
        "conflicts": res.conflict_pixels,
    }


def _worker_loop(args):
    """DeepSatData-style labels: one shapely intersection per pixel, in a Python loop."""
    import numpy as np
    from shapely import geometry

    polys, _, _ = _load(args.data)
    pick = np.load(args.select)
    res = PIXEL
    labelled = 0
    rss0 = _self_maxrss()
    t0 = time.perf_counter()
    for parcel in polys[pick]:
        pxmin, pymin, pxmax, pymax = parcel.bounds
        # The baseline's window: the parcel's pixel bounding box plus 2 pixels each side.
        col0 = int(math.floor((pxmin - X_MIN) / res)) - 2
        col1 = int(math.ceil((pxmax - X_MIN) / res)) + 2
        row0 = int(math.floor((Y_MAX - pymax) / res)) - 2
        row1 = int(math.ceil((Y_MAX - pymin) / res)) + 2
        ratios = np.zeros((row1 - row0, col1 - col0), dtype=np.float32)
        for i in range(row1 - row0):
            for j in range(col1 - col0):
                x0 = X_MIN + (col0 + j) * res
                y1 = Y_MAX - (row0 + i) * res
                pix_points = [[x0, y1], [x0 + res, y1], [x0 + res, y1 - res], [x0, y1 - res], [x0, y1]]
                pix_poly = geometry.Polygon(pix_points)
                value = parcel.intersection(pix_poly).area / res**2
                if value == 0:
                    continue
                ratios[i, j] = value
        labelled += int((ratios >= 0.5).sum())
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "rss_growth": max(0, _self_maxrss() - rss0), "labelled": labelled}


WORKERS = {"ours-all": _worker_ours, "ours-class": _worker_ours, "ours-sample": _worker_ours, "loop": _worker_loop}


# --------------------------------------------------------------------------- parent


# A small stdlib-only process that starts every contender. Linux carries the parent's
# peak RSS into a child's ru_maxrss across fork/vfork + exec, so children started from
# this (by then large) process would all report its peak; from the spawner, which stays
# at ~10 MiB, each child's peak RSS is its own.
_SPAWNER = r"""
import json, os, subprocess, sys, tempfile, time
for line in sys.stdin:
    job = json.loads(line)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(job["cmd"], stdout=out, stderr=err, text=True, env=job["env"], cwd=job["cwd"])
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        reply = {"seconds": seconds, "maxrss": usage.ru_maxrss, "rc": proc.returncode,
                 "stdout": out.read(), "stderr": err.read()[-4000:]}
    sys.stdout.write(json.dumps(reply) + "\n")
    sys.stdout.flush()
"""


class Spawner:
    def __init__(self):
        self.proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _SPAWNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )

    def run(self, cmd, env=None, cwd=None):
        """Run ``cmd``; return (seconds, peak RSS of the child or of its largest descendant in bytes, stdout)."""
        job = {"cmd": [str(c) for c in cmd], "env": env, "cwd": None if cwd is None else str(cwd)}
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        if reply["rc"] != 0:
            raise RuntimeError(
                f"{shlex.join(map(str, cmd))} failed ({reply['rc']}):\n{reply['stdout'][-2000:]}\n{reply['stderr']}"
            )
        rss = reply["maxrss"] * (1 if sys.platform == "darwin" else 1024)
        return reply["seconds"], rss, reply["stdout"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


def _run_worker(spawner, name, args, data, out_dir, **extra):
    out_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--data", str(data), "--size", str(args.size)]
    cmd += ["--out-dir", str(out_dir)]
    for key, value in extra.items():
        cmd += [f"--{key.replace('_', '-')}", str(value)]
    wall, peak, stdout = spawner.run(cmd)
    result = json.loads(stdout.strip().splitlines()[-1])
    result["process_peak"] = peak
    result["wall"] = wall
    return result


def _sample_block(n_parcels, sample):
    """Indices of a contiguous, roughly square block of ``sample`` parcels at the lattice centre."""
    import numpy as np

    per_side = int(np.ceil(np.sqrt(n_parcels)))
    k = int(np.ceil(np.sqrt(sample)))
    r0 = max(0, (n_parcels // per_side) // 2 - k // 2)
    c0 = max(0, per_side // 2 - k // 2)
    picked = [r * per_side + c for r in range(r0, r0 + k + 1) for c in range(c0, min(c0 + k, per_side))]
    picked = [i for i in picked if i < n_parcels][:sample]
    if len(picked) < sample:  # tiny layers: fall back to the first parcels
        picked = list(range(min(sample, n_parcels)))
    return np.asarray(picked, dtype=np.int64)


def _grid_covering(polys, full_grid):
    """The part of ``full_grid`` (same pixel lattice) that covers ``polys``."""
    import shapely

    x0, y0, x1, y1 = shapely.total_bounds(polys)
    c0 = max(0, int(math.floor((x0 - full_grid.x_min) / PIXEL)) - 1)
    c1 = min(full_grid.width, int(math.ceil((x1 - full_grid.x_min) / PIXEL)) + 1)
    r0 = max(0, int(math.floor((full_grid.y_max - y1) / PIXEL)) - 1)
    r1 = min(full_grid.height, int(math.ceil((full_grid.y_max - y0) / PIXEL)) + 1)
    return {"x_min": full_grid.x_min + c0 * PIXEL, "y_max": full_grid.y_max - r0 * PIXEL, "width": c1 - c0, "height": r1 - r0}


def _mib(n_bytes):
    return f"{n_bytes / 2**20:,.0f} MiB"


def _ratio(a, b):
    return f"{a / b:,.2f}x" if b > 0 else "n/a"


def _fmt_s(seconds):
    return f"{seconds:,.2f} s" if seconds < 1000 else f"{seconds:,.0f} s ({seconds / 3600:,.1f} h)"


PHASE_LINE = re.compile(r"Seconds: read ([0-9.]+), prepare ([0-9.]+), burn ([0-9.]+), write ([0-9.]+)\.")


def _through_qgis(spawner, work: Path, gpkg: Path, grid):
    """The user's path: the zip in a fresh profile of a stock QGIS, the engine installed from the
    wheelhouse (untimed), then ``qgis_process run`` of the ground truth with all outputs, timed
    whole and phase by phase. Returns None (and says why) where there is no stock QGIS."""
    from tests.stock_qgis import QGIS_PROCESS, WHEELHOUSE, StockQgis

    if not QGIS_PROCESS.is_file() or not (WHEELHOUSE / ".stamp").is_file():
        print(f"Skipping the run through qgis_process: {QGIS_PROCESS} or {WHEELHOUSE} (make setup) is missing.")
        return None
    print("Setting up: the zip in a fresh profile, the engine from the wheelhouse (not timed) ...", flush=True)
    stock = StockQgis(work / "stock")
    stock.install_engine()
    out = work / "through-qgis"
    out.mkdir(exist_ok=True)
    x0, y0, x1, y1 = grid.bounds
    run = [QGIS_PROCESS, "run", "satplugin:rasterizegroundtruth", "--", f"INPUT={gpkg}", "CLASS_FIELD=class",
           "ID_FIELD=parcel_id", f"EXTENT={x0!r},{x1!r},{y0!r},{y1!r} [{CRS}]", f"TARGET_CRS={CRS}", f"PIXEL_SIZE={PIXEL:g}",
           *(f"OUTPUT_{name.upper()}={out / (name + '.tif')}" for name in ("class", "id", "coverage", "conflict", "distance")),
           f"OUTPUT_CLASS_TABLE={out / 'classes.csv'}"]

    def timed(cmd):
        return spawner.run(cmd, env=stock.env, cwd=stock.folder)

    print("Running: through qgis_process, the first run after installing ...", flush=True)
    first, _, _ = timed(run)
    startup, _, _ = timed([QGIS_PROCESS, "help", "satplugin:rasterizegroundtruth"])
    interpreter, _, _ = timed([stock.engine_python, "-m", "satplugin_engine", "version"])
    rows = {}
    for label, extra in (("the engine reads the GeoPackage", []), ("QGIS reads the features (FILTER)", ["FILTER=1 = 1"])):
        print(f"Running: through qgis_process, {label} ...", flush=True)
        wall, peak, stdout = timed(run + extra)
        phases = dict(zip(("read", "prepare", "burn", "write"), map(float, PHASE_LINE.search(stdout).groups())))
        rows[label] = {"wall": wall, "peak": peak, **phases}
    return {"first": first, "startup": startup, "interpreter": interpreter, "rows": rows}


def _print_through_qgis(qgis, t_gdal):
    print()
    print("Through qgis_process (a stock QGIS, the plugin's zip, its managed engine; all outputs):")
    print()
    print("| Phase | the engine reads the GeoPackage | QGIS reads the features (FILTER) |")
    print("|---|---|---|")
    rows = list(qgis["rows"].values())
    startup, interpreter = qgis["startup"], qgis["interpreter"]

    def line(label, values):
        print(f"| {label} | " + " | ".join(values) + " |")

    line("qgis_process start-up (`help`, measured apart)", [_fmt_s(startup)] * 2)
    line("engine interpreter start (`python -m satplugin_engine version`, apart)", [_fmt_s(interpreter)] * 2)
    line("engine: read the polygons (the transfer, for a file)", [_fmt_s(r["read"]) for r in rows])
    line("engine: prepare (decode, repair, reproject, clip, edges)", [_fmt_s(r["prepare"]) for r in rows])
    line("engine: burn, writing behind", [_fmt_s(r["burn"]) for r in rows])
    line("engine: last writes, checks, publish", [_fmt_s(r["write"]) for r in rows])
    line("the rest: QGIS reading parameters (and features), the job, engine imports", [
        _fmt_s(r["wall"] - startup - interpreter - r["read"] - r["prepare"] - r["burn"] - r["write"]) for r in rows])
    line("**whole run**", [f"**{_fmt_s(r['wall'])}**" for r in rows])
    line("work: whole run − qgis_process start-up", [_fmt_s(r["wall"] - startup) for r in rows])
    line("gdal_rasterize (ZSTD, above)", [_fmt_s(t_gdal)] * 2)
    line("**ratio work / gdal_rasterize**", [f"**{_ratio(r['wall'] - startup, t_gdal)}**" for r in rows])
    line("peak RSS (the largest process: QGIS or the engine)", [_mib(r["peak"]) for r in rows])
    print()
    print(f"The first run after installing the engine took {_fmt_s(qgis['first'])} (the installer compiled the kernels).")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parcels", type=int, default=100_000, help="number of synthetic parcels (default 100000)")
    parser.add_argument("--size", type=int, default=10980, help="grid width = height in 10 m pixels (default 10980, a full tile)")
    parser.add_argument("--sample", type=int, default=200, help="parcels for the per-pixel shapely loop (default 200)")
    parser.add_argument("--seed", type=int, default=SEED, help="synthetic parcel seed (default 0)")
    parser.add_argument("--keep", metavar="DIR", help="keep the GeoPackage and rasters in DIR (default: a temporary folder)")
    parser.add_argument("--no-qgis", action="store_true", help="skip the runs through qgis_process and the managed engine")
    # Internal: child-process roles.
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out-dir", help=argparse.SUPPRESS)
    parser.add_argument("--select", help=argparse.SUPPRESS)
    parser.add_argument("--grid-json", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0
    if args.parcels < 1 or args.size < 1 or args.sample < 1:
        parser.error("--parcels, --size and --sample must be positive")

    # Started first, while this process is still small (see Spawner).
    spawner = Spawner()
    try:
        if args.keep:
            Path(args.keep).mkdir(parents=True, exist_ok=True)
            return _bench(args, Path(args.keep), spawner)
        with tempfile.TemporaryDirectory(prefix="satplugin-bench-") as tmp:
            return _bench(args, Path(tmp), spawner)
    finally:
        spawner.close()


def _bench(args, work: Path, spawner):
    import numpy as np
    import shapely

    from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels

    command = shlex.join([sys.executable, *sys.argv])
    print(f"Command: {command}")
    gdal_version = subprocess.run(["gdal_rasterize", "--version"], capture_output=True, text=True).stdout.strip()
    print(
        f"Machine: {platform.machine()}, {os.cpu_count()} CPUs; Python {platform.python_version()}, "
        f"numpy {np.__version__}, shapely {shapely.__version__}; {gdal_version}"
    )
    grid = _grid(args.size)

    t0 = time.perf_counter()
    polys, classes, ids = synthetic_parcels(grid.bounds, args.parcels, seed=args.seed)
    t_gen = time.perf_counter() - t0
    data = work / "parcels.pkl"
    with open(data, "wb") as f:
        pickle.dump({"wkb": shapely.to_wkb(polys), "classes": classes, "ids": ids}, f, protocol=pickle.HIGHEST_PROTOCOL)

    import geopandas as gpd

    gpkg = work / "parcels.gpkg"
    t0 = time.perf_counter()
    frame = gpd.GeoDataFrame(
        {"class": classes.astype(np.int32), "parcel_id": ids.astype(np.int32)}, geometry=list(polys), crs=CRS
    )
    frame.to_file(gpkg, layer="parcels", driver="GPKG", engine="pyogrio")
    t_gpkg = time.perf_counter() - t0
    print(
        f"Parcels: {args.parcels:,} (seed {args.seed}), generated in {t_gen:.2f} s, "
        f"written to GeoPackage in {t_gpkg:.2f} s (not counted below)"
    )

    print("Running: ours, all outputs ...", flush=True)
    ours_all = _run_worker(spawner, "ours-all", args, data, work / "ours-all")
    print("Running: ours, class only ...", flush=True)
    ours_class = _run_worker(spawner, "ours-class", args, data, work / "ours-class")

    gdal_out = work / "gdal" / "class.tif"
    gdal_out.parent.mkdir(parents=True, exist_ok=True)
    gdal_cmd = [
        "gdal_rasterize", "-q", "-l", "parcels", "-a", "class",
        "-te", *(repr(v) for v in grid.bounds), "-tr", repr(PIXEL), repr(PIXEL),
        # The file written as ours are (PixelGrid.geotiff_profile + the ground truth writer):
        # ZSTD level 1, 256 x 256 tiles, one compression thread.
        "-ot", "Byte", "-init", "0", "-co", "COMPRESS=ZSTD", "-co", "ZSTD_LEVEL=1", "-co", "TILED=YES",
        "-co", "BLOCKXSIZE=256", "-co", "BLOCKYSIZE=256", "-co", "NUM_THREADS=1",
        str(gpkg), str(gdal_out),
    ]  # fmt: skip
    print("Running: gdal_rasterize ...", flush=True)
    t_gdal, gdal_peak, _ = spawner.run(gdal_cmd)

    qgis = None if args.no_qgis else _through_qgis(spawner, work, gpkg, grid)

    import rasterio

    gdal_nonzero = 0
    with rasterio.open(gdal_out) as ds:
        assert (ds.width, ds.height) == (grid.width, grid.height), "gdal_rasterize made another grid"
        for _, window in ds.block_windows(1):
            gdal_nonzero += int(np.count_nonzero(ds.read(1, window=window)))

    pick = _sample_block(args.parcels, args.sample)
    select = work / "sample.npy"
    np.save(select, pick)
    sample_grid = _grid_covering(polys[pick], grid)
    print(f"Running: per-pixel shapely loop on {len(pick)} parcels ...", flush=True)
    loop = _run_worker(spawner, "loop", args, data, work / "loop", select=select)
    print("Running: ours on the same sample ...", flush=True)
    ours_sample = _run_worker(
        spawner, "ours-sample", args, data, work / "ours-sample", select=select, grid_json=json.dumps(sample_grid)
    )

    n_sample = len(pick)
    loop_per_parcel = loop["seconds"] / n_sample
    loop_total = loop_per_parcel * args.parcels
    ours_per_parcel = ours_sample["seconds"] / n_sample
    pixels = f"{grid.width:,} x {grid.height:,} px at {PIXEL:g} m"

    print()
    print(f"gdal_rasterize command: {shlex.join(gdal_cmd)}")
    print()
    print("| Measure | Value |")
    print("|---|---|")
    print(f"| Parcels | {args.parcels:,} |")
    print(f"| Grid | {pixels} ({CRS}) |")
    print(f"| Ours, all outputs (class, id, coverage, conflict, distance, class table) | {_fmt_s(ours_all['seconds'])} (peak RSS +{_mib(ours_all['rss_growth'])}, process {_mib(ours_all['process_peak'])}) |")
    print(f"| Ours, class only | {_fmt_s(ours_class['seconds'])} (peak RSS +{_mib(ours_class['rss_growth'])}, process {_mib(ours_class['process_peak'])}) |")
    print(f"| gdal_rasterize, class burn (whole command) | {_fmt_s(t_gdal)} (process peak RSS {_mib(gdal_peak)}) |")
    print(f"| Ratio ours (all outputs) / gdal_rasterize | {_ratio(ours_all['seconds'], t_gdal)} |")
    print(f"| Ratio ours (class only) / gdal_rasterize | {_ratio(ours_class['seconds'], t_gdal)} |")
    print(f"| DeepSatData-style per-pixel loop, s/parcel (sample of {n_sample}) | {loop_per_parcel:.4f} s |")
    print(f"| DeepSatData-style loop, extrapolated to {args.parcels:,} parcels | {_fmt_s(loop_total)} |")
    print(f"| Ratio DeepSatData-style (extrapolated) / ours (all outputs, full grid) | {_ratio(loop_total, ours_all['seconds'])} |")
    print(f"| Ours on the same {n_sample} parcels ({sample_grid['width']} x {sample_grid['height']} px grid), all outputs, s/parcel | {ours_per_parcel:.5f} s |")
    print(f"| Ratio DeepSatData-style / ours, per parcel on the same sample | {_ratio(loop_per_parcel, ours_per_parcel)} |")
    print()
    print("Sanity (no assertion; the rules differ: ours labels a pixel whose best share is >= 0.5,")
    print("gdal_rasterize burns pixels whose centre lies inside, the last polygon drawn winning overlaps):")
    print(f"  labelled pixels, ours (all outputs): {ours_all['labelled']:,}; ours (class only): {ours_class['labelled']:,}")
    print(f"  non-zero pixels, gdal_rasterize:     {gdal_nonzero:,} ({_ratio(ours_all['labelled'], gdal_nonzero)} of it)")
    print(f"  sample: pixels with share >= 0.5, per-pixel loop (overlaps counted twice): {loop['labelled']:,}; ours: {ours_sample['labelled']:,}")
    print(f"  conflict pixels, ours: {ours_all['conflicts']}")
    if qgis:
        _print_through_qgis(qgis, t_gdal)
    return 0


if __name__ == "__main__":
    sys.exit(main())
