"""Read an exported dataset back, in any of the four formats, as plain numpy.

Training code, tests and the torch ``Dataset`` (:mod:`torch_dataset`) all read through
this class, so every format yields the same dict for the same sample:

``sample_id``, ``split``, ``bands``, ``dates`` (ISO text), ``doy`` [T], ``year`` [T],
``images`` [T, C, P, P] (or ``images_10m``/``images_20m``/``images_60m``), ``labels``
({name: array at label resolution}), ``scale``/``offset`` [T, C], ``cloud`` [T],
``transform`` (6 floats), ``crs`` (WKT).

It needs numpy only (plus rasterio for geotiff and zarr for zarr, imported on use).
"""
from __future__ import annotations

import json
from pathlib import Path

from ..errors import SatPluginError
from .dataset_card import FORMAT, JSON_NAME
from .format_deepsatdata import read_deepsatdata
from .format_geotiff import read_geotiff
from .format_npz import read_npz
from .format_zarr import ZarrReader
from .samples_table import read_samples_csv
from .splits import SPLITS

_READERS = {"npz": read_npz, "geotiff": read_geotiff, "deepsatdata": read_deepsatdata}


class ExportedDataset:
    """``len()`` and ``[i]`` over the samples of one split (or all), in ``samples.csv`` order."""

    def __init__(self, folder, split: str | None = None):
        self.folder = Path(folder)
        try:
            self.meta = json.loads((self.folder / JSON_NAME).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SatPluginError(f"{self.folder} is not an exported dataset (no readable {JSON_NAME}).") from exc
        if self.meta.get("format") != FORMAT:
            raise SatPluginError(f"{self.folder / JSON_NAME} is not a {FORMAT} card.")
        if split is not None and split not in SPLITS:
            raise SatPluginError(f"Unknown split {split!r}; use one of {', '.join(SPLITS)}.")
        rows = read_samples_csv(self.folder)
        self.rows = [r for r in rows if split is None or r["split"] == split]
        self.split = split
        self.format = self.meta["sample_format"]
        self._zarr = None

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def bands(self) -> list:
        return list(self.meta["bands"])

    @property
    def normalisation(self) -> dict:
        """Per band mean and std of reflectance on the train split."""
        return self.meta["normalisation"]["bands"]

    def __getitem__(self, i: int) -> dict:
        if not -len(self.rows) <= i < len(self.rows):
            raise IndexError(i)
        row = self.rows[i]
        if self.format == "zarr":
            if self._zarr is None:
                self._zarr = ZarrReader(self.folder)
            return self._zarr.read(self.meta, row)
        return _READERS[self.format](self.folder, self.meta, row)
