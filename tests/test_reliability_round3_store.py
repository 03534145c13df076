"""Round 3 probes (issue 24): read-only stores, the model listing, evaluate's model folder and outputs,
atomic output files on a full disk, and malformed label files for ``suggest``.

Read-only stores are checked in a subprocess that runs the CLI without the capabilities that let root
ignore file permissions (``setpriv --bounding-set=-dac_override,…``), so the folder and file modes bite
as they do for an ordinary user; the tests are skipped, with the reason, where that is impossible.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline.store.db import Store
from pipeline.store.load import ingest_paths
from pipeline.store.records import prediction_record

REPO = Path(__file__).resolve().parent.parent
MODEL_VERSION = "probe-model-1"
DROP_CAPS = ["--bounding-set=-dac_override,-dac_read_search,-fowner"]


# ---- helpers -----------------------------------------------------------------------------------------
def _unprivileged(cmd: list[str]) -> list[str]:
    """``cmd`` run so that file permissions apply (root: without the capabilities that override them)."""
    if os.geteuid() != 0:
        return cmd
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root and setpriv is not installed: cannot make file permissions apply")
    return [setpriv, *DROP_CAPS, "--", *cmd]


def run_cli(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """The real console entry point in a subprocess that obeys file permissions."""
    cmd = _unprivileged([sys.executable, "-m", "pipeline.cli.main", *map(str, args)])
    env = {**os.environ, "COLUMNS": "250", "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    env.pop("THREADSTANCE_DEBUG", None)
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def _permissions_apply(root: Path) -> None:
    """Skip unless a write into a read-only folder fails for the subprocess."""
    probe = root / "perm_probe"
    probe.mkdir()
    probe.chmod(0o555)
    try:
        result = subprocess.run(_unprivileged(["touch", str(probe / "x")]), capture_output=True, text=True)
    finally:
        probe.chmod(0o755)
    if result.returncode == 0:
        pytest.skip("file permissions do not apply to a subprocess here (capabilities cannot be dropped)")


def build_store(path: Path, seeds_dir: Path) -> Path:
    """Three seed threads, a prediction of every item by MODEL_VERSION and one finished reclassify run."""
    with Store(path) as store:
        report = ingest_paths(store, sorted(seeds_dir.glob("*.txt"))[:3])
        assert not report.failed
        run = store.start_run("reclassify", MODEL_VERSION)
        pred = SimpleNamespace(sentiment="negative", sentiment_probs={"negative": .7, "neutral": .2, "positive": .1},
                               stance={"funding": "none"},
                               stance_probs={"funding": {"favor": .1, "against": .1, "none": .8}})
        rows = [(it["item_id"], MODEL_VERSION, it["revision"], it["text_sha256"], "negative",
                 json.dumps(prediction_record(it, pred, MODEL_VERSION)), run)
                for it in store.pending_items(MODEL_VERSION)]
        with store.transaction():
            store.add_predictions(rows)
        store.update_run(run, status="ok", ended_at="2026-01-01T00:00:00+00:00", counts={"classified": len(rows)})
    return path


def assert_one_clean_line(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) <= 1, result.stderr


# ---- 1. read-only stores -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def world_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder every user can enter (pytest's own tmp root is private to its owner)."""
    root = tmp_path_factory.mktemp("round3_ro")
    for p in (root, *root.parents):
        if p == Path("/") or p == Path("/tmp"):
            break
        p.chmod(p.stat().st_mode | stat.S_IXOTH | stat.S_IROTH)
    return root


@pytest.fixture(scope="module")
def ro_template(world_root: Path, seeds_dir: Path) -> Path:
    _permissions_apply(world_root)
    return build_store(world_root / "template.sqlite", seeds_dir)


@pytest.fixture(params=["folder", "file"])
def ro_store(request: pytest.FixtureRequest, ro_template: Path, world_root: Path) -> Path:
    """A copy of the template store, read-only: in a read-only folder, or a read-only file in a writable one."""
    folder = world_root / f"ro_{request.param}_{request.node.name.split('[')[0][-20:]}"
    if folder.exists():
        folder.chmod(0o755)
        shutil.rmtree(folder)
    folder.mkdir()
    db = folder / "store.sqlite"
    shutil.copy(ro_template, db)
    db.chmod(0o444)
    if request.param == "folder":
        folder.chmod(0o555)
    yield db
    folder.chmod(0o755)


READING_COMMANDS = {
    "items show": ["items", "show"],
    "items export": ["items", "export", "--format", "jsonl"],
    "export predictions": ["export", "predictions", "--format", "jsonl"],
    "trends": ["trends", "--by", "year", "--min-items", "1", "--format", "csv", "--bootstrap", "100"],
    "runs": ["runs"],
}


@pytest.mark.parametrize("command", sorted(READING_COMMANDS))
def test_reading_commands_read_a_read_only_store(command: str, ro_store: Path, world_root: Path) -> None:
    before = sorted(p.name for p in ro_store.parent.iterdir())
    result = run_cli([*READING_COMMANDS[command], "--db", ro_store], world_root)
    assert result.returncode == 0, result.stderr
    assert_one_clean_line(result)
    assert "cannot write" not in result.stderr
    assert result.stdout.strip()
    if command == "export predictions":
        assert MODEL_VERSION in result.stdout
    if not os.access(ro_store.parent, os.W_OK) or ro_store.parent.stat().st_mode & stat.S_IWUSR == 0:
        assert sorted(p.name for p in ro_store.parent.iterdir()) == before  # no -wal / -shm left behind


def test_suggest_reads_a_read_only_store(ro_store: Path, ro_template: Path, world_root: Path) -> None:
    with Store.open_readonly(ro_template) as store:
        ids = sorted(store.item_ids())
    labels = world_root / f"all_labelled_{ro_store.parent.name}.jsonl"
    labels.write_text("".join(json.dumps({"item_id": i}) + "\n" for i in ids), encoding="utf-8")
    result = run_cli(["suggest", "--db", ro_store, "--labels", labels, "--format", "jsonl",
                      "--model", world_root / "no_model_needed"], world_root)
    assert result.returncode == 0, result.stderr
    assert_one_clean_line(result)
    assert "no unlabelled items" in result.stderr


def test_ingest_into_a_read_only_store_exits_1_naming_the_store(ro_store: Path, world_root: Path,
                                                                seeds_dir: Path) -> None:
    new = sorted(seeds_dir.glob("*.txt"))[3]
    result = run_cli(["ingest", new, "--db", ro_store], world_root)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr
    assert f"{ro_store}: the store is read-only: cannot write" in result.stderr
    with Store.open_readonly(ro_store) as store:
        assert store.counts()["threads"] == 3


# ---- 2. models list ----------------------------------------------------------------------------------
def fake_model(path: Path, run_name: str) -> Path:
    """A model folder with every file `models list` checks (small stand-ins for the weights) and a manifest."""
    from pipeline.modeling.folder import ModelFolder

    folder = ModelFolder(path)
    path.mkdir(parents=True)
    folder.write_meta({"sentiment_classes": ["negative", "neutral", "positive"], "stance_classes": ["favor"],
                       "targets": ["funding"], "pooling": "mean", "dropout": 0.1, "model_version": "v-" + run_name})
    for name in ("tokenizer.json", "tokenizer_config.json", "encoder/config.json"):
        folder.write_text(name, "{}\n")
    for name in ("heads.safetensors", "encoder/model.safetensors"):
        folder.file(name).write_bytes(os.urandom(4096))
    folder.write_json("metrics.json", {"run_name": run_name, "model_version": "v-" + run_name,
                                       "finished_at": "2026-01-02T03:04:05", "counts": {"train": 10},
                                       "dev": {"dev": {"sentiment_macro_f1": 0.5, "stance_score": 0.4}},
                                       "selection_dev_set": "dev"})
    folder.write_manifest()
    return path


def models_table(models: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> dict:
    from conftest import cli

    monkeypatch.setenv("COLUMNS", "400")
    code, out, err = cli(["models", "list", "--dir", models], monkeypatch, capsys)
    assert code in (0, None), err
    assert "unexpected" not in err and "Traceback" not in err
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("│┃ ").split("│")]
        if len(cells) > 2 and cells[0] and not cells[0].startswith(("model", "━", "─")):
            rows[cells[0].split(" ")[0]] = cells
    return rows


def test_models_list_names_each_folder_and_marks_a_damaged_copy_broken(tmp_path: Path, monkeypatch, capsys) -> None:
    models = tmp_path / "models"
    fake_model(models / "good", "good")
    shutil.copytree(models / "good", models / "copy")
    with open(models / "copy" / "heads.safetensors", "r+b") as fh:
        fh.truncate(100)
    rows = models_table(models, monkeypatch, capsys)
    assert set(rows) == {"good", "copy"}
    assert rows["good"][1] == "ok"
    assert rows["copy"][1].startswith("broken") and "heads.safetensors" in " ".join(rows["copy"])


def test_models_list_survives_invalid_and_empty_metrics(tmp_path: Path, monkeypatch, capsys) -> None:
    models = tmp_path / "models"
    fake_model(models / "good", "good")
    (fake_model(models / "badjson", "badjson") / "metrics.json").write_text("{not json", encoding="utf-8")
    (fake_model(models / "empty", "empty") / "metrics.json").write_text("{}", encoding="utf-8")
    from pipeline.modeling.folder import ModelFolder

    ModelFolder(fake_model(models / "emptyok", "emptyok")).write_json("metrics.json", {})  # manifest follows
    rows = models_table(models, monkeypatch, capsys)
    assert set(rows) == {"good", "badjson", "empty", "emptyok"}
    assert rows["good"][1] == "ok" and rows["emptyok"][1] == "ok"
    for name in ("badjson", "empty"):
        assert rows[name][1].startswith("broken") and "metrics.json" in " ".join(rows[name])


def test_models_list_marks_a_folder_that_is_not_a_model(tmp_path: Path, monkeypatch, capsys) -> None:
    models = tmp_path / "models"
    fake_model(models / "good", "good")
    (models / "half").mkdir()
    (models / "half" / "metrics.json").write_text(json.dumps({"run_name": "good"}), encoding="utf-8")
    rows = models_table(models, monkeypatch, capsys)
    assert rows["good"][1] == "ok"
    assert rows["half"][1].startswith("broken") and "threadstance.json" in " ".join(rows["half"])


# ---- 3. evaluate leaves the model folder alone with --out or another gold file --------------------------
GOLD = REPO / "data" / "gold" / "pass_a.jsonl"


def folder_snapshot(path: Path) -> dict[str, bytes]:
    return {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def eval_setup(smoke_model: Path, seeds_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A private copy of the smoke model, a store of the seed threads and a small gold file (every 6th item)."""
    root = tmp_path_factory.mktemp("round3_eval")
    model = root / "models" / "smoke"
    shutil.copytree(smoke_model, model)
    db = root / "ts.sqlite"
    with Store(db) as store:
        assert not ingest_paths(store, [seeds_dir]).failed
    gold = root / "other_gold.jsonl"
    gold.write_text("".join(line + "\n" for line in GOLD.read_text(encoding="utf-8").splitlines()[::6]),
                    encoding="utf-8")
    return {"model": model, "db": db, "gold": gold, "root": root}


def _evaluate(args: list[object], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from conftest import cli

    monkeypatch.chdir(REPO)  # configs/ and data/ are relative to the project root
    code, _out, err = cli(["evaluate", *args, "--device", "cpu"], monkeypatch, capsys)
    assert code in (0, None), err


def test_evaluate_with_another_gold_file_leaves_the_model_folder_alone(eval_setup: dict[str, Path], monkeypatch,
                                                                      capsys) -> None:
    model = eval_setup["model"]
    before = folder_snapshot(model)
    out = eval_setup["root"] / "report_other_gold"
    _evaluate(["--model", model, "--gold", eval_setup["gold"], "--db", eval_setup["db"], "--out", out],
              monkeypatch, capsys)
    assert (out / "report.md").is_file() and (out / "errors.csv").is_file()
    assert folder_snapshot(model) == before


def test_evaluate_with_out_leaves_the_model_folder_alone(eval_setup: dict[str, Path], monkeypatch, capsys) -> None:
    """--out with the config's own gold file (a config whose evaluation.gold is the small file)."""
    import yaml

    model = eval_setup["model"]
    cfg = yaml.safe_load((model / "config.yaml").read_text(encoding="utf-8"))
    cfg.setdefault("evaluation", {})["gold"] = str(eval_setup["gold"])
    config = eval_setup["root"] / "same_gold.yaml"
    config.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    before = folder_snapshot(model)
    out = eval_setup["root"] / "report_out"
    _evaluate(["--model", model, "--config", config, "--db", eval_setup["db"], "--out", out], monkeypatch, capsys)
    assert (out / "report.md").is_file()
    assert folder_snapshot(model) == before


def test_evaluate_job_path_still_writes_the_gold_metrics_and_card(eval_setup: dict[str, Path]) -> None:
    """What the main job does: its own gold file, its report folder; the model folder gets the gold metrics."""
    from pipeline.config.run import load_config
    from pipeline.reporting.evaluate import evaluate

    model = eval_setup["model"]
    cfg = load_config(model / "config.yaml", [f"evaluation.gold={eval_setup['gold']}"])
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        evaluate(model, out_dir=eval_setup["root"] / "report_job", db=eval_setup["db"], config=cfg, device="cpu")
    finally:
        os.chdir(cwd)
    gm = json.loads((model / "gold_metrics.json").read_text(encoding="utf-8"))
    assert gm["gold_path"] == str(eval_setup["gold"]) and f"{gm['model']['stance_score']:.3f}" in \
        (model / "README.md").read_text(encoding="utf-8")


# ---- 4. errors.csv neutralises formulas; report.md escapes HTML from items ------------------------------
HOSTILE = ['=HYPERLINK("http://evil.example/x","click")', "+1+2", "-2+3", "@SUM(A1)",
           "<script>alert(1)</script>", '<img src=x onerror="alert(1)">']


def test_errors_csv_neutralises_formula_cells(tmp_path: Path) -> None:
    import csv

    from pipeline.reporting.report import write_errors_csv

    rows = [{"item_id": f"t/c{i}", "kind": "comment", "field": "sentiment", "gold": "negative", "predicted": "positive",
             "probability": 0.9, "gold_probability": 0.05, "evidence": text, "text": text}
            for i, text in enumerate(HOSTILE)]
    write_errors_csv(tmp_path / "errors.csv", rows)
    with open(tmp_path / "errors.csv", encoding="utf-8", newline="") as fh:
        back = list(csv.DictReader(fh))
    for row, text in zip(back, HOSTILE):
        expected = "'" + text if text[0] in "=+-@" else text
        assert row["text"] == expected and row["evidence"] == expected
        assert row["probability"] == "0.9"


def test_report_md_escapes_html_from_item_text() -> None:
    from pipeline.reporting.report import render_markdown

    blocks = [("h", 1, "threadstance evaluation: <b>run</b>"),
              ("p", "see `errors.csv` and **bold**; note: <script>alert(2)</script>"),
              ("ul", ['<img src=x onerror="alert(3)">']),
              ("table", ["#", "item", "text"], [[i, "t/c1", text] for i, text in enumerate(HOSTILE)])]
    md = render_markdown(blocks)
    for raw in ("<script", "<img", "<b>"):
        assert raw not in md
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md and "&lt;img src=x onerror=\"alert(1)\"&gt;" in md
    assert "`errors.csv`" in md and "**bold**" in md


# ---- 5. a full disk while writing an output file ----------------------------------------------------------
@pytest.fixture
def full_disk(tmp_path: Path) -> Path:
    """A 64 KiB tmpfs, filled to the last byte; ``old.jsonl`` on it was written before it filled up."""
    mnt = tmp_path / "full"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up: {done.stderr.strip()}")
    try:
        (mnt / "old.jsonl").write_text('{"old": true}\n', encoding="utf-8")
        with open(mnt / "filler", "wb", buffering=0) as fh:
            try:
                while True:
                    fh.write(b"\0" * 1024)
            except OSError:
                pass
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def assert_disk_full_error(code: int | None, err: str, target: Path) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "unexpected" not in err
    errors = [line for line in err.splitlines() if line.startswith("error")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {target}: disk full"), err


@pytest.mark.parametrize("fmt", ["parquet", "jsonl", "csv"])
def test_items_export_to_a_full_disk_names_the_file_and_leaves_nothing(fmt: str, full_disk: Path, tmp_path: Path,
                                                                        seeds_dir: Path, monkeypatch, capsys) -> None:
    from conftest import cli

    db = build_store(tmp_path / "s.sqlite", seeds_dir)
    target = full_disk / f"items.{fmt}"
    code, _out, err = cli(["items", "export", "--format", fmt, "-o", target, "--db", db], monkeypatch, capsys)
    assert_disk_full_error(code, err, target)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "old.jsonl"]


def test_a_failed_export_keeps_the_file_it_would_have_replaced(full_disk: Path, tmp_path: Path, seeds_dir: Path,
                                                               monkeypatch, capsys) -> None:
    from conftest import cli

    db = build_store(tmp_path / "s.sqlite", seeds_dir)
    target = full_disk / "old.jsonl"
    code, _out, err = cli(["items", "export", "-o", target, "--db", db], monkeypatch, capsys)
    assert_disk_full_error(code, err, target)
    assert target.read_text(encoding="utf-8") == '{"old": true}\n'
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "old.jsonl"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_export_predictions_to_a_full_disk_names_the_file_and_leaves_nothing(fmt: str, full_disk: Path,
                                                                             tmp_path: Path, seeds_dir: Path,
                                                                             monkeypatch, capsys) -> None:
    from conftest import cli

    db = build_store(tmp_path / "s.sqlite", seeds_dir)
    target = full_disk / f"predictions.{fmt}"
    code, _out, err = cli(["export", "predictions", "--format", fmt, "-o", target, "--db", db], monkeypatch, capsys)
    assert_disk_full_error(code, err, target)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "old.jsonl"]


@pytest.mark.parametrize("fmt", ["jsonl", "table"])
def test_predict_to_a_full_disk_names_the_file_and_leaves_nothing(fmt: str, full_disk: Path, smoke_model: Path,
                                                                  seeds_dir: Path, monkeypatch, capsys) -> None:
    from conftest import cli

    target = full_disk / f"predictions.{fmt}"
    code, _out, err = cli(["predict", sorted(seeds_dir.glob("*.txt"))[0], "--model", smoke_model, "--format",
                           fmt, "-o", target, "--device", "cpu"], monkeypatch, capsys)
    assert_disk_full_error(code, err, target)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "old.jsonl"]


# ---- 6. suggest --labels: a malformed file is refused, a cut-short last line is a warning ------------------
@pytest.fixture(scope="module")
def suggest_store(tmp_path_factory: pytest.TempPathFactory, seeds_dir: Path) -> tuple[Path, list[str]]:
    db = build_store(tmp_path_factory.mktemp("round3_suggest") / "s.sqlite", seeds_dir)
    with Store.open_readonly(db) as store:
        return db, sorted(store.item_ids())


@pytest.mark.parametrize("bad", ["not json at all", "[1, 2]", '{"sentiment": "negative"}', '{"item_id": 7}'])
def test_suggest_refuses_a_malformed_labels_file_naming_file_and_line(bad: str, suggest_store, tmp_path: Path,
                                                                      monkeypatch, capsys) -> None:
    from conftest import cli

    db, ids = suggest_store
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"item_id": ids[0]}) + "\n" + bad + "\n" + json.dumps({"item_id": ids[1]}) + "\n",
                      encoding="utf-8")
    code, _out, err = cli(["suggest", "--db", db, "--labels", labels, "--model", tmp_path / "no_model"],
                          monkeypatch, capsys)
    assert code == 2, err
    errors = [line for line in err.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith(f"error: {labels}:2: "), err


def test_suggest_warns_about_a_cut_short_last_label_line(suggest_store, smoke_model: Path, tmp_path: Path,
                                                         monkeypatch, capsys) -> None:
    from conftest import cli

    db, ids = suggest_store
    labels = tmp_path / "labels.jsonl"
    whole = "".join(json.dumps({"item_id": i, "sentiment": "neutral"}) + "\n" for i in ids[:-1])
    cut = json.dumps({"item_id": ids[-1], "sentiment": "neutral"})[:-12]  # killed mid-write: no end, no newline
    labels.write_text(whole + cut, encoding="utf-8")
    no_gold = tmp_path / "gold.jsonl"
    no_gold.write_text("", encoding="utf-8")
    code, out, err = cli(["suggest", "--db", db, "--labels", labels, "--gold", no_gold, "--model", smoke_model,
                          "--format", "jsonl", "--device", "cpu"], monkeypatch, capsys)
    assert code in (0, None), err
    assert [json.loads(line)["item_id"] for line in out.splitlines()] == [ids[-1]]  # not labelled: suggested
    warnings = [line for line in err.splitlines() if line.startswith("warning")]
    assert len(warnings) == 1 and warnings[0].startswith(f"warning: {labels}:{len(ids)}: "), err
    assert ids[-1] in warnings[0]


def test_suggest_out_to_a_full_disk_names_the_file_and_leaves_nothing(full_disk: Path, suggest_store,
                                                                      tmp_path: Path, monkeypatch, capsys) -> None:
    from conftest import cli

    db, ids = suggest_store
    labels = tmp_path / "all.jsonl"
    labels.write_text("".join(json.dumps({"item_id": i}) + "\n" for i in ids), encoding="utf-8")
    target = full_disk / "suggestions.txt"
    code, _out, err = cli(["suggest", "--db", db, "--labels", labels, "--format", "table", "-o", target,
                           "--model", tmp_path / "no_model_needed"], monkeypatch, capsys)
    assert_disk_full_error(code, err, target)
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler", "old.jsonl"]
