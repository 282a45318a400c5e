"""A synthetic Sentinel-2 world with known values, and products cut from it.

Every band's digital number is a formula of the band and the pixel position on its
native lattice (10, 20 or 60 m, origin on the 60 m Sentinel-2 lattice of UTM zone
33N), so a test can compute what any correct download must contain. North-west of a
diagonal across the AOI's corner there is no data (a swath edge). From the same world come:

* the Process API emulator's answers (:mod:`process_api`),
* COG products in the ``sentinel-s2-l2a-cogs`` layout with their STAC item,
* L2A SAFE products with lossless JPEG 2000 bands (folder or zip).

Baseline 04.00+ products store DN + 1000 for valid pixels, as ESA's do.
"""

from __future__ import annotations

import functools
import json
import zipfile
from datetime import datetime
from pathlib import Path

import numpy as np
import rasterio
import rasterio.shutil  # write_band uses it; `import rasterio` alone does not load it
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from .items import stac_item
from .product_folders import mtd_xml, safe_name

CRS = "EPSG:32633"
X0, Y1 = 499980.0, 5100000.0  # both multiples of 60 m
SIZE_M = 12000.0
BAND_CODES = {b: i for i, b in enumerate(
    ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12", "SCL")
)}
NATIVE_M = {"B01": 60, "B09": 60, "B10": 60, "B05": 20, "B06": 20, "B07": 20, "B8A": 20, "B11": 20, "B12": 20, "SCL": 20}
OFFSET_DN = 1000
# An AOI well inside the world, in UTM (about 1.5 x 1.3 km).
AOI_UTM = (500430.0, 5095230.0, 501910.0, 5096480.0)


def native_m(band: str) -> int:
    return NATIVE_M.get(band, 10)


def aoi_4326(bounds=AOI_UTM):
    return shape(transform_geom(CRS, "EPSG:4326", mapping(box(*bounds))))


def valid_at(x, y):
    """Data exists except north-west of a diagonal that cuts the AOI's corner (a swath edge)."""
    return (x - AOI_UTM[0]) + (AOI_UTM[3] - y) >= 300.0


def value_at(band: str, x, y, offset: int = 0):
    """DN of ``band`` at map coordinates ``x, y``: the value of the native pixel containing them.

    Whether that pixel has data is decided at its centre, as a sensor's footprint would.
    """
    res = native_m(band)
    col = np.floor((np.asarray(x) - X0) / res).astype(np.int64)
    row = np.floor((Y1 - np.asarray(y)) / res).astype(np.int64)
    valid = valid_at(X0 + (col + 0.5) * res, Y1 - (row + 0.5) * res)
    if band == "SCL":
        v = ((col // 5 + row // 3) % 11 + 1).astype(np.uint8)
        return np.where(valid, v, 0).astype(np.uint8)
    if band == "dataMask":  # Sentinel Hub's: 1 where there is data
        return valid.astype(np.uint8)
    if band == "CLM":  # Sentinel Hub's cloud mask: 0 clear, 1 cloud, 255 no data
        v = ((col // 8 + row // 8) % 2).astype(np.uint8)
        return np.where(valid, v, 255).astype(np.uint8)
    v = 100 + (BAND_CODES[band] * 311 + col * 7 + row * 13) % 5000
    return np.where(valid, v + offset, 0).astype(np.uint16)


def grid_centres(transform, width, height):
    cols, rows = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    x = transform.c + cols * transform.a
    y = transform.f + rows * transform.e
    return x, y


@functools.lru_cache(maxsize=64)
def native_raster(band: str, offset: int = 0):
    """(array, transform) of ``band`` over the whole world at its native resolution (cached, read-only)."""
    res = native_m(band)
    n = int(SIZE_M // res)
    transform = from_origin(X0, Y1, res, res)
    x, y = grid_centres(transform, n, n)
    data = value_at(band, x, y, offset)
    data.flags.writeable = False
    return data, transform


def expected_on_grid(band: str, grid, offset: int = 0):
    """What a 10 m band must hold on a grid aligned with its native lattice."""
    x, y = grid_centres(grid.transform, grid.width, grid.height)
    return value_at(band, x, y, offset)


def write_band(path: Path, band: str, offset: int = 0, driver: str = "COG"):
    data, transform = native_raster(band, offset)
    profile = dict(width=data.shape[1], height=data.shape[0], count=1, dtype=data.dtype.name, crs=CRS,
                   transform=transform, nodata=0)
    if driver == "COG":
        with rasterio.io.MemoryFile() as mem:
            with mem.open(driver="GTiff", **profile) as tmp:
                tmp.write(data, 1)
            with mem.open() as src:
                rasterio.shutil.copy(src, path, driver="COG", BLOCKSIZE=128, COMPRESS="DEFLATE",
                                     RESAMPLING="NEAREST" if band == "SCL" else "AVERAGE")
    else:  # lossless JPEG 2000, as in SAFE products (the values must survive exactly)
        with rasterio.open(path, "w", driver="JP2OpenJPEG", QUALITY=100, REVERSIBLE="YES", **profile) as dst:
            dst.write(data, 1)


def footprint_4326():
    return aoi_4326((X0, Y1 - SIZE_M, X0 + SIZE_M, Y1))


def make_cog_product(parent: Path, *, when: datetime, bands=("B02", "B03", "B04", "B08", "B05", "SCL"),
                     baseline="02.14", asset_base=None, platform="S2B", orbit=22, tile="33TWM",
                     boa_offset_applied=None) -> tuple[Path, dict]:
    """A COG folder and its STAC item (asset hrefs under ``asset_base``/<folder name>)."""
    offset = OFFSET_DN if baseline >= "04.00" and not boa_offset_applied else 0
    item = stac_item(tile=tile, when=when, platform=platform, orbit=orbit, baseline=baseline,
                     geometry=footprint_4326(), asset_base="https://example.invalid")
    folder = parent / item["id"]
    folder.mkdir(parents=True)
    base = (asset_base.rstrip("/") + "/" + folder.name) if asset_base else None
    keep = {}
    for key, asset in item["assets"].items():
        name = asset["href"].rsplit("/", 1)[-1]
        band = name.split(".")[0]
        if key.endswith("-jp2") or band not in bands:
            continue
        write_band(folder / name, band, 0 if band == "SCL" else offset)
        keep[key] = {**asset, "href": f"{base}/{name}" if base else str(folder / name)}
    item["assets"] = keep
    if boa_offset_applied is not None:
        item["properties"]["earthsearch:boa_offset_applied"] = boa_offset_applied
    if base:
        item["links"] = [{"rel": "self", "href": f"{base}/{item['id']}.json"}]
    (folder / f"{item['id']}.json").write_text(json.dumps(item))
    return folder, item


def make_safe_l2a(parent: Path, *, when: datetime, baseline: str, bands=("B02", "B03", "B04", "B08"),
                  tile="33TWM", orbit=22, platform="S2A", zipped=False) -> Path:
    """An L2A SAFE with lossless JP2 bands (+ SCL at 20 m) and its MTD_MSIL2A.xml."""
    name = safe_name(platform, "L2A", when, baseline, orbit, tile)
    granule = f"GRANULE/L2A_T{tile}_A000000_{when:%Y%m%dT%H%M%S}/IMG_DATA"
    stamp = f"T{tile}_{when:%Y%m%dT%H%M%S}"
    offset = OFFSET_DN if baseline >= "04.00" else 0
    images = {b: f"{granule}/R{native_m(b)}m/{stamp}_{b}_{native_m(b)}m" for b in (*bands, "SCL")}
    safe = parent / f"{name}.SAFE"
    for band, rel in images.items():
        target = safe / f"{rel}.jp2"
        target.parent.mkdir(parents=True, exist_ok=True)
        write_band(target, band, 0 if band == "SCL" else offset, driver="JP2OpenJPEG")
    xml = mtd_xml(name, level="L2A", when=when, cloud=5.0, footprint=footprint_4326(), baseline=baseline,
                  orbit=orbit, platform=platform, image_files=list(images.values()))
    (safe / "MTD_MSIL2A.xml").write_text(xml)
    for aux in safe.rglob("*.aux.xml"):
        aux.unlink()
    if not zipped:
        return safe
    archive = parent / f"{name}.SAFE.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                zf.write(f, f"{name}.SAFE/{f.relative_to(safe).as_posix()}")
    for f in sorted(safe.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    safe.rmdir()
    return archive
