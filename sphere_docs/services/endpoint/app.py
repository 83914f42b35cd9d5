"""The lazy endpoint's WSGI application.

Routes (relative to wherever it is mounted)::

    POST    /workspaces   (or /)  create or reuse the reader's workspace
    OPTIONS /workspaces   (or /)  CORS preflight
    GET     /healthz               liveness and the storage's state; ?upstream=1 also checks the API token
    GET     /metrics               Prometheus text format (only with SPHERE_ENDPOINT_METRICS=1)

Every answer is JSON with ``Cache-Control: no-store``; every error is
``{"code": <stable code>, "message": <text a reader understands>}`` (plus
``retry_after`` on 429).  The page's script (``sphere_docs/static/src/sphere-docs-lazy.js``)
retries ``busy`` by itself, after ``Retry-After`` plus up to a second of jitter, at most 8
times, the embed showing "Starting your workspace… (busy, retrying)"; every other error,
the rate and budget 429s too, shows its message (with the wait) and a Try again button.
Error codes and statuses:

=====  =========================  ================================================
400    ``malformed_json``         body is not a JSON object (or not JSON, not UTF-8, nested too deeply)
400    ``invalid_field``          a field is missing or malformed (``field`` names it)
403    ``origin_not_allowed``     no ``Origin`` header or not an allowed origin
403    ``project_not_allowed``    the project is not served here
403    ``claim_invalid``          the reuse claim is forged or for another embed
403    ``claim_expired``          the reuse claim is too old
404    ``not_found``              unknown path
405    ``method_not_allowed``     (``Allow`` header lists the methods)
411    ``length_required``        no ``Content-Length``
413    ``body_too_large``         body above ``max_body`` bytes
415    ``unsupported_media_type`` not ``application/json``
429    ``too_many_requests``      per-client request rate (any request)
429    ``rate_limited``           per-client creation rate
429    ``budget_exhausted``       deployment-wide creation budget
429    ``busy``                   deployment-wide cap on creates in flight (``Retry-After: 1``; the page retries by itself)
429    ``upstream_rate_limited``  the API answered 429
502    ``upstream_error``         the API failed (5xx other than 503, bad answer, refused credentials)
503    ``upstream_unavailable``   the API is unreachable or answered 503
503    ``upstream_timeout``       the API did not answer within ``timeout``
503    ``storage_unavailable``    Redis does not answer and ``storage_failure`` is ``closed``
500    ``internal_error``         a bug; logged with its traceback, no details sent
=====  =========================  ================================================

The access token lives only in the API client: it is never part of an
answer, a header or a log line (log lines go through :func:`redact`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Request, Response

from ...api import client as api
from ...core.errors import SettingsError
from ...core.options import NAME_RE, PROJECT_ID_RE
from ...core.redact import install_log_redaction, redact, register_secret
from ...core.settings import parse_endpoint, token_from_env
from .claims import ClaimError, Signer
from .config import EndpointConfig, setting_error
from .limits import Limits, Permit, StorageUnavailable

__all__ = ["EndpointApp", "Problem"]

log = logging.getLogger("sphere_docs.endpoint")

PAGE_MAX = 512
CLAIM_MAX = 200
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class Problem(Exception):
    """An error answer: HTTP status, stable code, reader-facing message."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = None if retry_after is None else max(1, math.ceil(retry_after))
        self.headers = dict(headers or {})
        self.extra = extra

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message, **self.extra}
        if self.retry_after is not None:
            out["retry_after"] = self.retry_after
        return out


class _Manifest:
    """Projects listed in the build's ``sphere-workspaces.json``, re-read every ``refresh`` seconds."""

    def __init__(self, source: str, refresh: int):
        self.source = source
        self.refresh = refresh
        self._lock = threading.Lock()
        self.projects = self._load()  # fail at startup, not on the first reader
        self._loaded = time.monotonic()

    def _load(self) -> frozenset[str]:
        from ...core.manifest import read_manifest

        try:
            data = read_manifest(self.source)
            return frozenset(str(p).lower() for p in data.get("projects", []) if PROJECT_ID_RE.match(str(p)))
        except Exception as exc:
            raise setting_error("SPHERE_ENDPOINT_MANIFEST", self.source,
                                "a readable sphere-workspaces.json (path or URL)",
                                problem=f"unusable manifest ({redact(str(exc))[:200]})") from None

    def current(self) -> frozenset[str]:
        if self.refresh and time.monotonic() - self._loaded > self.refresh and self._lock.acquire(blocking=False):
            try:
                self.projects = self._load()
            except SettingsError as exc:
                log.warning("keeping the previous manifest: %s", exc)
            finally:
                self._loaded = time.monotonic()
                self._lock.release()
        return self.projects


def _upstream_problem(exc: Exception) -> Problem:
    """Map a client exception to the answer a reader gets (never the exception text)."""
    status = getattr(exc, "status", None)
    if isinstance(exc, api.RateLimitedError):
        wait = getattr(exc, "retry_after", None) or 30
        return Problem(429, "upstream_rate_limited",
                       "The workspace service is busy right now.", retry_after=wait)
    if isinstance(exc, api.ApiTimeout):
        return Problem(503, "upstream_timeout",
                       "The workspace service did not answer in time. Please try again.")
    if isinstance(exc, api.MalformedResponseError):
        return Problem(502, "upstream_error",
                       "The workspace service gave an answer that could not be understood. Please try again.")
    if isinstance(exc, api.TransportError):
        return Problem(503, "upstream_unavailable",
                       "The workspace service cannot be reached right now. Please try again in a moment.")
    if status == 503:
        return Problem(503, "upstream_unavailable",
                       "The workspace service is unavailable right now. Please try again in a moment.")
    return Problem(502, "upstream_error",
                   "The workspace service could not start a workspace. Please try again later.")


class EndpointApp:
    """The WSGI application; one per process (see :func:`sphere_docs.services.endpoint.create_app`)."""

    def __init__(self, config: EndpointConfig, *, token: str | None = None,
                 client_factory: Callable[[], Any] | None = None):
        self.config = config
        self._token = token if token is not None else token_from_env(config.token_env, who="sphere-docs endpoint")
        register_secret(self._token)
        install_log_redaction(["sphere_docs.endpoint", "werkzeug", "gunicorn.error", "gunicorn.access"])
        keys = [k.encode() for k in config.secrets]
        if not keys:
            keys = [secrets.token_bytes(32)]
            log.warning(
                "SPHERE_ENDPOINT_SECRET is not set: claims are signed with a random key of this "
                "process, so returning readers get a new workspace after a restart or from another "
                "worker; set the same secret on every worker and host"
            )
        elif any(len(k) < 16 for k in keys):
            raise setting_error("SPHERE_ENDPOINT_SECRET", "(hidden)", "a secret of at least 16 characters"
                                + (" (each of the keys)" if len(keys) > 1 else ""))
        self.signer = Signer(keys, config.claim_ttl)
        self.manifest = _Manifest(config.manifest, config.manifest_refresh) if config.manifest else None
        self.origins = frozenset(config.allow_origins)
        self.metrics: Any = None
        self.limits = Limits(config.storage, config.storage_failure, on_error=self._storage_error)
        if config.metrics:
            from .metrics import Metrics

            self.metrics = Metrics(self._gauges)
        if not self.limits.shared:
            log.info("limits are counted in this process's memory (SPHERE_ENDPOINT_STORAGE=memory://): "
                     "run one process, or share them with SPHERE_ENDPOINT_STORAGE=redis://...")
        # a create holds its in-flight slot at most this long (then it counts as lost)
        self._inflight_ttl = config.timeout * (config.retries + 1) + 10
        self._client_factory = client_factory or self._default_client
        self._client: Any = None
        self._client_pid = 0
        self._client_lock = threading.Lock()
        app: Callable[..., Iterable[bytes]] = self._wsgi
        self._entry = ProxyFix(app, x_for=config.trust_proxy) if config.trust_proxy else app

    def __repr__(self) -> str:
        return f"EndpointApp(api={self.config.api!r}, projects={len(self.allowed_projects())})"

    # -- the API client, created lazily in each process (gunicorn forks after import)

    def _default_client(self) -> Any:
        # A reader is waiting: retry briefly, and pass a long Retry-After on to them instead.
        return api.ContainersClient(parse_endpoint(self.config.api or "").api_base, self._token,
                                timeout=self.config.timeout, retries=self.config.retries,
                                backoff=0.2, retry_after_max=2.0, pool_size=32)

    @property
    def client(self) -> Any:
        pid = os.getpid()
        if self._client is None or self._client_pid != pid:
            with self._client_lock:
                if self._client is None or self._client_pid != pid:
                    self._client = self._client_factory()
                    self._client_pid = pid
        return self._client

    def close(self) -> None:
        if self._client is not None and hasattr(self._client, "close"):
            self._client.close()
        self._client = None
        self.limits.close()

    # -- metrics

    def _storage_error(self) -> None:
        if self.metrics is not None:
            self.metrics.storage_errors.inc()

    def _gauges(self) -> tuple[int, int] | None:
        counts = self.limits.counts(self.config.budget.seconds)
        if counts is None:
            return None
        used, flying = counts
        return max(self.config.budget.limit - used, 0), flying

    def _timed(self, action: str, call: Callable[..., Any], *args: Any) -> Any:
        if self.metrics is None:
            return call(*args)
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.metrics.upstream.labels(action).observe(time.perf_counter() - started)

    # -- WSGI

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return self._entry(environ, start_response)

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        request = Request(environ)
        cors: dict[str, str] = {}
        try:
            response = self.dispatch(request, cors)
            code = "ok"
        except StorageUnavailable:
            exc = _storage_problem()
            response = self._problem(exc)
            code = exc.code
        except Problem as exc:
            response = self._problem(exc)
            code = exc.code
        except Exception:
            log.error("internal error on %s %s", request.method, redact(request.path), exc_info=True)
            failure = Problem(500, "internal_error", "The workspace service failed unexpectedly.")
            response = self._json(failure.body(), 500)
            code = failure.code
        if self.metrics is not None:
            self.metrics.requests.labels(str(response.status_code), code).inc()
        response.headers.update(cors)
        return response(environ, start_response)

    def _problem(self, exc: Problem) -> Response:
        response = self._json(exc.body(), exc.status, exc.headers)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response

    @staticmethod
    def _json(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> Response:
        response = Response(json.dumps(body, separators=(",", ":")), status=status,
                            mimetype="application/json", headers=headers)
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def dispatch(self, request: Request, cors: dict[str, str]) -> Response:
        path = request.path.rstrip("/") or "/"
        if path == "/healthz":
            if request.method not in ("GET", "HEAD"):
                raise Problem(405, "method_not_allowed", "Use GET.", headers={"Allow": "GET, HEAD"})
            return self.health(request)
        if path == "/metrics" and self.metrics is not None:
            if request.method not in ("GET", "HEAD"):
                raise Problem(405, "method_not_allowed", "Use GET.", headers={"Allow": "GET, HEAD"})
            body, content_type = self.metrics.render()
            return Response(body, status=200, content_type=content_type, headers={"Cache-Control": "no-store"})
        if path not in ("/", "/workspaces"):
            raise Problem(404, "not_found", "There is nothing here; POST to /workspaces.")
        if request.method not in ("POST", "OPTIONS"):
            raise Problem(405, "method_not_allowed", "Use POST.", headers={"Allow": "POST, OPTIONS"})
        origin = (request.headers.get("Origin") or "").strip().lower()
        if origin not in self.origins:
            raise Problem(403, "origin_not_allowed",
                          "This workspace service does not accept requests from this site."
                          if origin else "Requests must come from a browser on an allowed site (Origin header).")
        cors.update({"Access-Control-Allow-Origin": origin, "Vary": "Origin",
                     "Access-Control-Expose-Headers": "Retry-After"})
        if request.method == "OPTIONS":
            cors.update({"Access-Control-Allow-Methods": "POST, OPTIONS",
                         "Access-Control-Allow-Headers": "Content-Type",
                         "Access-Control-Max-Age": "7200"})
            response = Response(status=204)
            del response.headers["Content-Type"]  # a 204 has no content, so no type (RFC 9110)
            response.headers["Cache-Control"] = "no-store"
            return response
        client_key = request.remote_addr or "-"
        wait = self.limits.hit(client_key, self.config.requests.limit, self.config.requests.seconds)
        if wait:
            raise Problem(429, "too_many_requests", "Too many requests from your network.", retry_after=wait)
        project, page, name, claim = self._read_body(request)
        return self._json(self.workspace(project, page, name, claim, client_key))

    def health(self, request: Request) -> Response:
        self.limits.check()
        storage = self.limits.state()
        status = "ok" if self.limits.healthy else "degraded"
        if request.args.get("upstream"):
            try:
                self.client.test()
            except Exception as exc:
                problem = _upstream_problem(exc) if _is_client_error(exc) else Problem(
                    503, "upstream_unavailable", "The workspace service cannot be reached.")
                log.warning("health check: API failed: %s", redact(str(exc)))
                return self._json({"status": "unavailable", **problem.body(), **storage}, 503)
        # 200 while the storage is down too: this is liveness, and restarting would not bring Redis back
        return self._json({"status": status, **storage})

    # -- the request body

    def _read_body(self, request: Request) -> tuple[str, str, str, str | None]:
        if request.mimetype != "application/json":
            raise Problem(415, "unsupported_media_type", "Send the request as application/json.")
        length = request.content_length
        if length is None:
            raise Problem(411, "length_required", "The request needs a Content-Length header.")
        if length > self.config.max_body:
            raise Problem(413, "body_too_large",
                          f"The request body is larger than {self.config.max_body} bytes.")
        raw = request.get_data(cache=False)
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise Problem(400, "malformed_json", "The request body is not valid JSON.") from None
        except RecursionError:  # e.g. [[[[...]]]] a thousand deep: the parser ran out of stack
            raise Problem(400, "malformed_json", "The request body is nested too deeply.") from None
        if not isinstance(data, dict):
            raise Problem(400, "malformed_json", "The request body must be a JSON object.")

        def field(key: str, ok: Callable[[str], bool], valid: str, required: bool = True) -> str | None:
            value = data.get(key)
            if value is None and not required:
                return None
            if not isinstance(value, str) or not ok(value):
                raise Problem(400, "invalid_field", f"{key}: expected {valid}.", field=key)
            return value

        project = field("project_id", lambda v: bool(PROJECT_ID_RE.match(v)), "32 hexadecimal characters")
        page = field("page", lambda v: 0 < len(v) <= PAGE_MAX and not _CONTROL_RE.search(v),
                     f"a page path of 1 to {PAGE_MAX} characters")
        name = field("name", lambda v: bool(NAME_RE.match(v)), "an embed name (letters, digits, - and _)")
        claim = field("claim", lambda v: len(v) <= CLAIM_MAX, "a claim issued by this service", required=False)
        assert project is not None and page is not None and name is not None
        return project.lower(), page, name, claim or None

    # -- the work

    def allowed_projects(self) -> frozenset[str]:
        projects = frozenset(self.config.allow_projects)
        return projects | self.manifest.current() if self.manifest else projects

    def workspace(self, project: str, page: str, name: str, claim: str | None,
                  client_key: str) -> dict[str, Any]:
        if project not in self.allowed_projects():
            raise Problem(403, "project_not_allowed", "This workspace is not offered by this site.")
        if claim:
            try:
                workspace_id = self.signer.verify(claim, project, page, name)
            except ClaimError as exc:
                raise Problem(403, exc.code, str(exc)) from None
            reused = self._reuse(workspace_id, project)
            if reused is not None:
                if self.metrics is not None:
                    self.metrics.reuses.inc()
                return self._answer(reused, project, page, name, reused=True)
        ws = self._create(project, client_key)
        if self.metrics is not None:
            self.metrics.creations.inc()
        log.info("created workspace %s of project %s for %s", ws.id, project, client_key)
        return self._answer(ws, project, page, name, reused=False)

    def _reuse(self, workspace_id: str, project: str) -> Any:
        """The claimed workspace if it is still usable (resumed if needed), else None."""
        try:
            ws = self._timed("get", self.client.get_workspace, workspace_id)
        except api.NotFoundError:
            return None
        except Exception as exc:
            raise self._upstream(exc, "get") from None
        if (ws.project_id or "").lower() != project:
            return None
        if ws.is_live:
            return ws
        if ws.state_code == api.STATE_STOPPED:
            try:
                self._timed("resume", self.client.resume, workspace_id)
                return self._timed("get", self.client.get_workspace, workspace_id)
            except api.NotFoundError:
                return None
            except Exception as exc:
                raise self._upstream(exc, "resume") from None
        return None  # removed or failed: the reader gets a new one

    def _create(self, project: str, client_key: str) -> Any:
        config = self.config
        fields = config.create_fields(project)
        # one atomic decision: the client's rate, the budget and the in-flight cap, all or nothing
        permit = self.limits.permit(client_key, (config.rate.limit, config.rate.seconds),
                                    (config.budget.limit, config.budget.seconds),
                                    config.inflight, self._inflight_ttl)
        if not isinstance(permit, Permit):
            if permit.code == "rate_limited":
                raise Problem(429, "rate_limited", "You have started several workspaces in a short time.",
                              retry_after=permit.wait)
            if permit.code == "budget_exhausted":
                raise Problem(429, "budget_exhausted", "Many readers are starting workspaces right now.",
                              retry_after=permit.wait)
            # the page retries this one by itself (sphere_docs/static/src/sphere-docs-lazy.js)
            raise Problem(429, "busy", "Many readers are starting workspaces right now.", retry_after=1)
        refund = False
        try:
            return self._timed("create", self.client.create_workspace, fields)
        except Exception as exc:
            # surely nothing was created: the reader and the budget get their slot back
            refund = _is_client_error(exc) and not getattr(exc, "maybe_processed", True)
            raise self._upstream(exc, "create") from None
        finally:
            self.limits.finish(permit, refund=refund)

    def _upstream(self, exc: Exception, action: str) -> Exception:
        if not _is_client_error(exc):
            return exc
        problem = _upstream_problem(exc)
        log.warning("API %s failed (%s): %s", action, problem.code, redact(str(exc)))
        return problem

    def _answer(self, ws: Any, project: str, page: str, name: str, *, reused: bool) -> dict[str, Any]:
        claim = self.signer.issue(ws.id, project, page, name)
        return {
            "workspace_id": ws.id,
            "workspace_token": ws.workspace_token,
            "state": ws.state_name,
            "sdk_base": self.config.sdk_base,
            "claim": claim,
            "claim_expires": int(claim.split(".")[2]),
            "reused": reused,
        }


def _storage_problem() -> Problem:
    return Problem(503, "storage_unavailable",
                   "The workspace service cannot check its limits right now. Please try again in a moment.",
                   retry_after=5)


def _is_client_error(exc: Exception) -> bool:
    return isinstance(exc, api.SphereEngineError)
