"""QGIS's proxy (Settings > Options > Network) for the engine process, as the variables its HTTP client reads.

QGIS's own requests go through its network manager; the engine's go through requests,
which knows only the environment. So where QGIS has an HTTP proxy of its own, the engine
gets HTTP_PROXY, HTTPS_PROXY and NO_PROXY (in both cases: Python prefers the lower-case
ones, which a user's shell may set). A system proxy ("use system proxy settings") reaches
the engine as it reaches any program: the environment, or Windows' settings, which Python
reads itself. QGIS's SOCKS proxies are not passed on (requests would need PySocks): the log
says so. QGIS's exclusions are URL prefixes; the engine's NO_PROXY can only exclude whole
hosts, so an excluded prefix excludes its host.
"""
from urllib.parse import quote, urlsplit

from qgis.core import QgsNetworkAccessManager, QgsProcessingException
from qgis.PyQt.QtNetwork import QNetworkProxy

HTTP_PROXY_TYPES = (QNetworkProxy.HttpProxy, QNetworkProxy.HttpCachingProxy)
VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")


def qgis_http_proxy():
    """The HTTP proxy QGIS's own settings set, or None (no proxy, the system's, or SOCKS)."""
    manager = QgsNetworkAccessManager.instance()
    proxy = manager.fallbackProxy()
    if manager.useSystemProxy() or proxy.type() not in HTTP_PROXY_TYPES or not proxy.hostName():
        return None
    for what, value in (("user", proxy.user()), ("password", proxy.password())):
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            # requests sends Basic credentials in Latin-1 and fails on anything else.
            raise QgsProcessingException(
                f"The {what} of QGIS's proxy (Settings > Options > Network) has characters outside Latin-1, which "
                "the engine's HTTP client cannot send; use one without them, or set HTTPS_PROXY for QGIS yourself."
            ) from None
    return proxy


def proxy_notice() -> str:
    """A line for the log where QGIS's proxy is one the engine cannot use (SOCKS); else ''."""
    manager = QgsNetworkAccessManager.instance()
    proxy = manager.fallbackProxy()
    if manager.useSystemProxy() or proxy.type() != QNetworkProxy.Socks5Proxy or not proxy.hostName():
        return ""
    return (f"QGIS's proxy {proxy_address(proxy)} is a SOCKS proxy, which the engine cannot use: it connects "
            "directly, or through HTTPS_PROXY where that is set.")


def proxy_for_child(log, who_goes: str) -> dict:
    """The proxy variables for an engine or installer child, after a log line that says the
    proxy ``who_goes`` ("The engine goes", "The downloads go") through, or that QGIS's cannot be used."""
    proxy = qgis_http_proxy()
    if proxy is not None:
        log(f"{who_goes} through QGIS's proxy, {proxy_address(proxy)}.")
    elif proxy_notice():
        log(proxy_notice())
    return proxy_environment(proxy)


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
