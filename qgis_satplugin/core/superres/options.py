"""Super-resolution's job spec: :class:`SuperResolveOptions`, plain values only, checked once.

Each field's ``help`` is the one description of that parameter: the Processing
algorithm's help is built from it. A model already loaded (to run several jobs on one
session) is not an option but a live object: :func:`.runner.run`'s ``loaded_model``.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

from ..cluster.scheduler import SCHEDULER_HELP, parse_scheduler
from ..errors import SatPluginError
from ..options import StepOptions, option
from ..resources import resource_path
from .session import PROVIDER_CHOICES
from .tiling import check_tiling

# The model a run uses when none is given; its card (.md) lies beside it.
DEFAULT_MODEL = resource_path("superres", "s2_sr_x2_rgbn.onnx")
# The shipped band-sharpening model: 20 m bands onto the 10 m grid.
SHARPEN_MODEL = resource_path("superres", "s2_sharpen_20m.onnx")


@dataclass(frozen=True)
class SuperResolveOptions(StepOptions):
    """What to super-resolve, with which model, and how (see :func:`.runner.run`)."""

    inputs: Union[str, tuple[str, ...]] = option(help=(
        'A "Download products" folder, or one raster per revisit on one grid (dates from the ACQUISITION_DATETIME '
        "tag or the file name; rasters with neither are accepted, in the order given). Revisits are ordered as the "
        "model was trained (clearest first, from the SCL/CLM masks beside the images, or chronological); dates above "
        "MAX_CLOUD % cloud are skipped. Pixels a revisit "
        "cannot supply (cloud, no data) are filled from the next revisit in that order."))
    output: str = option(help=(
        "The GeoTIFF (.tif) written, with exactly the input's extent and CRS at the input pixel size divided by the "
        "model's scale. It is written under a temporary name and renamed when complete: a failure, a full disk or a "
        "cancel keeps a previous file. An OUTPUT that is one of the inputs, lies in the download folder, or is an "
        "existing folder is refused before any work."))
    model: Optional[str] = option(None, help=(
        "A .onnx file carrying the plugin's model contract in its metadata (bands, scale, revisits, normalisation, "
        "output bands and units); checked at load with a clear error. Empty: the shipped default, "
        f"{DEFAULT_MODEL.name} (x2, B02 B03 B04 B08; its model card {DEFAULT_MODEL.stem}.md lies beside it). "
        f"{SHARPEN_MODEL.name}, shipped beside it, sharpens B05 B06 B07 B8A B11 B12 onto the 10 m grid of "
        "B02 B03 B04 B08 (one date; output on the input's grid)."))
    provider: str = option("auto", help=(
        "auto picks CUDA, DirectML or CoreML when one works here, else the CPU; a GPU provider that fails to load "
        "falls back to the CPU with a message. The log says which one ran."))
    tile_size: int = option(256, help="The side of a tile, in input pixels.")
    overlap: int = option(32, help=(
        "Input pixels two neighbouring tiles share. Tiles are blended with raised-cosine windows that sum to one, "
        "and a margin of each tile as wide as the model's receptive field (from its metadata; OVERLAP/4 when it "
        "does not say) is discarded, so with OVERLAP above twice the receptive field the result does not depend on "
        "the tiling: no seams, and no dark borders at the raster edges (which are padded by reflection). The log "
        "warns when OVERLAP is too small."))
    batch_size: int = option(0, help=(
        "Tiles per inference call (0, the default: 1 on the CPU, where it is fastest, 4 on a GPU). Memory holds one "
        "row of tiles, whatever the raster's size."))
    max_cloud: float = option(50.0, help=(
        "Revisits with more cloud or no data than this share (%) are skipped; 100 keeps every date."))
    preserve_reflectance: bool = option(True, help=(
        "On by default: after blending, every block of scale x scale output pixels is corrected to average exactly "
        "to the reference revisit's reflectance under it (the block mean training degrades with), so reflectance "
        "never drifts; the mean correction per band is in the log and the band tags. For a band-sharpening model, "
        "each sharpened band keeps the mean of each of its native pixels (2 x 2 output pixels for a 20 m band), "
        "recovered from the input as the download step resampled it. Off: the model's output as is."))
    dask_scheduler: Optional[str] = option(None, help=SCHEDULER_HELP + (
        " Each band of tile rows is one task; each worker loads the model once (one thread), checked against "
        "the client's by its sha256, and the bands are assembled into the same GeoTIFF."))

    def __post_init__(self):
        if self.model is not None:  # an empty MODEL is the default model
            object.__setattr__(self, "model", str(self.model) or None)
        super().__post_init__()

    def check(self) -> None:
        if not self.inputs:
            raise SatPluginError("Give the inputs: a download folder, or one raster per revisit.")
        if not isinstance(self.output, str) or not self.output:
            raise SatPluginError("Choose the output GeoTIFF (.tif).")
        if not isinstance(self.preserve_reflectance, bool):
            raise SatPluginError(f"PRESERVE_REFLECTANCE is true or false, got {self.preserve_reflectance!r}.")
        for name, value in (("TILE_SIZE", self.tile_size), ("OVERLAP", self.overlap), ("BATCH_SIZE", self.batch_size)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise SatPluginError(f"{name} must be a whole number, got {value!r}.")
        if self.batch_size < 0:
            raise SatPluginError(f"BATCH_SIZE must be 0 (automatic) or more, got {self.batch_size}.")
        if isinstance(self.max_cloud, bool) or not isinstance(self.max_cloud, (int, float)) \
                or not 0.0 <= self.max_cloud <= 100.0:
            raise SatPluginError(f"MAX_CLOUD must lie between 0 and 100 %, got {self.max_cloud}.")
        output = Path(self.output)
        if output.suffix.lower() not in (".tif", ".tiff"):
            raise SatPluginError(f"The output must be a GeoTIFF (.tif), got {output.name}.")
        check_tiling(self.tile_size, self.overlap)
        parse_scheduler(self.dask_scheduler)
        choice = (self.provider or "auto").strip().lower()
        if choice not in PROVIDER_CHOICES:
            raise SatPluginError(f"PROVIDER must be one of {', '.join(PROVIDER_CHOICES)}, got {choice!r}.")
