"""A remote raster as a Python file for GDAL: HTTP range reads with our retries.

GDAL's own ``/vsicurl`` reads COGs well, but its retries cannot be canceled, ignore
``Retry-After``, and cannot be checked by a test. rasterio (1.4+) lets a Python
file object stand in for the file instead (``rasterio.open(..., opener=...)``), so
every byte goes through :func:`transfer.fetch_range`: the same retry, cancel and
length checks as every other download of the plugin.

GDAL reads a COG as a few small header reads, then one read per tile it needs. The
first read fetches :data:`HEADER_BYTES` at once (a COG keeps its directory there);
later reads fetch what GDAL asks for, at least :data:`MIN_FETCH_BYTES`; everything
fetched is kept for the life of the read, so nothing is downloaded twice.

A failure inside ``read`` cannot cross GDAL as an exception, so the error is kept on
the :class:`RemoteBlob` and GDAL sees an empty read; the caller re-raises it.
"""

from __future__ import annotations

import bisect
import io
import os
import posixpath
import threading
import uuid
from urllib.parse import urlsplit

from .transfer import ClientPool, fetch_range

HEADER_BYTES = 16 * 1024
MIN_FETCH_BYTES = 16 * 1024


class RemoteBlob:
    """The bytes of one remote file, fetched on demand and kept (thread-safe)."""

    def __init__(self, url: str, pool: ClientPool, sign=None):
        self.url = url
        self.pool = pool
        self.sign = sign  # url -> the URL to request (a signed one); called per request, so tokens renew
        self.size: int | None = None
        self.error: BaseException | None = None
        self._starts: list[int] = []
        self._chunks: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def ensure_size(self) -> int:
        with self._lock:
            if self.size is None:
                self._fetch(0, HEADER_BYTES)
            return self.size

    def read_at(self, offset: int, n: int) -> bytes:
        with self._lock:
            if self.size is None:
                self._fetch(0, HEADER_BYTES)
            n = max(0, min(n, self.size - offset))
            if n == 0:
                return b""
            hit = self._cached(offset, n)
            if hit is not None:
                return hit
            self._fetch(offset, max(n, MIN_FETCH_BYTES))
            return self._cached(offset, n)

    def _cached(self, offset: int, n: int) -> bytes | None:
        i = bisect.bisect_right(self._starts, offset) - 1
        if i < 0:
            return None
        start = self._starts[i]
        chunk = self._chunks[start]
        if offset + n <= start + len(chunk):
            return chunk[offset - start : offset - start + n]
        return None

    def _fetch(self, offset: int, n: int) -> None:
        if self.size is not None:
            n = min(n, self.size - offset)
        url = self.sign(self.url) if self.sign is not None else self.url
        start, body, size = fetch_range(self.pool, url, offset, n)
        if self.size is None:
            self.size = size if size is not None else start + len(body)
        if start not in self._chunks:
            bisect.insort(self._starts, start)
        if len(body) >= len(self._chunks.get(start, b"")):
            self._chunks[start] = body


class RemoteFile(io.RawIOBase):
    """A seekable read-only cursor over a :class:`RemoteBlob`."""

    def __init__(self, blob: RemoteBlob):
        super().__init__()
        self.blob = blob
        self.pos = 0

    def readable(self):
        return True

    def seekable(self):
        return True

    def seek(self, offset, whence=os.SEEK_SET):
        if whence == os.SEEK_SET:
            self.pos = offset
        elif whence == os.SEEK_CUR:
            self.pos += offset
        else:
            self.pos = self._size() + offset
        return self.pos

    def tell(self):
        return self.pos

    def _size(self) -> int:
        try:
            return self.blob.ensure_size()
        except BaseException as exc:  # noqa: BLE001 - GDAL must not see a Python exception
            self.blob.error = self.blob.error or exc
            return 0

    def read(self, n=-1):
        if self.blob.error is not None:
            return b""
        try:
            if n is None or n < 0:
                n = self.blob.ensure_size() - self.pos
            data = self.blob.read_at(self.pos, n)
        except BaseException as exc:  # noqa: BLE001 - kept and re-raised by the caller
            self.blob.error = exc
            return b""
        self.pos += len(data)
        return data

    def readinto(self, buffer):
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def remote_opener(url: str, pool: ClientPool, sign=None):
    """(path to give rasterio, opener, blob) for one remote file; ``sign`` as for :class:`RemoteBlob`.

    The path is unique per call: rasterio registers openers per folder, and two bands
    of one product live in the same folder.
    """
    blob = RemoteBlob(url, pool, sign)
    name = posixpath.basename(urlsplit(url).path) or "data.tif"
    fake = f"/satplugin-remote/{uuid.uuid4().hex}/{name}"

    def opener(path, mode="rb", **_):
        if path != fake or "w" in mode:
            raise FileNotFoundError(path)
        return RemoteFile(blob)

    return fake, opener, blob
