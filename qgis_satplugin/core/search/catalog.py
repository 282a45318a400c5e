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
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from ..errors import SatPluginError
from .aoi import query_geometry
from .http import CREDENTIALS_HELP, CredentialsRefused, HttpStatusError, JsonClient
from .period import stac_interval
from .products import Product, normalise_collection
from .stac import left_out_message, product_from_stac_item, refused_assets_message, unwanted_item

CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
SENTINELHUB_BASE_URL = "https://services.sentinel-hub.com"
SENTINELHUB_TOKEN_URL = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
CATALOG_SEARCH_PATH = "/api/v1/catalog/1.0.0/search"
CATALOG_COLLECTION_IDS = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}
# Sentinel Hub's rate limiter sends Retry-After in milliseconds.
SENTINELHUB_RETRY_AFTER_UNIT = 0.001
PAGE_LIMIT = 100  # the Catalog API maximum
MAX_PAGES = 200
# Renew a token this long before it expires, so a page request never carries a stale one.
TOKEN_MARGIN_S = 60.0
# OAuth error codes that mean "these credentials are wrong", whatever the HTTP status.
_BAD_CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant"}


@dataclass(frozen=True)
class Credentials:
    """OAuth client credentials; the secret never appears in ``repr``."""

    client_id: str
    client_secret: str = field(repr=False)


def resolve_credentials(
    client_id=None, client_secret=None, *, environ=None, use_sentinelhub_config=True
) -> Credentials:
    """Explicit id and secret, else ``SH_CLIENT_ID``/``SH_CLIENT_SECRET``, else sentinelhub's config.

    The sentinelhub config file is only read when it already exists: creating
    ``SHConfig()`` without one would write a default file into the user's home.
    """
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise SatPluginError("Give both the client id and the client secret. " + CREDENTIALS_HELP)
        return Credentials(str(client_id), str(client_secret))
    env = os.environ if environ is None else environ
    if env.get("SH_CLIENT_ID") and env.get("SH_CLIENT_SECRET"):
        return Credentials(env["SH_CLIENT_ID"], env["SH_CLIENT_SECRET"])
    if use_sentinelhub_config:
        saved = _sentinelhub_saved_credentials()
        if saved is not None:
            return saved
    raise SatPluginError(
        "No Sentinel Hub credentials were found. Create an OAuth client in your Copernicus Data Space "
        "or Sentinel Hub dashboard, then store its id and secret in the QGIS authentication "
        "configuration or in the environment variables SH_CLIENT_ID and SH_CLIENT_SECRET."
    )


def _sentinelhub_saved_credentials() -> Credentials | None:
    try:
        from sentinelhub import SHConfig
    except ImportError:
        return None
    if not os.path.exists(SHConfig.get_config_location()):
        return None
    try:
        config = SHConfig.load()
    except Exception:  # a broken or foreign config file is "no credentials", not a crash
        return None
    if config.sh_client_id and config.sh_client_secret:
        return Credentials(config.sh_client_id, config.sh_client_secret)
    return None


def as_credentials(value) -> Credentials:
    """Accept Credentials, an (id, secret) pair, a dict, or None (then look them up)."""
    if isinstance(value, Credentials):
        return value
    if value is None:
        return resolve_credentials()
    if isinstance(value, dict):
        return resolve_credentials(value.get("client_id"), value.get("client_secret"))
    client_id, client_secret = value
    return resolve_credentials(client_id, client_secret)


def sh_config(base_url: str, token_url: str, credentials: Credentials):
    """A ``sentinelhub.SHConfig`` for these endpoints, built without reading or writing the config file."""
    from sentinelhub import SHConfig

    return SHConfig(
        use_defaults=True,
        sh_base_url=base_url.rstrip("/"),
        sh_token_url=token_url,
        sh_client_id=credentials.client_id,
        sh_client_secret=credentials.client_secret,
    )


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
        self._credentials = credentials
        self.client = client
        self.client_options = dict(client_options or {})
        self.name = name
        self.page_limit = min(page_limit, PAGE_LIMIT)
        self.max_pages = max_pages
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0

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
        progress: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> list[Product]:
        client = self.client or JsonClient(
            **{
                "retry_after_unit": SENTINELHUB_RETRY_AFTER_UNIT,
                "is_canceled": is_canceled,
                "log": log,
                **self.client_options,
            }
        )
        credentials = as_credentials(self._credentials)
        body = self.search_body(aoi, start, end, collection, max_cloud)
        level = normalise_collection(collection)
        products: list[Product] = []
        refused: list = []
        left_out: Counter = Counter()
        for page_number in range(1, self.max_pages + 1):
            page = self._post_search(client, credentials, body)
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
            if progress:
                # The Catalog API does not say how many items match; show pages done.
                progress(min(95.0, 100.0 * page_number / (page_number + 1)))
            if nxt is None or not features:
                break
            if nxt == body.get("next"):
                if log:
                    log("The catalog sent the same next page twice; stopping there.")
                break
            body = {**body, "next": nxt}
        else:
            if log:
                log(f"Stopped after {self.max_pages} pages; narrow the period or the area to see everything.")
        if left_out and log:
            log(left_out_message(left_out, level))
        if refused and log:
            log(refused_assets_message(refused, products))
        if progress:
            progress(100.0)
        return products

    def _post_search(self, client: JsonClient, credentials: Credentials, body: dict) -> dict:
        """One page; a 401 with a cached token gets one fresh token before it counts as refused."""
        fresh = self._token is None or self._clock() >= self._token_expires
        token = self._access_token(client, credentials)
        try:
            return client.post(self.search_url, json=body, headers=_bearer(token))
        except CredentialsRefused:
            if fresh:
                raise
        self._token = None
        token = self._access_token(client, credentials)
        return client.post(self.search_url, json=body, headers=_bearer(token))

    def access_token(self, client: JsonClient, *, renew: bool = False) -> str:
        """A bearer token for this service, cached until it expires.

        ``renew`` drops the cached one first: the Process API answered 401 with it.
        """
        if renew:
            self._token = None
        return self._access_token(client, as_credentials(self._credentials))

    def _access_token(self, client: JsonClient, credentials: Credentials) -> str:
        if self._token is not None and self._clock() < self._token_expires:
            return self._token
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
        try:
            # secret=True: the form is the client secret; it must reach this address and no other.
            answer = client.post(self.token_url, data=form, secret=True)
        except HttpStatusError as exc:
            if exc.error_code in _BAD_CREDENTIAL_ERRORS:
                raise CredentialsRefused(
                    f"The server refused the credentials (HTTP {exc.status}, {exc.error_code}). {CREDENTIALS_HELP}"
                ) from None
            raise
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token or not isinstance(token, str):
            raise SatPluginError("The token endpoint answered without an access token; check the token URL.")
        try:
            lifetime = float(answer.get("expires_in") or 300)
        except (TypeError, ValueError):
            lifetime = 300.0
        self._token = token
        self._token_expires = self._clock() + max(0.0, lifetime - TOKEN_MARGIN_S)
        return token


def _bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
