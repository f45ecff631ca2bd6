"""Validation of TOML data (config.toml and rules/*.toml) that reports every defect at once.

A `Checker` walks untrusted TOML tables; each accessor records a problem instead of raising,
so a user sees all bad keys in one message such as
``config.toml: render.target_lufs: must be between -30 and -5 (got 3)``.
Call `Checker.raise_if_any` with the error class (`ConfigError` or `RuleError`) at the end.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from daemon.errors import TraumError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on 3.10
    import tomli as tomllib

_MISSING = object()


def read_toml(path: Path, error: type[TraumError]) -> dict[str, Any]:
    """Parse `path`; raise `error` naming file, line and column on a syntax error."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError as exc:
        raise error(f"{path}: file not found") from exc
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already ends in "(at line L, column C)".
        raise error(f"{path}: invalid TOML: {exc}") from exc


class Checker:
    """Collects problems found while reading one TOML document named `source`."""

    def __init__(self, source: str | Path) -> None:
        self.source = str(source)
        self.problems: list[str] = []

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.source}: {key}: {message}")

    def raise_if_any(self, error: type[TraumError]) -> None:
        if self.problems:
            raise error("\n".join(self.problems))

    def table(self, data: Any, key: str, allowed: Iterable[str]) -> dict[str, Any]:
        """Return `data` as a table, reporting unknown keys; a non-table reads as empty."""
        if not isinstance(data, dict):
            self.problem(key, f"must be a table (got {_show(data)})")
            return {}
        allowed = set(allowed)
        for name in data:
            if name not in allowed:
                where = f"{key}.{name}" if key else name
                self.problem(where, f"unknown key (allowed: {', '.join(sorted(allowed))})")
        return data

    def number(self, data: dict, key: str, name: str, default: Any = _MISSING, *,
               low: float | None = None, high: float | None = None,
               integer: bool = False) -> Any:
        """Read a number within [low, high]; integers only when `integer`."""
        value = self._get(data, key, name, default)
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            noun = "an integer" if integer else "a number"
            self.problem(_join(key, name), f"must be {noun} (got {_show(value)})")
            return default if default is not _MISSING else 0
        if (low is not None and value < low) or (high is not None and value > high):
            self.problem(_join(key, name), f"must be between {low:g} and {high:g} (got {value:g})")
        return value if integer else float(value)

    def boolean(self, data: dict, key: str, name: str, default: Any = _MISSING) -> bool:
        value = self._get(data, key, name, default)
        if not isinstance(value, bool):
            self.problem(_join(key, name), f"must be true or false (got {_show(value)})")
            return bool(default) if default is not _MISSING else False
        return value

    def text(self, data: dict, key: str, name: str, default: Any = _MISSING, *,
             choices: Iterable[str] | None = None) -> str:
        value = self._get(data, key, name, default)
        if not isinstance(value, str):
            self.problem(_join(key, name), f"must be a string (got {_show(value)})")
            return default if isinstance(default, str) else ""
        if choices is not None and value not in set(choices):
            options = ", ".join(sorted(choices))
            self.problem(_join(key, name), f"must be one of {options} (got {value!r})")
        return value

    def strings(self, data: dict, key: str, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self._get(data, key, name, default)
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            self.problem(_join(key, name), f"must be a list of strings (got {_show(value)})")
            return ()
        return tuple(value)

    def _get(self, data: dict, key: str, name: str, default: Any) -> Any:
        if name in data:
            return data[name]
        if default is _MISSING:
            self.problem(_join(key, name), "is required")
            return None
        return default


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
