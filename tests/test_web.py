"""The dashboard's routes (``threadstance serve``) over a store of the seed threads classified by the smoke
model, through FastAPI's TestClient: every page, filters, downloads, escaping and bad requests."""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner
from web_support import EDITED_TEXT, XSS_THREAD, cached_store

from pipeline.cli.main import app as cli_app
from pipeline.reporting.trends import trends
from pipeline.store.db import Store
from pipeline.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
PAGES = ["/", "/trends", "/threads", "/items", "/suggest"]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path, smoke_model: Path) -> tuple[Path, Path]:
    return cached_store(tmp_path_factory.getbasetemp(), seeds_dir, smoke_model)


@pytest.fixture(scope="module")
def client(built: tuple[Path, Path]) -> TestClient:
    store, model = built
    return TestClient(create_app(store, model, n_boot=200, gold=REPO / "data" / "gold" / "gold.jsonl"))


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _evidence_thread(store: Path, version: str) -> str:
    with Store.open_readonly(store) as st:
        for row in st.items_with_predictions(version, predicted_only=True):
            if any(h.get("evidence") for h in row["record"]["stance"].values()) and row["thread_id"] != XSS_THREAD:
                return row["thread_id"]
    raise AssertionError("the smoke model gave no stance with evidence on the seed threads")


def test_every_page_answers_and_marks_itself_in_the_navigation(client: TestClient) -> None:
    for page in PAGES:
        r = client.get(page)
        assert r.status_code == 200, (page, r.text[:300])
        assert r.headers["content-type"].startswith("text/html")
        assert f'href="{page}" class="active"' in r.text
        assert "/static/htmx.min.js" in r.text


def test_htmx_requests_get_only_the_results_of_the_filtered_page(client: TestClient) -> None:
    for url, marker in (("/items?target=sentiment&label=negative&conf_min=&q=&sort=date", 'id="item-table"'),
                        ("/threads?q=ofsted", 'id="thread-table"'), ("/trends?by=year&kind=comment", 'id="trend-table"')):
        r = client.get(url, headers={"HX-Request": "true"})
        assert r.status_code == 200, (url, r.text[:300])
        assert marker in r.text and "<html" not in r.text and 'id="filters"' not in r.text, url


def test_overview_shows_store_counts_the_model_card_and_the_last_runs(client: TestClient, built) -> None:
    store, _ = built
    with Store.open_readonly(store) as st:
        counts, runs = st.counts(), st.runs()
    html = client.get("/").text
    for kind, plural in (("paragraph", "paragraphs"), ("comment", "comments"), ("reply", "replies")):
        assert f"<th>· {plural}</th><td>{counts[kind]:,}</td>" in html
    assert f"<th>threads</th><td>{counts['threads']:,}</td>" in html
    classified = re.search(r'id="classified">([\d,]+)<', html).group(1)
    assert int(classified.replace(",", "")) == sum(counts[k] for k in ("paragraph", "comment", "reply"))
    assert 'id="model-card"' in html and "minilm" in html.lower() and "out-of-fold table of 240 passages" in html
    assert len(re.findall(r"<td>reclassify</td>", html)) == len(runs) == 2


def test_trends_match_the_trends_command_and_the_csv_is_exactly_the_table(client: TestClient, built) -> None:
    store, model = built
    html = client.get("/trends?by=year").text
    assert 'id="trend-data"' in html and html.count('class="trend-chart"') == 5
    got = pd.read_csv(io.StringIO(client.get("/trends.csv?by=year").text))
    want = trends(store, model, "year", n_boot=200).frame
    assert len(got) == len(want) == html.count("<tr", html.index('id="trend-table"')) - 1
    assert got["share"].notna().all() and (got["method"] == "acc").all()  # corrected, not raw only
    np.testing.assert_allclose(got["share"], want["share"].astype(float), atol=1e-9)
    np.testing.assert_allclose(got["ci_low"], want["ci_low"].astype(float), atol=1e-9)
    assert (got["ci_low"] <= got["share"] + 1e-9).all() and (got["share"] <= got["ci_high"] + 1e-9).all()


def test_trend_filters_narrow_the_items_and_flag_small_periods(client: TestClient) -> None:
    everything = pd.read_csv(io.StringIO(client.get("/trends.csv?by=year").text))
    comments = pd.read_csv(io.StringIO(client.get("/trends.csv?by=year&kind=comment&min_confidence=0.5").text))
    assert comments["n"].sum() < everything["n"].sum()
    assert "abstain" in set(comments["label"])
    month = pd.read_csv(io.StringIO(client.get("/trends.csv?by=month").text))
    assert month["too_few"].any()  # 30 items per period are needed; seed months are smaller
    late = client.get("/trends?by=year&since=2099-01-01").text
    assert 'id="no-rows"' in late


def test_thread_view_shows_paragraphs_the_indented_reply_tree_badges_and_highlighted_evidence(client, built) -> None:
    store, model = built
    from pipeline.modeling.folder import ModelFolder

    tid = _evidence_thread(store, ModelFolder(model).recorded_version())
    html = client.get("/thread?id=" + quote(tid, safe="")).text
    assert '<mark class="evidence" title="evidence · ' in html
    assert 'class="badge sent-' in html and "title=\"negative 0." in html  # probabilities on hover
    assert "<h2>Article</h2>" in html and 'class="item paragraph"' in html
    tree = client.get(f"/thread?id={XSS_THREAD}").text  # a comment with a reply under it
    assert re.search(r'class="item comment"[^>]*style="margin-left: 0.0rem"', tree)
    assert re.search(r'class="item reply"[^>]*style="margin-left: 1.6rem"', tree)
    assert tree.index('class="item reply"') > tree.index('class="item comment"')


def test_an_edited_item_shows_its_revision_and_earlier_text(client: TestClient) -> None:
    html = client.get(f"/thread?id={XSS_THREAD}").text
    assert "edited · revision 2" in html and EDITED_TEXT.split(":")[0] in html
    assert "earlier text (1 revision)" in html and "I agree with the first comment about managers." in html


def test_items_filter_paginate_and_download_what_they_show(client: TestClient, built) -> None:
    total = int(re.search(r'id="item-count">([\d,]+)<', client.get("/items").text).group(1).replace(",", ""))
    page2 = client.get("/items?page=2").text
    assert "page 2 of" in page2 and 'rel="prev"' in page2
    url = "/items?target=sentiment&label=negative&conf_min=0.3&conf_max=0.9&kind=comment&kind=reply"
    html = client.get(url).text
    shown = int(re.search(r'id="item-count">([\d,]+)<', html).group(1).replace(",", ""))
    assert 0 < shown < total
    rows = [json.loads(line) for line in client.get(url.replace("/items?", "/items.jsonl?")).text.splitlines()]
    assert len(rows) == shown
    assert all(r["sentiment"]["label"] == "negative" and 0.3 <= r["sentiment"]["prob"] <= 0.9 and
               r["kind"] in ("comment", "reply") for r in rows)
    csv = pd.read_csv(io.StringIO(client.get(url.replace("/items?", "/items.csv?")).text))
    assert len(csv) == shown and {"stance.funding.label", "text"} <= set(csv.columns)
    found = client.get("/items?q=" + quote("agency staff budget")).text
    assert re.search(r'id="item-count">1<', found) and "agency staff budget" in found


def test_label_next_is_suggest_uncertainty_over_the_stored_probabilities(client: TestClient) -> None:
    from pipeline.inference.suggest import labelled_item_ids

    dash = client.app.state.dash
    ranked = dash.ranking()
    scores = [r["score"] for r in ranked]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert not {r["item_id"] for r in ranked} & labelled_item_ids([REPO / "data" / "gold" / "gold.jsonl"])
    top = ranked[0]
    with dash.store() as st:
        rec = st.prediction_history(top["item_id"], dash.version)[-1]["record"]
    heads = [rec["sentiment"]["probs"], *(h["probs"] for h in rec["stance"].values())]
    margins = [sorted(p.values())[-1] - sorted(p.values())[-2] for p in heads]
    assert top["score"] == pytest.approx(1 - min(margins), abs=1e-6)
    html = client.get("/suggest").text
    assert html.count('class="thread-link"') == min(50, len(ranked))
    assert "/thread?id=" + quote(top["thread_id"], safe="") in html


def test_user_strings_are_escaped_on_every_page(client: TestClient) -> None:
    urls = ["/", f"/thread?id={XSS_THREAD}", "/threads?q=" + quote("<script>"), "/items?q=" + quote("<img"),
            f"/items?thread={XSS_THREAD}", "/suggest", "/suggest?page=2", "/trends?thread=" + XSS_THREAD,
            "/items?q=" + quote("<script>alert(1)</script>"), "/thread?id=" + quote("<script>x</script>")]
    for url in urls:
        html = client.get(url).text
        for raw in ("<script>window.__xss", "<img src=x onerror", "<iframe", "<b>bold</b>", "<script>alert(1)",
                    "<script>x</script>"):
            assert raw not in html, (url, raw)
    thread = client.get(f"/thread?id={XSS_THREAD}").text
    assert "&lt;script&gt;window.__xss = 3&lt;/script&gt;" in thread
    assert "&lt;img src=x onerror=&#34;window.__xss = 2&#34;&gt;" in thread


def test_bad_requests_get_a_clear_page_never_a_traceback(client: TestClient) -> None:
    cases = {"/items?page=x": 400, "/items?page=0": 400, "/items?conf_min=2": 400, "/items?since=yesterday": 400,
             "/items?conf_min=0.9&conf_max=0.1": 400,
             "/items?kind=tweet": 400, "/items?target=weather": 400, "/items?label=maybe": 400,
             "/items?sort=random": 400, "/trends?by=week": 400, "/trends?thread=nope": 400,
             "/trends?since=2020-01-01&until=2019-01-01": 400, "/trends.csv?min_confidence=x": 400,
             "/items.exe": 400, "/thread?id=nope": 404, "/thread": 404, "/nowhere": 404,
             "/static/..%2F..%2Fpyproject.toml": 404, "/static/style.css/../app.py": 404}
    for url, status in cases.items():
        r = client.get(url)
        assert r.status_code == status, (url, r.status_code)
        assert 'id="error"' in r.text and "Traceback" not in r.text and "File \"" not in r.text, url
    assert "is not one of paragraph, comment, reply" in client.get("/items?kind=tweet").text
    assert client.get("/static/plotly.min.js").status_code == 200


def test_the_store_file_is_never_written(built: tuple[Path, Path]) -> None:
    store, model = built
    before = {p.name: _digest(p) for p in store.parent.glob("store.sqlite*")}
    c = TestClient(create_app(store, model, n_boot=100))
    for url in [*PAGES, f"/thread?id={XSS_THREAD}", "/items.csv", "/trends.csv?by=quarter"]:
        assert c.get(url).status_code == 200
    assert {p.name: _digest(p) for p in store.parent.glob("store.sqlite*")} == before


def _bare_store(tmp_path: Path, seeds_dir: Path) -> Path:
    """The seed threads ingested into a new store, nothing classified."""
    db = tmp_path / "bare.sqlite"
    result = CliRunner().invoke(cli_app, ["ingest", str(seeds_dir), "--db", str(db)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return db


def test_a_store_without_predictions_shows_a_clear_notice(tmp_path: Path, seeds_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr("pipeline.config.settings.DEFAULT_MODELS", tmp_path / "models")  # no models/default
    c = TestClient(create_app(_bare_store(tmp_path, seeds_dir), None))
    for page in PAGES:
        r = c.get(page)
        assert r.status_code == 200 and 'id="no-predictions"' in r.text, page
    assert 'class="thread-link"' in c.get("/threads").text
    r = c.get("/trends.csv")
    assert r.status_code == 400 and "no predictions in the store yet" in r.text


def test_a_default_model_that_has_not_classified_the_store_gets_the_same_notice_with_its_version(
        tmp_path: Path, seeds_dir: Path, smoke_model: Path, monkeypatch) -> None:
    from pipeline.modeling.folder import ModelFolder

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "default").symlink_to(smoke_model, target_is_directory=True)
    monkeypatch.setattr("pipeline.config.settings.DEFAULT_MODELS", tmp_path / "models")
    version = ModelFolder(smoke_model).recorded_version()
    c = TestClient(create_app(_bare_store(tmp_path, seeds_dir), None))
    for page in PAGES:
        r = c.get(page)
        assert r.status_code == 200 and 'yet: run <code>threadstance reclassify' in r.text, page
        assert f'no predictions of model <code>{version}</code>' in r.text, page
    r = c.get("/trends.csv")
    assert r.status_code == 400 and f"no predictions of model {version}" in r.text
    assert c.get("/items.csv").status_code == 400


def test_a_store_classified_by_another_model_gets_the_notice_for_the_served_one(built: tuple[Path, Path]) -> None:
    store, _ = built
    c = TestClient(create_app(store, "0123456789ab"))  # a model_version that never classified this store
    for page in PAGES:
        r = c.get(page)
        assert 'no predictions of model <code>0123456789ab</code>' in r.text and "--model" in r.text, page
    assert c.get("/items.jsonl").status_code == 400


def test_serve_refuses_a_missing_store_without_creating_it(tmp_path: Path, monkeypatch, capsys) -> None:
    from conftest import cli

    code, _, err = cli(["serve", "--db", tmp_path / "none.sqlite"], monkeypatch, capsys)
    assert code == 2 and "no store here" in err and not (tmp_path / "none.sqlite").exists()


def test_serve_on_all_interfaces_warns_that_the_store_becomes_visible(built: tuple[Path, Path]) -> None:
    store, model = built
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.cli.main", "serve", "--db", str(store), "--model",
                             str(model), "--host", "0.0.0.0", "--port", str(port)], cwd=REPO,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                            env={**os.environ, "COLUMNS": "200"})
    try:
        lines: list[str] = []
        deadline = time.time() + 60
        while time.time() < deadline and not any("dashboard:" in x for x in lines):
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
        text = " ".join(" ".join(lines).split())
        assert "warning: listening on 0.0.0.0: the store's threads, comments and predictions become visible to " \
               "the network" in text, text
        assert f"dashboard: http://0.0.0.0:{port}/" in text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
