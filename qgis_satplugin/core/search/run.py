"""``search_products``: from an AOI and a period to a ranked list of products.

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
"""

from __future__ import annotations

from typing import Callable

from ..errors import Canceled, SatPluginError
from ..area import prepare_aoi
from .aoi_cloud import aoi_cloud_percent
from .catalog import CatalogBackend
from ..http.sentinelhub_auth import CDSE_BASE_URL, CDSE_TOKEN_URL, SENTINELHUB_BASE_URL, SENTINELHUB_TOKEN_URL
from .local import LocalBackend
from .period import normalise_period
from ..http.client import JsonClient
from ..products import Product, normalise_collection
from .ranking import (
    STRATEGIES,
    acq_groups,
    annotate_coverage,
    collapse_duplicates,
    filter_products,
    keep_covering_dates,
    rank_products,
)
from ..http.signing import PLANETARY_COMPUTER_STAC_URL, SIGNING_KIND, TokenCache, check_signing
from .stac import EARTH_SEARCH_URL, StacBackend

# Backend names accepted by search_products (a backend object works too).
BACKENDS = ("earth_search", "cdse", "sentinelhub", "local", "planetary_computer")
_ALIASES = {
    "stac": "earth_search",
    "earth-search": "earth_search",
    "copernicus": "cdse",
    "sentinel_hub": "sentinelhub",
    "pc": "planetary_computer",
    "planetary-computer": "planetary_computer",
}
# Planetary Computer has Sentinel-2 L2A only.
PLANETARY_COMPUTER_COLLECTIONS = {"L2A": ("sentinel-2-l2a",), "L1C": ()}


def make_backend(backend, service_url=None, token_url=None, credentials=None, client_options=None):
    """A backend object from its name; objects with a ``search`` method pass through.

    ``service_url`` is the STAC API URL, the Sentinel Hub base URL, or for ``local`` the
    folder to scan. ``planetary_computer`` is a STAC API whose files need a SAS token
    (fetched from the SAS API beside it when files are read, see :mod:`.signing`).
    Credentials are only looked up when a Sentinel Hub search runs.
    ``client_options`` go to the HTTP client (deadlines, size caps, attempts...).
    """
    if hasattr(backend, "search"):
        return backend
    name = _ALIASES.get(str(backend).lower(), str(backend).lower())
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


def search_products(
    backend,
    aoi_geometry_4326,
    start,
    end,
    collection: str = "L2A",
    max_cloud: float | None = None,
    min_aoi_coverage: float | None = None,
    max_products: int | None = None,
    strategy: str = "all",
    service_url: str | None = None,
    token_url: str | None = None,
    credentials=None,
    aoi_cloud: bool = False,
    progress: Callable[[float], None] | None = None,
    is_canceled: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
    client_options: dict | None = None,
) -> list[Product]:
    """Search, filter, deduplicate and rank Sentinel-2 products over an AOI.

    ``start``/``end`` are dates or datetimes (an end date includes its whole day; a
    season across New Year is simply 2023-11-01 to 2024-02-28). ``max_cloud`` and
    ``min_aoi_coverage`` are percentages, inclusive. ``max_cloud`` first applies to the
    scene cloud (the servers filter on it too); with ``aoi_cloud`` it then also applies
    to the cloud measured over the AOI. ``max_products`` 0 or None selects every product
    with strategies ``all``/``cloud``; ``even`` needs it. It counts acquisitions (dates: the
    tiles of one overpass come together), not tiles. ``progress`` receives 0-100.

    ``backend`` is ``"earth_search"``, ``"cdse"``, ``"sentinelhub"``, ``"local"``,
    ``"planetary_computer"`` or a backend object; ``service_url`` overrides its URL (for ``local``: the folder).
    ``client_options`` go to the HTTP client: ``request_deadline`` and ``run_deadline``
    (seconds), ``max_json_bytes``, ``max_attempts``... (see :class:`.http.JsonClient`).
    """
    say = log or (lambda _msg: None)
    aoi = prepare_aoi(aoi_geometry_4326)
    start_dt, end_dt = normalise_period(start, end)
    level = normalise_collection(collection)
    strategy = (strategy or "all").lower()
    if strategy not in STRATEGIES:
        raise SatPluginError(f"Unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}.")
    for label, value in (("MAX_CLOUD", max_cloud), ("MIN_AOI_COVERAGE", min_aoi_coverage)):
        if value is not None and not 0 <= value <= 100:
            raise SatPluginError(f"{label} is a percentage between 0 and 100, got {value}.")
    if max_products is not None and max_products < 0:
        raise SatPluginError(f"MAX_PRODUCTS cannot be negative, got {max_products}.")
    if strategy == "even" and not max_products:
        raise SatPluginError("The even strategy needs MAX_PRODUCTS: how many dates to spread over the period.")

    def check_canceled():
        if is_canceled is not None and is_canceled():
            raise Canceled()

    def report(value):
        if progress:
            progress(max(0.0, min(100.0, value)))

    search_share = 60.0 if aoi_cloud else 90.0
    source = make_backend(backend, service_url, token_url, credentials, client_options)
    found = source.search(
        aoi,
        start_dt,
        end_dt,
        level,
        max_cloud,
        progress=lambda v: report(v * search_share / 100.0),
        is_canceled=is_canceled,
        log=log,
    )
    check_canceled()
    say(f"The search returned {len(found)} product(s).")

    # The backends leave out what is not Sentinel-2 of the level asked for; a backend
    # object from elsewhere may not, so the level is checked here too.
    other_level = sum(1 for p in found if p.collection != level)
    if other_level:
        say(f"Left out {other_level} product(s) that are not Sentinel-2 {level}.")
    products = [p for p in found if p.collection == level and start_dt <= p.datetime <= end_dt]
    # Collapse before filtering: the newest processing is the one to judge, so an older
    # processing must not stand in for it when the newer one fails a filter.
    before = len(products)
    products = collapse_duplicates(products)
    if len(products) < before:
        say(f"Dropped {before - len(products)} older processing(s) of the same acquisition.")
    annotate_coverage(products, aoi)

    def apply_filters(candidates):
        kept = filter_products(candidates, max_cloud=max_cloud)
        return keep_covering_dates(kept, min_aoi_coverage, aoi)

    products = apply_filters(products)
    if aoi_cloud and products:
        signer = _Signer(client_options, is_canceled, log)
        _measure_aoi_cloud(products, aoi, search_share, report, check_canceled, say, signer)
        products = apply_filters(products)

    ranked = rank_products(products, strategy, max_products, start_dt, end_dt, aoi=aoi)
    report(100.0)
    chosen = [p for p in ranked if p.selected]
    say(
        f"{len(ranked)} product(s) kept in {len(acq_groups(ranked))} acquisition(s); "
        f"{len(acq_groups(chosen))} acquisition(s) ({len(chosen)} product(s)) selected."
    )
    return ranked


class _Signer:
    """Signs the SCL URLs that the AOI cloud step reads, for backends whose files need a token."""

    def __init__(self, client_options, is_canceled, log):
        self._options = {"is_canceled": is_canceled, "log": log, **dict(client_options or {})}
        self._client = None
        self._tokens = TokenCache()

    def __call__(self, product, href: str) -> str:
        record = product.download.get("signing")
        if not record:
            return href
        check_signing(product.product_id, record, href)
        self._client = self._client or JsonClient(**self._options)
        return self._tokens.sign(href, record, self._client)


def _measure_aoi_cloud(products, aoi, done_share, report, check_canceled, say, sign) -> None:
    missing = 0
    for i, p in enumerate(products):
        check_canceled()
        scl = (p.download.get("assets") or {}).get("SCL")
        if not scl:
            missing += 1
        else:
            try:
                p.aoi_cloud = aoi_cloud_percent(sign(p, scl), aoi)
            except Exception as exc:  # noqa: BLE001 - a bad product must not sink the search
                say(f"{p.product_id}: could not read its SCL layer ({type(exc).__name__}); using the scene cloud.")
        report(done_share + (100.0 - done_share) * (i + 1) / len(products))
    if missing:
        say(
            f"{missing} product(s) have no SCL layer here (L1C, or a Sentinel Hub result); "
            "their scene cloud is used instead."
        )
