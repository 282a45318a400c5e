"""Sentinel Hub Process API backend (Copernicus Data Space Ecosystem or commercial).

One POST to ``{service_url}/api/v1/process`` per window of the grid and per output:
an evalscript generated from the band list returns raw digital numbers as UINT16
(``units: "DN"``), 0 where ``dataMask`` says there is no data; the bounding box is the
window's, in the grid's own UTM CRS, with its exact width and height, so the answer
needs no resampling on our side and the windows stitch exactly. The Process API caps a
request at 2500 x 2500 pixels, so larger grids are split.

Harmonization: ``harmonizeValues`` is sent as **false** and the offset is removed by
:mod:`harmonize`, exactly as for the STAC and local backends. All backends thus share
one rule and one record of what was done, and ``harmonize=False`` gives the raw numbers
everywhere (Sentinel Hub would otherwise harmonize by default).

Reflectance is resampled bilinearly on the server (``upsampling``/``downsampling``);
masks (SCL for L2A, CLM for L1C) come in a second request with NEAREST, because the
processing options apply to a whole request.

The OAuth token is the Catalog backend's (same endpoint, same renewal and
"401 with a cached token gets one fresh token" rule).

Where the token goes is the user's choice only: the service URL is ``SERVICE_URL`` or
the documented default of the product's backend (:func:`service_url_for`), never the
address stored in a product list, which anyone who shared the GeoPackage could have
written. A product whose stored address differs is refused before any request.
"""

from __future__ import annotations

import math
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import numpy as np
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError
from rasterio.io import MemoryFile
from rasterio.windows import Window

from ..errors import SatPluginError
from ..grid import PixelGrid
from ..http.client import BadAnswer, CredentialsRefused, origin, safe_url
from ..http.sentinelhub_auth import (
    CDSE_BASE_URL,
    CDSE_TOKEN_URL,
    SENTINELHUB_BASE_URL,
    SENTINELHUB_RETRY_AFTER_UNIT,
    SENTINELHUB_TOKEN_URL,
    TokenSource,
    as_credentials,
)
from ..sentinel2 import MASK_NODATA
from .bands import SENTINELHUB_MASKS
from .harmonize import Harmonization, plan_harmonization
from ..http.limits import MAX_REQUEST_PX
from .transfer import ClientPool, read_body

PROCESS_PATH = "/api/v1/process"
# Tiles of one overpass are sensed within seconds of each other; the next overpass of
# the same place is at least ~100 minutes later (an adjacent orbit).
TIME_MARGIN = timedelta(minutes=10)
COLLECTION_TYPES = {"L2A": "sentinel-2-l2a", "L1C": "sentinel-2-l1c"}


def evalscript(bands: list[str], sample_type: str = "UINT16", nodata: int = 0) -> str:
    """A version-3 evalscript returning ``bands`` as raw DN, ``nodata`` where dataMask is 0."""
    inputs = ", ".join(f'"{b}"' for b in [*bands, "dataMask"])
    values = ", ".join(f"s.{b}" for b in bands)
    empty = ", ".join(str(nodata) for _ in bands)
    return (
        "//VERSION=3\n"
        "// satplugin: raw digital numbers (harmonizeValues is false), no data where dataMask is 0\n"
        "function setup() {\n"
        "  return {\n"
        f'    input: [{{bands: [{inputs}], units: "DN"}}],\n'
        f'    output: {{bands: {len(bands)}, sampleType: "{sample_type}"}}\n'
        "  };\n"
        "}\n"
        "function evaluatePixel(s) {\n"
        f"  if (s.dataMask === 0) {{ return [{empty}]; }}\n"
        f"  return [{values}];\n"
        "}\n"
    )


def crs_url(grid: PixelGrid) -> str:
    epsg = grid.pyproj_crs().to_epsg()
    if epsg is None:
        raise SatPluginError("Sentinel Hub needs a grid in an EPSG coordinate system (e.g. a UTM zone).")
    return f"http://www.opengis.net/def/crs/EPSG/0/{epsg}"


def split_windows(width: int, height: int, limit: int = MAX_REQUEST_PX) -> list[Window]:
    """Windows of at most ``limit`` x ``limit`` pixels covering the grid, as even as possible."""
    def cuts(n):
        parts = max(1, math.ceil(n / limit))
        return [round(i * n / parts) for i in range(parts + 1)]

    xs, ys = cuts(width), cuts(height)
    return [
        Window(x0, y0, x1 - x0, y1 - y0)
        for y0, y1 in zip(ys[:-1], ys[1:])
        for x0, x1 in zip(xs[:-1], xs[1:])
    ]


def window_bbox(grid: PixelGrid, w: Window) -> list[float]:
    x0 = grid.x_min + w.col_off * grid.pixel_width
    y1 = grid.y_max - w.row_off * grid.pixel_height
    return [x0, y1 - w.height * grid.pixel_height, x0 + w.width * grid.pixel_width, y1]


def process_body(acq, grid: PixelGrid, window: Window, bands: list[str], *, mask: bool) -> dict:
    """The Process API request for one window of one acquisition."""
    start = min(p.datetime for p in acq.products) - TIME_MARGIN
    end = max(p.datetime for p in acq.products) + TIME_MARGIN
    resampling = "NEAREST" if mask else "BILINEAR"
    sample_type = "UINT8" if mask else "UINT16"
    nodata = MASK_NODATA.get(bands[0], 0) if mask else 0
    return {
        "input": {
            "bounds": {"bbox": window_bbox(grid, window), "properties": {"crs": crs_url(grid)}},
            "data": [
                {
                    "type": COLLECTION_TYPES[acq.collection],
                    "dataFilter": {
                        "timeRange": {"from": _iso(start), "to": _iso(end)},
                        "mosaickingOrder": "mostRecent",
                    },
                    "processing": {"upsampling": resampling, "downsampling": resampling, "harmonizeValues": False},
                }
            ],
        },
        "output": {
            "width": int(window.width),
            "height": int(window.height),
            "responses": [{"identifier": "default", "format": {"type": "image/tiff"}}],
        },
        "evalscript": evalscript(bands, sample_type, nodata),
    }


def _iso(dt) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def default_token_url(service_url: str) -> str:
    return SENTINELHUB_TOKEN_URL if service_url.rstrip("/") == SENTINELHUB_BASE_URL else CDSE_TOKEN_URL


def default_service_url(backend: str | None) -> str:
    """The documented Process API address of a search backend: commercial Sentinel Hub, else CDSE."""
    return SENTINELHUB_BASE_URL if str(backend or "").lower() == "sentinelhub" else CDSE_BASE_URL


def _same_service(a: str, b: str) -> bool:
    return origin(a) == origin(b) and urlsplit(a).path.rstrip("/") == urlsplit(b).path.rstrip("/")


def service_url_for(product, service_url: str | None = None) -> str:
    """The Process API address to download ``product`` from, and so to send the token to.

    ``service_url`` (the user's parameter) when given, else the documented default of
    the product's backend; the address stored in the product list only serves as a
    check, because a shared file could name any host. A stored address that differs is
    refused, so a product found on one service is not fetched (with the user's token)
    from another.
    """
    chosen = (service_url or "").strip().rstrip("/") or default_service_url(product.backend)
    stored = (product.download or {}).get("service_url")
    if stored and (not isinstance(stored, str) or not _same_service(stored.strip(), chosen)):
        shown = safe_url(stored) if isinstance(stored, str) else repr(stored)
        raise SatPluginError(
            f"Product {product.product_id} was found on {shown}, but this download would send your token to "
            f"{safe_url(chosen)}; give that product list's service in SERVICE_URL (and its TOKEN_URL) if you "
            "trust it, or search again on the service you use."
        )
    return chosen


class ProcessApi:
    """Fetches windows of one grid from the Process API; safe to call from many threads."""

    def __init__(self, pool: ClientPool, grid: PixelGrid, *, service_url=None, token_url=None, credentials=None, max_request_px=MAX_REQUEST_PX):
        self.pool = pool
        self.grid = grid
        self.service_url = (service_url or "").rstrip("/") or None
        self.token_url = token_url
        self._credentials = credentials
        self.max_request_px = int(max_request_px)
        self._auth: dict[str, TokenSource] = {}
        self._lock = threading.Lock()

    def windows(self) -> list[Window]:
        return split_windows(self.grid.width, self.grid.height, self.max_request_px)

    def mask_name(self, acq) -> str | None:
        return SENTINELHUB_MASKS.get(acq.collection)

    def harmonization(self, acq, harmonize: bool) -> dict[str, Harmonization]:
        # harmonizeValues is false: the Process API returns ESA's numbers, offset included.
        return {
            p.product_id: plan_harmonization(p.processing_baseline, p.datetime, harmonize, provider_removed=False)
            for p in acq.products
        }

    def subtraction(self, acq, harmonize: bool) -> int:
        """One value for the whole answer: Sentinel Hub mosaics an acquisition's tiles itself."""
        values = {h.subtract_dn for h in self.harmonization(acq, harmonize).values()}
        if len(values) > 1:
            self.pool.feedback.log(f"{acq.stem}: tiles with different baselines in one request; the offset rule of the newest applies.")
        return max(values)

    def fetch(self, acq, window: Window, bands: list[str], *, mask: bool) -> np.ndarray:
        """(len(bands), h, w) array for ``window``: UINT16 reflectance DN, or the UINT8 mask."""
        base = self._base_url(acq)
        body = process_body(acq, self.grid, window, bands, mask=mask)
        dtype = "uint8" if mask else "uint16"
        shape = (len(bands), int(window.height), int(window.width))

        client = self.pool.client(retry_after_unit=SENTINELHUB_RETRY_AFTER_UNIT)
        # An uncompressed TIFF of the window is the largest legitimate answer; twice that is plenty.
        limit = 2 * math.prod(shape) * np.dtype(dtype).itemsize + 1024 * 1024

        def read(response, where):
            data = read_body(response, client, where, self.pool.stats, limit)
            return decode_tiff(data, shape, dtype)

        url = base + PROCESS_PATH
        auth = self._auth_for(base)
        for fresh_try in (False, True):
            token = self._token(auth, client, fresh=fresh_try)
            headers = {"Authorization": f"Bearer {token}", "Accept": "image/tiff", "Accept-Encoding": "identity"}
            try:
                return client.send("POST", url, json=body, headers=headers, read=read)
            except CredentialsRefused:
                if fresh_try:
                    raise
        raise AssertionError("unreachable")

    def _base_url(self, acq) -> str:
        urls = {service_url_for(p, self.service_url) for p in acq.products}
        if len(urls) > 1:
            raise SatPluginError(
                f"The products of {acq.stem} come from different services ({', '.join(sorted(urls))}); "
                "download them in separate runs, each with its SERVICE_URL."
            )
        return urls.pop()

    def _auth_for(self, base: str) -> TokenSource:
        with self._lock:
            if base not in self._auth:
                token_url = self.token_url or default_token_url(base)
                self._auth[base] = TokenSource(token_url, as_credentials(self._credentials))
            return self._auth[base]

    def _token(self, auth: TokenSource, client, *, fresh: bool) -> str:
        with self._lock:  # one token request for all threads
            return auth.access_token(client, renew=fresh)


def decode_tiff(data: bytes, shape: tuple, dtype: str) -> np.ndarray:
    """The pixels of a GeoTIFF answer; anything unreadable or of the wrong size is a BadAnswer."""
    try:
        with MemoryFile(data) as mem, mem.open() as ds:
            got = (ds.count, ds.height, ds.width)
            if got != shape:
                raise BadAnswer(f"got a {got[2]} x {got[1]} image with {got[0]} bands, expected {shape[2]} x {shape[1]} with {shape[0]}")
            if ds.dtypes[0] != dtype:
                raise BadAnswer(f"got {ds.dtypes[0]} pixels, expected {dtype}")
            return ds.read()
    except (RasterioError, CPLE_BaseError) as exc:
        raise BadAnswer(f"the answer is not a readable GeoTIFF ({type(exc).__name__})") from None
