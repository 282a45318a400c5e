"""Microsoft Planetary Computer on loopback: its STAC API, its SAS token API, and blob storage.

* :class:`PlanetaryComputerServer`: the STAC API under ``/api/stac/v1`` (as
  :class:`StacApiServer`) and the Data Authentication API beside it,
  ``GET /api/sas/v1/token/{collection}`` answering ``{"msft:expiry": ..., "token": ...}``
  (the shape of https://planetarycomputer.microsoft.com/api/sas/v1/docs). Tokens are
  random, last ``lifetime_s`` and are remembered so the blob server can check them.
* :class:`SignedBlobServer`: a range file server that, like Azure Blob Storage for a
  private container, answers 403 ``AuthenticationFailed`` unless the request carries a
  valid, unexpired token as its query string.

:func:`planetary_product` writes one product of the synthetic world (:mod:`s2_world`)
where a Planetary Computer item of it says its blobs are.
"""

from __future__ import annotations

import secrets
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import s2_world
from .base import Request, json_answer
from .files import RangeFileServer
from .items import pc_item
from .stac_api import StacApiServer

STAC_PREFIX = "/api/stac/v1"
TOKEN_PREFIX = "/api/sas/v1/token/"
COLLECTIONS = ("sentinel-2-l2a",)
_AUTH_FAILED = (
    b'<?xml version="1.0" encoding="utf-8"?><Error><Code>AuthenticationFailed</Code>'
    b"<Message>Server failed to authenticate the request. Make sure the value of Authorization header is "
    b"formed correctly including the signature.</Message></Error>"
)


class PlanetaryComputerServer(StacApiServer):
    def __init__(self, items=(), *, lifetime_s: float = 3600.0, **kwargs):
        super().__init__(items, prefix=STAC_PREFIX, **kwargs)
        self.lifetime_s = lifetime_s
        self.issued: dict[str, datetime] = {}  # sig -> expiry
        self._issued_lock = threading.Lock()

    @property
    def token_requests(self) -> list[Request]:
        return [r for r in self.requests if r.path.startswith(TOKEN_PREFIX)]

    def tokens(self) -> list[str]:
        with self._issued_lock:
            return list(self.issued)

    def valid(self, sig: str | None) -> bool:
        with self._issued_lock:
            expiry = self.issued.get(sig or "")
        return expiry is not None and datetime.now(timezone.utc) < expiry

    def handle(self, req: Request):
        if req.path.startswith(TOKEN_PREFIX):
            collection = req.path[len(TOKEN_PREFIX):]
            if req.method != "GET" or collection not in COLLECTIONS:
                return json_answer(404, {"detail": f"collection {collection} not found"})
            sig = secrets.token_urlsafe(24)
            expiry = (datetime.now(timezone.utc) + timedelta(seconds=self.lifetime_s)).replace(microsecond=0)
            with self._issued_lock:
                self.issued[sig] = expiry
            stamp = expiry.strftime("%Y-%m-%dT%H:%M:%SZ")
            token = f"st=2024-01-01T00%3A00%3A00Z&se={quote(stamp, safe='')}&sp=rl&sv=2021-06-08&sr=c&sig={sig}"
            return json_answer(200, {"msft:expiry": stamp, "token": token})
        return super().handle(req)


class SignedBlobServer(RangeFileServer):
    def __init__(self, root, issuer: PlanetaryComputerServer):
        super().__init__(root)
        self.issuer = issuer

    def handle(self, req: Request):
        if not self.issuer.valid((req.query.get("sig") or [None])[0]):
            return 403, {"Content-Type": "application/xml", "x-ms-error-code": "AuthenticationFailed"}, _AUTH_FAILED
        return super().handle(req)


def planetary_product(root: Path, blob_url: str, *, when=datetime(2023, 6, 12, 10, 15, 59, tzinfo=timezone.utc),
                      bands=("B04", "SCL"), baseline: str = "05.09") -> dict:
    """A Planetary Computer item of the synthetic world; its band files are written under ``root``.

    The files hold ESA's numbers: baseline 04.00+ reflectance carries the +1000 DN offset.
    """
    item = pc_item(tile="33TWM", when=when, baseline=baseline, orbit=22, platform="S2B",
                   geometry=s2_world.footprint_4326(), asset_base=blob_url, bands=bands)
    offset = s2_world.OFFSET_DN if baseline >= "04.00" else 0
    for band in bands:
        target = Path(root) / urlsplit(item["assets"][band]["href"]).path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        s2_world.write_band(target, band, 0 if band == "SCL" else offset)
    return item
