"""Tiny Sentinel-2 product folders made by the tests: SAFE (folder or zip) and COG layouts.

They are what the local backend reads and what the range file server serves. Every
value in them is invented; the SCL raster has a known pattern so cloud percentages can
be asserted exactly.
"""

from __future__ import annotations

import json
import zipfile
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin
from rasterio.warp import transform_geom
from shapely.geometry import box, mapping, shape

from .items import stac_item

# The COG product grid: EPSG:32632, 200 x 200 px of 20 m, origin at (700000, 5000040).
COG_CRS = "EPSG:32632"
COG_ORIGIN = (700000.0, 5000040.0)
COG_PIXEL = 20.0
COG_SIZE = 200


def scl_pattern() -> np.ndarray:
    """Left half vegetation (4) with a cloud-shadow (3) corner, top right cloud (9), bottom right no data (0).

    Over the whole raster: 30000 valid pixels, 12500 cloud or shadow = 41.67 %.
    Top-left quadrant: 25 % (shadow). Top-right quadrant: 100 %. Bottom-right: no valid pixel.
    """
    scl = np.full((COG_SIZE, COG_SIZE), 4, dtype=np.uint8)
    scl[:50, :50] = 3
    scl[:100, 100:] = 9
    scl[100:, 100:] = 0
    return scl


def cog_quadrant_4326(row: int, col: int):
    """A quadrant (0/1, 0/1) of the COG grid as a lon/lat polygon."""
    half = COG_SIZE // 2 * COG_PIXEL
    x0 = COG_ORIGIN[0] + col * half
    y1 = COG_ORIGIN[1] - row * half
    return shape(transform_geom(COG_CRS, "EPSG:4326", mapping(box(x0, y1 - half, x0 + half, y1))))


def cog_footprint_4326():
    size = COG_SIZE * COG_PIXEL
    x0, y1 = COG_ORIGIN
    return shape(transform_geom(COG_CRS, "EPSG:4326", mapping(box(x0, y1 - size, x0 + size, y1))))


def write_raster(path: Path, data: np.ndarray, driver: str = "GTiff", nodata=None):
    profile = dict(
        driver=driver,
        width=data.shape[1],
        height=data.shape[0],
        count=1,
        dtype=data.dtype.name,
        crs=COG_CRS,
        transform=from_origin(COG_ORIGIN[0], COG_ORIGIN[1], COG_PIXEL, COG_PIXEL),
    )
    if driver == "GTiff":
        profile.update(tiled=True, blockxsize=128, blockysize=128, compress="deflate")
    if nodata is not None:
        profile["nodata"] = nodata
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)
        if driver == "GTiff":
            dst.build_overviews([2], rasterio.enums.Resampling.nearest)


def make_cog_folder(
    parent: Path,
    *,
    when: datetime,
    tile="32TQM",
    cloud=41.67,
    platform="S2B",
    orbit=65,
    baseline="05.09",
    asset_base: str | None = None,
    name: str | None = None,
    scl: np.ndarray | None = None,
) -> Path:
    """B02, B04, B8A and SCL GeoTIFFs with a STAC item JSON, in the sentinel-s2-l2a-cogs layout.

    ``scl`` replaces the default :func:`scl_pattern`.
    """
    item = stac_item(
        tile=tile,
        when=when,
        cloud=cloud,
        platform=platform,
        orbit=orbit,
        baseline=baseline,
        geometry=cog_footprint_4326(),
        asset_base=asset_base or "https://example.invalid/cogs",
    )
    folder = parent / (name or item["id"])
    folder.mkdir(parents=True)
    ramp = np.arange(COG_SIZE * COG_SIZE, dtype=np.uint16).reshape(COG_SIZE, COG_SIZE)
    for band in ("B02", "B04", "B8A"):
        write_raster(folder / f"{band}.tif", ramp)
    write_raster(folder / "SCL.tif", scl_pattern() if scl is None else scl, nodata=0)
    (folder / f"{item['id']}.json").write_text(json.dumps(item))
    return folder


# --- SAFE ---------------------------------------------------------------------------

SAFE_FOOTPRINT = box(12.0, 45.0, 13.4, 46.0).difference(box(12.0, 45.0, 12.4, 45.3))  # a clipped swath edge


def safe_name(platform, level, when: datetime, baseline, orbit, tile, processed=None) -> str:
    processed = processed or when + timedelta(hours=3)
    return (
        f"{platform}_MSI{level}_{when:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_R{orbit:03d}_T{tile}_"
        f"{processed:%Y%m%dT%H%M%S}"
    )


def mtd_xml(
    name: str,
    *,
    level: str,
    when: datetime,
    cloud: float | None,
    footprint,
    baseline: str,
    orbit: int,
    platform: str,
    image_files,
) -> str:
    level_tag = "Level-2A" if level == "L2A" else "Level-1C"
    ptype = "S2MSI2A" if level == "L2A" else "S2MSI1C"
    pos = ""
    if footprint is not None:
        coords = list(footprint.exterior.coords)
        pos = " ".join(f"{lat:.6f} {lon:.6f}" for lon, lat in coords)
        pos = (
            f"<n1:Geometric_Info><Product_Footprint><Product_Footprint><Global_Footprint>"
            f"<EXT_POS_LIST>{pos}</EXT_POS_LIST></Global_Footprint></Product_Footprint>"
            f"</Product_Footprint></n1:Geometric_Info>"
        )
    quality = (
        f"<n1:Quality_Indicators_Info><Cloud_Coverage_Assessment>{cloud}</Cloud_Coverage_Assessment>"
        f"</n1:Quality_Indicators_Info>"
        if cloud is not None
        else ""
    )
    images = "".join(f"<IMAGE_FILE>{f}</IMAGE_FILE>" for f in image_files)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<n1:{level_tag}_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_{level_tag}.xsd">
  <n1:General_Info>
    <Product_Info>
      <PRODUCT_START_TIME>{when:%Y-%m-%dT%H:%M:%S}.024Z</PRODUCT_START_TIME>
      <PRODUCT_URI>{name}.SAFE</PRODUCT_URI>
      <PROCESSING_LEVEL>{level_tag}</PROCESSING_LEVEL>
      <PRODUCT_TYPE>{ptype}</PRODUCT_TYPE>
      <PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>
      <GENERATION_TIME>{when + timedelta(hours=3):%Y-%m-%dT%H:%M:%S}.000000Z</GENERATION_TIME>
      <Datatake datatakeIdentifier="G{platform}_{when:%Y%m%dT%H%M%S}_000000_N{baseline}">
        <SPACECRAFT_NAME>Sentinel-{platform[-2:]}</SPACECRAFT_NAME>
        <DATATAKE_TYPE>INS-NOBS</DATATAKE_TYPE>
        <SENSING_ORBIT_NUMBER>{orbit}</SENSING_ORBIT_NUMBER>
        <SENSING_ORBIT_DIRECTION>DESCENDING</SENSING_ORBIT_DIRECTION>
      </Datatake>
      <Product_Organisation><Granule_List><Granule granuleIdentifier="x" imageFormat="JPEG2000">
        {images}
      </Granule></Granule_List></Product_Organisation>
    </Product_Info>
  </n1:General_Info>
  {pos}
  {quality}
</n1:{level_tag}_User_Product>
"""


def make_safe(
    parent: Path,
    *,
    when: datetime,
    level="L2A",
    cloud: float | None = 12.5,
    footprint=SAFE_FOOTPRINT,
    baseline="05.09",
    orbit=65,
    platform="S2B",
    tile="32TQM",
    write_band: bool = False,
    zipped: bool = False,
) -> Path:
    """A SAFE product with its metadata file; optionally one real JPEG 2000 band; optionally zipped."""
    name = safe_name(platform, level, when, baseline, orbit, tile)
    granule = f"GRANULE/{level}_T{tile}_A000000_{when:%Y%m%dT%H%M%S}/IMG_DATA"
    stamp = f"T{tile}_{when:%Y%m%dT%H%M%S}"
    if level == "L2A":
        images = [
            f"{granule}/R10m/{stamp}_B02_10m",
            f"{granule}/R20m/{stamp}_B02_20m",
            f"{granule}/R20m/{stamp}_SCL_20m",
            f"{granule}/R60m/{stamp}_B01_60m",
        ]
    else:
        images = [f"{granule}/{stamp}_B02", f"{granule}/{stamp}_B8A"]
    mtd_name = "MTD_MSIL2A.xml" if level == "L2A" else "MTD_MSIL1C.xml"
    xml = mtd_xml(
        name,
        level=level,
        when=when,
        cloud=cloud,
        footprint=footprint,
        baseline=baseline,
        orbit=orbit,
        platform=platform,
        image_files=images,
    )
    safe = parent / f"{name}.SAFE"
    safe.mkdir(parents=True)
    (safe / mtd_name).write_text(xml)
    if write_band:
        band = safe / f"{images[0]}.jp2"
        band.parent.mkdir(parents=True)
        write_raster(band, np.ones((COG_SIZE, COG_SIZE), dtype=np.uint16), driver="JP2OpenJPEG")
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
