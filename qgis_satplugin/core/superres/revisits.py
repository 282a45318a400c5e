"""Which revisits feed the model, in which order.

A multi-frame model was trained on stacks ordered one way (the contract's
``revisit_order``); feeding another order silently degrades it, so the order is
reproduced here:

- ``clearest_first``: ascending share of cloud or no data over the raster (from the
  masks, or from the images' no-data where a date has no mask), ties by date;
- ``chronological``: oldest first.

Dates whose cloud share is above ``max_cloud`` % are skipped (only when their share is
known). A model with a fixed revisit count takes the first N; when fewer are usable,
the stack is filled by repeating them in order, which the log says, because a shorter
stack cannot be fed to a fixed-size input. A single-image model takes the first one.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..feedback import Feedback
from ..image_series.dates import iso_z
from ..image_series.reader import ImageSeries
from ..sentinel2 import MASK_CLOUD_VALUES, MASK_NODATA
from .contract import ModelContract, ModelContractError

# Cloud shares are estimated on a decimated read (nearest neighbour, from overviews when
# the file has them): exact enough to rank dates, and cheap on a full tile.
CLOUD_ESTIMATE_SIZE = 1024


@dataclass(frozen=True)
class Revisit:
    index: int  # position in the series (time order; the order given when some raster is undated)
    cloud_percent: Optional[float]  # None: unknown (no mask, no nodata)


def cloud_percent(series: ImageSeries, index: int) -> Optional[float]:
    """% of the raster that is cloud, cloud shadow, cirrus or no data on one date."""
    import rasterio
    from rasterio.enums import Resampling

    image = series.images[index]
    if image.mask_path is not None:
        kind = image.mask_kind or "SCL"
        path, band, bad, nodata = image.mask_path, 1, MASK_CLOUD_VALUES[kind], MASK_NODATA[kind]
    elif series.nodata is not None:
        path, band, bad, nodata = image.path, series.band_index[0], (), series.nodata
    else:
        return None
    with rasterio.open(path) as ds:
        factor = max(1, int(np.ceil(max(ds.width, ds.height) / CLOUD_ESTIMATE_SIZE)))
        shape = (max(1, ds.height // factor), max(1, ds.width // factor))
        values = ds.read(band, out_shape=shape, resampling=Resampling.nearest)
    flagged = (values == nodata) | np.isin(values, bad)
    return float(100.0 * flagged.mean())


def choose_revisits(series: ImageSeries, contract: ModelContract, max_cloud: float, feedback: Feedback) -> list:
    """The revisits to feed, in the model's order: a list of :class:`Revisit` (repeats allowed)."""
    candidates = []
    for i in range(len(series.images)):
        feedback.check_canceled()
        candidates.append(Revisit(i, cloud_percent(series, i)))
    usable = [r for r in candidates if r.cloud_percent is None or r.cloud_percent <= max_cloud]
    skipped = [r for r in candidates if r not in usable]
    for r in skipped:
        feedback.log(f"Skipping {_describe(series, r)}: {r.cloud_percent:.1f} % cloud or no data is above "
                     f"MAX_CLOUD {max_cloud:g} %.")
    if not usable:
        raise ModelContractError(
            f"Every revisit is above MAX_CLOUD {max_cloud:g} % cloud or no data "
            f"(the clearest has {min(r.cloud_percent for r in candidates):.1f} %); raise MAX_CLOUD or add dates.")
    if series.undated and contract.revisit_order == "chronological" and contract.multi_frame:
        dated = [im for im in series.images if im.when is not None]
        if dated:
            # The given order would stand in for time for some dates and not others: refuse, not guess.
            undated = next(im for im in series.images if im.when is None)
            raise ModelContractError(
                f"The model takes its revisits oldest first, and {len(series.images) - len(dated)} of the "
                f"{len(series.images)} rasters have no date ({undated.path.name} among them) while "
                f"{len(dated)} have one: give every raster a date (an ACQUISITION_DATETIME tag or a date in its "
                "name), or give only undated rasters, oldest first.")
    if series.undated:
        feedback.log(f"{sum(im.when is None for im in series.images)} of the {len(series.images)} rasters have no date: "
                     + ("they are ranked clearest first, ties in the order given."
                        if contract.revisit_order == "clearest_first" else "they are fed in the order given."))
    if contract.revisit_order == "clearest_first":
        if any(r.cloud_percent is None for r in usable):
            feedback.log("Some revisits have no cloud mask and no nodata value: they rank as clear as possible.")
        # Ties by date, or by the order given when undated (r.index: the series is in that order then).
        usable.sort(key=lambda r: (r.cloud_percent or 0.0, r.index))
    count = contract.revisits_to_use(len(usable))
    if not contract.multi_frame and len(usable) > 1:
        feedback.log(f"The model takes a single image: using {_describe(series, usable[0])}, the first of "
                     f"{len(usable)} usable revisits in {contract.revisit_order.replace('_', ' ')} order.")
    chosen = usable[:count]
    if len(chosen) < count:  # fixed-size stack, fewer usable dates: repeat them in order
        feedback.log(f"The model needs {count} revisits and {len(chosen)} are usable: repeating them to fill "
                     "the stack.")
        chosen = [chosen[k % len(chosen)] for k in range(count)]
    return chosen


def _describe(series: ImageSeries, revisit: Revisit) -> str:
    image = series.images[revisit.index]
    return f"{image.path.name} ({'undated' if image.when is None else iso_z(image.when)})"


def describe_revisits(series: ImageSeries, chosen: list) -> list:
    """JSON-ready records of the stack fed to the model, in order."""
    out = []
    for r in chosen:
        image = series.images[r.index]
        out.append({
            "path": str(image.path),
            "datetime": None if image.when is None else iso_z(image.when),
            "product_id": image.product_id,
            "cloud_percent": None if r.cloud_percent is None else round(r.cloud_percent, 3),
        })
    return out
