"""A small JSON-over-HTTP client that retries the way public catalogues need.

Catalogue servers rate-limit (429) and have bad minutes (5xx, dropped connections). A
search that gives up on the first hiccup wastes the user's time, and one that retries
forever hangs a QGIS task, so attempts are bounded and every wait can be canceled.

* 429 waits what ``Retry-After`` asks (delta seconds or an HTTP date). Sentinel Hub
  sends that header in milliseconds, unlike the HTTP standard, so the unit is a
  parameter (``retry_after_unit``) instead of a guess.
* 5xx, timeouts and connection errors back off exponentially with jitter, so many
  clients failing together do not come back in lockstep.
* 401 is never retried: it means the credentials are wrong, and the user has to act.

Request bodies can hold client secrets (the OAuth token request), so neither log lines
nor exception messages ever include a body, a query string or a header.
"""

from __future__ import annotations

import random
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable
from urllib.parse import urlsplit

import requests

from ..errors import Canceled, SatPluginError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
# A server asking for a longer pause than this is better answered with "try later"
# than with a task that sits silently for many minutes.
MAX_RETRY_AFTER_S = 600.0
# How often the built-in sleep looks at the cancel flag.
_CANCEL_POLL_S = 0.25
_TRANSIENT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)

CREDENTIALS_HELP = (
    "Check the client id and client secret in the QGIS authentication configuration "
    "(or in the environment variables SH_CLIENT_ID and SH_CLIENT_SECRET), and that they "
    "belong to the service you chose (Copernicus Data Space and commercial Sentinel Hub "
    "accounts are separate)."
)


class CredentialsRefused(SatPluginError):
    """The server answered 401: the credentials are missing, wrong or expired."""


class HttpStatusError(SatPluginError):
    """A 4xx answer other than 401 and 429: the request itself was wrong.

    ``error_code`` is the server's short error name when it sent one (OAuth servers say
    ``invalid_client``), so callers can turn it into advice.
    """

    def __init__(self, message: str, status: int, error_code: str | None = None):
        super().__init__(message)
        self.status = status
        self.error_code = error_code


class BadAnswer(Exception):
    """A 2xx answer whose body cannot be used (truncated, corrupt, wrong size): worth another try."""


def _read_json(response: requests.Response, where: str):
    try:
        return response.json()
    except ValueError:
        raise SatPluginError(f"{where} answered HTTP {response.status_code} but not with JSON.") from None


def safe_url(url: str) -> str:
    """The URL without query string or user info, fit for logs and messages."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


def parse_retry_after(value: str | None, unit_s: float = 1.0, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value, or None when it cannot be read.

    A number is multiplied by ``unit_s`` (1 for standard servers, 0.001 for Sentinel
    Hub). An HTTP date is measured from ``now``; a date in the past means "now".
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text) * unit_s)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return max(0.0, (when - now).total_seconds())


class JsonClient:
    """GET/POST returning parsed JSON, with bounded, cancelable retries.

    ``sleep`` and ``is_canceled`` are injectable so tests run without real waits; an
    injected ``sleep`` gets each whole wait in one call. ``now`` (a callable returning an
    aware datetime) only serves to resolve HTTP-date ``Retry-After`` values.
    """

    def __init__(
        self,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        backoff_base: float = BACKOFF_BASE_S,
        backoff_max: float = BACKOFF_MAX_S,
        retry_after_unit: float = 1.0,
        max_retry_after: float = MAX_RETRY_AFTER_S,
        sleep: Callable[[float], None] | None = None,
        is_canceled: Callable[[], bool] | None = None,
        now: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        log: Callable[[str], None] | None = None,
        session: requests.Session | None = None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_unit = retry_after_unit
        self.max_retry_after = max_retry_after
        self._sleep = sleep
        self.is_canceled = is_canceled
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._rng = rng or random.Random()
        self._log = log
        self.session = session or requests.Session()

    def get(self, url: str, *, params=None, headers=None) -> dict:
        return self.request("GET", url, params=params, headers=headers)

    def post(self, url: str, *, json=None, data=None, headers=None) -> dict:
        return self.request("POST", url, json=json, data=data, headers=headers)

    def request(self, method: str, url: str, *, json=None, data=None, params=None, headers=None) -> dict:
        """Send until a 2xx JSON answer, a non-retryable error or the last attempt."""
        return self.send(method, url, read=_read_json, json=json, data=data, params=params, headers=headers)

    def send(
        self, method: str, url: str, *, read, json=None, data=None, params=None, headers=None, stream: bool = False
    ):
        """The retry loop of :meth:`request` for any kind of answer.

        ``read(response, where)`` turns a 2xx answer into the result. Binary downloads
        pass ``stream=True`` and read the body themselves, so they can check the cancel
        flag between chunks and compare the body with ``Content-Length``. ``read`` may
        raise :class:`BadAnswer` (a truncated or corrupt body): that attempt is retried
        like a dropped connection, and so are connection errors and timeouts raised
        while the body is being read.
        """
        where = safe_url(url)
        last_problem = "no answer"
        for attempt in range(1, self.max_attempts + 1):
            self._check_canceled()
            try:
                response = self.session.request(
                    method,
                    url,
                    json=json,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=self.timeout,
                    **({"stream": True} if stream else {}),
                )
            except requests.exceptions.SSLError:
                # A certificate problem does not go away by waiting.
                raise SatPluginError(
                    f"The secure connection to {where} failed (certificate or proxy problem); "
                    "check the system's certificates and the QGIS network/proxy settings."
                ) from None
            except _TRANSIENT_ERRORS as exc:
                last_problem = type(exc).__name__
                if attempt < self.max_attempts:
                    self._retry_later(where, last_problem, self._backoff(attempt), attempt)
                continue
            except requests.RequestException as exc:
                raise SatPluginError(f"Could not send the request to {where} ({type(exc).__name__}).") from None

            status = response.status_code
            if status == 401:
                raise CredentialsRefused(
                    f"The server refused the credentials (HTTP 401 from {where}). {CREDENTIALS_HELP}"
                )
            if status == 429 or status >= 500:
                last_problem = f"HTTP {status}"
                if stream:
                    response.close()  # an unread streamed body would hold its connection
                if attempt < self.max_attempts:
                    delay = parse_retry_after(response.headers.get("Retry-After"), self.retry_after_unit, self._now())
                    if delay is None:
                        delay = self._backoff(attempt)
                    elif delay > self.max_retry_after:
                        raise SatPluginError(
                            f"{where} is rate-limiting this account and asks to wait {delay:.0f} s; "
                            "try again later or reduce the search period."
                        )
                    self._retry_later(where, last_problem, delay, attempt)
                continue
            if status >= 400:
                raise HttpStatusError(
                    f"{where} answered HTTP {status}: {_error_excerpt(response)}", status, _error_code(response)
                )
            try:
                return read(response, where)
            except (*_TRANSIENT_ERRORS, BadAnswer) as exc:
                last_problem = str(exc) if isinstance(exc, BadAnswer) else type(exc).__name__
                if attempt < self.max_attempts:
                    self._retry_later(where, last_problem, self._backoff(attempt), attempt)
                continue
            finally:
                if stream:
                    response.close()
        raise SatPluginError(
            f"Gave up on {where} after {self.max_attempts} attempts (last problem: {last_problem}). "
            "The service may be down; try again later."
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with "equal jitter": half fixed, half random."""
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def _retry_later(self, where: str, problem: str, delay: float, attempt: int) -> None:
        if self._log:
            self._log(
                f"{problem} from {where}; retrying in {delay:.1f} s (attempt {attempt + 1} of {self.max_attempts})."
            )
        self._wait(delay)

    def _wait(self, seconds: float) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            self._check_canceled()
            return
        deadline = time.monotonic() + seconds
        while True:
            self._check_canceled()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, _CANCEL_POLL_S))

    def _check_canceled(self) -> None:
        if self.is_canceled is not None and self.is_canceled():
            raise Canceled()


def _error_code(response: requests.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("error") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _error_excerpt(response: requests.Response, limit: int = 300) -> str:
    """The server's own error text, short: it usually says what was wrong with the query."""
    try:
        body = response.json()
    except ValueError:
        text = (response.text or "").strip()
    else:
        if isinstance(body, dict):
            detail = body.get("description") or body.get("detail") or body.get("message") or body.get("error")
            if isinstance(detail, dict):
                detail = detail.get("message") or detail.get("reason") or detail
            text = str(detail if detail is not None else body)
        else:
            text = str(body)
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(no details)"
