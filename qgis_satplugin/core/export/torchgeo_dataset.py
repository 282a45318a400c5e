"""TorchGeo access to an exported dataset that keeps each sample's time series.

TorchGeo's raster datasets (``RasterDataset`` and its Sentinel-2 subclass) index one
file per date and answer a query by merging every file that overlaps it into one image:
a chip's dates are mosaicked away. :class:`ExportedGeoDataset` is a ``GeoDataset`` over
the export itself instead: its index has one row per sample (the footprint of
``index.gpkg``, the time span first..last date), and a query returns that sample's whole
series, ``image`` [T, C, h, w] with its ``dates``, cut to the query's window and time
range. So TorchGeo's samplers, ``roi``/``toi`` and ``IntersectionDataset`` work on it and
the time axis survives:

* ``PreChippedGeoSampler(ds)``: one query per sample, the whole patch (the usual case);
* ``RandomGeoSampler(ds, size=s)`` / ``GridGeoSampler`` with ``s`` up to the patch size:
  windows inside one sample (a window that no single sample covers raises IndexError);
* a ``toi`` (or a query's time slice) keeps only the dates inside it.

Each item is :func:`torch_dataset.to_tensors`'s dict in TorchGeo's names: ``image`` (or
``image_10m``/``image_20m``/``image_60m`` with native band resolution), ``mask`` (the
class labels, int64, when exported), ``labels`` (every label raster), ``dates``, ``doy``,
``year``, ``days``, ``sample_id``, ``split``, plus ``bounds`` (the query) and ``crs``.
Series lengths differ: batch with ``DataLoader(..., collate_fn=torch_dataset.pad_collate)``,
which pads the time axis and adds ``date_mask``.

Written against TorchGeo 0.8 (queries are ``[x, y, t]`` slices); torchgeo is imported
only when the class is first used.
"""
from __future__ import annotations

from datetime import timezone

import numpy as np

from ..errors import SatPluginError
from ..image_series.dates import parse_iso_datetime
from .reader import ExportedDataset
from .torch_dataset import to_tensors

# A query edge within this share of a pixel of a sample's pixel edge counts as on it
# (the sampler's float arithmetic on map coordinates).
EDGE_TOLERANCE = 1e-6


def import_torchgeo():
    try:
        import torchgeo.datasets
    except ImportError as exc:
        raise SatPluginError(
            "ExportedGeoDataset needs TorchGeo (python -m pip install torchgeo); "
            "torch_dataset.PatchDataset reads the same samples without it."
        ) from exc
    return torchgeo.datasets


def _naive_utc(iso: str):
    """TorchGeo's time index is naive (its open ends are pandas' naive Timestamp.min/max): UTC, tz dropped."""
    import pandas as pd

    return pd.Timestamp(parse_iso_datetime(iso).astimezone(timezone.utc).replace(tzinfo=None))


def _make_class():
    datasets = import_torchgeo()
    import pandas as pd
    import shapely
    from geopandas import GeoDataFrame
    from pyproj import CRS

    class ExportedGeoDataset(datasets.GeoDataset):
        """``ExportedGeoDataset(folder, split=None, reflectance=False, transforms=None)``."""

        def __init__(self, folder, split=None, reflectance: bool = False, transforms=None):
            self.source = ExportedDataset(folder, split)
            self.paths = str(folder)
            self.reflectance = reflectance
            self.transforms = transforms
            meta = self.source.meta
            self.groups = {g["key"]: g["bands"] for g in meta["band_groups"]}
            self.factors = {g["key"]: g["factor"] for g in meta["band_groups"]}
            self.size = meta["patch_size"]
            self.k = meta["label_scale"]
            a, _, c, _, e, f = meta["grid"]["transform"]
            self.pixel = (a, -e)
            self._res = (a, -e)
            rows = self.source.rows
            # The same footprints as index.gpkg, from the grid and each sample's top-left pixel.
            self.x0 = np.array([c + r["col"] * a for r in rows])
            self.y1 = np.array([f + r["row"] * e for r in rows])
            boxes = shapely.box(self.x0, self.y1 + self.size * e, self.x0 + self.size * a, self.y1)
            times = pd.IntervalIndex.from_arrays([_naive_utc(r["dates"][0]) for r in rows],
                                                 [_naive_utc(r["dates"][-1]) for r in rows], closed="both",
                                                 name="datetime")
            self.index = GeoDataFrame({"sample": np.arange(len(rows))}, index=times, geometry=boxes,
                                      crs=CRS.from_wkt(meta["grid"]["crs_wkt"]))

        def _pick(self, x: slice, y: slice, t: slice) -> int:
            """The sample that covers the query window in full and has dates in its time range."""
            tol_x, tol_y = EDGE_TOLERANCE * self.pixel[0], EDGE_TOLERANCE * self.pixel[1]
            x1, y0 = self.x0 + self.size * self.pixel[0], self.y1 - self.size * self.pixel[1]
            covers = ((self.x0 <= x.start + tol_x) & (x1 >= x.stop - tol_x)
                      & (y0 <= y.start + tol_y) & (self.y1 >= y.stop - tol_y))
            covers &= np.asarray(self.index.index.overlaps(pd.Interval(t.start, t.stop, closed="both")))
            hits = np.flatnonzero(covers)
            if hits.size == 0:
                raise IndexError(f"no sample covers the query {x}, {y}, {t} (windows may not span two samples)")
            # Overlapping patches (stride < patch size): the one whose centre is nearest the window's.
            cx, cy = (x.start + x.stop) / 2, (y.start + y.stop) / 2
            half = self.size / 2
            dist = np.hypot(self.x0[hits] + half * self.pixel[0] - cx, self.y1[hits] - half * self.pixel[1] - cy)
            return int(hits[np.argmin(dist)])

        def __getitem__(self, query) -> dict:
            x, y, t = self._disambiguate_slice(query)
            i = self._pick(x, y, t)
            item = self.source[i]
            keep = [j for j, d in enumerate(item["dates"]) if t.start <= _naive_utc(d) <= t.stop]
            if not keep:
                raise IndexError(f"sample {item['sample_id']} has no date in {t}")
            col0 = int(round((x.start - self.x0[i]) / self.pixel[0]))
            row0 = int(round((self.y1[i] - y.stop) / self.pixel[1]))
            width = int(round((x.stop - x.start) / self.pixel[0]))
            height = int(round((y.stop - y.start) / self.pixel[1]))
            out = to_tensors(item, self.reflectance, self.groups)
            sample = {"sample_id": out["sample_id"], "split": out["split"], "crs": self.crs, "bounds": query,
                      "dates": [out["dates"][j] for j in keep]}
            for key in ("doy", "year", "days"):
                sample[key] = out[key][keep]
            for key, factor in self.factors.items():
                if row0 % factor or col0 % factor or height % factor or width % factor:
                    raise IndexError(f"the query window is not on the {key} grid ({factor} image px per pixel)")
                name = "image" + key[len("images"):]
                sample[name] = out[key][keep][:, :, row0 // factor:(row0 + height) // factor,
                                             col0 // factor:(col0 + width) // factor]
            k = self.k
            sample["labels"] = {n: v[row0 * k:(row0 + height) * k, col0 * k:(col0 + width) * k]
                                for n, v in out["labels"].items()}
            if "class" in sample["labels"]:
                sample["mask"] = sample["labels"]["class"]
            return self.transforms(sample) if self.transforms else sample

    return ExportedGeoDataset


def __getattr__(name):
    if name == "ExportedGeoDataset":
        cls = _make_class()
        globals()["ExportedGeoDataset"] = cls
        return cls
    raise AttributeError(name)
