#!/usr/bin/env python3
"""Benchmark: super-resolution throughput, overhead against a bare ONNX Runtime session, peak memory.

For each model (the shipped default, the shipped band-sharpening model: one date of 10 bands,
and a WorldStrat-sized HighResNet with random weights: 8 revisits of 12 L2A bands) a synthetic
download folder is written once
(``tests/fixtures/synthetic_series.py``, seed 0: one uint16 GeoTIFF and SCL mask per date,
zstd tiles like the download step's COGs). Then, in one child process per size:

- **ours**: the step's ``run`` on the folder, the model loaded beforehand (in QGIS that is
  paid once per run, and it is the same for both contenders): reading and normalising
  the stack, reflect padding, tiling, batching, blending, writing the GeoTIFF with
  overviews, under its temporary name, then the rename;
- **bare ONNX Runtime**: the same session, ``session.run`` on the same number of tiles
  of the same shape and batch size, from arrays already in memory: the floor for any
  tiled inference of that model.

"overhead" = ours / bare - 1, on the same provider and threads, in the same process.
Input megapixels per second count input (low-resolution) pixels. Peak RSS is each
child's own ``ru_maxrss`` (this parent imports only the standard library); "growth"
subtracts a child that loads the model and imports the same modules but runs nothing.
The larger size has 4 times the pixels: memory that does not grow 4 times is memory
that streams. Prints Markdown tables; asserts nothing.

Usage:  .venv/bin/python benchmarks/bench_superres.py [--sizes 512,1024] [--ws-sizes 320,640]
        .venv/bin/python benchmarks/bench_superres.py --tiny        # seconds: CI checks it runs
        .venv/bin/python benchmarks/bench_superres.py --provider cuda  # on a GPU machine
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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

def _prepare(spec: dict) -> dict:
    from datetime import datetime, timezone

    from satplugin.tests.fixtures.synthetic_series import date_series, write_download_folder
    from satplugin.qgis_satplugin.core.grid import PixelGrid

    size = spec["size"]
    grid = PixelGrid.square("EPSG:32633", 499980.0, 5000040.0, 10.0, size, size)
    dates = date_series(datetime(2023, 5, 1, 10, 0, tzinfo=timezone.utc), spec["dates"], every_days=5)
    folder = write_download_folder(Path(spec["folder"]), grid, dates, bands=tuple(spec["bands"]), seed=0, block=512)
    return {"folder": str(folder)}


def _worldstrat_model(path: str) -> dict:
    """Export a WorldStrat-sized HighResNet (random weights) with the converter's contract metadata."""
    import torch

    from models.convert_worldstrat import contract_metadata
    from models.onnx_export import export_onnx
    from models.worldstrat import PUBLISHED_HPARAMS, worldstrat_sized_highresnet

    wrapper = worldstrat_sized_highresnet()
    config = {k: PUBLISHED_HPARAMS[k] for k in ("in_channels", "hidden_channels", "residual_layers", "revisits",
                                                 "zoom_factor")}
    meta = contract_metadata(wrapper, {"arch": "highresnet", "config": config}, {}, version="benchmark-random")
    example = torch.zeros(1, config["revisits"], config["in_channels"], 32, 32)
    export_onnx(wrapper, example, path, meta, multi_frame=True)
    return {"path": path, "bands": list(meta["input_bands"]), "revisits": config["revisits"]}


def _bare_tiles(loaded, layout, batch_size: int, rng_seed: int = 0, limit: int = 0) -> float:
    """Seconds of ``session.run`` alone over ``layout.count`` (or ``limit``) tiles of the layout's shape."""
    import numpy as np

    contract = loaded.contract
    n = contract.revisits or 4
    shape = (n, len(contract.input_bands), layout.tile_h, layout.tile_w) if contract.multi_frame else \
        (len(contract.input_bands), layout.tile_h, layout.tile_w)
    rng = np.random.default_rng(rng_seed)
    tiles = rng.standard_normal((min(layout.count, batch_size),) + shape).astype(np.float32)
    seconds, done, total = 0.0, 0, limit or layout.count
    while done < total:
        batch = tiles[: min(batch_size, total - done)]
        t0 = time.perf_counter()
        loaded.session.run(None, {loaded.input_name: batch})
        seconds += time.perf_counter() - t0
        done += batch.shape[0]
    return seconds


def _child(spec: dict) -> dict:
    if "prepare" in spec:
        return _prepare(spec["prepare"])
    if "worldstrat" in spec:
        return _worldstrat_model(spec["worldstrat"])
    import rasterio  # noqa: F401  (imported before the clock, as in a QGIS session)

    from satplugin.qgis_satplugin.core.superres import SuperResolveOptions, load_model, run
    from satplugin.qgis_satplugin.core.superres.gdal_writer import library

    library()  # the output writer's GDAL calls, declared once per process: before the clock
    from satplugin.qgis_satplugin.core.superres.tiling import TileLayout, context_margin

    loaded = load_model(spec["model"], spec["provider"])
    if spec.get("load_only"):
        contract = loaded.contract
        return {"provider": loaded.provider_label, "bands": list(contract.input_bands),
                "revisits": contract.revisits if contract.multi_frame else 1}
    out = Path(spec["out"])
    # Warm the session on one batch first (memory arena, kernel choice), so that neither
    # contender pays the first run's set-up inside its timing.
    align = loaded.contract.block_pixels  # the tiles the runtime cuts: on the model's blocks (band sharpening: 2)
    margin = context_margin(spec["overlap"], loaded.contract.receptive_field, align)
    layout = TileLayout(spec["size"], spec["size"], spec["tile"], spec["overlap"], loaded.contract.scale, margin, align)
    from satplugin.qgis_satplugin.core.superres.runner import auto_batch_size

    spec["batch"] = spec["batch"] or auto_batch_size(loaded.provider)
    _bare_tiles(loaded, layout, spec["batch"], limit=spec["batch"])
    t0 = time.perf_counter()
    options = SuperResolveOptions(inputs=spec["folder"], output=str(out), model=spec["model"], tile_size=spec["tile"],
                                  overlap=spec["overlap"], batch_size=spec["batch"], max_cloud=100.0)
    res = run(options, loaded_model=loaded)
    ours = time.perf_counter() - t0
    size_mb = out.stat().st_size / 1e6
    out.unlink()
    bare = _bare_tiles(loaded, layout, spec["batch"]) if spec.get("bare", True) else None
    return {"ours_s": ours, "bare_s": bare, "inside_ort_s": res.seconds_inference, "tiles": res.tiles, "batch": spec["batch"],
            "provider": res.provider, "revisits": len(res.revisits), "out_px": res.width * res.height,
            "out_mb": size_mb}


def _run_child(spec: dict) -> tuple[dict, float]:
    return run_child(__file__, spec)


def _bench_model(label: str, model: str, bands, revisits: int, sizes, args, tmp: Path) -> None:
    print(f"\n### {label}\n")
    base, base_rss = _run_child({"model": model, "provider": args.provider, "load_only": True})
    print(f"provider: {base['provider']}; tile {args.tile} px, overlap {args.overlap} px, batch {args.batch or 'auto'}; "
          f"{revisits} revisits of {len(bands)} bands; a child that only loads the model peaks at {base_rss:.0f} MB\n")
    print("| input px | tiles | batch | ours s | input MP/s | bare ORT s | overhead | ORT inside ours s | output MB | "
          "peak RSS MB | growth MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size in sizes:
        folder = tmp / f"{label}-{size}"
        _run_child({"prepare": {"folder": str(folder), "size": size, "dates": revisits, "bands": list(bands)}})
        spec = {"model": model, "provider": args.provider, "folder": str(folder), "size": size, "tile": args.tile,
                "overlap": args.overlap, "batch": args.batch, "out": str(tmp / f"out-{label}-{size}.tif")}
        r, rss = _run_child(spec)
        mp = size * size / 1e6
        print(f"| {size} x {size} | {r['tiles']} | {r['batch']} | {r['ours_s']:.2f} | {mp / r['ours_s']:.3f} | {r['bare_s']:.2f} | "
              f"{100 * (r['ours_s'] / r['bare_s'] - 1):+.1f} % | {r['inside_ort_s']:.2f} | {r['out_mb']:.1f} | "
              f"{rss:.0f} | {rss - base_rss:+.0f} |", flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="512,1024", help="default model: raster sizes (px, square)")
    parser.add_argument("--ws-sizes", default="320,640", help="WorldStrat-sized model: raster sizes")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--overlap", type=int, default=32)
    parser.add_argument("--batch", type=int, default=0, help="0: the runtime's automatic choice")
    parser.add_argument("--provider", default="auto")
    parser.add_argument("--models", default="default,sharpen,worldstrat",
                        help="default (x2), sharpen (s2_sharpen_20m: 10 bands in, 6 out, 1 date), worldstrat")
    parser.add_argument("--default-model", type=Path, help="another .onnx in place of the shipped default")
    parser.add_argument("--tiny", action="store_true", help="64 and 128 px, the default model only: seconds")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return
    if args.tiny:
        args.sizes, args.models, args.tile, args.overlap = "64,128", "default", 64, 16
    print(f"$ {' '.join([Path(sys.executable).name] + sys.argv)}")
    print(f"{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}")
    from satplugin.qgis_satplugin.core.superres.runner import DEFAULT_MODEL

    default_model = args.default_model or DEFAULT_MODEL
    with tempfile.TemporaryDirectory(prefix="bench-superres-") as tmp:
        tmp = Path(tmp)
        models = args.models.split(",")
        if "default" in models:
            meta = _contract_of(default_model)
            _bench_model(f"default model ({default_model.name})", str(default_model), meta["bands"], meta["revisits"],
                         [int(s) for s in args.sizes.split(",")], args, tmp)
        if "sharpen" in models:
            from satplugin.qgis_satplugin.core.superres.options import SHARPEN_MODEL

            meta = _contract_of(SHARPEN_MODEL)
            _bench_model(f"band sharpening ({SHARPEN_MODEL.name})", str(SHARPEN_MODEL), meta["bands"], meta["revisits"],
                         [int(s) for s in args.sizes.split(",")], args, tmp)
        if "worldstrat" in models:
            info, _ = _run_child({"worldstrat": str(tmp / "worldstrat_highresnet.onnx")})
            _bench_model("WorldStrat-sized HighResNet (random weights)", info["path"], info["bands"], info["revisits"],
                         [int(s) for s in args.ws_sizes.split(",")], args, tmp)


def _contract_of(path: Path) -> dict:
    """Bands and revisit count from the model's metadata (read in a child: this parent stays stdlib-only)."""
    meta, _ = _run_child({"model": str(path), "provider": "cpu", "load_only": True})
    return meta


if __name__ == "__main__":
    main()
