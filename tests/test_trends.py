"""`threadstance trends`: corrected label shares with intervals from a store of classified seed threads,
and the out-of-fold table that training stores in the model folder for it."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import cli
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.config.run import load_config
from pipeline.errors import ConfigError
from pipeline.modeling.folder import OOF_TABLE_FILE, ModelFolder
from pipeline.reporting.trends import COLUMNS, trends, trends_figure

REPO = Path(__file__).resolve().parent.parent
RECIPE = REPO / "reports" / "recipes" / "top2_corpus.json"
TARGETS = ["sentiment", "blame_management", "funding", "nqsw_access", "ofsted"]


def invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def oof_model(tmp_path_factory: pytest.TempPathFactory, smoke_model: Path, shared_dir: Path) -> Path:
    """The smoke model saved again by save_run with calibration.oof_predictions set (no training)."""
    import torch

    from pipeline.modeling.encoding import InputSpec
    from pipeline.training.run import save_run

    out = tmp_path_factory.mktemp("oof_models")
    source = ModelFolder(smoke_model)
    cfg = load_config(smoke_model / "config.yaml", [f"paths.models={out}", f"paths.shared={shared_dir}",
                                                    f"calibration.oof_predictions={RECIPE}",
                                                    "calibration.temperature={sentiment: 1.294, stance: 0.976}"])
    model, tokenizer = source.load_model()
    meta, metrics = source.read_meta(), source.read_json("metrics.json")
    save_run(cfg, model, tokenizer, InputSpec(**meta["input"]), source.read_schema(), [], metrics["counts"], {},
             1.0, torch.device("cpu"), {}, [])
    return cfg.output_dir


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, smoke_model: Path, seeds_dir: Path) -> Path:
    """The seed threads ingested and classified by the smoke model (one reclassify run)."""
    root = tmp_path_factory.mktemp("trends")
    (root / "inbox").mkdir()
    for f in sorted(seeds_dir.glob("*.txt")):
        shutil.copy(f, root / "inbox" / f.name)
    cfg = {"inbox": str(root / "inbox"), "processed": str(root / "processed"), "quarantine": str(root / "q"),
           "store": str(root / "store.sqlite"), "model": str(smoke_model), "export": str(root / "export"),
           "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"), "device": "cpu"}
    (root / "schedule.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    result = invoke("reclassify", str(root / "schedule.yaml"))
    assert result.exit_code == 0, result.output
    return root / "store.sqlite"


def csv_records(result) -> pd.DataFrame:  # noqa: ANN001
    assert result.exit_code == 0, result.output
    return pd.read_csv(io.StringIO(result.stdout))


# ---- the out-of-fold table in the model folder --------------------------------------------------------
def test_training_stores_the_oof_table_with_the_manifest_metrics_and_card(oof_model: Path, smoke_model: Path) -> None:
    folder = ModelFolder(oof_model)
    assert OOF_TABLE_FILE in folder.manifest()
    folder.verify()
    table = folder.read_oof_table()
    assert table["n"] == 1425 and table["recipe"] == "top2_corpus"  # every domain_real v3 passage, out of fold
    assert folder.read_json("metrics.json")["oof_table"]["n"] == 1425
    assert OOF_TABLE_FILE in folder.read_text("README.md")
    assert folder.recorded_version() == ModelFolder(smoke_model).recorded_version()  # the table is not the model
    assert ModelFolder(smoke_model).read_oof_table() is None


def test_oof_table_holds_true_classes_and_tempered_probabilities(oof_model: Path, shared_dir: Path) -> None:
    from scipy.special import softmax

    from pipeline.data.public_data import load_domain_real

    table = ModelFolder(oof_model).read_oof_table()
    logits = json.loads(RECIPE.read_text())["oof"]
    real = {r["id"]: r for r in load_domain_real(shared_dir)}
    k = table["ids"].index("rf-2")
    assert np.allclose(table["sentiment"]["probs"][k], softmax(np.array(logits["rf-2"]["sentiment"]) / 1.294),
                       atol=1e-5)
    assert np.allclose(table["stance"]["ofsted"]["probs"][k], softmax(np.array(logits["rf-2"]["stance"][3]) / 0.976),
                       atol=1e-5)
    assert table["sentiment"]["classes"][table["sentiment"]["true"][k]] == real["rf-2"]["sentiment"]
    assert table["stance"]["blame_management"]["true"][k] == 0  # rf-2 is favor
    urls = [real[i]["url"] for i in table["ids"]]
    assert len(set(table["groups"])) == len(set(urls))
    assert all((a == b) == (u == v) for a, u in zip(table["groups"][:60], urls[:60])
               for b, v in zip(table["groups"][:60], urls[:60]))


def test_a_missing_oof_predictions_file_fails_before_training(tmp_path: Path) -> None:
    from pipeline.training.train import train

    cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.models={tmp_path}",
                                                        f"calibration.oof_predictions={tmp_path / 'nope.json'}"])
    with pytest.raises(ConfigError, match=r"calibration\.oof_predictions"):
        train(cfg, progress=False)
    assert not any(tmp_path.iterdir())


# ---- the command ------------------------------------------------------------------------------------
def test_csv_has_corrected_shares_inside_their_intervals_on_real_dates(store: Path, oof_model: Path) -> None:
    frame = csv_records(invoke("trends", "--db", str(store), "--model", str(oof_model), "--by", "year",
                               "--format", "csv", "--bootstrap", "200"))
    assert list(frame.columns) == COLUMNS
    assert list(dict.fromkeys(frame["target"])) == TARGETS
    assert (frame["method"] == "acc").all() and frame["share"].notna().all()
    assert ((frame["ci_low"] <= frame["share"] + 1e-9) & (frame["share"] <= frame["ci_high"] + 1e-9)).all()
    assert ((frame["raw_ci_low"] <= frame["share_raw"] + 1e-9) & (frame["share_raw"] <= frame["raw_ci_high"] + 1e-9)).all()
    starts = pd.to_datetime(frame["period_start"], format="%Y-%m-%d")
    assert set(starts.dt.year) == set(frame["period"].astype(int))
    assert starts.min().year >= 2010 and starts.max().year <= 2025  # the seed threads' own dates
    sums = frame.groupby(["period", "target"])[["share", "share_raw"]].sum()
    assert np.allclose(sums, 1.0, atol=5e-4)  # CSV values are rounded to 4 decimals
    n_items = frame[frame["target"] == "sentiment"].groupby("period")["n"].first().sum()
    assert n_items == 144  # every seed item is dated


def test_jsonl_and_table_formats_carry_the_same_records(store: Path, oof_model: Path) -> None:
    args = ("trends", "--db", str(store), "--model", str(oof_model), "--by", "quarter", "--bootstrap", "200")
    lines = invoke(*args, "--format", "jsonl").stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert set(records[0]) == set(COLUMNS) and "Q" in records[0]["period"]
    table = invoke(*args)
    assert table.exit_code == 0 and "share [95 % CI]" in table.stdout and records[0]["period"] in table.stdout


def test_filters_by_kind_thread_and_date_range(store: Path, oof_model: Path) -> None:
    base = ("trends", "--db", str(store), "--model", str(oof_model), "--by", "year", "--format", "csv",
            "--bootstrap", "100")
    every = csv_records(invoke(*base))
    paragraphs = csv_records(invoke(*base, "--kind", "paragraph"))
    comments = csv_records(invoke(*base, "--kind", "comment", "--kind", "reply"))
    first = lambda f: f[f["target"] == "sentiment"].groupby("period")["n"].first()  # noqa: E731
    assert first(paragraphs).sum() + first(comments).sum() == first(every).sum()
    assert 0 < first(paragraphs).sum() < first(every).sum()
    ranged = csv_records(invoke(*base, "--since", "2016-01-01", "--until", "2018-12-31"))
    assert set(ranged["period"].astype(str)) <= {"2016", "2017", "2018"} and len(ranged)
    from pipeline.store.db import Store

    with Store.open_readonly(store) as s:
        thread = s.threads()[0]["thread_id"]
        n_thread = len(s.items(thread_id=thread))
    one = csv_records(invoke(*base, "--thread", thread))
    assert first(one).sum() == n_thread and (one["n_threads"] == 1).all()


def test_periods_with_too_few_items_are_flagged_and_not_plotted(store: Path, oof_model: Path) -> None:
    result = trends(store, oof_model, "month", min_items=25, min_threads=1, n_boot=100)
    frame = result.frame
    assert (frame["too_few"] == (frame["n"] < 25)).all()
    assert frame["too_few"].any() and not frame["too_few"].all()
    fig = trends_figure(frame, "test")
    ax = fig.axes[0]  # sentiment
    plotted = set()
    for line in ax.get_lines():
        x, y = np.asarray(line.get_xdata()), np.asarray(line.get_ydata(), dtype=float)
        plotted |= {pd.Timestamp(v).strftime("%Y-%m") for v, w in zip(x, y) if not np.isnan(w)}
    sentiment = frame[frame["target"] == "sentiment"]
    assert plotted == set(sentiment.loc[~sentiment["too_few"], "period"])


def test_periods_with_fewer_threads_than_min_threads_are_flagged(store: Path, oof_model: Path) -> None:
    frame = trends(store, oof_model, "year", min_items=1, n_boot=100).frame  # default: at least 3 threads
    assert (frame["too_few"] == (frame["n_threads"] < 3)).all() and frame["too_few"].any()
    loose = trends(store, oof_model, "year", min_items=1, min_threads=1, n_boot=100).frame
    assert not loose["too_few"].any()


def test_a_min_confidence_no_table_item_reaches_leaves_shares_uncorrected_with_a_note(store: Path, oof_model: Path,
                                                                                      monkeypatch, capsys) -> None:
    rc, out, err = cli(["trends", "--db", store, "--model", oof_model, "--by", "year", "--format", "csv",
                        "--bootstrap", "100", "--min-confidence", "1.0"], monkeypatch, capsys)
    assert rc == 0, err
    assert "no out-of-fold" in err and "reaches --min-confidence 1.0" in err and "Traceback" not in err
    frame = pd.read_csv(io.StringIO(out))
    assert (frame.loc[frame["label"] == "abstain", "share"] == 1.0).all()  # at 1.0 every item abstains


def test_a_single_thread_is_not_flagged_for_having_one_thread(store: Path, oof_model: Path) -> None:
    from pipeline.store.db import Store

    with Store.open_readonly(store) as s:
        thread = s.threads()[0]["thread_id"]
    frame = trends(store, oof_model, "year", threads=[thread], min_items=1, n_boot=100).frame
    assert (frame["n_threads"] == 1).all() and not frame["too_few"].any()


def _without_kinds(monkeypatch, kinds=None) -> None:  # noqa: ANN001
    """Make model folders read their out-of-fold table as one written before kinds were stored (or with
    ``kinds``)."""
    original = ModelFolder.read_oof_table

    def read(self):  # noqa: ANN001, ANN202
        table = dict(original(self))
        table.pop("kinds", None)
        if kinds is not None:
            table["kinds"] = [kinds] * table["n"]
        return table

    monkeypatch.setattr(ModelFolder, "read_oof_table", read)


def test_a_table_written_before_kinds_were_stored_takes_them_from_domain_real(oof_model: Path, shared_dir: Path,
                                                                            monkeypatch) -> None:
    from pipeline.reporting.trends import load_error_tables

    _without_kinds(monkeypatch)
    monkeypatch.setenv("THREADSTANCE_SHARED", str(shared_dir))
    tables, _ = load_error_tables(oof_model)
    assert (tables["sentiment"].strata == "comment").sum() == 305
    monkeypatch.setenv("THREADSTANCE_SHARED", str(shared_dir / "missing"))
    tables, _ = load_error_tables(oof_model)
    assert tables["sentiment"].strata is None  # pooled over kinds, and trends says so


def test_comments_are_corrected_with_pooled_rates_when_the_table_has_no_comment(store: Path, oof_model: Path,
                                                                             monkeypatch) -> None:
    _without_kinds(monkeypatch, kinds="report")
    result = trends(store, oof_model, "year", kinds=["comment", "reply"], min_items=1, min_threads=1, n_boot=100)
    assert any("no out-of-fold reader-comment passage is in it" in n for n in result.notes)
    assert result.frame["share"].notna().all()


def test_the_oof_table_records_each_passage_kind_and_comments_get_their_own_rates(oof_model: Path) -> None:
    from pipeline.evaluation.prevalence import error_tables

    folder = ModelFolder(oof_model)
    oof = folder.read_oof_table()
    assert len(oof["kinds"]) == oof["n"] and {"comment", "opinion", "report"} <= set(oof["kinds"])
    table = error_tables(oof, folder.read_meta())["sentiment"]
    assert (table.strata == "comment").sum() == oof["kinds"].count("comment")


def test_the_png_has_a_date_axis_and_interval_bands(store: Path, oof_model: Path, tmp_path: Path) -> None:
    result = invoke("trends", "--db", str(store), "--model", str(oof_model), "--by", "year", "--format", "csv",
                    "--bootstrap", "100", "--min-items", "1", "--min-threads", "1", "--out", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "trends.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert pd.read_csv(tmp_path / "out" / "trends.csv").equals(pd.read_csv(io.StringIO(result.stdout)))
    frame = trends(store, oof_model, "year", min_items=1, min_threads=1, n_boot=100).frame
    fig = trends_figure(frame, "test")
    ax = fig.axes[-1]
    assert isinstance(ax.xaxis.get_major_locator(), mdates.AutoDateLocator)
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    lo, hi = (mdates.num2date(v).year for v in ax.get_xlim())
    assert 2010 <= lo and hi <= 2025
    assert any(type(c).__name__ in ("PolyCollection", "FillBetweenPolyCollection") for c in ax.collections)


def test_a_model_without_the_table_gives_raw_shares_and_says_why(store: Path, smoke_model: Path, monkeypatch,
                                                                 capsys) -> None:
    rc, out, err = cli(["trends", "--db", store, "--model", smoke_model, "--by", "year", "--format", "csv",
                        "--bootstrap", "100"], monkeypatch, capsys)
    assert rc == 0
    frame = pd.read_csv(io.StringIO(out))
    assert frame["share"].isna().all() and frame["share_raw"].notna().all() and (frame["method"] == "cc").all()
    notes = [line for line in err.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and OOF_TABLE_FILE in notes[0] and "not corrected" in notes[0]


def test_min_confidence_reports_abstain_as_its_own_share(store: Path, oof_model: Path) -> None:
    frame = trends(store, oof_model, "year", min_confidence=0.5, n_boot=100).frame
    abstain = frame[frame["label"] == "abstain"].set_index(["period", "target"])
    assert len(abstain) == frame.groupby(["period", "target"]).ngroups
    labels = frame[frame["label"] != "abstain"]
    counted = labels.groupby(["period", "target"])["n"].first()
    total = abstain["n"].reindex(counted.index)
    unsure = (abstain["share_raw"].reindex(counted.index) * total).round().astype(int)
    assert (counted + unsure == total).all()
    answered = labels[labels["n"] > 0].groupby(["period", "target"])["share_raw"].sum()
    assert np.allclose(answered, 1.0)


def test_bad_options_are_one_line_errors(store: Path, monkeypatch, capsys) -> None:
    for args, needle in ((["--by", "week"], "--by"), (["--kind", "tweet"], "--kind"),
                         (["--since", "someday"], "--since"), (["--min-confidence", "1.5"], "--min-confidence"),
                         (["--method", "magic"], "--method")):
        rc, _, err = cli(["trends", "--db", store, *args], monkeypatch, capsys)
        assert rc == 2 and needle in err and len(err.strip().splitlines()) == 1, (args, err)


def test_the_python_api_returns_the_same_records(store: Path, oof_model: Path) -> None:
    from pipeline import api

    cli_frame = csv_records(invoke("trends", "--db", str(store), "--model", str(oof_model), "--by", "year",
                                   "--format", "csv", "--bootstrap", "100", "--kind", "comment"))
    frame = api.trends(store, oof_model, by="year", kinds=["comment"], n_boot=100)
    assert list(frame.columns) == COLUMNS and frame.attrs["notes"] == []
    assert np.allclose(frame["share"].round(4), cli_frame["share"]) and len(frame) == len(cli_frame)


def test_a_singular_misclassification_matrix_leaves_shares_uncorrected_with_a_note() -> None:
    from pipeline.evaluation.prevalence import ErrorTable
    from pipeline.reporting.trends import trend_frame

    classes = ["favor", "against", "none"]
    rng = np.random.default_rng(0)
    true = rng.integers(0, 3, 300)
    never_against = np.eye(3)[np.where(true == 1, 2, true)]  # the model never predicts against: M is singular
    tables = {"ofsted": ErrorTable(classes, true, never_against, np.arange(300) // 3)}
    heads = [{"ofsted": dict(zip(classes, p))} for p in rng.dirichlet(np.ones(3), 60)]
    items = pd.DataFrame({"item_id": range(60), "thread_id": np.arange(60) % 6, "kind": "comment",
                          "date": pd.Timestamp("2024-01-01"), "period": pd.Period("2024", "Y"), "heads": heads})
    frame, notes = trend_frame(items, tables, min_items=1, n_boot=50)
    assert any("ofsted: its misclassification matrix is singular" in n for n in notes)
    assert (frame["method"] == "cc").all() and frame["share"].isna().all()  # not a raw share labelled acc
    kinds = np.where(np.arange(300) < 150, "comment", "other")
    comment_never_against = np.where((kinds == "comment")[:, None], never_against, np.eye(3)[true])
    tables["ofsted"] = ErrorTable(classes, true, comment_never_against, np.arange(300) // 3, kinds)
    frame, notes = trend_frame(items, tables, min_items=1, n_boot=50)
    assert any("matrix of reader-comment passages is singular" in n for n in notes)
    assert (frame["method"] == "acc").all() and frame["share"].notna().all()  # the pooled rates instead


def test_out_naming_a_csv_or_jsonl_file_writes_only_that_file(store: Path, oof_model: Path, tmp_path: Path) -> None:
    for name, reader in (("shares.csv", pd.read_csv), ("shares.jsonl", lambda p: pd.read_json(p, lines=True))):
        result = invoke("trends", "--db", str(store), "--model", str(oof_model), "--by", "year", "--bootstrap", "100",
                        "--out", str(tmp_path / name))
        assert result.exit_code == 0, result.output
        assert (tmp_path / name).is_file() and len(reader(tmp_path / name)) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shares.csv", "shares.jsonl"]  # no folder, no plot


def test_out_naming_an_existing_file_is_a_one_line_error(store: Path, oof_model: Path, tmp_path: Path, monkeypatch,
                                                          capsys) -> None:
    existing = tmp_path / "notes"
    existing.write_text("keep me")
    rc, _, err = cli(["trends", "--db", store, "--model", oof_model, "--by", "year", "--bootstrap", "100",
                      "--out", existing], monkeypatch, capsys)
    assert rc == 2
    assert f"{existing}: --out is a file" in err and "Traceback" not in err
    assert existing.read_text() == "keep me"


def test_a_plot_with_no_period_to_show_says_so(store: Path, oof_model: Path, tmp_path: Path, monkeypatch,
                                                capsys) -> None:
    rc, _, err = cli(["trends", "--db", store, "--model", oof_model, "--by", "year", "--bootstrap", "100",
                      "--min-items", "100000", "--out", tmp_path / "p.png"], monkeypatch, capsys)
    assert rc == 0
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "the plot shows no points" in err
