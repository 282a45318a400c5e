"""The products to download: from the search step's GeoPackage, or given directly.

The search writes one feature per product with its download references as JSON text
(see ``search/footprints_gpkg.py``); this turns such rows, plain dicts or
:class:`Product` objects back into products, so the QGIS algorithm, a model step and a
notebook all hand the same thing to the download: plain records (:func:`product_records`)
in its :class:`~.options.DownloadOptions`.
"""

from __future__ import annotations

import json
from pathlib import Path

import shapely

from ..errors import SatPluginError
from ..products import (
    Product,
    normalise_collection,
    normalise_platform,
    parse_datetime,
    parse_product_name,
)
from ..sentinel2 import format_baseline

LAYER = "products"
DOWNLOAD_KINDS = ("sentinelhub", "stac", "local")


def read_products_gpkg(path, selected_only: bool | None = None, *, product_ids=None, layer: str = LAYER) -> list[Product]:
    """Products from the search GeoPackage.

    ``selected_only``: True keeps features with ``selected = 1``; False keeps all; None
    (the default) keeps the selected ones when any feature is selected, else all.
    ``product_ids`` (the QGIS layer's own selection, passed by the caller) wins over both.
    """
    from pyogrio.raw import read as ogr_read

    path = Path(path)
    if not path.is_file():
        raise SatPluginError(f"The products GeoPackage {path} does not exist; run 'Search products' first.")
    try:
        meta, _fids, geometry, columns = ogr_read(str(path), layer=layer)
    except Exception as exc:  # pyogrio raises DataLayerError, DataSourceError...
        raise SatPluginError(f"Cannot read the layer '{layer}' of {path.name}: {exc}") from None
    names = list(meta["fields"])
    rows = [dict(zip(names, values)) for values in zip(*columns)] if names else []
    for row, wkb in zip(rows, geometry if geometry is not None else [None] * len(rows)):
        row["geometry"] = shapely.from_wkb(wkb) if wkb is not None else None
    if "product_id" not in names or "download" not in names:
        raise SatPluginError(f"{path.name} is not a product list from 'Search products' (no product_id/download fields).")

    if product_ids is not None:
        wanted = {str(p) for p in product_ids}
        rows = [r for r in rows if r.get("product_id") in wanted]
    elif selected_only is True or (selected_only is None and any(_flag(r.get("selected")) for r in rows)):
        rows = [r for r in rows if _flag(r.get("selected"))]
    return [product_from_row(r) for r in rows]


def _flag(value) -> bool:
    try:
        return bool(int(value))
    except (TypeError, ValueError):
        return False


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
        selected=_flag(row.get("selected")),
    )


def _float(value):
    try:
        return None if value is None or value == "" else float(value)
    except (TypeError, ValueError):
        return None


def check_references(products, service_url: str | None = None) -> None:
    """Refuse, before any request, the references of a product list that the user did not choose.

    A product list is a data file: a shared one could name a host to send the token to,
    or files outside the products. The rules are :func:`.sentinelhub.service_url_for`
    and :func:`.file_sources.checked_file`; the download applies them again as it goes.
    """
    from .file_sources import checked_file
    from .sentinelhub import service_url_for

    for p in products:
        kind = (p.download or {}).get("kind")
        if kind == "sentinelhub":
            service_url_for(p, service_url)
        elif kind in ("stac", "local"):
            for band in (p.download or {}).get("assets") or {}:
                checked_file(p, band)


def check_band_files(products, bands) -> None:
    """Refuse, before anything is fetched, a STAC or local product without a readable file for a band asked for.

    Its message says why when the catalogue listed the file only where the plugin does
    not read (Earth Search's L1C files in a requester-pays ``s3://`` bucket).
    """
    from .file_sources import checked_file

    for p in products:
        if (p.download or {}).get("kind") in ("stac", "local"):
            for band in bands:
                checked_file(p, band)


def product_record(product: Product) -> dict:
    """``product`` as the plain record a job spec holds; :func:`product_from_row` reads it back.

    The fields are a search GeoPackage row's, less the ranking and the footprint, which the
    download does not read (the area to fetch is the options' own).
    """
    return {
        "product_id": product.product_id,
        "datetime": product.datetime.isoformat().replace("+00:00", "Z"),
        "platform": product.platform,
        "mgrs_tile": product.mgrs_tile,
        "rel_orbit": product.relative_orbit,
        "baseline": product.processing_baseline,
        "collection": product.collection,
        "cloud": product.cloud_cover,
        "backend": product.backend,
        "download": json.loads(json.dumps(product.download or {})),  # a copy of plain JSON values
    }


def product_records(products) -> tuple[dict, ...]:
    """Products, search GeoPackage rows or records (a mix is fine) as plain records, checked."""
    return tuple(product_record(p) for p in as_products(products))


def as_products(products) -> list[Product]:
    """Accept Products, dicts, or a mix; refuse an empty list with advice."""
    out = [p if isinstance(p, Product) else product_from_row(dict(p)) for p in (products or [])]
    if not out:
        raise SatPluginError("No products to download: select some in the search result, or relax the search.")
    for p in out:
        kind = (p.download or {}).get("kind")
        if kind not in DOWNLOAD_KINDS:
            raise SatPluginError(f"Product {p.product_id}: unknown download kind {kind!r}.")
    return out
