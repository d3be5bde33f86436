"""A statement timeout for engines that have none of their own (DuckDB, Spark).

>>> import time
>>> with Watchdog(0.05, lambda: None) as dog:
...     time.sleep(0.1)
>>> dog.fired
True

With ``repeat`` the watchdog keeps cancelling until the block ends: a Spark query
runs as several jobs one after another, and cancelling the jobs of a group only
stops those already running.

Every watchdog of the process shares one daemon thread (a queue of deadlines):
starting a thread per query cost ~2 ms on a busy machine, more than many queries.
``cancel`` runs under the queue's lock and a finished block is marked under the same
lock, so a cancel never reaches a query after its ``with`` block has ended.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import threading
import time
from collections.abc import Callable
from types import TracebackType


class _Clock:
    """The process's one watchdog thread and its queue of (deadline, order, watchdog)."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self._queue: list[tuple[float, int, Watchdog]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def schedule(self, deadline: float, dog: Watchdog) -> None:
        with self.lock:
            heapq.heappush(self._queue, (deadline, next(self._order), dog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="sde-watchdog", daemon=True)
                self._thread.start()
            self.lock.notify()

    def _run(self) -> None:
        with self.lock:
            while True:
                while self._queue and self._queue[0][2].done:
                    heapq.heappop(self._queue)
                if not self._queue:
                    self.lock.wait()
                    continue
                deadline, _, dog = self._queue[0]
                now = time.monotonic()
                if deadline > now:
                    self.lock.wait(deadline - now)
                    continue
                heapq.heappop(self._queue)
                with contextlib.suppress(Exception):  # a failed cancel must not stop the clock
                    dog.fire()
                if dog.repeat is not None:
                    heapq.heappush(self._queue, (now + dog.repeat, next(self._order), dog))


_CLOCK = _Clock()


class Watchdog:
    """Calls ``cancel`` if the ``with`` block runs longer than ``seconds``."""

    def __init__(
        self, seconds: float | None, cancel: Callable[[], object], *, repeat: float | None = None
    ) -> None:
        self.seconds = seconds
        self.repeat = repeat
        self._cancel = cancel
        self.done = False
        self.fired = False

    def fire(self) -> None:
        """Cancel now (called by the clock, under its lock)."""
        self.fired = True
        self._cancel()

    def __enter__(self) -> Watchdog:
        if self.seconds is not None and self.seconds > 0:
            _CLOCK.schedule(time.monotonic() + self.seconds, self)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with _CLOCK.lock:  # after this, the clock skips this watchdog
            self.done = True
