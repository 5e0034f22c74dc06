"""Adaptive concurrency (AIMD) and request/token rate limits for served models.

`AdaptiveLimiter` keeps a concurrency limit between 1 and the `--concurrency` ceiling: each
success raises it additively, each overload signal (429, 503, timeout) cuts it multiplicatively,
at most once per round of requests, and a Retry-After pauses every request, not only the one
that got it. Once an overload was seen the limit probes above the level that overloaded only
slowly, so a server with a fixed capacity rejects few requests after the first round.
`TokenBucket` spaces requests (or estimated tokens) to a per-minute rate. The limiter's state is
guarded by a thread lock and its waiters are woken on their own event loop, so one limiter
serves every request of a backend, whichever loop or thread sends it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

DECREASE = 0.7
"""The limit is multiplied by this on an overload."""
PROBE = 16
"""Above the level that last overloaded, the limit grows 1 per PROBE rounds instead of 1 per round."""
PAUSE_CHECK = 0.25


@dataclass(frozen=True)
class Ticket:
    """A request's slot: the round it started in and how many were in flight with it."""

    round: int
    position: int


@dataclass(frozen=True)
class LimiterStats:
    """What the limiter did: the concurrency limit at request starts, waits and overloads."""

    ceiling: int
    mean: float
    min: int
    final: int
    requests: int
    overloads: int
    pause_seconds: float
    rate_wait_seconds: float


class TokenBucket:
    """A per-minute rate as a virtual schedule: each reservation starts when the previous ones'
    cost has drained at `per_minute / 60` a second (no burst), so no 60-s window holds more
    than `per_minute` units plus one reservation's own cost."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.per_second = per_minute / 60.0
        self._clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self, amount: float) -> float:
        """Book `amount` units; the seconds to wait before using them (0 when free now)."""
        with self._lock:
            now = self._clock()
            start = max(now, self._next)
            self._next = start + amount / self.per_second
            return start - now


class AdaptiveLimiter:
    """Requests in flight at most `limit`, which adapts between 1 and `ceiling` (AIMD)."""

    def __init__(self, ceiling: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.ceiling = ceiling
        self.limit = float(ceiling)
        self.in_flight = 0
        self._clock = clock
        self._lock = threading.Lock()
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._round = 0
        self._overloaded_at = float("inf")
        self._pause_until = 0.0
        self._started = 0
        self._limit_sum = 0.0
        self._limit_min = ceiling
        self._overloads = 0
        self._paused = 0.0
        self._rate_waited = 0.0
        self._rate_until = 0.0

    @property
    def _allowed(self) -> int:
        return max(1, int(self.limit))

    async def acquire(self) -> Ticket:
        """Wait for a slot (and for any pause to end); the request's round and position."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] | None = None
        with self._lock:
            if self.in_flight < self._allowed and not self._waiters:
                self.in_flight += 1
            else:
                future = loop.create_future()
                self._waiters.append((loop, future))
        if future is not None:
            try:
                await future
            except asyncio.CancelledError:
                with self._lock:
                    if (loop, future) in self._waiters:
                        self._waiters.remove((loop, future))
                raise
        try:
            await self._sleep_while_paused()
        except asyncio.CancelledError:
            self.release()
            raise
        with self._lock:
            self._started += 1
            self._limit_sum += self._allowed
            self._limit_min = min(self._limit_min, self._allowed)
            return Ticket(self._round, self.in_flight)

    def release(self) -> None:
        """Give a slot back and hand free slots to waiting requests."""
        with self._lock:
            self.in_flight -= 1
            self._wake()

    def succeeded(self) -> None:
        """Additive increase: about one more slot per round of successes (slower past an overload)."""
        with self._lock:
            step = 1.0 / self.limit
            if self.limit >= self._overloaded_at + 1:
                self._overloaded_at = float("inf")  # the server took more than it did: forget
            elif self.limit + 1 >= self._overloaded_at:
                step /= PROBE
            self.limit = min(float(self.ceiling), self.limit + step)
            self._wake()

    def overloaded(self, ticket: Ticket, retry_after: float | None) -> None:
        """Multiplicative decrease, once per round; a Retry-After pauses every request.

        The level that overloaded is the fewest requests in flight with which one was turned
        away since the last cut: the cut starts from just below it (a limit far above what the
        server takes comes down at once), and the limit grows fast only up to just below it."""
        with self._lock:
            self._overloads += 1
            below = max(1.0, ticket.position - 1.0)
            if ticket.round == self._round:
                self._overloaded_at = float(ticket.position)
                self.limit = max(1.0, min(self.limit, below) * DECREASE)
                self._round += 1
            else:
                self._overloaded_at = min(self._overloaded_at, float(ticket.position))
                self.limit = min(self.limit, below)
            if retry_after:
                now = self._clock()
                until = now + retry_after
                if until > self._pause_until:
                    self._paused += until - max(now, self._pause_until)
                    self._pause_until = until

    def rate_wait(self, seconds: float) -> None:
        """Count a rate-limit wait of `seconds` from now (overlapping waits count once)."""
        if seconds <= 0:
            return
        with self._lock:
            now = self._clock()
            until = now + seconds
            if until > self._rate_until:
                self._rate_waited += until - max(now, self._rate_until)
                self._rate_until = until

    def stats(self) -> LimiterStats:
        """The limit at request starts (mean, min), now (final), overloads and time waited."""
        with self._lock:
            return LimiterStats(
                ceiling=self.ceiling,
                mean=self._limit_sum / self._started if self._started else float(self._allowed),
                min=self._limit_min if self._started else self._allowed,
                final=self._allowed,
                requests=self._started,
                overloads=self._overloads,
                pause_seconds=self._paused,
                rate_wait_seconds=self._rate_waited,
            )

    async def _sleep_while_paused(self) -> None:
        """Sleep until the pause ends, looking again every PAUSE_CHECK s (a pause may grow)."""
        while (remaining := self._pause_until - self._clock()) > 0:
            await asyncio.sleep(min(remaining, PAUSE_CHECK))

    def _wake(self) -> None:
        """Hand free slots to waiters, each on its own loop (call with the lock held)."""
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        while self._waiters and self.in_flight < self._allowed:
            loop, future = self._waiters.popleft()
            self.in_flight += 1
            if loop is here:  # no wake-up through the loop's self-pipe
                loop.call_soon(self._grant, future)
                continue
            try:
                loop.call_soon_threadsafe(self._grant, future)
            except RuntimeError:  # that loop is closed: its request is gone, the slot is free
                self.in_flight -= 1

    def _grant(self, future: asyncio.Future[None]) -> None:
        if future.done():  # cancelled while the slot was on its way
            self.release()
        else:
            future.set_result(None)
