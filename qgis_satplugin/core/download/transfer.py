"""Binary HTTP downloads on top of the search's retrying client.

The retry policy (429 + ``Retry-After``, 5xx and dropped connections with jittered
exponential backoff, cancelable waits, bounded attempts) is ``JsonClient.send``'s; this
module adds what binary bodies need on top:

* the body is streamed in chunks, so a cancel is seen between chunks, not after a
  100 MB response, and it is refused past the size the request can legitimately get
  (the range asked for, the image asked for, or the client's ``max_body_bytes``);
* the body must be exactly ``Content-Length`` bytes (urllib3 1.26 silently accepts a
  connection closed early) and, for range requests, the range asked for; anything else
  is a :class:`BadAnswer`, retried like a dropped connection;
* bytes and requests are counted for the run's report;
* one run deadline (:data:`DOWNLOAD_RUN_DEADLINE_S` unless ``run_deadline`` is among the
  options) is shared by every thread's client, so retries and slow servers together
  cannot hold a run past it.

``requests.Session`` is not thread-safe, so each worker thread gets its own client.
"""

from __future__ import annotations

import re
import threading

from ..feedback import Feedback
from ..http.client import BadAnswer, Deadline, JsonClient
from ..http.limits import DOWNLOAD_RUN_DEADLINE_S

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

    def __init__(self, options: dict | None, feedback: Feedback):
        self.options = dict(options or {})
        self.run_deadline = Deadline.of(self.options.pop("run_deadline", DOWNLOAD_RUN_DEADLINE_S))
        self.feedback = feedback
        self.stats = TransferStats()
        self._local = threading.local()

    def client(self, **overrides) -> JsonClient:
        key = tuple(sorted(overrides.items()))
        cache = self._local.__dict__.setdefault("clients", {})
        if key not in cache:
            # The caller's options (a test's sleep, attempts, timeout) win over a backend's defaults.
            cache[key] = JsonClient(
                **{"feedback": self.feedback, **overrides, **self.options},
                run_deadline=self.run_deadline,
            )
        return cache[key]

    def check_canceled(self) -> None:
        self.feedback.check_canceled()


def read_body(response, client: JsonClient, where: str, stats: TransferStats | None = None, limit: int | None = None) -> bytes:
    """The whole body (at most ``limit`` bytes), checking the cancel flag per chunk and the length at the end."""
    expected = response.headers.get("Content-Length")
    data = client.read_limited(response, where, client.max_body_bytes if limit is None else limit, "file")
    if stats is not None:
        stats.add(len(data))
    if expected is not None and expected.isdigit() and len(data) != int(expected):
        raise BadAnswer(f"the body ended after {len(data)} of {expected} bytes")
    return data


def fetch_range(pool: ClientPool, url: str, start: int, length: int) -> tuple[int, bytes, int | None]:
    """``(offset, data, file size)`` for bytes ``start .. start+length-1`` of ``url``.

    The data are that range (shorter at the end of the file), or the whole file from
    offset 0 when the server ignores ``Range`` and answers 200.
    """
    end = start + length - 1
    client = pool.client()

    def read(response, where):
        # A range answer holds the range; a server that ignores ranges sends the whole file.
        limit = length if response.status_code == 206 else None
        body = read_body(response, client, where, pool.stats, limit)
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
    return client.send("GET", url, read=read, headers=headers)
