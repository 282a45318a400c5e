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

Time is bounded three ways. ``timeout`` is the socket's (per read: a server trickling a
byte now and then never trips it); ``request_deadline`` bounds one logical request,
attempts and waits included; ``run_deadline`` (a :class:`Deadline`, shareable between
the clients of one run) bounds everything a run does on the network. A watchdog thread
shuts the socket of a request down when its deadline passes or the user cancels, so a
stalled server is left within a fraction of a second whatever phase it stalls in.
Every wait is logged before it starts, and a wait that would pass a deadline is refused
with a message instead of being slept through.

Sizes are bounded too: a JSON answer is streamed and refused past ``max_json_bytes``,
a binary body past the limit its reader gives (``max_body_bytes`` at most).

Credentials never travel further than the address they were meant for: a request that
carries a secret (an ``Authorization`` header, the OAuth token form) never follows a
redirect, and a redirect answer to it is an error naming only the target's origin.
Other requests follow a few redirects to http(s) addresses, without reading the bodies
of the redirect answers. Request bodies can hold client secrets, so neither log lines
nor exception messages ever include a body, a query string or a header.
"""

from __future__ import annotations

import json as jsonlib
import math
import random
import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Callable
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import poolmanager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from ..errors import Canceled, SatPluginError
from ..feedback import Feedback
from .limits import DEFAULT_REQUEST_DEADLINE_S, DEFAULT_RUN_DEADLINE_S  # noqa: F401 (the client's defaults)

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_MAX_ATTEMPTS = 5
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 60.0
# A server asking for a longer pause than this is better answered with "try later"
# than with a task that sits silently for many minutes.
MAX_RETRY_AFTER_S = 600.0
# A catalogue page or a token answer is a few hundred kB at most.
DEFAULT_MAX_JSON_BYTES = 64 * 1024 * 1024
# Nothing the plugin downloads in one request is larger than a few hundred MB.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024 * 1024
# The part of an error answer read to quote the server's reason.
ERROR_BODY_BYTES = 64 * 1024
MAX_REDIRECTS = 5
READ_CHUNK_BYTES = 64 * 1024
# How often the built-in sleep and the watchdog look at the cancel flag and the clock.
_CANCEL_POLL_S = 0.25
_WATCH_POLL_S = 0.1
_TRANSIENT_ERRORS = (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
_REDIRECTS = (301, 302, 303, 307, 308)
# Header and form field names whose values are secrets: a request holding one never
# follows a redirect.
_SECRET_HEADERS = {"authorization", "proxy-authorization", "cookie"}
_SECRET_FIELDS = {"client_secret", "password", "refresh_token", "access_token", "api_key", "apikey"}

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


class RedirectRefused(SatPluginError):
    """A redirect that was not followed: the request carried credentials, or it led off http(s)."""


class DeadlineExceeded(SatPluginError):
    """A request or a run ran out of time, or a wait would have passed its deadline."""


class AnswerTooLarge(SatPluginError):
    """An answer larger than anything the request can legitimately get."""


class BadAnswer(Exception):
    """A 2xx answer whose body cannot be used (truncated, corrupt, wrong size): worth another try."""


def safe_url(url: str) -> str:
    """The URL without query string or user info, fit for logs and messages."""
    parts = urlsplit(url)
    return f"{origin(url)}{parts.path}"


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: what "the same server" means for credentials."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:  # not a number: keep the text, so two such URLs still compare
        port = parts.netloc.rpartition(":")[2]
    if port:
        host = f"{host}:{port}"
    return f"{parts.scheme.lower()}://{host}"


def carries_secret(headers=None, data=None, json=None) -> bool:
    """Whether a request holds credentials: then it must reach exactly the address it names."""
    if any(str(k).lower() in _SECRET_HEADERS for k in (headers or {})):
        return True
    for body in (data, json):
        if isinstance(body, dict) and any(str(k).lower() in _SECRET_FIELDS for k in body):
            return True
    return False


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
        seconds = float(text) * unit_s
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
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


def _seconds(value: float) -> str:
    return f"{value:g}"


class Deadline:
    """A time budget on the monotonic clock, shared by everything that spends it.

    ``seconds`` None means no limit. ``kind`` ("request" or "run") and ``setting`` (the
    parameter that raises it) only serve the messages. ``advance`` books time that an
    injected ``sleep`` skipped, so a test's virtual waits spend the budget as real ones do.
    """

    def __init__(self, seconds: float | None, *, kind: str = "run", setting: str = "RUN_DEADLINE"):
        if seconds is not None and not seconds > 0:
            raise ValueError("a deadline must be a positive number of seconds, or None")
        self.seconds = None if seconds is None else float(seconds)
        self.kind = kind
        self.setting = setting
        self.waited = 0.0  # seconds spent in retry waits
        self._start = time.monotonic()
        self._skipped = 0.0
        self._lock = threading.Lock()

    @classmethod
    def of(cls, value, *, kind: str = "run", setting: str = "RUN_DEADLINE") -> "Deadline":
        """A Deadline as given, or a new one from a number of seconds (or None)."""
        return value if isinstance(value, Deadline) else cls(value, kind=kind, setting=setting)

    def left(self) -> float:
        if self.seconds is None:
            return math.inf
        with self._lock:
            return self.seconds - (time.monotonic() - self._start) - self._skipped

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._skipped += seconds

    def add_wait(self, seconds: float) -> float:
        with self._lock:
            self.waited += seconds
            return self.waited

    def passed_error(self, where: str) -> DeadlineExceeded:
        if self.kind == "request":
            return DeadlineExceeded(
                f"{where} did not finish answering within {_seconds(self.seconds)} s, the deadline of one "
                f"request; the service is stalled or very slow: try again later, or allow more time with {self.setting}."
            )
        return DeadlineExceeded(
            f"The run used up its network deadline of {_seconds(self.seconds)} s (last waiting for {where}); "
            f"try again later (a download resumes from its complete files), or allow more time with {self.setting}."
        )

    def wait_refused_error(self, where: str, delay: float, problem: str) -> DeadlineExceeded:
        return DeadlineExceeded(
            f"{where} asks for a wait of {delay:.0f} s ({problem}), which would pass the {self.kind} deadline of "
            f"{_seconds(self.seconds)} s; try again later, or allow more time with {self.setting}."
        )


# --- the watchdog: deadlines and cancel for requests blocked in a socket read -----------


class _Watch:
    """One request under watch: the sockets it uses and why it was stopped, if it was."""

    def __init__(self, fire_at: float, reason: str, is_canceled: Callable[[], bool] | None):
        self.fire_at = fire_at
        self.reason = reason  # the deadline that sets fire_at: "request" or "run"
        self.is_canceled = is_canceled
        self.fired: str | None = None  # "request", "run" or "canceled"
        self._socks: list = []
        self._lock = threading.Lock()

    def attach(self, conn) -> None:
        """Remember ``conn``'s socket now: http.client drops it from the connection while
        the response still reads from it (an answer that closes the connection)."""
        sock = getattr(conn, "sock", None)
        if sock is None:
            return
        with self._lock:
            self._socks.append(sock)
        if self.fired:
            _shutdown(sock)

    def check(self) -> None:
        if self.fired is None:
            if time.monotonic() >= self.fire_at:
                self.fired = self.reason
            elif self.is_canceled is not None:
                try:
                    if self.is_canceled():
                        self.fired = "canceled"
                except Exception:  # noqa: BLE001 - a broken callback must not kill the watchdog
                    pass
        if self.fired:
            with self._lock:
                socks = list(self._socks)
            for sock in socks:
                _shutdown(sock)


def _shutdown(sock) -> None:
    """Wake a thread blocked reading ``sock``: its read returns at once, with no data."""
    sock = getattr(sock, "socket", sock)  # urllib3's TLS-in-TLS wrapper holds the real socket
    if isinstance(sock, socket.socket):
        try:
            # The plain socket's shutdown: an SSL socket's own one would change its state
            # under the thread that is reading it.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _Watchdog:
    """One daemon thread for all clients: it looks at every watched request each tick."""

    def __init__(self):
        self._watches: set[_Watch] = set()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watch: _Watch) -> None:
        with self._cond:
            self._watches.add(watch)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="satplugin-http-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, watch: _Watch) -> None:
        with self._cond:
            self._watches.discard(watch)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._watches:
                    self._cond.wait()
                watches = list(self._watches)
            for watch in watches:
                watch.check()
            time.sleep(_WATCH_POLL_S)


_WATCHDOG = _Watchdog()
_CURRENT = threading.local()


def _attach_to_current_watch(conn) -> None:
    watch = getattr(_CURRENT, "watch", None)
    if watch is not None:
        watch.attach(conn)


class _WatchedHTTPConnection(HTTPConnection):
    def connect(self):
        super().connect()
        _attach_to_current_watch(self)


class _WatchedHTTPSConnection(HTTPSConnection):
    def connect(self):
        super().connect()
        _attach_to_current_watch(self)


class _WatchedHTTPPool(HTTPConnectionPool):
    """Shows the watch the socket of every connection a request uses: a kept-alive one
    when it is taken from the pool, a new one as soon as it is connected."""

    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _attach_to_current_watch(conn)
        return conn


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection

    def _get_conn(self, timeout=None):
        conn = super()._get_conn(timeout)
        _attach_to_current_watch(conn)
        return conn


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """urllib3's own pools, except that each connection a request takes is shown to its watch."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        # A SOCKS manager brings pools of its own; only the standard ones are replaced.
        if manager.pool_classes_by_scheme is poolmanager.pool_classes_by_scheme:
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def new_session() -> requests.Session:
    """A ``requests.Session`` whose requests the watchdog can stop."""
    session = requests.Session()
    adapter = _WatchedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- the client -----------------------------------------------------------------------


NOT_RESOLVED = "the host name does not resolve"
REFUSED = "the connection was refused"
NO_PROXY = "the proxy could not be reached"
# What to do when every attempt failed so, in place of "the service may be down".
GIVE_UP_ADVICE = {
    NOT_RESOLVED: "Check that this computer is online, that the service URL is spelled right, and QGIS's proxy "
                  "settings where it needs a proxy.",
    REFUSED: "Nothing answers at that address: check the service URL; the service may also be down.",
    NO_PROXY: "Check the proxy in QGIS's settings (Settings > Options > Network) or the HTTPS_PROXY variable.",
}
PROXY_HELP = "Check the proxy's user and password in QGIS's settings (Settings > Options > Network) or in HTTPS_PROXY."


def connection_problem(exc: Exception) -> str:
    """A failed connection in words: the error's class and, where the cause tells more, what happened.

    requests wraps urllib3's error, which wraps the socket's; offline, the socket's is a name
    resolution failure, which "the service may be down" would misdescribe.
    """
    name = type(exc).__name__
    if isinstance(exc, requests.exceptions.ProxyError):
        return f"{name}: {NO_PROXY}"  # whatever its cause: the proxy's address is the one to check
    seen, cause = set(), exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, socket.gaierror):
            return f"{name}: {NOT_RESOLVED}"
        if isinstance(cause, ConnectionRefusedError):
            return f"{name}: {REFUSED}"
        inner = getattr(cause, "reason", None) or (cause.args[0] if cause.args else None)
        cause = cause.__cause__ or cause.__context__ or (inner if isinstance(inner, BaseException) else None)
    return name


@dataclass
class _Retry:
    problem: str
    delay: float | None = None  # None: exponential backoff


class JsonClient:
    """GET/POST returning parsed JSON, with bounded, cancelable retries and deadlines.

    ``feedback`` is the run's (its cancel flag stops waits and requests, its log says why a
    request is retried). ``sleep`` is injectable so tests run without real waits; an
    injected ``sleep`` gets each whole wait in one call (and the deadlines count it as
    spent). ``now`` (a callable returning an aware datetime) only serves to resolve
    HTTP-date ``Retry-After`` values. ``request_deadline`` is in seconds (None: none);
    ``run_deadline`` is seconds from now or a :class:`Deadline` shared with other clients.
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
        request_deadline: float | None = DEFAULT_REQUEST_DEADLINE_S,
        run_deadline: float | Deadline | None = DEFAULT_RUN_DEADLINE_S,
        max_json_bytes: int = DEFAULT_MAX_JSON_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        sleep: Callable[[float], None] | None = None,
        feedback: Feedback | None = None,
        now: Callable[[], datetime] | None = None,
        rng: random.Random | None = None,
        session: requests.Session | None = None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if request_deadline is not None and not request_deadline > 0:
            raise ValueError("request_deadline must be a positive number of seconds, or None")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.retry_after_unit = retry_after_unit
        self.max_retry_after = max_retry_after
        self.request_deadline = request_deadline
        self.run_deadline = Deadline.of(run_deadline)
        self.max_json_bytes = int(max_json_bytes)
        self.max_body_bytes = int(max_body_bytes)
        self._sleep = sleep
        self.feedback = Feedback.of(feedback)  # the run's cancel flag and log
        self._now = now or (lambda: datetime.now(timezone.utc))
        self._rng = rng or random.Random()
        self.session = session or new_session()

    def get(self, url: str, *, params=None, headers=None) -> dict:
        return self.request("GET", url, params=params, headers=headers)

    def post(self, url: str, *, json=None, data=None, headers=None, secret: bool = False) -> dict:
        return self.request("POST", url, json=json, data=data, headers=headers, secret=secret)

    def request(self, method: str, url: str, *, json=None, data=None, params=None, headers=None, secret=False) -> dict:
        """Send until a 2xx JSON answer, a non-retryable error or the last attempt."""
        return self.send(
            method, url, read=self.read_json, json=json, data=data, params=params, headers=headers, secret=secret
        )

    def send(self, method: str, url: str, *, read, json=None, data=None, params=None, headers=None, secret=False):
        """The retry loop of :meth:`request` for any kind of answer.

        ``read(response, where)`` turns a 2xx answer into the result; the body is
        streamed, so a reader takes it with :meth:`read_limited` (size cap and cancel
        between chunks). ``read`` may raise :class:`BadAnswer` (a truncated or corrupt
        body): that attempt is retried like a dropped connection, and so are connection
        errors and timeouts raised while the body is being read. ``secret`` marks a
        request that carries credentials in a way :func:`carries_secret` cannot see.
        """
        where = safe_url(url)
        budget = Deadline(self.request_deadline, kind="request", setting="REQUEST_DEADLINE")
        sends_secret = secret or carries_secret(headers, data, json)
        last_problem = "no answer"
        for attempt in range(1, self.max_attempts + 1):
            self._check_canceled()
            outcome = self._attempt(method, url, where, read, budget, sends_secret, json, data, params, headers)
            if not isinstance(outcome, _Retry):
                return outcome
            last_problem = outcome.problem
            if attempt < self.max_attempts:
                delay = outcome.delay if outcome.delay is not None else self.backoff_delay(attempt)
                self.retry_later(where, last_problem, delay, attempt, budget)
        raise SatPluginError(
            f"Gave up on {where} after {self.max_attempts} attempts (last problem: {last_problem}). "
            + GIVE_UP_ADVICE.get(last_problem.partition(": ")[2], "The service may be down; try again later.")
        )

    def _attempt(self, method, url, where, read, budget, sends_secret, json, data, params, headers):
        """One attempt: the answer's result, a :class:`_Retry`, or an exception for the user."""
        with self._watched(where, budget) as watch:
            try:
                response = self._open(method, url, where, watch, budget, sends_secret, json, data, params, headers)
            except requests.exceptions.SSLError:
                self._raise_if_stopped(watch, where, budget)
                # A certificate problem does not go away by waiting.
                raise SatPluginError(
                    f"The secure connection to {where} failed (certificate or proxy problem); "
                    "check the system's certificates and the QGIS network/proxy settings."
                ) from None
            except _TRANSIENT_ERRORS as exc:
                self._raise_if_stopped(watch, where, budget)
                if isinstance(exc, requests.exceptions.ProxyError) and " 407 " in str(exc):
                    # The proxy refused the credentials of an HTTPS tunnel: waiting does not change them.
                    raise SatPluginError(f"The proxy refused its credentials (HTTP 407 for {where}). {PROXY_HELP}") from None
                return _Retry(connection_problem(exc))
            except requests.RequestException as exc:
                self._raise_if_stopped(watch, where, budget)
                raise SatPluginError(f"Could not send the request to {where} ({type(exc).__name__}).") from None
            try:
                status = response.status_code
                if status == 401:
                    raise CredentialsRefused(
                        f"The server refused the credentials (HTTP 401 from {where}). {CREDENTIALS_HELP}"
                    )
                if status == 407:
                    raise SatPluginError(f"The proxy refused its credentials (HTTP 407 for {where}). {PROXY_HELP}")
                if status == 429 or status >= 500:
                    delay = parse_retry_after(response.headers.get("Retry-After"), self.retry_after_unit, self._now())
                    if delay is not None and delay > self.max_retry_after:
                        raise SatPluginError(
                            f"{where} is rate-limiting this account and asks to wait {delay:.0f} s; "
                            "try again later or reduce the search period."
                        )
                    return _Retry(f"HTTP {status}", delay)
                if status >= 400:
                    body = self._error_body(response)
                    raise HttpStatusError(f"{where} answered HTTP {status}: {_error_excerpt(body)}", status, _error_code(body))
                if status >= 300:
                    raise SatPluginError(f"{where} answered HTTP {status}, which is not an answer this plugin can use.")
                try:
                    result = read(response, where)
                    # A body that ends at EOF (no length, not chunked) reads as complete when
                    # the watchdog shut the socket: that is a stop, not an answer.
                    self._raise_if_stopped(watch, where, budget)
                    return result
                except (*_TRANSIENT_ERRORS, BadAnswer) as exc:
                    self._raise_if_stopped(watch, where, budget)
                    return _Retry(str(exc) if isinstance(exc, BadAnswer) else connection_problem(exc))
            except Exception:
                # A body cut short by the watchdog reads as any error: say what really happened.
                self._raise_if_stopped(watch, where, budget)
                raise
            finally:
                response.close()  # an unread body would hold its connection

    def _open(self, method, url, where, watch, budget, sends_secret, json, data, params, headers):
        """The response to the request, after the redirects that may be followed."""
        target, body = url, {"json": json, "data": data, "params": params}
        for _ in range(MAX_REDIRECTS + 1):
            left = min(budget.left(), self.run_deadline.left())
            response = self.session.request(
                method,
                target,
                headers=headers,
                # Connecting is not watched (no socket yet): bound it by the deadline itself.
                timeout=(max(0.05, min(self.timeout, left)), self.timeout),
                stream=True,
                allow_redirects=False,
                **body,
            )
            if response.status_code not in _REDIRECTS or "Location" not in response.headers:
                return response
            response.close()  # a redirect's body is never read
            self._raise_if_stopped(watch, where, budget)
            nxt = urljoin(target, response.headers["Location"])
            if sends_secret:
                raise RedirectRefused(
                    f"{where} answered HTTP {response.status_code}, a redirect to {origin(nxt)}; requests that carry "
                    "credentials are never sent on, so set the service and token URLs (SERVICE_URL, TOKEN_URL) to "
                    "the service's own addresses."
                )
            if urlsplit(nxt).scheme.lower() not in ("http", "https"):
                raise RedirectRefused(f"{where} redirects to a non-HTTP address; check the service URL.")
            if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
                method, body = "GET", {}
            else:
                body = {"json": json, "data": data}  # the query string is part of the new address
            target = nxt
        raise RedirectRefused(f"{where} redirects more than {MAX_REDIRECTS} times; check the service URL.")

    @contextmanager
    def _watched(self, where: str, budget: Deadline):
        request_left, run_left = budget.left(), self.run_deadline.left()
        if request_left <= 0:
            raise budget.passed_error(where)
        if run_left <= 0:
            raise self.run_deadline.passed_error(where)
        reason = "request" if request_left <= run_left else "run"
        left = min(request_left, run_left)
        watch = _Watch(time.monotonic() + left if math.isfinite(left) else math.inf, reason, self.feedback.is_canceled)
        previous = getattr(_CURRENT, "watch", None)
        _CURRENT.watch = watch
        _WATCHDOG.add(watch)
        try:
            yield watch
        finally:
            _WATCHDOG.remove(watch)
            _CURRENT.watch = previous

    def _raise_if_stopped(self, watch: _Watch, where: str, budget: Deadline) -> None:
        if watch.fired == "canceled":
            raise Canceled()
        if watch.fired == "request":
            raise budget.passed_error(where)
        if watch.fired == "run":
            raise self.run_deadline.passed_error(where)

    def read_limited(self, response, where: str, limit: int, what: str = "answer") -> bytes:
        """The whole body, refused past ``limit`` bytes (decoded), checking cancel per chunk."""
        declared = response.headers.get("Content-Length")
        if declared is not None and declared.strip().isdigit() and int(declared) > limit:
            raise _too_large(where, limit, what)
        buf = bytearray()
        try:
            for chunk in response.iter_content(READ_CHUNK_BYTES):
                self._check_canceled()
                buf += chunk
                if len(buf) > limit:
                    raise _too_large(where, limit, what)
        except requests.exceptions.ContentDecodingError:
            raise BadAnswer("the body could not be decoded") from None
        return bytes(buf)

    def read_json(self, response, where: str):
        """A JSON body, at most ``max_json_bytes`` long."""
        raw = self.read_limited(response, where, self.max_json_bytes, "JSON answer")
        try:
            return jsonlib.loads(raw)
        except ValueError:
            raise SatPluginError(f"{where} answered HTTP {response.status_code} but not with JSON.") from None

    def _error_body(self, response) -> bytes:
        """The start of an error answer, enough to quote the server's reason."""
        buf = bytearray()
        try:
            for chunk in response.iter_content(READ_CHUNK_BYTES):
                buf += chunk
                if len(buf) >= ERROR_BODY_BYTES:
                    break
        except (requests.RequestException, OSError):
            pass
        return bytes(buf[:ERROR_BODY_BYTES])

    def backoff_delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt ``attempt``: exponential, with "equal jitter".

        Half of it is fixed, half random. Public, with :meth:`retry_later`, so that a caller
        that retries on its own (a corrupt file read again) waits as this client's requests do.
        """
        ceiling = min(self.backoff_max, self.backoff_base * (2 ** (attempt - 1)))
        return ceiling * (0.5 + 0.5 * self._rng.random())

    def retry_later(self, where: str, problem: str, delay: float, attempt: int, budget: Deadline | None = None) -> None:
        """Log the wait before attempt ``attempt + 1``, then wait, unless it would pass a deadline."""
        for deadline in (budget, self.run_deadline):
            if deadline is not None and delay > deadline.left():
                raise deadline.wait_refused_error(where, delay, problem)
        total = budget.add_wait(delay) if budget is not None else delay
        self.feedback.log(
            f"No usable answer from {where} ({problem}); retrying in {delay:.1f} s "
            f"(attempt {attempt + 1} of {self.max_attempts}; {total:.0f} s of waiting for this request in all)."
        )
        self._wait(delay, budget)

    def _wait(self, seconds: float, budget: Deadline | None = None) -> None:
        if self._sleep is not None:
            self._sleep(seconds)
            for deadline in (budget, self.run_deadline):
                if deadline is not None:
                    deadline.advance(seconds)
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
        self.feedback.check_canceled()


def _too_large(where: str, limit: int, what: str) -> AnswerTooLarge:
    size = f"{limit / (1024 * 1024):g} MiB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return AnswerTooLarge(
        f"{where} sent a {what} larger than {size}, more than this request can legitimately get; "
        "check that the service URL points to the service itself, and try again later."
    )


def _parsed(body: bytes):
    try:
        return jsonlib.loads(body)
    except ValueError:
        return None


def _error_code(body: bytes) -> str | None:
    parsed = _parsed(body)
    code = parsed.get("error") if isinstance(parsed, dict) else None
    return code if isinstance(code, str) else None


def _error_excerpt(body: bytes, limit: int = 300) -> str:
    """The server's own error text, short: it usually says what was wrong with the query."""
    parsed = _parsed(body)
    if isinstance(parsed, dict):
        detail = parsed.get("description") or parsed.get("detail") or parsed.get("message") or parsed.get("error")
        if isinstance(detail, dict):
            detail = detail.get("message") or detail.get("reason") or detail
        text = str(detail if detail is not None else parsed)
    elif parsed is not None:
        text = str(parsed)
    else:
        text = body.decode("utf-8", "replace").strip()
    text = " ".join(text.split())
    return text[:limit] + ("..." if len(text) > limit else "") if text else "(no details)"
