"""Export patches: a Sentinel-2 time series (+ ground truth) -> an ML dataset on disk.

``run(ExportOptions(images, output_folder, ...), feedback=None) -> ExportResult``. Every
option, with its one description, is a field of :class:`ExportOptions` (checked when it is
made, JSON round trip exact); progress, log and cancel come through a
:class:`~..feedback.Feedback`. The formats' layouts are in each ``format_*`` module; every
export also writes ``index.gpkg``, ``samples.csv``, ``dataset.json``, ``dataset.md``, a STAC
catalog (:mod:`stac_catalog`) and ``croissant.json`` (:mod:`croissant`).

Bad input raises :class:`SatPluginError` and a cancel raises :class:`Canceled`; neither
leaves anything at ``output_folder`` (see :mod:`staging`). ``output_folder`` is new, empty
or an earlier export: only the files an export listed in its ``dataset.json``
(``contents``) are ever replaced, any other file there makes the export refuse, and an
output that is, holds or lies in an input is refused before any work. One export at a
time writes a folder (a second refuses at once). :class:`ExportedDataset`
reads any format back as numpy; ``torch_dataset.PatchDataset`` wraps it for PyTorch and
``torchgeo_dataset.ExportedGeoDataset`` for TorchGeo's samplers (dates kept).
"""
from ..lazy import lazy_exports

# Imported when first used (see ..lazy): the options load without the step's dependencies.
EXPORTS = {
    "ExportOptions": "options",
    "ExportResult": "runner",
    "ExportedDataset": "reader",
    "FORMATS": "options",
    "SplitArea": "options",
    "labels_by_kind": "label_rasters",
    "run": "runner",
}
__getattr__, __dir__ = lazy_exports(__name__, EXPORTS)
__all__ = sorted(EXPORTS)
