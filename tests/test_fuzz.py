"""Fuzz suite (issue 15): random bytes, JSON, HTML and text dumps never give a traceback and never write
part of a failed file. Kept small (max_examples modest) so the whole suite runs in well under a minute."""
from __future__ import annotations

import json
import sqlite3
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.ingest.reader import decode_bytes
from pipeline.store.db import Store
from pipeline.store.load import ingest_file

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                      HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=10)
record = st.fixed_dictionaries({}, optional={
    "thread_id": st.one_of(st.text(max_size=10), st.integers()), "text": st.one_of(st.text(max_size=40), json_values),
    "url": st.text(max_size=30), "thread_title": st.text(max_size=20), "posted_at": st.text(max_size=25),
    "comment_id": st.one_of(st.text(max_size=4), st.integers(0, 5)), "parent": st.one_of(st.text(max_size=4),
                                                                                         st.integers(0, 5)),
    "author": json_values})
tags = st.sampled_from(["<p>", "</p>", "<div class='entry-content'>", "</div>", "<ol class='commentlist'>",
                        "<li class='comment' id='comment-1'>", "</li>", "<cite class='fn'>", "</cite>",
                        "<time datetime='2016-06-28T13:00'>", "</time>", "<article>", "</article>", "<title>",
                        "</title>", "<html>", "<body>", "<!--", "-->", "<script>", "&amp;", "&#0;", "<"])
html_doc = st.lists(st.one_of(tags, st.text(max_size=15)), max_size=40).map("".join)
dump_lines = st.sampled_from(["Headline", "", "A standfirst", "Body paragraph.", "2 Responses to Headline",
                              "  1. Reader One June 28, 2016 at 1:00 pm #", "    A comment.",
                              "    • Reader Two June 31, 2016 at 2:15 pm #", "      A reply.", "Reply",
                              "  2. X February 30, 2020 at 25:61 pm #"])
text_dump = st.lists(st.one_of(dump_lines, st.text(max_size=30)), max_size=25).map("\n".join)


def _snapshot(path) -> tuple:
    conn = sqlite3.connect(path)
    try:
        return tuple(conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                     for t in ("threads", "items", "item_revisions", "sources"))
    finally:
        conn.close()


def _check(tmp_path, name: str, data: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    db = tmp_path / "fuzz.sqlite"
    with Store(db) as store:
        before = _snapshot(db)
        result = ingest_file(store, path)  # must never raise
    after = _snapshot(db)
    if result.ok:
        assert result.error is None
    else:
        assert result.error and "\n" not in result.error.strip() and "Traceback" not in result.error
        assert after == before, "a failed file wrote part of itself"


@FUZZ
@given(data=st.binary(max_size=400), ext=st.sampled_from([".txt", ".html", ".jsonl", ".xyz", ""]))
def test_random_bytes_never_raise_and_never_half_write(tmp_path, data, ext):
    _check(tmp_path, "f" + ext, data)


@FUZZ
@given(lines=st.lists(st.one_of(record.map(json.dumps), json_values.map(json.dumps), st.text(max_size=20)),
                      max_size=6))
def test_random_json_lines_never_raise(tmp_path, lines):
    _check(tmp_path, "f.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass"))


@FUZZ
@given(doc=html_doc)
def test_random_html_never_raises(tmp_path, doc):
    _check(tmp_path, "f.html", doc.encode("utf-8", "surrogatepass"))


@FUZZ
@given(doc=text_dump, cut=st.integers(0, 3))
def test_random_text_dumps_and_cut_utf8_never_raise(tmp_path, doc, cut):
    data = doc.encode("utf-8", "surrogatepass")
    _check(tmp_path, "f.txt", data[: len(data) - cut] if cut else data)


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=300))
def test_decoding_never_raises_anything_but_a_parse_error(data):
    from pipeline.errors import ParseError

    try:
        text, encoding, warnings = decode_bytes(data, "f")
    except ParseError:
        return
    assert isinstance(text, str) and encoding


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=st.lists(st.one_of(st.sampled_from(["ingest", "items", "show", "export", "runs", "predict", "-",
                                                "--format", "csv", "jsonl", "bogus", "--db", "--limit", "-1",
                                                "labels", "check", "--set", "a=b", "[/]", "--help"]),
                               st.text(min_size=1, max_size=8).filter(lambda s: "\x00" not in s)), max_size=5))
def test_random_cli_arguments_give_a_documented_exit_code_and_no_traceback(args, tmp_path, monkeypatch, capsys):
    import io

    from pipeline.cli import common
    from pipeline.cli.main import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("THREADSTANCE_DB", str(tmp_path / "cli.sqlite"))
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    args = [a for a in args if a not in ("train", "run", "evaluate", "reclassify", "annotate")]
    for con in (common.console, common.err_console):
        monkeypatch.setattr(con, "_width", 200)
    monkeypatch.setattr(sys, "argv", ["threadstance", *args])
    with pytest.raises(SystemExit) as exc:
        main()
    out = capsys.readouterr()
    assert exc.value.code in (0, 1, 2, None), (args, out.err)
    assert "Traceback" not in out.err
