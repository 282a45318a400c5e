"""Build a dataset over a whole region: every MGRS tile the polygons touch, one dataset out.

``run(BuildDatasetOptions(polygons, output_folder, start, end, service_url, ...), feedback)``
searches once over the region, then for each MGRS tile of the products found runs the
chain download -> ground truth -> export on that tile's own grid (one task per tile,
on a Dask cluster with ``dask_scheduler``), and writes one dataset: the per-tile exports
under ``tiles/<tile>/``, a merged ``index.gpkg``, a region card and a STAC collection
whose children are the tiles' collections. The splits are decided once for the whole
region, parcel by parcel, so no parcel and no pixel is in two splits, across tile
borders too. It sits above the steps and composes them; no step imports it.
"""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the steps' dependencies.
EXPORTS = {
    "BuildDatasetOptions": "options",
    "BuildDatasetResult": "runner",
    "run": "runner",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
