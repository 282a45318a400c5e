"""What an export knows before it writes: the checked series, band layout, labels and patch grid.

Built once in the engine process from the job spec, and again, from the same job spec, in
each Dask worker that writes chunks of it (:mod:`chunk_task`), so both see the same
dataset facts (:class:`~.sample.DatasetMeta`) without any of them crossing the network.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import SatPluginError
from ..feedback import Feedback
from ..image_series.dates import iso_z, season_mask
from ..image_series.reader import ImageSeries, open_image_series
from .band_layout import BandLayout, band_layout
from .format_deepsatdata import DeepSatDataWriter
from .format_geotiff import GeoTiffWriter
from .format_npz import NpzWriter
from .format_zarr import ZarrWriter
from .label_rasters import LabelSet
from .options import ExportOptions
from .sample import DatasetMeta
from .stac_catalog import catalog_info
from .windows import PatchGrid, patch_grid

# One writer per name in options.FORMATS.
WRITERS = {"npz": NpzWriter, "zarr": ZarrWriter, "geotiff": GeoTiffWriter, "deepsatdata": DeepSatDataWriter}


@dataclass
class ExportContext:
    options: ExportOptions
    series: ImageSeries  # the season's dates only
    layout: BandLayout
    label_set: LabelSet | None  # not opened yet
    patches: PatchGrid

    @classmethod
    def open(cls, options: ExportOptions, feedback: Feedback) -> "ExportContext":
        series = open_image_series(options.images, options.bands, feedback)
        season_start, season_end = options.season_start, options.season_end
        in_season = season_mask(series.dates, season_start, season_end)
        if not in_season.any():
            raise SatPluginError(
                f"None of the {len(series.dates)} dates ({iso_z(series.dates[0])[:10]} .. {iso_z(series.dates[-1])[:10]}) "
                f"falls in the season {season_start or '01-01'} .. {season_end or '12-31'}."
            )
        if not in_season.all():
            feedback.log(f"The season keeps {int(in_season.sum())} of {in_season.size} dates.")
            series = series.subset(in_season)
        grid = series.grid
        layout = band_layout(series.bands, options.band_resolution, grid.pixel_width, options.patch_size,
                             options.patch_stride)
        label_set = LabelSet(options.labels, grid, options.label_scale) if options.labels else None
        pg = patch_grid(grid.height, grid.width, options.patch_size, options.patch_stride, layout.align)
        _log_uncovered_edge(pg, grid, layout, feedback)
        return cls(options, series, layout, label_set, pg)

    @property
    def writer_class(self):
        return WRITERS[self.options.format]

    @property
    def class_table(self):
        ls = self.label_set
        return ls.rasters["class"].class_table if ls and "class" in ls else None

    @property
    def class_nodata(self):
        ls = self.label_set
        return ls.rasters["class"].nodata if ls and "class" in ls else None

    def crs_name(self) -> str:
        crs = self.series.grid.pyproj_crs()
        epsg = crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else crs.to_string()

    def meta(self, n_samples: int, max_dates: int) -> DatasetMeta:
        """The dataset facts every writer needs, once the plan has said how many samples and dates."""
        series, options, ls = self.series, self.options, self.label_set
        grid = series.grid
        return DatasetMeta(
            crs_wkt=grid.crs_wkt(), grid_transform=tuple(grid.transform)[:6], bands=list(series.bands),
            groups=list(self.layout.groups), band_resolution=options.band_resolution, patch_size=options.patch_size,
            label_scale=options.label_scale, labels=ls.describe() if ls else {}, dates=series.dates,
            date_scales=series.scales, date_offsets=series.offsets, nodata=series.nodata, dtype=series.dtype,
            n_samples=n_samples, max_dates=max_dates,
        )

    def catalog_info(self, meta: DatasetMeta) -> dict:
        return catalog_info(self.options.format, meta, self.layout, self.crs_name(), self.class_table,
                            self.options.stac_collection_id)


def _log_uncovered_edge(pg: PatchGrid, grid, layout: BandLayout, feedback: Feedback) -> None:
    """Say so when native-resolution windows leave the grid's last rows or columns out.

    The edge window is shifted inward to end at the edge, but with native band groups its
    start must stay on the coarsest group's lattice (:func:`.windows.axis_starts`), so it
    ends at the last whole coarse pixel: the fewer than ``align`` image pixels after it
    would be a part of a coarse pixel, and are in no patch.
    """
    rows_left = grid.height - int(pg.row_starts[-1]) - pg.size
    cols_left = grid.width - int(pg.col_starts[-1]) - pg.size
    if rows_left or cols_left:
        coarse_m = layout.align * grid.pixel_width
        feedback.log(
            f"With band_resolution='native' windows start on the {coarse_m:g} m lattice, so the last window of a row "
            f"or column ends at the last whole {coarse_m:g} m pixel: the last {rows_left} rows and {cols_left} columns "
            f"of the {grid.width} x {grid.height} px grid are in no patch."
        )
