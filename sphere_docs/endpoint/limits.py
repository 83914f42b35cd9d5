"""Sliding-window limiters kept in this process's memory.

The endpoint is otherwise stateless, so under gunicorn each worker process
has its own limiters: a client spread over N workers can make up to N times
the per-client rate, and the deployment-wide budget is split between workers
(``EndpointConfig.budget_per_worker``) so the sum never exceeds the total.
Memory is bounded: at most ``max_keys`` clients are tracked (least recently
seen dropped first), each with at most ``limit`` timestamps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable

__all__ = ["SlidingWindow"]


class SlidingWindow:
    def __init__(self, limit: int, seconds: float, *, max_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self.seconds = seconds
        self.max_keys = max_keys
        self._clock = clock
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def acquire(self, key: str = "") -> float:
        """Record one event for ``key`` and return 0, or return the seconds to wait (nothing recorded)."""
        now = self._clock()
        with self._lock:
            events = self._events.get(key)
            if events is None:
                events = self._events[key] = deque()
                if len(self._events) > self.max_keys:
                    self._events.popitem(last=False)
            else:
                self._events.move_to_end(key)
            while events and events[0] <= now - self.seconds:
                events.popleft()
            if len(events) >= self.limit:
                return events[0] + self.seconds - now
            events.append(now)
            return 0.0

    def release(self, key: str = "") -> None:
        """Give back the most recent event of ``key`` (the creation it paid for did not happen)."""
        with self._lock:
            events = self._events.get(key)
            if events:
                events.pop()
