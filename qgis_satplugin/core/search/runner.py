"""``run``: from a :class:`.SearchOptions` (an AOI, a period, filters) to a ranked list of products.

Steps, each cheap before the next more expensive one:

1. the backend searches (server-side filters: collection, period, AOI, scene cloud);
2. period and collection checked again locally, because not every server applies
   them the same way;
3. reprocessed duplicates collapse to the newest processing baseline;
4. AOI coverage in m², then MAX_CLOUD per product and MIN_AOI_COVERAGE per acquisition
   (a date's tiles together: an AOI across a tile edge is covered by the date, not by a tile);
5. optionally, cloud over the AOI from each product's SCL layer, then MAX_CLOUD on it;
6. ranking and selection of acquisitions by strategy (see :mod:`.ranking`).

The result holds every product that passed the filters, sorted by rank, with
``selected`` marking the ones the strategy chose; the tiles of one acquisition share a
rank. An empty list is a valid answer.

Progress: the backend's search is the first 60 % (90 % without the AOI cloud step), the
AOI cloud measurement the rest.
"""

from __future__ import annotations

from ..errors import SatPluginError
from ..feedback import Feedback
from ..http.client import JsonClient
from ..http.sentinelhub_auth import CDSE_BASE_URL, CDSE_TOKEN_URL, SENTINELHUB_BASE_URL, SENTINELHUB_TOKEN_URL
from ..http.signing import PLANETARY_COMPUTER_STAC_URL, SIGNING_KIND, TokenCache, check_signing
from ..products import normalise_collection
from .aoi_cloud import aoi_cloud_percent
from .backends import SearchBackend
from .catalog import CatalogBackend
from .footprints_gpkg import write_footprints_gpkg
from .local import LocalBackend
from .options import BACKENDS, SearchOptions, backend_name
from .period import normalise_period
from .ranking import (
    acq_groups,
    annotate_coverage,
    collapse_duplicates,
    filter_products,
    keep_covering_dates,
    rank_products,
)
from .result import SearchResult
from .stac import EARTH_SEARCH_URL, StacBackend

# Planetary Computer has Sentinel-2 L2A only.
PLANETARY_COMPUTER_COLLECTIONS = {"L2A": ("sentinel-2-l2a",), "L1C": ()}


def make_backend(backend: str, service_url=None, token_url=None, credentials=None, client_options=None) -> SearchBackend:
    """The backend called ``backend`` (one of :data:`BACKENDS` or an alias).

    ``service_url`` is the STAC API URL, the Sentinel Hub base URL, or for ``local`` the
    folder to scan. ``planetary_computer`` is a STAC API whose files need a SAS token
    (fetched from the SAS API beside it when files are read, see :mod:`.signing`).
    Credentials are only looked up when a Sentinel Hub search runs.
    ``client_options`` go to the HTTP client (deadlines, size caps, attempts...).
    """
    name = backend_name(backend)
    options = dict(client_options or {})
    if name == "earth_search":
        return StacBackend(service_url or EARTH_SEARCH_URL, name="earth_search", client_options=options)
    if name == "cdse":
        return CatalogBackend(
            service_url or CDSE_BASE_URL, token_url or CDSE_TOKEN_URL, credentials, name="cdse", client_options=options
        )
    if name == "sentinelhub":
        return CatalogBackend(
            service_url or SENTINELHUB_BASE_URL,
            token_url or SENTINELHUB_TOKEN_URL,
            credentials,
            name="sentinelhub",
            client_options=options,
        )
    if name == "local":
        return LocalBackend(service_url, name="local")
    if name == "planetary_computer":
        return StacBackend(
            service_url or PLANETARY_COMPUTER_STAC_URL,
            name="planetary_computer",
            client_options=options,
            collection_ids=PLANETARY_COMPUTER_COLLECTIONS,
            signing=SIGNING_KIND,
        )
    raise SatPluginError(f"Unknown search backend {backend!r}: use one of {', '.join(BACKENDS)}.")


def run(
    options: SearchOptions,
    feedback: Feedback | None = None,
    *,
    credentials=None,
    backend: SearchBackend | None = None,
    client_options: dict | None = None,
) -> SearchResult:
    """Search, filter, deduplicate and rank Sentinel-2 products as ``options`` say.

    ``credentials`` (a Sentinel Hub client id and secret, see
    :func:`.http.sentinelhub_auth.resolve_credentials`) are never part of the options, so
    no dump of them holds a secret. ``backend`` is a backend object that replaces the one
    ``options.backend``, ``service_url`` and ``token_url`` name. ``client_options`` are
    further settings of the HTTP clients (``sleep``, ``max_attempts``... see
    :class:`.http.JsonClient`), over the deadlines the options hold.
    """
    feedback = Feedback.of(feedback)
    if backend is not None and not isinstance(backend, SearchBackend):
        raise TypeError(f"a search backend has a search method; {type(backend).__name__} has none")
    aoi = options.area.lonlat()
    start_dt, end_dt = normalise_period(options.start, options.end)
    level = normalise_collection(options.collection)
    max_cloud = options.max_cloud
    network = {**options.client_options(), **dict(client_options or {})}

    search_share = 0.6 if options.aoi_cloud else 0.9
    source = backend or make_backend(options.backend, options.service_url, options.token_url, credentials, network)
    found = source.search(aoi, start_dt, end_dt, level, max_cloud, feedback=feedback.sub_range(0.0, search_share))
    feedback.check_canceled()
    feedback.log(f"The search returned {len(found)} product(s).")

    # The backends leave out what is not Sentinel-2 of the level asked for; a backend
    # object from elsewhere may not, so the level is checked here too.
    other_level = sum(1 for p in found if p.collection != level)
    if other_level:
        feedback.log(f"Left out {other_level} product(s) that are not Sentinel-2 {level}.")
    products = [p for p in found if p.collection == level and start_dt <= p.datetime <= end_dt]
    # Collapse before filtering: the newest processing is the one to judge, so an older
    # processing must not stand in for it when the newer one fails a filter.
    before = len(products)
    products = collapse_duplicates(products)
    if len(products) < before:
        feedback.log(f"Dropped {before - len(products)} older processing(s) of the same acquisition.")
    annotate_coverage(products, aoi)

    def apply_filters(candidates):
        kept = filter_products(candidates, max_cloud=max_cloud)
        return keep_covering_dates(kept, options.min_aoi_coverage, aoi)

    products = apply_filters(products)
    if options.aoi_cloud and products:
        signer = _Signer(network, feedback)
        _measure_aoi_cloud(products, aoi, feedback.sub_range(search_share, 1.0), signer)
        products = apply_filters(products)

    ranked = rank_products(products, options.strategy_name, options.max_products, start_dt, end_dt, aoi=aoi)
    feedback.set_progress(1.0)
    chosen = [p for p in ranked if p.selected]
    feedback.log(
        f"{len(ranked)} product(s) kept in {len(acq_groups(ranked))} acquisition(s); "
        f"{len(acq_groups(chosen))} acquisition(s) ({len(chosen)} product(s)) selected."
    )
    result = SearchResult(ranked)
    if options.footprints is not None:
        feedback.check_canceled()
        write_footprints_gpkg(result.products, options.footprints)
    return result


class _Signer:
    """Signs the SCL URLs that the AOI cloud step reads, for backends whose files need a token."""

    def __init__(self, client_options: dict, feedback: Feedback):
        self._options = {"feedback": feedback, **client_options}
        self._client = None
        self._tokens = TokenCache()

    def __call__(self, product, href: str) -> str:
        record = product.download.get("signing")
        if not record:
            return href
        check_signing(product.product_id, record, href)
        self._client = self._client or JsonClient(**self._options)
        return self._tokens.sign(href, record, self._client)


def _measure_aoi_cloud(products, aoi, feedback: Feedback, sign) -> None:
    """Each product's cloud over the AOI from its SCL layer; ``feedback`` goes from 0 to 1 over the products."""
    missing = 0
    for i, p in enumerate(products):
        feedback.check_canceled()
        scl = (p.download.get("assets") or {}).get("SCL")
        if not scl:
            missing += 1
        else:
            try:
                p.aoi_cloud = aoi_cloud_percent(sign(p, scl), aoi)
            except Exception as exc:  # noqa: BLE001 - a bad product must not sink the search
                feedback.log(
                    f"{p.product_id}: could not read its SCL layer ({type(exc).__name__}); using the scene cloud."
                )
        feedback.set_progress((i + 1) / len(products))
    if missing:
        feedback.log(
            f"{missing} product(s) have no SCL layer here (L1C, or a Sentinel Hub result); "
            "their scene cloud is used instead."
        )
