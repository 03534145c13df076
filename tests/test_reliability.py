"""Reliability probes from issue 15: documented exit codes, one-line errors, no tracebacks."""
from __future__ import annotations

import sys

import pytest


def cli(args, monkeypatch, capsys):
    """Run the real console entry point; returns (exit code, stdout, stderr)."""
    from pipeline.cli import common
    from pipeline.cli.main import main

    for con in (common.console, common.err_console):
        monkeypatch.setattr(con, "_width", 400)
    monkeypatch.setattr(sys, "argv", ["threadstance", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    return exc.value.code, out.out, out.err


@pytest.mark.parametrize("args", [["nosuch"], ["ingest", "--bogus", "x"], ["ingest"], ["predict"],
                                  ["evaluate", "--cv", "notanumber"], ["reclassify", "a", "b", "c"]])
def test_usage_errors_exit_2_with_one_line_and_no_traceback(args, monkeypatch, capsys):
    code, _, err = cli(args, monkeypatch, capsys)
    assert code == 2
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err


def test_unexpected_error_is_one_line_exit_1_and_debug_shows_traceback(monkeypatch, capsys):
    from pipeline.cli import main as main_mod

    def boom(*_a, **_k):
        raise RuntimeError("kaboom")

    monkeypatch.setattr(main_mod, "app", boom)
    code, _, err = cli(["runs"], monkeypatch, capsys)
    assert code == 1 and "kaboom" in err and "Traceback" not in err
    with pytest.raises(RuntimeError):
        monkeypatch.setattr(sys, "argv", ["threadstance", "--debug", "runs"])
        main_mod.main()
