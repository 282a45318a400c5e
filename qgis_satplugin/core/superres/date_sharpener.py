"""The shipped band-sharpening model as a service: one raster in, its 20 m bands sharpened out.

What the export's ``band_resolution`` "sharpened" runs on each date (see
``export/sharpening.py``, which takes it as a plain object: no step imports another, so the
two are wired where steps are run by name, in ``core/steps.py``, and by the region build).
Each call is :func:`.runner.run` with the shipped ``s2_sharpen_20m.onnx`` on the whole raster,
loaded once for all calls: the same values ``satplugin:superresolve`` writes with that model.
"""
from __future__ import annotations

from pathlib import Path

from ..feedback import Feedback
from .options import SHARPEN_MODEL


class ShippedSharpener:
    """Loads the model on creation (``feedback`` hears which provider runs it)."""

    def __init__(self, feedback: Feedback | None = None, model: Path = SHARPEN_MODEL):
        from ..image_series.manifest import sha256_of
        from .session import load_model

        self.path = Path(model)
        self.loaded = load_model(self.path, "auto", feedback)
        contract = self.loaded.contract
        self.needs, self.gives = tuple(contract.input_bands), tuple(contract.output_bands)
        self.model_name, self.model_sha256 = self.path.name, sha256_of(self.path)

    def check_bands(self, bands: list, source: str) -> None:
        """Raise, naming ``source``, when ``bands`` (a raster's) lack one the model reads."""
        self.loaded.contract.band_positions(bands, source)

    def __call__(self, image: Path, output: Path, feedback: Feedback | None = None,
                 dask_scheduler: str | None = None) -> bool:
        """Sharpen ``image`` into ``output`` (float32 reflectance, the bands ``gives``), on ``dask_scheduler``'s
        cluster when given; whether every native 20 m pixel kept its value (PRESERVE_REFLECTANCE applied:
        see the runtime's log when not)."""
        import rasterio

        from .options import SuperResolveOptions
        from .runner import run

        # Clouds are the caller's to judge: the model runs on the whole date whatever its cloud cover.
        run(SuperResolveOptions(inputs=[str(image)], output=str(output), model=str(self.path), max_cloud=100,
                                dask_scheduler=dask_scheduler), feedback, loaded_model=self.loaded)
        with rasterio.open(output) as ds:
            return ds.tags().get("PRESERVE_REFLECTANCE") == "yes"
