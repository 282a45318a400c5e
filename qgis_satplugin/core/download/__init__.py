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

from ..image_series.manifest import read_manifest, sha256_of
from ..sentinel2 import NATIVE_RESOLUTION_M
from .bands import BAND_PRESETS, resolve_bands
from .harmonize import Harmonization, apply_harmonization, plan_harmonization
from .options import DownloadOptions
from ..products import product_from_row
from .product_list import as_products, product_record, product_records, read_products_gpkg
from .run import DownloadResult, grid_for_aoi, run
from .sentinelhub import MAX_REQUEST_PX, evalscript, process_body, split_windows

__all__ = [
    "BAND_PRESETS",
    "MAX_REQUEST_PX",
    "NATIVE_RESOLUTION_M",
    "DownloadOptions",
    "DownloadResult",
    "Harmonization",
    "apply_harmonization",
    "as_products",
    "evalscript",
    "grid_for_aoi",
    "plan_harmonization",
    "process_body",
    "product_from_row",
    "read_manifest",
    "product_record",
    "product_records",
    "read_products_gpkg",
    "resolve_bands",
    "run",
    "sha256_of",
    "split_windows",
]
