"""``threadstance agreement``: Cohen's kappa and raw agreement between two label files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from pipeline.cli.common import console, err_console
from pipeline.config.schema import DEFAULT_SCHEMA_PATH, load_schema
from pipeline.data.labels import read_labels, write_text_atomic
from pipeline.errors import UserError
from pipeline.evaluation.agreement import AgreementReport, compare_labels


def agreement(
    file_a: Annotated[Path, typer.Argument(help="Label file of annotator (pass) A.")],
    file_b: Annotated[Path, typer.Argument(help="Label file of annotator (pass) B.")],
    schema_path: Annotated[Path, typer.Option("--schema", help="Label schema YAML.")] = DEFAULT_SCHEMA_PATH,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the numbers as JSON here.")] = None,
) -> None:
    """Kappa and raw agreement per target and for sentiment, plus the disagreement tables."""
    schema = load_schema(schema_path)
    if _same_file(file_a, file_b):
        err_console.print(f"warning: {file_a} and {file_b} are the same file: agreement with itself is 1 by "
                          "construction", markup=False, highlight=False, soft_wrap=True)
    records_a = read_labels(file_a, schema)
    records_b = read_labels(file_b, schema)
    report = compare_labels(records_a, records_b, schema)
    if not report.common:
        raise UserError(f"{file_a} and {file_b} label no item in common; nothing to compare")
    print_report(report, str(file_a), str(file_b))
    if json_out is not None:
        data = {"file_a": str(file_a), "file_b": str(file_b), "schema": schema.name, **report.to_dict()}
        write_text_atomic(json_out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        console.print(f"wrote {json_out}", markup=False)


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.samefile(b)
    except OSError:  # a missing file: read_labels says so
        return False


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def print_report(report: AgreementReport, name_a: str, name_b: str) -> None:
    who_a = escape(", ".join(report.annotators_a) or "A")
    who_b = escape(", ".join(report.annotators_b) or "B")
    console.print(f"A = {escape(name_a)} (annotator {who_a}): {report.n_a} items; "
                  f"B = {escape(name_b)} (annotator {who_b}): {report.n_b} items; compared on {len(report.common)} "
                  f"items both label", highlight=False)
    if report.only_a or report.only_b:
        err_console.print(f"[yellow]note:[/] {len(report.only_a)} item(s) only in A and {len(report.only_b)} "
                          "only in B are left out", highlight=False)
    table = Table(title="Agreement (Cohen's kappa, raw agreement p_o, chance agreement p_e)")
    for col in ("field", "n", "agreed", "raw p_o", "p_e", "kappa"):
        table.add_column(col, justify="left" if col == "field" else "right")
    for f in report.fields:
        table.add_row(escape(f.field), str(f.n), str(f.agreed), _fmt(f.observed), _fmt(f.expected), _fmt(f.kappa))
    console.print(table)
    console.print(f"items agreed on every field: {report.items_fully_agreed} of {len(report.common)}; "
                  f"disputed: {report.disputed_items}", highlight=False)
    for f in report.fields:
        if not f.disagreements:
            continue
        dt = Table(title=escape(f"{f.field}: disagreements"))
        dt.add_column(f"label A ({who_a})")
        dt.add_column(f"label B ({who_b})")
        dt.add_column("count", justify="right")
        for (a, b), count in sorted(f.disagreements.items(), key=lambda kv: (-kv[1], kv[0])):
            dt.add_row(escape(str(a)), escape(str(b)), str(count))
        console.print(dt)
