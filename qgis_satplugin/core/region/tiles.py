"""MGRS tiles: their UTM CRS, the products of each, and which tile owns which polygon."""
from __future__ import annotations

import re

import numpy as np

from ..errors import SatPluginError

_TILE = re.compile(r"(\d{2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})")


def tile_crs(tile: str) -> str:
    """The WGS 84 / UTM zone of an MGRS tile (``33TVM`` -> ``EPSG:32633``; bands N and up are north)."""
    found = _TILE.fullmatch(str(tile).upper())
    if not found:
        raise SatPluginError(f"{tile!r} is not an MGRS tile id like 33TVM.")
    zone = int(found.group(1))
    return f"EPSG:{(32600 if found.group(2) >= 'N' else 32700) + zone}"


def products_by_tile(records: list) -> dict:
    """The selected product records of each tile, tiles in sorted order, products by (datetime, id)."""
    tiles: dict = {}
    for record in records:
        tiles.setdefault(record["mgrs_tile"], []).append(record)
    return {t: sorted(tiles[t], key=lambda r: (r["datetime"], r["product_id"])) for t in sorted(tiles)}


def owners(centres, footprints: dict) -> np.ndarray:
    """Per polygon centre (shapely points, EPSG:4326): the index of the first tile (in sorted order) whose
    footprint (EPSG:4326) holds it, or -1 for none. Tiles overlap; each polygon belongs to one."""
    import shapely

    found = np.full(len(centres), -1, dtype=np.int64)
    for i, tile in enumerate(footprints):
        inside = shapely.contains(footprints[tile], centres) & (found < 0)
        found[inside] = i
    return found
