"""Download Sentinel-2 products onto one pixel grid: pure Python, no ``qgis`` import.

:func:`run` takes a :class:`DownloadOptions` (the products of the search step as plain
records, see :func:`product_records`; the area or a reference grid; the bands; the
folder) and writes, into one folder:

* one multi-band COG per acquisition date (``20230612T101559_S2B_T32TQM.tif``), uint16,
  every date and band on the same grid (the AOI's UTM zone snapped to the Sentinel-2
  60 m lattice at ``pixel_size``, or ``reference_grid``), band descriptions ``B02``...,
  per-band scale 0.0001 (scale x DN + offset = reflectance), no-data 0, and tags
  ``ACQUISITION_DATETIME``, ``PRODUCT_ID``, ``PROCESSING_BASELINE``, ``HARMONIZED``,
  ``HARMONIZATION``;
* a mask beside each (``..._SCL.tif`` for L2A, ``..._CLM.tif`` for Sentinel Hub L1C),
  uint8, resampled nearest;
* ``manifest.json``: the grid, the bands, and per file its checksum, which a rerun uses
  to skip complete files (resume).

Backends, by ``product.download["kind"]``: ``sentinelhub`` (Process API), ``stac``
(COGs read by HTTP range requests), ``local`` (SAFE folders, zips, COG folders).
Reflectance is resampled bilinearly, masks by nearest neighbour. With ``harmonize``
(the default) the +1000 DN offset of baseline 04.00+ is removed so all dates share one
scale (see :mod:`.harmonize`).
"""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the step's dependencies.
EXPORTS = {
    "BAND_PRESETS": "bands",
    "DownloadOptions": "options",
    "DownloadResult": "runner",
    "Harmonization": "harmonize",
    "MAX_REQUEST_PX": "..http.limits",
    "NATIVE_RESOLUTION_M": "..sentinel2",
    "apply_harmonization": "harmonize",
    "as_products": "product_list",
    "evalscript": "sentinelhub",
    "grid_for_aoi": "runner",
    "plan_harmonization": "harmonize",
    "process_body": "sentinelhub",
    "product_from_row": "..products",
    "product_record": "product_list",
    "product_records": "product_list",
    "read_manifest": "..image_series.manifest",
    "read_products_gpkg": "product_list",
    "resolve_bands": "bands",
    "run": "runner",
    "sha256_of": "..image_series.manifest",
    "split_windows": "sentinelhub",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
