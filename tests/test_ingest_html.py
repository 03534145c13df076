"""WordPress-style HTML pages: article paragraphs without furniture, nested comment threads, ids, times."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ParseError
from pipeline.ingest.html import parse_html
from pipeline.ingest.model import Thread
from pipeline.store.db import Store
from pipeline.store.load import ingest_file


def _parse(fixtures_dir: Path, name: str) -> Thread:
    path = fixtures_dir / "html" / name
    threads = parse_html(path.read_text(encoding="utf-8"), str(path))
    assert len(threads) == 1
    return threads[0]


def _local(thread: Thread) -> dict[str, object]:
    return {item.item_id[len(thread.thread_id) + 1:]: item for item in thread.items}


@pytest.fixture(scope="module")
def cc(fixtures_dir: Path) -> Thread:
    return _parse(fixtures_dir, "cc_caseload_cap.html")


@pytest.fixture(scope="module")
def blog(fixtures_dir: Path) -> Thread:
    return _parse(fixtures_dir, "blog_comment_list.html")


def test_fixtures_are_marked_project_written(fixtures_dir):
    for path in (fixtures_dir / "html").glob("*.html"):
        head = path.read_text(encoding="utf-8")[:300]
        assert head.startswith("<!--") and "Project-written" in head, path


def test_canonical_url_gives_the_thread_id_and_h1_the_title(cc):
    assert cc.thread_id == "communitycare.co.uk/2019/03/14/council-trials-caseload-cap-newly-qualified-social-workers"
    assert cc.url == "https://www.communitycare.co.uk/2019/03/14/council-trials-caseload-cap-newly-qualified-social-workers/"
    assert cc.title == "Council trials caseload cap for newly qualified social workers"
    assert cc.article_date == "2019-03-14"


def test_community_care_page_nested_replies_two_levels_deep(cc):
    items = _local(cc)
    talk = [(local, i.kind, i.depth, i.parent_id and i.parent_id[len(cc.thread_id) + 1:], i.author)
            for local, i in items.items() if i.kind != "paragraph"]
    assert talk == [
        ("c1", "comment", 0, None, "Frontline Fran"),
        ("c1.r1", "reply", 1, "c1", "Team Manager T"),
        ("c1.r1.r1", "reply", 2, "c1.r1", "Frontline Fran"),
        ("c2", "comment", 0, None, "NQSW in the North"),
        ("c3", "comment", 0, None, "Retired practitioner"),
    ]
    assert cc.declared_comments == 5 and not cc.warnings


def test_comment_meta_link_text_gives_london_times(cc):
    items = _local(cc)
    assert items["c1"].posted_at == "2019-03-14T09:05:00+00:00"  # GMT
    assert items["c1.r1"].posted_at == "2019-03-14T12:40:00+00:00"
    assert items["c1.r1.r1"].posted_at == "2019-03-15T07:15:00+00:00"
    assert items["c3"].posted_at == "2019-04-02T23:59:00+01:00"  # BST


def test_comment_bodies_keep_paragraphs_and_drop_author_meta_and_reply_links(cc):
    items = _local(cc)
    assert items["c1"].text == ("Twelve is still a lot when half of them are in proceedings.\n\n"
                                "But it is a start, and more than my council ever offered.")
    assert items["c1.r1.r1"].text == "Then the rota needs to change – that is rather the point."
    for item in cc.items:
        assert "Reply" not in item.text and "says:" not in item.text


def test_article_paragraphs_standfirst_heading_and_list(cc):
    paragraphs = [(local, i.flags, i.text) for local, i in _local(cc).items() if i.kind == "paragraph"]
    assert [p[0] for p in paragraphs] == [f"p{n}" for n in range(8)]
    assert paragraphs[0] == ("p0", ["standfirst"],
                             "Pilot limits new starters to twelve children each during their first year in practice")
    assert cc.standfirst == paragraphs[0][2]
    assert paragraphs[1][2].startswith("A council in the east of England")
    assert paragraphs[2][2].endswith("all three of the authority’s assessment teams.")  # &nbsp; and &#8217;
    assert paragraphs[4] == ("p4", ["heading"], "What the pilot changes")
    assert paragraphs[6] == ("p6", ["list"], "• A ceiling of twelve children per newly qualified worker\n"
                                             "• Protected time for reflective supervision every fortnight\n"
                                             "• No court work as lead practitioner in the first six months")
    assert paragraphs[7][2] == ("Unions welcomed the move but warned that a cap on paper means little if vacancies "
                                "are not filled.\n“The cases still have to go somewhere,” one representative said.")


@pytest.mark.parametrize("furniture", [
    "cookies", "Accept", "Children", "Jobs", "Share this", "Twitter", "LinkedIn", "Related", "Another story",
    "More from Community Care", "unrelated headline", "Social Work Watch", "Take part in our survey",
    "Picture:", "Photo:", "Example Images", "Leave a Reply", "Cancel reply", "email address", "Post Comment",
    "Most read", "sidebar", "Example Publisher", "dataLayer", "not a paragraph", "meta description", "Jo Bloggs",
    "Posted on",
])
def test_page_furniture_never_becomes_an_item(cc, furniture):
    assert not [i.item_id for i in cc.items if furniture in i.text]


def test_source_lines_point_at_the_elements(cc, fixtures_dir):
    lines = (fixtures_dir / "html" / "cc_caseload_cap.html").read_text(encoding="utf-8").split("\n")
    for item in cc.items:
        assert item.source_line is not None
        source = lines[item.source_line - 1]
        if item.kind == "paragraph" and "list" not in item.flags:
            assert item.text.split()[0].strip("“") in source, (item.item_id, source)
        elif item.kind != "paragraph":
            assert 'class="comment' in source and "<li" in source


def test_comment_list_theme_with_time_datetime_and_ol_children(blog):
    items = _local(blog)
    assert blog.thread_id == "reflectivepractitioner.example.org/2021/10/31/why-i-stopped-counting-cases"
    assert blog.title == "Why I stopped counting cases"
    assert blog.article_date == "2021-10-31"  # 23:20 UTC on the 30th is already the 31st in London
    assert items["c1"].author == "Priya" and items["c1"].posted_at == "2021-10-31T09:14:00+00:00"
    assert items["c1"].text == "The Friday rule is such a simple idea.\nStealing it for my team on Monday."
    assert items["c1.r1"].author == "The author" and items["c1.r1"].parent_id == f"{blog.thread_id}/c1"
    assert items["c1.r1"].posted_at == "2021-10-31T10:02:00+00:00"  # "Z"
    assert items["c2"].author == "Anon SW" and items["c2"].posted_at == "2021-11-01T07:45:00+00:00"  # naive
    assert [i.kind for i in blog.items].count("reply") == 1


def test_pingbacks_are_skipped_and_a_count_mismatch_is_a_warning(blog):
    assert not [i for i in blog.items if "Pingback" in i.text or "roundup" in i.text]
    assert blog.declared_comments == 4
    assert blog.warnings == [f"{blog.source}: the page declares 4 responses but 3 were parsed "
                             "(1 pingbacks/trackbacks skipped)"]


def test_newer_theme_article_body(blog):
    paragraphs = {local: (i.flags, i.text) for local, i in _local(blog).items() if i.kind == "paragraph"}
    assert paragraphs["p0"] == (["standfirst"], "A team leader on what a number on a spreadsheet cannot tell you")
    assert paragraphs["p2"] == (["heading"], "The number that mattered")
    assert paragraphs["p3"][0] == []  # bold lead-in, but a sentence: not a heading
    assert paragraphs["p4"] == (["heading"], "Small wins")  # a short all-bold paragraph
    assert paragraphs["p5"] == (["list"], "• We stopped reallocating on a Friday.\n"
                                          "• We paired every new starter with a named mentor\n"
                                          "• for at least six months")
    assert len(paragraphs) == 7
    texts = " ".join(t for _, t in paragraphs.values())
    for furniture in ("Credit:", "newsletter", "caseloads", "Skip to the content", "About", "2021"):
        assert furniture not in texts


def test_page_without_canonical_url_uses_title_and_date(fixtures_dir):
    thread = _parse(fixtures_dir, "minimal_no_canonical.html")
    assert thread.url is None
    assert thread.title == "Agency staff fill half of duty team posts"  # site name cut from <title>
    assert thread.article_date == "2020-07-14"
    assert thread.thread_id == "2020-07-14-agency-staff-fill-half-of-duty-team-posts"
    items = _local(thread)
    assert thread.standfirst is None and "p0" not in items  # a meta description is not a standfirst
    assert [k for k in items if k.startswith("p")] == ["p1", "p2"]
    assert items["p2"].text == 'The report said permanent recruitment had "stalled" since the spring.'
    assert (items["c1"].author, items["c1"].posted_at) == ("Locum Lou", "2020-07-14T18:05:00+01:00")
    assert (items["c2"].author, items["c2"].posted_at) == ("Permanent Pat", "2020-07-15T08:10:00+01:00")
    assert thread.declared_comments == 2 and not thread.warnings


PAGE = """<html><head><title>T</title></head><body><div class="entry-content"><p>Body.</p></div>
<ol class="comment-list">
  <li id="comment-1" class="comment">
    <b class="fn">A</b>
    {meta}
    <div class="comment-content">{body}</div>
  </li>
</ol></body></html>"""


@pytest.mark.parametrize(("meta", "message"), [
    ('<time datetime="2016-13-45T25:00">then</time>', "malformed comment date"),
    ('<div class="comment-metadata"><a href="#">a while ago</a></div>', "malformed comment date"),
    ('<div class="comment-metadata"><a href="#">February 30, 2016 at 1:00 pm</a></div>', "malformed date"),
])
def test_malformed_comment_date_is_a_parse_error_with_file_and_line(meta, message):
    with pytest.raises(ParseError) as err:
        parse_html(PAGE.format(meta=meta, body="<p>Text</p>"), "page.html")
    assert err.value.path == "page.html" and err.value.line == 3
    assert message in str(err.value) and str(err.value).startswith("page.html:3: ")


def test_comment_without_body_is_a_parse_error_with_line():
    with pytest.raises(ParseError, match=r"^page\.html:3: comment by 'A' has no body"):
        parse_html(PAGE.format(meta="", body="<p> &nbsp; </p>"), "page.html")


def test_comment_without_a_date_is_kept_with_a_warning():
    thread = parse_html(PAGE.format(meta="", body="<p>Undated</p>"), "page.html")[0]
    assert thread.items[-1].posted_at is None and thread.items[-1].text == "Undated"
    assert thread.warnings == ["page.html:3: comment by 'A' has no date"]


@pytest.mark.parametrize("text", ["", "plain text, no markup", "<html><body><p>No title here</p></body></html>",
                                  "<title>Only a title</title><nav><p>Menu</p></nav>"])
def test_pages_without_title_or_content_are_parse_errors(text):
    with pytest.raises(ParseError):
        parse_html(text, "page.html")


def test_html_fixtures_ingest_into_the_store_and_reingest_is_a_no_op(fixtures_dir, tmp_path):
    with Store(tmp_path / "store.sqlite") as store:
        results = [ingest_file(store, p) for p in sorted((fixtures_dir / "html").glob("*.html"))]
        assert all(r.ok and r.fmt == "html" for r in results)
        assert store.counts() == {"threads": 3, "paragraph": 17, "comment": 7, "reply": 3}
        reply = store.items(item_ids=[
            "communitycare.co.uk/2019/03/14/council-trials-caseload-cap-newly-qualified-social-workers/c1.r1.r1"])[0]
        assert reply["depth"] == 2 and reply["parent_id"].endswith("/c1.r1") and reply["kind"] == "reply"
        thread = store.thread("communitycare.co.uk/2019/03/14/council-trials-caseload-cap-newly-qualified-social-workers")
        assert thread["url"].startswith("https://www.communitycare.co.uk/") and thread["declared_comments"] == 5
        changes = store.conn.total_changes
        assert all(ingest_file(store, p).skipped_unchanged for p in sorted((fixtures_dir / "html").glob("*.html")))
        assert store.conn.total_changes == changes


def test_layout_wrappers_named_like_furniture_do_not_hide_the_article():
    page = """<html><head><title>Genesis | Blog</title></head>
<body class="single has-sidebar sidebar-right"><div class="site-container"><div class="content-sidebar-wrap">
<main class="content"><article class="post"><header class="entry-header"><h1 class="entry-title">Layout post</h1>
</header><div class="entry-content overflow-hidden"><p>The only paragraph.</p>
<div class="sidebar-promo"><p>Promo</p></div></div></article></main>
<aside class="sidebar"><p>Side</p></aside></div></div></body></html>"""
    thread = parse_html(page, "layout.html")[0]
    assert thread.title == "Layout post"
    assert [(i.item_id, i.text) for i in thread.items] == [("layout-post/p1", "The only paragraph.")]
