"""``collection.json`` + ``stac/<sample_id>.json``: the dataset as a static STAC catalog.

A STAC 1.1 Collection with one Item per sample, the static-catalog layout that STAC tools
(pystac, STAC Browser, catalog loaders) read:

* each Item's ``geometry``/``bbox`` is the patch footprint in WGS 84 (GeoJSON's CRS), and
  the ``projection`` extension gives the native grid (``proj:code``, ``proj:transform``,
  ``proj:shape``, ``proj:bbox``); ``start_datetime``/``end_datetime`` span its dates
  (``datetime`` is null, as STAC asks for a range);
* ``ml-aoi:split`` is ``train``, ``validate`` or ``test`` (the ml-aoi names for this
  export's ``train``/``val``/``test``); image assets have ``ml-aoi:role: feature``, label
  assets ``ml-aoi:role: label``;
* with label rasters the ``label`` extension describes them: raster labels
  (``label:properties`` null), the class ids (``label:classes``) and the sample's label
  pixels per class (``label:overviews``);
* the assets point at the sample's own files (``geotiff``: one asset per date and band
  group with its ``datetime`` and ``bands``, one per label); a format that keeps a whole
  sample in one file (``npz``, ``deepsatdata``) or the whole dataset in one store
  (``zarr``) has an ``images`` and a ``labels`` asset pointing at that file.

Licence: the Copernicus Sentinel data terms have no SPDX identifier, so ``license`` is
``"other"`` with a ``license`` link to the legal notice, as STAC 1.1 asks.

Items are written chunk by chunk where the chunk's samples are written (:class:`ItemFiles`:
the export's writer thread, or a Dask worker), so the work overlaps the reading of the next chunk;
footprints are reprojected once per chunk (one pyproj call), and each item is one
``json`` C-encoder call and one small file. The collection is written at the end. Cost on
this project's 2-core machine, 29,584 items (a full tile in 64 px patches): 2.3 to 4.1 s
for npz (about 2 s of Python, the rest creating the files), 6 s for geotiff (20 dated
assets per item); a full-tile npz export takes 97 s. Nothing depends on the clock or the
output folder: the same export gives the same bytes.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import replaced
from .format_zarr import STORE as ZARR_STORE
from .options import STAC_COLLECTION_ID

STAC_VERSION = "1.1.0"
COLLECTION = "collection.json"
ITEMS = "stac"
EXT_LABEL = "https://stac-extensions.github.io/label/v1.0.1/schema.json"
EXT_ML_AOI = "https://stac-extensions.github.io/ml-aoi/v0.2.0/schema.json"
EXT_PROJECTION = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
ML_AOI_SPLIT = {"train": "train", "val": "validate", "test": "test"}
LICENSE = "other"  # no SPDX identifier exists for the Copernicus Sentinel data terms
LICENSE_URL = "https://sentinels.copernicus.eu/documents/247904/690755/Sentinel_Data_Legal_Notice"
GEOTIFF = "image/tiff; application=geotiff"
SAMPLE_FILE_TYPES = {"npz": "application/x-npz", "deepsatdata": "application/octet-stream", "zarr": "application/vnd+zarr"}
# The C encoder (no indent): with the files' creation, where the catalog's time goes.
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
COORD_DIGITS = 8  # of a degree: about 1 mm, and stable text for the same export


def wgs84_corners(rows: list, patch_size: int, crs_wkt: str) -> tuple:
    """lon/lat of every sample's four corners ([N, 4] each), in one transform call."""
    from pyproj import CRS, Transformer

    x0 = np.array([r["_transform"][2] for r in rows], dtype=np.float64)
    y1 = np.array([r["_transform"][5] for r in rows], dtype=np.float64)
    a = np.array([r["_transform"][0] for r in rows], dtype=np.float64)
    e = np.array([r["_transform"][4] for r in rows], dtype=np.float64)
    x1, y0 = x0 + patch_size * a, y1 + patch_size * e
    # Counter-clockwise from the lower left: GeoJSON's right-hand rule for outer rings.
    xs = np.stack([x0, x1, x1, x0], axis=1)
    ys = np.stack([y0, y0, y1, y1], axis=1)
    transformer = Transformer.from_crs(CRS.from_wkt(crs_wkt), CRS.from_epsg(4326), always_xy=True)
    lon, lat = transformer.transform(xs, ys)
    return np.round(lon, COORD_DIGITS), np.round(lat, COORD_DIGITS), (x0, y0, x1, y1)


def _label_properties(info: dict) -> dict:
    names = ", ".join(f"{n} ({spec['file']})" for n, spec in info["labels"].items())
    k = info["label_scale"]
    grid = "the image grid" if k == 1 else f"a grid {k} times finer than the images"
    out = {
        "label:type": "raster",
        "label:properties": None,  # raster labels: the pixel values are the labels
        "label:description": f"Ground truth rasterized on {grid}: {names}.",
    }
    if "class" in info["labels"]:
        out["label:tasks"] = ["segmentation"]
        if info["class_ids"] is not None:
            out["label:classes"] = [{"name": None, "classes": info["class_ids"]}]
    return out


def catalog_info(fmt: str, meta, layout, crs: str, class_table, collection_id: str = STAC_COLLECTION_ID) -> dict:
    """What the items need, all known before the first sample: the format, grid, bands, labels, class ids.

    ``class_ids`` come from the class table; without one the classes are known only at the
    end, and go in the collection's summaries instead of each item.
    """
    return {
        "sample_format": fmt, "patch_size": meta.patch_size, "label_scale": meta.label_scale, "labels": meta.labels,
        "band_groups": layout.describe(), "band_resolution": meta.band_resolution, "bands": list(meta.bands),
        "crs": crs, "crs_wkt": meta.crs_wkt,
        "class_ids": sorted(int(r["class_id"]) for r in class_table) if class_table else None,
        "collection_id": collection_id,
    }


class _ItemMaker:
    """Builds each item's dict from the parts all items share, worked out once."""

    def __init__(self, info: dict):
        self.collection_id = info["collection_id"]
        self.fmt = info["sample_format"]
        self.size = info["patch_size"]
        self.k = info["label_scale"]
        self.labels = list(info["labels"])
        self.groups = [(g["key"][len("images"):], [{"name": b} for b in g["bands"]], g["factor"])
                       for g in info["band_groups"]]
        self.native = info["band_resolution"] == "native"
        code = info["crs"]
        self.proj = {"proj:code": code} if code.startswith("EPSG:") else {"proj:code": None, "proj:wkt2": info["crs_wkt"]}
        self.extensions = ([EXT_LABEL] if self.labels else []) + [EXT_ML_AOI, EXT_PROJECTION]
        self.label_props = _label_properties(info) if self.labels else {}
        parent = f"../{COLLECTION}"
        self.links = [{"rel": rel, "href": parent, "type": "application/json"} for rel in ("root", "parent", "collection")]
        if self.fmt != "geotiff":
            keys = ", ".join(g["key"] for g in info["band_groups"])
            self.kind = SAMPLE_FILE_TYPES[self.fmt]
            self.images_text = f"{keys}: [time, band, y, x] for the dates from start_datetime to end_datetime"
            self.labels_text = f"label rasters {', '.join(self.labels)}"
            self.all_bands = [{"name": b} for b in info["bands"]]

    def _grid(self, transform, factor: float) -> dict:
        """proj:shape/transform of an asset whose grid is not the item's (factor: image px per asset px)."""
        if factor == 1:
            return {"ml-aoi:reference-grid": True} if self.native else {}
        a, b, c, d, e, f = transform
        side = int(round(self.size / factor))
        return {"proj:shape": [side, side], "proj:transform": [a * factor, b, c, d, e * factor, f]}

    def _assets(self, row: dict, dates: list) -> dict:
        """The sample's files as STAC assets, hrefs relative to ``stac/``."""
        transform = row["_transform"]
        assets = {}
        if self.fmt == "geotiff":
            grids = {factor: self._grid(transform, factor) for _, _, factor in self.groups}
            for when in dates:
                stamp = when.replace("-", "").replace(":", "")[:15]  # the chip's name, as format_geotiff writes it
                for suffix, bands, factor in self.groups:
                    assets[f"image_{stamp}{suffix}"] = {
                        "href": f"../{row['path']}/{stamp}{suffix}.tif", "type": GEOTIFF, "roles": ["data"],
                        "datetime": when, "bands": bands, "ml-aoi:role": "feature", **grids[factor]}
            label_grid = self._grid(transform, 1.0 / self.k) if self.k > 1 else {}
            for name in self.labels:
                assets[f"label_{name}"] = {"href": f"../{row['path']}/label_{name}.tif", "type": GEOTIFF,
                                           "roles": ["labels", "labels-raster"], "ml-aoi:role": "label", **label_grid}
            return assets
        href, where = f"../{row['path']}", ""
        if self.fmt == "zarr":
            href, where = f"../{ZARR_STORE}", f"sample {row['_index']} (index along the 'sample' dimension) of "
        assets["images"] = {"href": href, "type": self.kind, "roles": ["data"], "ml-aoi:role": "feature",
                            "description": where + self.images_text, "bands": self.all_bands}
        if self.labels:
            assets["labels"] = {"href": href, "type": self.kind, "roles": ["labels", "labels-raster"],
                                "ml-aoi:role": "label", "description": where + self.labels_text,
                                **(self._grid(transform, 1.0 / self.k) if self.k > 1 else {})}
        return assets

    def item(self, row: dict, ring: list, bbox: list, proj_bbox: list) -> dict:
        dates = json.loads(row["dates"])
        props = {
            "datetime": None,  # a range instead: the sample's first and last date
            "start_datetime": dates[0],
            "end_datetime": dates[-1],
            "ml-aoi:split": ML_AOI_SPLIT[row["split"]],
            **self.proj,
            "proj:bbox": proj_bbox,
            "proj:shape": [self.size, self.size],
            "proj:transform": list(row["_transform"]),
            **self.label_props,
        }
        if "class" in self.labels:
            hist = json.loads(row["class_hist"])
            props["label:overviews"] = [{"property_key": "class",
                                         "counts": [{"name": k, "count": int(v)} for k, v in hist.items()]}]
        return {
            "type": "Feature",
            "stac_version": STAC_VERSION,
            "stac_extensions": self.extensions,
            "id": row["sample_id"],
            "geometry": {"type": "Polygon", "coordinates": [ring]},
            "bbox": bbox,
            "properties": props,
            "links": self.links,
            "assets": self._assets(row, dates),
            "collection": self.collection_id,
        }


@dataclass
class ItemsWritten:
    """What one chunk's items add to the collection: their files, by plan index, and their extent."""

    names: list  # (plan index, item file name)
    bounds: list  # west, south, east, north
    first: str
    last: str


class ItemFiles:
    """Writes the item of each sample (``write(rows)`` per chunk of index rows), wherever the samples are written."""

    def __init__(self, folder: Path, info: dict):
        self.items = os.path.join(folder, ITEMS)
        self.info = info
        self.maker = _ItemMaker(info)

    def write(self, rows: list) -> ItemsWritten | None:
        if not rows:
            return None
        lon, lat, (x0, y0, x1, y1) = wgs84_corners(rows, self.info["patch_size"], self.info["crs_wkt"])
        west, south, east, north = lon.min(axis=1), lat.min(axis=1), lon.max(axis=1), lat.max(axis=1)
        rings = np.stack([lon, lat], axis=2)[:, [0, 1, 2, 3, 0]].tolist()
        bboxes = np.stack([west, south, east, north], axis=1).tolist()
        proj_bboxes = np.stack([x0, y0, x1, y1], axis=1).tolist()
        names = []
        for i, row in enumerate(rows):
            name = f"{row['sample_id']}.json"
            with replaced(Path(self.items, name)) as temp, open(temp, "wb") as f:
                f.write(_compact(self.maker.item(row, rings[i], bboxes[i], proj_bboxes[i])).encode("utf-8"))
            names.append((row["_index"], name))
        return ItemsWritten(names, [float(west.min()), float(south.min()), float(east.max()), float(north.max())],
                            min(r["first_date"] for r in rows), max(r["last_date"] for r in rows))


class CatalogWriter:
    """The collection: ``absorb`` each chunk's :class:`ItemsWritten` (any order), then ``close(card)``."""

    def __init__(self, folder: Path, info: dict):
        self.folder = Path(folder)
        os.mkdir(os.path.join(folder, ITEMS))
        self.info = info
        self.written = []  # (plan index, item file name)
        self.bounds = [np.inf, np.inf, -np.inf, -np.inf]
        self.first = self.last = None

    def absorb(self, items: ItemsWritten | None) -> None:
        if items is None:
            return
        self.written.extend(items.names)
        b, c = self.bounds, items.bounds
        self.bounds = [min(b[0], c[0]), min(b[1], c[1]), max(b[2], c[2]), max(b[3], c[3])]
        self.first = items.first if self.first is None else min(self.first, items.first)
        self.last = items.last if self.last is None else max(self.last, items.last)

    def close(self, card: dict) -> Path:
        collection = _collection(card, self.info, self.bounds, self.first, self.last)
        # Indented for people, except the item links: one compact line each, in plan order
        # (the indenting encoder is pure Python, 10x slower on 30k links).
        head = json.dumps(collection, indent=1, ensure_ascii=False)
        links = (_compact({"rel": "item", "href": f"./{ITEMS}/{name}", "type": "application/geo+json"})
                 for _, name in sorted(self.written))
        item_lines = ",\n".join("  " + link for link in links)
        text = head[: head.rindex("]")].rstrip() + ",\n" + item_lines + "\n ]\n}\n"
        path = self.folder / COLLECTION
        path.write_text(text, encoding="utf-8")
        return path


def _collection(card: dict, info: dict, spatial: list, first: str, last: str) -> dict:
    splits = [ML_AOI_SPLIT[s] for s, split in card["splits"].items() if split["samples"]]
    summaries = {"ml-aoi:split": splits, "bands": [{"name": b} for b in card["bands"]]}
    extensions = [EXT_ML_AOI]
    if "class" in info["labels"]:
        # The class ids that occur (from the class table when there is one, as in the items).
        ids = info["class_ids"]
        if ids is None:
            ids = sorted({int(c) for split in card["splits"].values() for c in split["class_pixels"]})
        summaries["label:classes"] = [{"name": None, "classes": ids}]
        summaries["label:type"] = ["raster"]
        extensions.insert(0, EXT_LABEL)
    g = card["grid"]
    assets = {
        "card": {"href": "./dataset.json", "type": "application/json", "roles": ["metadata"],
                 "title": "Dataset card: sources, parameters, normalisation statistics, file list"},
        "index": {"href": "./index.gpkg", "type": "application/geopackage+sqlite3", "roles": ["metadata"],
                  "title": "Sample footprints with split, path, dates and class histogram"},
        "samples": {"href": "./samples.csv", "type": "text/csv", "roles": ["metadata"],
                    "title": "One row per sample: path, split, dates, cloud"},
        "croissant": {"href": "./croissant.json", "type": "application/ld+json", "roles": ["metadata"],
                      "title": "Croissant description of the files, fields and splits"},
    }
    if card["sample_format"] == "zarr":
        assets["store"] = {"href": f"./{ZARR_STORE}", "type": SAMPLE_FILE_TYPES["zarr"], "roles": ["data"],
                           "title": "Every sample in one Zarr v2 store (xarray.open_zarr)"}
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": extensions,
        "id": info["collection_id"],
        "title": "Sentinel-2 patch dataset",
        "description": (
            f"{card['n_samples']} patches of {card['patch_size']} x {card['patch_size']} px with their time series "
            f"({card['sample_format']} format), cut from {len(card['dates'])} dates on a {g['width']} x {g['height']} px "
            f"grid ({g['crs']}). {card['attribution']}."
        ),
        "keywords": ["sentinel-2", "machine learning", "time series", "patches"],
        "license": LICENSE,
        "providers": [{"name": "Copernicus (European Union, ESA)", "roles": ["producer", "licensor"],
                       "url": "https://www.copernicus.eu"},
                      {"name": "satplugin export_patches", "roles": ["processor"]}],
        "extent": {"spatial": {"bbox": [spatial]}, "temporal": {"interval": [[first, last]]}},
        "summaries": summaries,
        "assets": assets,
        # Last, so the item links can follow these (see CatalogWriter.close).
        "links": [{"rel": "root", "href": f"./{COLLECTION}", "type": "application/json", "title": "Sentinel-2 patch dataset"},
                  {"rel": "license", "href": LICENSE_URL, "title": "Legal notice on the use of Copernicus Sentinel data"}],
    }
