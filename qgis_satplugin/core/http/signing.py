"""Signed asset URLs for Microsoft Planetary Computer, from its SAS token API.

Planetary Computer keeps Sentinel-2 in Azure Blob Storage, which answers only requests
that carry a shared access signature (SAS). Its Data Authentication API hands one out
per STAC collection, anonymously::

    GET {base}/api/sas/v1/token/{collection}  ->  {"token": "se=...&sig=...", "msft:expiry": "..."}

and the token is the query string of the blob URL. The API lives beside the STAC API
(``{base}/api/stac/v1``), so the one is found from the other (:func:`sas_api_for`).

What is stored and what is not: a search writes the *unsigned* asset hrefs and a
``signing`` record (``{"kind": "planetary_computer", "token_url": ...}``) into each
product's download references. Tokens are fetched only when a file is about to be read,
kept in memory until shortly before they expire (:data:`RENEW_BEFORE_S`), and never
written to a product list, a manifest or a log: a signed URL is a credential, and
:func:`.http.safe_url` (used by every log line and message) drops query strings.

Where a token may go: only to an Azure Blob Storage host or back to the host of the SAS
API that issued it (:func:`check_signing`), so a shared product list that names another
host for its files cannot collect the token.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from urllib.parse import urlsplit

from ..errors import SatPluginError
from ..products import parse_datetime
from .client import JsonClient, origin, safe_url
from .hrefs import is_http_url

PLANETARY_COMPUTER_STAC_URL = "https://planetarycomputer.microsoft.com/api/stac/v1"
SAS_API_PATH = "/api/sas/v1"
SIGNING_KIND = "planetary_computer"
AZURE_BLOB_SUFFIX = ".blob.core.windows.net"
# Anonymous tokens live about an hour; renewing five minutes early means no read in
# flight carries one that expires under it.
RENEW_BEFORE_S = 300.0
# A token without an expiry is trusted for this long only.
UNSTATED_LIFETIME_S = 600.0
# Below this a stated lifetime is taken as a clock difference (see TokenCache._fetch).
MIN_LIFETIME_S = 60.0


def sas_api_for(stac_url: str) -> str:
    """The SAS API beside a Planetary Computer STAC API: the same origin, ``/api/sas/v1``."""
    return origin(stac_url) + SAS_API_PATH


def signing_record(stac_url: str, collection: str) -> dict:
    """What a product's download references say about getting a token for its files."""
    return {"kind": SIGNING_KIND, "token_url": f"{sas_api_for(stac_url)}/token/{collection}"}


def check_signing(product_id: str, record, href: str) -> None:
    """Refuse a ``signing`` record or a file that a token must not be sent with."""
    if not isinstance(record, dict) or record.get("kind") != SIGNING_KIND or not is_http_url(record.get("token_url")):
        raise SatPluginError(
            f"Product {product_id}: its download references ask for URL signing the plugin does not know "
            f"({_shown(record)}); search again to get a clean product list."
        )
    host = (urlsplit(href).hostname or "").lower()
    issuer = (urlsplit(record["token_url"]).hostname or "").lower()
    if not (host.endswith(AZURE_BLOB_SUFFIX) or host == issuer):
        raise SatPluginError(
            f"Product {product_id}: its file {safe_url(href)!r} is not in Azure Blob Storage, and a Planetary "
            "Computer token is only sent there; search again to get a clean product list."
        )


def signed(href: str, token: str) -> str:
    return f"{href}{'&' if '?' in href else '?'}{token}"


class TokenCache:
    """SAS tokens by token URL, shared by the threads of one run and renewed before they expire."""

    def __init__(self, clock=time.time):
        self._clock = clock
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def sign(self, href: str, record: dict, client: JsonClient) -> str:
        """``href`` with a valid token as its query string (fetched once per collection and lifetime)."""
        url = record["token_url"]
        with self._lock:
            token, renew_at = self._tokens.get(url, ("", 0.0))
            if not token or self._clock() >= renew_at:
                token, renew_at = self._fetch(url, client)
                self._tokens[url] = (token, renew_at)
        return signed(href, token)

    def _fetch(self, url: str, client: JsonClient) -> tuple[str, float]:
        """(token, when to renew it)."""
        answer = client.get(url)
        token = answer.get("token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token.strip() or "#" in token:
            raise SatPluginError(
                f"The Planetary Computer token service {safe_url(url)} answered without a usable token; "
                "try again later."
            )
        expiry = None
        try:
            expiry = parse_datetime(answer.get("msft:expiry"))
        except (TypeError, ValueError):
            pass
        now = self._clock()
        lifetime = (expiry.timestamp() - now) if isinstance(expiry, datetime) else UNSTATED_LIFETIME_S
        if lifetime < MIN_LIFETIME_S:
            # An expiry already past (or nearly) means this machine's clock is off, not that
            # the token is: renewing it on every read would only bring 429s.
            lifetime = UNSTATED_LIFETIME_S
        # A short-lived token is renewed half-way through its life instead, so it is never renewed in a loop.
        return token.strip().lstrip("?"), now + max(0.0, lifetime - min(RENEW_BEFORE_S, lifetime / 2))


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."

