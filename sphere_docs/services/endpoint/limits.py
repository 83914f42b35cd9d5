"""Where the endpoint counts: per-client windows, the creation budget, creates in flight.

Two stores with one interface:

* :class:`RedisStore` (``redis://``, ``rediss://``, ``unix://``): the counts every
  worker and host share.  Each decision is one Lua script run atomically by
  Redis on Redis's own clock, so N workers on M hosts count as one process:
  the budget is exact, not split, and a reload or restart of the workers keeps
  it.  A window is a sorted set of events (score = time) that expires with the
  window; creates in flight are a sorted set of permits scored by the moment
  they are given up for lost (a worker killed mid-create cannot leak a slot).
* :class:`MemoryStore` (``memory://``): the same semantics in this process's
  memory.  Limits are **per process**: one process is the supported use
  (``sphere-docs endpoint``, the demo, gunicorn with one worker).

:class:`Limits` puts the configured store in front of the app and applies the
storage failure policy (``closed``: :class:`StorageUnavailable`; ``open``:
count in this process's memory meanwhile, with one warning a minute), and
goes back to the shared store by itself once it answers again.

What an outage costs the budget.  A permit is one script; when its answer does
not come back (Redis stopped, or a timeout, just after running it) the process
cannot know whether Redis recorded it, and no workspace is created for it.  The
permit's id is chosen here, before the call, so the process keeps it and gives
the slot back (``ZREM``, a no-op if it was never recorded) as soon as Redis
answers again; so does a refund or an in-flight release that failed.  The
guarantee: never more workspaces than the budget; a slot is lost only if the
process itself stops before Redis is back (at most the permits it was asking for
at that moment), and an in-flight slot never outlives its expiry.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from ...core.redact import redact

__all__ = ["Limits", "MemoryStore", "Permit", "RedisStore", "Refusal", "StorageUnavailable", "make_store"]

log = logging.getLogger("sphere_docs.endpoint")

#: how long a failing shared store is left alone before it is tried again (seconds)
RETRY_STORE_AFTER = 1.0
#: at most one "counting in memory" warning per this many seconds (failure mode "open")
WARN_EVERY = 60.0
#: at most this many slots waiting to be given back to the shared store once it answers again
MAX_PENDING = 10_000


class StorageUnavailable(Exception):
    """The shared store cannot be reached (and the failure mode is ``closed``)."""


@dataclass(frozen=True)
class Permit:
    """One creation allowed: the events recorded for it (``member``) and the store that holds them."""

    member: str
    client: str
    store: Any


@dataclass(frozen=True)
class Refusal:
    """``code`` is ``rate_limited``, ``budget_exhausted`` or ``busy`` (the in-flight cap)."""

    code: str
    wait: float


class Store(Protocol):
    name: str

    def hit(self, key: str, limit: int, seconds: int) -> float: ...
    def permit(self, client: str, rate: tuple[int, int], budget: tuple[int, int],
               inflight: int, ttl: float, member: str | None = None) -> Permit | Refusal: ...
    def finish(self, permit: Permit, *, refund: bool) -> None: ...
    def forget(self, entries: list[tuple[str, str, bool]]) -> None: ...
    def budget_used(self, seconds: int) -> int: ...
    def in_flight(self) -> int: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


def _member() -> str:
    return uuid.uuid4().hex


# ------------------------------------------------------------------ memory


class _Window:
    """Events of one key within the last ``seconds``: (time, member), oldest first."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: deque[tuple[float, str]] = deque()

    def trim(self, now: float, seconds: float) -> None:
        while self.events and self.events[0][0] <= now - seconds:
            self.events.popleft()

    def wait(self, now: float, limit: int, seconds: float) -> float:
        self.trim(now, seconds)
        if len(self.events) >= limit:
            return max(self.events[0][0] + seconds - now, 0.001)
        return 0.0

    def remove(self, member: str) -> None:
        for i, (_t, m) in enumerate(self.events):
            if m == member:
                del self.events[i]
                return


class MemoryStore:
    """This process's memory (bounded: at most ``max_keys`` clients, least recently seen dropped first)."""

    name = "memory"

    def __init__(self, *, max_keys: int = 50_000, clock: Callable[[], float] = time.monotonic):
        self.max_keys = max_keys
        self._clock = clock
        self._windows: OrderedDict[str, _Window] = OrderedDict()
        self._flight: dict[str, float] = {}
        self._lock = threading.Lock()

    def _window(self, key: str) -> _Window:
        window = self._windows.get(key)
        if window is None:
            window = self._windows[key] = _Window()
            if len(self._windows) > self.max_keys:
                self._windows.popitem(last=False)
        else:
            self._windows.move_to_end(key)
        return window

    def hit(self, key: str, limit: int, seconds: int) -> float:
        now = self._clock()
        with self._lock:
            window = self._window("req:" + key)
            wait = window.wait(now, limit, seconds)
            if not wait:
                window.events.append((now, ""))
            return wait

    def permit(self, client: str, rate: tuple[int, int], budget: tuple[int, int],
               inflight: int, ttl: float, member: str | None = None) -> Permit | Refusal:
        now = self._clock()
        with self._lock:
            mine, total = self._window("rate:" + client), self._window("budget")
            self._windows.move_to_end("budget", last=False)  # never the one dropped for space
            wait = mine.wait(now, *rate)
            if wait:
                return Refusal("rate_limited", wait)
            wait = total.wait(now, *budget)
            if wait:
                return Refusal("budget_exhausted", wait)
            self._flight = {m: t for m, t in self._flight.items() if t > now}
            if len(self._flight) >= inflight:
                return Refusal("busy", 1.0)
            member = member or _member()
            mine.events.append((now, member))
            total.events.append((now, member))
            self._flight[member] = now + ttl
            return Permit(member, client, self)

    def finish(self, permit: Permit, *, refund: bool) -> None:
        self.forget([(permit.client, permit.member, refund)])

    def forget(self, entries: list[tuple[str, str, bool]]) -> None:
        """Drop each (client, member)'s in-flight slot and, where the flag says, its events."""
        with self._lock:
            for client, member, refund in entries:
                self._flight.pop(member, None)
                if refund:
                    for key in ("rate:" + client, "budget"):
                        if key in self._windows:
                            self._windows[key].remove(member)

    def budget_used(self, seconds: int) -> int:
        now = self._clock()
        with self._lock:
            window = self._windows.get("budget")
            if window is None:
                return 0
            window.trim(now, seconds)
            return len(window.events)

    def in_flight(self) -> int:
        now = self._clock()
        with self._lock:
            return sum(1 for t in self._flight.values() if t > now)

    def ping(self) -> None:
        pass

    def close(self) -> None:
        pass


# ------------------------------------------------------------------ Redis

_LUA_WINDOW = """
local function wait_of(key, limit, seconds, now)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - seconds)
  if redis.call('ZCARD', key) >= limit then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    local w = tonumber(oldest[2]) + seconds - now
    if w < 0.001 then w = 0.001 end
    return w
  end
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
"""

# KEYS: window; ARGV: limit, seconds, member
_HIT = _LUA_WINDOW + """
local w = wait_of(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), now)
if w > 0 then return tostring(w) end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2]) * 1000))
return '0'
"""

# KEYS: client window, budget window, in-flight set
# ARGV: member, rate limit, rate seconds, budget limit, budget seconds, in-flight cap, in-flight ttl
_PERMIT = _LUA_WINDOW + """
local w = wait_of(KEYS[1], tonumber(ARGV[2]), tonumber(ARGV[3]), now)
if w > 0 then return {'rate_limited', tostring(w)} end
w = wait_of(KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[5]), now)
if w > 0 then return {'budget_exhausted', tostring(w)} end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[6]) then return {'busy', '1'} end
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[3]) * 1000))
redis.call('ZADD', KEYS[2], now, ARGV[1])
redis.call('PEXPIRE', KEYS[2], math.ceil(tonumber(ARGV[5]) * 1000))
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[7]), ARGV[1])
redis.call('PEXPIRE', KEYS[3], math.ceil(tonumber(ARGV[7]) * 1000))
return {'ok', tostring(now)}
"""

# KEYS: budget window, in-flight set; ARGV: budget seconds -> {budget used, in flight}
_COUNTS = _LUA_WINDOW + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[1]))
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
return {redis.call('ZCARD', KEYS[1]), redis.call('ZCARD', KEYS[2])}
"""


class RedisStore:
    """Counts in Redis, shared by every worker and host given the same URL (and key prefix)."""

    name = "redis"

    def __init__(self, url: str, *, prefix: str = "sphere-docs:endpoint:", timeout: float = 1.0):
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        # No retries inside redis-py (recent versions retry with backoff by default): a reader is
        # waiting, and the failure policy (closed / open) is the answer while Redis is away.
        self.redis = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                          retry=Retry(NoBackoff(), 0), health_check_interval=30,
                                          decode_responses=True)
        # one hash tag: every key in one cluster slot, so each script may touch them all
        self.prefix = "{" + prefix.rstrip(":") + "}:"
        self._hit = self.redis.register_script(_HIT)
        self._permit = self.redis.register_script(_PERMIT)
        self._counts = self.redis.register_script(_COUNTS)

    @property
    def errors(self) -> tuple[type[BaseException], ...]:
        return self._errors

    def _keys(self, client: str) -> list[str]:
        return [self.prefix + "rate:" + client, self.prefix + "budget", self.prefix + "inflight"]

    def hit(self, key: str, limit: int, seconds: int) -> float:
        return float(self._hit(keys=[self.prefix + "req:" + key], args=[limit, seconds, _member()]))

    def permit(self, client: str, rate: tuple[int, int], budget: tuple[int, int],
               inflight: int, ttl: float, member: str | None = None) -> Permit | Refusal:
        member = member or _member()
        code, value = self._permit(keys=self._keys(client),
                                   args=[member, rate[0], rate[1], budget[0], budget[1], inflight, ttl])
        if code != "ok":
            return Refusal(str(code), float(value))
        return Permit(member, client, self)

    def finish(self, permit: Permit, *, refund: bool) -> None:
        self.forget([(permit.client, permit.member, refund)])

    def forget(self, entries: list[tuple[str, str, bool]]) -> None:
        """Drop each (client, member)'s in-flight slot and, where the flag says, its events (one transaction)."""
        with self.redis.pipeline(transaction=True) as pipe:
            for client, member, refund in entries:
                rate, budget, flight = self._keys(client)
                pipe.zrem(flight, member)
                if refund:
                    pipe.zrem(rate, member)
                    pipe.zrem(budget, member)
            pipe.execute()

    def _both(self, seconds: int) -> tuple[int, int]:
        used, flying = self._counts(keys=self._keys("")[1:], args=[seconds])
        return int(used), int(flying)

    def budget_used(self, seconds: int) -> int:
        return self._both(seconds)[0]

    def in_flight(self) -> int:
        return self._both(1)[1]

    def ping(self) -> None:
        self.redis.ping()

    def close(self) -> None:
        self.redis.close()


def make_store(url: str) -> Store:
    if url.startswith("memory://"):
        return MemoryStore()
    return RedisStore(url)


# ------------------------------------------------------------------ the policy in front


class Limits:
    """The configured store plus the failure policy; every method may raise :class:`StorageUnavailable`."""

    def __init__(self, url: str, failure: str = "closed", *,
                 on_error: Callable[[], None] | None = None):
        self.url = url
        self.failure = failure
        self.store: Any = make_store(url)
        self.shared = not isinstance(self.store, MemoryStore)
        self.fallback = MemoryStore()
        self._on_error = on_error or (lambda: None)
        self._down_since: float | None = None
        self._retry_at = 0.0
        # (client, member, refund events too) to give back once the shared store answers again
        self._pending: deque[tuple[str, str, bool]] = deque(maxlen=MAX_PENDING)
        self._warned_at = -WARN_EVERY
        self._lock = threading.Lock()

    # -- state

    @property
    def healthy(self) -> bool:
        return self._down_since is None

    def state(self) -> dict[str, Any]:
        """For /healthz: which store, whether it answers, what happens meanwhile."""
        if not self.shared:
            return {"storage": "memory", "limits": "per process"}
        if self.healthy:
            return {"storage": "redis"}
        down = round(time.monotonic() - (self._down_since or time.monotonic()), 1)
        return {"storage": "unavailable", "storage_failure": self.failure, "storage_down_seconds": down,
                "limits": "refused (503)" if self.failure == "closed" else "per process meanwhile"}

    def _failed(self, exc: BaseException) -> None:
        self._on_error()
        now = time.monotonic()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
                log.error("rate-limit storage unavailable (%s): %s; failure mode %s", self.store.name,
                          redact(str(exc))[:200], self.failure)
            self._retry_at = now + RETRY_STORE_AFTER

    def _recovered(self) -> None:
        if self._down_since is not None:
            with self._lock:
                if self._down_since is not None:
                    log.warning("rate-limit storage is back after %.1f s", time.monotonic() - self._down_since)
                    self._down_since = None
        if self._pending:
            self._give_back()

    def _give_back(self) -> None:
        """Hand the shared store the slots whose fate it could not be told (see the module's docstring)."""
        with self._lock:
            entries = list(self._pending)
            self._pending.clear()
        if not entries:
            return
        try:
            self.store.forget(entries)
        except self.store.errors as exc:
            with self._lock:
                self._pending.extendleft(reversed(entries))
            self._failed(exc)
        else:
            log.warning("gave back %d rate-limit slot(s) reserved while the storage did not answer", len(entries))

    def _call(self, name: str, *args: Any, on_failure: Callable[[], None] | None = None, **kwargs: Any) -> Any:
        if not self.shared:
            return getattr(self.store, name)(*args, **kwargs)
        if self._down_since is None or time.monotonic() >= self._retry_at:
            try:
                result = getattr(self.store, name)(*args, **kwargs)
            except self.store.errors as exc:
                self._failed(exc)
                if on_failure is not None:
                    on_failure()
            else:
                self._recovered()
                return result
        if self.failure == "closed":
            raise StorageUnavailable()
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY:
            self._warned_at = now
            log.warning("rate-limit storage unavailable: counting in this process's memory meanwhile "
                        "(SPHERE_ENDPOINT_STORAGE_FAILURE=open); limits are per process until it is back")
        return getattr(self.fallback, name)(*args, **kwargs)

    # -- the operations

    def hit(self, key: str, limit: int, seconds: int) -> float:
        return float(self._call("hit", key, limit, seconds))

    def permit(self, client: str, rate: tuple[int, int], budget: tuple[int, int],
               inflight: int, ttl: float) -> Permit | Refusal:
        member = _member()
        asked: list[bool] = []
        result: Permit | Refusal | None = None
        try:
            result = self._call("permit", client, rate, budget, inflight, ttl, member,
                                on_failure=lambda: asked.append(True))
            return result
        finally:
            if asked:
                # Redis may have recorded this permit without our hearing it.  Give it back once Redis
                # answers, unless the memory fallback (mode open) let this very create go ahead: then
                # Redis's events, if recorded, count a workspace that is really created.
                created = isinstance(result, Permit) and result.store is self.fallback
                with self._lock:
                    self._pending.append((client, member, not created))

    def finish(self, permit: Permit, *, refund: bool) -> None:
        """Give back the in-flight slot (and, with ``refund``, the client's and the budget's events)."""
        store = permit.store
        try:
            store.finish(permit, refund=refund)
        except Exception as exc:
            if store is self.store and self.shared:
                # given back once Redis answers again (the in-flight slot also expires by itself)
                with self._lock:
                    self._pending.append((permit.client, permit.member, refund))
                self._failed(exc)
            else:
                raise

    def check(self) -> None:
        """Ping the shared store now (for /healthz): notices a failure or a recovery."""
        if self.shared:
            try:
                self.store.ping()
            except self.store.errors as exc:
                self._failed(exc)
            else:
                self._recovered()

    def counts(self, budget_seconds: int) -> tuple[int, int] | None:
        """(budget used, creates in flight) deployment-wide, or None if the store does not answer."""
        try:
            if isinstance(self.store, RedisStore):
                return self.store._both(budget_seconds)
            return self.store.budget_used(budget_seconds), self.store.in_flight()
        except Exception:
            return None

    def close(self) -> None:
        self.store.close()
