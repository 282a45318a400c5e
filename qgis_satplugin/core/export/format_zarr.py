"""``zarr``: the whole dataset in one chunked store, ``dataset.zarr`` (Zarr v2 layout).

One chunk per sample, so a data loader reads a sample with one file access and the store
needs no index beyond the arrays themselves. Samples keep the plan's row-major order;
their split is an array, so one store serves every split. Dates vary per sample: the
time axis is padded to the longest series, ``n_dates`` says how many are real and
``date_index`` is -1 on padding.

Every array names its dimensions (``_ARRAY_DIMENSIONS``, the convention xarray reads), so
``xarray.open_zarr("dataset.zarr")`` gives a labelled dataset without any code of ours.
Arrays (N samples, T = most dates in a sample, C bands, P patch px, k label scale):

* ``images`` [sample, time, band, y, x] (N, T, C, P, P), source dtype, Zstd level 1,
  padding filled with the image no-data, which is also the array's fill value; inputs
  without a no-data value get no fill value (so xarray keeps their zeros) and 0 as
  padding. With native band resolution one array per
  group instead, each with its own band and size dimensions: ``images_10m``
  [sample, time, band_10m, y, x], ``images_20m`` [sample, time, band_20m, y_20m, x_20m]...
  (``y``/``x`` is always the image grid, factor 1);
* ``label_<name>`` [sample, y, x] (k = 1) or [sample, y_label, x_label] (kP x kP), the
  label raster's no-data value as fill value, none if it declares none;
* ``date_index``, ``cloud`` [sample, time]; ``n_dates``, ``split`` (0 train, 1 val,
  2 test; CF ``flag_values``) [sample]; ``transform`` [sample, affine] (the patch's 6
  affine coefficients); ``pixel`` [sample, row_col];
* ``dates`` (ISO text), ``date_scale`` and ``date_offset`` [series_date, band] for every
  date of the series: reflectance = scale x DN + offset.

Coordinates: ``sample`` (sample ids, the index), ``band`` (and ``band_20m``...: band
names), ``date`` [sample, time] (acquisition times, CF-encoded seconds since 1970; NaT on
padding), ``x_coord`` [sample, x] and ``y_coord`` [sample, y] (pixel centres in the CRS;
``x_coord_20m``... and ``x_coord_label``... for the other grids), and ``spatial_ref``
(CF grid mapping with ``crs_wkt``, which rioxarray and GDAL read). xarray masks the
no-data (and padding, where there is a no-data value) as NaN by default; ``open_zarr(..., mask_and_scale=False)`` keeps
the integer DN.

zarr is imported only here, and only when this format is chosen: the other formats
work without it. Written with zarr 2.18 (numpy 1.26 compatible). Stores of earlier
versions (``labels/<name>``, ``sample_id``, no dimension names) still read back.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import SatPluginError
from ..image_series.dates import day_of_year, iso_z, parse_iso_datetime
from .sample import DatasetMeta, Sample
from .sample_writer import SampleWriter
from .splits import SPLITS

NAME = "zarr"
STORE = "dataset.zarr"
DIMS = "_ARRAY_DIMENSIONS"  # the attribute xarray (and GDAL's Zarr driver) read dimension names from
# Padding in ``date``: the int64 that xarray decodes as NaT.
NO_TIME = np.iinfo(np.int64).min
EPOCH_UNITS = "seconds since 1970-01-01 00:00:00"
SMALL = ("date_index", "cloud", "n_dates", "split", "transform", "pixel")


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


def time_padding(meta: DatasetMeta):
    """The images' value after a sample's last date: the no-data value, else 0 (unmasked; ``n_dates`` says)."""
    return meta.nodata if meta.nodata is not None else 0


def _suffix(key: str) -> str:
    return key[len("images"):]  # "" or "_20m"


def group_dims(group) -> tuple:
    """(band, y, x) dimension names of a band group: the image grid (factor 1) is plain y/x."""
    suffix = _suffix(group.key)
    grid = "" if group.factor == 1 else suffix
    return "band" + suffix, "y" + grid, "x" + grid


def label_dims(label_scale: int) -> tuple:
    return ("y", "x") if label_scale == 1 else ("y_label", "x_label")


class ZarrWriter(SampleWriter):
    """:meth:`create` makes the store and its arrays; :meth:`for_task` writers fill one chunk's samples."""

    def __init__(self, root: Path, meta: DatasetMeta, create: bool = False):
        super().__init__(root, meta)
        zarr, numcodecs = import_zarr()
        self._zarr = zarr
        path = str(Path(root) / STORE)
        if not create:
            self.group = zarr.open_group(path, mode="r+")
            self.rows = []  # the small arrays' values of each sample written here, for the dataset writer
            return
        n, t = meta.n_samples, meta.max_dates
        self.group = zarr.open_group(path, mode="w")
        compressor = numcodecs.Zstd(level=1)
        # xarray masks an array's fill value (_FillValue) as NaN: only a no-data value the inputs
        # declare may be one, or real zeros would read as NaN (as in the GeoTIFF chips' no-data).
        fill = meta.nodata
        coords = "date spatial_ref"
        for g in meta.groups:
            side = meta.patch_size // g.factor
            shape = (n, t, len(g.bands), side, side)
            arr = self.group.create_dataset(g.key, shape=shape, chunks=(1,) + shape[1:], dtype=meta.dtype,
                                            compressor=compressor, fill_value=fill)
            band, y, x = group_dims(g)
            arr.attrs.update({DIMS: ["sample", "time", band, y, x], "grid_mapping": "spatial_ref",
                              "coordinates": f"{coords} {y.replace('y', 'y_coord', 1)} {x.replace('x', 'x_coord', 1)}",
                              "long_name": "digital numbers; reflectance = date_scale x DN + date_offset"})
        kp = meta.patch_size * meta.label_scale
        y, x = label_dims(meta.label_scale)
        for name, spec in meta.labels.items():
            arr = self.group.create_dataset(f"label_{name}", shape=(n, kp, kp), chunks=(1, kp, kp), dtype=spec["dtype"],
                                            compressor=compressor, fill_value=spec["nodata"])  # None: none declared
            arr.attrs.update({DIMS: ["sample", y, x], "grid_mapping": "spatial_ref",
                              "coordinates": f"spatial_ref {y.replace('y', 'y_coord', 1)} {x.replace('x', 'x_coord', 1)}"})
        self.small = {
            "date_index": np.full((n, t), -1, dtype=np.int32),
            "cloud": np.full((n, t), np.nan, dtype=np.float32),
            "n_dates": np.zeros(n, dtype=np.int16),
            "split": np.full(n, -1, dtype=np.int8),
            "transform": np.zeros((n, 6), dtype=np.float64),
            "pixel": np.zeros((n, 2), dtype=np.int64),
        }
        self.sample_ids = np.zeros(n, dtype="<U16")

    @classmethod
    def create(cls, root: Path, meta: DatasetMeta) -> "ZarrWriter":
        return cls(root, meta, create=True)

    def write(self, s: Sample) -> str:
        # One chunk per sample and array: writers of different chunks never touch the same file.
        t = len(s.dates)
        for g in self.meta.groups:
            arr = self.group[g.key]
            block = np.full(arr.shape[1:], time_padding(self.meta), dtype=arr.dtype)
            block[:t] = s.images[g.key]
            arr[s.index] = block
        for name, values in s.labels.items():
            self.group[f"label_{name}"][s.index] = values
        self.rows.append((s.index, np.asarray(s.date_index), np.asarray(s.cloud), SPLITS.index(s.split),
                          tuple(s.transform), (s.row, s.col), s.sample_id))
        return f"{STORE}#{s.index}"

    def take_extras(self) -> list:
        rows, self.rows = self.rows, []
        return rows

    def absorb(self, extras: list) -> None:
        small = self.small
        for index, date_index, cloud, split, transform, pixel, sample_id in extras:
            t = len(date_index)
            small["date_index"][index, :t] = date_index
            small["cloud"][index, :t] = cloud
            small["n_dates"][index] = t
            small["split"][index] = split
            small["transform"][index] = transform
            small["pixel"][index] = pixel
            self.sample_ids[index] = sample_id

    def _array(self, name: str, values: np.ndarray, dims, **attrs):
        # fill_value=None: zarr's default 0 would reach xarray as _FillValue and mask real zeros.
        arr = self.group.create_dataset(name, data=values, chunks=values.shape or None, fill_value=None, overwrite=True)
        arr.attrs.update({DIMS: list(dims), **attrs})
        return arr

    def close(self):
        m = self.meta
        small = self.small
        dims = {"date_index": ("sample", "time"), "cloud": ("sample", "time"), "n_dates": ("sample",),
                "split": ("sample",), "transform": ("sample", "affine"), "pixel": ("sample", "row_col")}
        for name, values in small.items():
            self._array(name, values, dims[name])
        self.group["split"].attrs.update({"flag_values": list(range(len(SPLITS))), "flag_meanings": " ".join(SPLITS)})
        self.group["cloud"].attrs.update({"units": "%", "long_name": "cloud or no-data share of the patch"})
        self.group["pixel"].attrs["long_name"] = "row and column of the patch's top-left pixel in the image grid"
        self._array("sample", self.sample_ids, ("sample",), long_name="sample id (r<row>_c<col> of its top-left pixel)")
        self._array("band", np.array(m.bands), ("band",))
        for g in m.groups:
            if g.key != "images":
                self._array(group_dims(g)[0], np.array(g.bands), (group_dims(g)[0],))
        self._array("dates", np.array([iso_z(d) for d in m.dates], dtype="<U20"), ("series_date",))
        self._array("date_scale", np.asarray(m.date_scales, dtype=np.float64), ("series_date", "band"))
        self._array("date_offset", np.asarray(m.date_offsets, dtype=np.float64), ("series_date", "band"))
        self._write_date_coordinate()
        self._write_map_coordinates()
        self._array("spatial_ref", np.array(0, dtype=np.int8), (), crs_wkt=m.crs_wkt, spatial_ref=m.crs_wkt)
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

    def _write_date_coordinate(self):
        seconds = np.array([int(d.timestamp()) for d in self.meta.dates], dtype=np.int64)
        idx = self.small["date_index"]
        values = np.where(idx >= 0, seconds[np.maximum(idx, 0)], NO_TIME) if seconds.size else np.full(idx.shape, NO_TIME)
        arr = self.group.create_dataset("date", data=values, chunks=values.shape, fill_value=NO_TIME, overwrite=True)
        arr.attrs.update({DIMS: ["sample", "time"], "units": EPOCH_UNITS, "calendar": "proleptic_gregorian",
                          "long_name": "acquisition time of each date of the sample (UTC)"})

    def _write_map_coordinates(self):
        """Pixel-centre x and y of every sample, on each grid (image, coarser groups, labels)."""
        m = self.meta
        transform = self.small["transform"]
        grids = {(g.factor, group_dims(g)[1:]) for g in m.groups}
        if m.labels:
            grids.add((1.0 / m.label_scale, label_dims(m.label_scale)))
        for factor, (y_dim, x_dim) in sorted(grids, key=lambda g: g[1]):
            side = int(round(m.patch_size / factor))
            centres = np.arange(side, dtype=np.float64) + 0.5
            a, e = transform[:, 0:1] * factor, transform[:, 4:5] * factor
            self._array(x_dim.replace("x", "x_coord", 1), transform[:, 2:3] + centres * a, ("sample", x_dim),
                        standard_name="projection_x_coordinate", long_name="x of pixel centres (CRS units)")
            self._array(y_dim.replace("y", "y_coord", 1), transform[:, 5:6] + centres * e, ("sample", y_dim),
                        standard_name="projection_y_coordinate", long_name="y of pixel centres (CRS units)")


class ZarrReader:
    """Keeps the store open across samples (opening it per sample would dominate)."""

    def __init__(self, root: Path):
        zarr, _ = import_zarr()
        self.group = zarr.open_consolidated(str(Path(root) / STORE), mode="r")
        self.small = {k: self.group[k][:] for k in SMALL}
        # Stores before dimension names kept the ids in ``sample_id`` and labels in a sub-group.
        self.small["sample_id"] = self.group["sample" if "sample" in self.group else "sample_id"][:]
        self.dates = [str(d) for d in self.group["dates"][:]]
        self.scale = self.group["date_scale"][:]
        self.offset = self.group["date_offset"][:]
        if "labels" in self.group:
            self.labels = {name: self.group["labels"][name] for name in self.group["labels"].array_keys()}
        else:
            self.labels = {k[len("label_"):]: self.group[k] for k in self.group.array_keys() if k.startswith("label_")}

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
            "labels": {name: arr[i] for name, arr in self.labels.items()},
        }
        for g in meta["band_groups"]:
            out[g["key"]] = self.group[g["key"]][i, :t]
        return out


def _doy(iso_dates) -> np.ndarray:
    return np.array([day_of_year(parse_iso_datetime(d)) for d in iso_dates], dtype=np.int16)
