"""The render lane's side of the daemon: when a prompt needs its render, and how a failed
one is answered (``NAME.error.txt``).

Whether a prompt was answered is read from timestamps (`daemon.folders.needs_render`) the
first time the daemon sees it; after that the daemon remembers which text (by modification
time) it rendered, because timestamps mislead after the system clock jumped back: outputs
written then look older than their prompt and would be rendered again at every rescan.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from daemon.errors import TraumError
from daemon.folders import error_path, has_answer, needs_render
from daemon.fsutil import write_text_atomic
from daemon.service.notify import log_failure

log = logging.getLogger("traum.daemon")


def write_error_file(prompt: Path, message: str) -> None:
    """Write ``NAME.error.txt`` atomically (a temp name the watcher ignores, then rename)."""
    write_text_atomic(error_path(prompt), f"{message}\nEdit {prompt.name} to try again.\n")


class Renders:
    """Render prompts through `render` (the engine's), one at a time (the render lane's
    handler and failure hook).

    `announce` logs "rendering NAME" as a render starts; it is off where `render` does not
    render but says what it does itself (the cluster's watcher, which queues the prompt for
    a worker: `daemon.cluster.dispatch`).
    """

    def __init__(self, render: Callable[[Path], object], *, announce: bool = True) -> None:
        self.render = render
        self.announce = announce
        self.attempted: dict[Path, int] = {}  # prompt → mtime of the text last rendered
        self.current: tuple[Path, int] | None = None  # the prompt in progress, its mtime

    def handle(self, prompt: Path) -> None:
        """Render `prompt` unless it is gone or this text was answered already."""
        try:
            written = prompt.stat().st_mtime_ns
        except OSError:
            return  # deleted while it waited
        if self.attempted.get(prompt) == written and has_answer(prompt):
            return
        # Outputs written while the prompt was being edited look newer than the edit, so an
        # edit after an attempt always renders; at first sight the timestamps decide.
        if prompt not in self.attempted and not needs_render(prompt):
            return
        if self.announce:
            log.info("rendering %s", prompt.name)
        self.current = (prompt, written)
        self.render(prompt)
        self.attempted[prompt] = written
        if not prompt.exists():
            log.info("%s was deleted during its render; %s and its outputs are kept",
                     prompt.name, prompt.with_suffix(".wav").name)
            return
        error_path(prompt).unlink(missing_ok=True)  # an older failure no longer applies

    def failed(self, prompt: Path, exc: BaseException) -> None:
        """Answer a final failure with ``NAME.error.txt``; nothing when the prompt is gone."""
        if not prompt.exists():
            log.info("%s was deleted before its render finished; no error file (%s)",
                     prompt.name, exc)
            return
        log_failure("render", prompt, exc)
        if self.current is not None and self.current[0] == prompt:
            self.attempted[prompt] = self.current[1]  # this text failed: not again
        message = str(exc) if isinstance(exc, TraumError) else (
            f"internal error: {type(exc).__name__}: {exc}")
        try:
            write_error_file(prompt, message)
        except OSError as write_exc:
            log.error("cannot write %s: %s", error_path(prompt), write_exc)

    def forget_gone(self) -> None:
        """Drop what is remembered about prompts that no longer exist."""
        for prompt in list(self.attempted):
            if not prompt.exists():
                self.attempted.pop(prompt, None)
