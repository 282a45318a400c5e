"""Emulator of the Sentinel Hub Process API (``POST /api/v1/process``), on top of the token/Catalog one.

It reads a real request: the bearer token, ``input.bounds`` (bbox and CRS URL),
``input.data[0]`` (collection type, ``dataFilter.timeRange``, ``processing`` options),
``output`` (width, height, an ``image/tiff`` response) and the evalscript (the input
band list, ``units``, ``sampleType``, and the order of the bands in its ``return``).
It answers with a real GeoTIFF cut from the synthetic world of :mod:`s2_world`,
resampled onto the requested box with the requested method, 0 where ``dataMask`` is 0.

Acquisitions are (datetime, baseline) pairs; a time range must contain exactly one.
With ``harmonizeValues`` false, baseline 04.00+ data carry the +1000 offset; with true
(the service's default) they do not. ``max_px`` is the per-request size limit (2500 on
the real service; tests lower it to force splitting).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from rasterio.enums import Resampling
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds
from rasterio.warp import reproject

from . import s2_world
from .base import Request, json_answer
from .sentinelhub_api import SentinelHubServer

PROCESS_PATH = "/api/v1/process"
_INPUT_BANDS = re.compile(r"bands\s*:\s*\[([^\]]*)\]")
_SAMPLE_TYPE = re.compile(r'sampleType\s*:\s*"(\w+)"')
_UNITS = re.compile(r'units\s*:\s*"(\w+)"')
_RETURNS = re.compile(r"return\s*\[([^\]]*)\]")


@dataclass
class Acquisition:
    datetime: datetime
    baseline: str = "05.09"
    collection: str = "sentinel-2-l2a"


@dataclass
class ParsedRequest:
    bbox: list
    crs: str
    width: int
    height: int
    bands: list
    sample_type: str
    units: str
    time_from: datetime
    time_to: datetime
    collection: str
    harmonize_values: bool
    upsampling: str
    downsampling: str
    accept: str


def _error(status, message):
    return json_answer(status, {"error": {"status": status, "reason": "Bad Request", "message": message, "code": "COMMON_BAD_PAYLOAD"}})


def _time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class ProcessApiServer(SentinelHubServer):
    def __init__(self, acquisitions=(), *, max_px: int = 2500, **kw):
        super().__init__(**kw)
        self.acquisitions = list(acquisitions)
        self.max_px = max_px
        self.delay_s = 0.0  # added to every process request (a busy service)
        self.parsed: list[ParsedRequest] = []

    def handle(self, req: Request):
        if req.path == PROCESS_PATH and req.method == "POST":
            return self._process(req)
        return super().handle(req)

    def _process(self, req: Request):
        if self.delay_s:
            time.sleep(self.delay_s)
        auth = req.headers.get("authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return json_answer(401, {"error": {"status": 401, "reason": "Unauthorized", "message": "Invalid token"}})
        body = req.json or {}
        try:
            parsed = self._parse(body, req.headers.get("accept", ""))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            return _error(400, f"Invalid request: {exc!r}")
        if parsed.width > self.max_px or parsed.height > self.max_px:
            return _error(400, f"The image width and height must not exceed {self.max_px} pixels.")
        if parsed.units != "DN" or "dataMask" not in parsed.bands:
            return _error(400, "This emulator serves DN units with dataMask only.")
        self.parsed.append(parsed)
        hits = [a for a in self.acquisitions if parsed.time_from <= a.datetime <= parsed.time_to and a.collection == parsed.collection]
        if len(hits) > 1:
            return _error(400, "The emulator expects one acquisition per time range.")
        return 200, {"Content-Type": "image/tiff"}, self._render(parsed, hits[0] if hits else None, body["evalscript"])

    def _parse(self, body: dict, accept: str) -> ParsedRequest:
        bounds = body["input"]["bounds"]
        data = body["input"]["data"][0]
        processing = data.get("processing") or {}
        output = body["output"]
        fmt = output["responses"][0]["format"]["type"]
        if fmt != "image/tiff":
            raise ValueError(f"format {fmt}")
        script = body["evalscript"]
        if not script.startswith("//VERSION=3"):
            raise ValueError("evalscript version")
        bands = [b.strip().strip('"\'') for b in _INPUT_BANDS.search(script).group(1).split(",")]
        time_range = data["dataFilter"]["timeRange"]
        return ParsedRequest(
            bbox=[float(v) for v in bounds["bbox"]],
            crs=bounds["properties"]["crs"],
            width=int(output["width"]),
            height=int(output["height"]),
            bands=bands,
            sample_type=_SAMPLE_TYPE.search(script).group(1),
            units=_UNITS.search(script).group(1),
            time_from=_time(time_range["from"]),
            time_to=_time(time_range["to"]),
            collection=data["type"],
            harmonize_values=bool(processing.get("harmonizeValues", True)),
            upsampling=processing.get("upsampling", "NEAREST"),
            downsampling=processing.get("downsampling", "NEAREST"),
            accept=accept,
        )

    def _render(self, p: ParsedRequest, acq: Acquisition | None, script: str) -> bytes:
        epsg = int(p.crs.rsplit("/", 1)[-1])
        dst_transform = from_bounds(*p.bbox, p.width, p.height)
        returns = _RETURNS.findall(script)
        returned = [name.split(".")[-1].strip() for name in returns[-1].split(",")]
        empty = [int(v) for v in returns[0].split(",")] if len(returns) > 1 else [0] * len(returned)
        dtype = {"UINT16": np.uint16, "UINT8": np.uint8}[p.sample_type]
        out = np.array(empty, dtype=dtype)[:, None, None] * np.ones((1, p.height, p.width), dtype=dtype)
        if acq is not None:
            has_offset = acq.baseline >= "04.00" and not p.harmonize_values
            mask = self._resampled("dataMask", dst_transform, epsg, p, Resampling.nearest)
            for i, band in enumerate(returned):
                offset = s2_world.OFFSET_DN if has_offset and band.startswith("B") else 0
                method = self._method(p, band)
                data = self._resampled(band, dst_transform, epsg, p, method, offset)
                out[i] = np.where(mask > 0, data, empty[i]).astype(dtype)
        with MemoryFile() as mem:
            with mem.open(driver="GTiff", width=p.width, height=p.height, count=len(returned), dtype=out.dtype.name,
                          crs=f"EPSG:{epsg}", transform=dst_transform, compress="deflate") as ds:
                ds.write(out)
            return mem.read()

    @staticmethod
    def _method(p: ParsedRequest, band: str) -> Resampling:
        target = abs(p.bbox[2] - p.bbox[0]) / p.width
        name = p.upsampling if target < s2_world.native_m(band) else p.downsampling
        return {"NEAREST": Resampling.nearest, "BILINEAR": Resampling.bilinear, "BICUBIC": Resampling.cubic}[name]

    @staticmethod
    def _resampled(band, dst_transform, epsg, p, method, offset=0):
        if band == "CLM":
            src, transform = s2_world.native_raster("CLM")
        elif band == "dataMask":
            src, transform = s2_world.native_raster("dataMask")
        else:
            src, transform = s2_world.native_raster(band, offset)
        dst = np.zeros((p.height, p.width), dtype=src.dtype)
        reproject(src, dst, src_transform=transform, src_crs=s2_world.CRS, src_nodata=None if band == "CLM" else 0,
                  dst_transform=dst_transform, dst_crs=f"EPSG:{epsg}", dst_nodata=0, resampling=method)
        return dst
