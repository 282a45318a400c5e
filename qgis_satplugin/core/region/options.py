"""``builddataset``'s job spec: :class:`BuildDatasetOptions`, plain values only, checked once."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..cluster.scheduler import SCHEDULER_HELP, parse_scheduler
from ..errors import SatPluginError
from ..export.options import FORMATS
from ..export.splits import normalise_ratios
from ..ground_truth.options import PolygonFile
from ..options import StepOptions, option


@dataclass(frozen=True)
class BuildDatasetOptions(StepOptions):
    """A region's dataset: the polygons, a season and where the products are (see :func:`.runner.run`)."""

    polygons: PolygonFile = option(help=(
        "The field parcels (or areas) with their class field: a vector file the engine reads, in any CRS. Every "
        "polygon is labelled on each tile grid it touches and belongs to the one tile that holds its centre."))
    output_folder: str = option(help=(
        "The dataset folder: new, empty, or an earlier (or interrupted) build of the same job, which is resumed: "
        "tiles already complete are skipped. tiles/<tile>/ holds each tile's export, work/<tile>/ its download and "
        "labels; index.gpkg, dataset.json, dataset.md and collection.json cover the whole region."))
    start: str = option(help="The first day of the season (YYYY-MM-DD).")
    end: str = option(help="The last day of the season (YYYY-MM-DD).")
    service_url: str = option(help="The products: a local folder of products (backend local), or the backend's URL.")
    backend: str = option("local", help="The search backend, as the search step names them.")
    collection: str = option("L2A", help="L2A or L1C.")
    max_cloud: Optional[float] = option(50.0, help="The most scene cloud (%) a product may have.")
    max_products: Optional[int] = option(None, help="The most products the search selects (all tiles together).")
    strategy: str = option("all", help="How the search ranks and selects dates (as the search step).")
    bands: tuple[str, ...] = option(("rgbn_10m",), help="The bands downloaded, as the download step takes them.")
    pixel_size: float = option(10.0, help="The pixel size of each tile's grid (m), in the tile's own UTM zone.")
    patch_size: int = option(64, help="The side of a patch, in pixels.")
    stride: Optional[int] = option(None, help="Pixels from one patch to the next (unset: the patch size).")
    format: str = option("npz", help=f"The export format: {', '.join(FORMATS)}.")
    patch_max_cloud: float = option(100.0, help="The most cloud or no data (%) a patch may have on a date.")
    min_dates: int = option(1, help="The fewest clear dates a patch needs.")
    max_dates: Optional[int] = option(None, help="The most dates per sample (unset: no maximum).")
    split_ratios: tuple[float, ...] = option((0.7, 0.15, 0.15), help="The shares of train, val and test.")
    split_block_m: float = option(5120.0, help=(
        "The side (m) of the region-wide split blocks: each polygon takes the split of the block holding its "
        "centre, and blocks go to splits toward the ratios for every class at once."))
    seed: int = option(0, help="The seed of the split assignment.")
    dask_scheduler: Optional[str] = option(None, help=SCHEDULER_HELP + " Each MGRS tile is one task.")

    def recorded(self) -> dict:
        """The options that decide the dataset's bytes: all but where it is written and where it runs."""
        return {k: v for k, v in self.to_dict().items() if k not in ("output_folder", "dask_scheduler")}

    def check(self) -> None:
        if not self.output_folder:
            raise SatPluginError("Choose an output folder for the dataset.")
        if not self.start or not self.end:
            raise SatPluginError("Give the season: a start and an end date (YYYY-MM-DD).")
        if not self.service_url:
            raise SatPluginError("Give where the products are: a local folder of products, or the backend's URL.")
        if self.format not in FORMATS:
            raise SatPluginError(f"Unknown format {self.format!r}; choose one of {', '.join(FORMATS)}.")
        if not (isinstance(self.split_block_m, (int, float)) and self.split_block_m > 0):
            raise SatPluginError(f"split_block_m must be a positive number of metres, got {self.split_block_m!r}.")
        normalise_ratios(self.split_ratios)
        parse_scheduler(self.dask_scheduler)
