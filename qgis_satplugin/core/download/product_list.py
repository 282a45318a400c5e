"""The products to download: from the search step's GeoPackage, or given directly.

The search writes one feature per product with its download references as JSON text
(see ``search/footprints_gpkg.py``); this turns such rows, plain dicts or
:class:`Product` objects back into products, so the QGIS algorithm, a model step and a
notebook all hand the same thing to the download: plain records (:func:`product_records`)
in its :class:`~.options.DownloadOptions`.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import SatPluginError
from ..products import DOWNLOAD_KINDS, Product, product_from_row, product_row, row_flag

LAYER = "products"


def read_products_gpkg(path, selected_only: bool | None = None, *, product_ids=None, layer: str = LAYER) -> list[Product]:
    """Products from the search GeoPackage.

    ``selected_only``: True keeps features with ``selected = 1``; False keeps all; None
    (the default) keeps the selected ones when any feature is selected, else all.
    ``product_ids`` (the QGIS layer's own selection, passed by the caller) wins over both.
    """
    import shapely  # here, not above: the options import this module without the engine's packages

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
    elif selected_only is True or (selected_only is None and any(row_flag(r.get("selected")) for r in rows)):
        rows = [r for r in rows if row_flag(r.get("selected"))]
    return [product_from_row(r) for r in rows]


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
    """``product`` as the plain record a job spec holds: its product row without the ranking.

    The download does not read the ranking or the footprint (the area to fetch is the
    options' own); :func:`..products.product_from_row` reads the record back.
    """
    return product_row(product, ranking=False)


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
