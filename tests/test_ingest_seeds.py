"""The five seed threads in ../shared/seeds split into the expected paragraphs, comments and replies."""
from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.ingest.model import Thread
from pipeline.ingest.parse import parse_file

FURNITURE_STARTS = ("Picture:", "Photo:", "Source:", "Cookie Consent", "Connecting to LinkedIn", "Social Care Logo",
                    "News & Social Media", "More from Community Care", "Social Work Watch", "Take part in our survey",
                    "Register your email address", "Posted on", "Stack of documents")


@pytest.fixture(scope="module")
def seeds(seeds_dir: Path) -> dict[str, Thread]:
    """Seed threads keyed by their number ('000' … '004')."""
    out = {}
    for path in sorted(seeds_dir.glob("*.txt")):
        raw, threads = parse_file(path)
        assert len(threads) == 1 and raw.encoding == "utf-8"
        out[path.name[:3]] = threads[0]
    assert sorted(out) == ["000", "001", "002", "003", "004"]
    return out


def _local(thread: Thread, item_id: str) -> str:
    return item_id[len(thread.thread_id) + 1:]


def test_seeds_give_exactly_twenty_comments_and_replies(seeds):
    talk = [item for t in seeds.values() for item in t.items if item.kind in ("comment", "reply")]
    assert len(talk) == 20
    assert sum(item.kind == "comment" for item in talk) == 19
    replies = [item for item in talk if item.kind == "reply"]
    assert len(replies) == 1


def test_the_one_reply_is_ssr_answering_tracey_waller(seeds):
    thread = seeds["001"]
    reply = next(item for item in thread.items if item.kind == "reply")
    parent = next(item for item in thread.items if item.item_id == reply.parent_id)
    assert reply.author == "SSR" and parent.author == "Tracey Waller"
    assert _local(thread, reply.item_id) == "c1.r1" and _local(thread, parent.item_id) == "c1"
    assert reply.depth == 1 and parent.depth == 0
    assert reply.posted_at == "2014-03-27T10:16:00+00:00"
    assert reply.text.startswith("When I qualified in 1997") and reply.text.endswith("would like to return!")


@pytest.mark.parametrize(("seed", "authors"), [
    ("000", ["LongtimeSW", "Lyla", "Tom J", "The voice of despair"]),
    ("001", ["Tracey Waller", "SSR", "Diana", "Alex", "Eleanor Skidmore", "Pauline Oliver"]),
    ("002", []),
    ("003", ["Harriet George", "Simon Cardy", "M. GONCALVES", "Sue Gracey", "JD", "Tom J", "Eddie", "Greg W"]),
    ("004", ["J.M", "Manzar iqbal"]),
])
def test_seed_comment_authors_in_page_order(seeds, seed, authors):
    assert [i.author for i in seeds[seed].items if i.kind != "paragraph"] == authors


@pytest.mark.parametrize(("seed", "local_id", "author", "posted_at"), [
    ("000", "c1", "LongtimeSW", "2016-06-28T11:53:00+01:00"),
    ("000", "c2", "Lyla", "2016-06-28T13:00:00+01:00"),
    ("000", "c4", "The voice of despair", "2016-06-29T15:14:00+01:00"),
    ("001", "c1", "Tracey Waller", "2014-03-26T12:29:00+00:00"),  # GMT: before the clocks went forward
    ("001", "c5", "Pauline Oliver", "2014-04-03T02:23:00+01:00"),  # BST
    ("003", "c1", "Harriet George", "2022-04-01T21:00:00+01:00"),
    ("003", "c3", "M. GONCALVES", "2022-04-01T23:33:00+01:00"),
    ("004", "c2", "Manzar iqbal", "2017-08-20T17:32:00+01:00"),
])
def test_seed_comment_timestamps_are_iso_8601_europe_london(seeds, seed, local_id, author, posted_at):
    thread = seeds[seed]
    item = next(i for i in thread.items if _local(thread, i.item_id) == local_id)
    assert (item.author, item.posted_at) == (author, posted_at)


def test_seed_comment_texts_keep_paragraphs_and_wording(seeds):
    thread = seeds["000"]
    first = next(i for i in thread.items if _local(thread, i.item_id) == "c1")
    assert first.text.startswith("No shirt Sherlock!\n\nCaseloads too high?")
    lyla = next(i for i in thread.items if i.author == "Lyla")
    assert lyla.text.startswith("Its about time this extremely pertinent issue")
    assert "\n" in lyla.text and "\n\n" not in lyla.text  # line breaks inside one paragraph are kept


@pytest.mark.parametrize(("seed", "n_paragraphs", "first", "last"), [
    ("000", 20, "Watchdog says quality of leadership", "The consultation closes on 9 September."),
    ("001", 38, "Addressing high caseloads is central", "because they have the time and ability to do it.”"),
    ("002", 21, "Focused visit to Staffordshire council", "which they said was too “fragmented”."),
    ("003", 35, "Ofsted oversight is ‘biggest driver of paperwork’", "which started in March 2021."),
    ("004", 10, "Monitoring visit to Kirklees", "in order to provide support."),
])
def test_seed_article_paragraphs_with_standfirst_first(seeds, seed, n_paragraphs, first, last):
    paragraphs = [i for i in seeds[seed].items if i.kind == "paragraph"]
    assert len(paragraphs) == n_paragraphs
    assert paragraphs[0].flags == ["standfirst"] and paragraphs[0].item_id.endswith("/p0")
    assert seeds[seed].standfirst == paragraphs[0].text
    assert paragraphs[0].text.startswith(first)
    assert paragraphs[-1].text.endswith(last)
    assert [i.item_id.rsplit("/p", 1)[1] for i in paragraphs] == [str(n) for n in range(n_paragraphs)]
    assert all(i.text for i in paragraphs)


def test_seed_article_paragraphs_have_page_furniture_removed(seeds):
    for seed, thread in seeds.items():
        for item in thread.items:
            if item.kind != "paragraph":
                continue
            for line in item.text.split("\n"):
                assert not line.startswith(FURNITURE_STARTS), (seed, item.item_id, line)
            assert "Popupsmart" not in item.text and "LinkedIn" not in item.text


def test_seed_sub_headings_and_lists_are_flagged(seeds):
    thread = seeds["000"]
    flagged = {i.text: i.flags for i in thread.items if i.flags}
    assert flagged["Common features of ‘inadequate’ services"] == ["heading"]
    bullet_list = next(i for i in thread.items if "list" in i.flags)
    assert bullet_list.text.count("• ") == 8 and bullet_list.text.startswith("• Children had too many changes")
    headings_001 = [i.text for i in seeds["001"].items if "heading" in i.flags]
    assert headings_001 == ["More cash to hire social workers", "Filling gaps with NQSWs not an option",
                            "Agencies luring skilled practitioners", "Good staff support, as well as higher pay"]


def test_seed_002_posted_on_line_gives_the_article_date(seeds):
    thread = seeds["002"]
    assert thread.article_date == "2018-07-30"
    assert thread.title == "Delayed restructure will address ‘excessively high’ social worker caseloads, council says"
    assert thread.thread_id.startswith("2018-07-30-delayed-restructure")
    assert thread.declared_comments is None and thread.count("comment") == 0


def test_seed_thread_ids_come_from_title_and_first_date(seeds):
    assert seeds["000"].thread_id == "2016-06-28-ofsted-issues-warning-over-unmanageable-caseloads"
    assert seeds["004"].thread_id == "2017-07-31-caseloads-too-high-at-inadequate-rated-council-finds-ofsted"
    for thread in seeds.values():
        assert all(i.item_id.startswith(thread.thread_id + "/") and i.thread_id == thread.thread_id
                   for i in thread.items)
        assert [i.position for i in thread.items] == list(range(len(thread.items)))


def test_only_the_last_comment_of_seed_001_is_flagged_truncated(seeds):
    truncated = [(seed, i) for seed, t in seeds.items() for i in t.items if "truncated" in i.flags]
    assert len(truncated) == 1
    seed, item = truncated[0]
    assert seed == "001" and item.author == "Pauline Oliver" and item is seeds["001"].items[-1]
    assert any("looks truncated" in w for w in seeds["001"].warnings)


def test_seed_declared_response_counts_match_what_is_parsed(seeds):
    for thread in seeds.values():
        if thread.declared_comments is not None:
            assert thread.declared_comments == thread.count("comment") + thread.count("reply")
        assert not [w for w in thread.warnings if "declares" in w]
