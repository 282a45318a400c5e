"""What a search returns: the ranked products, and the same as plain JSON records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import shapely

from ..options import plain
from ..products import Product, product_row
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
    """A product as JSON values: its product row, with its footprints as lon/lat WKT."""
    return plain({
        **product_row(p),
        "processing_time": _iso(p.processing_time),
        "footprint": _wkt(p.footprint),
        "aoi_footprint": _wkt(p.aoi_footprint),
    })


def _iso(value: datetime | None) -> str | None:
    # The same text as the product layer's datetime field.
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _wkt(geometry) -> str | None:
    return None if geometry is None else shapely.to_wkt(geometry, rounding_precision=-1, trim=True)
