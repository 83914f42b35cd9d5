"""The transport of the Sphere Engine Containers workspace API: :class:`ContainersClient`.

Its errors are in :mod:`sphere_docs.api.errors` and what it answers in
:mod:`sphere_docs.api.models`; both are re-exported here.

:class:`ContainersClient` wraps one :class:`requests.Session` (injectable) and
speaks the API as the vendor reference documents it: the access token in the
``access_token`` query parameter, request bodies as form fields with booleans
as ``true``/``false``, JSON responses.  Parsing is tolerant: ``state.code`` may
be an int or a string, the create envelope ``{"message", "workspace": {...}}``
and the bare object of ``GET /workspaces/{id}`` are both accepted, and every
field we do not model stays available in ``Workspace.raw``.

Exceptions
----------
Every error raised here is a :class:`SphereEngineError`::

    SphereDocsError                      (sphere_docs.core.errors)
    └── SphereEngineError                any failed API call
        ├── AuthError                    401 / 403: token missing, wrong or not allowed
        ├── NotFoundError                404: unknown workspace, project or path
        ├── InvalidRequestError          400 / 422 and other 4xx: the API rejected the data
        ├── RateLimitedError             429 after the retries ran out (.retry_after)
        ├── ServerError                  5xx after the retries ran out
        └── TransportError               no usable HTTP answer: refused, reset, cut off
            ├── ApiTimeout               no answer within the timeout (also a TimeoutError)
            └── MalformedResponseError   an answer that is not the JSON we expect

Each carries ``status`` (HTTP status or ``None``), ``error_code`` (the API's
``error_code`` or ``None``), ``message`` (the API's or our explanation),
``method``, ``path`` (e.g. ``/api/v1/workspaces/48db…``: no host, never the
token) and ``maybe_processed`` (``True`` when a POST may have taken effect on
the server although we got no usable answer).

No exception text, ``repr``, chained exception or log line contains the
access token: library exceptions (whose messages quote the full URL) are
never chained — the client raises its own error after leaving the ``except``
block, so neither ``__cause__`` nor ``__context__`` is set — and the HTTP
libraries' loggers get :class:`sphere_docs.core.redact.RedactingFilter`.

Timeouts and retries
--------------------
Every call has a timeout (``timeout`` seconds for connecting and for each
read).  Retries use urllib3's ``Retry`` on an ``HTTPAdapter`` mounted for the
API host, with exponential backoff and jitter (``backoff * 2**(n-1)``, the
sleep drawn between half and all of that, capped at ``BACKOFF_MAX``).  What is
retried depends on whether repeating the request is safe (:data:`RETRY_POLICY`,
the README's table says the same):

=====================================================  ==============  =============
failure                                                GET, PUT        POST (create)
=====================================================  ==============  =============
connect error (refused, DNS, connect timeout)          retried         retried
429, 503 (``Retry-After`` honoured, capped)            retried         retried
502, 504                                               retried         not retried
read timeout, reset after sending, cut-off answer      retried         not retried
500, other 5xx, 4xx, an unparsable answer              not retried     not retried
=====================================================  ==============  =============

Why: ``GET`` is a read and every ``PUT`` (stop, resume, remove) drives the
workspace to a state, so doing it twice is harmless (the emulator answers 200
to a repeat; the reference lists their repeatability among its open questions,
but a repeat can at worst answer an error, never cost a slot).  A connect
error means no byte of the request left this machine.  The reference says
nothing about 429 or 503 (it documents neither); by HTTP's definitions both
refuse the request — 429 "too many requests" (RFC 6585), 503 "unable to handle
the request" due to overload or maintenance (RFC 9110 15.6.4) — and they are
what a load balancer answers without forwarding, so a create answered that way
was not performed.  502 and 504 say that a gateway got a bad answer, or none in
time, from the server behind it (RFC 9110 15.6.3, 15.6.5): the server may have
created the workspace, and so may a request whose answer timed out or was cut
off.  A 500 reports a failure of the application that a repeat usually meets
again, so it ends the call at once for every method.

**Duplicate creation.**  ``POST /workspaces`` is the one call that is not
idempotent and the API has no idempotency key or marker field, so the client
never repeats a POST that may have reached the application: it retries a POST
only when the request surely was not sent (connect error) or the server said
it was not processed (429, 503).  On a read timeout, a reset after sending, a
502/504 or an unparsable 2xx answer it raises with ``maybe_processed=True``
instead of guessing.  The provisioner (``sphere_docs.pipeline.provision``) then applies
the site's ``on_error`` policy for that embed and keeps the create's *intent*
in the ledger.  The next build lists the project's workspaces and adopts one
only when it matches the intent exactly (same creation options, created in the
intent's time window, never entered, owned by no ledger entry, the only such
candidate); nothing in a workspace says who created it, and a reader's lazy
workspace is entered as soon as it is created, so it is never adopted.  The
client itself never lists to "find ours".

Connections
-----------
Each thread calling a client has its own connection to the API, kept alive from
one call to the next (no TCP and TLS handshake per call): its own
:class:`requests.adapters.HTTPAdapter` with a pool of one (requests does not
promise a ``Session`` is thread-safe, and an adapter per thread needs none).
A connection idle for more than :data:`KEEPALIVE_IDLE` seconds is not reused:
servers close idle connections after a few seconds, and a create sent on a
connection the server is just closing fails in a way that cannot be told apart
from a create that was performed.  Requests are prepared directly, as requests
would prepare them (same URL, form body and headers), without a ``Session``:
no cookies, auth or hooks apply to the API, and merging them cost the lazy
endpoint more CPU than the exchange itself.  The environment is read once, when
the client is made: the proxy for the API host (``HTTPS_PROXY``/``HTTP_PROXY``,
``NO_PROXY``) and ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE``; ``~/.netrc`` is not
consulted (the token is the API's only credential).  An injected ``session``
is used as given, by every thread, through ``Session.request``.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import random
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict
from urllib3.exceptions import NewConnectionError
from urllib3.util.retry import Retry

from .. import __version__
from ..core.redact import clean_snippet, install_log_redaction, redact, register_secret
from .errors import (
    ApiTimeout,
    AuthError,
    InvalidRequestError,
    MalformedResponseError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    SphereEngineError,
    TransportError,
)
from .models import (
    STATE_ERROR,
    STATE_NAMES,
    STATE_REMOVED,
    STATE_RUNNING,
    STATE_STARTING,
    STATE_STOPPED,
    Project,
    Workspace,
    WorkspacePage,
    _next_page_token,
    _opt_int,
)

if TYPE_CHECKING:
    from ..core.settings import SiteSettings

__all__ = [
    "RETRY_POLICY",
    "STATE_ERROR",
    "STATE_NAMES",
    "STATE_REMOVED",
    "STATE_RUNNING",
    "STATE_STARTING",
    "STATE_STOPPED",
    "ApiTimeout",
    "AuthError",
    "ContainersClient",
    "InvalidRequestError",
    "MalformedResponseError",
    "NotFoundError",
    "Project",
    "RateLimitedError",
    "ServerError",
    "SphereEngineError",
    "TransportError",
    "Workspace",
    "WorkspacePage",
]

USER_AGENT = f"sphere-docs/{__version__}"


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS"})
#: statuses that mean "the request was not processed": retried for every method
NOT_PROCESSED_STATUSES = frozenset({429, 503})
#: statuses retried for an idempotent method (the server may have acted: harmless to repeat)
RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: method -> statuses retried (any other method: ``NOT_PROCESSED_STATUSES`` only); read
#: timeouts, resets and cut-off answers are retried for the idempotent methods only, and
#: connect errors for every method.  See the module docstring.
RETRY_POLICY: dict[str, frozenset[int]] = {method: RETRY_STATUSES for method in IDEMPOTENT_METHODS}


def retried_statuses(method: str) -> frozenset[int]:
    """The HTTP statuses after which a ``method`` request is repeated (see the module docstring)."""
    return RETRY_POLICY.get(method.upper(), NOT_PROCESSED_STATUSES)


BACKOFF_MAX = 8.0
#: longest text of the server's that an error message quotes (after masking)
MESSAGE_MAX = 200
RETRY_AFTER_MAX = 30.0
#: seconds after which an idle kept-alive connection is closed instead of reused (see the module docstring)
KEEPALIVE_IDLE = 2.0


# --------------------------------------------------------------------------- retries


class _ApiRetry(Retry):
    """urllib3 ``Retry`` with :data:`RETRY_POLICY`, our jitter and a capped Retry-After.

    Connect errors are retried for every method (urllib3 does so regardless of
    ``allowed_methods``); read errors (timeouts, resets, cut-off answers) only for
    ``allowed_methods`` = the idempotent ones; statuses as :meth:`is_retry` says.
    """

    retry_after_cap: float = RETRY_AFTER_MAX

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        # Exactly the policy's statuses: urllib3 would also repeat any method on a 413
        # with Retry-After, and consults allowed_methods, which only governs read errors here.
        return status_code in retried_statuses(method)

    def get_backoff_time(self) -> float:
        errors = len(self.history)
        if errors <= 0 or self.backoff_factor <= 0:
            return 0.0
        base = min(BACKOFF_MAX, self.backoff_factor * (2 ** (errors - 1)))
        return base / 2 + random.uniform(0, base / 2)  # "equal jitter"

    def get_retry_after(self, response: Any) -> float | None:
        value = super().get_retry_after(response)
        if value is None:
            return None
        return max(0.0, min(float(value), self.retry_after_cap))

    def sleep_for_retry(self, response: Any) -> bool:
        retry_after = self.get_retry_after(response)
        if retry_after is None:
            return False
        if retry_after > 0:
            time.sleep(retry_after)
        return True

    def new(self, **kw: Any) -> _ApiRetry:
        fresh = super().new(**kw)
        fresh.retry_after_cap = self.retry_after_cap
        return fresh


_RETRY_HAS_OTHER = "other" in inspect.signature(Retry.__init__).parameters


# --------------------------------------------------------------------------- client


class ContainersClient:
    """The Containers workspace API, on one ``requests.Session`` per thread (or the one given).

    ``api_base`` is e.g. ``https://12345678.containers.sphere-engine.com/api/v1``
    (``SiteSettings.api.api_base``).  Thread-safe for concurrent calls (the
    provisioner and the lazy endpoint share one client between their threads);
    see *Connections* in the module docstring.  ``pool_size`` sizes the pool of
    an injected ``session``; a thread's own session needs one connection.
    """

    def __init__(
        self,
        api_base: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 3,
        backoff: float = 0.5,
        session: requests.Session | None = None,
        pool_size: int = 10,
        retry_after_max: float = RETRY_AFTER_MAX,
    ):
        if not token:
            raise ValueError("ContainersClient needs an access token")
        parts = urlsplit(api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"api_base must be an http(s) URL, got {api_base!r}")
        self.api_base = api_base.rstrip("/")
        self._base_path = parts.path.rstrip("/")
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.__token = token
        register_secret(token)
        install_log_redaction()

        extra: dict[str, Any] = {"other": 0} if _RETRY_HAS_OTHER else {}  # urllib3 >= 1.26.?
        retry = _ApiRetry(
            **extra,
            total=self.retries,
            connect=self.retries,
            read=self.retries,
            status=self.retries,
            redirect=0,
            status_forcelist=RETRY_STATUSES,  # is_retry decides per method
            allowed_methods=IDEMPOTENT_METHODS,
            backoff_factor=self.backoff,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
        )
        retry.retry_after_cap = float(retry_after_max)
        self._retry = retry
        self._shared = session  # None: each thread has its own adapter (_adapter)
        if session is not None:
            size = max(1, int(pool_size))
            prefix = f"{parts.scheme}://{parts.netloc}/"
            session.mount(prefix, HTTPAdapter(max_retries=retry, pool_connections=2, pool_maxsize=size))
        # The environment, read once (requests reads it on every call): see the module docstring.
        self._proxies = requests.utils.get_environ_proxies(self.api_base)
        self._verify: bool | str = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        base = requests.PreparedRequest()
        base.prepare_url(self.api_base, None)  # the URL as requests would send it (IDNA, quoting)
        self._url_base = str(base.url).rstrip("/")
        self._local = threading.local()
        self._adapters: weakref.WeakSet[HTTPAdapter] = weakref.WeakSet()
        self._adapters_lock = threading.Lock()

    def _adapter(self) -> HTTPAdapter:
        """This thread's transport to the API (made on its first call), its connection kept alive."""
        local = self._local
        now = time.monotonic()
        adapter: HTTPAdapter | None = getattr(local, "adapter", None)
        if adapter is None:
            adapter = HTTPAdapter(max_retries=self._retry, pool_connections=2, pool_maxsize=1)
            local.adapter = adapter
            with self._adapters_lock:
                self._adapters.add(adapter)
        elif now - local.used > KEEPALIVE_IDLE:
            adapter.close()  # the idle connection goes; the adapter connects afresh
        local.used = now
        return adapter

    def _send(self, method: str, path: str, query: Mapping[str, Any],
              data: Mapping[str, str] | None) -> requests.Response:
        """One HTTP exchange (with the adapter's retries); raises ``requests`` exceptions."""
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        timeout = (self.timeout, self.timeout)
        if self._shared is not None:
            return self._shared.request(method, self.api_base + path, params=query, data=data, headers=headers,
                                        timeout=timeout, allow_redirects=False)
        # No session: nothing of one (auth, cookies, hooks, the environment) applies to the
        # API, and merging them costs more CPU than the exchange itself.  The request is the
        # one requests would prepare: the same URL, form body and headers.
        prepared = requests.PreparedRequest()
        prepared.method = method
        prepared.url = f"{self._url_base}{path}?{urlencode(query, doseq=True)}"
        body = urlencode(data, doseq=True).encode("utf-8") if data else None
        headers.update({"Accept-Encoding": "gzip, deflate", "Connection": "keep-alive"})
        if body is not None:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            headers["Content-Length"] = str(len(body))
        elif method not in ("GET", "HEAD"):
            headers["Content-Length"] = "0"
        prepared.headers = CaseInsensitiveDict(headers)
        prepared.body = body
        return self._adapter().send(prepared, stream=False, timeout=timeout, verify=self._verify, cert=None,
                                    proxies=self._proxies)

    @classmethod
    def from_settings(cls, settings: SiteSettings, **kw: Any) -> ContainersClient:
        """A client for ``settings.endpoint`` with the token from ``settings.token_env``."""
        kw.setdefault("timeout", settings.timeout)
        kw.setdefault("retries", settings.retries)
        kw.setdefault("pool_size", max(10, settings.concurrency))
        return cls(settings.api.api_base, settings.token(), **kw)

    def __repr__(self) -> str:
        return f"ContainersClient({self.api_base!r}, token='***')"

    def __enter__(self) -> ContainersClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every thread's connection (an injected session is the caller's to close)."""
        with self._adapters_lock:
            adapters = list(self._adapters)
        for adapter in adapters:
            adapter.close()

    # -- API methods

    def test(self) -> str:
        """``GET /test``: the API's greeting when the token works."""
        data = self._call("GET", "/test")
        return str(data.get("message", "")) if isinstance(data, Mapping) else ""

    def create_workspace(self, fields: Mapping[str, Any]) -> Workspace:
        """``POST /workspaces`` with form fields (e.g. a spec's ``create_fields()``).

        The client knows the API, not the directive: callers turn their embed into fields.
        """
        fields = {
            str(k): (("true" if v else "false") if isinstance(v, bool) else str(v))
            for k, v in fields.items()
            if v is not None
        }
        data = self._call("POST", "/workspaces", data=fields)
        return self._workspace(data, "POST", "/workspaces", maybe_processed=True)

    def get_workspace(self, workspace_id: str) -> Workspace:
        path = f"/workspaces/{_segment(workspace_id)}"
        return self._workspace(self._call("GET", path), "GET", path)

    def list_workspaces(
        self,
        project_id: str | None = None,
        states: Iterable[int] | None = None,
        limit: int | None = None,
        page_token: str | None = None,
    ) -> WorkspacePage:
        """One page of ``GET /workspaces`` (``states`` go out as repeated ``states[]``)."""
        params: dict[str, Any] = {}
        if project_id:
            params["project_id"] = project_id
        if states is not None:
            params["states[]"] = [str(int(s)) for s in states]
        if limit is not None:
            params["limit"] = str(int(limit))
        if page_token:
            params["page_token"] = page_token
        data = self._call("GET", "/workspaces", params=params)
        items = data.get("items") if isinstance(data, Mapping) else None
        if not isinstance(items, list):
            raise MalformedResponseError(
                "the list answer has no 'items' array", method="GET", path=self._shown_path("/workspaces", params)
            )
        try:
            workspaces = [Workspace.from_api(item) for item in items]
        except ValueError as exc:
            reason = str(exc)
        else:
            return WorkspacePage(workspaces, _next_page_token(data), dict(data))
        raise MalformedResponseError(reason, method="GET", path=self._shown_path("/workspaces", params))

    def iter_workspaces(
        self, project_id: str | None = None, states: Iterable[int] | None = None, limit: int = 30
    ) -> Iterator[Workspace]:
        """Every workspace matching the filters, following ``page_token`` across pages."""
        token: str | None = None
        states = list(states) if states is not None else None
        while True:
            page = self.list_workspaces(project_id, states, limit, token)
            yield from page.items
            if not page.next_page_token or page.next_page_token == token:
                return
            token = page.next_page_token

    def stop(self, workspace_id: str) -> dict[str, Any]:
        return self._put_action(workspace_id, "stop")

    def resume(self, workspace_id: str) -> dict[str, Any]:
        return self._put_action(workspace_id, "resume")

    def remove(self, workspace_id: str) -> dict[str, Any]:
        return self._put_action(workspace_id, "remove")

    def list_projects(self) -> list[Project]:
        """Every project of the account (all pages of ``GET /projects``)."""
        projects: list[Project] = []
        token: str | None = None
        for _ in range(1000):  # a server that never stops paging must not hang a build
            params = {"page_token": token} if token else {}
            data = self._call("GET", "/projects", params=params)
            items = data.get("items") if isinstance(data, Mapping) else None
            if not isinstance(items, list):
                raise MalformedResponseError("the projects answer has no 'items' array",
                                             method="GET", path=self._shown_path("/projects", params))
            for item in items:
                if isinstance(item, Mapping) and item.get("id") is not None:
                    name = item.get("name")
                    projects.append(Project(str(item["id"]), None if name is None else str(name), dict(item)))
            nxt = _next_page_token(data)
            if not nxt or nxt == token:
                break
            token = nxt
        return projects

    # -- plumbing

    def _put_action(self, workspace_id: str, action: str) -> dict[str, Any]:
        path = f"/workspaces/{_segment(workspace_id)}/{action}"
        data = self._call("PUT", path)
        return dict(data) if isinstance(data, Mapping) else {"data": data}

    def _workspace(self, data: Any, method: str, path: str, maybe_processed: bool = False) -> Workspace:
        try:
            return Workspace.from_api(data)
        except ValueError as exc:
            reason = f"unexpected answer: {exc}"
        raise MalformedResponseError(reason, method=method, path=self._shown_path(path),
                                     maybe_processed=maybe_processed)

    def _shown_path(self, path: str, params: Mapping[str, Any] | None = None) -> str:
        """The request path as it may appear in messages: no host, no token."""
        shown = self._base_path + path
        if params:
            shown += "?" + urlencode(params, doseq=True)
        return redact(shown, (self.__token,))

    def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
    ) -> Any:
        shown = self._shown_path(path, params)
        query = dict(params or {})
        query["access_token"] = self.__token
        failure: SphereEngineError | None = None
        response: requests.Response | None = None
        try:
            response = self._send(method, path, query, data)
            body = response.content  # read inside the try: a cut-off body raises here
        except requests.RequestException as exc:
            # Build our own error from token-free parts; raise it *after* this block so
            # the library exception (its text quotes the URL) is neither cause nor context.
            failure = self._transport_failure(exc, method, shown)
        if failure is not None:
            raise failure
        assert response is not None
        return self._parse(response, body, method, shown)

    def _transport_failure(self, exc: requests.RequestException, method: str, shown: str) -> SphereEngineError:
        sent = method.upper() not in IDEMPOTENT_METHODS  # only POST can leave a trace behind
        tries = f" (after {self.retries} retries)" if self.retries else ""
        chain = list(_causes(exc))
        if isinstance(exc, requests.ConnectTimeout):
            return ApiTimeout(f"could not connect within {self.timeout:g}s{tries}",
                              method=method, path=shown)
        if isinstance(exc, requests.ReadTimeout) or any(
            type(e).__name__ == "ReadTimeoutError" for e in chain
        ):
            return ApiTimeout(f"no answer within {self.timeout:g}s{tries if not sent else ''}",
                              method=method, path=shown, maybe_processed=sent)
        # No connection was made (refused, or the host name did not resolve): nothing was sent.
        if any(isinstance(e, (NewConnectionError, ConnectionRefusedError)) for e in chain):
            detail = _os_detail(chain) or "connection refused"
            return TransportError(f"could not connect: {detail}{tries}", method=method, path=shown)
        if isinstance(exc, requests.exceptions.SSLError):
            return TransportError("TLS handshake failed", method=method, path=shown)
        if isinstance(exc, (requests.exceptions.ChunkedEncodingError,
                            requests.exceptions.ContentDecodingError)):
            return TransportError("the answer was cut off", method=method, path=shown,
                                  maybe_processed=sent)
        if isinstance(exc, requests.ConnectionError):
            detail = _os_detail(chain) or "connection closed without an answer"
            return TransportError(f"connection broken: {detail}{'' if sent else tries}",
                                  method=method, path=shown, maybe_processed=sent)
        return TransportError(f"request failed: {type(exc).__name__}", method=method, path=shown,
                              maybe_processed=sent)

    def _parse(self, response: requests.Response, body: bytes, method: str, shown: str) -> Any:
        status = response.status_code
        payload: Any = None
        text = ""
        try:
            text = body.decode(response.encoding or "utf-8", errors="replace")
        except LookupError:
            text = body.decode("utf-8", errors="replace")
        if text.strip():
            try:
                payload = json.loads(text)
            except ValueError:
                payload = None
        if 200 <= status < 300:
            if payload is None and text.strip():
                raise MalformedResponseError(
                    f"HTTP {status} with a body that is not JSON: {clean_snippet(text, (self.__token,))}",
                    status=status, method=method, path=shown,
                    maybe_processed=method.upper() not in IDEMPOTENT_METHODS,
                )
            return payload if payload is not None else {}

        error_code: int | None = None
        message = ""
        if isinstance(payload, Mapping):
            error_code = _opt_int(payload.get("error_code"))
            message = str(payload.get("message") or payload.get("error") or "")
        if not message:
            message = text if text.strip() else str(response.reason or "")
        # Everything the server said is masked before it is cut (and checked after).
        message = clean_snippet(message, (self.__token,), MESSAGE_MAX) or "no message"
        kw: dict[str, Any] = {"status": status, "error_code": error_code, "method": method, "path": shown}
        if status in (401, 403):
            return_error: SphereEngineError = AuthError(message, **kw)
        elif status == 404:
            return_error = NotFoundError(message, **kw)
        elif status == 429:
            retry_after = _opt_float(response.headers.get("Retry-After"))
            if self.retries:
                message += f" (gave up after {self.retries} retries)"
            return_error = RateLimitedError(message, retry_after=retry_after, **kw)
        elif status >= 500:
            retried = self.retries and status in retried_statuses(method)
            if retried:
                message += f" (gave up after {self.retries} retries)"
            maybe = method.upper() not in IDEMPOTENT_METHODS and status not in NOT_PROCESSED_STATUSES
            return_error = ServerError(message, maybe_processed=maybe, **kw)
        elif 300 <= status < 400:
            return_error = SphereEngineError(f"unexpected redirect ({message})", **kw)
        else:
            return_error = InvalidRequestError(message, **kw)
        raise return_error


def _segment(value: str) -> str:
    text = str(value).strip()
    if not text:
        raise ValueError("empty workspace id")
    return quote(text, safe="")


def _opt_float(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its ``args`` exceptions (requests wraps urllib3 errors there) and their causes."""
    seen: set[int] = set()
    stack: list[BaseException] = [exc]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        for arg in getattr(item, "args", ()):
            if isinstance(arg, BaseException):
                stack.append(arg)
        reason = getattr(item, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
        for linked in (item.__cause__, item.__context__):
            if linked is not None:
                stack.append(linked)


def _os_detail(chain: Iterable[BaseException]) -> str:
    """A token-free description of the first OS-level error (e.g. 'Connection refused')."""
    for item in chain:
        if isinstance(item, OSError) and not isinstance(item, requests.RequestException):
            if item.strerror:
                return str(item.strerror)
            if isinstance(item, ConnectionResetError):
                return "connection reset by peer"
    for item in chain:
        name = type(item).__name__
        if name == "RemoteDisconnected":
            return "the server closed the connection without an answer"
        if name == "ProtocolError":
            return "connection aborted"
    return ""


with contextlib.suppress(Exception):  # make the library loggers safe as soon as we are imported
    install_log_redaction()
