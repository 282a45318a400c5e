"""Synthetic field parcels for the demo, tests and benchmarks (deterministic per seed).

Parcels are irregular convex polygons on a jittered lattice, like fields seen from
above; a share of them get a hole (a farmyard) and a few overlap a neighbour, as
digitising errors do, so every output of the rasterizer has something to show.
"""
from __future__ import annotations

import numpy as np
import shapely


def synthetic_parcels(bounds, n_parcels: int, seed: int = 0, n_classes: int = 8, hole_share=0.1, overlap_share=0.03):
    """Return (polygons, class ids 1..n_classes, parcel ids) covering ``bounds``."""
    rng = np.random.default_rng(seed)
    x0, y0, x1, y1 = bounds
    per_side = int(np.ceil(np.sqrt(n_parcels)))
    cell_w, cell_h = (x1 - x0) / per_side, (y1 - y0) / per_side
    index = np.arange(n_parcels)
    cx = x0 + (index % per_side + 0.5) * cell_w
    cy = y1 - (index // per_side + 0.5) * cell_h
    n_vertices = rng.integers(4, 9, n_parcels)
    radius = 0.5 * min(cell_w, cell_h)
    # Convex polygons: sorted random angles around the centre, random radii, rotated.
    angles = np.sort(rng.uniform(0, 2 * np.pi, (n_parcels, 8)), axis=1)
    radii = rng.uniform(0.55, 0.95, (n_parcels, 8)) * radius
    overlap = rng.random(n_parcels) < overlap_share
    radii[overlap] *= 1.6
    xs = cx[:, None] + radii * np.cos(angles)
    ys = cy[:, None] + radii * np.sin(angles)
    rings = []
    for i in range(n_parcels):
        k = n_vertices[i]
        # Spread the kept vertices around the circle so the polygon is not a sliver.
        keep = np.linspace(0, 7, k).round().astype(int)
        rings.append(np.column_stack([xs[i, keep], ys[i, keep]]))
    polygons = shapely.polygons([shapely.linearrings(r) for r in rings])
    polygons = shapely.convex_hull(polygons)
    holes = rng.random(n_parcels) < hole_share
    if holes.any():
        yards = shapely.buffer(shapely.points(cx[holes], cy[holes]), 0.2 * radius, quad_segs=4)
        polygons[holes] = shapely.difference(polygons[holes], yards)
    classes = rng.integers(1, n_classes + 1, n_parcels)
    parcel_ids = 1000 + index
    return polygons, classes, parcel_ids
