"""Names that become folders (run names, report folders): never '.', '..', a path or a hidden name.

Issue 15: ``run_name: ..`` used to write a model folder over the repository root, and ``evaluate`` took
its report folder from ``run_name`` inside a model's ``metrics.json`` (a file a user may have been sent).
An output folder is ``<configured root>/<checked name>``; only an explicit ``--out`` goes elsewhere.
"""
from __future__ import annotations

import re
from pathlib import Path

from pipeline.errors import UserError

NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def check_name(name: str, what: str = "run_name") -> str:
    """``name`` if it is a plain folder name (letters, digits, ``_ . -``; not starting with ``.`` or
    ``-``; at most 128 characters), else ValueError naming ``what``."""
    if not isinstance(name, str) or not NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"{what} {name!r} must be a plain folder name: letters, digits, '_', '.', '-', "
                         "not starting with '.' or '-', no '/' (it becomes <root>/<name>)")
    return name


def child_dir(root: str | Path, name: str, what: str = "run_name") -> Path:
    """``root/name`` after checking ``name``; UserError instead of a folder outside ``root``."""
    try:
        check_name(name, what)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    out = Path(root) / name
    if Path(root).resolve() not in (out.resolve(), *out.resolve().parents):  # symlinked name
        raise UserError(f"{what} {name!r} leads outside {root}")
    return out
