"""Products grouped into acquisitions: one output file (and one mask) per date.

Neighbouring tiles of one overpass share a date, a platform and a relative orbit; an
AOI across a tile edge needs both, mosaicked, in one image. Grouping happens here, and
so does naming, so that a rerun finds the same names for the same inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from ..feedback import Feedback
from ..products import Product, parse_product_name
from ..sentinel2 import baseline_key


@dataclass
class Acquisition:
    """One date's products (sorted by tile, then newest baseline first) and its file stem."""

    products: list[Product]
    kind: str
    collection: str
    info: dict = field(default_factory=dict)  # filled while planning (e.g. provider flags)

    @property
    def datetime(self) -> datetime:
        return min(p.datetime for p in self.products)

    @property
    def platform(self) -> str:
        return self.products[0].platform or "S2"

    @property
    def tiles(self) -> list[str]:
        return sorted({p.mgrs_tile for p in self.products if p.mgrs_tile})

    @property
    def sensing_stamp(self) -> str:
        """The datatake's sensing start as in the SAFE name (``20230612T101559``), else the datetime.

        Catalogues disagree on an item's datetime (Earth Search gives the tile's, the
        SAFE name the datatake's start), so names use the SAFE one when there is one.
        """
        for p in self.products:
            when = parse_product_name(p.product_id).get("datetime")
            if when is not None:
                return f"{when:%Y%m%dT%H%M%S}"
        return f"{self.datetime:%Y%m%dT%H%M%S}"

    @property
    def stem(self) -> str:
        """``20230612T101559_S2B_T32TQM``; several tiles join with ``-``: ``..._T32TPM-T32TQM``."""
        tiles = "-".join(f"T{t}" for t in self.tiles) or "Tunknown"
        return f"{self.sensing_stamp}_{self.platform}_{tiles}"

    @property
    def product_ids(self) -> list[str]:
        return [p.product_id for p in self.products]

    @property
    def baselines(self) -> list[str]:
        return sorted({p.processing_baseline for p in self.products if p.processing_baseline})

    @property
    def iso_datetime(self) -> str:
        return self.datetime.isoformat().replace("+00:00", "Z")


def group_acquisitions(products: list[Product], feedback: Feedback | None = None) -> list[Acquisition]:
    """Group by backend kind, collection, platform, UTC day and relative orbit; sort by time.

    Two products of the same tile in one group are reprocessings of one datatake; the
    newest baseline is kept, as the search does (and ``feedback`` is told).
    """
    feedback = Feedback.of(feedback)
    groups: dict[tuple, list[Product]] = {}
    for p in products:
        orbit = p.relative_orbit if p.relative_orbit is not None else p.product_id
        key = (p.download.get("kind"), p.collection, p.platform, p.datetime.date(), orbit)
        groups.setdefault(key, []).append(p)
    out = []
    for (kind, collection, *_), members in groups.items():
        by_tile: dict[str, Product] = {}
        for p in sorted(members, key=lambda q: (q.mgrs_tile, baseline_key(q.processing_baseline)), reverse=True):
            tile = p.mgrs_tile or p.product_id
            if tile in by_tile:
                feedback.log(f"{p.product_id}: another processing of the same tile and date is newer; skipped.")
                continue
            by_tile[tile] = p
        kept = [by_tile[t] for t in sorted(by_tile)]
        out.append(Acquisition(kept, kind, collection))
    out.sort(key=lambda a: (a.datetime, a.stem))
    seen: dict[str, int] = {}
    for acq in out:  # identical stems (same second, platform, tiles) must not overwrite each other
        n = seen.get(acq.stem, 0)
        seen[acq.stem] = n + 1
        if n:
            acq.info["suffix"] = f"_{n + 1}"
    return out


def file_stem(acq: Acquisition) -> str:
    return acq.stem + acq.info.get("suffix", "")
