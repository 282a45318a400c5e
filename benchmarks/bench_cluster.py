#!/usr/bin/env python3
"""Benchmark: the export on Dask (``dask_scheduler``) against the single-process export, same data, same run.

The series is ``bench_export.py``'s (synthetic, 4 bands, zstd 512 px tiles, an SCL mask per
date, a class raster), written once. Then, in this process, one npz export per mode: no
scheduler (the engine process's reader + writer threads), ``local:1`` and ``local:2``
(a ``LocalCluster`` of one-thread worker processes, started for the run: its start-up is in
the time, and measured on its own too). Every mode's files are checked to be the same
bytes as the single-process export's. Then the same for super-resolution with the shipped
default model (``--sr-size`` px, 4 revisits; bands of 8 tile rows are the tasks; the
single-process run's ONNX Runtime uses every core, each worker one thread). Last, the
scheduling overhead: 400 tasks that do nothing (``len`` of their payload) through
``run_tasks`` on ``local:2``, per task.

Prints a Markdown table; asserts nothing but the equal bytes.

Usage:  .venv/bin/python benchmarks/bench_cluster.py [--size 2048] [--dates 10] [--patch 64] [--sr-size 1024]
"""
from __future__ import annotations

import argparse
import hashlib
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from bench_export import _prepare  # the same synthetic series as the export benchmark

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()


def _checksums(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--dates", type=int, default=10)
    parser.add_argument("--patch", type=int, default=64)
    parser.add_argument("--overhead-tasks", type=int, default=400)
    parser.add_argument("--sr-size", type=int, default=1024)
    args = parser.parse_args()

    from satplugin.qgis_satplugin.core.cluster.scheduler import parse_scheduler
    from satplugin.qgis_satplugin.core.cluster.tasks import Task, dask_client, run_tasks
    from satplugin.qgis_satplugin.core.export import ExportOptions, run
    from satplugin.qgis_satplugin.core.export.context import ExportContext
    from satplugin.qgis_satplugin.core.export.plan import plan_patches
    from satplugin.qgis_satplugin.core.export.stream import chunk_works
    from satplugin.qgis_satplugin.core.feedback import Feedback

    print(f"`{' '.join(['benchmarks/bench_cluster.py'] + sys.argv[1:])}` on {platform.node()}, {os.cpu_count()} CPUs\n")
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        tmp = Path(tmp)
        data = _prepare(tmp, args.size, args.dates)
        options = dict(images=tuple(data["images"][: args.dates]), labels={"class": data["class"]},
                       patch_size=args.patch, format="npz")
        ctx = ExportContext.open(ExportOptions(output_folder=str(tmp / "probe"), **options), Feedback())
        plan = plan_patches(ctx.series, None, ctx.patches, min_labelled=0, max_cloud=100, min_dates=1, max_dates=None,
                            block_size=ctx.options.block_size(), ratios=ctx.options.ratios(), seed=0,
                            split_polygons=None, feedback=Feedback())
        n_tasks = len(chunk_works(ctx.series, plan, args.patch))

        rows, reference, base = [], None, None
        for mode in (None, "local:1", "local:2"):
            out = tmp / f"out-{mode or 'single'}"
            os.sync()
            t0 = time.perf_counter()
            result = run(ExportOptions(output_folder=str(out), dask_scheduler=mode, **options))
            seconds = time.perf_counter() - t0
            sums = _checksums(out)
            reference = reference or sums
            same = sums == reference
            start_s = 0.0
            if mode:
                t1 = time.perf_counter()
                with dask_client(parse_scheduler(mode), Feedback()):
                    start_s = time.perf_counter() - t1
            base = base or seconds
            rows.append((mode or "none (engine process)", seconds, start_s, result.n_samples / seconds, base / seconds, same))
            shutil.rmtree(out)

        sr_rows = _superres_rows(tmp, args.sr_size)

        with dask_client(parse_scheduler("local:2"), Feedback()) as client:
            tasks = [Task(f"noop-{i:05d}", {"i": i}, f"no-op {i}") for i in range(args.overhead_tasks)]
            run_tasks(client, len, tasks[:20], Feedback())  # warm the workers' imports
            t0 = time.perf_counter()
            run_tasks(client, len, tasks, Feedback())
            per_task_ms = (time.perf_counter() - t0) / len(tasks) * 1000

    print(f"npz export, {args.size} x {args.size} px, {args.dates} dates, 4 bands, {args.patch} px patches: "
          f"{result.n_samples} samples in {n_tasks} chunks (tasks)\n")
    print("| scheduler | export (s) | of which cluster start (s) | samples/s | speed vs none | same bytes |")
    print("|---|---:|---:|---:|---:|---|")
    for mode, seconds, start_s, rate, ratio, same in rows:
        print(f"| {mode} | {seconds:.2f} | {start_s:.2f} | {rate:.0f} | {ratio:.2f}x | {'yes' if same else 'NO'} |")
    print(f"\nSuper-resolution, {args.sr_size} x {args.sr_size} px, 4 revisits, the default model (x2), 256 px tiles:\n")
    print("| scheduler | super-resolve (s) | input MP/s | speed vs none | same bytes |")
    print("|---|---:|---:|---:|---|")
    for mode, seconds, rate, ratio, same in sr_rows:
        print(f"| {mode} | {seconds:.2f} | {rate:.3f} | {ratio:.2f}x | {'yes' if same else 'NO'} |")
    print(f"\nScheduling overhead on local:2: {per_task_ms:.2f} ms per task ({args.overhead_tasks} no-op tasks, "
          "submit to result on the client).")


def _superres_rows(tmp: Path, size: int) -> list:
    from datetime import datetime, timezone

    from satplugin.qgis_satplugin.core.grid import PixelGrid
    from satplugin.qgis_satplugin.core.superres import SuperResolveOptions
    from satplugin.qgis_satplugin.core.superres import run as superresolve
    from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder

    grid = PixelGrid.square("EPSG:32633", 499980.0, 5000040.0, 10.0, size, size)
    dates = date_series(datetime(2023, 5, 1, 10, 0, tzinfo=timezone.utc), 4, every_days=5)
    folder = write_download_folder(tmp / "sr-series", grid, dates, seed=0, block=512)
    rows, reference, base = [], None, None
    for mode in (None, "local:1", "local:2"):
        out = tmp / f"sr-{mode or 'single'}.tif"
        t0 = time.perf_counter()
        superresolve(SuperResolveOptions(inputs=str(folder), output=str(out), dask_scheduler=mode))
        seconds = time.perf_counter() - t0
        digest = hashlib.sha256(out.read_bytes()).hexdigest()
        reference = reference or digest
        base = base or seconds
        rows.append((mode or "none (engine process)", seconds, size * size / 1e6 / seconds, base / seconds,
                     digest == reference))
    return rows


if __name__ == "__main__":
    main()
