"""QGIS's proxy (Settings > Options > Network) for the engine process, as the variables its HTTP client reads.

QGIS's own requests go through its network manager; the engine's go through requests,
which knows only the environment. So where QGIS has an HTTP proxy of its own, the engine
gets HTTP_PROXY, HTTPS_PROXY and NO_PROXY (in both cases: Python prefers the lower-case
ones, which a user's shell may set). A system proxy ("use system proxy settings") reaches
the engine as it reaches any program: the environment, or Windows' settings, which Python
reads itself. QGIS's SOCKS proxies are not passed on (requests would need PySocks).
"""
from urllib.parse import quote, urlsplit

from qgis.core import QgsNetworkAccessManager
from qgis.PyQt.QtNetwork import QNetworkProxy

HTTP_PROXY_TYPES = (QNetworkProxy.HttpProxy, QNetworkProxy.HttpCachingProxy)
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def qgis_http_proxy():
    """The HTTP proxy QGIS's own settings set, or None (no proxy, the system's, or SOCKS)."""
    manager = QgsNetworkAccessManager.instance()
    proxy = manager.fallbackProxy()
    if manager.useSystemProxy() or proxy.type() not in HTTP_PROXY_TYPES or not proxy.hostName():
        return None
    return proxy


def proxy_environment(proxy) -> dict:
    """The engine's proxy variables for ``proxy`` (from :func:`qgis_http_proxy`); {} for None.

    The proxy's user and password, from the settings or an authentication configuration,
    are in the URL: they reach the child's environment only, never its job file or the log.
    QGIS's exclusions are URL prefixes; NO_PROXY takes their hosts (with the port, if any).
    """
    if proxy is None:
        return {}
    manager = QgsNetworkAccessManager.instance()
    credentials = ""
    if proxy.user():
        password = f":{quote(proxy.password(), safe='')}" if proxy.password() else ""
        credentials = f"{quote(proxy.user(), safe='')}{password}@"
    url = f"http://{credentials}{proxy_address(proxy)}"
    bypass = ",".join(dict.fromkeys(filter(None, map(_host_of, [*manager.excludeList(), *manager.noProxyList()]))))
    return {**dict.fromkeys(VARIABLES, url), "NO_PROXY": bypass, "no_proxy": bypass}


def proxy_address(proxy: QNetworkProxy) -> str:
    """host:port, as the log may show it (no credentials)."""
    host = proxy.hostName()
    return f"[{host}]:{proxy.port()}" if ":" in host else f"{host}:{proxy.port()}"


def _host_of(prefix: str) -> str:
    """The host (and port) of an excluded URL prefix such as 'https://intranet.example:8443/maps'."""
    prefix = prefix.strip()
    netloc = urlsplit(prefix).netloc if "://" in prefix else prefix.split("/", 1)[0]
    return netloc.rpartition("@")[2]
