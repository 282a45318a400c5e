"""The download job spec: the products as plain records, the area or grid, the bands, the folder.

The products travel inline, as the records :func:`.product_list.product_records` makes
(a search GeoPackage row's fields, ``download`` as a JSON object), not as the path of a
GeoPackage: a job spec then says exactly what it downloads, whatever happens to that file
afterwards (a selection changed, features edited), and it works for products that were
never in a file (a QGIS memory layer, a model's temporary output, a notebook's search).
Credentials are not options: they are ``run``'s keyword-only ``credentials``, so a job
spec written to a dataset card or sent to another process never holds a secret.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

from ..area import Area
from ..errors import SatPluginError
from ..grid import PixelGrid
from ..http.limits import DEFAULT_REQUEST_DEADLINE_S, DOWNLOAD_RUN_DEADLINE_S, MAX_REQUEST_PX
from ..options import StepOptions, engine_checks, option
from .bands import check_bands_for, resolve_bands
from .product_list import as_products, check_band_files, check_references, product_records


@dataclass(frozen=True)
class DownloadOptions(StepOptions):
    """One download: ``bands`` of ``products`` onto one grid, one COG per date (+ mask), resumable."""

    products: tuple[dict, ...] = option(
        help="the products to download, as plain records (product_id, datetime, platform, mgrs_tile, rel_orbit, "
        "baseline, collection, cloud, backend and download, as the search's GeoPackage holds them); Product "
        "objects and GeoPackage rows given here are turned into such records"
    )
    output_folder: str = option(
        help="one multi-band COG per date (band descriptions, scale and offset to reflectance, nodata 0, "
        "acquisition time and product id as tags), a mask per date (SCL for L2A), and manifest.json (grid, "
        "bands, dates, files, sizes, SHA-256); only complete files ever appear in it, and a rerun skips files "
        "whose checksum matches (resume)"
    )
    bands: tuple[str, ...] = option(
        help="band names (B02, B8A...) in output order, or presets: rgbn_10m (B02 B03 B04 B08), l2a_all, l1c_all"
    )
    area: Optional[Area] = option(
        None, help="the area of interest; every date is clipped to it (not needed with a reference grid)"
    )
    pixel_size: float = option(
        10.0, help="pixel size (m) of the grid made from the area: its UTM zone, the origin snapped to the "
        "Sentinel-2 60 m lattice"
    )
    reference_grid: Optional[PixelGrid] = option(
        None, help="a grid taken as-is instead of the area's (CRS, origin, pixel size and shape)"
    )
    include_masks: bool = option(True, help="write a cloud mask beside each image (SCL for L2A, CLM for Sentinel Hub L1C)")
    harmonize: bool = option(
        True, help="on by default: remove the +1000 DN offset that processing baseline 04.00 and later add, so that every date "
        "shares one scale: reflectance = 0.0001 x DN. Whether a provider already removed it comes from the "
        "search's product list (Earth Search's earthsearch:boa_offset_applied); where the list does not say, "
        "the baseline decides and the log and manifest say so"
    )
    max_concurrent: int = option(4, help="how many pieces (bands, or Process API windows) are fetched at once")
    service_url: Optional[str] = option(
        None, help="the Sentinel Hub Process API address (default: the documented one of the product's backend)"
    )
    token_url: Optional[str] = option(None, help="the Sentinel Hub token address (default: the backend's)")
    request_deadline: Optional[float] = option(
        DEFAULT_REQUEST_DEADLINE_S,
        help=f"bounds one request, retries and waits included, in seconds (default {DEFAULT_REQUEST_DEADLINE_S:g} s)",
    )
    run_deadline: Optional[float] = option(
        DOWNLOAD_RUN_DEADLINE_S,
        help=f"bounds all the network work of the run, in seconds (default {DOWNLOAD_RUN_DEADLINE_S:g} s; a "
        "rerun resumes from the complete files)",
    )
    max_request_px: int = option(
        MAX_REQUEST_PX, help=f"the largest Process API request, in pixels per side (default {MAX_REQUEST_PX}); "
        "larger areas are split into requests and stitched"
    )

    def __post_init__(self):
        # One band (or preset) may be given alone; products as Product objects or rows become records.
        if isinstance(self.bands, str):
            object.__setattr__(self, "bands", (self.bands,))
        object.__setattr__(self, "products", product_records(self.products))
        super().__post_init__()

    def check(self) -> None:
        # The order is the one the download always checked in: products, their references, bands, area.
        products = as_products(self.products)
        if engine_checks():  # the engine always runs it, as it reads the job, before any request
            check_references(products, self.service_url)  # a shared product list must not choose hosts or files
        band_list = resolve_bands(self.bands)
        check_bands_for(band_list, {p.collection for p in products})
        if engine_checks():
            check_band_files(products, band_list)  # before the folder is touched: a missing file is known now
        if self.reference_grid is None:
            if self.area is None:
                raise SatPluginError("Give an area of interest or a reference grid.")
            size = _number(self.pixel_size)
            if not (size > 0 and math.isfinite(size)):
                raise SatPluginError(f"Pixel size must be a positive number, got {size}.")
        if not self.output_folder:
            raise SatPluginError("Choose an output folder for the downloaded images.")
        for name, seconds in (("REQUEST_DEADLINE", self.request_deadline), ("RUN_DEADLINE", self.run_deadline)):
            if seconds is not None and not _number(seconds) > 0:
                raise SatPluginError(f"{name} must be a positive number of seconds, not {seconds!r}.")
        if not _number(self.max_request_px) >= 1:
            raise SatPluginError(f"The largest request must be at least 1 pixel per side, not {self.max_request_px!r}.")

    def band_list(self) -> list[str]:
        """The canonical bands, presets expanded, in output order."""
        return resolve_bands(self.bands)


def _number(value) -> float:
    """``value`` as a float for a comparison; NaN (which compares false) for anything else."""
    try:
        return math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError):
        return math.nan
