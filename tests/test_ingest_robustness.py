"""Property-based robustness: whatever text arrives, the parsers either return well-formed threads or
raise ParseError (which the CLI reports as one line) — never another exception."""
from __future__ import annotations

import functools
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ParseError
from pipeline.ingest.html import parse_html
from pipeline.ingest.jsonl import parse_jsonl
from pipeline.ingest.model import Thread
from pipeline.ingest.textdump import parse_text
from pipeline.store.db import Store

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class _Rollback(Exception):
    pass


@functools.cache
def _scratch_store() -> Store:
    """One in-memory store for the module; every write is rolled back, so examples never see each other."""
    return Store(":memory:")


def _write_and_roll_back(threads: list[Thread]) -> None:
    """Write the threads in one transaction (must not raise), then roll it back."""
    store = _scratch_store()
    try:
        with store.transaction():
            for thread in threads:
                store.write_thread(thread)
            raise _Rollback
    except _Rollback:
        pass


def _check(thread: Thread) -> None:
    """Invariants every parsed thread satisfies, whatever the input."""
    assert thread.thread_id and thread.title
    ids = [item.item_id for item in thread.items]
    assert len(ids) == len(set(ids))
    assert [item.position for item in thread.items] == list(range(len(thread.items)))
    seen: dict[str, int] = {}
    for item in thread.items:
        assert item.thread_id == thread.thread_id and item.item_id.startswith(thread.thread_id + "/")
        assert item.text and item.text == item.text.strip()
        if item.kind == "reply":
            assert item.parent_id in seen and item.depth == seen[item.parent_id] + 1
        else:
            assert item.parent_id is None and item.depth == 0
        seen[item.item_id] = item.depth
        if item.posted_at is not None:
            assert len(item.posted_at) >= 25 and item.posted_at[10] == "T"


def _parse_or_parse_error(parse, text: str) -> list[Thread]:
    try:
        result = parse(text, "input")
    except ParseError as exc:
        assert exc.path == "input"
        return []
    threads = result if isinstance(result, list) else [result]
    for thread in threads:
        _check(thread)
    return threads


def mostly(good: list, bad: list, odds: int = 6) -> st.SearchStrategy:
    """One of ``good`` about ``odds`` times out of ``odds + 1``, else one of ``bad`` (broken input)."""
    return st.sampled_from(list(good) * odds + list(bad))


def one_in(draw, n: int) -> bool:
    """True about once in ``n`` draws (not the first value: Hypothesis favours that one)."""
    return draw(st.sampled_from(range(n))) == n - 1


# ---- text dumps -----------------------------------------------------------------------------------
NOISE_LINES = ["", "Posted on 30/07/2018 by", "Posted on 31/02/2018", "Picture: someone/fotolia",
               "More from Community Care", "Common features of services", "  • a bullet point",
               "A sentence of the article body.", "\u200b", "\u00a0\u00a0", "#", "Cookie Consent"]
any_line = st.one_of(st.sampled_from(NOISE_LINES), st.text(max_size=40))
RESPONSES_LINES = ["3 Responses to Ofsted issues warning", "One Response to X", "No Responses to X",
                   "99999999999 Responses to X", "2 comments on X"]
COMMENT_HEADERS = ["  1. LongtimeSW June 28, 2016 at 11:53 am #", "  2. Lyla June 28, 2016 at 1:00 pm #",
                   "  5. Abbrev Jun. 3, 2019 at 1.05 pm #", "  7. Winter December 1, 2019 at 12:00 am #"]
REPLY_HEADERS = ["    • SSR March 27, 2014 at 10:16 am #", "      • Deeper April 1, 2014 at 9.05 a.m. #",
                 "\t• Tabbed May 5, 2015 at 5:05 pm #", "        • Deepest October 27, 2019 at 1:30 am #"]
BAD_HEADERS = ["  3. Nobody February 30, 2016 at 1:00 pm #", "  4. Late Sept. 3, 2019 at 13:61 p.m. #",
               "  • Bullet without date #", "  12. X #", "  8. UK style 1 January 2020 at 10:00 #"]
BODIES = ["    The body of a comment.", "      A reply body.\n      with a second line", "    " + "long " * 250]


@st.composite
def dump_text(draw) -> str:
    """A dump with the seed layout (title, body, responses header, comments, replies), sometimes broken."""
    lines = [draw(mostly(["Ofsted issues warning over caseloads", "Caseloads ‘too high’"], ["", "\u200b"])), ""]
    for _ in range(draw(st.integers(0, 6))):
        lines += [draw(mostly(["A sentence of the article body.", "A sub-heading", "  • a bullet\n  • another"],
                              NOISE_LINES, 3)), ""]
    if not one_in(draw, 5):
        lines += [draw(st.sampled_from(RESPONSES_LINES)), ""]
        for n in range(draw(st.integers(0, 8))):
            header = draw(mostly(COMMENT_HEADERS if n == 0 else COMMENT_HEADERS + REPLY_HEADERS, BAD_HEADERS, 12))
            lines += [header, "", draw(mostly(BODIES, ["", "    \u200b", "    " + draw(st.text(max_size=20))], 12)), ""]
    if one_in(draw, 4):
        lines.insert(draw(st.integers(0, len(lines))), draw(any_line))
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\n\nCookie Consent"]))


@SETTINGS
@given(st.text())
def test_text_parser_on_arbitrary_text_raises_only_parse_error(text):
    _parse_or_parse_error(parse_text, text)


@SETTINGS
@given(dump_text(), st.sampled_from(["\n", "\r\n", "\r"]))
def test_text_parser_on_dump_like_text_gives_valid_threads_or_parse_error(text, newline):
    threads = _parse_or_parse_error(parse_text, text.replace("\n", newline))
    _write_and_roll_back(threads)


# ---- HTML -----------------------------------------------------------------------------------------
HTML_NOISE = [
    "<p>", "</p>", "</div>", "</li>", "</ol>", "<br>", "&nbsp;", "&amp;", "<!-- a comment -->", "<pre>  x  </pre>",
    "<h2>Sub-heading</h2>", "<ul><li>one</li><li>two<ul><li>nested</li></ul></li></ul>", "<p><strong>Bold</strong></p>",
    "<figure><img src=x><figcaption>Picture: x</figcaption></figure>", "<script>var x = '<p>';</script>",
    "<nav><p>Menu</p></nav>", "<table><tr><td>a</td><td>b</td></tr></table>", "<div class='share'>Share this</div>",
    "<p hidden>hidden text</p>", "<div style='display: none'>gone</div>", "<li class='pingback'>Pingback</li>",
    "<time datetime='garbage'>", "<ul class='children'>",
]
HEADS = ["<link rel='canonical' href='https://www.example.org/2020/01/02/a-story/'>",
         "<link rel=canonical href='http://[::1'>", "<meta property='og:url' content='not a url'>",
         "<meta property='article:published_time' content='2020-01-02T23:30:00Z'>", "<title></title>"]
AUTHORS = ["<cite class='fn'>Author</cite>", "<b class=fn>Bea</b>", "<div class='comment-author'>Ann says:</div>", ""]
METAS = ["<time datetime='2016-06-28T13:00:00+01:00'>x</time>", "<time>June 28, 2016 at 1:00 pm</time>",
         "<div class='comment-meta'><a href='#'>June 28, 2016 at 1:00 pm</a></div>",
         "<div class='commentmetadata'>3 March 2020 at 09:15</div>", ""]
BAD_METAS = ["<time datetime='garbage'>x</time>", "<time datetime='0001-01-01T00:00:00+14:00'>x</time>",
             "<div class='comment-metadata'>yesterday</div>"]
BODY_HTML = ["<div class='comment-content'><p>Comment text</p><p>Second</p></div>", "<p>Bare paragraph</p>",
             "<div class='comment-content'>Line one<br>line two</div>"]
BAD_BODY_HTML = ["<div class='comment-content'><p> </p></div>", "", "<div class='reply'>Reply</div>"]


@st.composite
def comment_html(draw, depth: int = 0) -> str:
    parts = ["<li class='comment' id='comment-", str(draw(st.integers(1, 50))), "'><div class='comment-body'>",
             draw(st.sampled_from(AUTHORS)), draw(mostly(METAS, BAD_METAS, 12)),
             draw(mostly(BODY_HTML, BAD_BODY_HTML, 12)), "</div>"]
    if depth < 3 and one_in(draw, 3):
        tag = draw(st.sampled_from(["ul", "ol"]))
        parts += [f"<{tag} class='children'>", *draw(st.lists(comment_html(depth + 1), max_size=2)), f"</{tag}>"]
    return "".join(parts + ["</li>"])


@st.composite
def html_page(draw) -> str:
    """A WordPress-like page (head, title, body, nested comment list), sometimes broken or with tag soup."""
    parts = ["<html><head>", draw(mostly(["<title>A title | Site</title>"], [""], 4)),
             *draw(st.lists(st.sampled_from(HEADS), max_size=2)), "</head><body><article>",
             draw(mostly(["<h1 class='entry-title'>Headline</h1>", "<p class='standfirst'>Standfirst</p>",
                          "<div class='entry-meta'>Posted on 02/01/2020 by x</div>"], ["", "<h1></h1>"], 3)),
             "<div class='entry-content'>",
             *draw(st.lists(st.one_of(st.sampled_from(HTML_NOISE), st.text(max_size=20).map(lambda t: f"<p>{t}</p>")),
                            max_size=8)),
             "</div></article>", draw(st.sampled_from(["", "<h3 id='comments-title'>2 Responses to X</h3>",
                                                       "<h2 class='comments-title'>One thought on X</h2>"])),
             f"<ol class='{draw(st.sampled_from(['commentlist', 'comment-list']))}'>",
             *draw(st.lists(comment_html(), max_size=4)), "</ol></body></html>"]
    if one_in(draw, 4):
        parts.insert(draw(st.integers(0, len(parts))), draw(st.one_of(st.sampled_from(HTML_NOISE), st.text(max_size=10))))
    return "\n".join(parts)


@SETTINGS
@given(st.text())
def test_html_parser_on_arbitrary_text_raises_only_parse_error(text):
    _parse_or_parse_error(parse_html, text)


@SETTINGS
@given(html_page())
def test_html_parser_on_tag_soup_gives_valid_threads_or_parse_error(text):
    threads = _parse_or_parse_error(parse_html, text)
    _write_and_roll_back(threads)


def test_html_parser_on_very_deep_nesting_raises_parse_error_or_parses():
    _parse_or_parse_error(parse_html, "<title>Deep</title>" + "<div>" * 5000 + "<p>text</p>")


# ---- JSONL ----------------------------------------------------------------------------------------
odd_value = st.one_of(st.none(), st.text(max_size=10), st.integers(), st.booleans(), st.floats(allow_nan=True),
                      st.lists(st.integers(), max_size=2), st.just("\ud800"))


@st.composite
def jsonl_record(draw) -> str:
    key, value = draw(mostly([("thread_id", "t1"), ("thread_id", 7), ("thread_title", "A title"),
                              ("url", "https://www.example.org/2020/01/02/a/")], [("url", "http://"), ("url", 7)], 8))
    rec = {key: value}
    rec["text"] = draw(mostly(["A comment.", "Two\n\nparagraphs", "x"], ["  ", "\u200b"], 10))
    for key, good, bad in (("comment_id", ["c1", "c2", "c3", 1, 2], []), ("parent", ["c1", "c2", 1, ""], ["c9"]),
                           ("posted_at", ["2016-06-28T13:00:00", "2016-06-28T13:00:00Z", "2016-06-28"],
                            ["0001-01-01T00:00:00+05:00", "28/06/2016"]),
                           ("author", ["Ann", "", "Bob"], [])):
        if draw(st.booleans()):
            rec[key] = draw(mostly(good, bad, 10) if bad else st.sampled_from(good))
    if one_in(draw, 16):  # now and then a value of the wrong type, or an unknown field
        rec[draw(st.sampled_from(["thread_id", "url", "text", "author", "posted_at", "parent", "extra"]))] = \
            draw(odd_value)
    return json.dumps(rec)


@st.composite
def jsonl_text(draw) -> str:
    lines = draw(st.lists(jsonl_record(), min_size=1, max_size=10))
    if one_in(draw, 4):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["", "{not json", "[1]", "  ", "null"])))
    return "\n".join(lines)


@SETTINGS
@given(st.text())
def test_jsonl_parser_on_arbitrary_text_raises_only_parse_error(text):
    _parse_or_parse_error(parse_jsonl, text)


@SETTINGS
@given(jsonl_text())
def test_jsonl_parser_on_random_records_gives_valid_threads_or_parse_error(text):
    threads = _parse_or_parse_error(parse_jsonl, text)
    _write_and_roll_back(threads)
