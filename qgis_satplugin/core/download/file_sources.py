"""STAC (Earth Search COGs over HTTP) and local (SAFE, zipped SAFE, COG folders) products.

Both hand band files to :func:`warp_read.read_onto_grid`; they differ in where the
files are and in how a product says whether its offset was already removed:

* Earth Search v1 items carry ``earthsearch:boa_offset_applied``: when true the COGs
  are already harmonized and nothing may be subtracted again. The flag lives in the
  item (``download["self"]``), fetched once per acquisition that has work to do.
* A local COG folder has its STAC item JSON beside the bands; SAFE products follow
  the baseline rule.

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

import json
import threading
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from rasterio.enums import Resampling

from ..errors import SatPluginError
from ..search.hrefs import is_http_url, local_file_in_product
from ..search.http import BadAnswer, HttpStatusError
from .bands import FILE_MASKS
from .harmonize import Harmonization, apply_harmonization, plan_harmonization
from .transfer import ClientPool
from .warp_read import is_remote, read_onto_grid

BOA_FLAG = "earthsearch:boa_offset_applied"


def checked_file(product, band: str) -> str:
    """The reference of one band file of ``product``, once it passed the rule of its kind."""
    dl = product.download or {}
    href = (dl.get("assets") or {}).get(band)
    if not href:
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

    def mask_name(self, acq) -> str | None:
        name = FILE_MASKS.get(acq.collection)
        if name and all(name in (p.download.get("assets") or {}) for p in acq.products):
            return name
        return None

    def harmonization(self, acq, harmonize: bool) -> dict[str, Harmonization]:
        """Per product id: what to subtract. Reads the provider's flag once per acquisition."""
        with self._lock:
            key = ("harmonization", harmonize)
            if key not in acq.info:
                acq.info[key] = {
                    p.product_id: plan_harmonization(
                        p.processing_baseline, p.datetime, harmonize, self._provider_removed_offset(p)
                    )
                    for p in acq.products
                }
            return acq.info[key]

    def _provider_removed_offset(self, product) -> bool | None:
        dl = product.download
        item = None
        if dl.get("kind") == "stac" and is_http_url(dl.get("self")):
            try:
                item = self.pool.client().get(dl["self"])
            except HttpStatusError as exc:  # gone or refused: the baseline decides, and the log says so
                if self.pool.log:
                    self.pool.log(f"{product.product_id}: could not read its STAC item ({exc}); the baseline decides the offset.")
                return None
        elif dl.get("kind") == "local" and dl.get("path") and Path(dl["path"]).is_dir():
            item = _local_item(Path(dl["path"]), dl.get("item_id"))
        if isinstance(item, dict):
            flag = (item.get("properties") or {}).get(BOA_FLAG)
            if isinstance(flag, bool):
                return flag
        return None

    def read_band(self, acq, band: str, *, mask: bool, harmonization: dict[str, Harmonization] | None) -> np.ndarray:
        """One band of one acquisition on the grid, harmonized and mosaicked."""
        dtype = np.uint8 if mask else np.uint16
        resampling = Resampling.nearest if mask else Resampling.bilinear
        merged = None
        for p in acq.products:
            href = checked_file(p, band)
            data = self._read_with_retries(href, resampling, dtype)
            if harmonization is not None:
                data = apply_harmonization(data, harmonization[p.product_id].subtract_dn)
            if merged is None:
                merged = data
            else:
                empty = merged == 0
                merged[empty] = data[empty]
        return merged

    def _read_with_retries(self, href: str, resampling, dtype) -> np.ndarray:
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
                return read_onto_grid(href, self.grid, resampling, dtype, self.pool)
            except BadAnswer as exc:
                problem = str(exc)
                if attempt < client.max_attempts:
                    client.retry_later(href.rsplit("/", 1)[-1], problem, client._backoff(attempt), attempt)
        raise SatPluginError(f"Gave up on {href.rsplit('/', 1)[-1]} after {client.max_attempts} attempts ({problem}).")


def _local_item(folder: Path, item_id) -> dict | None:
    for candidate in sorted(folder.glob("*.json")):
        try:
            data = json.loads(candidate.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("type") == "Feature" and (item_id is None or data.get("id") == item_id):
            return data
    return None
