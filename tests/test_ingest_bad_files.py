"""A bad file among good ones is skipped with nothing written, the others are ingested, and the CLI exits
non-zero with a one-line message naming the file (and line) — never a traceback."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pipeline.cli.main import app
from pipeline.store.db import Store

GOOD_TEXT = """Council pilots a duty rota for newly qualified staff

A short standfirst under the headline

The first body paragraph of a project-written test article.

2 Responses to Council pilots a duty rota for newly qualified staff

  1. Reader One June 28, 2016 at 1:00 pm #

    A first comment.

    • Reader Two June 28, 2016 at 2:15 pm #

      A reply to it.
"""

TEXT_NO_BODY = """Headline of a broken dump

Body paragraph.

2 Responses to Headline of a broken dump

  1. Has Nothing To Say June 28, 2016 at 1:00 pm #

  2. Says Something June 28, 2016 at 1:05 pm #

    The second comment has a body.
"""

TEXT_BAD_DATE = """Headline of a dump with an impossible date

Body paragraph.

1 Response to Headline of a dump with an impossible date

  1. Time Traveller June 31, 2016 at 1:00 pm #

    There is no 31 June.
"""

HTML_PAGE = """<!-- project-written test page -->
<html><head><title>Broken comments page | Test Site</title></head>
<body><article><div class="entry-content"><p>Body paragraph of the page.</p></div></article>
<ol class="commentlist">
<li class="comment" id="comment-1">
<div class="comment-author"><cite class="fn">First</cite></div>
<div class="comment-meta"><a href="#comment-1">June 28, 2016 at 1:00 pm</a></div>
<div class="comment-body"><p>Fine comment.</p></div>
</li>
<li class="comment" id="comment-2">
{second}
</li>
</ol></body></html>
"""
HTML_BAD_DATE = HTML_PAGE.format(second='<div class="comment-author"><cite class="fn">Second</cite></div>\n'
                                        '<time datetime="last Tuesday">last Tuesday</time>\n'
                                        '<div class="comment-content"><p>Text.</p></div>')
HTML_NO_BODY = HTML_PAGE.format(second='<div class="comment-author"><cite class="fn">Second</cite></div>\n'
                                       '<div class="comment-meta">June 28, 2016 at 1:10 pm</div>\n'
                                       '<div class="comment-content"><p> </p></div>')
JSONL_BAD_LINE = ('{"thread_id": "t1", "text": "fine"}\n'
                  '{"thread_id": "t1", "text": "broken", }\n')

# name -> (bytes, expected line or None, words the message must contain)
BAD_FILES = {
    "binary.txt": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)), None, "binary"),
    "empty.txt": (b" \n\n\t\n", None, "empty"),
    "undecodable.txt": (b"Headline\n\nBody " + b"\x81\x8d\x90\x9d\xff", None, "cannot decode"),
    "notes.xyz": (b"Some notes in a format nobody declared.\n", None, "unknown format"),
    "slides.pdf": (b"%PDF-1.4 not really a pdf\n", None, "unknown format"),
    "no_body.txt": (TEXT_NO_BODY.encode(), 7, "has no body"),
    "bad_date.txt": (TEXT_BAD_DATE.encode(), 7, "malformed date"),
    "bad_date.html": (HTML_BAD_DATE.encode(), 10, "malformed comment date"),
    "no_body.html": (HTML_NO_BODY.encode(), 10, "has no body"),
    "bad_line.jsonl": (JSONL_BAD_LINE.encode(), 2, "invalid JSON"),
}


@pytest.fixture
def good_folder(tmp_path: Path, fixtures_dir: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.txt").write_text(GOOD_TEXT, encoding="utf-8")
    shutil.copy(fixtures_dir / "html" / "cc_caseload_cap.html", folder / "page.html")
    shutil.copy(fixtures_dir / "jsonl" / "comments.jsonl", folder / "comments.jsonl")
    return folder


GOOD_COUNTS = {"threads": 4, "paragraph": 10, "comment": 7, "reply": 4}


def _ingest(db: Path, *paths: Path):
    return CliRunner().invoke(app, ["ingest", "--db", str(db), *map(str, paths)])


def _no_traceback(result) -> None:
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_is_skipped_and_the_good_files_are_ingested(name, good_folder, tmp_path):
    data, line, words = BAD_FILES[name]
    bad = good_folder / name
    bad.write_bytes(data)
    db = tmp_path / "store.sqlite"

    result = _ingest(db, good_folder)

    assert result.exit_code == 1, result.output
    _no_traceback(result)
    where = f"{bad}:{line}:" if line else f"{bad}:"
    error_lines = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
    assert len(error_lines) == 1, result.output
    assert where in error_lines[0] and words in error_lines[0] and "file skipped" in error_lines[0]
    with Store(db) as store:
        assert store.counts() == GOOD_COUNTS
        sources = {row[0] for row in store.conn.execute("SELECT path FROM sources")}
        assert str(bad) not in sources and len(sources) == 3
        assert not store.conn.execute("SELECT 1 FROM threads WHERE source = ?", (str(bad),)).fetchall()


def test_all_good_files_exit_zero(good_folder, tmp_path):
    result = _ingest(tmp_path / "store.sqlite", good_folder)
    assert result.exit_code == 0, result.output
    assert "error:" not in result.output


def test_cp1252_file_is_decoded_with_a_warning_and_ingested(good_folder, tmp_path):
    text = GOOD_TEXT.replace("A first comment.", "A caf\u00e9 comment with \u201cquotes\u201d \u2013 and a dash.")
    path = good_folder / "windows.txt"
    path.write_bytes(text.replace("Council pilots", "Windows pilots").encode("cp1252"))
    db = tmp_path / "store.sqlite"

    result = _ingest(db, good_folder)

    assert result.exit_code == 0, result.output
    assert f"warning: {path}: not valid UTF-8, decoded as cp1252" in result.output
    with Store(db) as store:
        assert store.counts()["threads"] == GOOD_COUNTS["threads"] + 1
        texts = [i["text"] for i in store.items(kinds=["comment"])]
        assert "A café comment with “quotes” – and a dash." in texts
        row = store.conn.execute("SELECT encoding FROM sources WHERE path = ?", (str(path),)).fetchone()
        assert row[0] == "cp1252"


def test_missing_file_is_reported_and_the_rest_ingested(good_folder, tmp_path):
    missing = tmp_path / "nowhere.txt"
    result = _ingest(tmp_path / "store.sqlite", good_folder, missing)
    assert result.exit_code == 1
    _no_traceback(result)
    assert f"error: {missing}: file not found" in result.output


def test_installed_command_exits_non_zero_with_file_and_line_and_no_traceback(good_folder, tmp_path):
    exe = Path(sys.executable).with_name("threadstance")
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "pipeline.cli.main"]
    bad = good_folder / "bad_date.txt"
    bad.write_text(TEXT_BAD_DATE, encoding="utf-8")
    proc = subprocess.run([*command, "ingest", "--db", str(tmp_path / "store.sqlite"), str(good_folder)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert f"{bad}:7: malformed date in comment header" in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "Ingest summary" in proc.stdout
