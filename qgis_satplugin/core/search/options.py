"""The search's job spec: which catalogue, which area and season, which products to keep."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..area import Area
from ..atomic import check_writable_folder
from ..errors import SatPluginError
from ..http.limits import DEFAULT_REQUEST_DEADLINE_S, DEFAULT_RUN_DEADLINE_S
from ..options import StepOptions, engine_checks, option
from ..products import normalise_collection
from .period import normalise_period

# How dates are ranked and selected (see .ranking).
STRATEGIES = ("all", "even", "cloud")

# Backend names the options take (``run`` also takes a backend object instead).
BACKENDS = ("earth_search", "cdse", "sentinelhub", "local", "planetary_computer")
ALIASES = {
    "stac": "earth_search",
    "earth-search": "earth_search",
    "copernicus": "cdse",
    "sentinel_hub": "sentinelhub",
    "pc": "planetary_computer",
    "planetary-computer": "planetary_computer",
}


def backend_name(backend: str) -> str:
    """The canonical name of a backend name or alias (``"pc"`` -> ``"planetary_computer"``)."""
    name = str(backend).lower()
    return ALIASES.get(name, name)


@dataclass(frozen=True)
class SearchOptions(StepOptions):
    """Search, filter, deduplicate and rank Sentinel-2 products over an area and a season."""

    area: Area = option(help="the area of interest: its polygons and their CRS")
    start: str = option(help="the first day of the season (YYYY-MM-DD, or an ISO date and time)")
    end: str = option(
        help="the last day of the season (YYYY-MM-DD, included whole; or an ISO date and time); "
        "a season may cross New Year, e.g. 2023-11-01 to 2024-02-28"
    )
    backend: str = option(
        "earth_search",
        help="where to search: earth_search (a STAC API), cdse, sentinelhub (Catalog API), "
        "planetary_computer (STAC API, L2A) or local (a folder of products)",
    )
    collection: str = option("L2A", help="the processing level: L2A or L1C")
    max_cloud: float | None = option(
        None,
        help="the most cloud a product may have, in percent, inclusive: the scene's, and with aoi_cloud "
        "also the cloud over the AOI (none: no limit)",
    )
    min_aoi_coverage: float | None = option(
        None, help="the least share of the AOI a date's tiles must cover together, in percent, inclusive"
    )
    max_products: int | None = option(
        None,
        help="how many dates (acquisitions, not tiles) to select; 0 or none selects every date, "
        "the even strategy needs it",
    )
    strategy: str = option("all", help=f"how dates are ranked and selected: {', '.join(STRATEGIES)}")
    service_url: str | None = option(
        None, help="the backend's address instead of its default (the STAC API or Sentinel Hub base URL); for local, the folder"
    )
    token_url: str | None = option(None, help="the OAuth token URL of a Sentinel Hub backend instead of its default")
    aoi_cloud: bool = option(False, help="measure each product's cloud over the AOI from its SCL layer")
    # None: no bound (the Processing parameters always set one).
    request_deadline: float | None = option(
        DEFAULT_REQUEST_DEADLINE_S, help="bounds one request, retries and waits included (seconds)"
    )
    run_deadline: float | None = option(DEFAULT_RUN_DEADLINE_S, help="bounds all the network work of the search (seconds)")
    footprints: str | None = option(
        None, help="a GeoPackage (.gpkg) to write the products to, layer 'products', replacing it (none: not written)"
    )

    def check(self) -> None:
        # In the order the search always checked them, so the first problem is the one reported.
        if self.area is None:
            raise SatPluginError("The area of interest is missing.")
        if not isinstance(self.area, Area):
            raise SatPluginError(f"The area of interest is an Area (WKT and CRS), not {type(self.area).__name__}.")
        if engine_checks():
            self.area.lonlat()
        for label, value in (("The start date", self.start), ("The end date", self.end)):
            if value is not None and not isinstance(value, str):
                raise SatPluginError(f"{label} is ISO text (YYYY-MM-DD), not {type(value).__name__}.")
        try:
            normalise_period(self.start, self.end)
        except ValueError:
            raise SatPluginError(
                f"The search period {self.start!r} to {self.end!r} is not ISO dates (YYYY-MM-DD)."
            ) from None
        normalise_collection(self.collection)
        if self.footprints is not None:
            check_footprints_path(self.footprints)  # before the search: a long search must not be lost to a read-only folder
        if self.strategy_name not in STRATEGIES:
            raise SatPluginError(f"Unknown strategy {self.strategy!r}: use one of {', '.join(STRATEGIES)}.")
        for label, value in (("MAX_CLOUD", self.max_cloud), ("MIN_AOI_COVERAGE", self.min_aoi_coverage)):
            if value is not None and not 0 <= value <= 100:
                raise SatPluginError(f"{label} is a percentage between 0 and 100, got {value}.")
        if self.max_products is not None and self.max_products < 0:
            raise SatPluginError(f"MAX_PRODUCTS cannot be negative, got {self.max_products}.")
        if self.strategy_name == "even" and not self.max_products:
            raise SatPluginError("The even strategy needs MAX_PRODUCTS: how many dates to spread over the period.")
        if backend_name(self.backend) not in BACKENDS:
            raise SatPluginError(f"Unknown search backend {self.backend!r}: use one of {', '.join(BACKENDS)}.")
        for label, value in (("REQUEST_DEADLINE", self.request_deadline), ("RUN_DEADLINE", self.run_deadline)):
            if value is not None and not value > 0:
                raise SatPluginError(f"{label} is a positive number of seconds, got {value}.")

    @property
    def strategy_name(self) -> str:
        return (self.strategy or "all").lower()

    def client_options(self) -> dict:
        """What the HTTP clients of the search take from these options."""
        return {"request_deadline": self.request_deadline, "run_deadline": self.run_deadline}


def check_footprints_path(path) -> Path:
    """The footprint GeoPackage's path, once it is one that can be written (else a SatPluginError)."""
    target = Path(path)
    if target.suffix.lower() != ".gpkg":
        raise SatPluginError(f"The footprint output must be a .gpkg file, got {target.name}.")
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise SatPluginError(f"The output folder {folder} does not exist.")
    check_writable_folder(target)
    return target
