#!/usr/bin/env python3
"""Benchmark: export throughput and peak memory against a plain ``np.save`` of the same bytes.

For each ``--size`` a synthetic series (``tests/fixtures/synthetic_series.py``, seed 0: size x size
px, 4 bands, one date every 5 days, zstd-compressed 512 px tiles like the download step's
COGs, an SCL mask per date) and a uint8 class raster are written once. Then, for each date
count and format, one child process runs the export (``run(ExportOptions(...))``, patch
``--patch`` px, stride = patch, default filters), records its peak RSS and the disk the dataset takes, deletes it,
and right after, in the same process, runs ``np.save`` of arrays with the same shapes and
bytes as the exported images and labels, one ``.npy`` per sample in the same folder tree:
the floor for writing those bytes from Python. The same child then decodes every input
raster once, whole ("read inputs"): with np.save, the floor for any exporter that has to
read compressed inputs.

The parent process imports only the standard library (the series is generated in a
child too), so each child's ``ru_maxrss`` is its own. "peak RSS" is the child's
``ru_maxrss`` read right after the export returns, so it is the export's own peak (the
np.save and whole-raster reads after it, which hold one full date in memory, do not count);
"growth" subtracts the peak of a child that only imports the same modules.

Both timed phases start after ``os.sync()``, so neither pays for flushing the other's (or an
earlier run's) writes; each run's files are deleted afterwards. Prints a Markdown table;
asserts nothing.

Usage:  .venv/bin/python benchmarks/bench_export.py [--size 1024] [--dates 5,20,50] [--formats-at 20]
        .venv/bin/python benchmarks/bench_export.py --size 2048,4096 --dates 5,20,50 --formats-at 0
                                                           # memory plateau: npz only, two areas
        .venv/bin/python benchmarks/bench_export.py --full-tile  # 10980 x 10980 px, 20 dates, npz
        .venv/bin/python benchmarks/bench_export.py --tiny      # 256 px, 2 and 4 dates: a few seconds
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from child_process import run_child

REPO_ROOT = Path(__file__).resolve().parent.parent
# The plugin imports as the package `satplugin`, as in QGIS and the tests.
sys.path.insert(0, str(REPO_ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()

BANDS = ("B02", "B03", "B04", "B08")


def _prepare(folder: Path, size: int, n_dates: int) -> dict:
    from datetime import datetime, timezone

    import numpy as np
    import rasterio

    from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder
    from satplugin.qgis_satplugin.core.grid import PixelGrid

    grid = PixelGrid.square("EPSG:32633", 499980.0, 5000040.0, 10.0, size, size)
    dates = date_series(datetime(2023, 3, 1, 10, 0, tzinfo=timezone.utc), n_dates, every_days=5)
    src = write_download_folder(folder / "series", grid, dates, bands=BANDS, seed=0, block=512)
    classes = (np.add.outer(np.arange(size) // 40, np.arange(size) // 40) % 6).astype(np.uint8)
    with rasterio.open(folder / "class.tif", "w", driver="GTiff", width=size, height=size, count=1, dtype="uint8",
                       crs=grid.pyproj_crs().to_wkt(), transform=grid.transform, nodata=255, compress="zstd",
                       tiled=True, blockxsize=512, blockysize=512) as ds:
        ds.write(classes, 1)
    images = sorted(str(p) for p in src.glob("*.tif") if not p.stem.endswith("_SCL"))
    return {"images": images, "class": str(folder / "class.tif")}


def _disk_bytes(folder: Path) -> int:
    """Bytes the tree takes on disk (allocated blocks, as ``du``)."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def _child(spec: dict) -> dict:
    """Runs in the child process: one export, then np.save of the same bytes."""
    if "prepare" in spec:
        return _prepare(Path(spec["prepare"]), spec["size"], spec["dates"])
    import resource

    import numpy as np
    import pyogrio.raw  # noqa: F401  (the index writer's import, paid once per QGIS session: before the clock)

    from satplugin.qgis_satplugin.core.export import ExportOptions, run

    if spec.get("imports_only"):
        return {}
    out = Path(spec["out"])
    os.sync()  # start each timed phase without earlier runs' dirty pages being flushed under it
    t0 = time.perf_counter()
    res = run(ExportOptions(spec["images"][: spec["dates"]], out, labels={"class": spec["class"]}, patch_size=spec["patch"],
                            format=spec["format"]))
    export_s = time.perf_counter() - t0
    export_peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # the export's peak: nothing else ran yet
    import csv

    with open(out / "samples.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    disk = _disk_bytes(out)
    shutil.rmtree(out)  # before np.save, so the disk holds one copy of the payload at a time
    p, c = spec["patch"], len(BANDS)
    payload = sum(int(r["n_dates"]) * c * p * p * 2 + p * p for r in rows)
    # The same bytes through np.save: one image array and one label array per sample.
    base = out.parent / (out.name + "-npsave")
    buffers = {}
    os.sync()
    t0 = time.perf_counter()
    for r in rows:
        t = int(r["n_dates"])
        if t not in buffers:
            buffers[t] = np.ones((t, c, p, p), dtype=np.uint16)
        folder = base / r["split"]
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{r['sample_id']}.npy", buffers[t])
        np.save(folder / f"{r['sample_id']}_label.npy", np.zeros((p, p), dtype=np.uint8))
    npsave_s = time.perf_counter() - t0
    shutil.rmtree(base)
    # The input side's floor: every date's raster (and mask) decoded once, whole.
    import rasterio

    t0 = time.perf_counter()
    for path in spec["images"][: spec["dates"]]:
        for name in (path, path[: -len(".tif")] + "_SCL.tif"):
            with rasterio.open(name) as ds:
                ds.read()
    read_s = time.perf_counter() - t0
    return {"samples": res.n_samples, "payload": payload, "disk": disk, "export_s": export_s, "npsave_s": npsave_s,
            "read_s": read_s, "export_peak_mib": export_peak_kib / 1024.0}


def _run_child(spec: dict) -> tuple[dict, float]:
    return run_child(__file__, spec)


def _input_bytes(inputs: dict, n_dates: int) -> int:
    return sum(os.path.getsize(p) + os.path.getsize(p[: -len(".tif")] + "_SCL.tif") for p in inputs["images"][:n_dates])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1024", help="grid side in px; several, comma-separated, run one after the other")
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--dates", default="5,20,50")
    parser.add_argument("--formats-at", type=int, default=20,
                        help="date count at which zarr, geotiff and deepsatdata also run (0: npz only)")
    parser.add_argument("--tiny", action="store_true", help="256 px, 2 and 4 dates")
    parser.add_argument("--full-tile", action="store_true", help="10980 x 10980 px, 20 dates, npz only")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    if args.tiny:
        args.size, args.dates, args.formats_at = "256", "2,4", 4
    if args.full_tile:
        args.size, args.dates, args.formats_at = "10980", "20", 0
    sizes = [int(v) for v in args.size.split(",")]
    counts = [int(v) for v in args.dates.split(",")]
    print(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    _, base_rss = _run_child({"imports_only": True})
    header = ("| px | dates | format | samples | payload MB | disk MB | export s | samples/s | MB/s | np.save MB/s | "
              "export / np.save | read inputs s | export / (read + np.save) | peak RSS MB | growth MB |")
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="bench-export-") as tmp:
            tmp = Path(tmp)
            t0 = time.perf_counter()
            inputs, _ = _run_child({"prepare": str(tmp), "size": size, "dates": max(counts)})
            print(f"\nsynthetic series: {size} x {size} px, {len(BANDS)} bands, {max(counts)} dates, "
                  f"{_input_bytes(inputs, max(counts)) / 1e6:,.0f} MB of GeoTIFFs with masks "
                  f"(written in {time.perf_counter() - t0:.1f} s); patch {args.patch} px, stride {args.patch}\n")
            print(header)
            print("|" + "---|" * header.count(" | ") + "---|")
            runs = [(n, "npz") for n in counts]
            if args.formats_at:
                runs += [(args.formats_at, f) for f in ("zarr", "geotiff", "deepsatdata")]
            for n, fmt in runs:
                spec = {**inputs, "dates": n, "format": fmt, "patch": args.patch, "out": str(tmp / f"out-{fmt}-{n}")}
                r, _ = _run_child(spec)
                mb, rss = r["payload"] / 1e6, r["export_peak_mib"]
                print(f"| {size} | {n} | {fmt} | {r['samples']} | {mb:,.1f} | {r['disk'] / 1e6:,.0f} | {r['export_s']:.2f} | "
                      f"{r['samples'] / r['export_s']:.0f} | {mb / r['export_s']:.0f} | {mb / r['npsave_s']:.0f} | "
                      f"{r['export_s'] / r['npsave_s']:.1f} x | {r['read_s']:.2f} | "
                      f"{r['export_s'] / (r['read_s'] + r['npsave_s']):.1f} x | {rss:.0f} | {rss - base_rss:.0f} |",
                      flush=True)
    print(f"\nbaseline peak RSS of a child that only imports the modules: {base_rss:.0f} MB")


if __name__ == "__main__":
    main()
