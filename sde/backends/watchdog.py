"""A statement timeout for engines that have none of their own (DuckDB, Spark).

>>> import time
>>> with Watchdog(0.05, lambda: None) as dog:
...     time.sleep(0.1)
>>> dog.fired
True

With ``repeat`` the watchdog keeps cancelling until the block ends: a Spark query
runs as several jobs one after another, and cancelling the jobs of a group only
stops those already running.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from types import TracebackType


class Watchdog:
    """Calls ``cancel`` if the ``with`` block runs longer than ``seconds``."""

    def __init__(
        self, seconds: float | None, cancel: Callable[[], object], *, repeat: float | None = None
    ) -> None:
        self.seconds = seconds
        self.repeat = repeat
        self._cancel = cancel
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.fired = False

    def _watch(self) -> None:
        if self.seconds is None or self._done.wait(self.seconds):
            return
        while True:
            self.fired = True
            self._cancel()
            if self.repeat is None or self._done.wait(self.repeat):
                return

    def __enter__(self) -> Watchdog:
        if self.seconds is not None and self.seconds > 0:
            self._thread = threading.Thread(target=self._watch, name="sde-watchdog", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
