"""Servers that misbehave on purpose: a trickling one, one that must never be reached, huge answers.

* :class:`TrickleServer` answers every request with a fixed HTTP response, sent a few
  bytes at a time with a pause between them (a server that keeps a socket-read timeout
  from ever tripping). It is bounded: each connection stops after ``max_s`` seconds,
  and :meth:`stop` ends everything within a fraction of a second.
* :class:`CatchServer` records whatever reaches it and answers like a token endpoint and
  a catalogue would, so a leak shows up as a request in its log, never as an error.
* :func:`endless_json` streams a large body without building it; :func:`zip_bomb` writes
  a small zip whose one member inflates to gigabytes, in milliseconds.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
import zlib
from pathlib import Path

from .base import LoopbackServer, Request, _bypass_proxies_for_loopback, json_answer


class CatchServer(LoopbackServer):
    """Answers 200 to everything: a token to token requests, an empty page to searches."""

    def handle(self, req: Request):
        if "token" in req.path:
            return json_answer(200, {"access_token": "stolen-token", "expires_in": 3600, "token_type": "Bearer"})
        return json_answer(200, {"type": "FeatureCollection", "features": [], "links": [], "context": {}})

    def secrets_seen(self, *values) -> list:
        """Which of ``values`` appear anywhere in the requests received (bodies and headers)."""
        blob = b"".join(r.body + json.dumps(r.headers).encode() + r.path.encode() for r in self.requests)
        return [v for v in values if v.encode() in blob]


def http_response(status: int, body: bytes, headers: dict | None = None, reason: str = "OK") -> bytes:
    head = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {len(body)}", "Connection: close"]
    head += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class TrickleServer:
    """Sends ``response`` (whole HTTP bytes) after ``prefix`` bytes at once, then ``step`` bytes per ``interval_s``."""

    def __init__(self, response: bytes, *, prefix: int = 0, step: int = 1, interval_s: float = 0.3, max_s: float = 15.0):
        self.response = response
        self.prefix = prefix
        self.step = step
        self.interval_s = interval_s
        self.max_s = max_s
        self.connections = 0
        self.sent = 0
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._threads: list[threading.Thread] = []

    @classmethod
    def body_trickle(cls, body: bytes, **kw) -> "TrickleServer":
        """Status line and headers at once, then the body a byte at a time."""
        response = http_response(200, body, {"Content-Type": "application/json"})
        return cls(response, prefix=len(response) - len(body), **kw)

    @classmethod
    def header_trickle(cls, body: bytes, **kw) -> "TrickleServer":
        """Even the status line comes a byte at a time."""
        return cls(http_response(200, body, {"Content-Type": "application/json"}), prefix=0, **kw)

    @property
    def url(self) -> str:
        host, port = self._sock.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self):
        _bypass_proxies_for_loopback()
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self._sock.settimeout(0.1)
        thread = threading.Thread(target=self._accept, daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self):
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def _accept(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket):
        started = time.monotonic()
        try:
            conn.settimeout(1.0)
            data = b""
            while b"\r\n\r\n" not in data:  # the request head; its body, if any, is not needed
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            conn.sendall(self.response[: self.prefix])
            pos = self.prefix
            while pos < len(self.response) and not self._stop.is_set() and time.monotonic() - started < self.max_s:
                if self._stop.wait(self.interval_s):
                    break
                conn.sendall(self.response[pos : pos + self.step])
                pos += self.step
                self.sent = pos
        except OSError:
            pass  # the client hung up: what a deadline does
        finally:
            conn.close()


def endless_json(total_bytes: int, chunk: int = 1 << 20):
    """A callable streaming a syntactically plausible JSON answer of ``total_bytes``."""

    def stream():
        yield b'{"type": "FeatureCollection", "features": ['
        sent = 0
        block = b" " * chunk
        while sent < total_bytes:
            yield block
            sent += len(block)
        yield b"]}"

    return stream


def zip_bomb(path: Path, member: str, inflated_bytes: int, *, declared_bytes: int | None = None) -> Path:
    """A zip with one deflated member of ``inflated_bytes`` zeros (about 1 kB per MiB on disk).

    The deflate stream is one fully flushed MiB of zeros repeated, so nothing of the
    inflated size is ever computed. The CRC is not computed either: a reader that
    refuses in time never gets far enough to check it. ``declared_bytes`` is the size
    the headers claim (the real one by default; a lie can claim less).
    """
    mib = 1 << 20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = compressor.compress(b"\0" * mib) + compressor.flush(zlib.Z_FULL_FLUSH)
    data = segment * (inflated_bytes // mib) + b"\x03\x00"  # + an empty final block
    size = inflated_bytes if declared_bytes is None else declared_bytes
    name = member.encode()
    crc = 0
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0) + name
    central = struct.pack(
        "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, 8, 0, 0x21, crc, len(data), size, len(name), 0, 0, 0, 0, 0, 0
    ) + name
    end = struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), len(local) + len(data), 0)
    path.write_bytes(local + data + central + end)
    return path
