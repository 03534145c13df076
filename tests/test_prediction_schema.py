"""One prediction schema: predict, predict --db, reclassify, every export format and the Python API give the
same records for the same items; predict --db stores them exactly as reclassify does; docs/api.md runs."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import datasets
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipeline import api
from pipeline.cli.main import app
from pipeline.store.db import Store
from pipeline.store.records import records_frame, stored_records

REPO = Path(__file__).resolve().parent.parent
JSONL = Path(__file__).parent / "fixtures" / "jsonl" / "comments.jsonl"
ITEM_KEYS = ["item_id", "thread_id", "kind", "parent_id", "author", "posted_at", "model_version", "sentiment",
             "stance", "text"]


def invoke(*args: str):  # noqa: ANN202
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def shape(value: object) -> object:
    """The schema of a record: nested keys with the type of every leaf (None counts as any type)."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    return None if value is None else type(value).__name__


def same_shape(a: object, b: object) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(same_shape(a[k], b[k]) for k in a)
    return a is None or b is None or a == b


def assert_same_records(got: list[dict], want: list[dict]) -> None:
    """Same items, keys and labels; probabilities equal up to batch-padding noise. The store gives thread and
    page order, the input files their own order, so items are matched by id."""
    assert sorted(r["item_id"] for r in got) == sorted(r["item_id"] for r in want)
    by_id = {r["item_id"]: r for r in want}
    for g in got:
        w = by_id[g["item_id"]]
        assert same_shape(shape(g), shape(w)), (g["item_id"], shape(g), shape(w))
        assert {k: g[k] for k in ITEM_KEYS if k not in ("sentiment", "stance")} == \
               {k: w[k] for k in ITEM_KEYS if k not in ("sentiment", "stance")}
        for head_g, head_w in [(g["sentiment"], w["sentiment"]), *zip(g["stance"].values(), w["stance"].values())]:
            assert head_g["label"] == head_w["label"]
            assert all(abs(head_g["probs"][c] - p) < 1e-3 for c, p in head_w["probs"].items())


def schedule(root: Path, model: Path, files: list[Path]) -> Path:
    (root / "inbox").mkdir(parents=True)
    for f in files:
        shutil.copy(f, root / "inbox" / f.name)
    cfg = {"inbox": str(root / "inbox"), "processed": str(root / "processed"), "quarantine": str(root / "q"),
           "store": str(root / "store.sqlite"), "model": str(model), "export": str(root / "export"),
           "batch_size": 16, "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"),
           "device": "cpu", "precision": "fp32"}
    path = root / "schedule.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def jsonl(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def inputs(seeds_dir: Path) -> list[Path]:
    return [sorted(seeds_dir.glob("*.txt"))[0], JSONL]


@pytest.fixture(scope="module")
def plain(inputs: list[Path], smoke_model: Path) -> list[dict]:
    """`threadstance predict` without a store."""
    result = invoke("predict", *inputs, "--model", smoke_model, "--format", "jsonl", "--precision", "fp32",
                    "--batch-size", "16", "--device", "cpu")
    assert result.exit_code == 0, result.output
    return jsonl(result.stdout)


@pytest.fixture(scope="module")
def reclassified(tmp_path_factory: pytest.TempPathFactory, inputs: list[Path], smoke_model: Path) -> Path:
    """A store filled by `threadstance reclassify`."""
    root = tmp_path_factory.mktemp("reclassify")
    result = invoke("reclassify", schedule(root, smoke_model, inputs))
    assert result.exit_code == 0, result.output
    return root


def test_predict_reclassify_exports_and_api_give_one_schema_for_the_same_items(
        plain: list[dict], reclassified: Path, smoke_model: Path, tmp_path: Path, inputs: list[Path]) -> None:
    db = reclassified / "store.sqlite"
    assert plain and all(list(r) == ITEM_KEYS for r in plain)

    exported = invoke("export", "predictions", "--db", db, "--model", smoke_model)
    assert exported.exit_code == 0, exported.output
    from_store = jsonl(exported.stdout)
    assert_same_records(from_store, plain)  # reclassify's stored records, exported

    stored_db = tmp_path / "predict.sqlite"
    predicted = invoke("predict", *inputs, "--db", stored_db, "--model", smoke_model, "--format", "jsonl",
                       "--precision", "fp32", "--batch-size", "16", "--device", "cpu")
    assert predicted.exit_code == 0, predicted.output
    assert_same_records(jsonl(predicted.stdout), plain)  # predict --db prints what it stored
    assert_same_records(api.read_predictions(stored_db, smoke_model, as_frame=False), plain)

    texts = [r["text"] for r in plain]
    by_api = api.classify(api.load_model(smoke_model, device="cpu", precision="fp32", batch_size=16), texts)
    assert all(same_shape(shape(a), shape(p)) for a, p in zip(by_api, plain))
    assert [a["sentiment"]["label"] for a in by_api] == [p["sentiment"]["label"] for p in plain]

    # the tabular exports: the flattened records, the same columns as the snapshot reclassify writes
    frame = records_frame(from_store)
    assert invoke("export", "predictions", "--db", db, "--format", "csv", "--out", tmp_path / "p.csv").exit_code == 0
    assert invoke("export", "predictions", "--db", db, "--format", "parquet", "--out",
                  tmp_path / "p.parquet").exit_code == 0
    csv = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, na_values=[""])
    parquet = pd.read_parquet(tmp_path / "p.parquet")
    snapshot = pd.read_parquet(reclassified / "export" / "predictions.parquet")
    for table in (csv, parquet, snapshot, api.read_predictions(db)):
        assert list(table.columns) == list(frame.columns)
        assert table["item_id"].tolist() == frame["item_id"].tolist()
        assert table["stance.funding.label"].tolist() == frame["stance.funding.label"].tolist()
        assert (table["sentiment.probs.negative"] - frame["sentiment.probs.negative"]).abs().max() < 1e-9
    assert "stance.ofsted.probs.none" in frame.columns and frame.columns[-1] == "text"

    # the Hugging Face datasets folder holds the nested records themselves
    folder = tmp_path / "hf"
    assert invoke("export", "predictions", "--db", db, "--format", "hf", "--out", folder).exit_code == 0
    # (Arrow gives every row of a column the same struct: a stance head without evidence reads back with
    # evidence None)
    assert [without_null_evidence(r) for r in datasets.load_from_disk(str(folder)).to_list()] == from_store


def without_null_evidence(rec: dict) -> dict:
    """``rec`` with ``evidence: None`` removed from its stance heads."""
    for head in rec["stance"].values():
        if "evidence" in head and head["evidence"] is None:
            del head["evidence"]
    return rec


def test_predict_db_stores_predictions_under_reclassify_keys_and_revision_rules(
        tmp_path: Path, smoke_model: Path, plain: list[dict]) -> None:
    lines = JSONL.read_text(encoding="utf-8").splitlines()
    source = tmp_path / "comments.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    db = tmp_path / "store.sqlite"
    args = ("predict", source, "--db", db, "--model", smoke_model, "--format", "jsonl", "--device", "cpu")
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    n = len(jsonl(first.stdout))
    version = jsonl(first.stdout)[0]["model_version"]
    with Store(db) as store:
        assert tuple(store.conn.execute("SELECT COUNT(*), COUNT(DISTINCT item_id) FROM predictions "
                                        "WHERE model_version = ? AND revision = 1", (version,)).fetchone()) == (n, n)
        assert store.count_pending(version) == 0  # so a reclassify run on this store has nothing left to do
        run = store.runs(limit=1)[0]
        assert (run["job"], run["status"], run["counts"]["classified"]) == ("predict", "ok", n)
        assert store.latest_model_version() == version  # what `trends` and `export predictions` default to

    again = invoke(*args)  # nothing new: no prediction is made or stored twice
    assert again.exit_code == 0 and jsonl(again.stdout) == jsonl(first.stdout)
    with Store(db) as store:
        assert store.runs(limit=1)[0]["counts"]["classified"] == 0
        assert store.conn.execute("SELECT COUNT(*) FROM predictions").fetchone()[0] == n

    edited = json.loads(lines[0])
    edited["text"] = "Edited: freezing the rates is a good idea after all."
    source.write_text("\n".join([json.dumps(edited), *lines[1:]]) + "\n", encoding="utf-8")
    third = invoke(*args)
    assert third.exit_code == 0, third.output
    records = jsonl(third.stdout)
    assert records[0]["text"] == edited["text"] and len(records) == n
    with Store(db) as store:
        run = store.runs(limit=1)[0]["counts"]
        assert (run["classified"], run["reclassified_after_edit"]) == (1, 1)
        assert [h["revision"] for h in store.prediction_history(records[0]["item_id"])] == [1, 2]


def test_predict_db_refuses_stdin_with_one_line(tmp_path: Path, smoke_model: Path) -> None:
    result = CliRunner().invoke(app, ["predict", "-", "--db", str(tmp_path / "s.sqlite"), "--model", str(smoke_model)],
                                input="text\n")
    assert result.exit_code != 0 and "stdin" in str(result.exception)
    assert not (tmp_path / "s.sqlite").exists()


def test_records_stored_before_the_schema_are_read_in_it(tmp_path: Path) -> None:
    legacy = {"id": "t/c1", "thread_id": "t", "kind": "comment", "parent_id": None, "author": "A",
              "posted_at": None, "sentiment": "negative",
              "sentiment_probs": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
              "stance": {"funding": "against"}, "stance_probs": {"funding": {"favor": 0.1, "against": 0.6, "none": 0.3}},
              "targets": ["funding"], "model_version": "m1"}
    with Store(tmp_path / "s.sqlite") as store:
        store.conn.execute("INSERT INTO threads VALUES ('t', 'T', NULL, NULL, NULL, 's', NULL, 'x', 'x')")
        store.conn.execute("INSERT INTO items(item_id, thread_id, kind, position, depth, author, text, text_sha256, "
                           "revision, first_seen_at, updated_at) VALUES ('t/c1', 't', 'comment', 0, 0, 'A', 'Cuts.', "
                           "'h1', 1, 'x', 'x')")
        with store.transaction():
            store.add_predictions([("t/c1", "m1", 1, "h1", "negative", json.dumps(legacy), None)])
        records = stored_records(store, "m1")
        history = store.prediction_history("t/c1")
    assert records == [{"item_id": "t/c1", "thread_id": "t", "kind": "comment", "parent_id": None, "author": "A",
                        "posted_at": None, "model_version": "m1",
                        "sentiment": {"label": "negative", "prob": 0.7, "probs": legacy["sentiment_probs"]},
                        "stance": {"funding": {"label": "against", "prob": 0.6,
                                               "probs": legacy["stance_probs"]["funding"]}},
                        "text": "Cuts."}]
    assert history[0]["record"]["sentiment"]["label"] == "negative" and "id" not in history[0]["record"]


def test_api_classify_keeps_a_dataframe_index_and_rejects_empty_texts(smoke_model: Path) -> None:
    from pipeline.errors import UserError

    model = api.load_model(smoke_model, device="cpu")
    frame = pd.DataFrame({"comment": ["Cuts again.", "Ofsted were fair."], "author": ["A", None],
                          "posted_at": pd.to_datetime(["2020-01-02", "2021-03-04"])}, index=[10, 20])
    out = api.classify(model, frame, text_column="comment")
    assert list(out.index) == [10, 20] and out["item_id"].tolist() == ["10", "20"]
    assert out["author"].isna().tolist() == [False, True] and out["posted_at"].iloc[0].startswith("2020-01-02")
    assert out["text"].tolist() == frame["comment"].tolist()
    assert api.classify(model, frame, text_column="comment", as_frame=False)[1]["author"] is None
    with pytest.raises(UserError, match="no column 'text'"):
        api.classify(model, frame)
    with pytest.raises(UserError, match="empty"):
        api.classify(model, ["fine", "  "])


def test_the_worked_example_in_docs_api_md_runs(tmp_path: Path, smoke_model: Path, shared_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    blocks = re.findall(r"```python\n(.*?)```", (REPO / "docs" / "api.md").read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 1
    checkout = tmp_path / "checkout"  # the layout the example assumes: models/default, ../shared
    (checkout / "models").mkdir(parents=True)
    os.symlink(smoke_model, checkout / "models" / "default")
    os.symlink(shared_dir, tmp_path / "shared")
    monkeypatch.chdir(checkout)
    namespace: dict = {}
    exec(compile(blocks[0], "docs/api.md", "exec"), namespace)  # noqa: S102 - the documented example itself
    printed = capsys.readouterr().out
    n_items = sum(namespace["files"]["items"])
    assert n_items > 0 and list(namespace["files"]["classified"]) == list(namespace["files"]["items"])
    assert len(namespace["stored"]) == n_items and f"{n_items} items;" in printed
    assert list(namespace["scored"].index) == ["a", "b"]
    assert namespace["first"]["item_id"] == "text/1"


def test_flattened_tables_have_the_same_columns_whatever_the_labels() -> None:
    """CSV / Parquet from different runs stack: every target has its evidence columns, in schema order,
    with integer offsets, whether or not any item took a stance toward it."""
    import copy

    from pipeline.store.records import records_frame

    def head(label: str) -> dict:
        probs = {"favor": 0.8, "against": 0.1, "none": 0.1} if label == "favor" else {"favor": 0.05, "against": 0.05, "none": 0.9}
        return {"label": label, "prob": max(probs.values()), "probs": probs}

    rec = {"item_id": "a", "thread_id": "t", "kind": "comment", "parent_id": None, "author": None, "posted_at": None,
           "model_version": "v", "sentiment": {"label": "negative", "prob": 0.9,
                                               "probs": {"negative": 0.9, "neutral": 0.05, "positive": 0.05}},
           "stance": {"blame_management": head("none"), "funding": head("favor")}, "text": "More money now."}
    rec["stance"]["funding"]["evidence"] = {"text": "More money now.", "start": 0, "end": 15, "score": 0.3}
    none_only = copy.deepcopy(rec)
    none_only["stance"]["funding"] = head("none")
    with_stance, without = records_frame([rec]), records_frame([none_only])
    assert list(with_stance.columns) == list(without.columns)
    cols = list(without.columns)
    assert cols.index("stance.blame_management.evidence.score") < cols.index("stance.funding.label") and cols[-1] == "text"
    assert str(with_stance["stance.funding.evidence.start"].dtype) == "Int64"
    assert with_stance.loc[0, "stance.funding.evidence.end"] == 15
    assert without["stance.funding.evidence.text"].isna().all()


def test_export_refuses_an_unknown_kind_and_a_missing_model_folder_and_items_show_a_missing_store(
        reclassified: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    from conftest import cli

    db = reclassified / "store.sqlite"
    code, _, err = cli(["export", "predictions", "--db", db, "--kind", "tweet"], monkeypatch, capsys)
    assert code == 2 and "--kind 'tweet'" in err
    code, _, err = cli(["export", "predictions", "--db", db, "--model", tmp_path / "nomodel"], monkeypatch, capsys)
    assert code == 2 and "no trained model folder" in err
    code, _, err = cli(["export", "predictions", "--db", db, "--thread", "no-such-thread"], monkeypatch, capsys)
    assert code == 0 and "matching --thread" in err
    missing = tmp_path / "typo.sqlite"
    code, _, err = cli(["items", "show", "--db", missing], monkeypatch, capsys)
    assert code == 2 and "no store here" in err and not missing.exists()
