"""Binary HTTP downloads on top of the search's retrying client.

The retry policy (429 + ``Retry-After``, 5xx and dropped connections with jittered
exponential backoff, cancelable waits, bounded attempts) is ``JsonClient.send``'s; this
module adds what binary bodies need on top:

* the body is streamed in chunks, so a cancel is seen between chunks, not after a
  100 MB response;
* the body must be exactly ``Content-Length`` bytes (urllib3 1.26 silently accepts a
  connection closed early) and, for range requests, the range asked for; anything else
  is a :class:`BadAnswer`, retried like a dropped connection;
* bytes and requests are counted for the run's report.

``requests.Session`` is not thread-safe, so each worker thread gets its own client.
"""

from __future__ import annotations

import re
import threading
from typing import Callable

from ..errors import Canceled
from ..search.http import BadAnswer, JsonClient

CHUNK_BYTES = 256 * 1024
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


class TransferStats:
    """Thread-safe counters of what went over the wire."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests = 0
        self.bytes = 0

    def add(self, n_bytes: int) -> None:
        with self._lock:
            self.requests += 1
            self.bytes += n_bytes


class ClientPool:
    """One :class:`JsonClient` per thread, all with the same options and cancel flag."""

    def __init__(self, options: dict | None, is_canceled: Callable[[], bool], log: Callable[[str], None] | None):
        self.options = dict(options or {})
        self.is_canceled = is_canceled
        self.log = log
        self.stats = TransferStats()
        self._local = threading.local()

    def client(self, **overrides) -> JsonClient:
        key = tuple(sorted(overrides.items()))
        cache = self._local.__dict__.setdefault("clients", {})
        if key not in cache:
            # The caller's options (a test's sleep, attempts, timeout) win over a backend's defaults.
            cache[key] = JsonClient(**{"is_canceled": self.is_canceled, "log": self.log, **overrides, **self.options})
        return cache[key]

    def check_canceled(self) -> None:
        if self.is_canceled():
            raise Canceled()


def read_body(response, is_canceled: Callable[[], bool], stats: TransferStats | None = None) -> bytes:
    """The whole body, checking the cancel flag per chunk and the length at the end."""
    expected = response.headers.get("Content-Length")
    buf = bytearray()
    for chunk in response.iter_content(CHUNK_BYTES):
        if is_canceled():
            raise Canceled()
        buf += chunk
    if stats is not None:
        stats.add(len(buf))
    if expected is not None and expected.isdigit() and len(buf) != int(expected):
        raise BadAnswer(f"the body ended after {len(buf)} of {expected} bytes")
    return bytes(buf)


def fetch_range(pool: ClientPool, url: str, start: int, length: int) -> tuple[int, bytes, int | None]:
    """``(offset, data, file size)`` for bytes ``start .. start+length-1`` of ``url``.

    The data are that range (shorter at the end of the file), or the whole file from
    offset 0 when the server ignores ``Range`` and answers 200.
    """
    end = start + length - 1

    def read(response, where):
        body = read_body(response, pool.is_canceled, pool.stats)
        if response.status_code == 200:  # the server ignored the range and sent everything
            return 0, body, len(body)
        m = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
        if response.status_code != 206 or not m:
            raise BadAnswer(f"HTTP {response.status_code} without a usable Content-Range")
        first, last, total = int(m.group(1)), int(m.group(2)), m.group(3)
        size = int(total) if total.isdigit() else None
        if first != start or len(body) != last - first + 1:
            raise BadAnswer(f"asked for bytes {start}-{end}, got {first}-{last} ({len(body)} bytes)")
        if last < end and (size is None or last != size - 1):
            raise BadAnswer(f"asked for bytes {start}-{end}, got a short range ending at {last}")
        return start, body, size

    headers = {"Range": f"bytes={start}-{end}", "Accept-Encoding": "identity"}
    return pool.client().send("GET", url, read=read, headers=headers, stream=True)
