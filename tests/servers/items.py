"""Sentinel-2 items for the emulators: from the real Earth Search item when present.

The real item (tile 29RKH, 2020-02-19) lives in the shared data folder, which a fresh
clone does not have. Without it, a project-generated item of the same structure is
used; every test that builds items works either way. Dates, ids, cloud and geometry
are varied by the builders and are invented.
"""

from __future__ import annotations

import copy
import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

from shapely.geometry import mapping, shape

REAL_ITEM = "s2_l2a_29RKH_100m/S2A_29RKH_20200219_0_L2A.json"
BANDS_BY_KEY = {
    "coastal": "B01",
    "blue": "B02",
    "green": "B03",
    "red": "B04",
    "rededge1": "B05",
    "rededge2": "B06",
    "rededge3": "B07",
    "nir": "B08",
    "nir08": "B8A",
    "nir09": "B09",
    "swir16": "B11",
    "swir22": "B12",
    "scl": "SCL",
}
# The real 29RKH data footprint (Earth Search item geometry), used by the generated item too
# so that geometry-dependent numbers do not change with the data folder's presence.
TILE_29RKH = {
    "type": "Polygon",
    "coordinates": [
        [
            [-11.97923472537954, 25.286618366521218],
            [-10.889528282438034, 25.304614738479703],
            [-10.8745567866346, 24.313530984433374],
            [-11.955654176404737, 24.29633060395354],
            [-11.97923472537954, 25.286618366521218],
        ]
    ],
}


def real_data_dir() -> Path | None:
    """``$SATPLUGIN_REAL_DATA`` when set, else ``<repo>/../shared/data``; None if it does not exist."""
    env = os.environ.get("SATPLUGIN_REAL_DATA")
    folder = Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"
    return folder if folder.is_dir() else None


def real_item_path() -> Path | None:
    root = real_data_dir()
    if root is None:
        return None
    p = root / REAL_ITEM
    return p if p.is_file() else None


def _generated_template() -> dict:
    assets = {
        key: {
            "href": f"https://example.invalid/sentinel-s2-l2a-cogs/29/R/KH/2020/2/S2A_29RKH_20200219_0_L2A/{band}.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        for key, band in BANDS_BY_KEY.items()
    }
    for key, band in list(BANDS_BY_KEY.items()):
        assets[f"{key}-jp2"] = {"href": f"s3://example-invalid/tiles/29/R/KH/2020/2/19/0/{band}.jp2", "roles": ["data"]}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": "S2A_29RKH_20200219_0_L2A",
        "collection": "sentinel-2-l2a",
        "properties": {
            "platform": "sentinel-2a",
            "constellation": "sentinel-2",
            "eo:cloud_cover": 4.05,
            "mgrs:utm_zone": 29,
            "mgrs:latitude_band": "R",
            "mgrs:grid_square": "KH",
            "s2:processing_baseline": "02.14",
            "s2:product_uri": "S2A_MSIL2A_20200219T112111_N0214_R037_T29RKH_20200219T123947.SAFE",
            "s2:generation_time": "2020-02-19T12:39:47.000000Z",
            "datetime": "2020-02-19T11:34:25.405000Z",
        },
        "geometry": copy.deepcopy(TILE_29RKH),
        "bbox": list(shape(TILE_29RKH).bounds),
        "links": [],
        "assets": assets,
    }


def template_item() -> dict:
    path = real_item_path()
    if path is not None:
        return json.loads(path.read_text())
    return _generated_template()


def safe_name(platform, level, when: datetime, baseline: str, orbit: int, tile: str, processed: datetime) -> str:
    return (
        f"{platform}_MSI{level}_{when:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_R{orbit:03d}_T{tile}"
        f"_{processed:%Y%m%dT%H%M%S}"
    )


def stac_item(
    *,
    tile: str = "29RKH",
    when: datetime = datetime(2020, 2, 19, 11, 34, 25, tzinfo=timezone.utc),
    platform: str = "S2A",
    orbit: int = 37,
    baseline: str = "02.14",
    processed: datetime | None = None,
    cloud: float = 4.05,
    geometry=None,
    level: str = "L2A",
    sequence: int = 0,
    asset_base: str | None = None,
) -> dict:
    """An Earth Search v1 item varied from the template.

    ``asset_base`` replaces the asset folder URL, e.g. with a loopback file server.
    """
    item = template_item()
    processed = processed or when + timedelta(hours=1)
    item["id"] = f"{platform}_{tile}_{when:%Y%m%d}_{sequence}_{level}"
    item["collection"] = f"sentinel-2-{level.lower()}"
    geom = geometry if geometry is not None else shape(TILE_29RKH)
    geom = geom if isinstance(geom, dict) else mapping(geom)
    item["geometry"] = geom
    item["bbox"] = list(shape(geom).bounds)
    props = item["properties"]
    props.update(
        {
            "platform": f"sentinel-2{platform[-1].lower()}",
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "eo:cloud_cover": cloud,
            "mgrs:utm_zone": int(tile[:2]),
            "mgrs:latitude_band": tile[2],
            "mgrs:grid_square": tile[3:],
            "s2:processing_baseline": baseline,
            "s2:product_type": f"S2MSI{level[1:]}",
            "s2:product_uri": safe_name(platform, level, when, baseline, orbit, tile, processed) + ".SAFE",
            "s2:generation_time": processed.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        }
    )
    props.pop("grid:code", None)
    if asset_base is not None:
        for asset in item["assets"].values():
            name = asset["href"].rsplit("/", 1)[-1]
            asset["href"] = f"{asset_base.rstrip('/')}/{name}"
    return item


def catalog_item(
    *,
    tile: str = "29RKH",
    when: datetime = datetime(2020, 2, 19, 11, 22, 21, tzinfo=timezone.utc),
    platform: str = "S2A",
    orbit: int = 37,
    baseline: str = "02.14",
    processed: datetime | None = None,
    cloud: float = 4.05,
    geometry=None,
    level: str = "L2A",
    with_safe_suffix: bool = True,
) -> dict:
    """A Sentinel Hub Catalog API item: SAFE name as id, few properties, no band assets."""
    processed = processed or when + timedelta(hours=1)
    geom = geometry if geometry is not None else shape(TILE_29RKH)
    geom = geom if isinstance(geom, dict) else mapping(geom)
    name = safe_name(platform, level, when, baseline, orbit, tile, processed)
    return {
        "stac_version": "1.0.0",
        "stac_extensions": ["https://stac-extensions.github.io/eo/v1.0.0/schema.json"],
        "type": "Feature",
        "id": name + (".SAFE" if with_safe_suffix else ""),
        "collection": f"sentinel-2-{level.lower()}",
        "geometry": geom,
        "bbox": list(shape(geom).bounds),
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "platform": f"sentinel-2{platform[-1].lower()}",
            "instruments": ["msi"],
            "constellation": "sentinel-2",
            "gsd": 10,
            "eo:cloud_cover": cloud,
            "proj:epsg": 32600 + int(tile[:2]),
        },
        "assets": {},
        "links": [],
    }


# --- other catalogues' shapes of the same product -----------------------------------------

C1_BUCKET = "https://e84-earth-search-sentinel-data.s3.us-west-2.amazonaws.com/sentinel-2-c1-l2a"


def c1_item(*, baseline: str = "05.00", boa_offset_applied: bool = False, asset_base: str | None = None, **kw) -> dict:
    """An Earth Search ``sentinel-2-c1-l2a`` item (Collection 1): the template reprocessed.

    Collection 1 ids carry the tile and sensing time (``S2A_T29RKH_20200219T112111_L2A``),
    its COGs lie in another bucket, it lists no JPEG 2000 copies, and its items state
    ``earthsearch:boa_offset_applied``. ``kw`` as for :func:`stac_item`.
    """
    item = stac_item(baseline=baseline, **kw)
    props = item["properties"]
    named = props["s2:product_uri"].split("_")
    tile, sensing = named[5][1:], named[2]
    item["id"] = f"{named[0]}_T{tile}_{sensing}_L2A"
    item["collection"] = "sentinel-2-c1-l2a"
    props["earthsearch:boa_offset_applied"] = boa_offset_applied
    folder = asset_base or f"{C1_BUCKET}/{tile[:2]}/{tile[2]}/{tile[3:]}/{sensing[:4]}/{int(sensing[4:6])}/{item['id']}"
    item["assets"] = {
        key: {**asset, "href": f"{folder.rstrip('/')}/{asset['href'].rsplit('/', 1)[-1]}"}
        for key, asset in item["assets"].items()
        if not key.endswith("-jp2")
    }
    item["links"] = [{"rel": "self", "href": f"https://earth-search.aws.element84.com/v1/collections/sentinel-2-c1-l2a/items/{item['id']}"}]
    return item


PC_BLOB = "https://sentinel2l2a01.blob.core.windows.net"
PC_BANDS = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
            "B09": 60, "B11": 20, "B12": 20, "SCL": 20}


def pc_item(*, asset_base: str = PC_BLOB, bands=tuple(PC_BANDS), **kw) -> dict:
    """The template as Microsoft Planetary Computer's ``sentinel-2-l2a`` lists it.

    Band-id asset keys (``B04``, ``SCL``...), ``s2:mgrs_tile`` and ``sat:relative_orbit``
    instead of the MGRS extension, ``Sentinel-2A`` as platform, no ``earthsearch:`` fields,
    an id without the baseline, and blob URLs in the SAFE layout (under ``asset_base``).
    ``kw`` as for :func:`stac_item`.
    """
    item = stac_item(**kw)
    props = item["properties"]
    safe = props["s2:product_uri"].removesuffix(".SAFE")
    platform, _, sensing, _, orbit, tile, processed = safe.split("_")
    item["id"] = f"{platform}_MSIL2A_{sensing}_{orbit}_{tile}_{processed}"
    item["collection"] = "sentinel-2-l2a"
    for key in [k for k in props if k.startswith(("mgrs:", "grid:", "earthsearch:"))]:
        del props[key]
    props.update({
        "platform": f"Sentinel-2{platform[-1]}",
        "constellation": "Sentinel 2",
        "s2:mgrs_tile": tile[1:],
        "sat:relative_orbit": int(orbit[1:]),
        "sat:orbit_state": "descending",
        "s2:product_type": "S2MSI2A",
    })
    day = f"{sensing[:4]}/{sensing[4:6]}/{sensing[6:8]}"
    images = (f"{asset_base.rstrip('/')}/sentinel2-l2/{tile[1:3]}/{tile[3]}/{tile[4:]}/{day}/{safe}.SAFE/GRANULE/"
              f"L2A_{tile}_A000000_{sensing}/IMG_DATA")
    item["assets"] = {
        band: {
            "href": f"{images}/R{res}m/{tile}_{sensing}_{band}_{res}m.tif",
            "type": "image/tiff; application=geotiff; profile=cloud-optimized",
            "roles": ["data"],
        }
        for band, res in PC_BANDS.items() if band in bands
    }
    item["assets"]["visual"] = {"href": f"{images}/R10m/{tile}_{sensing}_TCI_10m.tif", "roles": ["visual"]}
    item["assets"]["rendered_preview"] = {"href": "https://planetarycomputer.microsoft.com/api/data/v1/item/preview.png"}
    item["links"] = [{"rel": "self", "href": f"https://planetarycomputer.microsoft.com/api/stac/v1/collections/sentinel-2-l2a/items/{item['id']}"}]
    return item


def landsat_item(*, when: datetime = datetime(2020, 2, 20, 11, 20, 5, tzinfo=timezone.utc), cloud: float = 1.0,
                 geometry=None) -> dict:
    """A Landsat Collection 2 Level-2 item (as Earth Search and Planetary Computer serve them) over 29RKH.

    Its asset keys are common names (``red``, ``nir08``...), exactly what a Sentinel-2
    item from Earth Search uses: read as Sentinel-2, its files would become bands.
    """
    geom = geometry if geometry is not None else shape(TILE_29RKH)
    geom = geom if isinstance(geom, dict) else mapping(geom)
    scene = f"LC08_L2SP_204043_{when:%Y%m%d}_20200823_02_T1"
    base = f"https://landsateuwest.blob.core.windows.net/landsat-c2/level-2/standard/oli-tirs/{when:%Y}/204/043/{scene}"
    assets = {key: {"href": f"{base}/{scene}_SR_{band}.TIF", "roles": ["data"]}
              for key, band in (("coastal", "B1"), ("blue", "B2"), ("green", "B3"), ("red", "B4"), ("nir08", "B5"),
                                ("swir16", "B6"), ("swir22", "B7"))}
    assets["qa_pixel"] = {"href": f"{base}/{scene}_QA_PIXEL.TIF", "roles": ["cloud"]}
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": scene,
        "collection": "landsat-c2-l2",
        "geometry": geom,
        "bbox": list(shape(geom).bounds),
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": "landsat-8",
            "instruments": ["oli", "tirs"],
            "eo:cloud_cover": cloud,
            "landsat:wrs_path": "204",
            "landsat:wrs_row": "043",
            "landsat:collection_category": "T1",
        },
        "links": [],
        "assets": assets,
    }
