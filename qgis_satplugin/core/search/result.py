"""What a search returns: the ranked products, and the same as plain JSON records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import shapely

from ..options import plain
from ..products import Product
from .ranking import acq_groups


@dataclass
class SearchResult:
    """Every product that passed the filters, sorted by rank; ``selected`` marks the strategy's choice."""

    products: list[Product] = field(default_factory=list)

    @property
    def selected(self) -> list[Product]:
        return [p for p in self.products if p.selected]

    @property
    def selected_dates(self) -> int:
        """How many acquisitions were selected: the tiles of one overpass count once."""
        return len(acq_groups(self.selected))

    def to_dict(self) -> dict:
        return {
            "product_count": len(self.products),
            "selected_count": len(self.selected),
            "selected_dates": self.selected_dates,
            "products": [product_record(p) for p in self.products],
        }


def product_record(p: Product) -> dict:
    """A product as JSON values: datetimes as ISO 8601 UTC text, geometries as lon/lat WKT."""
    return plain(
        {
            "product_id": p.product_id,
            "datetime": _iso(p.datetime),
            "platform": p.platform,
            "mgrs_tile": p.mgrs_tile,
            "relative_orbit": p.relative_orbit,
            "processing_baseline": p.processing_baseline,
            "collection": p.collection,
            "cloud_cover": p.cloud_cover,
            "footprint": _wkt(p.footprint),
            "backend": p.backend,
            "download": p.download,
            "processing_time": _iso(p.processing_time),
            "aoi_coverage": float(p.aoi_coverage),
            "aoi_cloud": None if p.aoi_cloud is None else float(p.aoi_cloud),
            "rank": p.rank,
            "selected": bool(p.selected),
            "aoi_footprint": _wkt(p.aoi_footprint),
            "acq_group": p.acq_group,
        }
    )


def _iso(value: datetime | None) -> str | None:
    # The same text as the product layer's datetime field.
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _wkt(geometry) -> str | None:
    return None if geometry is None else shapely.to_wkt(geometry, rounding_precision=-1, trim=True)
