"""Issue 11, the network side, at the core's level: the rules themselves, with short limits and fake waits."""
from __future__ import annotations

import random
import time
import tracemalloc
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from types import SimpleNamespace

import pytest

from satplugin.qgis_satplugin.core.download.sentinelhub import service_url_for
from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.feedback import Feedback
from satplugin.qgis_satplugin.core.http.hrefs import inside_product, local_file_in_product, remote_asset_url
from satplugin.qgis_satplugin.core.http.client import (
    AnswerTooLarge,
    DeadlineExceeded,
    JsonClient,
    RedirectRefused,
    carries_secret,
)
from satplugin.qgis_satplugin.core.search.local import LocalBackend, scan_folder
from tests.servers.base import LoopbackServer, json_answer
from tests.servers.hostile import CatchServer, TrickleServer, endless_json, zip_bomb
from tests.servers.product_folders import make_safe, safe_name

UTC = timezone.utc
NOW = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


class Echo(LoopbackServer):
    def handle(self, req):
        return json_answer(200, {"path": req.path, "method": req.method, "auth": req.headers.get("authorization")})


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


def client(**kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("rng", random.Random(1))
    return JsonClient(**kw)


# --- redirects ---------------------------------------------------------------------------


def test_requests_without_secrets_follow_redirects_with_secrets_do_not():
    with Echo() as a, Echo() as b:
        a.script(302, headers={"Location": "/elsewhere"}, path="/moved")
        assert client().get(a.url + "/moved")["path"] == "/elsewhere"  # same server
        a.script(307, headers={"Location": b.url + "/other"}, path="/moved")
        assert client().get(a.url + "/moved")["path"] == "/other"  # another server, nothing secret sent
        b.requests.clear()
        a.script(307, headers={"Location": b.url + "/other?sig=abc"}, path="/moved")
        with pytest.raises(RedirectRefused) as info:
            client().get(a.url + "/moved", headers={"Authorization": "Bearer tok-123"})
        assert b.requests == []
    message = str(info.value)
    assert f"a redirect to {b.url}" in message and "sig=abc" not in message and "tok-123" not in message


def test_carries_secret_sees_headers_and_forms():
    assert carries_secret({"Authorization": "Bearer x"})
    assert carries_secret(None, {"grant_type": "client_credentials", "client_secret": "x"})
    assert not carries_secret({"Accept": "image/tiff"}, None, {"collections": ["x"]})


# --- deadlines ---------------------------------------------------------------------------


def test_retry_after_waits_add_up_against_the_deadlines():
    when = format_datetime(NOW + timedelta(seconds=590), usegmt=True)
    with Echo() as server:
        for _ in range(5):
            server.script(429, headers={"Retry-After": when})
        lines = []
        c = client(now=lambda: NOW, feedback=Feedback(log=lines.append))
        with pytest.raises(DeadlineExceeded, match=r"asks for a wait of 590 s \(HTTP 429\), which would pass the request deadline of 900 s"):
            c.get(server.url + "/x")
        assert c._sleep == [590.0]
        assert "retrying in 590.0 s (attempt 2 of 5; 590 s of waiting for this request in all)" in lines[0]
        assert len(server.requests) == 2
        c = client(now=lambda: NOW, request_deadline=None, run_deadline=1500)
        with pytest.raises(DeadlineExceeded, match="which would pass the run deadline of 1500 s"):
            c.get(server.url + "/x")
        assert c._sleep == [590.0, 590.0]


def test_a_shared_run_deadline_covers_every_request_of_the_run():
    with Echo() as server:
        c = client(run_deadline=100)
        c.run_deadline.advance(99.99)  # as if the run had been busy for 100 s already
        time.sleep(0.02)
        with pytest.raises(DeadlineExceeded, match="used up its network deadline of 100 s"):
            c.get(server.url + "/x")
        assert server.requests == []


def test_trickled_headers_and_bodies_stop_at_the_deadline():
    for factory in (TrickleServer.header_trickle, TrickleServer.body_trickle):
        with factory(b'{"a": "' + b"x" * 300 + b'"}', interval_s=0.1) as server:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded, match="within 0.5 s"):
                client(request_deadline=0.5).get(server.url + "/x")
            assert time.monotonic() - started < 1.5
            assert server.connections == 1  # a stalled request is not tried again


# --- sizes -------------------------------------------------------------------------------


def test_declared_and_streamed_json_sizes_are_capped():
    with Echo() as server:
        server.script(200, headers={"Content-Length": str(300 << 20)}, body=endless_json(300 << 20))
        with pytest.raises(AnswerTooLarge, match="larger than 64 MiB"):
            client().get(server.url + "/x")
        server.script(200, body=endless_json(10 << 20))
        with pytest.raises(AnswerTooLarge, match="larger than 1 MiB"):
            client(max_json_bytes=1 << 20).get(server.url + "/x")
        assert server.streamed_bytes < 40 << 20


def test_error_answers_are_read_only_in_part():
    with Echo() as server:
        server.script(400, headers={"Content-Type": "text/plain"}, body=endless_json(50 << 20))
        tracemalloc.start()
        try:
            with pytest.raises(SatPluginError, match="answered HTTP 400"):
                client().get(server.url + "/x")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert peak < 5 << 20


def test_metadata_caps_in_folders_and_zips(tmp_path):
    when = datetime(2023, 6, 12, 10, 15, 59, tzinfo=UTC)
    make_safe(tmp_path, when=when, cloud=3.0)
    big = make_safe(tmp_path, when=when + timedelta(days=2), cloud=4.0)
    mtd = big / "MTD_MSIL2A.xml"
    mtd.write_text(mtd.read_text().replace("</n1:General_Info>", "<!--" + "x" * (2 << 20) + "--></n1:General_Info>"))
    name = safe_name("S2B", "L2A", when + timedelta(days=1), "05.09", 65, "32TQM")
    zip_bomb(tmp_path / f"{name}.SAFE.zip", f"{name}.SAFE/MTD_MSIL2A.xml", 1536 << 20)
    liar = safe_name("S2B", "L2A", when + timedelta(days=3), "05.09", 65, "32TQM")
    zip_bomb(tmp_path / f"{liar}.SAFE.zip", f"{liar}.SAFE/MTD_MSIL2A.xml", 256 << 20, declared_bytes=1000)
    lines = []
    tracemalloc.start()
    try:
        found = scan_folder(tmp_path, feedback=Feedback(log=lines.append), max_metadata_bytes=1 << 20)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [p.cloud_cover for p in found] == [3.0]
    text = "\n".join(lines)
    assert f"Skipped {big.name}: its product metadata is larger than 1 MiB" in text
    assert f"Skipped {name}.SAFE.zip: its product metadata is larger than 1 MiB" in text
    assert f"Skipped {liar}.SAFE.zip: could not read it" in text  # zipfile stops at the declared size
    assert peak < 8 << 20  # nothing was inflated beyond the caps
    assert LocalBackend(tmp_path).max_metadata_bytes == 64 << 20


# --- where files and tokens may go --------------------------------------------------------


@pytest.mark.parametrize(
    "href, expected",
    [
        ("https://h/a/B02.tif", "https://h/a/B02.tif"),
        ("B02.tif", "https://h/items/B02.tif"),
        ("../../x/B02.tif", "https://h/x/B02.tif"),
        ("/etc/passwd", None),
        ("/vsicurl/http://other/x.tif", None),
        ("/vsis3/bucket/x.tif", None),
        ("s3://bucket/x.tif", None),
        ("file:///etc/passwd", None),
        ("//other/x.tif", None),
        ("C:\\data\\x.tif", None),
        ("~/x.tif", None),
    ],
)
def test_remote_asset_hrefs(href, expected):
    assert remote_asset_url(href, "https://h/items/item.json") == expected


def test_local_product_paths(tmp_path):
    safe = tmp_path / "P.SAFE"
    (safe / "GRANULE").mkdir(parents=True)
    assert inside_product("GRANULE/x/IMG_DATA/B02")
    assert not inside_product("../B02") and not inside_product("/abs/B02") and not inside_product("GRANULE/../../B02")
    assert local_file_in_product(str(safe / "GRANULE" / "B02.jp2"), safe)
    assert not local_file_in_product(str(tmp_path / "B02.jp2"), safe)
    assert not local_file_in_product(f"/vsicurl/http://x/{safe}/B02.jp2", safe)
    zipped = tmp_path / "P.SAFE.zip"
    assert local_file_in_product(f"/vsizip/{zipped}/P.SAFE/GRANULE/B02.jp2", zipped)
    assert not local_file_in_product(f"/vsizip/{zipped}/P.SAFE/../../B02.jp2", zipped)
    assert not local_file_in_product(f"/vsizip/{tmp_path / 'other.zip'}/B02.jp2", zipped)


def test_service_url_comes_from_the_user_or_the_documented_default():
    def product(stored, backend="cdse"):
        return SimpleNamespace(product_id="P", backend=backend, download={"kind": "sentinelhub", "service_url": stored})

    assert service_url_for(product("https://sh.dataspace.copernicus.eu/")) == "https://sh.dataspace.copernicus.eu"
    assert service_url_for(product(None, "sentinelhub")) == "https://services.sentinel-hub.com"
    assert service_url_for(product("http://127.0.0.1:9/"), "http://127.0.0.1:9") == "http://127.0.0.1:9"
    with pytest.raises(SatPluginError, match="was found on http://evil:8080, but this download would send your token to https://sh"):
        service_url_for(product("http://user:pw@evil:8080?x=1"))
    with CatchServer() as thief:  # nothing is sent while deciding
        with pytest.raises(SatPluginError):
            service_url_for(product(thief.url), "http://127.0.0.1:1")
        assert thief.requests == []
