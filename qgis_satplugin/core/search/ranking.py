"""Measure products against the AOI, drop duplicates, and choose which acquisitions to use.

The unit of ranking and choosing is the **acquisition**: the products that share an
``acq_group`` (a date and a relative orbit: the tiles of one overpass, which the
download mosaics into one image per date). A date's tiles are ranked, selected and
counted together; ``max_products`` counts acquisitions (dates), not tiles. An
acquisition's AOI coverage is that of its tiles' union, and its cloud the mean of its
tiles' cloud (over the AOI when measured, else the scene's) weighted by each tile's AOI
coverage.

Three strategies:

``all``
    Every acquisition, best first: the largest share of the AOI that is clear,
    ``coverage % x (1 - cloud % / 100)``, then least cloud, then earliest date, then
    product id. So a tile covering a third of the AOI under 10 % cloud ranks above one
    covering 3 % of it under 1 %. The first ``max_products`` are selected (all when
    ``max_products`` is 0 or None).

``cloud``
    The same, ordered by least cloud first, then most AOI coverage, then date: for users
    who want the clearest scenes whatever they cover.

``even``
    ``max_products`` dates spread evenly over the period, for a time series with no
    long gaps. The period is cut into N equal bins; each bin's centre is a target
    date. Targets are visited in date order, and each takes the not-yet-chosen
    acquisition with the lowest cost::

        cost = |days from target| / bin width in days * W_TIME
             + cloud % / 100                         * W_CLOUD
             + (100 - AOI coverage %) / 100           * W_COVER

    So one bin width off the target costs as much as a fully cloudy scene, and missing
    the whole AOI costs twice that: a clear, complete scene a few days off target beats
    a cloudy or partial one on the day. Ties go to the earlier acquisition, then the
    lower product id, so the choice is reproducible. The acquisitions not chosen follow
    in ``all`` order.

Every product of an acquisition gets the acquisition's rank (tiles in tile order).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..area import EqualAreaFrame
from ..errors import SatPluginError
from ..products import Product
from ..sentinel2 import baseline_key
from .options import STRATEGIES
from .period import days_between

W_TIME = 1.0
W_CLOUD = 1.0
W_COVER = 2.0
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
    import shapely  # here, not above: the options import this module without the engine's packages

    from ..geometry import polygonal_part

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
    touch the AOI never passes, even with ``min_aoi_coverage`` 0. This judges each tile
    alone; the search applies ``min_aoi_coverage`` to whole dates (:func:`keep_covering_dates`).
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


def keep_covering_dates(products: list[Product], min_aoi_coverage: float | None, aoi=None) -> list[Product]:
    """Keep the products of acquisitions whose tiles together cover at least ``min_aoi_coverage`` % of the AOI.

    An AOI across a tile edge is never covered by one tile, but it is by the date's image.
    """
    if min_aoi_coverage is None:
        return list(products)
    keep = {g.key for g in acq_groups(products, aoi) if g.aoi_coverage + 1e-9 >= min_aoi_coverage}
    return [p for p in products if p.acq_group in keep]


@dataclass
class AcqGroup:
    """The products of one acquisition (``acq_group``) and what ranking needs to know of them together."""

    key: str
    products: list[Product]
    aoi_coverage: float  # % of the AOI inside the union of the tiles
    cloud_for_ranking: float  # coverage-weighted cloud %, as Product.cloud_for_ranking per tile

    @property
    def datetime(self):
        return min(p.datetime for p in self.products)

    @property
    def product_id(self) -> str:
        return min(p.product_id for p in self.products)

    @property
    def clear_share(self) -> float:
        """% of the AOI that is inside the tiles and clear."""
        return self.aoi_coverage * (1.0 - self.cloud_for_ranking / 100.0)


def acq_groups(products: list[Product], aoi=None) -> list[AcqGroup]:
    """Products grouped by ``acq_group``, in order of first appearance.

    With ``aoi`` the coverage of a multi-tile acquisition is measured on the union of
    its footprints; without it, the tiles' coverages are added (capped at 100 %), which
    assumes they do not overlap over the AOI.
    """
    import shapely  # here, not above: the options import this module without the engine's packages

    members: dict[str, list[Product]] = {}
    for p in products:
        members.setdefault(p.acq_group, []).append(p)
    groups = []
    frame = EqualAreaFrame(aoi) if aoi is not None else None
    for key, group in members.items():
        if len(group) == 1:
            coverage = group[0].aoi_coverage
        elif aoi is not None:
            union = shapely.union_all([p.footprint for p in group if p.footprint is not None])
            coverage = coverage_percent(union, aoi, frame)
        else:
            coverage = min(100.0, sum(p.aoi_coverage for p in group))
        weights = [p.aoi_coverage for p in group]
        clouds = [p.cloud_for_ranking for p in group]
        total = sum(weights)
        cloud = sum(w * c for w, c in zip(weights, clouds)) / total if total > 0 else sum(clouds) / len(clouds)
        groups.append(AcqGroup(key, group, coverage, cloud))
    return groups


def clear_share_key(g: AcqGroup) -> tuple:
    """Sort key of the ``all`` strategy: most clear AOI, least cloud, earliest, lowest id."""
    return (round(-g.clear_share / _COST_TIE), g.cloud_for_ranking, g.datetime, g.product_id)


def least_cloud_key(g: AcqGroup) -> tuple:
    """Sort key of the ``cloud`` strategy: least cloud, most AOI coverage, earliest, lowest id."""
    return (g.cloud_for_ranking, -g.aoi_coverage, g.datetime, g.product_id)


ORDERS = {"all": clear_share_key, "cloud": least_cloud_key}


def _assign(ordered: list[AcqGroup], selected: int) -> list[Product]:
    """Rank the products acquisition by acquisition (tiles in tile order); the first ``selected`` are chosen."""
    out = []
    for i, g in enumerate(ordered):
        for p in sorted(g.products, key=lambda q: (q.mgrs_tile, q.product_id)):
            p.rank = i + 1
            p.selected = i < selected
            out.append(p)
    return out


def rank_all(products: list[Product], max_products: int | None = None, *, aoi=None, order: str = "all") -> list[Product]:
    """Every acquisition in ``order`` (``all``: clear AOI share; ``cloud``: least cloud); the first ``max_products`` selected."""
    ordered = sorted(acq_groups(products, aoi), key=ORDERS[order])
    return _assign(ordered, len(ordered) if not max_products else max_products)


def even_targets(start, end, n: int) -> tuple[list, float]:
    """N target datetimes at the centres of N equal bins of [start, end], and the bin width in days."""
    if n < 1:
        raise SatPluginError("The even strategy needs a number of products (MAX_PRODUCTS) of at least 1.")
    width = (end - start) / n
    return [start + width * (i + 0.5) for i in range(n)], days_between(start, start + width)


def even_cost(candidate, target, bin_days: float) -> float:
    """The cost of an acquisition (or a single product) for ``target``; see the module docstring."""
    days_off = abs(days_between(target, candidate.datetime))
    time_term = days_off / bin_days if bin_days > 0 else 0.0
    return (
        time_term * W_TIME
        + candidate.cloud_for_ranking / 100.0 * W_CLOUD
        + (100.0 - candidate.aoi_coverage) / 100.0 * W_COVER
    )


def select_even(products: list[Product], start, end, n: int, *, aoi=None) -> list[Product]:
    """Choose up to ``n`` acquisitions spread over [start, end]; see the module docstring.

    Returns every product: the chosen acquisitions first, ranked in target order, then
    the rest in ``all`` order with ``selected`` False.
    """
    targets, bin_days = even_targets(start, end, n)
    remaining = acq_groups(products, aoi)
    chosen = []
    for target in targets:
        if not remaining:
            break
        best = min(
            remaining,
            key=lambda g: (round(even_cost(g, target, bin_days) / _COST_TIE), g.datetime, g.product_id),
        )
        chosen.append(best)
        remaining.remove(best)
    return _assign(chosen + sorted(remaining, key=clear_share_key), len(chosen))


def rank_products(products, strategy: str, max_products: int | None, start, end, *, aoi=None) -> list[Product]:
    strategy = (strategy or "all").lower()
    if strategy in ORDERS:
        return rank_all(products, max_products, aoi=aoi, order=strategy)
    if strategy == "even":
        if not max_products:
            raise SatPluginError("The even strategy needs MAX_PRODUCTS: how many dates to spread over the period.")
        return select_even(products, start, end, int(max_products), aoi=aoi)
    raise SatPluginError(f"Unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}.")
