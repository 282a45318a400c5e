"""Sentinel Hub Catalog backend (CDSE / commercial) against a loopback emulator."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from shapely.geometry import box

from satplugin.qgis_satplugin.core.errors import SatPluginError
from satplugin.qgis_satplugin.core.search import (
    CatalogBackend,
    Credentials,
    CredentialsRefused,
    make_backend,
    resolve_credentials,
    sh_config,
    sh_data_collection,
)
from satplugin.qgis_satplugin.core.search.period import normalise_period
from tests.servers.items import catalog_item
from tests.servers.sentinelhub_api import CATALOG_PATH, TOKEN_PATH, SentinelHubServer
from satplugin.tests.fixtures.step_runs import search

UTC = timezone.utc
AOI = box(-11.5, 24.5, -11.4, 24.6)
CREDS = Credentials("test-client", "test-secret")


class Sleeps(list):
    def __call__(self, seconds):
        self.append(seconds)


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No real credentials or sentinelhub config leak in; nothing is written to $HOME."""
    monkeypatch.delenv("SH_CLIENT_ID", raising=False)
    monkeypatch.delenv("SH_CLIENT_SECRET", raising=False)
    monkeypatch.delenv("SH_PROFILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")  # http:// token URL of the emulator


def items(n, start=datetime(2023, 6, 1, 10, 15, 59, tzinfo=UTC)):
    return [
        catalog_item(
            when=start + timedelta(days=i),
            platform="S2B",
            baseline="05.09",
            orbit=65,
            tile="29RKH",
            cloud=float(i % 40),
            with_safe_suffix=bool(i % 2),
        )
        for i in range(n)
    ]


def backend_for(server, sleeps=None, credentials=CREDS):
    return CatalogBackend(
        server.url, server.token_url, credentials, client_options={"sleep": sleeps if sleeps is not None else Sleeps()}
    )


def test_token_then_paged_catalog_search():
    with SentinelHubServer(items(230)) as server:
        backend = backend_for(server)
        start, end = normalise_period("2023-06-01", "2024-06-01")
        found = backend.search(AOI, start, end, "L2A", max_cloud=None)
        token_calls = server.requests_to(TOKEN_PATH)
        searches = server.requests_to(CATALOG_PATH)
    assert len(found) == 230
    assert len(token_calls) == 1
    assert token_calls[0].form["grant_type"] == "client_credentials"
    assert len(searches) == 3
    assert [r.json.get("next") for r in searches] == [None, 100, 200]
    assert all(r.json["collections"] == ["sentinel-2-l2a"] for r in searches)
    assert all(r.headers["authorization"].startswith("Bearer ") for r in searches)
    p = found[1]  # id with a .SAFE suffix
    assert p.product_id == "S2B_MSIL2A_20230602T101559_N0509_R065_T29RKH_20230602T111559"
    assert (p.platform, p.processing_baseline, p.relative_orbit, p.mgrs_tile) == ("S2B", "05.09", 65, "29RKH")
    assert p.datetime == datetime(2023, 6, 2, 10, 15, 59, tzinfo=UTC)
    assert p.cloud_cover == 1.0
    assert p.download["kind"] == "sentinelhub"
    assert p.download["item_id"] == "S2B_MSIL2A_20230602T101559_N0509_R065_T29RKH_20230602T111559.SAFE"
    assert p.download["service_url"] == server.url
    assert found[0].product_id == "S2B_MSIL2A_20230601T101559_N0509_R065_T29RKH_20230601T111559"


def test_cloud_filter_is_sent_as_cql2_text():
    with SentinelHubServer(items(40)) as server:
        start, end = normalise_period("2023-06-01", "2023-07-31")
        found = backend_for(server).search(AOI, start, end, "L2A", max_cloud=5)
        body = server.requests_to(CATALOG_PATH)[0].json
    assert body["filter"] == "eo:cloud_cover <= 5"
    assert body["filter-lang"] == "cql2-text"
    assert body["datetime"] == "2023-06-01T00:00:00Z/2023-07-31T23:59:59.999999Z"
    assert sorted(p.cloud_cover for p in found) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]


def test_wrong_secret_gives_clear_message_without_the_secret():
    with SentinelHubServer(items(3)) as server:
        backend = backend_for(server, credentials=Credentials("test-client", "wrong-secret-xyz"))
        with pytest.raises(CredentialsRefused) as info:
            search(backend, AOI, "2023-06-01", "2023-06-30")
        assert server.requests_to(CATALOG_PATH) == []
        assert len(server.requests_to(TOKEN_PATH)) == 1  # a refusal is not retried
    message = str(info.value)
    assert "refused the credentials" in message
    assert "QGIS authentication configuration" in message and "SH_CLIENT_SECRET" in message
    assert "wrong-secret-xyz" not in message


def test_expired_token_is_renewed_once():
    with SentinelHubServer(items(150)) as server:
        backend = backend_for(server)
        start, end = normalise_period("2023-06-01", "2024-06-01")
        original = backend._post_search

        def post_and_expire(client, body):
            page = original(client, body)
            server.revoke_tokens()  # the token dies between pages
            return page

        backend._post_search = post_and_expire
        found = backend.search(AOI, start, end, "L2A")
        assert len(server.requests_to(TOKEN_PATH)) == 2
        assert len(server.requests_to(CATALOG_PATH)) == 3  # page 1, page 2 refused, page 2 again
    assert len(found) == 150


def test_catalog_401_with_fresh_token_is_reported():
    with SentinelHubServer(items(3)) as server:
        server.script(401, path=CATALOG_PATH, body={"error": {"status": 401, "reason": "Unauthorized"}})
        with pytest.raises(CredentialsRefused, match="refused the credentials"):
            backend_for(server).search(AOI, *normalise_period("2023-06-01", "2023-06-30"), "L2A")


def test_429_waits_retry_after_milliseconds():
    sleeps = Sleeps()
    with SentinelHubServer(items(5)) as server:
        server.script(429, path=CATALOG_PATH, headers={"Retry-After": "1500"})
        found = backend_for(server, sleeps).search(AOI, *normalise_period("2023-06-01", "2023-06-30"), "L2A")
    assert sleeps == [1.5]
    assert len(found) == 5


def test_token_endpoint_500_then_success():
    sleeps = Sleeps()
    with SentinelHubServer(items(2)) as server:
        server.script(500, path=TOKEN_PATH)
        found = backend_for(server, sleeps).search(AOI, *normalise_period("2023-06-01", "2023-06-30"), "L2A")
        assert len(server.requests_to(TOKEN_PATH)) == 2
    assert len(found) == 2
    assert len(sleeps) == 1


def test_empty_catalog_result():
    with SentinelHubServer(items(5)) as server:
        assert search(backend_for(server), AOI, "2019-01-01", "2019-12-31") == []


def test_make_backend_defaults_and_overrides():
    cdse = make_backend("cdse")
    assert cdse.search_url == "https://sh.dataspace.copernicus.eu/api/v1/catalog/1.0.0/search"
    assert cdse.token_url.startswith("https://identity.dataspace.copernicus.eu/auth/realms/CDSE/")
    sh = make_backend("sentinelhub")
    assert sh.search_url == "https://services.sentinel-hub.com/api/v1/catalog/1.0.0/search"
    assert sh.token_url == "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
    custom = make_backend("cdse", service_url="http://127.0.0.1:1/", token_url="http://127.0.0.1:1/t")
    assert custom.search_url == "http://127.0.0.1:1/api/v1/catalog/1.0.0/search"
    with pytest.raises(SatPluginError, match="Unknown search backend"):
        make_backend("planet")


# --- credentials --------------------------------------------------------------------


def test_credentials_explicit_then_env_then_config(monkeypatch, tmp_path):
    assert resolve_credentials("a", "b") == Credentials("a", "b")
    with pytest.raises(SatPluginError, match="both the client id and the client secret"):
        resolve_credentials("only-id", None)
    with pytest.raises(SatPluginError, match="No Sentinel Hub credentials"):
        resolve_credentials()
    config_dir = tmp_path / "xdg" / "sentinelhub"
    assert not config_dir.exists()  # looking did not create sentinelhub's config file

    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text(
        '[default-profile]\nsh_client_id = "cfg-id"\nsh_client_secret = "cfg-secret"\n'
    )
    assert resolve_credentials() == Credentials("cfg-id", "cfg-secret")

    monkeypatch.setenv("SH_CLIENT_ID", "env-id")
    monkeypatch.setenv("SH_CLIENT_SECRET", "env-secret")
    assert resolve_credentials() == Credentials("env-id", "env-secret")
    assert resolve_credentials("x", "y") == Credentials("x", "y")


def test_credentials_repr_hides_the_secret():
    text = repr(Credentials("my-id", "super-secret-1"))
    assert "my-id" in text and "super-secret-1" not in text


def test_env_credentials_reach_the_token_endpoint(monkeypatch):
    monkeypatch.setenv("SH_CLIENT_ID", "test-client")
    monkeypatch.setenv("SH_CLIENT_SECRET", "test-secret")
    with SentinelHubServer(items(2)) as server:
        backend = CatalogBackend(server.url, server.token_url, None, client_options={"sleep": Sleeps()})
        assert len(backend.search(AOI, *normalise_period("2023-06-01", "2023-06-30"), "L2A")) == 2
        assert server.requests_to(TOKEN_PATH)[0].form["client_id"] == "test-client"


# --- the emulator speaks what sentinelhub-py speaks --------------------------------


def test_emulator_pages_like_the_real_catalog_for_sentinelhub_py(tmp_path):
    """sentinelhub's own SentinelHubCatalog must read every page of the emulator.

    This guards the emulator: if it drifted from the real wire format, the backend tests
    above would prove nothing.
    """
    from sentinelhub import CRS, BBox, SentinelHubCatalog

    with SentinelHubServer(items(230)) as server:
        config = sh_config(server.url, server.token_url, CREDS)
        catalog = SentinelHubCatalog(config=config)
        collection = sh_data_collection("L2A", server.url)
        results = list(
            catalog.search(
                collection,
                bbox=BBox((-11.5, 24.5, -11.4, 24.6), crs=CRS.WGS84),
                time=("2023-06-01", "2024-06-01"),
                limit=100,
            )
        )
        assert len(server.requests_to(CATALOG_PATH)) == 3
    assert len(results) == 230
    assert collection.service_url == server.url
    assert collection.catalog_id == "sentinel-2-l2a"
    assert not (tmp_path / "xdg" / "sentinelhub" / "config.toml").exists()
