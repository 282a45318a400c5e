"""Measure products against the AOI, drop duplicates, and choose which to use.

Two strategies:

``all``
    Every product, best first: least cloud (over the AOI when measured, else the
    scene's), then most AOI coverage, then earliest date, then product id. The first
    ``max_products`` are selected (all when ``max_products`` is 0 or None).

``even``
    ``max_products`` dates spread evenly over the period, for a time series with no
    long gaps. The period is cut into N equal bins; each bin's centre is a target
    date. Targets are visited in date order, and each takes the not-yet-chosen product
    with the lowest cost::

        cost = |days from target| / bin width in days * W_TIME
             + cloud % / 100                         * W_CLOUD
             + (100 - AOI coverage %) / 100           * W_COVER

    So one bin width off the target costs as much as a fully cloudy scene, and missing
    the whole AOI costs twice that: a clear, complete scene a few days off target beats
    a cloudy or partial one on the day. Ties go to the earlier product, then the lower
    product id, so the choice is reproducible.
"""

from __future__ import annotations

import shapely

from ..errors import SatPluginError
from ..geometry import polygonal_part
from .aoi import EqualAreaFrame
from .period import days_between
from .products import Product, baseline_key

W_TIME = 1.0
W_CLOUD = 1.0
W_COVER = 2.0
STRATEGIES = ("all", "even")
# Costs closer than this are equal: float noise must not decide between products.
_COST_TIE = 1e-9


def coverage_percent(footprint, aoi, frame: EqualAreaFrame | None = None) -> float:
    """Share of the AOI's area inside the footprint, in %, measured in m²."""
    frame = frame or EqualAreaFrame(aoi)
    aoi_area = frame.area_m2(aoi)
    if aoi_area <= 0 or footprint is None or footprint.is_empty:
        return 0.0
    inside = frame.project(aoi).intersection(frame.project(footprint)).area
    return max(0.0, min(100.0, 100.0 * inside / aoi_area))


def annotate_coverage(products: list[Product], aoi) -> None:
    """Set ``aoi_coverage`` and ``aoi_footprint`` (footprint clipped to the AOI) in place."""
    frame = EqualAreaFrame(aoi)
    aoi_plane = frame.project(aoi)
    aoi_area = aoi_plane.area
    for p in products:
        if p.footprint is None or p.footprint.is_empty or aoi_area <= 0:
            p.aoi_coverage, p.aoi_footprint = 0.0, None
            continue
        inside = aoi_plane.intersection(frame.project(p.footprint)).area
        p.aoi_coverage = max(0.0, min(100.0, 100.0 * inside / aoi_area))
        p.aoi_footprint = polygonal_part(shapely.intersection(p.footprint, aoi))


def filter_products(products, *, max_cloud=None, min_aoi_coverage=None) -> list[Product]:
    """Keep products with cloud <= ``max_cloud`` and coverage >= ``min_aoi_coverage`` (both in %).

    Cloud is the AOI cloud when it was measured, else the scene cloud; a product with
    no cloud figure at all passes (nothing says it is cloudy). A product that does not
    touch the AOI never passes, even with ``min_aoi_coverage`` 0.
    """
    kept = []
    for p in products:
        if p.aoi_coverage <= 0:
            continue
        if min_aoi_coverage is not None and p.aoi_coverage + 1e-9 < min_aoi_coverage:
            continue
        if max_cloud is not None:
            cloud = p.aoi_cloud if p.aoi_cloud is not None else p.cloud_cover
            if cloud is not None and cloud > max_cloud:
                continue
        kept.append(p)
    return kept


def datatake_key(p: Product) -> tuple:
    """Products with equal keys are one acquisition processed more than once.

    A satellite passes over a relative orbit at most once a day, so platform, tile,
    relative orbit and UTC date identify the datatake; without an orbit the sensing time
    to the minute stands in for it.
    """
    if p.relative_orbit is not None:
        return (p.platform, p.mgrs_tile, p.relative_orbit, p.datetime.date())
    return (p.platform, p.mgrs_tile, None, p.datetime.replace(second=0, microsecond=0))


def collapse_duplicates(products: list[Product]) -> list[Product]:
    """One product per datatake: the newest processing baseline, then the newest processing time."""
    best: dict = {}
    order = []
    for p in products:
        key = datatake_key(p)
        if key not in best:
            order.append(key)
            best[key] = p
        elif _freshness(p) > _freshness(best[key]):
            best[key] = p
    return [best[k] for k in order]


def _freshness(p: Product) -> tuple:
    processed = p.processing_time.timestamp() if p.processing_time else float("-inf")
    return (baseline_key(p.processing_baseline), processed, p.product_id)


def quality_key(p: Product) -> tuple:
    """Sort key of the ``all`` strategy: clear, complete, early, then by id."""
    return (p.cloud_for_ranking, -p.aoi_coverage, p.datetime, p.product_id)


def rank_all(products: list[Product], max_products: int | None = None) -> list[Product]:
    ordered = sorted(products, key=quality_key)
    limit = len(ordered) if not max_products else max_products
    for i, p in enumerate(ordered):
        p.rank = i + 1
        p.selected = i < limit
    return ordered


def even_targets(start, end, n: int) -> tuple[list, float]:
    """N target datetimes at the centres of N equal bins of [start, end], and the bin width in days."""
    if n < 1:
        raise SatPluginError("The even strategy needs a number of products (MAX_PRODUCTS) of at least 1.")
    width = (end - start) / n
    return [start + width * (i + 0.5) for i in range(n)], days_between(start, start + width)


def even_cost(p: Product, target, bin_days: float) -> float:
    days_off = abs(days_between(target, p.datetime))
    time_term = days_off / bin_days if bin_days > 0 else 0.0
    return time_term * W_TIME + p.cloud_for_ranking / 100.0 * W_CLOUD + (100.0 - p.aoi_coverage) / 100.0 * W_COVER


def select_even(products: list[Product], start, end, n: int) -> list[Product]:
    """Choose up to ``n`` products spread over [start, end]; see the module docstring.

    Returns every product: the chosen ones first, ranked in target order, then the rest
    in ``all`` order with ``selected`` False.
    """
    targets, bin_days = even_targets(start, end, n)
    remaining = list(products)
    chosen = []
    for target in targets:
        if not remaining:
            break
        best = min(
            remaining,
            key=lambda p: (round(even_cost(p, target, bin_days) / _COST_TIE), p.datetime, p.product_id),
        )
        chosen.append(best)
        remaining.remove(best)
    rest = sorted(remaining, key=quality_key)
    for i, p in enumerate(chosen + rest):
        p.rank = i + 1
        p.selected = i < len(chosen)
    return chosen + rest


def rank_products(products, strategy: str, max_products: int | None, start, end) -> list[Product]:
    strategy = (strategy or "all").lower()
    if strategy == "all":
        return rank_all(products, max_products)
    if strategy == "even":
        if not max_products:
            raise SatPluginError("The even strategy needs MAX_PRODUCTS: how many dates to spread over the period.")
        return select_even(products, start, end, int(max_products))
    raise SatPluginError(f"Unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}.")
