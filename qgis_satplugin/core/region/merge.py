"""The region's own files, from its tiles' exports in tile order: index, STAC collection, card.

``index.gpkg`` holds every sample of every tile (footprints reprojected to EPSG:4326, a
``tile`` field, paths from the region folder); ``collection.json`` is a STAC collection
whose children are the tiles' collections; ``dataset.json`` (and ``dataset.md``) say which
tiles there are, what each holds, which failed and why, and how the splits were made.
Nothing depends on the clock, the order tasks finished in, or whether a tile was resumed.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..atomic import replaced
from ..export.dataset_card import licence_line
from ..export.index_gpkg import FIELDS, write_index
from ..export.splits import SPLITS
from ..feedback import Feedback
from ..image_series.dates import parse_iso_datetime
from .splits import to_crs

FORMAT = "satplugin-region/1"
FILES = ("collection.json", "dataset.json", "dataset.md", "index.gpkg", "region.json", "tiles/", "work/")


def write_region_files(root: Path, options, outcomes: dict, class_names: dict, split_info: dict,
                       feedback: Feedback) -> dict:
    done = [o for t, o in sorted(outcomes.items()) if "error" not in o]
    failures = [{"tile": t, "error": o["error"]} for t, o in sorted(outcomes.items()) if "error" in o]
    from pyproj import CRS

    rows = _index_rows(root, done)
    with replaced(root / "index.gpkg") as temp:
        # GDAL's WKT1, as every export writes its CRS (the same text whichever PROJ wrote it).
        write_index(temp.parent, rows, CRS.from_epsg(4326).to_wkt("WKT1_GDAL"), extra_fields={"tile": object},
                    name=temp.name)
    _write_text(root / "collection.json", json.dumps(_collection(root, done), indent=1) + "\n")
    per_split = {s: sum(o["samples_per_split"].get(s, 0) for o in done) for s in SPLITS}
    dates = sorted({d for o in done for d in o["dates"]})
    parameters = options.recorded()
    parameters["polygons"] = {**parameters["polygons"], "path": Path(options.polygons.path).name}
    card = {
        "format": FORMAT,
        "created_by": "satplugin build_dataset",
        "parameters": parameters,
        "tiles": [{"tile": o["tile"], "crs": o["crs"], "path": f"tiles/{o['tile']}", "samples": o["samples"],
                   "samples_per_split": o["samples_per_split"], "dates": o["dates"]} for o in done],
        "n_samples": sum(o["samples"] for o in done),
        "samples_per_split": per_split,
        "class_table": {str(k): v for k, v in sorted(class_names.items())},
        "split_method": split_info,
        "failures": failures,
        "attribution": licence_line([parse_iso_datetime(d) for d in dates]) if dates else None,
        "files": {"index": "index.gpkg", "stac": "collection.json", "tiles": "tiles/<tile>/ (each an export)"},
        "contents": list(FILES),
    }
    _write_text(root / "dataset.md", _markdown(card))
    _write_text(root / "dataset.json", json.dumps(card, indent=1, ensure_ascii=False) + "\n")
    feedback.log(f"The region: {card['n_samples']} samples in {len(done)} tiles"
                 + (f"; {len(failures)} tiles failed ({', '.join(f['tile'] for f in failures)})." if failures else "."))
    return {**card, "tiles": [{**t, "skipped": bool(outcomes[t["tile"]].get("skipped"))} for t in card["tiles"]]}


def _index_rows(root: Path, done: list) -> list:
    import pyogrio.raw
    import shapely

    rows = []
    for outcome in done:
        tile = outcome["tile"]
        meta, _, wkb, columns = pyogrio.raw.read(str(root / "tiles" / tile / "index.gpkg"), return_fids=True)
        values = dict(zip(meta["fields"], columns))
        footprints = to_crs(shapely.from_wkb(wkb), meta["crs"], "EPSG:4326")
        for i in range(len(wkb)):
            row = {name: (values[name][i].item() if isinstance(values[name][i], np.generic) else values[name][i])
                   for name in FIELDS}
            row["path"] = f"tiles/{tile}/{row['path']}"
            rows.append({**row, "tile": tile, "_footprint": footprints[i], "_index": len(rows)})
    return rows


def _collection(root: Path, done: list) -> dict:
    boxes, starts, ends = [], [], []
    for outcome in done:
        child = json.loads((root / "tiles" / outcome["tile"] / "collection.json").read_text(encoding="utf-8"))
        boxes.extend(child["extent"]["spatial"]["bbox"][:1])
        interval = child["extent"]["temporal"]["interval"][0]
        starts.append(interval[0])
        ends.append(interval[1])
    bbox = [min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes)] \
        if boxes else [-180.0, -90.0, 180.0, 90.0]
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": "satplugin-region",
        "title": "Sentinel-2 patches over a region, one child collection per MGRS tile",
        "description": "The tiles' exports of one build_dataset run; each child collection holds its tile's samples.",
        "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [[min(starts, default=None), max(ends, default=None)]]}},
        "links": [{"rel": "root", "href": "./collection.json", "type": "application/json"},
                  {"rel": "self", "href": "./collection.json", "type": "application/json"}]
                 + [{"rel": "child", "href": f"./tiles/{o['tile']}/collection.json", "type": "application/json",
                     "title": f"tile {o['tile']}"} for o in done],
    }


def _markdown(card: dict) -> str:
    lines = ["# Sentinel-2 dataset over a region", "", f"{card['n_samples']} samples in {len(card['tiles'])} MGRS tiles "
             f"({', '.join(f'{s} {n}' for s, n in card['samples_per_split'].items())}).", "",
             "| tile | CRS | samples | train | val | test | dates |", "|---|---|---:|---:|---:|---:|---:|"]
    for t in card["tiles"]:
        sp = t["samples_per_split"]
        lines.append(f"| {t['tile']} | {t['crs']} | {t['samples']} | {sp.get('train', 0)} | {sp.get('val', 0)} | "
                     f"{sp.get('test', 0)} | {len(t['dates'])} |")
    if card["failures"]:
        lines += ["", "## Tiles that failed", ""] + [f"- {f['tile']}: {f['error']}" for f in card["failures"]]
    lines += ["", f"Splits: {card['split_method']['method']}, blocks of {card['split_method']['block_m']:g} m in "
              f"{card['split_method']['crs']}, seed {card['split_method']['seed']}: no polygon is in two splits.",
              "", card["attribution"] or "", ""]
    return "\n".join(lines)


def _write_text(path: Path, text: str) -> None:
    with replaced(path) as temp:
        temp.write_text(text, encoding="utf-8")
