"""The ``threadstance`` application: registers one command per module and turns UserError into messages."""
from __future__ import annotations

import os
import sys

import typer
from rich.markup import escape

from pipeline.cli.common import err_console
from pipeline.errors import UserError

app = typer.Typer(name="threadstance", no_args_is_help=True, add_completion=False, rich_markup_mode="markdown",
                  help="Sentiment and stance classification of news comment threads.")


def _register() -> None:
    # Imported here so `threadstance --help` stays fast and each command stays in its own module.
    from pipeline.cli import ingest_cmd, items_cmd, models_cmd, train_cmd

    app.command("ingest")(ingest_cmd.ingest)
    app.add_typer(items_cmd.app, name="items")
    app.command("train")(train_cmd.train)
    app.add_typer(models_cmd.app, name="models")
    from pipeline.cli import data_cmd

    app.add_typer(data_cmd.app, name="data")
    from pipeline.cli import agreement_cmd, annotate_cmd, labels_cmd, labelstudio_cmd

    app.add_typer(labels_cmd.app, name="labels")
    app.command("agreement")(agreement_cmd.agreement)
    app.command("annotate")(annotate_cmd.annotate)
    app.add_typer(labelstudio_cmd.app, name="labelstudio")
    from pipeline.cli import evaluate_cmd, run_cmd

    app.command("evaluate")(evaluate_cmd.evaluate)
    app.command("run")(run_cmd.run)
    from pipeline.cli import export_cmd, predict_cmd, reclassify_cmd, trends_cmd

    app.command("predict")(predict_cmd.predict)
    app.add_typer(export_cmd.app, name="export")
    app.command("reclassify")(reclassify_cmd.reclassify)
    app.command("runs")(reclassify_cmd.runs)
    app.command("trends")(trends_cmd.trends)
    from pipeline.cli import calibrate_cmd

    app.command("calibrate")(calibrate_cmd.calibrate)
    from pipeline.cli import suggest_cmd

    app.command("suggest")(suggest_cmd.suggest)
    from pipeline.cli import serve_cmd

    app.command("serve")(serve_cmd.serve)


_register()


def _click_exception_types() -> tuple[type[BaseException], ...]:
    """The ClickException classes in use: typer >= 0.22 bundles its own click (``typer._click``)."""
    types: list[type[BaseException]] = []
    try:
        from typer._click.exceptions import ClickException as BundledClickException

        types.append(BundledClickException)
    except ImportError:  # pragma: no cover - older typer without a bundled click
        pass
    try:
        import click

        types.append(click.ClickException)
    except ImportError:  # pragma: no cover
        pass
    return tuple(types)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _usage_message(exc: BaseException) -> str:
    """One line for a click usage error: the message plus where to find help."""
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    ctx = getattr(exc, "ctx", None)
    hint = ""
    if ctx is not None:
        hint = f" (try '{ctx.command_path} --help')"
    return _one_line(message) + hint


def _error(message: str) -> None:
    err_console.print(f"[bold red]error:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: every error is one line and a documented exit code, never a traceback.

    Exit codes: 0 ok, 1 some input failed, 2 usage or input error, 3 evaluate below min_scores,
    75 reclassify already running, 130 interrupted. ``--debug`` (anywhere on the command line, or
    ``THREADSTANCE_DEBUG=1``) re-raises unexpected errors with their traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("THREADSTANCE_DEBUG", "") not in ("", "0")
    args = [a for a in args if a != "--debug"]
    click_errors = _click_exception_types()
    try:
        rc = app(args=args, prog_name="threadstance", standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except UserError as exc:
        if debug:
            raise
        _error(str(exc))
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except click_errors as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare command group: show its help
            exc.show()  # type: ignore[attr-defined]
            sys.exit(2)
        _error(_usage_message(exc))
        sys.exit(getattr(exc, "exit_code", 2))
    except OSError as exc:
        if debug:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _error(f"{where}{exc.strerror or exc}")
        sys.exit(2)
    except Exception as exc:  # a bug or an unforeseen failure: still one line
        if debug:
            raise
        _error(f"unexpected {type(exc).__name__}: {exc or 'no details'} (rerun with --debug for a traceback)")
        sys.exit(1)


if __name__ == "__main__":
    main()
