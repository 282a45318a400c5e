"""The Sentinel Hub services (CDSE and commercial): their addresses, the user's OAuth client and its token.

Shared by the search (Catalog API) and the download (Process API): both send a bearer token
from the OAuth2 client-credentials grant of the service the user configured, and only there.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from ..errors import SatPluginError
from .client import CREDENTIALS_HELP, CredentialsRefused, HttpStatusError, JsonClient
from .credentials import Credentials

CDSE_BASE_URL = "https://sh.dataspace.copernicus.eu"
CDSE_TOKEN_URL = "https://identity.dataspace.copernicus.eu/auth/realms/CDSE/protocol/openid-connect/token"
SENTINELHUB_BASE_URL = "https://services.sentinel-hub.com"
SENTINELHUB_TOKEN_URL = "https://services.sentinel-hub.com/auth/realms/main/protocol/openid-connect/token"
SENTINELHUB_RETRY_AFTER_UNIT = 0.001
# Renew a token this long before it expires, so a page request never carries a stale one.
TOKEN_MARGIN_S = 60.0
# OAuth error codes that mean "these credentials are wrong", whatever the HTTP status.
_BAD_CREDENTIAL_ERRORS = {"invalid_client", "unauthorized_client", "invalid_grant"}


def resolve_credentials(
    client_id=None, client_secret=None, *, environ=None, use_sentinelhub_config=True
) -> Credentials:
    """Explicit id and secret, else ``SH_CLIENT_ID``/``SH_CLIENT_SECRET``, else sentinelhub's config.

    The sentinelhub config file is only read when it already exists: creating
    ``SHConfig()`` without one would write a default file into the user's home.
    """
    if client_id or client_secret:
        if not (client_id and client_secret):
            raise SatPluginError("Give both the client id and the client secret. " + CREDENTIALS_HELP)
        return Credentials(str(client_id), str(client_secret))
    env = os.environ if environ is None else environ
    if env.get("SH_CLIENT_ID") and env.get("SH_CLIENT_SECRET"):
        return Credentials(env["SH_CLIENT_ID"], env["SH_CLIENT_SECRET"])
    if use_sentinelhub_config:
        saved = _sentinelhub_saved_credentials()
        if saved is not None:
            return saved
    raise SatPluginError(
        "No Sentinel Hub credentials were found. Create an OAuth client in your Copernicus Data Space "
        "or Sentinel Hub dashboard, then store its id and secret in the QGIS authentication "
        "configuration or in the environment variables SH_CLIENT_ID and SH_CLIENT_SECRET."
    )


def _sentinelhub_saved_credentials() -> Credentials | None:
    try:
        from sentinelhub import SHConfig
    except ImportError:
        return None
    if not os.path.exists(SHConfig.get_config_location()):
        return None
    try:
        config = SHConfig.load()
    except Exception:  # a broken or foreign config file is "no credentials", not a crash
        return None
    if config.sh_client_id and config.sh_client_secret:
        return Credentials(config.sh_client_id, config.sh_client_secret)
    return None


def as_credentials(value) -> Credentials:
    """Accept Credentials, an (id, secret) pair, a dict, or None (then look them up)."""
    if isinstance(value, Credentials):
        return value
    if value is None:
        return resolve_credentials()
    if isinstance(value, dict):
        return resolve_credentials(value.get("client_id"), value.get("client_secret"))
    client_id, client_secret = value
    return resolve_credentials(client_id, client_secret)


def sh_config(base_url: str, token_url: str, credentials: Credentials):
    """A ``sentinelhub.SHConfig`` for these endpoints, built without reading or writing the config file."""
    from sentinelhub import SHConfig

    return SHConfig(
        use_defaults=True,
        sh_base_url=base_url.rstrip("/"),
        sh_token_url=token_url,
        sh_client_id=credentials.client_id,
        sh_client_secret=credentials.client_secret,
    )


class TokenSource:
    """A bearer token for one service, fetched with the user's credentials and cached until it expires.

    ``credentials`` is anything :func:`as_credentials` takes; it is resolved when the first
    token is asked for.
    """

    def __init__(self, token_url: str, credentials=None, *, clock: Callable[[], float] = time.monotonic):
        self.token_url = token_url
        self._credentials = credentials
        self._clock = clock
        self._token: str | None = None
        self._token_expires = 0.0

    @property
    def is_fresh(self) -> bool:
        """True when the next token will be a new one (none cached, or the cached one expired)."""
        return self._token is None or self._clock() >= self._token_expires

    def credentials(self) -> Credentials:
        """The user's credentials, resolved now (a clear error when there are none)."""
        return as_credentials(self._credentials)

    def access_token(self, client: JsonClient, *, renew: bool = False) -> str:
        """A bearer token for this service, cached until it expires.

        ``renew`` drops the cached one first: the service answered 401 with it.
        """
        if renew:
            self._token = None
        if self._token is not None and self._clock() < self._token_expires:
            return self._token
        credentials = self.credentials()
        form = {
            "grant_type": "client_credentials",
            "client_id": credentials.client_id,
            "client_secret": credentials.client_secret,
        }
        try:
            # secret=True: the form is the client secret; it must reach this address and no other.
            answer = client.post(self.token_url, data=form, secret=True)
        except HttpStatusError as exc:
            if exc.error_code in _BAD_CREDENTIAL_ERRORS:
                raise CredentialsRefused(
                    f"The server refused the credentials (HTTP {exc.status}, {exc.error_code}). {CREDENTIALS_HELP}"
                ) from None
            raise
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not token or not isinstance(token, str):
            raise SatPluginError("The token endpoint answered without an access token; check the token URL.")
        try:
            lifetime = float(answer.get("expires_in") or 300)
        except (TypeError, ValueError):
            lifetime = 300.0
        self._token = token
        self._token_expires = self._clock() + max(0.0, lifetime - TOKEN_MARGIN_S)
        return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
