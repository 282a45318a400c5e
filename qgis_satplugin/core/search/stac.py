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

What an item is comes from the item, never from the request: not every server filters
by collection, and catalogues mix missions and levels. :func:`item_level` reads the
mission (``platform``, ``constellation``) and the level (``s2:product_type``, the SAFE
name, the collection id); the backends leave out, and count in the log, items that are
not Sentinel-2 of the level asked for (:func:`unwanted_item`).

Collections searched (:data:`STAC_COLLECTION_IDS`): Earth Search's current L2A collection
``sentinel-2-c1-l2a`` (Collection 1, ESA's reprocessing) first, and the legacy
``sentinel-2-l2a``, which still holds dates that Collection 1 lacks; where both list the
same product, the first collection's copy is kept. Earth Search's L1C files are
JPEG 2000s in a requester-pays S3 bucket (``s3://sentinel-s2-l1c``) that needs an AWS
account: they are left out like any non-http(s) href, recorded per product
(``download["refused"]``), and the download refuses such a product before it starts.

Microsoft Planetary Computer is a STAC API too (``signing="planetary_computer"``): its
blob URLs need a SAS token, see :mod:`.signing`.

What the download's harmonization needs travels in ``download["boa_offset_applied"]``:
Earth Search's ``earthsearch:boa_offset_applied`` flag as the item states it, or None
when the item does not say (then the baseline decides, and the download says so).
"""

from __future__ import annotations

import json
import posixpath
from collections import Counter
from datetime import datetime
from typing import Iterator
from urllib.parse import urlsplit

import shapely
from shapely.geometry import box, shape

from ..area import query_geometry
from ..errors import SatPluginError
from ..feedback import Feedback
from ..geometry import polygonal_part
from ..http.client import JsonClient
from ..http.hrefs import S3_ADVICE, S3_WHY, remote_asset_url
from ..http.signing import SIGNING_KIND, signing_record
from ..products import (
    Product,
    normalise_collection,
    normalise_platform,
    parse_datetime,
    parse_product_name,
)
from ..sentinel2 import canonical_band, format_baseline
from .period import stac_interval

EARTH_SEARCH_URL = "https://earth-search.aws.element84.com/v1"
# Searched in this order; for a product listed in several, the first collection's copy wins.
STAC_COLLECTION_IDS = {"L2A": ("sentinel-2-c1-l2a", "sentinel-2-l2a"), "L1C": ("sentinel-2-l1c",)}
PAGE_LIMIT = 100
# 200 pages of 100 items is years of a tile stack; beyond that the query is too broad.
MAX_PAGES = 200
# Earth Search's flag that the +1000 DN offset of baseline 04.00+ was already removed
# from the COGs (its v0 catalogue called it sentinel:boa_offset_applied).
BOA_OFFSET_FLAGS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
SENTINEL2 = "Sentinel-2"


def item_level(item: dict) -> tuple[str, str | None]:
    """``(mission, level)`` as the item itself says: ``("Sentinel-2", "L2A")``, ``("landsat-8", None)``...

    The mission is ``Sentinel-2`` when ``platform`` names a Sentinel-2 satellite, or, without
    a platform, when the constellation, the collection id or the id says so; otherwise it
    is the platform (or collection) the item names. The level is the first of
    ``s2:product_type``, the SAFE name (``s2:product_uri`` or the id) and the collection
    id that names one; None when none does.
    """
    props = item.get("properties") or {}
    collection = str(item.get("collection") or "")
    names = [str(props.get("s2:product_uri") or ""), str(item.get("id") or "")]
    platform = props.get("platform")
    if platform:
        mission = SENTINEL2 if _is_s2_platform(normalise_platform(str(platform))) else str(platform)
    elif "sentinel-2" in f"{props.get('constellation') or ''} {collection}".lower().replace(" ", "-") or any(
        _is_s2_platform(parse_product_name(n).get("platform")) for n in names if n
    ):
        mission = SENTINEL2
    else:
        mission = collection or "an unknown mission"
    level = None
    for evidence in (props.get("s2:product_type"), *(parse_product_name(n).get("collection") for n in names if n), collection):
        try:
            level = normalise_collection(str(evidence)) if evidence else None
        except SatPluginError:
            level = None
        if level:
            break
    return mission, level


def _is_s2_platform(value) -> bool:
    return isinstance(value, str) and len(value) == 3 and value[:2] == "S2" and value[2] in "ABCD"


def unwanted_item(item: dict, level: str) -> str | None:
    """Why ``item`` is not a Sentinel-2 product of ``level`` (``"landsat-8"``, ``"Sentinel-2 L1C"``), or None.

    An item that states no level is taken at the level asked for: the server was asked
    for that collection and nothing in the item says otherwise.
    """
    mission, found = item_level(item)
    if mission != SENTINEL2:
        return mission
    if found is not None and found != level:
        return f"{SENTINEL2} {found}"
    return None


def left_out_message(counts: Counter, level: str) -> str:
    """The log line for items left out by :func:`unwanted_item`."""
    shown = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
    return (
        f"Left out {sum(counts.values())} item(s) that are not {SENTINEL2} {level} ({shown}): the server "
        "answered with more than the collection asked for."
    )


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
    carries ``R037``. The level is the item's own (:func:`item_level`); ``collection`` is
    only the fallback for an item that does not state one. ``base_url`` is the address
    the item came from: relative hrefs resolve against the item's ``self`` link, itself
    resolved against ``base_url``. The keys of assets left out because of their href are
    appended to ``refused``.
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

    level = item_level(item)[1] or (normalise_collection(collection) if collection else "L2A")
    cloud = props.get("eo:cloud_cover")
    orbit = props.get("sat:relative_orbit", named.get("relative_orbit"))
    own_url = remote_asset_url(_link(item, "self"), base_url)
    assets, lost = band_assets(item.get("assets") or {}, own_url or base_url)
    if refused is not None:
        refused.extend(sorted(lost))
    download = {
        "kind": "stac",
        "item_id": item_id,
        "collection": item.get("collection"),
        "self": own_url,
        "assets": assets,
        "boa_offset_applied": offset_flag(props),
    }
    if lost:
        # Which bands the catalogue lists only at addresses the plugin does not read, and
        # their scheme, so the download can say why before it starts.
        download["refused"] = {band: urlsplit(href).scheme or "path" for band, href in sorted(lost.items())}
    return Product(
        product_id=product_id,
        datetime=when,
        platform=normalise_platform(props.get("platform")) or named.get("platform") or "",
        mgrs_tile=_mgrs_tile(props) or named.get("mgrs_tile") or "",
        relative_orbit=int(orbit) if orbit is not None else None,
        processing_baseline=format_baseline(props.get("s2:processing_baseline")) or named.get("processing_baseline"),
        collection=level,
        cloud_cover=float(cloud) if cloud is not None else None,
        footprint=footprint,
        backend=backend,
        download=download,
        processing_time=parse_datetime(props.get("s2:generation_time")) or named.get("processing_time"),
    )


def offset_flag(props: dict) -> bool | None:
    """The provider's "offset already removed" flag as the item states it; None when it does not."""
    for key in BOA_OFFSET_FLAGS:
        if isinstance(props.get(key), bool):
            return props[key]
    return None


def band_assets(assets: dict, base_url: str | None = None) -> tuple[dict, dict]:
    """``(band -> http(s) URL, band -> refused href)``; cloud-optimised GeoTIFFs win over JPEG 2000 copies.

    An href that :func:`hrefs.remote_asset_url` refuses is left out. Only bands left
    without any file because of that are in the second dict (an ``s3://`` copy beside an
    https one, as Earth Search lists L2A files, is no loss and is not reported).
    """
    found: dict = {}
    jp2: dict = {}
    lost: dict = {}
    for key, asset in assets.items():
        raw = asset.get("href") if isinstance(asset, dict) else None
        if not raw or not isinstance(raw, str):
            continue
        band = canonical_band(key) or canonical_band(posixpath.basename(urlsplit(raw).path))
        if band is None:
            continue
        href = remote_asset_url(raw, base_url)
        if href is None:
            lost.setdefault(band, raw)
            continue
        is_jp2 = key.lower().endswith("-jp2") or href.lower().endswith(".jp2")
        (jp2 if is_jp2 else found).setdefault(band, href)
    result = {**jp2, **found}
    return result, {band: raw for band, raw in lost.items() if band not in result}


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
    for each search (e.g. ``{"sleep": ..., "max_attempts": 3}``). ``collection_ids`` maps
    a level to the collection id (or ids, preferred first) to ask for; a level mapped to
    nothing is refused with advice. ``signing="planetary_computer"`` marks every product's
    files as needing a Planetary Computer SAS token (see :mod:`.signing`).
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
        signing: str | None = None,
    ):
        if signing not in (None, SIGNING_KIND):
            raise SatPluginError(f"Unknown URL signing {signing!r}: use {SIGNING_KIND!r} or none.")
        self.url = url.rstrip("/")
        self.client = client
        self.client_options = dict(client_options or {})
        merged = {**STAC_COLLECTION_IDS, **(collection_ids or {})}
        self.collection_ids = {
            level: (ids,) if isinstance(ids, str) else tuple(ids or ()) for level, ids in merged.items()
        }
        self.page_limit = page_limit
        self.max_pages = max_pages
        self.name = name
        self.signing = signing

    def collections_for(self, collection: str) -> tuple[str, ...]:
        level = normalise_collection(collection)
        ids = self.collection_ids.get(level)
        if not ids:
            raise SatPluginError(
                f"{self.name} has no Sentinel-2 {level} collection; search {level} with another backend "
                "(CDSE or Sentinel Hub)."
            )
        return ids

    def search_body(self, aoi, start: datetime, end: datetime, collection: str, max_cloud=None) -> dict:
        body = {
            "collections": list(self.collections_for(collection)),
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
        feedback: Feedback | None = None,
    ) -> list[Product]:
        feedback = Feedback.of(feedback)
        level = normalise_collection(collection)
        body = self.search_body(aoi, start, end, level, max_cloud)
        client = self.client or JsonClient(
            **{"feedback": feedback, **self.client_options}
        )
        products = []
        skipped = seen = 0
        left_out: Counter = Counter()
        refused: list = []
        for items, matched, page_url in self._pages(client, body, feedback):
            for item in items:
                seen += 1
                if not isinstance(item, dict):
                    skipped += 1
                    continue
                other = unwanted_item(item, level)
                if other is not None:
                    left_out[other] += 1
                    continue
                product = product_from_stac_item(item, backend=self.name, collection=level, base_url=page_url, refused=refused)
                if product is None:
                    skipped += 1
                    continue
                if self.signing:
                    product.download["signing"] = signing_record(self.url, str(item.get("collection") or ""))
                products.append(product)
            if matched:
                feedback.set_progress(min(1.0, seen / matched))
        products = prefer_collections(products, body["collections"], feedback)
        if left_out:
            feedback.log(left_out_message(left_out, level))
        if skipped:
            feedback.log(f"Skipped {skipped} item(s) without a geometry or date.")
        if refused:
            feedback.log(refused_assets_message(refused, products))
        return products

    def _pages(self, client: JsonClient, body: dict, feedback: Feedback) -> Iterator[tuple[list, int | None, str]]:
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
                feedback.log("The server's next-page link is not an http(s) URL; stopping there.")
                return
            if method == "POST":
                link_body = nxt.get("body") or {}
                payload = {**payload, **link_body} if nxt.get("merge") else (link_body or payload)
            key = (method, url, json.dumps(payload, sort_keys=True) if method == "POST" else "")
            if key in seen:
                feedback.log("The server sent the same next page twice; stopping there.")
                return
            seen.add(key)
        feedback.log(f"Stopped after {self.max_pages} pages; narrow the period or the area to see everything.")


def refused_assets_message(bands: list, products=()) -> str:
    """The log line for band files left out because their href is no http(s) URL.

    When some were ``s3://`` (Earth Search's L1C JPEG 2000s, in a requester-pays bucket),
    the line says where L1C can be downloaded instead.
    """
    shown = ", ".join(sorted(set(map(str, bands))))
    text = (
        f"Left out {len(bands)} band file(s) ({shown}) whose href is not an http(s) URL (a local path, another "
        "scheme or a GDAL path): a catalogue's files are only read over HTTP(S)."
    )
    if any("s3" in (p.download.get("refused") or {}).values() for p in products):
        text += f" Some were s3:// ({S3_WHY}): {S3_ADVICE}."
    return text


# Said at the search and again when a download would need such a file.


def prefer_collections(products: list[Product], collections, feedback: Feedback | None = None) -> list[Product]:
    """One product per product id: the copy from the collection asked for first (Collection 1 over legacy)."""
    order = {c: i for i, c in enumerate(collections)}
    best: dict[str, Product] = {}
    for p in products:
        old = best.get(p.product_id)
        rank = order.get(p.download.get("collection"), len(order))
        if old is None or rank < order.get(old.download.get("collection"), len(order)):
            best[p.product_id] = p
    # Only a copy from another collection gives way; repeats within one are collapse_duplicates' business.
    kept = [p for p in products if p.download.get("collection") == best[p.product_id].download.get("collection")]
    if len(kept) < len(products):
        Feedback.of(feedback).log(
            f"{len(products) - len(kept)} product(s) are listed in more than one collection; kept each from "
            f"the first of {', '.join(collections)}."
        )
    return kept


def _next_link(page: dict) -> dict | None:
    for link in page.get("links") or []:
        if link.get("rel") == "next" and link.get("href"):
            return link
    return None
