"""Sentinel Hub Catalog API backend: Copernicus Data Space Ecosystem or commercial Sentinel Hub.

The two services speak the same API: an OAuth2 client-credentials token, then a STAC
item search at ``{base}/api/v1/catalog/1.0.0/search`` paged with ``context.next``.

Why the calls go through this package's own :class:`JsonClient` and not through
``sentinelhub.SentinelHubCatalog`` (sentinelhub 3.12):

* its 429 handling loops without bound by default (``max_retries`` is None), sleeps
  with ``time.sleep`` so a QGIS task cannot cancel the wait, and parses
  ``Retry-After`` with ``int()``, which fails on an HTTP-date value;
* the retry delays of 5xx and connection errors are fixed (no jitter) and its sessions
  are cached process-wide per client id, which makes failures hard to test and can keep
  an old token across a change of credentials;
* a 401 surfaces as a generic ``DownloadFailedException`` rather than as advice.

The wire format is the same either way (the loopback tests check our emulator against
``SentinelHubCatalog`` too). ``sentinelhub`` is still used for what it does well:
reading the user's saved credentials and building ``SHConfig``/``DataCollection`` objects
for the Process API, always without writing its config file.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from datetime import datetime
from typing import Callable

from ..area import query_geometry
from ..feedback import Feedback
from ..http.client import CredentialsRefused, JsonClient
from ..http.sentinelhub_auth import (
    CDSE_BASE_URL,
    CDSE_TOKEN_URL,
    SENTINELHUB_RETRY_AFTER_UNIT,
    TokenSource,
    bearer,
)
from ..products import Product, normalise_collection
from .period import stac_interval
from .stac import left_out_message, product_from_stac_item, refused_assets_message, unwanted_item

CATALOG_SEARCH_PATH = "/api/v1/catalog/1.0.0/search"
CATALOG_COLLECTION_IDS = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}
# Sentinel Hub's rate limiter sends Retry-After in milliseconds.
PAGE_LIMIT = 100  # the Catalog API maximum
MAX_PAGES = 200
def sh_data_collection(collection: str, base_url: str):
    """A Sentinel-2 ``DataCollection`` bound to ``base_url``.

    The built-in collections pin the commercial host, which would override the
    configured base URL (and send CDSE users' requests to the wrong service).
    """
    from sentinelhub import DataCollection

    level = normalise_collection(collection)
    parent = DataCollection.SENTINEL2_L2A if level == "L2A" else DataCollection.SENTINEL2_L1C
    digest = hashlib.sha1(base_url.rstrip("/").encode()).hexdigest()[:10]
    name = f"SATPLUGIN_S2_{level}_{digest}"
    # define_from returns the existing collection when called again with the same values.
    return parent.define_from(name, service_url=base_url.rstrip("/"))


class CatalogBackend:
    """Search the Sentinel Hub Catalog API of CDSE (default) or commercial Sentinel Hub.

    ``credentials`` is anything :func:`as_credentials` takes; it is resolved when a
    search runs. ``client``/``client_options`` work as for :class:`StacBackend`. The
    token is kept for the backend's lifetime and renewed before it expires.
    """

    def __init__(
        self,
        base_url: str = CDSE_BASE_URL,
        token_url: str = CDSE_TOKEN_URL,
        credentials=None,
        *,
        client: JsonClient | None = None,
        client_options: dict | None = None,
        name: str = "cdse",
        page_limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.base_url = base_url.rstrip("/")
        self.token_url = token_url
        self.tokens = TokenSource(token_url, credentials, clock=clock)
        self.client = client
        self.client_options = dict(client_options or {})
        self.name = name
        self.page_limit = min(page_limit, PAGE_LIMIT)
        self.max_pages = max_pages

    @property
    def search_url(self) -> str:
        return self.base_url + CATALOG_SEARCH_PATH

    def search_body(self, aoi, start: datetime, end: datetime, collection: str, max_cloud=None) -> dict:
        body = {
            "collections": [CATALOG_COLLECTION_IDS[normalise_collection(collection)]],
            "datetime": stac_interval(start, end),
            "intersects": query_geometry(aoi),
            "limit": self.page_limit,
        }
        if max_cloud is not None and max_cloud < 100:
            body["filter"] = f"eo:cloud_cover <= {float(max_cloud):g}"
            body["filter-lang"] = "cql2-text"
        return body

    def search(
        self,
        aoi,
        start: datetime,
        end: datetime,
        collection: str,
        max_cloud: float | None = None,
        *,
        feedback: Feedback | None = None,
    ) -> list[Product]:
        feedback = Feedback.of(feedback)
        client = self.client or JsonClient(
            **{
                "retry_after_unit": SENTINELHUB_RETRY_AFTER_UNIT,
                "feedback": feedback,
                **self.client_options,
            }
        )
        self.tokens.credentials()  # no credentials: say so before the first request
        body = self.search_body(aoi, start, end, collection, max_cloud)
        level = normalise_collection(collection)
        products: list[Product] = []
        refused: list = []
        left_out: Counter = Counter()
        for page_number in range(1, self.max_pages + 1):
            page = self._post_search(client, body)
            features = page.get("features") or []
            for item in features:
                if not isinstance(item, dict):
                    continue
                other = unwanted_item(item, level)
                if other is not None:
                    left_out[other] += 1
                    continue
                product = product_from_stac_item(
                    item, backend=self.name, collection=level, base_url=self.search_url, refused=refused
                )
                if product is None:
                    continue
                product.download = {
                    "kind": "sentinelhub",
                    "item_id": item.get("id"),
                    "collection": body["collections"][0],
                    "service_url": self.base_url,
                    "datetime": product.datetime.isoformat(),
                    "assets": product.download["assets"],
                }
                products.append(product)
            nxt = (page.get("context") or {}).get("next")
            # The Catalog API does not say how many items match; show pages done.
            feedback.set_progress(min(0.95, page_number / (page_number + 1)))
            if nxt is None or not features:
                break
            if nxt == body.get("next"):
                feedback.log("The catalog sent the same next page twice; stopping there.")
                break
            body = {**body, "next": nxt}
        else:
            feedback.log(f"Stopped after {self.max_pages} pages; narrow the period or the area to see everything.")
        if left_out:
            feedback.log(left_out_message(left_out, level))
        if refused:
            feedback.log(refused_assets_message(refused, products))
        feedback.set_progress(1.0)
        return products

    def _post_search(self, client: JsonClient, body: dict) -> dict:
        """One page; a 401 with a cached token gets one fresh token before it counts as refused."""
        fresh = self.tokens.is_fresh
        token = self.tokens.access_token(client)
        try:
            return client.post(self.search_url, json=body, headers=bearer(token))
        except CredentialsRefused:
            if fresh:
                raise
        return client.post(self.search_url, json=body, headers=bearer(self.tokens.access_token(client, renew=True)))

