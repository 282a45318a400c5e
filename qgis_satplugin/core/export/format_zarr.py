"""``zarr``: the whole dataset in one chunked store, ``dataset.zarr`` (Zarr v2 layout).

One chunk per sample, so a data loader reads a sample with one file access and the store
needs no index beyond the arrays themselves. Samples keep the plan's row-major order;
their split is an array, so one store serves every split. Dates vary per sample: the
time axis is padded to the longest series, ``n_dates`` says how many are real and
``date_index`` is -1 on padding.

Arrays (N samples, T = most dates in a sample, C bands, P patch px, k label scale):

* ``images`` [N, T, C, P, P] (or ``images_10m``/``images_20m``/``images_60m`` with their
  own C and size), source dtype, Zstd level 1, padding filled with the image no-data;
* ``labels/<name>`` [N, kP, kP];
* ``date_index``, ``cloud`` [N, T]; ``n_dates``, ``split`` (0 train, 1 val, 2 test) [N];
  ``transform`` [N, 6]; ``pixel`` [N, 2]; ``sample_id`` [N];
* ``dates`` (ISO text), ``date_scale`` and ``date_offset`` [T_all, C] for every date of
  the series: reflectance = scale x DN + offset.

zarr is imported only here, and only when this format is chosen: the other formats
work without it. Written with zarr 2.18 (numpy 1.26 compatible).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SatPluginError
from .dates import day_of_year, iso_z, parse_iso_datetime
from .sample import DatasetMeta, Sample
from .splits import SPLITS

NAME = "zarr"
STORE = "dataset.zarr"


def import_zarr():
    try:
        import numcodecs
        import zarr
    except ImportError as exc:
        raise SatPluginError(
            "The zarr format needs the zarr package: install it into QGIS's Python with "
            "'python -m pip install \"zarr>=2.18,<3\"', or choose npz, geotiff or deepsatdata."
        ) from exc
    return zarr, numcodecs


class ZarrWriter:
    def __init__(self, root: Path, meta: DatasetMeta):
        zarr, numcodecs = import_zarr()
        self._zarr = zarr
        self.meta = meta
        n, t = meta.n_samples, meta.max_dates
        self.group = zarr.open_group(str(Path(root) / STORE), mode="w")
        compressor = numcodecs.Zstd(level=1)
        fill = meta.nodata if meta.nodata is not None else 0
        for g in meta.groups:
            side = meta.patch_size // g.factor
            shape = (n, t, len(g.bands), side, side)
            self.group.create_dataset(g.key, shape=shape, chunks=(1,) + shape[1:], dtype=meta.dtype,
                                      compressor=compressor, fill_value=fill)
        kp = meta.patch_size * meta.label_scale
        for name, spec in meta.labels.items():
            self.group.create_dataset(f"labels/{name}", shape=(n, kp, kp), chunks=(1, kp, kp), dtype=spec["dtype"],
                                      compressor=compressor, fill_value=spec["nodata"])
        self.small = {
            "date_index": np.full((n, t), -1, dtype=np.int32),
            "cloud": np.full((n, t), np.nan, dtype=np.float32),
            "n_dates": np.zeros(n, dtype=np.int16),
            "split": np.full(n, -1, dtype=np.int8),
            "transform": np.zeros((n, 6), dtype=np.float64),
            "pixel": np.zeros((n, 2), dtype=np.int64),
            "sample_id": np.zeros(n, dtype="<U16"),
        }

    def write(self, s: Sample) -> str:
        t = len(s.dates)
        for g in self.meta.groups:
            arr = self.group[g.key]
            block = np.full(arr.shape[1:], arr.fill_value, dtype=arr.dtype)
            block[:t] = s.images[g.key]
            arr[s.index] = block
        for name, values in s.labels.items():
            self.group[f"labels/{name}"][s.index] = values
        small = self.small
        small["date_index"][s.index, :t] = s.date_index
        small["cloud"][s.index, :t] = s.cloud
        small["n_dates"][s.index] = t
        small["split"][s.index] = SPLITS.index(s.split)
        small["transform"][s.index] = s.transform
        small["pixel"][s.index] = (s.row, s.col)
        small["sample_id"][s.index] = s.sample_id
        return f"{STORE}#{s.index}"

    def close(self):
        m = self.meta
        for name, values in self.small.items():
            self.group.create_dataset(name, data=values, chunks=values.shape or None, overwrite=True)
        self.group.create_dataset("dates", data=np.array([iso_z(d) for d in m.dates], dtype="<U20"))
        self.group.create_dataset("date_scale", data=np.asarray(m.date_scales, dtype=np.float64))
        self.group.create_dataset("date_offset", data=np.asarray(m.date_offsets, dtype=np.float64))
        self.group.attrs.update({
            "format": "satplugin-export/1",
            "bands": list(m.bands),
            "band_groups": [{"key": g.key, "bands": list(g.bands), "factor": g.factor} for g in m.groups],
            "splits": list(SPLITS),
            "crs_wkt": m.crs_wkt,
            "grid_transform": list(m.grid_transform),
            "patch_size": m.patch_size,
            "label_scale": m.label_scale,
            "nodata": m.nodata,
        })
        self._zarr.consolidate_metadata(self.group.store)


class ZarrReader:
    """Keeps the store open across samples (opening it per sample would dominate)."""

    def __init__(self, root: Path):
        zarr, _ = import_zarr()
        self.group = zarr.open_consolidated(str(Path(root) / STORE), mode="r")
        self.small = {k: self.group[k][:] for k in ("date_index", "cloud", "n_dates", "split", "transform", "pixel", "sample_id")}
        self.dates = [str(d) for d in self.group["dates"][:]]
        self.scale = self.group["date_scale"][:]
        self.offset = self.group["date_offset"][:]

    def read(self, meta: dict, row: dict) -> dict:
        i = int(row["index"])
        t = int(self.small["n_dates"][i])
        idx = self.small["date_index"][i, :t]
        dates = [self.dates[j] for j in idx]
        out = {
            "sample_id": str(self.small["sample_id"][i]),
            "split": SPLITS[int(self.small["split"][i])],
            "bands": list(self.group.attrs["bands"]),
            "dates": dates,
            "doy": _doy(dates),
            "year": np.array([int(d[:4]) for d in dates], dtype=np.int32),
            "date_index": idx,
            "cloud": self.small["cloud"][i, :t],
            "crs": self.group.attrs["crs_wkt"],
            "transform": tuple(float(v) for v in self.small["transform"][i]),
            "scale": self.scale[idx],
            "offset": self.offset[idx],
            "labels": {},
        }
        for g in meta["band_groups"]:
            out[g["key"]] = self.group[g["key"]][i, :t]
        if "labels" in self.group:
            for name in self.group["labels"].array_keys():
                out["labels"][name] = self.group["labels"][name][i]
        return out


def _doy(iso_dates) -> np.ndarray:
    return np.array([day_of_year(parse_iso_datetime(d)) for d in iso_dates], dtype=np.int16)
