"""A thread-safe token bucket: at most ``rate`` gateway requests per second, with bursts up to ``burst``."""

from __future__ import annotations

import threading
import time


class TokenBucket:
    def __init__(self, rate: float, burst: int | None = None) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive; use no bucket for unlimited")
        self.rate = rate
        self.capacity = float(burst if burst is not None else max(1, int(rate)))
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until a token is available, then take it."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                wait = (1 - self._tokens) / self.rate
            time.sleep(wait)


_shared: dict[float, TokenBucket] = {}
_shared_lock = threading.Lock()


def shared_bucket(rate: float) -> TokenBucket:
    """The process's one bucket for ``rate``: every batch and tick worker draws from it, so the limit holds
    for the process as a whole rather than per batch (a fresh bucket per batch would also start full)."""
    with _shared_lock:
        bucket = _shared.get(rate)
        if bucket is None:
            bucket = _shared[rate] = TokenBucket(rate)
        return bucket
