"""`make demo`: the plugin's algorithms run end to end through the real qgis_process.

No network and no account: the sample data is generated here, deterministically, so a
second run gives identical outputs (the report lists their checksums). Each step runs
as a user would run it: `scripts/qgis-process --json run satplugin:<algorithm> -- ...`.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The plugin imports as the package `satplugin`, as in QGIS and the tests.
sys.path.insert(0, str(ROOT))
from tests.plugin_link import link_plugin_package  # noqa: E402

link_plugin_package()

from satplugin.qgis_satplugin.core.grid import PixelGrid  # noqa: E402
from satplugin.tests.fixtures.synthetic_parcels import synthetic_parcels  # noqa: E402
from satplugin.tests.fixtures.synthetic_scenes import write_product  # noqa: E402

CROPS = ["", "wheat", "barley", "maize", "rapeseed", "sugar beet", "potato", "grassland", "orchard"]
# Sample fields: 3 km x 3 km in UTM 33N, near Ljubljana.
AREA = (460020.0, 5097000.0, 463020.0, 5100000.0)


def make_sample_parcels(folder: Path) -> Path:
    """Field polygons with text crop names, a year field and one self-intersecting parcel."""
    import geopandas as gpd
    import shapely

    polys, classes, ids = synthetic_parcels(AREA, 400, seed=2026)
    polys = list(polys)
    x, y = AREA[0] + 1510.0, AREA[3] - 1510.0
    # A digitising error: a bow-tie, which the rasterizer repairs and reports.
    polys[1] = shapely.Polygon([(x, y), (x + 60, y - 60), (x + 60, y), (x, y - 60)])
    frame = gpd.GeoDataFrame(
        {
            "parcel_id": ids,
            "crop": [CROPS[c] for c in classes],
            "year": [2023 if i % 5 else 2022 for i in range(len(ids))],
        },
        geometry=polys,
        crs="EPSG:32633",
    )
    path = folder / "sample_parcels.gpkg"
    path.unlink(missing_ok=True)
    frame.to_file(path, driver="GPKG")
    return path


# Sample acquisitions over the season: (date, cloud %). Clear and cloudy ones alternate
# so that the search has something to choose between.
ACQUISITIONS = [
    ("2023-04-12", 5), ("2023-05-02", 62), ("2023-05-22", 9), ("2023-06-11", 34),
    ("2023-07-06", 2), ("2023-07-31", 81), ("2023-08-20", 14), ("2023-09-14", 44),
]


def make_sample_products(folder: Path, parcels: Path) -> Path:
    """A local collection of synthetic L2A products over the sample fields."""
    import shutil
    from datetime import datetime, timezone

    import geopandas as gpd
    from rasterio.features import rasterize

    library = folder / "products"
    shutil.rmtree(library, ignore_errors=True)
    grid = PixelGrid.square("EPSG:32633", AREA[0], AREA[3], 10.0, 300, 300)
    frame = gpd.read_file(parcels)
    crop_ids = {name: i + 1 for i, name in enumerate(sorted(set(frame["crop"])))}
    class_map = rasterize(
        ((geom, crop_ids[crop]) for geom, crop in zip(frame.geometry, frame["crop"]) if geom.is_valid),
        out_shape=(grid.height, grid.width), transform=grid.transform, fill=0, dtype="uint8",
    )
    for index, (day, cloud) in enumerate(ACQUISITIONS):
        when = datetime.fromisoformat(day).replace(hour=10, minute=0, second=31, tzinfo=timezone.utc)
        write_product(library, grid, class_map, when, cloud, seed=index)
    return library


def search_step(library: Path, parcels: Path, out: Path) -> dict:
    results = qgis_process(
        "satplugin:searchproducts",
        BACKEND=3,
        SERVICE_URL=library,
        AOI_LAYER=parcels,
        START_DATE="2023-04-01",
        END_DATE="2023-09-30",
        COLLECTION=0,
        MAX_CLOUD=50,
        MIN_AOI_COVERAGE=90,
        MAX_PRODUCTS=4,
        STRATEGY=1,
        AOI_CLOUD="true",
        OUTPUT=out / "products.gpkg",
    )
    import geopandas as gpd

    found = gpd.read_file(results["OUTPUT"], layer="products").sort_values("datetime")
    chosen = found[found["selected"] == 1]
    return {
        "products_found": int(results["PRODUCT_COUNT"]),
        "products_selected": int(results["SELECTED_COUNT"]),
        "chosen": [
            {"date": row.datetime[:10], "scene_cloud": row.cloud, "aoi_cloud": row.aoi_cloud,
             "aoi_coverage": row.aoi_cover, "rank": int(row.rank)}
            for row in chosen.itertuples()
        ],
        "outputs": {"OUTPUT": str(results["OUTPUT"])},
        "checksums": {},
    }


def qgis_process(algorithm: str, **params) -> dict:
    return qgis_process_multi(algorithm, [], **params)


def qgis_process_multi(algorithm: str, repeated, **params) -> dict:
    """``repeated``: (name, value) pairs for parameters given several times (LABELS=a LABELS=b)."""
    cmd = [str(ROOT / "scripts" / "qgis-process"), "--json", "run", algorithm, "--"]
    cmd += [f"{key}={value}" for key, value in [*repeated, *params.items()]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"demo: {algorithm} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)["results"]


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def download_step(products: Path, parcels: Path, out: Path) -> dict:
    import shutil

    series = out / "series"
    shutil.rmtree(series, ignore_errors=True)
    results = qgis_process(
        "satplugin:downloadproducts",
        PRODUCTS=products,
        AOI_LAYER=parcels,
        BANDS="1",  # all L2A bands
        PIXEL_SIZE=10,
        INCLUDE_MASKS="true",
        HARMONIZE="true",
        OUTPUT_FOLDER=series,
    )
    manifest = json.loads(Path(results["MANIFEST"]).read_text())
    images = [f for f in manifest["files"] if f["kind"] == "image"]
    return {
        "dates": manifest["dates"],
        "bands": manifest["bands"],
        "grid": {"width": manifest["grid"]["width"], "height": manifest["grid"]["height"],
                 "crs": manifest["grid"]["crs"], "origin": manifest["grid"]["transform"][2::3][:2]},
        "files": len(manifest["files"]),
        "megabytes": round(sum(f["size"] for f in manifest["files"]) / 1e6, 1),
        "first_image": str(series / images[0]["path"]),
        "outputs": {"OUTPUT_FOLDER": str(series)},
        "checksums": {f["path"]: f["sha256"][:16] for f in manifest["files"]},
    }


def rasterize_step(parcels: Path, out: Path, grid: dict, tag: str) -> dict:
    """Labels on the imagery's grid (REFERENCE), or x4 finer on the same extent."""
    where = {"REFERENCE": grid["reference"]} if "reference" in grid else {
        "EXTENT": grid["extent"], "TARGET_CRS": grid["crs"], "PIXEL_SIZE": grid["pixel_size"]}
    results = qgis_process(
        "satplugin:rasterizegroundtruth",
        INPUT=parcels,
        CLASS_FIELD="crop",
        ID_FIELD="parcel_id",
        FILTER='"year" = 2023',
        MIN_COVERAGE=0.5,
        **where,
        OUTPUT_CLASS=out / f"class_{tag}.tif",
        OUTPUT_ID=out / f"parcel_id_{tag}.tif",
        OUTPUT_COVERAGE=out / f"coverage_{tag}.tif",
        OUTPUT_CONFLICT=out / f"conflict_{tag}.tif",
        OUTPUT_DISTANCE=out / f"distance_{tag}.tif",
        OUTPUT_CLASS_TABLE=out / f"classes_{tag}.csv",
    )
    import csv

    import rasterio

    with rasterio.open(results["OUTPUT_CLASS"]) as ds:
        grid = {"width": ds.width, "height": ds.height, "pixel_size": ds.res[0], "crs": ds.crs.to_string(),
                "origin": [ds.transform.c, ds.transform.f]}
    with rasterio.open(results["OUTPUT_CONFLICT"]) as ds:
        conflict = ds.read(1)
    rows = list(csv.DictReader(open(results["OUTPUT_CLASS_TABLE"], encoding="utf-8")))
    return {
        "grid": grid,
        "polygons_rasterized": results["RASTERIZED_FEATURES"],
        "geometries_repaired": results["REPAIRED_GEOMETRIES"],
        "labelled_pixels": results["LABELLED_PIXELS"],
        "pixels_per_class": {r["name"]: int(r["pixel_count"]) for r in rows},
        "conflict_pixels": {"mixed_classes": int((conflict == 1).sum()), "overlaps": int((conflict == 2).sum())},
        "outputs": {k: str(v) for k, v in results.items() if k.startswith("OUTPUT_")},
        "checksums": {Path(v).name: sha256(v) for k, v in results.items() if k.startswith("OUTPUT_")},
    }


def export_step(series: str, out: Path) -> dict:
    import shutil

    dataset = out / "dataset"
    shutil.rmtree(dataset, ignore_errors=True)
    labels = [out / f"{name}_10m.tif" for name in ("class", "parcel_id", "coverage", "conflict", "distance")]
    results = qgis_process_multi(
        "satplugin:exportpatches",
        [("IMAGES", series)] + [("LABELS", path) for path in labels],
        PATCH_SIZE=32,
        MIN_LABELLED=0.05,
        MAX_CLOUD=30,
        MIN_DATES=2,
        FORMAT=0,
        SPLIT_RATIOS="0.7,0.15,0.15",
        SEED=0,
        OUTPUT_FOLDER=dataset,
    )
    card = json.loads(Path(results["DATASET_CARD"]).read_text())
    return {
        "samples": results["SAMPLE_COUNT"],
        "samples_per_split": {name: split["samples"] for name, split in card["splits"].items()},
        "dropped": card["dropped"],
        "outputs": {"OUTPUT_FOLDER": str(dataset), "INDEX": results["INDEX"], "DATASET_CARD": results["DATASET_CARD"]},
        "checksums": {},
    }


def superres_step(series: str, out: Path) -> dict:
    """The shipped x2 model on the downloaded revisits (clearest first), on the CPU here."""
    import rasterio

    results = qgis_process("satplugin:superresolve", INPUT=series, PROVIDER=0, TILE_SIZE=256, OVERLAP=32,
                           MAX_CLOUD=50, OUTPUT=out / "series_5m.tif")
    with rasterio.open(results["OUTPUT"]) as ds:
        tags = ds.tags()
        size = {"width": ds.width, "height": ds.height, "pixel_size": ds.res[0], "bands": list(ds.descriptions)}
    return {
        **size,
        "provider": results["PROVIDER_USED"],
        "revisits": tags["REVISIT_DATES"].split(","),
        "model": f"{tags['MODEL']} v{tags['MODEL_VERSION']}",
        "outputs": {"OUTPUT": results["OUTPUT"]},
        "checksums": {Path(results["OUTPUT"]).name: sha256(results["OUTPUT"])},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--output", type=Path, default=ROOT / "build-demo", help="folder for data and outputs")
    args = parser.parse_args(argv)
    out = args.output.resolve()
    out.mkdir(parents=True, exist_ok=True)

    parcels = make_sample_parcels(out)
    library = make_sample_products(out, parcels)
    report = {"sample_parcels": str(parcels), "sample_products": str(library), "steps": {}}
    report["steps"]["search"] = search_step(library, parcels, out)
    report["steps"]["download"] = download = download_step(Path(report["steps"]["search"]["outputs"]["OUTPUT"]), parcels, out)
    report["steps"]["ground_truth_10m"] = rasterize_step(parcels, out, {"reference": download["first_image"]}, "10m")
    x0, y1 = download["grid"]["origin"]
    extent = f"{x0},{x0 + 10 * download['grid']['width']},{y1 - 10 * download['grid']['height']},{y1} [{download['grid']['crs']}]"
    report["steps"]["ground_truth_2.5m"] = rasterize_step(
        parcels, out, {"extent": extent, "crs": download["grid"]["crs"], "pixel_size": 2.5}, "2.5m")
    report["steps"]["export"] = export_step(download["outputs"]["OUTPUT_FOLDER"], out)
    report["steps"]["superres"] = superres_step(download["outputs"]["OUTPUT_FOLDER"], out)
    report_path = out / "report.json"
    report_path.write_text(json.dumps(report, indent=2) + "\n")

    print(f"Sample parcels: {parcels} (400 fields, 2023 ones burned; one bow-tie to repair)")
    search = report["steps"]["search"]
    print(f"Sample products: {library} ({len(ACQUISITIONS)} synthetic L2A acquisitions, April to September 2023)")
    print(f"\n== search (local folder, 4 dates spread over the season, cloud over the fields <= 50 %): "
          f"{search['products_found']} products pass the filters, {search['products_selected']} chosen")
    for row in search["chosen"]:
        print(f"   {row['date']}  rank {row['rank']}  AOI cloud {row['aoi_cloud']:.1f} %  "
              f"(scene {row['scene_cloud']:.1f} %)  AOI coverage {row['aoi_coverage']:.0f} %")
    print("   why: each of 4 target dates (bin centres) takes the product with the lowest cost of "
          "days off target, cloud and missing coverage")
    download = report["steps"]["download"]
    print(f"\n== download (clip, co-register, harmonize): {len(download['dates'])} dates x {len(download['bands'])} bands "
          f"on {download['grid']['width']} x {download['grid']['height']} px, {download['grid']['crs']}; "
          f"{download['files']} files, {download['megabytes']} MB in {download['outputs']['OUTPUT_FOLDER']}")
    for name, step in report["steps"].items():
        if name in ("search", "download", "export", "superres"):
            continue
        g = step["grid"]
        print(f"\n== {name}: {g['width']} x {g['height']} px of {g['pixel_size']} m, {g['crs']}, origin {g['origin']}")
        print(f"   polygons rasterized {step['polygons_rasterized']}, repaired {step['geometries_repaired']}, "
              f"labelled pixels {step['labelled_pixels']}")
        print("   pixels per class: " + ", ".join(f"{k} {v}" for k, v in step["pixels_per_class"].items()))
        print(f"   conflicts: {step['conflict_pixels']['mixed_classes']} mixed-class pixels, "
              f"{step['conflict_pixels']['overlaps']} overlapped pixels")
        for key, path in step["outputs"].items():
            print(f"   {key:<20} {path}  sha256 {step['checksums'][Path(path).name]}")
    export = report["steps"]["export"]
    print(f"\n== export (patches 32 x 32 px, >= 5 % labelled, dates <= 30 % cloud per patch, >= 2 dates; npz): "
          f"{export['samples']} samples, per split {export['samples_per_split']}, dropped {export['dropped']}")
    print(f"   {export['outputs']['OUTPUT_FOLDER']} (index {Path(export['outputs']['INDEX']).name}, "
          f"card {Path(export['outputs']['DATASET_CARD']).name})")
    sr = report["steps"]["superres"]
    print(f"\n== super-resolve ({sr['model']}, provider {sr['provider']}): {sr['width']} x {sr['height']} px of "
          f"{sr['pixel_size']} m, bands {', '.join(sr['bands'])}; revisits, clearest first: "
          f"{', '.join(d[:10] for d in sr['revisits'])}")
    print(f"   {sr['outputs']['OUTPUT']}  sha256 {sr['checksums'][Path(sr['outputs']['OUTPUT']).name]}")
    print(f"\nReport: {report_path}")


if __name__ == "__main__":
    main()
