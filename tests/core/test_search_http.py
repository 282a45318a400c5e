"""The retrying JSON client against a loopback server with scripted failures."""

from __future__ import annotations

import random
import socket
import threading
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from satplugin.qgis_satplugin.core.errors import Canceled, SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.http.client import (
    CredentialsRefused,
    HttpStatusError,
    JsonClient,
    parse_retry_after,
    safe_url,
)
from tests.servers.base import LoopbackServer, json_answer


class EchoServer(LoopbackServer):
    def handle(self, req):
        return json_answer(200, {"ok": True, "n": len(self.requests)})


@pytest.fixture
def server():
    with EchoServer() as s:
        yield s


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client(**kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("rng", random.Random(7))
    return JsonClient(**kw)


def test_429_waits_exactly_retry_after_seconds(server):
    server.script(429, headers={"Retry-After": "3"}, body={"error": "slow down"})
    c = client()
    assert c.get(server.url + "/x")["ok"] is True
    assert c._sleep == [3.0]
    assert len(server.requests) == 2


def test_429_retry_after_as_http_date(server):
    now = datetime(2024, 5, 1, 12, 0, 0, tzinfo=timezone.utc)
    server.script(429, headers={"Retry-After": format_datetime(now + timedelta(seconds=7), usegmt=True)})
    c = client(now=lambda: now)
    c.post(server.url + "/x", json={"a": 1})
    assert c._sleep == [7.0]


def test_retry_after_in_milliseconds_for_sentinel_hub(server):
    server.script(429, headers={"Retry-After": "1500"})
    c = client(retry_after_unit=0.001)
    c.get(server.url + "/x")
    assert c._sleep == [1.5]


def test_5xx_then_success_backs_off_exponentially_with_jitter(server):
    server.script(500, body={"error": "boom"})
    server.script(502)
    c = client(backoff_base=1.0)
    assert c.get(server.url + "/x") == {"ok": True, "n": 3}
    first, second = c._sleep
    assert 0.5 <= first <= 1.0  # attempt 1: half of 1 s fixed, half random
    assert 1.0 <= second <= 2.0  # attempt 2: doubled
    # The jitter is real: another seed gives other waits.
    server.script(500)
    other = client(rng=random.Random(8))
    other.get(server.url + "/x")
    assert other._sleep[0] != first


def test_gives_up_after_max_attempts(server):
    for _ in range(3):
        server.script(503)
    c = client(max_attempts=3)
    with pytest.raises(SatPluginError, match=r"after 3 attempts \(last problem: HTTP 503\)"):
        c.get(server.url + "/x")
    assert len(server.requests) == 3
    assert len(c._sleep) == 2


def test_timeout_is_retried(server):
    server.script(200, body={"late": True}, delay_s=1.0)
    c = client(timeout=0.2)
    assert c.get(server.url + "/x")["ok"] is True
    assert len(c._sleep) == 1


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port now.
    c = client(max_attempts=3, timeout=2)
    with pytest.raises(SatPluginError) as info:
        c.get(f"http://127.0.0.1:{port}/x")
    assert str(info.value) == (
        f"Gave up on http://127.0.0.1:{port}/x after 3 attempts (last problem: ConnectionError: the connection "
        "was refused). Nothing answers at that address: check the service URL; the service may also be down."
    )
    assert len(c._sleep) == 2


def test_a_proxy_that_refuses_says_to_check_the_proxy(monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    for name in ("HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")  # nothing listens there
    c = client(max_attempts=2, timeout=2)
    with pytest.raises(SatPluginError) as info:
        c.get("https://services.example.com/api/v1/search")
    assert str(info.value) == (
        "Gave up on https://services.example.com/api/v1/search after 2 attempts (last problem: ProxyError: the proxy "
        "could not be reached). Check the proxy in QGIS's settings (Settings > Options > Network) or the HTTPS_PROXY "
        "variable."
    )


class _ProxyAsking(BaseHTTPRequestHandler):
    """A proxy that wants credentials the client did not bring: 407 to plain requests and to CONNECT."""

    def _refuse(self):
        self.send_response(407, "Proxy Authentication Required")
        self.send_header("Proxy-Authenticate", 'Basic realm="corp"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_CONNECT = _refuse

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_refuses_the_credentials_says_so_at_once(monkeypatch, scheme):
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _ProxyAsking)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", f"http://jane:wrong@127.0.0.1:{proxy.server_address[1]}")
        c = client(max_attempts=3, timeout=2)
        with pytest.raises(SatPluginError) as info:
            c.get(f"{scheme}://services.example.com/api/v1/search")
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert str(info.value) == (
        f"The proxy refused its credentials (HTTP 407 for {scheme}://services.example.com/api/v1/search). Check the "
        "proxy's user and password in QGIS's settings (Settings > Options > Network) or in HTTPS_PROXY."
    )
    assert c._sleep == []  # not retried: waiting does not change the credentials


def test_a_host_name_that_does_not_resolve_says_to_check_the_connection_not_that_the_service_is_down(monkeypatch):
    # Offline, the resolver fails: socket.getaddrinfo raises what it raises then (EAI_NONAME).
    def offline(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)
    lines = []
    c = client(max_attempts=2, timeout=2, feedback=Feedback(log=lines.append))
    with pytest.raises(SatPluginError) as info:
        c.get("https://services.sentinel-hub.com/api/v1/catalog/1.0.0/search")
    assert lines[0].startswith("No usable answer from https://services.sentinel-hub.com/api/v1/catalog/1.0.0/search "
                               "(ConnectionError: the host name does not resolve); retrying in ")
    assert str(info.value) == (
        "Gave up on https://services.sentinel-hub.com/api/v1/catalog/1.0.0/search after 2 attempts (last problem: "
        "ConnectionError: the host name does not resolve). Check that this computer is online, that the service URL "
        "is spelled right, and QGIS's proxy settings where it needs a proxy."
    )


def test_401_is_not_retried_and_says_how_to_fix(server):
    server.script(401, body={"error": "invalid_client"})
    c = client()
    with pytest.raises(CredentialsRefused) as info:
        c.post(server.url + "/token?key=qs-secret", data={"client_secret": "s3cr3t-value"})
    message = str(info.value)
    assert "refused the credentials" in message
    assert "QGIS authentication configuration" in message
    assert "SH_CLIENT_ID" in message and "SH_CLIENT_SECRET" in message
    assert "s3cr3t-value" not in message and "qs-secret" not in message
    assert len(server.requests) == 1
    assert c._sleep == []


def test_other_4xx_carries_server_reason_and_code(server):
    server.script(400, body={"error": "invalid_request", "description": "datetime is malformed"})
    with pytest.raises(HttpStatusError) as info:
        client().get(server.url + "/x")
    assert info.value.status == 400
    assert info.value.error_code == "invalid_request"
    assert "datetime is malformed" in str(info.value)
    assert len(server.requests) == 1


def test_cancel_during_wait_stops_without_another_request(server):
    server.script(503)
    server.script(503)
    canceled = {"flag": False}
    sleeps = Sleeps()

    def sleep(seconds):
        sleeps.append(seconds)
        canceled["flag"] = True  # the user pressed Cancel while we waited

    c = client(sleep=sleep, feedback=Feedback(is_canceled=lambda: canceled["flag"]))
    with pytest.raises(Canceled):
        c.get(server.url + "/x")
    assert len(server.requests) == 1
    assert len(sleeps) == 1


def test_built_in_sleep_is_cancelable(server):
    server.script(429, headers={"Retry-After": "30"})
    calls = {"n": 0}

    def is_canceled():
        calls["n"] += 1
        return calls["n"] > 2  # cancel shortly after the wait starts

    c = JsonClient(feedback=Feedback(is_canceled=is_canceled))
    t0 = datetime.now()
    with pytest.raises(Canceled):
        c.get(server.url + "/x")
    assert (datetime.now() - t0).total_seconds() < 5


def test_too_long_retry_after_is_reported_not_waited(server):
    server.script(429, headers={"Retry-After": "3600"})
    c = client(max_retry_after=600)
    with pytest.raises(SatPluginError, match="asks to wait 3600 s"):
        c.get(server.url + "/x")
    assert c._sleep == []


def test_log_lines_do_not_leak_query_strings(server):
    server.script(500)
    lines = []
    c = client(feedback=Feedback(log=lines.append))
    c.get(server.url + "/x?token=abc123")
    assert lines and all("abc123" not in line for line in lines)
    assert "HTTP 500" in lines[0]


def test_parse_retry_after_forms():
    now = datetime(2024, 1, 1, tzinfo=timezone.utc)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("2.5") == 2.5
    assert parse_retry_after("250", unit_s=0.001) == 0.25
    assert parse_retry_after("Mon, 01 Jan 2024 00:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 31 Dec 2023 00:00:00 GMT", now=now) == 0.0  # already past
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    assert safe_url("https://user:pw@host:8443/p/a?secret=1") == "https://host:8443/p/a"


def test_malformed_url_is_a_clear_error_not_a_retry():
    c = client()
    with pytest.raises(SatPluginError, match="Could not send the request"):
        c.get("htp:/nowhere")
    assert c._sleep == []
