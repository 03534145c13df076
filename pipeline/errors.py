"""User-facing errors: each names the file (and line or config key) it is about."""
from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """An error caused by input or configuration, reported without a traceback.

    Args:
        message: What is wrong, in words a researcher can act on.
        path: The file the error is about, if any.
        line: 1-based line number within ``path``, if known.
        key: Dotted config key, if the error is about configuration.
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.path:
            where = self.path + (f":{self.line}" if self.line else "")
        if self.key:
            where = f"{where} [{self.key}]" if where else f"[{self.key}]"
        return f"{where}: {self.message}" if where else self.message


class ParseError(UserError):
    """An input file could not be parsed; nothing from it is written."""


class ConfigError(UserError):
    """A config file or override is invalid."""
