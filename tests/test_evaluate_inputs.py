"""`threadstance evaluate` / `run`: score thresholds, bad inputs, cross-validation on a subset, the main job, and the baselines."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from evaluate_support import GOLD, REPO, SYSTEMS, _gold_ids, invoke

from pipeline.config.run import load_config
from pipeline.errors import ConfigError, UserError


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # configs/, data/ and the corpus globs are relative to the project root


# ---- thresholds and errors ------------------------------------------------------------------------------------

def _config_with(eval_model: Path, tmp_path: Path, **evaluation: object) -> Path:
    data = yaml.safe_load((eval_model / "config.yaml").read_text())
    data["evaluation"].update(evaluation)
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_min_scores_failure_exits_3_after_writing_the_report(eval_model: Path, seeded_db: Path,
                                                             tmp_path: Path) -> None:
    cfg = _config_with(eval_model, tmp_path, min_scores={"sentiment_accuracy": 0.0, "stance_score": 0.99})
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(_gold_ids(30)) + "\n")
    out = tmp_path / "report"
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--out", out,
                    "--config", cfg, "--items", ids)
    assert result.exit_code == 3, result.output
    assert "stance_score" in result.output and "sentiment_accuracy" not in result.output.split("min_scores")[-1]
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_items"] == 30
    assert [f.split(" ")[0] for f in m["min_scores"]["failed"]] == ["stance_score"]
    assert "FAILED" in (out / "report.md").read_text()


def test_unknown_min_scores_key_is_a_config_error(eval_model: Path, seeded_db: Path, tmp_path: Path) -> None:
    cfg = _config_with(eval_model, tmp_path, min_scores={"f1_avg.nonexistent": 0.5})
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--config", cfg)
    assert isinstance(result.exception, ConfigError)
    assert "f1_avg.nonexistent" in str(result.exception)


def test_items_without_gold_labels_are_an_error_naming_them(eval_model: Path, seeded_db: Path,
                                                            tmp_path: Path) -> None:
    ids = tmp_path / "ids.txt"
    ids.write_text(f"{_gold_ids(1)[0]}\nthread-x/c99\nthread-y/p3\n")
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--items", ids,
                    "--out", tmp_path / "r")
    assert isinstance(result.exception, UserError)
    msg = str(result.exception)
    assert "thread-x/c99" in msg and "thread-y/p3" in msg and _gold_ids(1)[0] not in msg
    assert not (tmp_path / "r").exists()


def test_gold_items_missing_from_the_store_are_an_error_naming_them(eval_model: Path, seeds_dir: Path,
                                                                     tmp_path: Path, monkeypatch) -> None:
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_paths

    monkeypatch.setattr("pipeline.config.settings.shared_dir", lambda *_: tmp_path / "no-shared")  # no seeds to ingest

    db = tmp_path / "partial.sqlite"
    with Store(db) as store:  # only the first seed thread is in this store
        ingest_paths(store, sorted(seeds_dir.glob("0*.txt"))[:1])
        present = store.item_ids()
    missing = [i for i in _gold_ids() if i not in present]
    assert missing and len(missing) < len(_gold_ids())
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", db, "--out", tmp_path / "r")
    assert isinstance(result.exception, UserError)
    msg = str(result.exception)
    assert missing[0] in msg and "threadstance ingest ../shared/seeds" in msg
    assert f"{len(missing)} gold item(s) are not in the store" in msg
    assert not any(i in msg for i in present)


def test_missing_store_without_seeds_suggests_ingesting_the_seeds(eval_model: Path, tmp_path: Path,
                                                                    monkeypatch) -> None:
    monkeypatch.setattr("pipeline.config.settings.shared_dir", lambda *_: tmp_path / "no-shared")  # with seeds: see
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", tmp_path / "none.sqlite",  # defect 11
                    "--out", tmp_path / "r")
    assert isinstance(result.exception, UserError) and "threadstance ingest" in str(result.exception)


# ---- cross-validation and the main job -----------------------------------------------------------------------

def test_cv_on_a_small_gold_subset_reports_mean_and_sd_per_headline_score(eval_model: Path, seeded_db: Path,
                                                                           tmp_path: Path) -> None:
    by_class: dict[str, list[str]] = {}
    for line in GOLD.read_text(encoding="utf-8").splitlines():
        rec = json.loads(line)
        by_class.setdefault(rec["sentiment"], []).append(rec["item_id"])
    subset = [i for ids in by_class.values() for i in ids[:10]]
    ids = tmp_path / "ids.txt"
    ids.write_text("\n".join(subset))
    out = tmp_path / "cv"
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--items", ids,
                    "--cv", "2", "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    cv = json.loads((out / "metrics.json").read_text())["cv"]
    assert cv["k"] == 2 and [f["n_test"] for f in cv["folds"]] and sum(f["n_test"] for f in cv["folds"]) == len(subset)
    for key in ("sentiment_macro_f1", "stance_score", "sentiment_accuracy"):
        values = [f["headline"][key] for f in cv["folds"]]
        assert cv["mean"][key] == pytest.approx(sum(values) / 2)
        assert cv["sd"][key] >= 0
    assert "Cross-validation" in (out / "report.md").read_text()


def test_run_ingests_trains_evaluates_and_prints_a_summary(smoke_model: Path, shared_dir: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The main job end to end; training itself is the session's smoke model (tested in test_training)."""
    from pipeline.training import train as trainer

    def fake_train(cfg, resume=False, progress=True):  # noqa: ARG001
        shutil.copytree(smoke_model, cfg.output_dir)
        m = json.loads((smoke_model / "metrics.json").read_text())
        from pipeline.training.run import RunResult

        return RunResult(cfg.output_dir, m["model_version"], m["dev"], m["train_seconds"], m["counts"])

    monkeypatch.setattr(trainer, "train", fake_train)
    db, models, reports = tmp_path / "ts.sqlite", tmp_path / "models", tmp_path / "reports"
    gold = tmp_path / "gold.jsonl"  # a third of the gold set keeps this test quick
    gold.write_text("".join(line + "\n" for line in GOLD.read_text(encoding="utf-8").splitlines()[::3]))
    result = invoke("run", "configs/smoke.yaml", "--set", f"paths.store={db}", "--set", f"paths.models={models}",
                    "--set", f"paths.shared={shared_dir}", "--set", f"evaluation.gold={gold}",
                    "--reports", reports, "--no-progress")
    assert result.exit_code == 0, (result.output, result.exception)
    out = result.output
    assert "ingest: 5 files" in out and "dev metrics" in out and "corpus_dev" in out
    for name in SYSTEMS:
        assert name in out
    assert (reports / "smoke" / "report.html").exists() and (models / "smoke" / "gold_metrics.json").exists()


def test_run_checks_the_gold_file_before_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.training import train as trainer

    monkeypatch.setattr(trainer, "train", lambda *a, **k: pytest.fail("trained despite a missing gold file"))
    result = invoke("run", "configs/smoke.yaml", "--set", f"evaluation.gold={tmp_path / 'nope.jsonl'}",
                    "--set", f"paths.store={tmp_path / 'ts.sqlite'}")
    assert isinstance(result.exception, UserError) and "nope.jsonl" in str(result.exception)


# ---- baselines -------------------------------------------------------------------------------------------------

def test_lexicon_baseline_matches_cues_as_whole_words_with_wildcards_and_hyphens(schema) -> None:
    from pipeline.evaluation.baselines import LexiconBaseline

    lex = LexiconBaseline(schema)
    pred = lex.predict([
        "Years of austerity left the service chronically underfunded.",
        "Throwing money at it is not the answer; it's all tick-box paperwork for Ofsted.",
        "The inspection was on Tuesday.",
        "Cutsforth said nothing.",  # no whole-word cue
    ])
    assert pred["funding"] == ["favor", "against", "none", "none"]
    assert pred["ofsted"] == ["none", "against", "none", "none"]
    assert pred["sentiment"][2] == "neutral"


def test_majority_tfidf_and_vader_baselines_fit_and_predict_like_sklearn(schema) -> None:
    from pipeline.evaluation.baselines import MajorityBaseline, TfidfLogRegBaseline, VaderBaseline

    texts = ["cuts cuts underfunded", "more money needed now", "great news, thank you", "managers bully staff",
             "terrible awful day", "ofsted report published"]
    labels = {"sentiment": ["negative", "negative", "positive", "negative", "negative", "neutral"]}
    for t in schema.target_names:
        labels[t] = ["favor", "favor", "none", "none", "none", "none"]
    maj = MajorityBaseline(schema).fit(texts, labels)
    assert maj.predict(["anything"])["sentiment"] == ["negative"]
    assert maj.predict_proba(["x"])["sentiment"][0].tolist() == pytest.approx([4 / 6, 1 / 6, 1 / 6])
    lr = TfidfLogRegBaseline(schema, seed=1).fit(texts, labels)
    proba = lr.predict_proba(["cuts and underfunded services"])
    assert proba["funding"].shape == (1, 3) and proba["funding"].sum() == pytest.approx(1.0)
    assert lr.predict(["cuts and underfunded services"])["funding"] == ["favor"]
    vader = VaderBaseline(schema)
    assert vader.fields == ["sentiment"]
    assert vader.predict(["This is wonderful, thank you!", "This is awful."])["sentiment"] == ["positive", "negative"]


def test_baselines_train_on_the_models_exact_training_split(schema) -> None:
    from pipeline.data.corpus import load_corpus, split_corpus
    from pipeline.evaluation.baselines import training_records

    cfg = load_config(REPO / "configs" / "smoke.yaml")
    recs, total = training_records(cfg, schema)
    corpus = load_corpus(cfg.data.corpus, schema)
    expected = split_corpus(corpus, schema, cfg.data.dev_fraction, cfg.seed)[0][: cfg.data.max_train_examples]
    assert total == len(corpus) and [r["id"] for r in recs] == [r["id"] for r in expected]


def test_baselines_train_on_the_same_real_items_as_a_kfold_model(schema, shared_dir: Path) -> None:
    from pipeline.data.splits import make_splits
    from pipeline.evaluation.baselines import training_records

    cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.shared={shared_dir}", "data.domain_real.use=kfold",
                                                        "data.domain_real.folds=5", "data.domain_real.repeat=2"])
    recs, _ = training_records(cfg, schema)
    sp = make_splits(cfg, schema)
    assert [r["id"] for r in recs] == [r["id"] for r in sp.train]
    assert sum(r["id"] in {x["id"] for x in sp.real_train} for r in recs) == 2 * len(sp.real_train) > 0
