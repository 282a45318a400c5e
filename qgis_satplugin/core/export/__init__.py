"""Export patches: a Sentinel-2 time series (+ ground truth) -> an ML dataset on disk.

``run(ExportOptions(images, output_folder, labels=None, patch_size=64, ...), feedback=None)
-> ExportResult``: every option, with its description, is a field of :class:`ExportOptions`
(checked when it is made, JSON round trip exact); progress, log and cancel come through a
:class:`~..feedback.Feedback`. In short:

* ``images``: a download folder (read through ``manifest.json``, see
  :mod:`..image_series.manifest`) or a tuple of rasters, one date each; a list's dates come from
  the ``ACQUISITION_DATETIME`` tag or the file name (``20230612``, ``2023-06-12``,
  ``20230612T101559``); a ``<name>_SCL.tif`` beside an image is its cloud mask. All
  images must share one grid (the export does not resample).
* ``labels``: {"class", "id", "coverage", "conflict", "distance"} -> rasters of the
  rasterize step, any subset, on the image grid refined ``label_scale`` times.
* ``patch_size``/``stride`` (image px): windows cover the raster; the last window of a
  row or column is shifted inward to end at the edge.
* ``band_resolution``: ``"resample"`` (all bands at P) or ``"native"`` (10/20/60 m bands
  at P, P/2, P/6 by block averaging; see :mod:`band_layout`).
* filters: ``min_labelled`` (share of labelled label pixels), ``max_cloud`` (% cloud or
  no data per patch and date; a cloudy date is dropped for that patch only),
  ``min_dates``/``max_dates`` (even subsampling in time), ``season_start``/``season_end``
  ("MM-DD", may cross New Year).
* splits: blocks of ``split_block_size`` px (default 8 patches; 1 patch with polygons)
  assigned to train/val/test toward ``split_ratios``, class-balanced, seeded; or from
  ``split_areas``: ``SplitArea(Area(wkt, crs), "train"|"val"|"test")`` values, in any CRS
  (reprojected to the images' CRS here).
  Patches touching two splits are dropped, so no pixel is in two splits.
* ``format``: ``npz``, ``zarr``, ``geotiff`` or ``deepsatdata`` (layouts in each
  ``format_*`` module). Every export also writes ``index.gpkg``, ``samples.csv``,
  ``dataset.json``, ``dataset.md``, a STAC catalog (``collection.json`` + ``stac/``,
  :mod:`stac_catalog`) and ``croissant.json`` (:mod:`croissant`).

Bad input raises :class:`SatPluginError` and a cancel raises :class:`Canceled`; neither
leaves anything at ``output_folder`` (see :mod:`staging`). ``output_folder`` is new, empty
or an earlier export: only the files an export listed in its ``dataset.json``
(``contents``) are ever replaced, any other file there makes the export refuse, and an
output that is, holds or lies in an input is refused before any work. One export at a
time writes a folder (a second refuses at once). :class:`ExportedDataset`
reads any format back as numpy; ``torch_dataset.PatchDataset`` wraps it for PyTorch and
``torchgeo_dataset.ExportedGeoDataset`` for TorchGeo's samplers (dates kept).
"""
from .label_rasters import labels_by_kind
from .options import FORMATS, ExportOptions, SplitArea
from .reader import ExportedDataset
from .run import ExportResult, run

__all__ = ["FORMATS", "ExportOptions", "ExportResult", "ExportedDataset", "SplitArea", "labels_by_kind", "run"]
