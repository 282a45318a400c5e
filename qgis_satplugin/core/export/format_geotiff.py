"""``geotiff``: per sample a folder of georeferenced chips that any GIS opens.

``{split}/{sample_id}/`` holds one chip per date, ``{YYYYMMDDTHHMMSS}.tif`` (with native
band resolution one per group: ``..._10m.tif``, ``..._20m.tif``, ``..._60m.tif``), each
with band descriptions, per-band scale/offset (reflectance = scale x DN + offset), the
image no-data value and the tags ``ACQUISITION_DATETIME``, ``CLOUD_PERCENT`` and ``DATE_INDEX`` (into the card's
dates); and one
chip per label, ``label_class.tif`` etc., at label resolution. Chips are uncompressed and
untiled: they are small, and this keeps writing cheap.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import replaced
from ..image_series.dates import DATE_TAG, day_of_year, parse_iso_datetime
from .sample import DatasetMeta, Sample, group_transform
from .sample_writer import SampleWriter

NAME = "geotiff"


def _suffix(key: str) -> str:
    return key[len("images"):]  # "" or "_20m"


class GeoTiffWriter(SampleWriter):
    def __init__(self, root: Path, meta: DatasetMeta):
        from rasterio.crs import CRS

        super().__init__(root, meta)
        self.crs = CRS.from_wkt(meta.crs_wkt)

    def _write(self, path, data, transform, dtype, nodata, descriptions=None, tags=None, scales=None, offsets=None):
        import rasterio
        from affine import Affine

        count = data.shape[0]
        with replaced(path) as temp, rasterio.open(
                temp, "w", driver="GTiff", width=data.shape[2], height=data.shape[1], count=count, dtype=dtype,
                crs=self.crs, transform=Affine(*transform), nodata=nodata) as ds:
            ds.write(data)
            if descriptions:
                for i, text in enumerate(descriptions, start=1):
                    ds.set_band_description(i, text)
            if scales is not None:
                ds.scales = tuple(float(v) for v in scales)
                ds.offsets = tuple(float(v) for v in offsets)
            if tags:
                ds.update_tags(**tags)

    def write(self, s: Sample) -> str:
        rel = f"{s.split}/{s.sample_id}"
        folder = self.root / rel
        folder.mkdir(parents=True, exist_ok=True)  # a rerun of a task whose worker died finds it
        m = self.meta
        for t, when in enumerate(s.dates):
            stamp = when.strftime("%Y%m%dT%H%M%S")
            tags = {DATE_TAG: s.iso_dates[t], "CLOUD_PERCENT": f"{float(s.cloud[t]):.9g}", "SAMPLE_ID": s.sample_id,
                    "DATE_INDEX": str(int(s.date_index[t]))}
            for g in m.groups:
                idx = list(g.band_index)
                self._write(folder / f"{stamp}{_suffix(g.key)}.tif", s.images[g.key][t], group_transform(s.transform, g.factor),
                            m.dtype, m.nodata, g.bands, tags, s.scale[t, idx], s.offset[t, idx])
        k = m.label_scale
        for name, values in s.labels.items():
            spec = m.labels[name]
            self._write(folder / f"label_{name}.tif", values[None], group_transform(s.transform, 1.0 / k),
                        values.dtype, spec["nodata"], [name])
        return rel


def read_geotiff(root: Path, meta: dict, row: dict) -> dict:
    import rasterio

    folder = Path(root) / row["path"]
    groups = meta["band_groups"]
    stamps = sorted({p.name[:15] for p in folder.glob("*.tif") if not p.name.startswith("label_")})
    images = {g["key"]: [] for g in groups}
    dates, cloud, scale, offset, date_index = [], [], [], [], []
    transform = crs = None
    n_bands = len(meta["bands"])
    for stamp in stamps:
        sc, of = np.zeros(n_bands), np.zeros(n_bands)
        for g in groups:
            band_pos = [meta["bands"].index(b) for b in g["bands"]]
            with rasterio.open(folder / f"{stamp}{_suffix(g['key'])}.tif") as ds:
                images[g["key"]].append(ds.read())
                sc[band_pos], of[band_pos] = ds.scales, ds.offsets
                if g is groups[0]:
                    tags = ds.tags()
                    a, b, c, d, e, f = tuple(ds.transform)[:6]
                    factor = g["factor"]
                    transform = (a / factor, b, c, d, e / factor, f)
                    crs = ds.crs.to_wkt()
        dates.append(tags[DATE_TAG])
        cloud.append(float(tags["CLOUD_PERCENT"]))
        date_index.append(int(tags["DATE_INDEX"]))
        scale.append(sc)
        offset.append(of)
    out = {
        "sample_id": folder.name,
        "split": folder.parent.name,
        "bands": list(meta["bands"]),
        "dates": dates,
        "doy": np.array([day_of_year(parse_iso_datetime(d)) for d in dates], dtype=np.int16),
        "year": np.array([int(d[:4]) for d in dates], dtype=np.int32),
        "date_index": np.array(date_index, dtype=np.int32),
        "cloud": np.array(cloud, dtype=np.float32),
        "crs": crs,
        "transform": transform,
        "scale": np.array(scale),
        "offset": np.array(offset),
        "labels": {},
    }
    for key, arrays in images.items():
        out[key] = np.stack(arrays)
    for path in sorted(folder.glob("label_*.tif")):
        with rasterio.open(path) as ds:
            out["labels"][path.stem[len("label_"):]] = ds.read(1)
    return out
