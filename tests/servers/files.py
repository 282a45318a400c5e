"""A static file server with HTTP range requests, enough for GDAL's /vsicurl to read COGs."""

from __future__ import annotations

import re
from pathlib import Path

from .base import LoopbackServer, Request

_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeFileServer(LoopbackServer):
    """``cache=True`` keeps each file's bytes after the first read (benchmarks: no disk in the way)."""

    def __init__(self, root, *, cache: bool = False):
        super().__init__()
        self.root = Path(root).resolve()
        self.cache = {} if cache else None

    def handle(self, req: Request):
        if req.method not in ("GET", "HEAD"):
            return 405, {}, b""
        path = (self.root / req.path.lstrip("/")).resolve()
        if self.root not in path.parents or not path.is_file():
            return 404, {}, b""
        if self.cache is None:
            data = path.read_bytes()
        else:
            data = self.cache.get(path) or self.cache.setdefault(path, path.read_bytes())
        size = len(data)
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        m = _RANGE.match(req.headers.get("range", ""))
        if not m:
            return 200, {**headers, "Content-Length": str(size)}, data
        first = int(m.group(1)) if m.group(1) else max(0, size - int(m.group(2)))
        last = int(m.group(2)) if m.group(1) and m.group(2) else size - 1
        if first >= size:
            return 416, {"Content-Range": f"bytes */{size}"}, b""
        last = min(last, size - 1)
        chunk = data[first : last + 1]
        headers.update({"Content-Range": f"bytes {first}-{last}/{size}", "Content-Length": str(len(chunk))})
        return 206, headers, chunk
