"""Splits decided once for the whole region, polygon by polygon.

Each polygon takes the split of the square block (``split_block_m``, in the UTM zone of the
region's centre) that holds its centre; blocks go to train/val/test greedily toward the
ratios for every class at once (the export's :func:`~..export.splits.assign_blocks_balanced`,
weighted by polygon area). Every tile's export then takes these splits as split areas, so a
patch straddling polygons of two splits is dropped and no polygon is in two splits, on any
tile, across tile borders too.
"""
from __future__ import annotations

import numpy as np

from ..export.splits import assign_blocks_balanced, normalise_ratios
from ..grid import utm_epsg_for


def to_crs(geometries, source_crs, target_crs):
    """Shapely geometries reprojected (every vertex; enough for polygons of fields)."""
    import shapely
    from pyproj import Transformer

    transformer = Transformer.from_crs(source_crs, target_crs, always_xy=True)
    return shapely.transform(geometries, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def polygon_splits(lonlat, class_ids: np.ndarray, ratios, seed: int, block_m: float) -> tuple:
    """(split code per polygon, a description for the card); ``lonlat``: the polygons in EPSG:4326."""
    import shapely

    centres = shapely.centroid(lonlat)
    lon, lat = float(np.mean(shapely.get_x(centres))), float(np.mean(shapely.get_y(centres)))
    epsg = utm_epsg_for(lon, lat)
    projected = to_crs(lonlat, "EPSG:4326", f"EPSG:{epsg}")
    x, y = shapely.get_x(shapely.centroid(projected)), shapely.get_y(shapely.centroid(projected))
    keys = np.stack([np.floor(x / block_m), np.floor(y / block_m)], axis=1).astype(np.int64)
    blocks, block_of = np.unique(keys, axis=0, return_inverse=True)
    block_of = block_of.reshape(-1)
    classes = np.unique(class_ids[class_ids > 0])
    hist = np.zeros((len(blocks), 1 + classes.size))
    areas = shapely.area(projected)
    np.add.at(hist[:, 0], block_of, areas)
    for j, c in enumerate(classes, start=1):
        mine = class_ids == c
        np.add.at(hist[:, j], block_of[mine], areas[mine])
    codes = assign_blocks_balanced(hist, normalise_ratios(ratios), seed)
    info = {"method": "region blocks", "block_m": block_m, "crs": f"EPSG:{epsg}", "blocks": int(len(blocks)),
            "seed": seed}
    return codes[block_of], info
