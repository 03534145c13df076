"""The ``threadstance`` application: registers one command per module and turns UserError into messages."""
from __future__ import annotations

import sys

import typer

from pipeline.cli.common import err_console
from pipeline.errors import UserError

app = typer.Typer(name="threadstance", no_args_is_help=True, add_completion=False,
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


_register()


def main() -> None:
    """Console entry point: run the app; user errors print one line and exit 2, never a traceback."""
    try:
        rc = app(standalone_mode=False)
        sys.exit(rc if isinstance(rc, int) else 0)
    except UserError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
