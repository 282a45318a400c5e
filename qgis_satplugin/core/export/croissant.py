"""``croissant.json``: the dataset described in MLCommons Croissant 1.0 (JSON-LD).

Croissant is what ML dataset hubs and loaders read (Hugging Face, Kaggle, OpenML,
``mlcroissant``, TFDS): it names the files (``distribution``), the fields of each record
(``recordSet``) and the splits. Here:

* ``distribution``: ``samples.csv``, ``index.gpkg`` and ``collection.json`` as
  FileObjects with their sha256, and the sample files as a FileSet (glob per format:
  ``*/*.npz``, ``*/*/*.tif``, ``*/*.pickle`` or ``dataset.zarr/**``);
* ``recordSet`` ``splits``: train, val and test, marked as Croissant's
  ``cr:TrainingSplit``/``cr:ValidationSplit``/``cr:TestSplit`` (the split convention of
  Croissant 1.0);
* ``recordSet`` ``samples``: one record per row of ``samples.csv`` (index, id, split,
  path of its file, position, dates, cloud), ``split`` referencing ``splits``;
* ``recordSet`` ``classes`` (with a class table): class id, source value and name.

The pixel arrays themselves stay in their format's files (Croissant has no type for a
[T, C, H, W] array in an npz); ``samples/path`` says which file holds each sample.

The licence is the Copernicus legal notice's URL (no SPDX identifier exists for it), and
``citeAs`` is the attribution Copernicus asks for. No date or clock value is written, so
the same export gives the same bytes (``datePublished`` is left out for that reason).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .format_zarr import STORE as ZARR_STORE
from .index_gpkg import NAME as INDEX_NAME
from .samples_table import NAME as SAMPLES_NAME
from .stac_catalog import COLLECTION, LICENSE_URL

NAME = "croissant.json"
CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
# The JSON-LD context Croissant 1.0 defines (the terms this file uses, mapped as the standard maps them).
CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "sc": "https://schema.org/",
    "cr": "http://mlcommons.org/croissant/",
    "dct": "http://purl.org/dc/terms/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileObject": "cr:fileObject",
    "fileProperty": "cr:fileProperty",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
SAMPLE_FILES = {
    "npz": ("*/*.npz", "application/x-npz", "one .npz per sample (numpy.load): images [T, C, H, W], dates, labels"),
    "geotiff": ("*/*/*.tif", "image/tiff", "per sample a folder: one GeoTIFF chip per date, one per label"),
    "deepsatdata": ("*/*.pickle", "application/octet-stream", "one DeepSatData pickle per sample"),
    "zarr": (f"{ZARR_STORE}/**", "application/vnd+zarr", "one Zarr v2 store holding every sample (xarray.open_zarr)"),
}
CROISSANT_SPLITS = {"train": "cr:TrainingSplit", "val": "cr:ValidationSplit", "test": "cr:TestSplit"}
SAMPLE_FIELDS = (
    ("index", "sc:Integer", "position of the sample in the dataset (the index along 'sample' in the zarr store)"),
    ("sample_id", "sc:Text", "r<row>_c<col>: the top-left pixel of the patch in the image grid"),
    ("split", "sc:Text", "train, val or test"),
    ("path", "sc:Text", "the file holding the sample, relative to the dataset folder"),
    ("row", "sc:Integer", "row of the patch's top-left pixel in the image grid"),
    ("col", "sc:Integer", "column of the patch's top-left pixel in the image grid"),
    ("n_dates", "sc:Integer", "number of dates in the sample's time series"),
    ("date_index", "sc:Text", "';'-separated positions of its dates in dataset.json 'dates'"),
    ("dates", "sc:Text", "';'-separated acquisition times (ISO 8601, UTC) of its time series"),
    ("cloud", "sc:Text", "';'-separated % of cloud or no-data in the patch, per date"),
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_object(folder: Path, name: str, kind: str, description: str) -> dict:
    return {"@type": "cr:FileObject", "@id": name, "name": name, "description": description,
            "contentUrl": name, "encodingFormat": kind, "sha256": _sha256(folder / name)}


def _splits_record_set() -> dict:
    return {
        "@type": "cr:RecordSet", "@id": "splits", "name": "splits", "dataType": "cr:Split",
        "description": "The spatially blocked train/val/test splits (no pixel is in two splits).",
        "key": {"@id": "splits/name"},
        "field": [
            {"@type": "cr:Field", "@id": "splits/name", "name": "name", "dataType": "sc:Text"},
            {"@type": "cr:Field", "@id": "splits/url", "name": "url", "dataType": "sc:URL"},
        ],
        "data": [{"splits/name": name, "splits/url": url} for name, url in CROISSANT_SPLITS.items()],
    }


def _samples_record_set() -> dict:
    fields = []
    for name, kind, description in SAMPLE_FIELDS:
        field = {"@type": "cr:Field", "@id": f"samples/{name}", "name": name, "description": description,
                 "dataType": kind, "source": {"fileObject": {"@id": SAMPLES_NAME}, "extract": {"column": name}}}
        if name == "split":
            field["dataType"] = ["cr:Split", "sc:Text"]
            field["references"] = {"field": {"@id": "splits/name"}}
        fields.append(field)
    return {"@type": "cr:RecordSet", "@id": "samples", "name": "samples", "key": {"@id": "samples/sample_id"},
            "description": "One record per sample (samples.csv); 'path' names the file with its arrays.",
            "field": fields}


def _classes_record_set(table: list) -> dict:
    return {
        "@type": "cr:RecordSet", "@id": "classes", "name": "classes", "key": {"@id": "classes/class_id"},
        "description": "The class ids of the class label raster and what they stand for.",
        "field": [
            {"@type": "cr:Field", "@id": "classes/class_id", "name": "class_id", "dataType": "sc:Integer"},
            {"@type": "cr:Field", "@id": "classes/value", "name": "value", "dataType": "sc:Text",
             "description": "the ground-truth attribute value rasterized as this id"},
            {"@type": "cr:Field", "@id": "classes/name", "name": "name", "dataType": "sc:Text"},
        ],
        "data": [{"classes/class_id": int(r["class_id"]), "classes/value": None if r["value"] is None else str(r["value"]),
                  "classes/name": str(r["name"])} for r in table],
    }


def write_croissant(folder: Path, card: dict) -> Path:
    """Write ``croissant.json``; ``samples.csv``, ``index.gpkg`` and the STAC collection must exist."""
    folder = Path(folder)
    fmt = card["sample_format"]
    pattern, kind, what = SAMPLE_FILES[fmt]
    g = card["grid"]
    distribution = [
        _file_object(folder, SAMPLES_NAME, "text/csv", "one row per sample: path, split, position, dates, cloud"),
        _file_object(folder, INDEX_NAME, "application/geopackage+sqlite3",
                     "sample footprints (layer 'samples') with split, path, dates and class histogram"),
        _file_object(folder, COLLECTION, "application/json",
                     "STAC collection; one STAC item per sample in stac/ (footprint, dates, assets, ml-aoi:split)"),
        {"@type": "cr:FileSet", "@id": "sample-files", "name": "sample-files", "description": what,
         "encodingFormat": kind, "includes": pattern},
    ]
    record_sets = [_splits_record_set(), _samples_record_set()]
    if card.get("class_table"):
        record_sets.append(_classes_record_set(card["class_table"]))
    doc = {
        "@context": CONTEXT,
        "@type": "sc:Dataset",
        "name": "sentinel2-patches",
        "description": (
            f"{card['n_samples']} Sentinel-2 patches of {card['patch_size']} x {card['patch_size']} px with their time "
            f"series of {len(card['bands'])} bands ({', '.join(card['bands'])}) and "
            f"{'labels ' + ', '.join(card['labels']) if card['labels'] else 'no labels'}, cut from "
            f"{len(card['dates'])} dates ({card['dates'][0][:10]} to {card['dates'][-1][:10]}) on a "
            f"{g['width']} x {g['height']} px grid ({g['crs']}); {fmt} format. Reflectance = scale x DN + offset "
            "per date and band (dataset.json)."
        ),
        "conformsTo": CONFORMS_TO,
        "citeAs": card["attribution"],
        "license": LICENSE_URL,
        "keywords": ["Sentinel-2", "remote sensing", "time series", "segmentation"],
        "distribution": distribution,
        "recordSet": record_sets,
    }
    path = folder / NAME
    path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
