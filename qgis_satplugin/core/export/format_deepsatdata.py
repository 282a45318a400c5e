"""``deepsatdata``: pickles that DeepSatData-based training code loads unchanged.

What is known of DeepSatData's time-series pickles (peers.md, and reading its scripts):
one file per window and year, named ``{N}_{W}_{year}.pickle`` where N and W are the
window's top (northing) and left (easting) edges in whole metres of the label CRS; a dict
with one array per band name (``B01`` .. ``B12``, ``B8A``; [T, h, w] at the band's native
size), ``doy`` [T] (sorted), ``year``, and the labels under ``labels`` (class), ``ids``,
``masks`` (conflict), ``ratios`` (coverage) and ``distances``.

Choices and guesses, documented in the dataset card too:

* one file per patch, named with the year of its *first* date; a season across New Year
  stays in one file (DeepSatData would split it by calendar year), so ``year`` is an
  int32 array [T] (one per date) instead of DeepSatData's single int32 value;
* ``doy`` is int64 [T]; band arrays keep the source dtype (uint16 DN, no scaling);
* labels keep the rasterize step's dtypes (DeepSatData read its CSV labels as float32)
  and are only present when that label raster was given;
* N and W are rounded to the metre; should two patches round to the same name (pixels
  under 1 m), the later one gets ``_2``, ``_3``... before ``.pickle``.

Acquisition times, scale/offset and the patch transform are not in the pickles; they are
in ``samples.csv`` and ``dataset.json``.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from ..atomic import replaced
from ..errors import SatPluginError
from ..image_series.dates import day_of_year, parse_iso_datetime
from .label_rasters import DEEPSATDATA_KEYS
from .sample import DatasetMeta, Sample
from .sample_writer import SampleWriter

NAME = "deepsatdata"


class DeepSatDataWriter(SampleWriter):
    def __init__(self, root: Path, meta: DatasetMeta):
        super().__init__(root, meta)
        self.used: set = set()  # per chunk: names cannot meet across chunks (distinct origins)

    def write(self, s: Sample) -> str:
        _, _, x0, _, _, y0 = s.transform
        base = f"{int(round(y0))}_{int(round(x0))}_{s.dates[0].year}"
        name, n = base, 1
        while (s.split, name) in self.used:
            n += 1
            name = f"{base}_{n}"
        self.used.add((s.split, name))
        content = {}
        for g in self.meta.groups:
            arr = s.images[g.key]
            for j, band in enumerate(g.bands):
                content[band] = np.ascontiguousarray(arr[:, j])
        content["doy"] = s.doy.astype(np.int64)
        content["year"] = s.years.astype(np.int32)
        for label, values in s.labels.items():
            content[DEEPSATDATA_KEYS[label]] = values
        folder = self.root / s.split
        folder.mkdir(exist_ok=True)
        rel = f"{s.split}/{name}.pickle"
        with replaced(self.root / rel) as temp, open(temp, "wb") as f:
            pickle.dump(content, f, protocol=pickle.HIGHEST_PROTOCOL)
        return rel


def read_deepsatdata(root: Path, meta: dict, row: dict) -> dict:
    with open(Path(root) / row["path"], "rb") as f:
        content = pickle.load(f)
    idx = np.asarray(row["date_index"], dtype=np.int64)
    dates = row["dates"]
    a, b, c0, d, e, f0 = meta["grid"]["transform"]
    out = {
        "sample_id": row["sample_id"],
        "split": row["split"],
        "bands": list(meta["bands"]),
        "dates": dates,
        "doy": content["doy"].astype(np.int16),
        "year": content["year"],
        "date_index": idx,
        "cloud": np.asarray(row["cloud"], dtype=np.float32),
        "crs": meta["grid"]["crs_wkt"],
        "transform": (a, b, c0 + row["col"] * a, d, e, f0 + row["row"] * e),
        "scale": np.asarray(meta["date_scales"])[idx],
        "offset": np.asarray(meta["date_offsets"])[idx],
        "labels": {name: content[key] for name, key in DEEPSATDATA_KEYS.items() if key in content},
    }
    for g in meta["band_groups"]:
        out[g["key"]] = np.stack([content[band] for band in g["bands"]], axis=1)
    if [day_of_year(parse_iso_datetime(x)) for x in dates] != out["doy"].tolist():
        raise SatPluginError(f"{row['path']} does not match samples.csv (days of year differ); the dataset was modified.")
    return out

