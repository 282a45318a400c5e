"""Local folder backend: products already on disk.

Three layouts are recognised, at any depth below the folder (a copy of the public
bucket, ``X/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A``, is seven
levels down); what bounds the walk is the number of files and folders looked at
(:data:`MAX_ENTRIES`), not a depth:

* ``<name>.SAFE`` folders, as ESA distributes them;
* ``<name>.SAFE.zip`` / ``<name>.zip`` archives of those (read in place through
  GDAL's ``/vsizip/``, never unpacked);
* COG folders in the ``sentinel-s2-l2a-cogs`` layout: ``B02.tif``... next to the
  product's STAC item JSON.

For SAFE products the product metadata file (``MTD_MSIL2A.xml``/``MTD_MSIL1C.xml``)
gives the scene cloud % and the data footprint (``EXT_POS_LIST``). When the footprint
is missing, the bounds of a band raster stand in (the whole tile square, which may
overstate coverage for a product at a swath edge); with neither, the product is skipped
with a warning rather than guessed. A folder with no product at all is an error that
says how much was looked at (an empty result would read as "widen the filters").

Nothing a product holds is trusted to be well-formed: the metadata file is read up to
:data:`MAX_METADATA_BYTES` (a real one is a few hundred kB; a zip can inflate a small
member to gigabytes), and the band files its ``IMAGE_FILE`` entries name must stay inside
the product (:func:`hrefs.inside_product`), so a crafted product cannot pull another
file of the disk into a dataset.
"""

from __future__ import annotations

import functools
import json
import os
import re
import xml.etree.ElementTree as ET
import zipfile
from datetime import datetime
from pathlib import Path

import shapely
from shapely.geometry import Polygon, box

from ..errors import SatPluginError
from ..feedback import Feedback
from ..geometry import polygonal_part
from ..http.hrefs import inside_product
from ..products import (
    Product,
    normalise_collection,
    normalise_platform,
    parse_datetime,
    parse_product_name,
)
from ..sentinel2 import canonical_band, format_baseline
from .stac import SENTINEL2, item_level, product_from_stac_item

# A library of a few thousand products is a few hundred thousand files (a SAFE holds
# about a hundred); a walk past this has most likely been pointed at a whole disk.
MAX_ENTRIES = 1_000_000
# A STAC item is a few tens of kB; larger JSON files are something else.
_MAX_ITEM_JSON_BYTES = 5_000_000
# A product metadata file is a few hundred kB; more is a damaged or hostile product.
MAX_METADATA_BYTES = 64 * 1024 * 1024
_READ_CHUNK = 1024 * 1024
_MTD_NAMES = ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml")
# Band image names inside a SAFE: T32TQM_20230612T101559_B02_10m.jp2 (L2A) or ..._B02.jp2 (L1C).
_IMAGE_BAND = re.compile(r"_(B\d{2}|B8A|SCL)(?:_(\d{2})m)?$")


class LocalBackend:
    """Products found in a folder tree; filtering by date, AOI and cloud happens here too."""

    def __init__(
        self, folder, *, name: str = "local", max_entries: int = MAX_ENTRIES, max_metadata_bytes: int = MAX_METADATA_BYTES
    ):
        if not folder:
            raise SatPluginError("Choose the folder that holds the downloaded products.")
        self.folder = Path(folder)
        self.name = name
        self.max_entries = max_entries
        self.max_metadata_bytes = max_metadata_bytes

    def search(
        self,
        aoi,
        start: datetime,
        end: datetime,
        collection: str,
        max_cloud: float | None = None,
        *,
        feedback: Feedback | None = None,
    ) -> list[Product]:
        feedback = Feedback.of(feedback)
        if not self.folder.is_dir():
            raise SatPluginError(f"The folder {self.folder} does not exist.")
        level = normalise_collection(collection)
        walk = ScanStats()
        found = scan_folder(
            self.folder,
            max_entries=self.max_entries,
            feedback=feedback,
            max_metadata_bytes=self.max_metadata_bytes,
            stats=walk,
        )
        if not found:
            stopped = f", stopping there at the limit of {self.max_entries}" if walk.truncated else ""
            raise SatPluginError(
                f"No Sentinel-2 product was found in {self.folder} (looked at {walk.folders} folder(s) and "
                f"{walk.files} file(s), at every depth{stopped}): choose the folder that holds the .SAFE folders, "
                ".zip archives or COG folders with their STAC item JSON."
            )
        kept = []
        for p in found:
            p.backend = self.name
            if p.collection != level or not (start <= p.datetime <= end):
                continue
            if max_cloud is not None and p.cloud_cover is not None and p.cloud_cover > max_cloud:
                continue
            if not p.footprint.intersects(aoi):
                continue
            kept.append(p)
        feedback.set_progress(1.0)
        return kept


class ScanStats:
    """How much a scan looked at: what a "nothing found" message reports."""

    def __init__(self):
        self.folders = 0
        self.files = 0
        self.truncated = False


def scan_folder(
    folder,
    *,
    max_entries: int = MAX_ENTRIES,
    feedback: Feedback | None = None,
    max_metadata_bytes: int = MAX_METADATA_BYTES,
    stats: ScanStats | None = None,
) -> list[Product]:
    """Every recognisable product below ``folder`` at any depth, unfiltered.

    The walk stops after ``max_entries`` files and folders (logged); ``stats`` receives
    the counts. Symbolic links to folders are not followed, so a link loop cannot keep it going.
    ``feedback`` receives the products skipped, and is polled for cancel once per folder.
    """
    feedback = Feedback.of(feedback)
    root = Path(folder)
    walk = stats if stats is not None else ScanStats()
    products = []
    safe_folder = functools.partial(read_safe, max_metadata_bytes=max_metadata_bytes)
    safe_zip = functools.partial(read_safe_zip, max_metadata_bytes=max_metadata_bytes)
    for dirpath, dirnames, filenames in os.walk(root):
        feedback.check_canceled()
        walk.folders += 1
        walk.files += len(filenames)
        if walk.folders + walk.files > max_entries:
            walk.truncated = True
            feedback.log(
                f"Stopped looking for products after {max_entries} files and folders in {root}; "
                "choose the folder that holds the products to search all of them."
            )
            break
        here = Path(dirpath)
        for d in sorted(dirnames):
            if d.upper().endswith(".SAFE"):
                _add(products, safe_folder, here / d, feedback)
        # A product folder is read as a whole: do not look inside it again.
        dirnames[:] = sorted(d for d in dirnames if not d.upper().endswith(".SAFE"))
        for f in sorted(filenames):
            if f.lower().endswith(".zip") and f.upper().startswith("S2"):
                _add(products, safe_zip, here / f, feedback)
        if _looks_like_cog_folder(filenames):
            _add(products, read_cog_folder, here, feedback)
            dirnames[:] = []
    return products


def _add(products, reader, path, feedback: Feedback):
    try:
        product = reader(path, feedback=feedback)
    except SatPluginError as exc:
        feedback.log(f"Skipped {path.name}: {exc}")
        return
    except (OSError, ValueError, KeyError, ET.ParseError, zipfile.BadZipFile) as exc:
        feedback.log(f"Skipped {path.name}: could not read it ({type(exc).__name__}: {exc}).")
        return
    if product is not None:
        products.append(product)


def _looks_like_cog_folder(filenames) -> bool:
    names = {f.upper() for f in filenames}
    return any(n.endswith(".JSON") for n in names) and any(
        canonical_band(f) and f.lower().endswith((".tif", ".tiff")) for f in filenames
    )


# --- SAFE ---------------------------------------------------------------------------


class MetadataTooLarge(SatPluginError):
    """A product metadata file far larger than a real one."""


def _too_large(limit: int) -> MetadataTooLarge:
    return MetadataTooLarge(
        f"its product metadata is larger than {limit / (1024 * 1024):g} MiB, far more than a real one "
        "(a few hundred kB), so the product is damaged or not a Sentinel-2 product; download it again."
    )


def read_capped(stream, limit: int) -> bytes:
    """At most ``limit`` bytes of a file object, read in chunks; more is :class:`MetadataTooLarge`."""
    buf = bytearray()
    while True:
        chunk = stream.read(min(_READ_CHUNK, limit + 1 - len(buf)))
        if not chunk:
            return bytes(buf)
        buf += chunk
        if len(buf) > limit:
            raise _too_large(limit)


def _product_images(name: str, entries, feedback: Feedback) -> list[str]:
    """The ``IMAGE_FILE`` entries that stay inside the product; the others are logged and dropped."""
    kept = [e for e in entries if inside_product(e)]
    if len(kept) < len(entries):
        feedback.log(
            f"{name}: ignored {len(entries) - len(kept)} IMAGE_FILE entr(ies) of its metadata that point outside "
            "the product; only files inside a product are read."
        )
    return kept


def read_safe(path, *, feedback: Feedback | None = None, max_metadata_bytes: int = MAX_METADATA_BYTES) -> Product | None:
    feedback = Feedback.of(feedback)
    path = Path(path)
    mtd = next((path / n for n in _MTD_NAMES if (path / n).is_file()), None)
    if mtd is None:
        feedback.log(f"Skipped {path.name}: no MTD_MSIL2A.xml or MTD_MSIL1C.xml inside.")
        return None
    with open(mtd, "rb") as f:
        meta = parse_product_metadata(read_capped(f, max_metadata_bytes))
    rel = _band_images(_product_images(path.name, meta["images"], feedback))
    images = {band: str(path / r) for band, r in rel.items()}
    if not images:
        images = _glob_safe_images(path)
    return _safe_product(path.name, meta, images, str(path), feedback)


def read_safe_zip(path, *, feedback: Feedback | None = None, max_metadata_bytes: int = MAX_METADATA_BYTES) -> Product | None:
    feedback = Feedback.of(feedback)
    path = Path(path)
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        mtd = next((n for n in names if n.count("/") == 1 and n.rsplit("/", 1)[-1] in _MTD_NAMES), None)
        if mtd is None:
            feedback.log(f"Skipped {path.name}: no product metadata inside the archive.")
            return None
        if zf.getinfo(mtd).file_size > max_metadata_bytes:
            raise _too_large(max_metadata_bytes)  # the declared size; the read below checks the real one
        with zf.open(mtd) as member:
            meta = parse_product_metadata(read_capped(member, max_metadata_bytes))
        safe_dir = mtd.split("/", 1)[0]
        rel = _band_images(_product_images(path.name, meta["images"], feedback))
        if not rel:
            members = [n[len(safe_dir) + 1 :] for n in names if n.startswith(safe_dir + "/") and n.endswith(".jp2")]
            rel = _band_images(m.rsplit(".", 1)[0] for m in members if inside_product(m))
    vsi = f"/vsizip/{path.resolve()}/{safe_dir}"
    images = {band: f"{vsi}/{r}" for band, r in rel.items()}
    return _safe_product(safe_dir, meta, images, str(path), feedback)


def parse_product_metadata(xml_bytes: bytes) -> dict:
    """The few fields of a SAFE product metadata file that a search needs."""
    root = ET.fromstring(xml_bytes)
    texts: dict = {}
    images = []
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag == "IMAGE_FILE" and el.text:
            images.append(el.text.strip())
        elif el.text and el.text.strip() and tag not in texts:
            texts[tag] = el.text.strip()
    return {"texts": texts, "images": images}


def footprint_from_pos_list(text: str):
    """``EXT_POS_LIST`` is "lat lon lat lon ..." (lat first); a polygon in lon/lat, or None."""
    values = [float(v) for v in text.split()]
    if len(values) < 8 or len(values) % 2:
        return None
    coords = [(values[i + 1], values[i]) for i in range(0, len(values), 2)]
    poly = Polygon(coords)
    if not poly.is_valid:
        poly = shapely.make_valid(poly)
    return polygonal_part(poly)


def _band_images(relative_paths) -> dict:
    """Band -> relative path without extension, keeping the finest resolution of each band."""
    best: dict = {}
    for rel in relative_paths:
        m = _IMAGE_BAND.search(rel)
        if not m:
            continue
        band, res = m.group(1), int(m.group(2) or 0)
        if band not in best or res < best[band][0]:
            best[band] = (res, rel)
    return {band: rel + ".jp2" for band, (_, rel) in best.items()}


def _glob_safe_images(path: Path) -> dict:
    rels = [str(p.relative_to(path).with_suffix("")) for p in path.glob("GRANULE/*/IMG_DATA/**/*.jp2")]
    return {band: str(path / rel) for band, rel in _band_images(rels).items()}


def _safe_product(name: str, meta: dict, images: dict, product_path: str, feedback: Feedback) -> Product | None:
    texts = meta["texts"]
    named = parse_product_name(name)
    if not named.get("mgrs_tile"):
        feedback.log(f"Skipped {name}: the name is not a Sentinel-2 product name.")
        return None
    footprint = footprint_from_pos_list(texts["EXT_POS_LIST"]) if texts.get("EXT_POS_LIST") else None
    if footprint is None:
        footprint = _raster_footprint(images.values())
        if footprint is not None:
            feedback.log(f"{name}: no footprint in the metadata; using the tile's extent.")
    if footprint is None:
        feedback.log(f"Skipped {name}: no footprint in the metadata and no readable band to take one from.")
        return None
    cloud = texts.get("Cloud_Coverage_Assessment")
    orbit = texts.get("SENSING_ORBIT_NUMBER")
    level = texts.get("PRODUCT_TYPE") or named.get("collection") or name
    return Product(
        product_id=name[:-5] if name.upper().endswith(".SAFE") else name,
        datetime=parse_datetime(texts.get("PRODUCT_START_TIME")) or named["datetime"],
        platform=normalise_platform(texts.get("SPACECRAFT_NAME")) or named.get("platform", ""),
        mgrs_tile=named["mgrs_tile"],
        relative_orbit=int(orbit) if orbit else named.get("relative_orbit"),
        processing_baseline=format_baseline(texts.get("PROCESSING_BASELINE")) or named.get("processing_baseline"),
        collection=normalise_collection(level),
        cloud_cover=float(cloud) if cloud is not None else None,
        footprint=footprint,
        backend="local",
        # ESA's own files: whatever offset the baseline adds is in them.
        download={"kind": "local", "path": product_path, "assets": dict(sorted(images.items())), "boa_offset_applied": False},
        processing_time=parse_datetime(texts.get("GENERATION_TIME")) or named.get("processing_time"),
    )


def _raster_footprint(paths):
    """The lon/lat outline of the first band raster that opens, or None."""
    import rasterio
    from rasterio.warp import transform_geom

    for p in paths:
        try:
            with rasterio.open(p) as src:
                if src.crs is None:
                    continue
                outline = box(*src.bounds)
                geom = transform_geom(src.crs, "EPSG:4326", outline.__geo_interface__, antimeridian_cutting=True)
                return polygonal_part(shapely.geometry.shape(geom))
        except rasterio.errors.RasterioIOError:
            continue
    return None


# --- COG folders --------------------------------------------------------------------


def read_cog_folder(path, *, feedback: Feedback | None = None) -> Product | None:
    """A folder of band GeoTIFFs with the product's STAC item JSON beside them."""
    feedback = Feedback.of(feedback)
    path = Path(path)
    item = None
    for candidate in sorted(path.glob("*.json")):
        if candidate.stat().st_size > _MAX_ITEM_JSON_BYTES:
            continue
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(data, dict) and data.get("type") == "Feature" and "properties" in data:
            item = data
            break
    if item is None:
        feedback.log(f"Skipped {path.name}: band files but no STAC item JSON to date them.")
        return None
    mission = item_level(item)[0]
    if mission != SENTINEL2:
        feedback.log(f"Skipped {path.name}: its STAC item is a {mission} product, not Sentinel-2.")
        return None
    product = product_from_stac_item(item, backend="local")
    if product is None:
        feedback.log(f"Skipped {path.name}: its STAC item has no geometry or date.")
        return None
    assets = {}
    for f in sorted(path.iterdir()):
        band = canonical_band(f.name) if f.suffix.lower() in (".tif", ".tiff") else None
        if band:
            assets[band] = str(f)
    product.download = {
        "kind": "local",
        "path": str(path),
        "item_id": item.get("id"),
        "assets": assets,
        "boa_offset_applied": product.download.get("boa_offset_applied"),
    }
    return product
