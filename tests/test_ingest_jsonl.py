"""JSONL of already-split comments: threads grouped, replies linked, times in Europe/London, errors by line."""
from __future__ import annotations

import json

import pytest

from pipeline.errors import ParseError
from pipeline.ingest.jsonl import parse_jsonl
from pipeline.store.db import Store
from pipeline.store.load import ingest_file

THREAD = "example-news.org/2023/05/09/council-freezes-agency-pay-rates"


@pytest.fixture(scope="module")
def threads(fixtures_dir):
    path = fixtures_dir / "jsonl" / "comments.jsonl"
    return parse_jsonl(path.read_text(encoding="utf-8"), str(path))


def test_records_group_into_threads_by_url_and_by_title(threads):
    assert [t.thread_id for t in threads] == [THREAD, "2023-01-20-reader-letters-supervision"]
    assert threads[0].url == f"https://www.{THREAD}/" and threads[0].title == "Council freezes agency pay rates"
    assert threads[1].url is None and threads[1].title == "Reader letters: supervision"


def test_reply_points_at_its_parent_and_ids_follow_the_scheme(threads):
    rows = [(i.item_id, i.kind, i.depth, i.parent_id, i.author, i.source_line) for i in threads[0].items]
    assert rows == [
        (f"{THREAD}/c1", "comment", 0, None, "Sam K", 1),
        (f"{THREAD}/c1.r1", "reply", 1, f"{THREAD}/c1", "Regional manager", 2),
        (f"{THREAD}/c2", "comment", 0, None, "Quiet reader", 3),
    ]
    assert threads[0].items[1].text == "Not if every council in the region signs the same memorandum.\n\nThat is the whole idea."


def test_times_are_europe_london_whatever_offset_was_given(threads):
    assert [i.posted_at for i in threads[0].items] == [
        "2023-05-09T08:15:00+01:00",  # naive: read as London (BST)
        "2023-05-09T11:40:00+01:00",  # explicit offset
        "2023-05-10T08:05:00+01:00",  # Z converted to London
    ]
    assert threads[1].items[0].posted_at == "2023-01-20T19:00:00+00:00"  # GMT in winter


def test_jsonl_fixture_ingests_with_its_reply(fixtures_dir, tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        result = ingest_file(store, fixtures_dir / "jsonl" / "comments.jsonl")
        assert result.ok and result.fmt == "jsonl"
        assert store.counts() == {"threads": 2, "paragraph": 0, "comment": 3, "reply": 1}
        reply = store.items(kinds=["reply"])[0]
        assert reply["parent_id"] == f"{THREAD}/c1" and reply["depth"] == 1


def _line(**rec) -> str:
    return json.dumps(rec)


@pytest.mark.parametrize(("lines", "line", "message"), [
    ([_line(thread_id="t", text="ok"), "{not json"], 2, "invalid JSON"),
    ([_line(thread_id="t", text="ok"), "[1, 2]"], 2, "JSON object"),
    ([_line(thread_id="t", text="ok", colour="red")], 1, "unknown field"),
    ([_line(thread_id="t", text="   ")], 1, "missing or empty 'text'"),
    ([_line(text="orphan")], 1, "needs one of"),
    ([_line(thread_id="t", text="a", parent="x")], 1, "is not the comment_id of an earlier comment"),
    ([_line(thread_id="t", text="a", comment_id="x"), _line(thread_id="t", text="b", comment_id="x")], 2,
     "duplicate comment_id"),
    ([_line(thread_id="t", text="a", posted_at="28/06/2016 13:00")], 1, "malformed posted_at"),
    ([_line(thread_id="t", text="a", author=["list"])], 1, "'author' must be a string"),
    ([_line(url=5, text="a")], 1, "'url' must be a string"),
    ([_line(thread_id="t", text="a\ud800")], 1, "unpaired surrogate"),
])
def test_bad_records_are_parse_errors_naming_the_line(lines, line, message):
    with pytest.raises(ParseError) as err:
        parse_jsonl("\n".join(lines) + "\n", "c.jsonl")
    assert err.value.line == line and message in err.value.message


def test_empty_jsonl_is_a_parse_error():
    with pytest.raises(ParseError, match="no JSON records"):
        parse_jsonl("\n \n", "c.jsonl")


def test_integer_ids_are_read_as_strings():
    threads = parse_jsonl(_line(thread_id=7, comment_id=1, text="a") + "\n" + _line(thread_id=7, parent=1, text="b"),
                          "c.jsonl")
    assert [i.item_id for i in threads[0].items] == ["7/c1", "7/c1.r1"]
