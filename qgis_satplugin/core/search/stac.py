"""STAC API backend (Earth Search by default): POST /search, then follow ``next`` links.

Earth Search v1 answers with item pages whose ``next`` link carries the POST body to
send (``method``/``body``/``merge``, from the STAC API item-search spec); other STAC
APIs use a plain GET href. Both are followed, with a page cap and a loop guard so a
misbehaving server cannot keep a QGIS task busy forever.

Items become :class:`Product` objects; the item's ``geometry`` is the data footprint
(Earth Search computes it from the valid pixels), which is what coverage needs. Asset
hrefs go through :func:`hrefs.remote_asset_url`: only http(s) URLs are kept (relative
ones resolved against the item's own URL), so a catalogue cannot make the plugin read
local files or send GDAL to other hosts.
"""

from __future__ import annotations

import json
import posixpath
from datetime import datetime
from typing import Callable, Iterator
from urllib.parse import urlsplit

import shapely
from shapely.geometry import box, shape

from ..errors import SatPluginError
from ..geometry import polygonal_part
from .aoi import query_geometry
from .hrefs import remote_asset_url
from .http import JsonClient
from .period import stac_interval
from .products import (
    Product,
    canonical_band,
    format_baseline,
    normalise_collection,
    normalise_platform,
    parse_datetime,
    parse_product_name,
)

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
STAC_COLLECTION_IDS = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}
PAGE_LIMIT = 100
# 200 pages of 100 items is years of a tile stack; beyond that the query is too broad.
MAX_PAGES = 200


def product_from_stac_item(
    item: dict,
    *,
    backend: str = "stac",
    collection: str | None = None,
    base_url: str | None = None,
    refused: list | None = None,
) -> Product | None:
    """A Product from a STAC item, or None when the item has no usable geometry or date.

    Properties win over what the id says; the SAFE name in ``s2:product_uri`` (or the id)
    fills the gaps, e.g. Earth Search has no ``sat:relative_orbit`` but its product URI
    carries ``R037``. ``base_url`` is the address the item came from: relative hrefs
    resolve against the item's ``self`` link, itself resolved against ``base_url``.
    The keys of assets left out because of their href are appended to ``refused``.
    """
    props = item.get("properties") or {}
    item_id = str(item.get("id") or "")
    # The SAFE name identifies a product across backends; the item id is backend-specific.
    product_id = str(props.get("s2:product_uri") or item_id).removesuffix(".SAFE")
    named = parse_product_name(product_id)
    if not named.get("mgrs_tile") and item_id:
        named = {**parse_product_name(item_id), **named}

    when = parse_datetime(props.get("datetime") or props.get("start_datetime")) or named.get("datetime")
    footprint = _item_footprint(item)
    if when is None or footprint is None:
        return None

    coll = collection or item.get("collection") or props.get("s2:product_type") or named.get("collection") or ""
    try:
        coll = normalise_collection(coll)
    except SatPluginError:
        coll = named.get("collection") or "L2A"

    cloud = props.get("eo:cloud_cover")
    orbit = props.get("sat:relative_orbit", named.get("relative_orbit"))
    own_url = remote_asset_url(_link(item, "self"), base_url)
    return Product(
        product_id=product_id,
        datetime=when,
        platform=normalise_platform(props.get("platform")) or named.get("platform") or "",
        mgrs_tile=_mgrs_tile(props) or named.get("mgrs_tile") or "",
        relative_orbit=int(orbit) if orbit is not None else None,
        processing_baseline=format_baseline(props.get("s2:processing_baseline")) or named.get("processing_baseline"),
        collection=coll,
        cloud_cover=float(cloud) if cloud is not None else None,
        footprint=footprint,
        backend=backend,
        download={
            "kind": "stac",
            "item_id": item_id,
            "collection": item.get("collection"),
            "self": own_url,
            "assets": band_assets(item.get("assets") or {}, own_url or base_url, refused),
        },
        processing_time=parse_datetime(props.get("s2:generation_time")) or named.get("processing_time"),
    )


def band_assets(assets: dict, base_url: str | None = None, refused: list | None = None) -> dict:
    """Canonical band name -> http(s) URL; cloud-optimised GeoTIFFs win over JPEG 2000 copies.

    An href that :func:`hrefs.remote_asset_url` refuses is left out. Bands left without
    any file because of that are appended to ``refused`` (an ``s3://`` copy beside an
    https one, as Earth Search lists them, is no loss and is not reported).
    """
    found: dict = {}
    jp2: dict = {}
    lost: list = []
    for key, asset in assets.items():
        raw = asset.get("href") if isinstance(asset, dict) else None
        if not raw or not isinstance(raw, str):
            continue
        band = canonical_band(key) or canonical_band(posixpath.basename(urlsplit(raw).path))
        if band is None:
            continue
        href = remote_asset_url(raw, base_url)
        if href is None:
            lost.append(band)
            continue
        is_jp2 = key.lower().endswith("-jp2") or href.lower().endswith(".jp2")
        (jp2 if is_jp2 else found).setdefault(band, href)
    result = {**jp2, **found}
    if refused is not None:
        refused.extend(sorted({band for band in lost if band not in result}))
    return result


def _mgrs_tile(props: dict) -> str | None:
    tile = props.get("s2:mgrs_tile") or props.get("mgrs:tile")
    if tile:
        return str(tile).lstrip("T")
    zone, band, square = (props.get(k) for k in ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"))
    if zone is not None and band and square:
        return f"{int(zone):02d}{band}{square}"
    code = props.get("grid:code")
    if isinstance(code, str) and code.startswith("MGRS-"):
        return code[5:]
    return None


def _item_footprint(item: dict):
    geom = item.get("geometry")
    try:
        if geom:
            footprint = shape(geom)
        elif item.get("bbox") and len(item["bbox"]) >= 4:
            b = item["bbox"]
            footprint = box(b[0], b[1], b[-2] if len(b) == 6 else b[2], b[-1] if len(b) == 6 else b[3])
        else:
            return None
    except (ValueError, TypeError, AttributeError, shapely.errors.GEOSException):
        return None
    if not footprint.is_valid:
        footprint = shapely.make_valid(footprint)
    return polygonal_part(footprint)


def _link(item: dict, rel: str) -> str | None:
    for link in item.get("links") or []:
        if link.get("rel") == rel:
            return link.get("href")
    return None


class StacBackend:
    """Search a STAC API for Sentinel-2 items.

    ``client`` replaces the HTTP client; ``client_options`` are passed to the one built
    for each search (e.g. ``{"sleep": ..., "max_attempts": 3}``).
    """

    def __init__(
        self,
        url: str = EARTH_SEARCH_URL,
        *,
        client: JsonClient | None = None,
        client_options: dict | None = None,
        collection_ids: dict | None = None,
        page_limit: int = PAGE_LIMIT,
        max_pages: int = MAX_PAGES,
        name: str = "stac",
    ):
        self.url = url.rstrip("/")
        self.client = client
        self.client_options = dict(client_options or {})
        self.collection_ids = {**STAC_COLLECTION_IDS, **(collection_ids or {})}
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.name = name

    def search_body(self, aoi, start: datetime, end: datetime, collection: str, max_cloud=None) -> dict:
        body = {
            "collections": [self.collection_ids[normalise_collection(collection)]],
            "intersects": query_geometry(aoi),
            "datetime": stac_interval(start, end),
            "limit": self.page_limit,
        }
        if max_cloud is not None and max_cloud < 100:
            # Inclusive, like the MAX_CLOUD filter applied locally afterwards.
            body["query"] = {"eo:cloud_cover": {"lte": float(max_cloud)}}
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
        client = self.client or JsonClient(**{"is_canceled": is_canceled, "log": log, **self.client_options})
        products = []
        skipped = 0
        refused: list = []
        for items, matched, page_url in self._pages(client, self.search_body(aoi, start, end, collection, max_cloud), log):
            for item in items:
                if not isinstance(item, dict):
                    skipped += 1
                    continue
                product = product_from_stac_item(
                    item, backend=self.name, collection=collection, base_url=page_url, refused=refused
                )
                if product is None:
                    skipped += 1
                else:
                    products.append(product)
            if progress and matched:
                progress(min(100.0, 100.0 * len(products) / matched))
        if skipped and log:
            log(f"Skipped {skipped} item(s) without a geometry or date.")
        if refused and log:
            log(refused_assets_message(refused))
        return products

    def _pages(self, client: JsonClient, body: dict, log) -> Iterator[tuple[list, int | None, str]]:
        """Yield (items, total matched or None, the page's URL) per page, following ``next`` links."""
        method, url, payload = "POST", f"{self.url}/search", body
        seen = set()
        for _ in range(self.max_pages):
            page = client.post(url, json=payload) if method == "POST" else client.get(url)
            items = page.get("features") or []
            matched = page.get("numberMatched") or (page.get("context") or {}).get("matched")
            yield items, matched, url
            nxt = _next_link(page)
            if not items or nxt is None:
                return
            method = (nxt.get("method") or "GET").upper()
            url = remote_asset_url(nxt.get("href"), url)
            if url is None:
                if log:
                    log("The server's next-page link is not an http(s) URL; stopping there.")
                return
            if method == "POST":
                link_body = nxt.get("body") or {}
                payload = {**payload, **link_body} if nxt.get("merge") else (link_body or payload)
            key = (method, url, json.dumps(payload, sort_keys=True) if method == "POST" else "")
            if key in seen:
                if log:
                    log("The server sent the same next page twice; stopping there.")
                return
            seen.add(key)
        if log:
            log(f"Stopped after {self.max_pages} pages; narrow the period or the area to see everything.")


def refused_assets_message(bands: list) -> str:
    """The log line for band files left out because their href is no http(s) URL."""
    shown = ", ".join(sorted(set(map(str, bands))))
    return (
        f"Left out {len(bands)} band file(s) ({shown}) whose href is not an http(s) URL (a local path, another "
        "scheme or a GDAL path): a catalogue's files are only read over HTTP(S)."
    )


def _next_link(page: dict) -> dict | None:
    for link in page.get("links") or []:
        if link.get("rel") == "next" and link.get("href"):
            return link
    return None
