"""One Sentinel-2 product as every backend describes it, and the names that identify it.

Backends disagree on naming (Earth Search says ``sentinel-2a`` and ``blue``, the SAFE
format says ``S2A`` and ``B02``, Sentinel Hub ids are SAFE names). Everything is
normalised here once, so ranking and output code can compare products from any backend.
Band names and processing baselines are read by ``core/sentinel2.py``, with the other
Sentinel-2 facts.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any

from .errors import SatPluginError
from .sentinel2 import format_baseline

COLLECTIONS = ("L2A", "L1C")

# A SAFE product name, e.g. S2B_MSIL2A_20230612T101559_N0509_R065_T32TQM_20230612T131420.
# The trailing processing time is optional because some catalogues truncate it.
_SAFE_NAME = re.compile(
    r"^(?P<platform>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<sensing>\d{8}T\d{6})_N(?P<baseline>\d{4})"
    r"_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})(?:_(?P<processed>\d{8}T\d{6}))?",
)
# Pieces found in other Sentinel-2 ids (granule ids, Earth Search ids), used only as a fallback.
_TILE = re.compile(r"(?:^|_)T?(\d{2}[C-X][A-Z]{2})(?:_|$)")
_BASELINE = re.compile(r"_N(\d{2})\.?(\d{2})(?:_|$|\.)")
_ORBIT = re.compile(r"_R(\d{3})(?:_|$)")
_PLATFORM = re.compile(r"^S2([A-D])")


@dataclass
class Product:
    """A Sentinel-2 product found by a search.

    ``footprint`` is the data footprint in EPSG:4326 (not the tile square: a product at a
    swath edge covers only part of its tile). ``download`` says where the data is and must
    stay JSON-serialisable because it is written to the output layer as text. It always
    has ``kind`` and ``assets`` (canonical band name -> href or path, e.g. ``"B02"``,
    ``"B8A"``, ``"SCL"``; may be empty):

    * ``kind="stac"``: ``item_id``, ``collection``, ``self`` (the item's own URL);
    * ``kind="sentinelhub"``: ``item_id``, ``collection``, ``service_url``, ``datetime``
      (what a Process API request needs; the Catalog lists no band files);
    * ``kind="local"``: ``path`` (the .SAFE folder, .zip or COG folder); zipped bands are
      ``/vsizip/`` paths that rasterio opens directly.

    The fields after ``download`` are computed by ranking, not by the backends.
    """

    product_id: str
    datetime: datetime
    platform: str  # "S2A", "S2B", ...
    mgrs_tile: str  # "29RKH", no leading T
    relative_orbit: int | None
    processing_baseline: str | None  # "04.00"
    collection: str  # "L2A" or "L1C"
    cloud_cover: float | None  # whole-scene %, as the provider reports it
    footprint: Any  # shapely geometry, EPSG:4326
    backend: str
    download: dict = field(default_factory=dict)
    processing_time: datetime | None = None

    aoi_coverage: float = 0.0
    aoi_cloud: float | None = None
    rank: int | None = None
    selected: bool = False
    aoi_footprint: Any = None  # footprint clipped to the AOI, EPSG:4326

    @property
    def acq_group(self) -> str:
        """Products that share a date and a relative orbit come from the same overpass.

        Neighbouring tiles of one overpass can be mosaicked without a time gap, so the
        output layer carries this key for users to group on.
        """
        orbit = f"R{self.relative_orbit:03d}" if self.relative_orbit is not None else "R???"
        return f"{self.datetime.date().isoformat()}_{orbit}"

    @property
    def cloud_for_ranking(self) -> float:
        """Cloud over the AOI when it was measured, else the scene's; unknown ranks last."""
        if self.aoi_cloud is not None:
            return float(self.aoi_cloud)
        if self.cloud_cover is not None:
            return float(self.cloud_cover)
        return 100.0


def normalise_platform(value: str | None) -> str | None:
    """``sentinel-2a``, ``Sentinel-2A``, ``S2A`` -> ``S2A``."""
    if not value:
        return None
    v = value.strip().upper().replace("SENTINEL-", "S")
    m = re.fullmatch(r"S2([A-D])", v)
    return f"S2{m.group(1)}" if m else value.strip()


def normalise_collection(value: str) -> str:
    """Accept ``L2A``, ``l1c``, ``sentinel-2-l2a``, ``S2MSI2A``... and return ``L2A``/``L1C``."""
    v = (value or "").upper()
    if "L1C" in v or "MSI1C" in v:
        return "L1C"
    if "L2A" in v or "MSI2A" in v:
        return "L2A"
    raise SatPluginError(f"Unknown Sentinel-2 collection {value!r}: use L2A or L1C.")


def parse_datetime(value: Any) -> datetime | None:
    """An ISO-8601 string, a ``20230612T101559`` stamp or a date/datetime -> aware UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if re.fullmatch(r"\d{8}T\d{6}", text):
            dt = datetime.strptime(text, "%Y%m%dT%H%M%S")
        else:
            text = text.replace("Z", "+00:00").replace("z", "+00:00")
            # Python 3.11 accepts any number of fractional digits only up to 6.
            text = re.sub(r"(\.\d{6})\d+", r"\1", text)
            dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        return dt.replace(tzinfo=timezone.utc)
    return dt.astimezone(timezone.utc)


def parse_product_name(name: str) -> dict:
    """What a Sentinel-2 id says about its product, as far as it can be read.

    SAFE names are read fully. For other ids (granule ids, Earth Search ids such as
    ``S2A_29RKH_20200219_0_L2A``) the recognisable pieces are picked out one by one.
    Keys that cannot be read are absent.
    """
    stem = name.strip()
    for suffix in (".zip", ".SAFE"):
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
    m = _SAFE_NAME.match(stem)
    if m:
        out = {
            "platform": m.group("platform"),
            "collection": m.group("level"),
            "datetime": parse_datetime(m.group("sensing")),
            "processing_baseline": format_baseline(m.group("baseline")),
            "relative_orbit": int(m.group("orbit")),
            "mgrs_tile": m.group("tile"),
        }
        if m.group("processed"):
            out["processing_time"] = parse_datetime(m.group("processed"))
        return out
    out: dict = {}
    if pm := _PLATFORM.match(stem):
        out["platform"] = f"S2{pm.group(1)}"
    if tm := _TILE.search(stem):
        out["mgrs_tile"] = tm.group(1)
    if bm := _BASELINE.search(stem):
        out["processing_baseline"] = f"{bm.group(1)}.{bm.group(2)}"
    if om := _ORBIT.search(stem):
        out["relative_orbit"] = int(om.group(1))
    if "L1C" in stem.upper():
        out["collection"] = "L1C"
    elif "L2A" in stem.upper():
        out["collection"] = "L2A"
    return out


# How a product is fetched: the kinds of its ``download`` references.
DOWNLOAD_KINDS = ("sentinelhub", "stac", "local")


def product_row(p: Product, *, ranking: bool = True) -> dict:
    """A product as a plain record with the search GeoPackage's field names.

    The one record of a product: the search's layer rows (the GeoPackage stores ``download``
    as JSON text and ``selected`` as 0/1), a download job spec's products (``ranking=False``:
    without the AOI shares, rank and selection) and the search result's JSON.
    :func:`product_from_row` reads any of them back.
    """
    row = {
        "product_id": p.product_id,
        "datetime": p.datetime.isoformat().replace("+00:00", "Z"),
        "platform": p.platform,
        "mgrs_tile": p.mgrs_tile,
        "rel_orbit": p.relative_orbit,
        "baseline": p.processing_baseline,
        "collection": p.collection,
        "cloud": p.cloud_cover,
    }
    if ranking:
        row.update({
            "aoi_cover": round(float(p.aoi_coverage), 4),
            "aoi_cloud": None if p.aoi_cloud is None else round(float(p.aoi_cloud), 4),
            "rank": p.rank,
            "selected": bool(p.selected),
        })
    row["backend"] = p.backend
    row["download"] = json.loads(json.dumps(p.download))  # a copy of plain JSON values
    if ranking:
        row["acq_group"] = p.acq_group
    return row


def product_from_row(row: dict) -> Product:
    """A Product from a GeoPackage row or a dict with either field names."""
    download = row.get("download") or {}
    if isinstance(download, (str, bytes)):
        try:
            download = json.loads(download)
        except ValueError:
            raise SatPluginError(f"Product {row.get('product_id')}: its download field is not JSON.") from None
    if not isinstance(download, dict) or download.get("kind") not in DOWNLOAD_KINDS:
        raise SatPluginError(
            f"Product {row.get('product_id')}: unknown download kind {download.get('kind') if isinstance(download, dict) else None!r}."
        )
    product_id = str(row.get("product_id") or "")
    if not product_id:
        raise SatPluginError("A product without product_id cannot be downloaded.")
    named = parse_product_name(product_id)
    when = parse_datetime(row.get("datetime")) or named.get("datetime")
    if when is None:
        raise SatPluginError(f"Product {product_id} has no acquisition date.")
    orbit = row.get("rel_orbit", row.get("relative_orbit"))
    collection = row.get("collection") or named.get("collection") or download.get("collection") or "L2A"
    footprint = row.get("footprint", row.get("geometry"))
    return Product(
        product_id=product_id,
        datetime=when,
        platform=normalise_platform(row.get("platform")) or named.get("platform") or "",
        mgrs_tile=str(row.get("mgrs_tile") or named.get("mgrs_tile") or ""),
        relative_orbit=int(orbit) if orbit not in (None, "") else named.get("relative_orbit"),
        processing_baseline=format_baseline(row.get("baseline", row.get("processing_baseline")))
        or named.get("processing_baseline"),
        collection=normalise_collection(collection),
        cloud_cover=_float(row.get("cloud", row.get("cloud_cover"))),
        footprint=footprint,
        backend=str(row.get("backend") or download["kind"]),
        download=download,
        selected=row_flag(row.get("selected")),
    )


def _float(value):
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def row_flag(value) -> bool:
    try:
        return bool(int(value))
    except (TypeError, ValueError):
        return False
