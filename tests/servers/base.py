"""A threaded loopback HTTP server with a request log and scripted failures."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    @property
    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def form(self) -> dict:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


@dataclass
class Scripted:
    """A canned answer for the next request whose path starts with ``path``.

    ``body`` may also be a callable returning an iterator of byte chunks: the answer is
    then streamed chunk by chunk (no ``Content-Length`` unless given, the connection
    closes at the end), for answers too large to build in memory.
    """

    status: int
    headers: dict = field(default_factory=dict)
    body: bytes = b""
    path: str = ""
    delay_s: float = 0.0
    skip: int = 0  # let this many matching requests through first


@dataclass
class Fault:
    """A fault applied to the real answer of the next request under ``path``.

    ``delay_s`` holds the answer back (a slow server: the client times out);
    ``drop_after`` sends the headers and only that many body bytes, then closes the
    connection; ``corrupt`` garbles the body but keeps its length.
    """

    path: str = ""
    delay_s: float = 0.0
    drop_after: int | None = None
    corrupt: bool = False
    skip: int = 0


def corrupted(payload: bytes) -> bytes:
    """Same length, different bytes after the first four (a TIFF stays recognisably broken)."""
    return payload[:4] + bytes(b ^ 0x5A for b in payload[4:])


class LoopbackServer:
    """Subclasses implement ``handle(request) -> (status, headers, body_bytes)``."""

    def __init__(self):
        self.requests: list[Request] = []
        self.streamed_bytes = 0  # body bytes sent by streamed (callable) answers
        self._script: list[Scripted] = []
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------
    def start(self):
        _bypass_proxies_for_loopback()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                headers = {k.lower(): v for k, v in self.headers.items()}
                req = Request(self.command, parts.path, parse_qs(parts.query), headers, body)
                fault = server._take_fault(req)
                if fault is not None and fault.delay_s:
                    time.sleep(fault.delay_s)
                status, headers, payload = server._dispatch(req)
                if fault is not None and fault.corrupt:
                    payload = corrupted(payload)
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    if callable(payload):
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.close_connection = True
                        for chunk in payload():
                            self.wfile.write(chunk)
                            server.streamed_bytes += len(chunk)
                        return
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    if self.command != "HEAD":
                        if fault is not None and fault.drop_after is not None:
                            self.wfile.write(payload[: fault.drop_after])
                            self.wfile.flush()
                            self.close_connection = True
                            self.connection.shutdown(socket.SHUT_RDWR)
                            return
                        self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError, OSError):
                    pass  # the client gave up (a timeout test)

            do_GET = do_POST = do_HEAD = _serve

        self._httpd = _QuietHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        host, port = self._httpd.server_address[:2]
        self._url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def url(self) -> str:
        return self._url

    # --- scripting ---------------------------------------------------------------
    def script(self, status: int, *, headers=None, body=b"", path: str = "", delay_s: float = 0.0, skip: int = 0):
        """Answer the next request under ``path`` (after ``skip`` others) with this, then resume."""
        if isinstance(body, (dict, list)):
            body = json.dumps(body).encode()
            headers = {"Content-Type": "application/json", **(headers or {})}
        # A callable body is streamed (see Scripted).
        with self._lock:
            self._script.append(Scripted(status, dict(headers or {}), body, path, delay_s, skip))

    def fault(self, path: str = "", *, delay_s: float = 0.0, drop_after: int | None = None, corrupt: bool = False, skip: int = 0):
        """Disturb the real answer to the next request under ``path`` (after ``skip`` others), once."""
        with self._lock:
            self._faults.append(Fault(path, delay_s, drop_after, corrupt, skip))

    def _take_fault(self, req: Request) -> Fault | None:
        with self._lock:
            fault = next((f for f in self._faults if req.path.startswith(f.path)), None)
            if fault is None:
                return None
            if fault.skip > 0:
                fault.skip -= 1
                return None
            self._faults.remove(fault)
            return fault

    def requests_to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def _dispatch(self, req: Request):
        with self._lock:
            self.requests.append(req)
            canned = next((s for s in self._script if req.path.startswith(s.path)), None)
            if canned is not None and canned.skip > 0:
                canned.skip -= 1
                canned = None
            elif canned is not None:
                self._script.remove(canned)
        if canned is not None:
            if canned.delay_s:
                time.sleep(canned.delay_s)
            return canned.status, canned.headers, canned.body
        try:
            return self.handle(req)
        except Exception as exc:  # an emulator bug should read as a 500, not a hang
            return 500, {"Content-Type": "text/plain"}, f"emulator error: {exc!r}".encode()

    def handle(self, req: Request):
        return 404, {}, b""


class _QuietHTTPServer(ThreadingHTTPServer):
    """A client that hangs up (a canceled or timed-out download) is normal here, not an error to print."""

    def handle_error(self, request, client_address):
        import sys

        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


def _bypass_proxies_for_loopback():
    """requests and GDAL's curl honour *_proxy variables; loopback must never go through one."""
    for var in ("NO_PROXY", "no_proxy"):
        current = os.environ.get(var, "")
        if "127.0.0.1" not in current.split(","):
            os.environ[var] = ",".join(filter(None, [current, "127.0.0.1", "localhost"]))


def json_answer(status: int, obj, headers=None):
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode()
