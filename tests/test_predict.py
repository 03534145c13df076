"""`threadstance predict`: thread files in any ingest format or stdin lines → labels with probabilities."""
from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.cli.predict_cmd import render_tables
from pipeline.errors import UserError
from pipeline.inference.classify import classify_items, items_from_lines, items_from_threads
from pipeline.inference.predict import Prediction, Predictor, batch_bounds
from pipeline.ingest.parse import parse_file
from pipeline.modeling.encoding import InputSpec
from pipeline.store.records import prediction_record

FIXTURES = Path(__file__).parent / "fixtures"
TARGETS = ["blame_management", "funding", "nqsw_access", "ofsted"]


def _invoke(args: list[str], stdin: str | None = None):  # noqa: ANN202
    return CliRunner().invoke(app, ["predict", *args], input=stdin, catch_exceptions=False)


def _check_head(head: dict) -> None:
    assert set(head) - {"evidence"} == {"label", "prob", "probs"}  # evidence: stance heads not none
    assert abs(sum(head["probs"].values()) - 1) < 1e-3
    # probabilities are printed rounded to 4 places, so a near-tie can round to equal values
    assert head["prob"] == head["probs"][head["label"]] == max(head["probs"].values())


def _check_record(rec: dict, version: str) -> None:
    assert list(rec) == ["item_id", "thread_id", "kind", "parent_id", "author", "posted_at", "model_version",
                         "sentiment", "stance", "text"]
    assert rec["model_version"] == version
    _check_head(rec["sentiment"])
    assert list(rec["sentiment"]["probs"]) == ["negative", "neutral", "positive"]
    assert list(rec["stance"]) == TARGETS
    for t in TARGETS:
        _check_head(rec["stance"][t])
        ev = rec["stance"][t].get("evidence")
        assert (ev is not None) == (rec["stance"][t]["label"] != "none")
        if ev is not None:
            assert rec["text"][ev["start"]:ev["end"]] == ev["text"]


@pytest.fixture(scope="module")
def version(smoke_model: Path) -> str:
    return json.loads((smoke_model / "threadstance.json").read_text())["model_version"]


def test_predict_jsonl_on_seed_files_gives_one_record_per_item(smoke_model: Path, seeds_dir: Path,
                                                                version: str) -> None:
    seeds = sorted(seeds_dir.glob("*.txt"))
    expected = [i.item_id for p in seeds for t in parse_file(p)[1] for i in t.items]
    result = _invoke([*map(str, seeds), "--model", str(smoke_model), "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["item_id"] for r in records] == expected
    for rec in records:
        _check_record(rec, version)
    comments = [r for r in records if r["kind"] == "comment"]
    assert comments and all(r["author"] for r in comments)


def test_predict_reads_one_item_per_non_empty_stdin_line(smoke_model: Path, version: str) -> None:
    result = _invoke(["-", "--model", str(smoke_model), "--format", "jsonl"],
                     stdin="Managers blame us for everything.\n\n   \nOfsted were fair to us.\n")
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["item_id"] for r in records] == ["stdin/1", "stdin/2"]
    assert records[1]["text"] == "Ofsted were fair to us."
    for rec in records:
        _check_record(rec, version)


def test_predict_csv_has_label_and_probability_columns_for_every_head(smoke_model: Path, tmp_path: Path,
                                                                      version: str) -> None:
    out = tmp_path / "preds.csv"
    result = _invoke([str(FIXTURES / "jsonl" / "comments.jsonl"), "--model", str(smoke_model), "--format", "csv",
                      "--out", str(out), "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert len(frame) == sum(len(t.items) for t in parse_file(FIXTURES / "jsonl" / "comments.jsonl")[1])
    assert (frame["model_version"] == version).all()
    for col in ("item_id", "author", "sentiment.label", "sentiment.prob", "sentiment.probs.negative",
                "sentiment.probs.neutral", "sentiment.probs.positive", "text",
                *(f"stance.{t}.label" for t in TARGETS), *(f"stance.{t}.probs.against" for t in TARGETS)):
        assert col in frame.columns, col
    probs = frame[["sentiment.probs.negative", "sentiment.probs.neutral", "sentiment.probs.positive"]]
    assert ((probs.sum(axis=1) - 1).abs() < 1e-3).all()
    assert (frame["sentiment.prob"] == probs.max(axis=1)).all()


def test_predict_table_shows_label_with_probability_and_truncated_text(smoke_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "table.txt"
    long_line = "The caseloads are rising every single month and nobody in the senior team listens " * 4
    result = _invoke(["-", "--model", str(smoke_model), "--out", str(out)], stdin=long_line + "\n")
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert "stdin" in text and "…" in text and long_line.strip() not in text
    assert any(f"{label} 0." in text for label in ("negative", "neutral", "positive"))
    assert all(t in text for t in TARGETS)  # a wide (file) console gets a column per target


def test_table_on_a_narrow_terminal_lists_non_none_targets_in_one_column() -> None:
    pred = Prediction("negative", {"negative": 0.8, "neutral": 0.1, "positive": 0.1},
                      {t: "none" for t in TARGETS} | {"funding": "against"},
                      {t: {"favor": 0.1, "against": 0.2, "none": 0.7} for t in TARGETS}
                      | {"funding": {"favor": 0.1, "against": 0.75, "none": 0.15}}, ["funding"])
    rec = prediction_record(items_from_lines(["Cuts, cuts, cuts."])[0], pred, "v1")
    buf = io.StringIO()
    render_tables([rec], Console(file=buf, width=80, no_color=True))
    text = buf.getvalue()
    assert "funding: against 0.75" in text and "negative 0.80" in text
    assert "ofsted" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_bad_input_file_is_named_and_the_other_files_are_still_classified(smoke_model: Path, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"thread_title": "T", "text": "fine"}\n{not json\n', encoding="utf-8")
    good = FIXTURES / "html" / "cc_caseload_cap.html"
    result = _invoke([str(bad), str(good), "--model", str(smoke_model), "--format", "jsonl"])
    assert result.exit_code == 1
    assert "broken.jsonl" in result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == sum(len(t.items) for t in parse_file(good)[1]) > 0


def test_missing_model_directory_is_a_clear_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["predict", "-", "--model", str(tmp_path / "nope")], input="text\n")
    assert result.exit_code != 0
    assert "not a threadstance model directory" in str(result.exception)


def test_replies_pass_their_parent_text_when_the_input_spec_includes_the_parent() -> None:
    items = items_from_threads(parse_file(FIXTURES / "html" / "cc_caseload_cap.html")[1])
    by_id = {i["item_id"]: i for i in items}
    replies = [i for i in items if i["kind"] == "reply"]
    assert replies
    for reply in replies:
        assert reply["parent_text"] == by_id[reply["parent_id"]]["text"]

    class Spy:
        def __init__(self, include_parent: bool) -> None:
            self.spec = InputSpec(include_parent=include_parent)

        def predict(self, texts, parents):  # noqa: ANN001, ANN202
            self.parents = parents
            return []

    with_parent, without = Spy(True), Spy(False)
    classify_items(with_parent, items)
    classify_items(without, items)
    assert with_parent.parents == [i["parent_text"] for i in items]
    assert without.parents is None


def test_batches_respect_the_text_and_padded_token_limits() -> None:
    lengths = np.sort(np.random.default_rng(0).integers(3, 257, 500))
    for batch_size, max_tokens in ((64, None), (256, 4096), (4, 10)):
        bounds = batch_bounds(lengths, batch_size, max_tokens)
        assert bounds[0][0] == 0 and bounds[-1][1] == len(lengths)
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        assert all(0 < end - start <= batch_size for start, end in bounds)
        if max_tokens:
            assert all((end - start) * lengths[end - 1] <= max_tokens or end - start == 1 for start, end in bounds)


def test_token_budget_batching_gives_the_same_probabilities(smoke_model: Path) -> None:
    texts = ["short", "Ofsted were fair", "a much longer comment about caseloads and cuts " * 6, "Give NQSWs a chance",
             "Managers blame us for everything that goes wrong on the duty desk."]
    small = Predictor(smoke_model, device="cpu", batch_size=2).predict_proba(texts)
    budget = Predictor(smoke_model, device="cpu", batch_size=256, max_batch_tokens=40).predict_proba(texts)
    assert np.abs(small.sentiment - budget.sentiment).max() < 1e-5
    assert all(np.abs(small.stance[t] - budget.stance[t]).max() < 1e-5 for t in TARGETS)


def test_identical_texts_go_through_the_model_once_and_every_copy_gets_the_same_outputs(smoke_model: Path) -> None:
    predictor = Predictor(smoke_model, device="cpu", batch_size=2)
    calls: list[int] = []
    forward = predictor._forward

    def counting(batch: dict) -> tuple:
        calls.append(int(batch["input_ids"].shape[0]))
        return forward(batch)

    predictor._forward = counting
    texts = ["Ofsted were fair", "Managers blame us for everything.", "Ofsted were fair", "Fund early help properly.",
             "Managers blame us for everything.", "Ofsted were fair"]
    probs = predictor.predict_proba(texts)
    assert sum(calls) == 3  # three distinct texts
    alone = Predictor(smoke_model, device="cpu").predict_proba(["Ofsted were fair", "Managers blame us for everything."])
    for i, j in ((0, 0), (2, 0), (5, 0), (1, 1), (4, 1)):
        assert np.abs(probs.sentiment[i] - alone.sentiment[j]).max() < 1e-5
        assert all(np.abs(probs.stance[t][i] - alone.stance[t][j]).max() < 1e-5 for t in TARGETS)
    batches = list(predictor.predict_batches(texts))
    assert sorted(i for idx, _ in batches for i in idx) == list(range(len(texts)))
    assert all(len(idx) <= 2 for idx, _ in batches)  # copies never make a batch bigger than batch_size


def test_bf16_precision_gives_probabilities_close_to_fp32(smoke_model: Path) -> None:
    texts = ["Managers blame us for everything.", "Ofsted were fair to us this time.", "Fund early help properly."]
    fp32 = Predictor(smoke_model, device="cpu").predict_proba(texts)
    bf16 = Predictor(smoke_model, device="cpu", precision="bf16").predict_proba(texts)
    assert np.abs(fp32.sentiment - bf16.sentiment).max() < 0.05
    with pytest.raises(UserError, match="precision"):
        Predictor(smoke_model, device="cpu", precision="fp8")


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(smoke_model: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from pipeline.inference import predict as predict_mod

    cpu = torch.device("cpu")
    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(predict_mod, "cpu_has_native_bf16", lambda native=native: native)
        assert predict_mod.resolve_precision("auto", cpu) == expected
        assert Predictor(smoke_model, device="cpu", precision="auto").precision == expected
    assert predict_mod.resolve_precision("fp32", cpu) == "fp32"
    assert predict_mod.resolve_precision("bf16", cpu) == "bf16"
