"""A store for the dashboard tests: the seed threads plus one hostile thread, classified by the smoke model
(real ingest and reclassify runs), with one comment edited and classified again."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import yaml
from typer.testing import CliRunner

from pipeline.cli.main import app

XSS_THREAD = "xss-thread"
XSS_TITLE = "<script>window.__xss = 1</script> Ofsted <b>bold</b>"
XSS_AUTHOR = "<img src=x onerror=\"window.__xss = 2\">"
XSS_TEXTS = ["<script>window.__xss = 3</script> Managers never listen to frontline staff about caseloads.",
             "<img src=x onerror=\"window.__xss = 4\"> The funding cuts hit children's services hardest.",
             "Ofsted inspections & \"outstanding\" ratings mean little to families; <iframe src=//evil>."]
EDITED_TEXT = "Edited after posting: the agency staff budget was cut again this year, and managers blamed us."


def invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output


def _xss_jsonl(path: Path, last_text: str) -> None:
    rows = [{"thread_id": XSS_THREAD, "thread_title": XSS_TITLE, "author": XSS_AUTHOR, "text": t,
             "posted_at": f"2016-03-0{i + 1}T10:00:00", "comment_id": str(i)} for i, t in enumerate(XSS_TEXTS)]
    rows.append({"thread_id": XSS_THREAD, "thread_title": XSS_TITLE, "author": "Reply <b>person</b>",
                 "text": last_text, "posted_at": "2016-03-05T10:00:00", "comment_id": "9", "parent": "0"})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


def build_store(root: Path, seeds_dir: Path, model: Path, store: str | None = None) -> str:
    """Seeds + the hostile thread ingested and classified; its reply edited, re-ingested and reclassified.
    ``store``: where (default ``root/store.sqlite``; a PostgreSQL URL works the same)."""
    inbox = root / "inbox"
    inbox.mkdir(parents=True)
    for f in sorted(seeds_dir.glob("*.txt")):
        shutil.copy(f, inbox / f.name)
    _xss_jsonl(inbox / "xss.jsonl", "I agree with the first comment about managers.")
    cfg = {"inbox": str(inbox), "processed": str(root / "processed"), "quarantine": str(root / "q"),
           "store": store or str(root / "store.sqlite"), "model": str(model), "export": str(root / "export"),
           "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"), "device": "cpu"}
    (root / "schedule.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    invoke("reclassify", str(root / "schedule.yaml"))
    _xss_jsonl(inbox / "xss.jsonl", EDITED_TEXT)  # the reply is edited: revision 2, classified again
    invoke("reclassify", str(root / "schedule.yaml"))
    return cfg["store"]


def model_with_oof_table(src: Path, dest: Path, n: int = 240, seed: int = 3) -> Path:
    """A copy of ``src`` with a synthetic out-of-fold table written through the model folder, so trends
    are corrected for classifier error (same model_version)."""
    from pipeline.modeling.folder import ModelFolder

    shutil.copytree(src, dest)
    folder = ModelFolder(dest)
    schema = folder.read_schema()
    rng = np.random.default_rng(seed)

    def task(classes: list[str]) -> dict:
        true = rng.integers(0, len(classes), n)
        logits = rng.normal(0, 1, (n, len(classes)))
        logits[np.arange(n), true] += 2.0
        p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        return {"classes": classes, "true": true.tolist(), "probs": np.round(p, 5).tolist()}

    folder.write_oof_table({"format": 1, "source": "synthetic", "recipe": "test", "dataset": "domain_real", "n": n,
                            "ids": [f"x{i}" for i in range(n)], "groups": rng.integers(0, 40, n).tolist(),
                            "sentiment": task(list(schema.sentiment_classes)),
                            "stance": {t: task(list(schema.stance_classes)) for t in schema.target_names}})
    return dest


def cached_store(base: Path, seeds_dir: Path, smoke_model: Path) -> tuple[Path, Path]:
    """(store, model with an out-of-fold table), built once per test session under ``base``."""
    root = base / "web"
    store, model = root / "store.sqlite", root / "model_oof"
    if not (root / "done").exists():
        if root.exists():
            shutil.rmtree(root)
        build_store(root, seeds_dir, smoke_model)
        model_with_oof_table(smoke_model, model)
        (root / "done").write_text("ok", encoding="utf-8")
    return store, model
