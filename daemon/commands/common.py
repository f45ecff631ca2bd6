"""What every command module shares: exit codes, JSON printing, prompt and config helpers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from daemon.config import Config
from daemon.errors import TraumError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3


def print_json(data: Any) -> None:
    """Print `data` as indented UTF-8 JSON (paths and other objects as strings)."""
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def prompt_text(prompt: str) -> str:
    """The prompt itself, or the text of a ``.prompt`` file when `prompt` names one."""
    from daemon.folders import read_prompt

    path = Path(prompt)
    if prompt.endswith(".prompt") and path.is_file():
        return read_prompt(path)
    return prompt


def slug(text: str) -> str:
    """A file name from the first six words of a prompt."""
    words = re.findall(r"[\w]+", text.casefold())[:6]
    return "-".join(words) or "track"


def config_path(config: Config) -> Path:
    """The config file a service must be started with; raise if defaults are in use."""
    if config.source is None:
        raise TraumError("no config.toml found: the service needs one; pass --config PATH")
    return config.source


def traum_executable() -> str:
    """The command line that starts this installation's `traum`."""
    candidate = Path(sys.executable).with_name("traum")
    return str(candidate) if candidate.exists() else f"{sys.executable} -m daemon"


def progress_bar(label: str):
    """A tqdm bar on a TTY (an ``on_progress(done, total)`` callback), silence otherwise."""
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="stem", leave=False)

    def update(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return update
