"""Search Sentinel-2 products over an AOI: pure Python, no ``qgis`` import.

Backends: a STAC API (Earth Search by default; Microsoft Planetary Computer, whose
files are signed), the Sentinel Hub Catalog API (Copernicus Data Space Ecosystem or
commercial Sentinel Hub) and a local folder, each a :class:`SearchBackend`.
``run(SearchOptions(...))`` runs one and returns a :class:`SearchResult` of
:class:`Product` objects ranked by acquisition; ``write_footprints_gpkg`` turns them into a layer.
"""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the step's dependencies.
EXPORTS = {
    "AcqGroup": "ranking",
    "BACKENDS": "options",
    "CDSE_BASE_URL": "..http.sentinelhub_auth",
    "CDSE_TOKEN_URL": "..http.sentinelhub_auth",
    "CLOUD_CLASSES": "..sentinel2:SCL_CLOUD_CLASSES",
    "CatalogBackend": "catalog",
    "Credentials": "..http.sentinelhub_auth",
    "CredentialsRefused": "..http.client",
    "EARTH_SEARCH_URL": "stac",
    "GPKG_FIELDS": "footprints_gpkg:FIELDS",
    "HttpStatusError": "..http.client",
    "JsonClient": "..http.client",
    "LocalBackend": "local",
    "PLANETARY_COMPUTER_STAC_URL": "..http.signing",
    "Product": "..products",
    "SENTINELHUB_BASE_URL": "..http.sentinelhub_auth",
    "SENTINELHUB_TOKEN_URL": "..http.sentinelhub_auth",
    "STAC_COLLECTION_IDS": "stac",
    "STRATEGIES": "options",
    "SearchBackend": "backends",
    "SearchOptions": "options",
    "SearchResult": "result",
    "StacBackend": "stac",
    "TokenCache": "..http.signing",
    "W_CLOUD": "ranking",
    "W_COVER": "ranking",
    "W_TIME": "ranking",
    "acq_groups": "ranking",
    "annotate_coverage": "ranking",
    "aoi_cloud_percent": "aoi_cloud",
    "canonical_band": "..sentinel2",
    "collapse_duplicates": "ranking",
    "coverage_percent": "ranking",
    "filter_products": "ranking",
    "item_level": "stac",
    "keep_covering_dates": "ranking",
    "make_backend": "runner",
    "normalise_period": "period",
    "parse_product_name": "..products",
    "product_from_stac_item": "stac",
    "product_record": "result",
    "rank_products": "ranking",
    "resolve_credentials": "..http.sentinelhub_auth",
    "run": "runner",
    "scan_folder": "local",
    "season_periods": "period",
    "select_even": "ranking",
    "sh_config": "..http.sentinelhub_auth",
    "sh_data_collection": "catalog",
    "write_footprints_gpkg": "footprints_gpkg",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
