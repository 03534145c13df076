"""`threadstance evaluate` on the smoke model: the report files, bootstrap intervals, seed models and out-of-fold scores."""
from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from evaluate_support import GOLD, REPO, SYSTEMS, _gold_ids, invoke
from PIL import Image

from pipeline.config.run import load_config
from pipeline.errors import UserError


@pytest.fixture(autouse=True)
def _in_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # configs/, data/ and the corpus globs are relative to the project root


@pytest.fixture(scope="session")
def report(eval_model: Path, seeded_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The model's own evaluation, as the main job runs it (its config's gold file), so the model folder gets
    gold_metrics.json and the card; `evaluate --out` or another --gold leaves the folder alone."""
    from pipeline.reporting.evaluate import evaluate

    out = tmp_path_factory.mktemp("reports") / "smoke"
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        evaluate(eval_model, out_dir=out, db=seeded_db,
                 config=load_config(eval_model / "config.yaml", [f"evaluation.gold={GOLD}"]))
    finally:
        os.chdir(cwd)
    yield out


# ---- report files --------------------------------------------------------------------------------------------

def test_metrics_json_has_headline_numbers_cis_ece_kinds_and_baselines(report: Path, schema) -> None:
    m = json.loads((report / "metrics.json").read_text())
    keys = ["sentiment_accuracy", "sentiment_macro_f1", *(f"f1_avg.{t}" for t in schema.target_names), "stance_score"]
    assert m["n_items"] == len(_gold_ids())
    assert m["n_by_kind"]["comments"] + m["n_by_kind"]["paragraphs"] == m["n_items"]
    assert m["bootstrap"]["resamples"] >= 1000
    model = m["model"]
    for k in keys:
        lo, hi = model["ci"][k]
        assert 0.0 <= lo <= hi <= 1.0, k  # a thread bootstrap of a non-linear score need not bracket the point
    assert 0.0 <= model["ece"]["stance_pooled"] <= 1.0
    assert set(model["sentiment"]["per_class"]) == set(schema.sentiment_classes)
    for t in schema.target_names:
        st = model["stance"][t]
        assert {"f1_avg", "macro_f1", "per_class"} <= set(st)
        assert set(st["per_class"]["favor"]) == {"precision", "recall", "f1", "support"}
        assert 0.0 <= model["ece"]["stance"][t] <= 1.0
    assert 0.0 <= model["ece"]["sentiment"] <= 1.0
    assert model["stance_score"] == pytest.approx(sum(model["stance"][t]["f1_avg"] for t in schema.target_names)
                                                  / len(schema.target_names))
    for group in ("comments", "paragraphs"):
        assert set(keys) <= set(model["by_kind"][group]["headline"])
        assert set(keys) <= set(model["by_kind"][group]["ci"])
    assert set(m["baselines"]) == set(SYSTEMS[1:])
    assert set(m["baselines"]["vader"]["headline"]) == {"sentiment_accuracy", "sentiment_macro_f1"}
    assert set(keys) <= set(m["baselines"]["tfidf_lr"]["ci"])
    assert "stance_score" in m["comparisons"]["lexicon"]


def test_report_md_and_html_show_model_and_baselines_side_by_side(report: Path) -> None:
    md = (report / "report.md").read_text()
    html = (report / "report.html").read_text()
    table = [line for line in md.splitlines() if line.startswith("| system |")]
    assert table and "stance score" in table[0]
    for name in SYSTEMS:
        assert f"| {name} |" in md
        assert f"<td>{name}</td>" in html
    for section in ("The gold set", "paired thread bootstrap", "Training seeds", "domain_real out-of-fold",
                    "By item kind", "Calibration", "Confusion matrices", "most confident errors"):
        assert section in md and section in html
    assert html.count("<table>") == sum(line.startswith("|---") for line in md.splitlines())
    assert html.startswith("<!DOCTYPE html>")


def test_figures_are_valid_pngs_and_referenced_by_the_report(report: Path, schema) -> None:
    names = ["reliability.png", *(f"confusion_{f}.png" for f in ["sentiment", *schema.target_names])]
    md = (report / "report.md").read_text()
    for name in names:
        with Image.open(report / name) as img:
            img.verify()
            assert img.format == "PNG"
        assert f"({name})" in md


def test_errors_csv_lists_every_misclassification_with_text(report: Path) -> None:
    m = json.loads((report / "metrics.json").read_text())
    with open(report / "errors.csv", encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
    assert reader.fieldnames == ["item_id", "kind", "field", "gold", "predicted", "probability",
                                 "gold_probability", "evidence", "text"]
    for r in rows:  # the model's evidence sentence for every wrong favor/against, and only there
        stance_claim = r["field"] != "sentiment" and r["predicted"] != "none"
        assert bool(r["evidence"]) == stance_claim
        assert r["evidence"] in r["text"]
    assert any(r["evidence"] for r in rows)
    off_diagonal = sum(v for matrix in m["model"]["confusion"].values()
                       for r, row in enumerate(matrix) for c, v in enumerate(row) if r != c)
    assert len(rows) == off_diagonal
    assert all(r["gold"] != r["predicted"] and r["text"] for r in rows)
    probs = [float(r["probability"]) for r in rows]
    assert probs == sorted(probs, reverse=True)


def test_gold_metrics_json_is_written_and_the_model_card_shows_it(report: Path, eval_model: Path) -> None:
    gm = json.loads((eval_model / "gold_metrics.json").read_text())
    assert gm["gold_path"].endswith("pass_a.jsonl") and gm["n_items"] == len(_gold_ids())
    assert {"sentiment_macro_f1", "stance_score"} <= set(gm["model"])
    card = (eval_model / "README.md").read_text()
    assert "Not evaluated yet" not in card
    assert f"{gm['model']['stance_score']:.3f}" in card


# ---- an honest report: thread bootstrap, verdicts, counts, gold set, calibration, seeds, domain_real -----------

def _threads_of_gold() -> set[str]:
    return {i.split("/")[0] for i in _gold_ids()}


def test_cluster_weights_keep_the_items_of_a_thread_together() -> None:
    from pipeline.evaluation.scoring import cluster_weights

    threads = ["a", "a", "b", "c", "c", "c", "d"]
    w = cluster_weights(threads, 500, seed=3)
    assert w.shape == (500, len(threads))
    assert (w[:, 0] == w[:, 1]).all() and (w[:, 3] == w[:, 4]).all() and (w[:, 4] == w[:, 5]).all()
    per_thread = w[:, [0, 2, 3, 6]]  # one column per thread: how often each was drawn
    assert (per_thread.sum(axis=1) == 4).all()  # every resample draws as many threads as there are
    assert (per_thread == 0).any() and (per_thread > 1).any()  # with replacement: some left out, some repeated
    assert (cluster_weights(threads, 500, seed=3) == w).all()


def test_weighted_resampling_equals_index_resampling_for_item_weights(schema) -> None:
    import numpy as np

    from pipeline.evaluation.scoring import resampled_scores
    from pipeline.metrics import bootstrap_indices, resampled_headline

    rng = np.random.default_rng(0)
    n = 50
    gold = {"sentiment": list(rng.choice(schema.sentiment_classes, n)),
            **{t: list(rng.choice(schema.stance_classes, n)) for t in schema.target_names}}
    pred = {"sentiment": list(rng.choice(schema.sentiment_classes, n)),
            **{t: list(rng.choice(schema.stance_classes, n)) for t in schema.target_names}}
    idx = bootstrap_indices(n, 100, 1)
    weights = np.stack([np.bincount(row, minlength=n) for row in idx])
    expected = resampled_headline(gold, pred, schema.sentiment_classes, schema.stance_classes, schema.target_names,
                                  schema.polar_classes, idx)
    got = resampled_scores(gold, pred, schema, weights)
    assert set(got) == set(expected)
    for k in expected:
        assert np.allclose(got[k], expected[k]), k


def test_bootstrap_resamples_threads_and_the_report_says_so(report: Path) -> None:
    m = json.loads((report / "metrics.json").read_text())
    assert m["bootstrap"]["unit"] == "thread" and m["bootstrap"]["clusters"] == len(_threads_of_gold())
    assert {t["thread_id"] for t in m["gold_set"]["threads"]} == _threads_of_gold()
    md = (report / "report.md").read_text()
    assert "thread-level (cluster) bootstrap" in md
    assert f"draw the {len(_threads_of_gold())} threads with replacement" in md


def test_verdict_words_follow_the_interval_only() -> None:
    from pipeline.evaluation.scoring import verdict

    assert verdict(0.01, 0.2).startswith("better")
    assert verdict(-0.3, -0.001).startswith("worse")
    for lo, hi in [(-0.09, 0.15), (0.0, 0.2), (-0.2, 0.0), (0.0, 0.0)]:
        assert verdict(lo, hi) == "not significantly different (interval includes 0)"


def test_paired_differences_are_worded_from_their_intervals(report: Path) -> None:
    from pipeline.evaluation.scoring import verdict

    m = json.loads((report / "metrics.json").read_text())
    md = (report / "report.md").read_text()
    short = {"sentiment_accuracy": "sent. acc.", "sentiment_macro_f1": "sent. macro-F1", "stance_score": "stance score"}
    for name, comp in m["comparisons"].items():
        for key, d in comp.items():
            lo, hi = d["ci"]
            assert lo <= hi and d["verdict"] == verdict(lo, hi), (name, key)
            assert d["diff"] == pytest.approx(m["model"]["headline"][key] - m["baselines"][name]["headline"][key])
        line = next(x for x in md.splitlines() if x.startswith(f"- **model vs {name}**"))
        said = dict(part.split(" on ", 1) for part in line.split("**: ", 1)[1].split("; "))
        for key, label in short.items():
            if key in comp:
                assert label in said[comp[key]["verdict"]].split(", "), (name, key)
    assert "beats" not in md.lower()


def test_every_count_in_the_report_adds_up(report: Path, eval_model: Path) -> None:
    import re

    m = json.loads((report / "metrics.json").read_text())
    g, n = m["gold_set"], m["n_items"]
    assert sum(g["by_kind"].values()) == n == len(_gold_ids())
    assert sum(t["n"] for t in g["threads"]) == n
    for kind, count in g["by_kind"].items():
        assert sum(t["by_kind"][kind] for t in g["threads"]) == count
    assert m["n_by_kind"]["comments"] == g["by_kind"]["comment"] + g["by_kind"]["reply"]
    assert m["n_by_kind"]["paragraphs"] == g["by_kind"]["paragraph"]
    for group, count in m["n_by_kind"].items():
        if count:
            assert m["model"]["by_kind"][group]["n"] == count
    for field, dist in g["labels"].items():
        assert sum(dist.values()) == n, field
    assert sum(g["annotators"].values()) == n
    # the baselines' training records are the model's, and the breakdown adds up
    bt = m["baseline_training"]
    assert bt["train_records"] == bt["corpus_train"] + bt["domain_real_train"] * bt["domain_real_repeat"]
    assert bt["corpus_train"] <= bt["corpus_total"]
    counts = json.loads((eval_model / "metrics.json").read_text())["counts"]
    assert (bt["corpus_total"], bt["corpus_train"], bt["domain_real_train"]) == \
        (counts["corpus_total"], counts["train"], counts.get("domain_real_train", 0))
    md = (report / "report.md").read_text()
    assert f"{bt['train_records']} = {bt['corpus_train']} corpus items in the train split" in md
    for a, b in re.findall(r"(\d[\d,]*) of (\d[\d,]*)", md):
        assert int(a.replace(",", "")) <= int(b.replace(",", "")), f"{a} of {b}"
    total_row = next(x for x in md.splitlines() if x.startswith("| **total** |") and x.count("|") == 3)
    assert total_row == f"| **total** | {n} |"


def test_gold_section_reports_two_pass_kappa_computed_from_the_stored_passes(report: Path, schema) -> None:
    from sklearn.metrics import cohen_kappa_score

    from pipeline.data.labels import read_labels

    m = json.loads((report / "metrics.json").read_text())
    agreement = {a["folder"]: a for a in m["gold_set"]["agreement"]}
    assert {".", "audit_v1.1"} <= set(agreement)
    md = (report / "report.md").read_text()
    for folder, a in agreement.items():
        base = GOLD.parent / folder
        pa, pb = (read_labels(base / f, schema) for f in ("pass_a.jsonl", "pass_b.jsonl"))
        by_b = {r.item_id: r for r in pb}
        common = [r for r in pa if r.item_id in by_b]
        assert a["common"] == len(common)
        for field in ("sentiment", *schema.target_names):
            ya = [r.value(field) for r in common]
            yb = [by_b[r.item_id].value(field) for r in common]
            assert a["fields"][field]["kappa"] == pytest.approx(cohen_kappa_score(ya, yb)), (folder, field)
        assert a["fields_disputed"] == sum(f["n"] - f["agreed"] for f in a["fields"].values())
        assert a["adjudication"] and a["adjudication"]["fields"] == a["fields_disputed"]  # every dispute settled
        assert f"| sentiment | {a['fields']['sentiment']['n']} |" in md
        assert f"{a['fields']['sentiment']['kappa']:.3f}" in md
    assert agreement["audit_v1.1"]["revises_earlier_labels"] and not agreement["."]["revises_earlier_labels"]


def test_stance_calibration_is_pooled_over_targets_and_per_target(report: Path, schema) -> None:
    m = json.loads((report / "metrics.json").read_text())
    cal = m["model"]["calibration"]
    pooled = cal["stance_pooled"]
    assert pooled["n"] == m["n_items"] * len(schema.target_names)
    # the pooled bins are the per-target bins added up, so the pooled ECE follows from them
    ece = 0.0
    for i, b in enumerate(pooled["bins"]):
        parts = [cal[t]["bins"][i] for t in schema.target_names]
        count = sum(p["count"] for p in parts)
        assert b["count"] == count
        if count:
            acc = sum(p["count"] * p["accuracy"] for p in parts if p["count"]) / count
            conf = sum(p["count"] * p["confidence"] for p in parts if p["count"]) / count
            assert b["accuracy"] == pytest.approx(acc) and b["confidence"] == pytest.approx(conf)
            ece += count / pooled["n"] * abs(acc - conf)
    assert pooled["ece"] == pytest.approx(ece) == m["model"]["ece"]["stance_pooled"]
    md = (report / "report.md").read_text()
    assert f"stance, pooled over the {len(schema.target_names)} targets (n = {pooled['n']})" in md
    for t in schema.target_names:
        assert f"| stance {t} (n = {m['n_items']}) | {m['model']['ece']['stance'][t]:.3f} |" in md


def test_report_says_one_seed_was_evaluated_without_seed_models(report: Path) -> None:
    m = json.loads((report / "metrics.json").read_text())
    assert m["seeds"]["n_seeds"] == 1 and "sd" not in m["seeds"]
    assert f"One training seed was evaluated (seed {m['seeds']['seeds'][0]})" in (report / "report.md").read_text()


@pytest.fixture(scope="session")
def seed_model(tmp_path_factory: pytest.TempPathFactory, shared_dir: Path) -> Path:
    """The smoke recipe trained with another seed (the session's smoke model has seed 7)."""
    from pipeline.config.run import load_config
    from pipeline.training.train import train

    out = tmp_path_factory.mktemp("seed-models")
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        cfg = load_config(REPO / "configs" / "smoke.yaml", [f"paths.models={out}", f"paths.shared={shared_dir}",
                                                            "seed=8", "run_name=smoke-s8"])
        return train(cfg, progress=False).output_dir
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="session")
def seed_report(eval_model: Path, seed_model: Path, seeded_db: Path,
                tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("seed-report")
    data = yaml.safe_load((eval_model / "config.yaml").read_text())
    data["evaluation"]["oof_recipe"] = "top2_corpus"
    cfg = tmp / "eval.yaml"
    cfg.write_text(yaml.safe_dump(data))
    out = tmp / "report"
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--out", out,
                    "--config", cfg, "--seed-models", seed_model)
    assert result.exit_code == 0, (result.output, result.exception)
    assert "2 seeds (7, 8)" in result.output
    return out


def test_seed_models_give_each_headline_scores_mean_and_sd_over_seeds(seed_report: Path, schema) -> None:
    import statistics

    m = json.loads((seed_report / "metrics.json").read_text())
    s = m["seeds"]
    assert s["n_seeds"] == 2 and s["seeds"] == [7, 8]
    assert s["runs"][0]["headline"] == m["model"]["headline"]
    assert s["runs"][0]["model_version"] != s["runs"][1]["model_version"]
    for k in m["model"]["headline"]:
        values = [r["headline"][k] for r in s["runs"]]
        assert s["mean"][k] == pytest.approx(statistics.mean(values))
        assert s["sd"][k] == pytest.approx(statistics.stdev(values))
    md = (seed_report / "report.md").read_text()
    row = next(x for x in md.splitlines() if x.startswith("| stance score |") and "±" in x)
    assert f"{s['mean']['stance_score']:.3f} ± {s['sd']['stance_score']:.3f}" in row
    assert "One training seed" not in md


def test_seed_model_with_the_main_models_seed_is_rejected(eval_model: Path, seeded_db: Path, tmp_path: Path) -> None:
    result = invoke("evaluate", "--model", eval_model, "--gold", GOLD, "--db", seeded_db, "--out", tmp_path / "r",
                    "--seed-models", eval_model)
    assert isinstance(result.exception, UserError) and "seed 7" in str(result.exception)
    assert not (tmp_path / "r").exists()


def test_recipe_differences_ignore_seed_names_and_paths_only() -> None:
    from pipeline.config.run import load_config
    from pipeline.evaluation.seeds import recipe_differences

    smoke = REPO / "configs" / "smoke.yaml"
    base = load_config(smoke)
    assert recipe_differences(base, load_config(smoke, ["seed=99", "run_name=x", "paths.models=elsewhere",
                                                        "evaluation.bootstrap=5000"])) == []
    assert recipe_differences(base, load_config(smoke, ["seed=99", "training.lr=0.001",
                                                        "data.domain_real.repeat=3"])) == \
        ["data.domain_real.repeat", "training.lr"]


def test_domain_real_out_of_fold_scores_stand_beside_gold(seed_report: Path, schema) -> None:
    summary = json.loads((REPO / "reports" / "recipes" / "summary.json.txt").read_text())["recipes"]["top2_corpus"]
    m = json.loads((seed_report / "metrics.json").read_text())
    o = m["domain_real_oof"]
    assert o["available"] and o["recipe"] == "top2_corpus" and o["recipe_from"] == "evaluation.oof_recipe"
    assert o["n"] == summary["n"]
    assert o["scores"]["stance_score"] == summary["pooled"]["stance_score"]
    for t in schema.target_names:
        assert o["scores"][f"f1_avg.{t}"] == summary["pooled"]["f1_avg"][t]
    md = (seed_report / "report.md").read_text()
    row = next(x for x in md.splitlines() if x.startswith("| stance score |") and "±" not in x
               and f"{summary['pooled']['stance_score']:.3f}" in x)
    assert f"{m['model']['headline']['stance_score']:.3f} [" in row
    assert f"n = {summary['n']}" in md


def test_oof_recipe_falls_back_to_fitted_on_and_missing_data_is_said(tmp_path: Path) -> None:
    from pipeline.evaluation.oof import read_oof, recipe_name

    fitted = "domain_real v3 out-of-fold logits of recipe top2_corpus (5 url-grouped folds)"
    assert recipe_name(None, fitted) == ("top2_corpus", "calibration.fitted_on")
    assert recipe_name("top2", fitted) == ("top2", "evaluation.oof_recipe")
    assert recipe_name(None, "") == (None, None)
    summary = REPO / "reports" / "recipes" / "summary.json.txt"
    unknown = read_oof(summary, "no_such_recipe", "evaluation.oof_recipe", ["funding"])
    assert not unknown["available"] and "no_such_recipe" in unknown["reason"]
    assert not read_oof(tmp_path / "none.json", "top2", "x", [])["available"]
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(UserError, match="evaluation.oof_summary"):
        read_oof(bad, "top2", "x", [])
