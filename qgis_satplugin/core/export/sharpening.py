"""``band_resolution`` "sharpened": every band at 10 m, the 20 m ones sharpened by the shipped model.

The model runs through the super-resolution runtime, one date at a time, on each date the
plan keeps: ``date_sharpener`` is the super-resolution step's ``ShippedSharpener`` (handed
in by whoever runs the export by its step name, ``core/steps.py``: no step imports another),
so the sharpened bands are exactly what ``satplugin:superresolve`` gives with that model on
the same raster, with its reflectance preservation: every 20 m pixel keeps its value where the
native pixels start at the raster's origin (the download step's grids do; the log and the card
say on how many dates it held).

Each sharpened date becomes its 20 m bands in the raster's own encoding (dtype, scale, offset,
no-data) and a VRT that reads them, and every other band from the date's own file: the rest
of the export reads it as it reads the original, and the card's scales and offsets still hold. Integer DN round
the sharpened reflectance to half a DN step (5e-5 reflectance for Sentinel-2's 1e-4);
a pixel the model gives no value for keeps the image's. The 60 m bands stay as the images
hold them. The copies lie in a hidden folder beside the output (where a Dask export's
workers, which write the staging folder there, can read them too) and are removed when the
export ends, whatever its outcome; a folder a killed export left is removed by the next
one into the same output (it holds that output's lock).
"""
from __future__ import annotations

import re
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..dependencies import require
from ..errors import SatPluginError
from ..feedback import Feedback
from ..image_series.reader import ImageSeries, open_image_series
from ..locks import remove_leftovers
from ..sentinel2 import NATIVE_RESOLUTION_M, canonical_band_name
from .band_layout import RESOLUTION_TOLERANCE
from .staging import resolved

GRID_PIXEL_M = 10.0  # the model's grid: the 10 m bands' own
STRIP_ROWS = 512  # rows copied at once (13 uint16 bands of a 10980 px tile: 150 MB)


def _key(band: str) -> str:
    return canonical_band_name(band) or band


@dataclass
class Sharpener:
    """The date sharpener and what it does to this export's bands."""

    model: object  # the super-resolution step's ShippedSharpener: needs, gives, model_name, check_bands, __call__
    bands: list  # the selected bands it sharpens
    kept: list  # the selected coarse (60 m) bands it leaves as the images hold them
    preserved: list = field(default_factory=list)  # per date sharpened: whether the runtime kept its 20 m values

    @classmethod
    def check(cls, series: ImageSeries, date_sharpener, feedback: Feedback) -> "Sharpener":
        """Before the plan: a 10 m grid, the model's input bands in the files, some of its outputs selected.

        ``date_sharpener``: a callable that makes the sharpener (loading its model), or None."""
        if date_sharpener is None:
            raise SatPluginError(
                "BAND_RESOLUTION sharpened needs the super-resolution step's sharpening model: run the export by its "
                "step name (satplugin:exportpatches, or core.steps.step('export')), or pass "
                "sharpener=superres.ShippedSharpener to export.run.")
        grid = series.grid
        for size in (grid.pixel_width, abs(grid.pixel_height)):
            if abs(size - GRID_PIXEL_M) > RESOLUTION_TOLERANCE * GRID_PIXEL_M:
                raise SatPluginError(
                    f"BAND_RESOLUTION sharpened needs the images on a 10 m grid (the sharpening model's); these have "
                    f"{grid.pixel_width:g} x {abs(grid.pixel_height):g} m pixels. Use resample or native.")
        require("BAND_RESOLUTION sharpened", "onnxruntime", "cv2", alternative="use resample or native")
        model = date_sharpener(feedback)
        # Every band of the files, not just the selected ones: the model reads the 10 m bands too.
        in_files = open_image_series([series.images[0].path], feedback=Feedback(), undated_ok=True).bands
        model.check_bands(in_files, f"BAND_RESOLUTION sharpened: {series.images[0].path.name}")
        gives = {_key(b) for b in model.gives}
        bands = [b for b in series.bands if _key(b) in gives]
        if not bands:
            raise SatPluginError(
                f"BAND_RESOLUTION sharpened sharpens {', '.join(model.gives)}; the selected bands "
                f"({', '.join(series.bands)}) hold none of them. Select some, or use resample.")
        kept = [b for b in series.bands if b not in bands and NATIVE_RESOLUTION_M.get(b, GRID_PIXEL_M) > GRID_PIXEL_M]
        return cls(model, bands, kept)

    def describe(self) -> dict:
        """The dataset card's ``sharpening``."""
        return {"model": self.model.model_name, "model_sha256": self.model.model_sha256, "bands": list(self.bands),
                "not_sharpened": list(self.kept),
                "reflectance_preserved": {"dates": len(self.preserved), "preserved": sum(self.preserved)},
                "encoding": "the images' own (dtype, scale, offset): integer DN round to half a DN step"}

    def sharpen(self, series: ImageSeries, dates: list, folder: Path, feedback: Feedback,
                dask_scheduler: str | None = None) -> ImageSeries:
        """``series`` with each of ``dates`` (indices) read from its sharpened VRT in ``folder``; with
        ``dask_scheduler`` the model runs on that cluster (the same bytes, see the super-resolution step)."""
        images = list(series.images)
        said = set()

        def log(message: str) -> None:  # each thing the runtime says once, not once per date; not its file
            if message.strip() not in said and not message.strip().startswith("Wrote "):
                said.add(message.strip())
                feedback.log(message)

        for n, t in enumerate(dates):
            part = feedback.sub_range(n / len(dates), (n + 1) / len(dates))
            image = images[t]
            raw = folder / f"model-{t:04d}.tif"
            preserved = self.model(image.path, raw, Feedback(part.sub_range(0.0, 0.9).set_progress, log, part.is_canceled),
                                   dask_scheduler=dask_scheduler)
            self.preserved.append(preserved)
            vrt = _replace_bands(image.path, raw, folder / f"date-{t:04d}.tif", list(self.model.gives),
                                 part.sub_range(0.9, 1.0))
            raw.unlink()
            images[t] = replace(image, path=vrt)
        held = sum(self.preserved)
        feedback.log(f"Sharpened {', '.join(self.bands)} to 10 m on {len(dates)} date{'' if len(dates) == 1 else 's'} "
                     f"with {self.model.model_name}"
                     + ("" if held == len(dates) else f" (each 20 m pixel's value kept on {held} of {len(dates)})")
                     + (f"; {', '.join(self.kept)} as the images hold them." if self.kept else "."))
        return replace(series, images=images)


def sharpening_folder(target: Path) -> Path:
    """A new hidden folder beside the output for the sharpened copies (any a killed export left removed first).

    Beside the real folder, as the staging folder is (a link is followed, ``~`` expanded)."""
    target = resolved(target)
    remove_leftovers(target.parent, re.compile(rf"^\.{re.escape(target.name)}\.sharpened-[0-9a-f]{{8}}$"))
    folder = target.parent / f".{target.name}.sharpened-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    return folder


def remove_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)


def _replace_bands(original: Path, sharpened: Path, out: Path, names: list, feedback: Feedback) -> Path:
    """``original`` with the bands ``names`` taken from ``sharpened`` (float reflectance), in its encoding.

    Only those bands are written (``out``, a GeoTIFF); the VRT beside it (returned) reads every
    other band from ``original`` itself, so a copy costs the sharpened bands' disk, not the date's.
    """
    import rasterio

    own = open_image_series([original], feedback=Feedback(), undated_ok=True)  # the scales the runtime read it with
    keys = [_key(b) for b in own.bands]
    pairs = [(j + 1, keys.index(_key(b))) for j, b in enumerate(names)]  # (model band, 0-based file band)
    with rasterio.open(original) as src, rasterio.open(sharpened) as model_out:
        dtype, nodata = np.dtype(src.dtypes[0]), src.nodata
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": len(pairs),
                   "dtype": src.dtypes[0], "crs": src.crs, "transform": src.transform, "nodata": nodata,
                   "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate", "zlevel": 1,
                   "BIGTIFF": "IF_SAFER"}
        with rasterio.open(out, "w", **profile) as dst:
            for r0 in range(0, src.height, STRIP_ROWS):
                feedback.check_canceled()
                window = ((r0, min(r0 + STRIP_ROWS, src.height)), (0, src.width))
                for k, (j, i) in enumerate(pairs, start=1):
                    dst.write(_encode(model_out.read(j, window=window), src.read(i + 1, window=window),
                                      own.scales[0, i], own.offsets[0, i], dtype, nodata), k, window=window)
                feedback.set_progress(min(r0 + STRIP_ROWS, src.height) / src.height)
        vrt = out.with_suffix(".vrt")
        replaced = {i + 1: k for k, (_, i) in enumerate(pairs, start=1)}  # file band -> band of ``out``
        vrt.write_text(_vrt(src, original, out, replaced), encoding="utf-8")
    return vrt


def _vrt(src, original: Path, sharpened: Path, replaced: dict) -> str:
    """A VRT of ``src``'s bands, each read from ``original``, or from ``sharpened`` where ``replaced`` says."""
    from xml.sax.saxutils import escape

    from rasterio.dtypes import dtype_rev, typename_fwd

    kind = typename_fwd[dtype_rev[src.dtypes[0]]]
    t = src.transform
    nodata = "" if src.nodata is None else f"<NoDataValue>{src.nodata!r}</NoDataValue>"
    bands = []
    for i in range(1, src.count + 1):
        path, band = (sharpened, replaced[i]) if i in replaced else (original, i)
        bands.append(f'<VRTRasterBand dataType="{kind}" band="{i}">{nodata}'
                     f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(Path(path).absolute()))}'
                     f"</SourceFilename><SourceBand>{band}</SourceBand></SimpleSource></VRTRasterBand>")
    return (f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
            f"<SRS>{escape(src.crs.to_wkt())}</SRS><GeoTransform>{t.c!r}, {t.a!r}, {t.b!r}, {t.f!r}, {t.d!r}, {t.e!r}"
            f"</GeoTransform>{''.join(bands)}</VRTDataset>\n")


def _encode(reflectance: np.ndarray, current: np.ndarray, scale: float, offset: float, dtype: np.dtype,
            nodata) -> np.ndarray:
    """Reflectance as the band's DN; where the model gives none, or the image has no data, the image's value."""
    keep = ~np.isfinite(reflectance)
    if nodata is not None:
        keep |= np.isnan(current) if np.isnan(nodata) else current == nodata
    dn = (reflectance.astype(np.float64) - offset) / scale
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        dn = np.clip(np.rint(np.where(keep, 0, dn)), info.min, info.max)
        if nodata is not None and info.min <= nodata <= info.max:  # a value that rounds to no-data is not no-data
            dn[dn == nodata] = nodata + 1 if nodata < info.max else nodata - 1
    else:
        dn = dn.astype(dtype)
        if nodata is not None and np.isfinite(nodata):  # nor one that lands on it exactly
            dn[dn == nodata] = np.nextafter(dtype.type(nodata), dtype.type(np.inf))
    return np.where(keep, current, dn.astype(dtype))
