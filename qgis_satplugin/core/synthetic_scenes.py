"""Synthetic Sentinel-2 L2A products for the demo and tests: fields that green up and
fade over the season, clouds with shadows, and a scene classification (SCL) to match.

Each product is a COG folder in the ``sentinel-s2-l2a-cogs`` layout (one GeoTIFF per
band at its native 10, 20 or 60 m, plus its STAC item JSON), so the local search
backend reads it like a real download. Values are deterministic per seed.
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from .grid import PixelGrid
from .sentinel2 import (BOA_OFFSET_DN, L2A_BANDS, NATIVE_RESOLUTION_M, OFFSET_BASELINE, SCL_CLOUD_HIGH,
                        SCL_CLOUD_MEDIUM, SCL_CLOUD_SHADOW, SCL_NO_DATA, SCL_NOT_VEGETATED, SCL_VEGETATION,
                        baseline_key)

# The L2A bands at each native resolution, in band order: 10 m (B02 B03 B04 B08), 20 m, 60 m.
BANDS_BY_RESOLUTION = {
    res: tuple(b for b in L2A_BANDS if NATIVE_RESOLUTION_M[b] == res) for res in (10, 20, 60)
}
# Reflectance of bare soil and of full green vegetation per band (typical values).
SOIL = {"B01": 0.08, "B02": 0.09, "B03": 0.12, "B04": 0.15, "B05": 0.18, "B06": 0.20, "B07": 0.21,
        "B08": 0.23, "B8A": 0.24, "B09": 0.08, "B11": 0.30, "B12": 0.24}
GREEN = {"B01": 0.03, "B02": 0.03, "B03": 0.07, "B04": 0.03, "B05": 0.10, "B06": 0.30, "B07": 0.38,
         "B08": 0.42, "B8A": 0.44, "B09": 0.15, "B11": 0.18, "B12": 0.08}
CLOUD = 0.55  # bright in every band


def _greenness(day_of_year: float, peak_day: np.ndarray) -> np.ndarray:
    """0..1 crop development: a bell around each class's peak day, 60 days wide."""
    return np.exp(-0.5 * ((day_of_year - peak_day) / 30.0) ** 2)


def _smooth_noise(rng, shape, scale_px):
    """A smooth random field in 0..1, by upsampling coarse noise."""
    coarse = rng.random((shape[0] // scale_px + 2, shape[1] // scale_px + 2))
    rows = np.linspace(0, coarse.shape[0] - 1.001, shape[0])
    cols = np.linspace(0, coarse.shape[1] - 1.001, shape[1])
    r0, c0 = rows.astype(int), cols.astype(int)
    fr, fc = (rows - r0)[:, None], (cols - c0)[None, :]
    top = coarse[r0][:, c0] * (1 - fc) + coarse[r0][:, c0 + 1] * fc
    bottom = coarse[r0 + 1][:, c0] * (1 - fc) + coarse[r0 + 1][:, c0 + 1] * fc
    return top * (1 - fr) + bottom * fr


def _block_mean(values: np.ndarray, factor: int) -> np.ndarray:
    h, w = values.shape[0] // factor, values.shape[1] // factor
    return values[: h * factor, : w * factor].reshape(h, factor, w, factor).mean(axis=(1, 3))


def write_product(
    parent: Path,
    grid: PixelGrid,
    class_map: np.ndarray,
    when: datetime,
    cloud_cover: float,
    seed: int,
    tile: str = "33TVM",
    platform: str = "S2B",
    orbit: int = 122,
    baseline: str = "05.09",
    footprint_4326=None,
) -> Path:
    """One L2A product over ``grid`` (10 m, sides a multiple of 60 m); returns its folder.

    ``class_map`` (grid-shaped, 0 = background) gives each pixel its crop, whose
    greenness follows the date. About ``cloud_cover`` % of the scene is cloud.
    """
    rng = np.random.default_rng(seed)
    day = when.timetuple().tm_yday
    peak = 130.0 + 12.0 * (class_map % 9)  # each crop peaks on its own day
    green = np.where(class_map > 0, _greenness(day, peak), 0.35 + 0.1 * _smooth_noise(rng, class_map.shape, 40))
    texture = 1.0 + 0.05 * (rng.random(class_map.shape) - 0.5)

    field = _smooth_noise(rng, class_map.shape, 25)
    threshold = np.quantile(field, 1.0 - cloud_cover / 100.0) if cloud_cover > 0 else np.inf
    cloud = field > threshold
    shadow = np.roll(np.roll(cloud, 12, axis=0), 18, axis=1) & ~cloud

    offset = BOA_OFFSET_DN if baseline_key(baseline) >= OFFSET_BASELINE else 0
    folder = Path(parent) / f"{platform}_{tile}_{when:%Y%m%d}_0_L2A"
    folder.mkdir(parents=True, exist_ok=True)
    for resolution, bands in BANDS_BY_RESOLUTION.items():
        factor = resolution // 10
        for band in bands:
            reflectance = (SOIL[band] + (GREEN[band] - SOIL[band]) * green) * texture
            reflectance = np.where(shadow, reflectance * 0.45, reflectance)
            reflectance = np.where(cloud, CLOUD + 0.05 * field, reflectance)
            dn = np.clip(np.rint(_block_mean(reflectance, factor) * 10000) + offset, 1, 65535).astype(np.uint16)
            _write_band(folder / f"{band}.tif", dn, grid, resolution, nodata=0)
    scl = np.where(green > 0.4, SCL_VEGETATION, SCL_NOT_VEGETATED)
    scl = np.where(shadow, SCL_CLOUD_SHADOW, scl)
    scl = np.where(cloud, np.where(field > threshold + 0.05, SCL_CLOUD_HIGH, SCL_CLOUD_MEDIUM), scl)
    _write_band(folder / "SCL.tif", scl[::2, ::2].astype(np.uint8), grid, NATIVE_RESOLUTION_M["SCL"], nodata=SCL_NO_DATA)

    item = _stac_item(folder.name, grid, when, float(cloud.mean() * 100), tile, platform, orbit, baseline, footprint_4326)
    (folder / f"{folder.name}.json").write_text(json.dumps(item, indent=1))
    return folder


def _write_band(path: Path, values: np.ndarray, grid: PixelGrid, resolution: int, nodata):
    import rasterio
    from affine import Affine

    transform = Affine(resolution, 0, grid.x_min, 0, -resolution, grid.y_max)
    profile = dict(
        driver="GTiff", width=values.shape[1], height=values.shape[0], count=1, dtype=values.dtype,
        crs=grid.pyproj_crs().to_wkt(), transform=transform, nodata=nodata, tiled=True, blockxsize=256,
        blockysize=256, compress="deflate",
    )
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(values, 1)
        ds.build_overviews([2, 4], rasterio.enums.Resampling.nearest if values.dtype == np.uint8 else rasterio.enums.Resampling.average)


def _stac_item(item_id, grid, when, cloud, tile, platform, orbit, baseline, footprint_4326):
    from pyproj import Transformer
    from shapely.geometry import box, mapping

    if footprint_4326 is None:
        to_lonlat = Transformer.from_crs(grid.pyproj_crs(), "EPSG:4326", always_xy=True)
        west, south, east, north = to_lonlat.transform_bounds(*grid.bounds)
        footprint_4326 = box(west, south, east, north)
    generated = when + timedelta(hours=2)
    product_uri = (
        f"{platform}_MSIL2A_{when:%Y%m%dT%H%M%S}_N{baseline.replace('.', '')}_R{orbit:03d}_T{tile}_{generated:%Y%m%dT%H%M%S}.SAFE"
    )
    bands = [b for group in BANDS_BY_RESOLUTION.values() for b in group] + ["SCL"]
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": "sentinel-2-l2a",
        "bbox": list(footprint_4326.bounds),
        "geometry": mapping(footprint_4326),
        "properties": {
            "datetime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "platform": f"sentinel-2{platform[-1].lower()}",
            "eo:cloud_cover": round(cloud, 2),
            "mgrs:utm_zone": int(tile[:2]),
            "mgrs:latitude_band": tile[2],
            "mgrs:grid_square": tile[3:],
            "sat:relative_orbit": orbit,
            "s2:processing_baseline": baseline,
            # Our scenes are written without the baseline 04.00 offset removed, as ESA's are.
            "earthsearch:boa_offset_applied": False,
            "s2:product_uri": product_uri,
            "s2:generation_time": generated.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "proj:epsg": grid.pyproj_crs().to_epsg(),
        },
        "assets": {b: {"href": f"./{b}.tif", "type": "image/tiff; application=geotiff"} for b in bands},
        "links": [],
    }
