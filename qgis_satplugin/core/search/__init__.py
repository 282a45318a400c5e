"""Search Sentinel-2 products over an AOI: pure Python, no ``qgis`` import.

Backends: a STAC API (Earth Search by default; Microsoft Planetary Computer, whose
files are signed), the Sentinel Hub Catalog API (Copernicus Data Space Ecosystem or
commercial Sentinel Hub) and a local folder, each a :class:`SearchBackend`.
``run(SearchOptions(...))`` runs one and returns a :class:`SearchResult` of
:class:`Product` objects ranked by acquisition; ``write_footprints_gpkg`` turns them into a layer.
"""

from ..http.client import CredentialsRefused, HttpStatusError, JsonClient
from ..http.sentinelhub_auth import (
    CDSE_BASE_URL,
    CDSE_TOKEN_URL,
    SENTINELHUB_BASE_URL,
    SENTINELHUB_TOKEN_URL,
    Credentials,
    resolve_credentials,
    sh_config,
)
from ..http.signing import PLANETARY_COMPUTER_STAC_URL, TokenCache
from ..products import Product, parse_product_name
from ..sentinel2 import SCL_CLOUD_CLASSES as CLOUD_CLASSES
from ..sentinel2 import canonical_band
from .aoi_cloud import aoi_cloud_percent
from .backends import SearchBackend
from .catalog import CatalogBackend, sh_data_collection
from .footprints_gpkg import FIELDS as GPKG_FIELDS
from .footprints_gpkg import write_footprints_gpkg
from .local import LocalBackend, scan_folder
from .options import BACKENDS, SearchOptions
from .period import normalise_period, season_periods
from .ranking import (
    STRATEGIES,
    W_CLOUD,
    W_COVER,
    W_TIME,
    AcqGroup,
    acq_groups,
    annotate_coverage,
    collapse_duplicates,
    coverage_percent,
    filter_products,
    keep_covering_dates,
    rank_products,
    select_even,
)
from .result import SearchResult, product_record
from .run import make_backend, run
from .stac import EARTH_SEARCH_URL, STAC_COLLECTION_IDS, StacBackend, item_level, product_from_stac_item

__all__ = [
    "BACKENDS",
    "CDSE_BASE_URL",
    "CDSE_TOKEN_URL",
    "CLOUD_CLASSES",
    "EARTH_SEARCH_URL",
    "GPKG_FIELDS",
    "PLANETARY_COMPUTER_STAC_URL",
    "SENTINELHUB_BASE_URL",
    "SENTINELHUB_TOKEN_URL",
    "STAC_COLLECTION_IDS",
    "STRATEGIES",
    "W_CLOUD",
    "W_COVER",
    "W_TIME",
    "AcqGroup",
    "CatalogBackend",
    "Credentials",
    "CredentialsRefused",
    "HttpStatusError",
    "JsonClient",
    "LocalBackend",
    "Product",
    "SearchBackend",
    "SearchOptions",
    "SearchResult",
    "StacBackend",
    "TokenCache",
    "acq_groups",
    "annotate_coverage",
    "aoi_cloud_percent",
    "canonical_band",
    "collapse_duplicates",
    "coverage_percent",
    "filter_products",
    "item_level",
    "keep_covering_dates",
    "make_backend",
    "normalise_period",
    "parse_product_name",
    "product_from_stac_item",
    "product_record",
    "rank_products",
    "resolve_credentials",
    "run",
    "scan_folder",
    "season_periods",
    "select_even",
    "sh_config",
    "sh_data_collection",
    "write_footprints_gpkg",
]
