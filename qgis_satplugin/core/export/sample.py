"""One exported sample, and the dataset-wide facts every format writer needs.

Writers take these plain objects, so a format is a small module that only decides the
file layout; the reading, filtering and splitting never depend on the format.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..image_series.dates import day_of_year, iso_z


@dataclass
class DatasetMeta:
    crs_wkt: str
    grid_transform: tuple  # 6 floats (a, b, c, d, e, f) of the image grid
    bands: list
    groups: list  # BandGroup
    band_resolution: str
    patch_size: int
    label_scale: int
    labels: dict  # name -> {"dtype", "nodata", ...}
    dates: list  # every date of the series (datetime), in time order
    date_scales: np.ndarray  # [T, C]
    date_offsets: np.ndarray
    nodata: float | None
    dtype: str
    n_samples: int
    max_dates: int


@dataclass
class Sample:
    index: int  # position in the plan (row-major), stable across formats
    sample_id: str
    split: str
    row: int
    col: int
    date_index: np.ndarray  # indices into DatasetMeta.dates
    dates: list  # datetime, in time order
    images: dict  # group key -> [T, C_group, h, w]
    labels: dict  # label name -> [k*P, k*P]
    transform: tuple  # 6 floats: the patch's own affine transform at image resolution
    scale: np.ndarray  # [T, C] in DatasetMeta.bands order
    offset: np.ndarray
    cloud: np.ndarray  # [T] % cloud or no data

    @property
    def iso_dates(self) -> list:
        return [iso_z(d) for d in self.dates]

    @property
    def doy(self) -> np.ndarray:
        return np.array([day_of_year(d) for d in self.dates], dtype=np.int16)

    @property
    def years(self) -> np.ndarray:
        return np.array([d.year for d in self.dates], dtype=np.int32)


def sample_id(row: int, col: int) -> str:
    """``r00064_c00128``: the patch's top-left pixel, so the id says where it is."""
    return f"r{row:05d}_c{col:05d}"


def patch_transform(grid_transform: tuple, row: int, col: int) -> tuple:
    a, b, c, d, e, f = grid_transform
    return (a, b, c + col * a, d, e, f + row * e)


def group_transform(transform: tuple, factor: int) -> tuple:
    a, b, c, d, e, f = transform
    return (a * factor, b, c, d, e * factor, f)
