"""Reliability probes, round 3 (issue 24): ingest and the reclassify inbox.

One path given as a string, deeply nested HTML, non-UTF-8 file names, symbolic links, a missing inbox and
``predict --db`` with a missing model: documented exit codes, one clear line, no traceback, nothing half
written.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest
import yaml
from conftest import cli  # the console entry point as a test helper

DUMP = """Care workers say no to the Ofsted plan

A short standfirst

The first body paragraph about the plan.

1 Response to Care workers say no to the Ofsted plan

  1. Reader One June 28, 2016 at 1:00 pm #

    A first comment about the plan
"""
SECRET = DUMP.replace("Care workers say no", "Secret payroll figures")


def _threads(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT title FROM threads ORDER BY title")]


def _sources(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("SELECT path FROM sources ORDER BY path")]


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def _schedule(root: Path, model: Path, **changes: str) -> Path:
    cfg = {"inbox": str(root / "inbox"), "processed": str(root / "processed"),
           "quarantine": str(root / "quarantine"), "store": str(root / "store.sqlite"), "model": str(model),
           "export": str(root / "export"), "lock_file": str(root / "run.lock"), "log_file": str(root / "run.log"),
           "device": "cpu", **changes}
    path = root / "schedule.yaml"
    path.write_text(yaml.safe_dump(cfg), encoding="utf-8")
    return path


def _runs(db: Path) -> list[tuple[str, list[str]]]:
    with sqlite3.connect(db) as conn:
        return [(s, json.loads(e or "[]")) for s, e in conn.execute("SELECT status, errors FROM runs ORDER BY run_id")]


# ---- 1: api.ingest with one path ---------------------------------------------------------------------
@pytest.mark.parametrize("as_path", [False, True])
def test_api_ingest_takes_one_str_or_path_as_one_file(tmp_path, monkeypatch, as_path):
    from pipeline import api

    (tmp_path / "thread.txt").write_text(DUMP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # "." among the characters of "thread.txt" would ingest this folder
    records = api.ingest(Path("thread.txt") if as_path else "thread.txt", db=tmp_path / "s.sqlite")
    assert [(r["path"], r["ok"]) for r in records] == [("thread.txt", True)]
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


@pytest.mark.parametrize("paths", [42, None, [42], {"a": 1}, [b"x", None]])
def test_api_ingest_refuses_paths_that_are_not_paths_with_a_clear_type_error(tmp_path, paths):
    from pipeline import api

    with pytest.raises(TypeError, match=r"paths must be a file or folder path \(str or Path\)"):
        api.ingest(paths, db=tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()


def test_api_ingest_refuses_an_empty_path_instead_of_reading_the_working_directory(tmp_path, monkeypatch):
    from pipeline import api
    from pipeline.errors import UserError

    (tmp_path / "thread.txt").write_text(DUMP, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="empty path"):
        api.ingest(["thread.txt", ""], db=tmp_path / "s.sqlite")
    assert not (tmp_path / "s.sqlite").exists()


# ---- 2: deeply nested HTML ---------------------------------------------------------------------------
def _nested_page(depth: int) -> str:
    return ("<html><head><title>Deep</title></head><body><article><div class='entry-content'>"
            + "<div>" * depth + "<p>x</p>" + "</div>" * depth + "</div></article></body></html>")


def test_html_nested_deeper_than_the_limit_is_refused_before_the_parse(tmp_path):
    from pipeline.ingest.html import MAX_HTML_DEPTH
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_file

    deep = tmp_path / "deep.html"
    deep.write_text(_nested_page(60_000), encoding="utf-8")  # the old parse took ~8 s (grows with depth²)
    started = time.perf_counter()
    with Store(tmp_path / "s.sqlite") as store:
        result = ingest_file(store, deep)
    assert time.perf_counter() - started < 3
    assert not result.ok
    assert f"nested 60004 deep, the limit is {MAX_HTML_DEPTH}" in result.error and str(deep) in result.error
    assert "\n" not in result.error


def test_html_limits_count_real_nesting_not_stray_end_tags_or_void_elements():
    from pipeline.ingest.html import MAX_HTML_DEPTH, html_shape

    assert html_shape("<div></x>" * (MAX_HTML_DEPTH + 5)).depth == MAX_HTML_DEPTH + 5  # stray ends: no bypass
    assert html_shape("<div/>" * 600).depth == 600  # the parser ignores the slash outside SVG
    assert html_shape("<svg>" + "<path d='M0'/>" * 600 + "</svg>").depth == 1
    page = "<ul>" + "<li><p>a<br><img src=x>" * 5000 + "</ul><!-- <div><div> --><script>'<div>'</script>"
    assert html_shape(page).depth == 1 and html_shape(page).elements == 1 + 4 * 5000 + 1


def test_html_larger_than_the_limits_is_refused_with_sizes_named(tmp_path, monkeypatch):
    from pipeline.ingest import html
    from pipeline.store.db import Store
    from pipeline.store.load import ingest_file

    page = tmp_path / "big.html"
    page.write_text(_nested_page(3), encoding="utf-8")
    monkeypatch.setattr(html, "MAX_HTML_CHARS", 100)
    with Store(tmp_path / "s.sqlite") as store:
        too_big = ingest_file(store, page)
        monkeypatch.setattr(html, "MAX_HTML_CHARS", 10_000_000)
        monkeypatch.setattr(html, "MAX_HTML_ELEMENTS", 5)
        too_many = ingest_file(store, page)
    assert not too_big.ok and "the limit is 100 characters" in too_big.error
    assert not too_many.ok and "elements, the limit is 5" in too_many.error


def test_ingest_cli_skips_a_deeply_nested_page_with_one_line_and_exit_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "good.txt").write_text(DUMP, encoding="utf-8")
    (tmp_path / "deep.html").write_text(_nested_page(30_000), encoding="utf-8")
    code, _, err = cli(["ingest", tmp_path / "deep.html", tmp_path / "good.txt", "--db", tmp_path / "s.sqlite"],
                       monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "deep.html" in line and "nested 30004 deep" in line
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


def _reopened_formatting_page(n: int) -> str:
    """Unclosed ``<b>`` elements with distinct attributes: the parser reopens every earlier one inside each later
    ``<div>`` (n² elements); nothing in it nests deeply as written, so the limits checked first pass it."""
    return ("<html><head><title>Bold</title></head><body><article><div class='entry-content'>"
            + "".join(f"<div><b id=b{i}>x</div>" for i in range(n)) + "</div></article></body></html>")


def test_a_page_the_parser_would_blow_up_on_is_refused_within_the_memory_bound_and_the_rest_ingested(
        tmp_path, monkeypatch, capsys):
    from pipeline.ingest.bounded import memory_limit
    from pipeline.ingest.html import html_shape

    page = _reopened_formatting_page(20_000)  # 490 KB; parsed in this process it asked for 19 GB and was killed
    assert html_shape(page).depth < 10
    (tmp_path / "bold.html").write_text(page, encoding="utf-8")
    (tmp_path / "good.txt").write_text(DUMP, encoding="utf-8")
    started = time.perf_counter()
    code, _, err = cli(["ingest", tmp_path / "bold.html", tmp_path / "good.txt", "--db", tmp_path / "s.sqlite"],
                       monkeypatch, capsys)
    assert time.perf_counter() - started < 30
    assert code == 1 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "bold.html" in line and f"{memory_limit(len(page)) / 2**30:.1f} GiB" in line
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


def test_a_parse_over_the_time_bound_is_stopped_and_the_next_parse_runs_in_a_new_worker():
    from pipeline.errors import ParseError
    from pipeline.ingest.bounded import run_bounded

    started = time.perf_counter()
    with pytest.raises(ParseError, match=r"slow\.html: HTML page took more than 0\.5 s to parse"):
        run_bounded(time.sleep, (30,), "slow.html", "HTML page", 0, seconds=0.5)
    assert time.perf_counter() - started < 10
    assert run_bounded(divmod, (7, 2), "next.html", "HTML page", 0) == (3, 1)


def test_a_parse_interrupted_in_the_caller_never_hands_its_result_to_the_next_parse():
    import signal

    from pipeline.ingest.bounded import run_bounded

    def interrupt(signum, frame):  # noqa: ANN001 - what Ctrl-C or a notebook's "interrupt kernel" does
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        with pytest.raises(KeyboardInterrupt):
            run_bounded(time.sleep, (1.5,), "first.html", "HTML page", 0)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    time.sleep(1.5)  # the first parse would have finished and replied by now
    assert run_bounded(divmod, (7, 2), "second.html", "HTML page", 0) == (3, 1)


def test_a_parse_over_the_memory_bound_is_a_parse_error_naming_the_file():
    from pipeline.errors import ParseError
    from pipeline.ingest.bounded import run_bounded

    with pytest.raises(ParseError, match=r"huge\.html: HTML page needs more than 1\.0 GiB of memory"):
        run_bounded(bytearray, (4 << 30,), "huge.html", "HTML page", 1000)
    assert run_bounded(len, ("abc",), "next.html", "HTML page", 3) == 3


# ---- 3: file names that are not UTF-8 ----------------------------------------------------------------
LATIN1_NAME = os.fsdecode(b"caf\xe9.txt")  # the name as Python sees it on Linux: "caf\udce9.txt"


def test_ingest_of_a_latin1_named_file_ingests_it_and_names_it_with_escapes(tmp_path, monkeypatch, capsys):
    (tmp_path / LATIN1_NAME).write_text(DUMP, encoding="utf-8")
    code, out, err = cli(["ingest", tmp_path, "--db", tmp_path / "s.sqlite"], monkeypatch, capsys)
    assert code == 0, err
    assert _sources(tmp_path / "s.sqlite") == [f"{tmp_path}/caf\\xe9.txt"]
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


def test_a_bad_latin1_named_file_is_reported_with_an_escaped_name(tmp_path, monkeypatch, capsys):
    (tmp_path / LATIN1_NAME).write_bytes(b"\x00\x01 binary")
    code, _, err = cli(["ingest", tmp_path / LATIN1_NAME, "--db", tmp_path / "s.sqlite"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    (line,) = _error_lines(err)
    assert "caf\\xe9.txt: looks like a binary file" in line


def test_reclassify_ingests_a_non_utf8_named_inbox_file_and_the_next_run_is_clean(tmp_path, smoke_model,
                                                                                 monkeypatch, capsys):
    config = _schedule(tmp_path, smoke_model)
    (tmp_path / "inbox").mkdir()
    (tmp_path / "inbox" / LATIN1_NAME).write_text(DUMP, encoding="utf-8")
    code, out, err = cli(["reclassify", config, "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "caf\\xe9.txt" in out
    code, out, err = cli(["reclassify", config], monkeypatch, capsys)
    assert code == 0 and "Traceback" not in err, err
    assert "caf\\xe9.txt" in out
    assert not list((tmp_path / "inbox").iterdir())
    assert (tmp_path / "processed" / LATIN1_NAME).is_file()
    assert "caf\\xe9.txt" in (tmp_path / "run.log").read_text(encoding="utf-8")
    code, _, err = cli(["reclassify", config, "--quiet"], monkeypatch, capsys)
    assert code == 0 and err == ""
    assert [status for status, _ in _runs(tmp_path / "store.sqlite")] == ["ok", "ok"]


# ---- 4: symbolic links -------------------------------------------------------------------------------
def test_reclassify_quarantines_a_symlink_in_the_inbox_without_reading_its_target(tmp_path, smoke_model,
                                                                                 monkeypatch, capsys):
    config = _schedule(tmp_path, smoke_model)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.txt").write_text(DUMP, encoding="utf-8")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    (inbox / "passwd.txt").symlink_to(secret)
    (inbox / "gone.txt").symlink_to(tmp_path / "nowhere.txt")
    code, out, err = cli(["reclassify", config, "--dry-run"], monkeypatch, capsys)
    assert code == 0 and "would quarantine" in out and "symbolic link" in out
    code, out, err = cli(["reclassify", config], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    assert _threads(tmp_path / "store.sqlite") == ["Care workers say no to the Ofsted plan"]
    for name in ("passwd.txt", "gone.txt"):
        assert (tmp_path / "quarantine" / name).is_symlink()  # the link itself, never its target
        assert "symbolic link" in (tmp_path / "quarantine" / f"{name}.error.txt").read_text(encoding="utf-8")
        assert f"quarantined: {tmp_path / 'quarantine' / name}" in err
    assert secret.read_text(encoding="utf-8") == SECRET
    (status, errors), = _runs(tmp_path / "store.sqlite")
    assert status == "partial" and len(errors) == 2
    code, _, _ = cli(["reclassify", config, "--quiet"], monkeypatch, capsys)
    assert code == 0


def test_reclassify_never_reads_through_a_file_swapped_for_a_link_after_the_inbox_scan(tmp_path, smoke_model,
                                                                                      monkeypatch, capsys):
    import pipeline.jobs.schedule as schedule

    config = _schedule(tmp_path, smoke_model)
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "good.txt").write_text(DUMP, encoding="utf-8")
    (inbox / "swapped.txt").write_text(DUMP.replace("Care workers say no", "Harmless"), encoding="utf-8")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text(SECRET, encoding="utf-8")
    scan = schedule.scan_inbox

    def scan_then_swap(cfg):  # noqa: ANN001, ANN202 - the race: a regular file at the scan, a link at the read
        found = scan(cfg)
        if (inbox / "swapped.txt").is_file() and not (inbox / "swapped.txt").is_symlink():
            (inbox / "swapped.txt").unlink()
            (inbox / "swapped.txt").symlink_to(secret)
        return found

    monkeypatch.setattr(schedule, "scan_inbox", scan_then_swap)
    code, out, err = cli(["reclassify", config], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    assert _threads(tmp_path / "store.sqlite") == ["Care workers say no to the Ofsted plan"]
    assert (tmp_path / "quarantine" / "swapped.txt").is_symlink()
    assert "symbolic link" in (tmp_path / "quarantine" / "swapped.txt.error.txt").read_text(encoding="utf-8")
    assert secret.read_text(encoding="utf-8") == SECRET


def test_reclassify_never_reads_or_moves_through_an_inbox_folder_swapped_for_a_link(tmp_path, smoke_model,
                                                                                   monkeypatch, capsys):
    import pipeline.jobs.schedule as schedule

    config = _schedule(tmp_path, smoke_model)
    inbox = tmp_path / "inbox"
    (inbox / "sub").mkdir(parents=True)
    (inbox / "good.txt").write_text(DUMP, encoding="utf-8")
    (inbox / "sub" / "x.txt").write_text(DUMP.replace("Care workers say no", "Harmless"), encoding="utf-8")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.txt").write_text(SECRET, encoding="utf-8")
    scan = schedule.scan_inbox

    def scan_then_swap(cfg):  # noqa: ANN001, ANN202 - the race: a folder at the scan, a link at the read
        found = scan(cfg)
        if not (inbox / "sub").is_symlink():
            (inbox / "sub" / "x.txt").unlink()
            (inbox / "sub").rmdir()
            (inbox / "sub").symlink_to(outside)
        return found

    monkeypatch.setattr(schedule, "scan_inbox", scan_then_swap)
    code, out, err = cli(["reclassify", config], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    assert _threads(tmp_path / "store.sqlite") == ["Care workers say no to the Ofsted plan"]
    assert (tmp_path / "quarantine" / "sub").is_symlink()  # the link itself was moved, not what it points to
    assert (outside / "x.txt").read_text(encoding="utf-8") == SECRET
    assert "symbolic link" in (tmp_path / "quarantine" / "sub.error.txt").read_text(encoding="utf-8")


def test_reading_below_a_folder_refuses_a_fifo_without_blocking(tmp_path):
    import os

    from pipeline.errors import ParseError
    from pipeline.ingest.reader import read_input

    os.mkfifo(tmp_path / "pipe.txt")
    with pytest.raises(ParseError, match="not a regular file"):
        read_input(tmp_path / "pipe.txt", nofollow_below=tmp_path)


def test_ingest_folder_refuses_links_out_of_it_and_reports_dangling_links(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "threads"
    folder.mkdir()
    (folder / "good.txt").write_text(DUMP, encoding="utf-8")
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    (folder / "out.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "outdir").symlink_to(tmp_path)
    (folder / "dangling.txt").symlink_to(folder / "missing.txt")
    (folder / "inside.txt").symlink_to("good.txt")  # stays in the folder: read like the file itself
    code, _, err = cli(["ingest", folder, "--db", tmp_path / "s.sqlite"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    lines = _error_lines(err)
    assert len(lines) == 3
    assert any("out.txt" in line and "leads out of" in line for line in lines)
    assert any("outdir" in line and "leads out of" in line for line in lines)
    assert any("dangling.txt" in line and "dangling symbolic link" in line for line in lines)
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


def test_predict_on_a_folder_names_the_links_it_refuses_and_still_classifies_the_rest(tmp_path, smoke_model,
                                                                                     monkeypatch, capsys):
    folder = tmp_path / "threads"
    folder.mkdir()
    (folder / "good.txt").write_text(DUMP, encoding="utf-8")
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    (folder / "out.txt").symlink_to(tmp_path / "secret.txt")
    (folder / "dangling.txt").symlink_to(folder / "missing.txt")
    code, out, err = cli(["predict", folder, "--model", smoke_model, "--format", "jsonl"], monkeypatch, capsys)
    assert code == 1 and "Traceback" not in err
    lines = _error_lines(err)
    assert any("out.txt" in line and "leads out of" in line for line in lines)
    assert any("dangling.txt" in line and "dangling symbolic link" in line for line in lines)
    records = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert records and "Secret payroll figures" not in out


def test_api_ingest_reports_refused_links_as_failed_files(tmp_path):
    from pipeline import api

    folder = tmp_path / "threads"
    folder.mkdir()
    (folder / "good.txt").write_text(DUMP, encoding="utf-8")
    (tmp_path / "secret.txt").write_text(SECRET, encoding="utf-8")
    (folder / "out.txt").symlink_to(tmp_path / "secret.txt")
    records = {Path(r["path"]).name: r for r in api.ingest(folder, db=tmp_path / "s.sqlite")}
    assert records["good.txt"]["ok"] and not records["out.txt"]["ok"]
    assert "leads out of" in records["out.txt"]["error"]
    assert _threads(tmp_path / "s.sqlite") == ["Care workers say no to the Ofsted plan"]


# ---- 5: a missing inbox ------------------------------------------------------------------------------
def test_reclassify_quiet_with_a_missing_inbox_is_a_one_line_error_and_a_failed_run(tmp_path, smoke_model,
                                                                                  monkeypatch, capsys):
    config = _schedule(tmp_path, smoke_model, inbox=str(tmp_path / "no_such_inbox"))
    code, out, err = cli(["reclassify", config, "--quiet"], monkeypatch, capsys)
    assert code == 2 and out == "" and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert line.startswith("error:") and "no_such_inbox" in line and "inbox" in line and "does not exist" in line
    (status, errors), = _runs(tmp_path / "store.sqlite")
    assert status == "failed" and "does not exist" in errors[0]
    code, out, err = cli(["reclassify", config, "--dry-run"], monkeypatch, capsys)
    assert code == 2 and "does not exist" in err


# ---- 6: predict --db with a missing or broken model ---------------------------------------------------
@pytest.mark.parametrize("broken", ["missing", "no_tokenizer"])
def test_predict_db_checks_the_model_before_writing_anything(tmp_path, smoke_model, monkeypatch, capsys, broken):
    import shutil

    model = tmp_path / "model"
    if broken == "no_tokenizer":
        shutil.copytree(smoke_model, model)
        (model / "tokenizer.json").unlink()
    (tmp_path / "good.txt").write_text(DUMP, encoding="utf-8")
    code, _, err = cli(["predict", tmp_path / "good.txt", "--model", model, "--db", tmp_path / "s.sqlite"],
                       monkeypatch, capsys)
    assert code == 2 and "Traceback" not in err
    (line,) = [line for line in err.splitlines() if line.strip()]
    assert str(model) in line and "schedule config" not in line
    if broken == "missing":
        assert "--model" in line
    assert not (tmp_path / "s.sqlite").exists() or _threads(tmp_path / "s.sqlite") == []
