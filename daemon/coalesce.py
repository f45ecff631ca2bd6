"""One background thread that runs a job again after requests, coalescing bursts.

The ingest lane asks for the kit profiles to be brought up to date after every kit. Run in
line, that pass left the analysis pool idle between kits; here it runs beside the next kit's
analysis, and a burst of kits costs one or two passes rather than one each. The job must
be safe to run beside the caller's work and must bring *everything* requested so far up to
date, since requests made while it waits are merged into one run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class CoalescingJob:
    """Runs `job` in one daemon thread, again after each `request` (requests made before a
    run starts are merged into it). The thread starts with the first request, and again if
    a bug ended it (the exception goes to `threading.excepthook`)."""

    def __init__(self, job: Callable[[], None], *, name: str) -> None:
        self._job = job
        self._name = name
        self._state = threading.Condition()
        self._pending = False
        self._running = False
        self._closed = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        """Ask for one more run; return at once. Ignored once `close` was called."""
        with self._state:
            if self._closed:
                return
            self._pending = True
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name=self._name,
                                                daemon=True)
                self._thread.start()
            self._state.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is pending or running; False when `timeout` passed first."""
        with self._state:
            return self._state.wait_for(lambda: not (self._pending or self._running),
                                        timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Take no more requests, finish the one pending and the one running, and end the
        thread; False when `timeout` passed first (the daemon thread is left behind: what
        it was doing is redone by whoever needs it next)."""
        with self._state:
            self._closed = True
            self._state.notify_all()
            thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _serve(self) -> None:
        while True:
            with self._state:
                self._state.wait_for(lambda: self._pending or self._closed)
                if not self._pending:
                    return
                self._pending, self._running = False, True
            try:
                self._job()
            except BaseException:
                with self._state:  # a bug: end the thread, and let no waiter wait for it
                    self._pending = self._running = False
                    self._state.notify_all()
                raise
            with self._state:
                self._running = False
                self._state.notify_all()
