"""STAC (COGs over HTTP) and local (SAFE, zipped SAFE, COG folders) products.

Both hand band files to :func:`warp_read.read_onto_grid`; they differ in where the
files are. Whether a product's provider already removed the baseline 04.00 offset is
what the search recorded in ``download["boa_offset_applied"]`` (Earth Search's
``earthsearch:boa_offset_applied``, the STAC item beside a local COG folder, False for
ESA's SAFE files). Nothing is fetched again for it: an item's self link can be gone
(404) or unreadable (Earth Search's are ``s3://``) by the time of the download. When the
record does not say, the baseline decides, the manifest's reason says the flag was
not stated, and the log names the products concerned.

Planetary Computer products carry a ``signing`` record: each request for one of their
files gets a SAS token appended (:mod:`..search.signing`), fetched when needed and
never stored or logged.

One task per (acquisition, band): the products of the acquisition (tiles of one
overpass) are read in a fixed order, harmonized each by its own baseline, and merged,
the first product with data winning per pixel, so the result does not depend on the
order in which threads finish.

A product list is a data file anyone can edit, so every file reference in it is checked
before it is opened (:func:`checked_file`): a STAC product's files are http(s) URLs,
read through the plugin's own client; a local product's files lie inside its folder or
zip. Anything else (a local path in a STAC product, ``/vsicurl/``, ``/vsis3/``...) is
refused, so no local file's pixels end up in a dataset and GDAL never goes to a host
of its own.
"""

from __future__ import annotations

import threading
from urllib.parse import urlsplit

import numpy as np
from rasterio.enums import Resampling

from ..errors import SatPluginError
from ..http.client import BadAnswer
from ..http.hrefs import S3_ADVICE, S3_WHY, is_http_url, local_file_in_product
from ..http.signing import TokenCache, check_signing
from ..sentinel2 import BOA_OFFSET_DN
from .bands import FILE_MASKS
from .harmonize import Harmonization, apply_harmonization, plan_harmonization
from .transfer import ClientPool
from .warp_read import is_remote, read_onto_grid


def checked_file(product, band: str) -> str:
    """The reference of one band file of ``product``, once it passed the rule of its kind."""
    dl = product.download or {}
    href = (dl.get("assets") or {}).get(band)
    if not href:
        scheme = (dl.get("refused") or {}).get(band)
        if scheme == "s3":
            raise SatPluginError(f"Product {product.product_id} lists its {band} file only at s3:// ({S3_WHY}): {S3_ADVICE}.")
        have = ", ".join(sorted(dl.get("assets") or {})) or "none"
        raise SatPluginError(f"Product {product.product_id} has no {band} file (it has: {have}).")
    if dl.get("kind") == "stac" and not is_http_url(href):
        raise SatPluginError(
            f"Product {product.product_id}: its {band} file {_shown(href)} is not an http(s) URL, and a STAC "
            "product's files are only read over HTTP(S); search again to get a clean product list."
        )
    if dl.get("kind") == "local" and not local_file_in_product(href, dl.get("path")):
        raise SatPluginError(
            f"Product {product.product_id}: its {band} file {_shown(href)} is not inside the product "
            f"{_shown(dl.get('path'))}; search the folder again to get a clean product list."
        )
    if dl.get("signing") is not None:
        check_signing(product.product_id, dl["signing"], href)
    return href


def _shown(value) -> str:
    """A file reference fit for a message: no user info, no query string, not too long."""
    text = str(value)
    parts = urlsplit(text)
    if parts.scheme and parts.netloc:
        text = f"{parts.scheme}://{parts.hostname or ''}{parts.path}"
    text = text.split("?", 1)[0]
    return repr(text if len(text) <= 200 else text[:200] + "...")


class FileSources:
    def __init__(self, pool: ClientPool, grid):
        self.pool = pool
        self.grid = grid
        self._lock = threading.Lock()
        self._tokens = TokenCache()

    def mask_name(self, acq) -> str | None:
        name = FILE_MASKS.get(acq.collection)
        if name and all(name in (p.download.get("assets") or {}) for p in acq.products):
            return name
        return None

    def harmonization(self, acq, harmonize: bool) -> dict[str, Harmonization]:
        """Per product id: what to subtract, from what the search recorded about the provider's offset."""
        with self._lock:
            key = ("harmonization", harmonize)
            if key not in acq.info:
                plans = {
                    p.product_id: plan_harmonization(
                        p.processing_baseline, p.datetime, harmonize, provider_removed_offset(p)
                    )
                    for p in acq.products
                }
                acq.info[key] = plans
                assumed = [pid for pid, h in plans.items() if h.assumed]
                if assumed and harmonize:
                    self.pool.feedback.log(
                        f"{', '.join(assumed)}: the product list does not say whether the provider already removed "
                        f"the +1000 DN offset, so the baseline decided and {BOA_OFFSET_DN} DN were subtracted; if these "
                        "files are already harmonized, download them again with HARMONIZE off."
                    )
            return acq.info[key]

    def read_band(self, acq, band: str, *, mask: bool, harmonization: dict[str, Harmonization] | None) -> np.ndarray:
        """One band of one acquisition on the grid, harmonized and mosaicked."""
        dtype = np.uint8 if mask else np.uint16
        resampling = Resampling.nearest if mask else Resampling.bilinear
        merged = None
        for p in acq.products:
            href = checked_file(p, band)
            data = self._read_with_retries(href, resampling, dtype, self._signer(p))
            if harmonization is not None:
                data = apply_harmonization(data, harmonization[p.product_id].subtract_dn)
            if merged is None:
                merged = data
            else:
                empty = merged == 0
                merged[empty] = data[empty]
        return merged

    def _signer(self, product):
        """``url -> signed url`` for a product whose files need a token, else None."""
        record = (product.download or {}).get("signing")
        if record is None:
            return None
        return lambda url: self._tokens.sign(url, record, self.pool.client())

    def _read_with_retries(self, href: str, resampling, dtype, sign=None) -> np.ndarray:
        """A corrupt remote file is downloaded again; a corrupt local file is reported."""
        if not is_remote(href):
            try:
                return read_onto_grid(href, self.grid, resampling, dtype, self.pool)
            except BadAnswer as exc:
                raise SatPluginError(f"Cannot read {href}: {exc}") from None
        client = self.pool.client()
        for attempt in range(1, client.max_attempts + 1):
            self.pool.check_canceled()
            try:
                return read_onto_grid(href, self.grid, resampling, dtype, self.pool, sign=sign)
            except BadAnswer as exc:
                problem = str(exc)
                if attempt < client.max_attempts:
                    client.retry_later(href.rsplit("/", 1)[-1], problem, client.backoff_delay(attempt), attempt)
        raise SatPluginError(f"Gave up on {href.rsplit('/', 1)[-1]} after {client.max_attempts} attempts ({problem}).")


def provider_removed_offset(product) -> bool | None:
    """What the search recorded: True (already removed), False (not removed), None (not said)."""
    flag = (product.download or {}).get("boa_offset_applied")
    return flag if isinstance(flag, bool) else None
