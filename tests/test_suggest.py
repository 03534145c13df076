"""`threadstance suggest`: unlabelled store items ranked by how unsure the model is, by three strategies."""
from __future__ import annotations

import io
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import cli  # the console entry point as a test helper

from pipeline.data.labels import LabelRecord, write_labels
from pipeline.inference.suggest import rank_items, ranked_ids, select, uncertainty_scores, unlabelled_items
from pipeline.store.db import Store
from pipeline.store.load import ingest_file

FIXTURES = Path(__file__).parent / "fixtures"
REASON = re.compile(r"^(sentiment|stance:[a-z_]+) margin \d\.\d\d$")


def _label(item_id: str) -> LabelRecord:
    return LabelRecord(item_id=item_id, sentiment="neutral",
                       stance={t: "none" for t in ("blame_management", "funding", "nqsw_access", "ofsted")},
                       annotator="t", labelled_at="2026-01-01T00:00:00Z")


@pytest.fixture(scope="module")
def store_setup(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> dict:
    """A store with one seed thread and the HTML/JSONL fixtures; 5 items in a label file, 3 in a gold file."""
    root = tmp_path_factory.mktemp("suggest")
    db = root / "store.sqlite"
    with Store(db) as store:
        for path in [sorted(seeds_dir.glob("*.txt"))[0], FIXTURES / "html" / "cc_caseload_cap.html",
                     FIXTURES / "jsonl" / "comments.jsonl"]:
            assert ingest_file(store, path).ok
        ids = sorted(store.item_ids())
    labels, gold = root / "labels.jsonl", root / "gold.jsonl"
    write_labels(labels, [_label(i) for i in ids[:5]])
    write_labels(gold, [_label(i) for i in ids[5:8]])
    return {"db": db, "ids": ids, "labels": labels, "gold": gold, "labelled": set(ids[:8])}


@pytest.fixture(scope="module")
def predictor(smoke_model: Path):  # noqa: ANN201
    from pipeline.inference.predict import Predictor

    return Predictor(smoke_model, device="cpu")


def _suggest(setup: dict, model: Path, monkeypatch, capsys, *args: str) -> tuple[int, str, str]:  # noqa: ANN001
    return cli(["suggest", "--db", setup["db"], "--model", model, "--labels", setup["labels"],
                "--gold", setup["gold"], *args], monkeypatch, capsys)


# ---- scoring and selection on arrays ---------------------------------------------------------------------

def test_score_is_one_minus_the_smallest_head_margin_and_names_that_head() -> None:
    sentiment = np.array([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]])
    stance = np.array([[[0.90, 0.05, 0.05], [0.50, 0.46, 0.04]],
                       [[0.98, 0.01, 0.01], [0.97, 0.02, 0.01]]])
    scores, worst, margins = uncertainty_scores(sentiment, stance)
    assert np.allclose(scores, [0.96, 0.95])
    assert worst.tolist() == [2, 0]  # item 0: the second stance head (margin 0.04); item 1: sentiment (0.05)
    assert np.allclose(margins[0], [0.85, 0.85, 0.04])


def test_diverse_spreads_picks_over_clusters_where_uncertainty_takes_near_duplicates() -> None:
    # items 0-3 are the most uncertain and nearly identical; items 4-7 lie elsewhere in embedding space
    scores = np.array([0.99, 0.98, 0.97, 0.96, 0.90, 0.89, 0.50, 0.40])
    emb = np.array([[1, 0, 0], [1, 0.01, 0], [1, 0, 0.01], [1, 0.01, 0.01],
                    [0, 1, 0], [0, 1, 0.02], [0, 0, 1], [0.02, 0, 1]], dtype=float)
    keys = [f"i{k}" for k in range(8)]
    assert select("uncertainty", scores, 2, keys) == [0, 1]
    diverse = select("diverse", scores, 2, keys, seed=0, embed=lambda ix: emb[ix], pool_factor=3)
    assert diverse == [0, 4]  # the most uncertain of each cluster, most uncertain first


def test_random_is_deterministic_per_seed_and_ordered_by_score() -> None:
    scores = np.linspace(0, 1, 50)
    keys = [f"i{k:02d}" for k in range(50)]
    a, b, c = (select("random", scores, 10, keys, seed=s) for s in (3, 3, 4))
    assert a == b and a != c
    assert [scores[i] for i in a] == sorted((scores[i] for i in a), reverse=True)


# ---- the ranking function the annotator calls ----------------------------------------------------------------

def test_rank_items_returns_n_unlabelled_items_most_informative_first(store_setup: dict, predictor) -> None:  # noqa: ANN001
    with Store(store_setup["db"]) as store:
        items = unlabelled_items(store, store_setup["labelled"])
    assert len(items) == len(store_setup["ids"]) - 8
    ranked = ranked_ids(predictor, items, n=6)
    assert len(ranked) == 6
    assert {i for i, _ in ranked} <= set(store_setup["ids"]) - store_setup["labelled"]
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    everything = rank_items(predictor, items)  # n=None ranks every item
    assert [s.item_id for s in everything][:6] == [i for i, _ in ranked]
    assert sorted(s.item_id for s in everything) == sorted(c.item_id for c in items)


# ---- the command ------------------------------------------------------------------------------------------

def test_suggest_jsonl_gives_n_existing_unlabelled_items_with_scores_reasons_and_labels(
        store_setup: dict, smoke_model: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    code, out, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "7", "--format", "jsonl")
    assert code == 0, err
    recs = [json.loads(line) for line in out.splitlines()]
    assert [r["rank"] for r in recs] == list(range(1, 8))
    ids = [r["item_id"] for r in recs]
    assert len(set(ids)) == 7 and set(ids) <= set(store_setup["ids"])
    assert not set(ids) & store_setup["labelled"]  # neither the label file's nor the gold file's items
    scores = [r["score"] for r in recs]
    assert scores == sorted(scores, reverse=True)
    for r in recs:
        assert REASON.match(r["reason"]), r["reason"]
        assert r["strategy"] == "uncertainty" and r["text"]
        assert r["sentiment"]["label"] in r["sentiment"]["probs"]
        assert abs(sum(r["sentiment"]["probs"].values()) - 1) < 1e-3
        head = r["head"].removeprefix("stance:")
        probs = sorted((r["sentiment"] if head == "sentiment" else r["stance"][head])["probs"].values())
        assert abs((probs[-1] - probs[-2]) - r["margin"]) < 1e-3 and abs(r["score"] - (1 - r["margin"])) < 1e-3


def test_every_unlabelled_item_and_no_labelled_one_when_n_covers_the_store(
        store_setup: dict, smoke_model: Path, monkeypatch, capsys) -> None:  # noqa: ANN001
    code, out, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "1000", "--format", "jsonl")
    assert code == 0, err
    ids = [json.loads(line)["item_id"] for line in out.splitlines()]
    assert sorted(ids) == sorted(set(store_setup["ids"]) - store_setup["labelled"])


def test_strategies_differ_and_random_follows_its_seed(store_setup: dict, smoke_model: Path, monkeypatch,
                                                       capsys) -> None:  # noqa: ANN001
    def ids(*args: str) -> list[str]:
        code, out, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "5", "--format", "jsonl", *args)
        assert code == 0, err
        return [json.loads(line)["item_id"] for line in out.splitlines()]

    uncertain = ids("--strategy", "uncertainty")
    diverse = ids("--strategy", "diverse")
    random_a, random_b, random_c = ids("--strategy", "random", "--seed", "1"), \
        ids("--strategy", "random", "--seed", "1"), ids("--strategy", "random", "--seed", "2")
    assert random_a == random_b and random_a != random_c
    assert uncertain != random_a
    assert set(diverse) != set(uncertain) and len(diverse) == 5


def test_table_and_csv_formats(store_setup: dict, smoke_model: Path, monkeypatch, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    code, out, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "3")
    assert code == 0, err
    assert "least sure" in out and "margin" in out and "model says" in out
    code, out, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "3", "--format", "csv")
    assert code == 0, err
    frame = pd.read_csv(io.StringIO(out))
    assert len(frame) == 3
    assert {"rank", "item_id", "score", "reason", "sentiment.label", "stance.funding.probs.favor"} <= set(frame.columns)
    assert frame["score"].is_monotonic_decreasing
    path = tmp_path / "s.jsonl"
    code, _, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "-n", "2", "--format", "jsonl", "-o", path)
    assert code == 0 and len(path.read_text(encoding="utf-8").splitlines()) == 2


def test_bad_strategy_and_missing_label_file_are_one_line_errors(store_setup: dict, smoke_model: Path, monkeypatch,
                                                                 capsys, tmp_path: Path) -> None:  # noqa: ANN001
    code, _, err = _suggest(store_setup, smoke_model, monkeypatch, capsys, "--strategy", "entropy")
    assert code == 2 and "uncertainty, diverse, random" in err and len(err.strip().splitlines()) == 1
    code, _, err = cli(["suggest", "--db", store_setup["db"], "--model", smoke_model, "--labels",
                        tmp_path / "nope.jsonl"], monkeypatch, capsys)
    assert code == 2 and "nope.jsonl" in err and "not found" in err


def test_a_store_with_every_item_labelled_says_so_and_prints_no_empty_table(store_setup: dict, smoke_model: Path,
                                                                           monkeypatch, capsys,
                                                                           tmp_path: Path) -> None:  # noqa: ANN001
    everything = tmp_path / "all.jsonl"
    write_labels(everything, [_label(i) for i in store_setup["ids"]])
    code, out, err = cli(["suggest", "--db", store_setup["db"], "--model", smoke_model, "--labels", everything],
                         monkeypatch, capsys)
    assert code == 0 and "no unlabelled items" in err and out.strip() == ""
    code, out, _ = cli(["suggest", "--db", store_setup["db"], "--model", smoke_model, "--labels", everything,
                        "--format", "csv"], monkeypatch, capsys)
    assert code == 0 and len(out.strip().splitlines()) <= 1  # no rows (at most a header) for scripts


def test_without_a_gold_file_suggest_warns_that_gold_items_are_not_left_out(store_setup: dict, smoke_model: Path,
                                                                            monkeypatch, capsys, tmp_path: Path) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)  # outside the repository: the default data/gold/gold.jsonl is not here
    code, _, err = cli(["suggest", "--db", store_setup["db"], "--model", smoke_model, "-n", "1"], monkeypatch, capsys)
    assert code == 0, err
    assert "no gold file" in err and "gold items are not left out" in err


def test_the_suggest_table_keeps_every_column_beside_a_long_text() -> None:
    from rich.console import Console

    from pipeline.cli.suggest_cmd import render_table

    record = {"rank": 1, "item_id": "thread-x/c17", "score": 0.873, "reason": "stance:funding margin 0.05",
              "sentiment": {"label": "negative", "prob": 0.61}, "text": "word " * 400,
              "stance": {"funding": {"label": "against", "prob": 0.52}}}
    for width in (100, 160):
        buf = io.StringIO()
        render_table([record], Console(file=buf, width=width, no_color=True), "v1", "uncertainty")
        out = buf.getvalue()
        assert "thread-x/c17" in out and "0.873" in out and "stance:funding" in out and "against 0.52" in out
