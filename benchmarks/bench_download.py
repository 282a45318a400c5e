#!/usr/bin/env python3
"""Benchmark: download throughput against the raw transfer rate of the same loopback server.

A synthetic Sentinel-2 product (``--size`` x ``--size`` px of 10 m: B02, B03, B04, B08
as noisy uint16 COGs, SCL at 20 m) is served by the tests' range-request file server
(files kept in memory, so the disk is out of the way). Then, at 1 and at ``--workers``
concurrent requests:

* download  the download step's ``run`` of the whole product area at 10 m (STAC backend: HTTP
            range reads through GDAL, reprojection onto the grid, harmonization, one COG
            + SCL mask written, manifest), timed end to end;
* raw GET   plain ``requests`` GETs of the same files, whole, with as many threads.

Both run twice: on bare loopback (CPU-bound: decoding, warping and COG encoding cost
more than moving bytes), and with ``--latency-ms`` added to every request, as over a
real network, where the download's many range requests make concurrency pay.

Throughput is given in MB/s (10^6 bytes) of output written and of bytes transferred;
"vs raw" is the download's transfer rate over the raw GET rate at the same concurrency.
The COG encoding time inside the download is shown separately. Prints a Markdown table;
asserts nothing.

Usage:  .venv/bin/python benchmarks/bench_download.py [--size 2048] [--workers 4] [--repeat 2] [--latency-ms 20]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# The plugin imports as the package `satplugin`, as in QGIS and the tests.
sys.path.insert(0, str(REPO_ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()

X0, Y1 = 399960.0, 5100000.0
CRS = "EPSG:32633"
BANDS = ["B02", "B03", "B04", "B08"]


def make_product(folder: Path, size: int) -> dict:
    """Noisy reflectance-like COGs (they compress about as badly as real ones) and an SCL."""
    import numpy as np
    from rasterio.io import MemoryFile
    from rasterio.shutil import copy as rio_copy
    from rasterio.transform import from_origin

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size]
    files = {}
    for i, band in enumerate([*BANDS, "SCL"]):
        res, n = (20.0, size // 2) if band == "SCL" else (10.0, size)
        if band == "SCL":
            data = rng.integers(1, 12, (n, n), dtype=np.uint8)
        else:
            field = 1500 + 800 * np.sin(xx / (37.0 + i)) * np.cos(yy / 53.0)
            data = (field + rng.normal(0, 120, (n, n))).clip(1, 10000).astype(np.uint16)
        profile = dict(driver="GTiff", width=n, height=n, count=1, dtype=data.dtype.name, crs=CRS,
                       transform=from_origin(X0, Y1, res, res), nodata=0)
        path = folder / f"{band}.tif"
        with MemoryFile() as mem:
            with mem.open(**profile) as tmp:
                tmp.write(data, 1)
            with mem.open() as src:
                rio_copy(src, path, driver="COG", BLOCKSIZE=512, COMPRESS="DEFLATE", NUM_THREADS="ALL_CPUS",
                         RESAMPLING="NEAREST" if band == "SCL" else "AVERAGE")
        files[band] = path
    return files


def product_for(urls: dict):
    from shapely.geometry import box

    from satplugin.qgis_satplugin.core.products import Product

    return Product(
        product_id="S2B_MSIL2A_20230612T101559_N0509_R022_T33TVM_20230612T131420",
        datetime=datetime(2023, 6, 12, 10, 15, 59, tzinfo=timezone.utc),
        platform="S2B", mgrs_tile="33TVM", relative_orbit=22, processing_baseline="05.09",
        collection="L2A", cloud_cover=1.0, footprint=box(13, 45, 14, 46), backend="stac",
        download={"kind": "stac", "item_id": "bench", "self": None, "assets": urls},
    )


def _server_class(delay_s: float):
    from satplugin.tests.servers.files import RangeFileServer

    class DelayedServer(RangeFileServer):
        """Every answer waits ``delay_s`` first: a network round trip."""

        def handle(self, req):
            if delay_s:
                time.sleep(delay_s)
            return super().handle(req)

    return DelayedServer


def timed_download(product, grid, out: Path, workers: int):
    from satplugin.qgis_satplugin.core.download import DownloadOptions, cog_writer, run

    encode = [0.0]
    real_copy = cog_writer.copy_to_cog

    def timed_copy(*args):
        t = time.perf_counter()
        real_copy(*args)
        encode[0] += time.perf_counter() - t

    cog_writer.copy_to_cog = timed_copy
    try:
        t0 = time.perf_counter()
        options = DownloadOptions(products=[product], output_folder=str(out), bands=tuple(BANDS), reference_grid=grid,
                                  max_concurrent=workers)
        result = run(options)
        seconds = time.perf_counter() - t0
    finally:
        cog_writer.copy_to_cog = real_copy
    written = sum((out / f["path"]).stat().st_size for f in result.files)
    return seconds, result.transferred_bytes, written, encode[0], result.requests


def timed_raw_get(urls: list[str], workers: int):
    import requests

    local = threading.local()

    def get(url):
        session = local.__dict__.setdefault("session", requests.Session())
        return len(session.get(url, timeout=60).content)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        total = sum(pool.map(get, urls))
    return time.perf_counter() - t0, total


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=2048, help="pixels per side of the 10 m bands")
    parser.add_argument("--workers", type=int, default=4, help="concurrent requests of the parallel runs")
    parser.add_argument("--repeat", type=int, default=2, help="runs per line; the fastest is shown")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="per-request delay of the second series")
    args = parser.parse_args()

    from satplugin.qgis_satplugin.core.grid import PixelGrid

    mb = 1e6
    with tempfile.TemporaryDirectory(prefix="bench-download-") as tmp:
        tmp = Path(tmp)
        src = tmp / "product"
        src.mkdir()
        t = time.perf_counter()
        files = make_product(src, args.size)
        prepared = time.perf_counter() - t
        source_bytes = sum(p.stat().st_size for p in files.values())
        grid = PixelGrid.square(CRS, X0, Y1, 10.0, args.size, args.size)
        rows = []
        for latency in (0.0, args.latency_ms):
            with _server_class(latency / 1000.0)(src, cache=True) as server:
                urls = {band: f"{server.url}/{path.name}" for band, path in files.items()}
                timed_raw_get(list(urls.values()), 1)  # warm the server's file cache
                product = product_for(urls)
                for workers in sorted({1, args.workers}):
                    best = None
                    for r in range(args.repeat):
                        out = tmp / f"out-{latency}-{workers}-{r}"
                        run = timed_download(product, grid, out, workers)
                        best = run if best is None or run[0] < best[0] else best
                    raw = min((timed_raw_get(list(urls.values()), workers) for _ in range(args.repeat)), key=lambda x: x[0])
                    rows.append((latency, workers, best, raw))

    print(f"# Download benchmark ({platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()})\n")
    print(f"`{' '.join([Path(sys.executable).name, *sys.argv])}`\n")
    print(f"| Setting | Value |\n|---|---|\n| Product | {len(BANDS)} bands {args.size} x {args.size} px at 10 m + SCL "
          f"{args.size // 2} px at 20 m, DEFLATE COGs, {source_bytes / mb:.1f} MB (made in {prepared:.1f} s) |")
    print("| Download | whole product area onto its own 10 m grid, harmonized, COG + SCL + manifest |")
    print(f"| Server | tests/servers/files.py RangeFileServer on 127.0.0.1, files in memory, 0 or {args.latency_ms:g} ms added per request |")
    print(f"| Runs | fastest of {args.repeat} |\n")
    print("| added latency | concurrency | download time | transferred | data requests | output written | download: transferred MB/s | "
          "download: output MB/s | of which COG encoding | raw GET of the same files | raw GET MB/s | download / raw |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for latency, workers, (seconds, transferred, written, encode, requests), (raw_s, raw_bytes) in rows:
        dl_rate = transferred / seconds / mb
        raw_rate = raw_bytes / raw_s / mb
        print(
            f"| {latency:g} ms | {workers} | {seconds:.2f} s | {transferred / mb:.1f} MB | {requests} | {written / mb:.1f} MB | "
            f"{dl_rate:.1f} | {written / seconds / mb:.1f} | {encode:.2f} s | {raw_s:.2f} s ({raw_bytes / mb:.1f} MB) | "
            f"{raw_rate:.1f} | {dl_rate / raw_rate:.2f} x |"
        )


if __name__ == "__main__":
    main()
