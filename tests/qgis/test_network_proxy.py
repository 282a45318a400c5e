"""QGIS's proxy (Settings > Options > Network) reaches the engine process.

A loopback STAC server plays the proxy: an HTTP proxy receives each request in absolute
form (``POST http://host/path``) with a Proxy-Authorization header, and answers it. The
search runs through processing.run in a real engine child process.
"""
from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
from qgis.core import QgsNetworkAccessManager, QgsProcessingException, QgsVectorLayer
from qgis.PyQt.QtNetwork import QNetworkProxy

from satplugin.processing_algs.network_proxy import proxy_environment, proxy_notice, qgis_http_proxy
from satplugin.qgis_satplugin.engine_env import locate
from tests.fixtures.processing_feedback import KeptLines
from tests.servers.items import stac_item
from tests.servers.stac_api import StacApiServer

TILE_AOI = "-11.5,-11.4,24.5,24.6 [EPSG:4326]"  # inside tile 29RKH of the generated items
PASSWORD = "p@ss:w/rd-not-in-logs"


@pytest.fixture
def qgis_proxy(qgis_app):
    """Sets QGIS's fallback proxy and exclusions for a test, and puts QGIS's own back after."""
    manager = QgsNetworkAccessManager.instance()
    saved = (QNetworkProxy(manager.fallbackProxy()), list(manager.excludeList()), list(manager.noProxyList()))

    def set_proxy(proxy, excludes=(), no_proxy=()):
        manager.setFallbackProxyAndExcludes(proxy, list(excludes), list(no_proxy))

    yield set_proxy
    manager.setFallbackProxyAndExcludes(*saved)


def test_an_http_proxy_of_qgis_becomes_the_engines_proxy_variables(qgis_proxy):
    qgis_proxy(QNetworkProxy(QNetworkProxy.HttpProxy, "proxy.corp.example", 3128, "jane doe", PASSWORD),
               ["https://intranet.example:8443/maps", "localhost"], ["http://10.1.2.3/x"])
    url = "http://jane%20doe:p%40ss%3Aw%2Frd-not-in-logs@proxy.corp.example:3128"
    bypass = "intranet.example:8443,localhost,10.1.2.3"
    assert proxy_environment(qgis_http_proxy()) == {
        "HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url,
        "NO_PROXY": bypass, "no_proxy": bypass,
    }
    qgis_proxy(QNetworkProxy(QNetworkProxy.HttpProxy, "::1", 8080))
    assert proxy_environment(qgis_http_proxy())["HTTPS_PROXY"] == "http://[::1]:8080"
    assert proxy_notice() == ""
    # No proxy, and SOCKS (which requests cannot use without PySocks): the engine keeps its environment,
    # and the log says so for SOCKS.
    for kind in (QNetworkProxy.NoProxy, QNetworkProxy.Socks5Proxy):
        qgis_proxy(QNetworkProxy(kind, "proxy.corp.example", 1080))
        assert qgis_http_proxy() is None and proxy_environment(None) == {}
    assert proxy_notice() == ("QGIS's proxy proxy.corp.example:1080 is a SOCKS proxy, which the engine cannot use: "
                              "it connects directly, or through HTTPS_PROXY where that is set.")


def test_proxy_credentials_the_engine_cannot_send_are_one_sentence_before_any_work(qgis_proxy):
    qgis_proxy(QNetworkProxy(QNetworkProxy.HttpProxy, "proxy.corp.example", 3128, "bob", "pä#?ss"))
    assert proxy_environment(qgis_http_proxy())["HTTPS_PROXY"] == "http://bob:p%C3%A4%23%3Fss@proxy.corp.example:3128"
    qgis_proxy(QNetworkProxy(QNetworkProxy.HttpProxy, "proxy.corp.example", 3128, "bob", "p€ss"))
    with pytest.raises(QgsProcessingException) as info:
        qgis_http_proxy()
    assert str(info.value) == (
        "The password of QGIS's proxy (Settings > Options > Network) has characters outside Latin-1, which the "
        "engine's HTTP client cannot send; use one without them, or set HTTPS_PROXY for QGIS yourself.")


def test_a_search_in_the_engine_goes_through_qgiss_proxy_with_its_credentials(
        satplugin_provider, qgis_proxy, engine_python, monkeypatch, tmp_path):
    import processing

    monkeypatch.setenv(locate.ENGINE_PYTHON_VARIABLE, engine_python)  # a child process, as the managed engine runs
    with StacApiServer([stac_item()], prefix="/v1") as server:
        port = urlsplit(server.url).port
        qgis_proxy(QNetworkProxy(QNetworkProxy.HttpProxy, "127.0.0.1", port, "jane", PASSWORD))
        feedback = KeptLines()
        result = processing.run("satplugin:searchproducts", {
            "BACKEND": 2, "SERVICE_URL": "http://stac.satplugin.test/v1", "AOI": TILE_AOI, "START_DATE": "2020-02-01",
            "END_DATE": "2020-02-28", "OUTPUT": str(tmp_path / "products.gpkg")}, feedback=feedback)
    layer = QgsVectorLayer(f"{result['OUTPUT']}|layername=products", "products", "ogr")
    assert layer.featureCount() == 1
    searches = [r for r in server.requests if r.path == "/v1/search"]
    assert searches and all(r.headers["host"] == "stac.satplugin.test" for r in searches)
    expected = "Basic " + base64.b64encode(f"jane:{PASSWORD}".encode()).decode()
    assert all(r.headers.get("proxy-authorization") == expected for r in searches)
    assert f"The engine goes through QGIS's proxy, 127.0.0.1:{port}." in feedback.lines
    assert any("Running in the engine" in line for line in feedback.lines)
    assert not any(PASSWORD in line or "p%40ss" in line for line in feedback.lines)
