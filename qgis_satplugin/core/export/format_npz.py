"""``npz``: one self-describing ``{split}/{sample_id}.npz`` per sample.

Uncompressed (``np.savez``): it loads with numpy alone and writes about as fast as
``np.save`` of the same bytes; compressed npz is ~100x slower to write on this kind of
data (peers.md). Its zip members carry zipfile's fixed 1980 date, not the clock's, so
the same export gives the same bytes. Keys:

* ``images`` [T, C, H, W] in the source dtype (uint16 DN); with native band resolution
  one array per group instead: ``images_10m``, ``images_20m``, ``images_60m``;
* ``bands`` (all band names) and, per image array, ``bands_...`` (``bands_20m``);
* ``dates`` (ISO 8601 UTC text), ``doy`` (int16), ``year`` (int32), ``date_index``
  (into the dataset's date list), ``cloud`` (% cloud or no data per date);
* ``label_class``, ``label_id``, ``label_coverage``, ``label_conflict``,
  ``label_distance``: each requested label raster at label resolution;
* ``crs`` (WKT: GDAL's WKT1 for an EPSG CRS, see ``PixelGrid.crs_wkt``), ``transform``
  (6 floats of the patch, image resolution), ``pixel`` (row, col of its top-left pixel),
  ``scale`` and ``offset`` [T, C]: reflectance = scale x DN + offset, per date and band;
* ``sample_id``, ``split``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import replaced
from .sample import Sample
from .sample_writer import SampleWriter

NAME = "npz"


def bands_key(images_key: str) -> str:
    return "bands" + images_key[len("images"):]


class NpzWriter(SampleWriter):
    def write(self, s: Sample) -> str:
        folder = self.root / s.split
        folder.mkdir(exist_ok=True)
        arrays = {"bands": np.array(self.meta.bands)}
        for group in self.meta.groups:
            arrays[group.key] = s.images[group.key]
            arrays[bands_key(group.key)] = np.array(group.bands)
        arrays.update(
            dates=np.array(s.iso_dates), doy=s.doy, year=s.years, date_index=np.asarray(s.date_index, dtype=np.int32),
            cloud=np.asarray(s.cloud, dtype=np.float32), crs=np.array(self.meta.crs_wkt),
            transform=np.asarray(s.transform, dtype=np.float64), pixel=np.array([s.row, s.col], dtype=np.int64),
            scale=s.scale, offset=s.offset, sample_id=np.array(s.sample_id), split=np.array(s.split),
        )
        for name, values in s.labels.items():
            arrays[f"label_{name}"] = values
        rel = f"{s.split}/{s.sample_id}.npz"
        with replaced(self.root / rel) as temp, open(temp, "wb") as f:
            np.savez(f, **arrays)
        return rel


def read_npz(root: Path, meta: dict, row: dict) -> dict:
    with np.load(Path(root) / row["path"], allow_pickle=False) as z:
        out = {
            "sample_id": str(z["sample_id"]),
            "split": str(z["split"]),
            "bands": [str(b) for b in z["bands"]],
            "dates": [str(d) for d in z["dates"]],
            "doy": z["doy"],
            "year": z["year"],
            "date_index": z["date_index"],
            "cloud": z["cloud"],
            "crs": str(z["crs"]),
            "transform": tuple(float(v) for v in z["transform"]),
            "scale": z["scale"],
            "offset": z["offset"],
            "labels": {k[len("label_"):]: z[k] for k in z.files if k.startswith("label_")},
        }
        for group in meta["band_groups"]:
            out[group["key"]] = z[group["key"]]
    return out
