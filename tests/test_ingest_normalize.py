"""Text normalisation, thread ids and London times shared by every input format."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from pipeline.errors import ParseError
from pipeline.ingest.normalize import (
    london_iso,
    normalize_text,
    slugify,
    thread_id_from_title,
    thread_id_from_url,
)
from pipeline.ingest.textdump import parse_comment_datetime


def test_normalize_text_collapses_spaces_keeps_line_breaks_and_paragraphs():
    raw = "  Caf\u0065\u0301\u00a0and\tteam\u200b  \r\nsecond line \r\n\r\n \u2003 \n\n\nNext paragraph  "
    assert normalize_text(raw) == "Café and team\nsecond line\n\nNext paragraph"


def test_normalize_text_leaves_wording_punctuation_and_case_alone():
    text = "“Don’t” – SHOUTING… and (brackets)!"
    assert normalize_text(text) == text


@pytest.mark.parametrize(("url", "thread_id"), [
    ("https://www.communitycare.co.uk/2016/06/28/ofsted-issues-warning/",
     "communitycare.co.uk/2016/06/28/ofsted-issues-warning"),
    ("http://Blog.Example.org/2020/01/Ünïcode Title/?utm_source=feed#comments", "blog.example.org/2020/01/unicode-title"),
    ("https://blog.example.org/?p=123&utm_medium=email", "blog.example.org/p-123"),  # WordPress plain permalink
    ("https://blog.example.org/", "blog.example.org"),
])
def test_thread_id_from_url_is_host_and_slugged_path(url, thread_id):
    assert thread_id_from_url(url) == thread_id


def test_thread_id_from_title_uses_date_and_a_60_character_slug():
    title = "How councils can escape the cycle of high social work caseloads and poor performance"
    assert thread_id_from_title(title, "2014-03-26") == "2014-03-26-how-councils-can-escape-the-cycle-of-high-social-work"
    assert len(slugify(title)) <= 60
    assert thread_id_from_title("‘Too high’ caseloads", None) == "too-high-caseloads"
    assert thread_id_from_title("!!!", None) == "untitled"


def test_london_iso_uses_bst_in_summer_and_gmt_in_winter():
    assert london_iso(datetime(2016, 6, 28, 13, 0)) == "2016-06-28T13:00:00+01:00"
    assert london_iso(datetime(2016, 12, 28, 13, 0)) == "2016-12-28T13:00:00+00:00"
    assert london_iso(datetime(2016, 6, 28, 12, 0, tzinfo=timezone.utc)) == "2016-06-28T13:00:00+01:00"


@pytest.mark.parametrize(("date", "time", "expected"), [
    ("June 28, 2016", "1:00 pm", "2016-06-28T13:00:00+01:00"),
    ("June 28, 2016", "12:05 am", "2016-06-28T00:05:00+01:00"),
    ("December 1, 2019", "12:00 pm", "2019-12-01T12:00:00+00:00"),
    ("Jun. 3, 2019", "1.05 p.m.", "2019-06-03T13:05:00+01:00"),
    ("MARCH 30 2014", "12:59AM", "2014-03-30T00:59:00+00:00"),  # the hour before the clocks go forward
    ("February 30, 2016", "1:00 pm", None),
    ("Sept. 3, 2019", "1:00 pm", None),  # not a month name strptime knows either
    ("June 28, 2016", "13:00 pm", None),
    ("June 28, 2016", "0:30 am", None),
    ("June 28, 2016", "1:60 pm", None),
])
def test_comment_header_dates_parse_to_london_time_or_parse_error(date, time, expected):
    if expected is None:
        with pytest.raises(ParseError) as err:
            parse_comment_datetime(date, time, "dump.txt", 12)
        assert (err.value.path, err.value.line) == ("dump.txt", 12)
    else:
        assert parse_comment_datetime(date, time, "dump.txt", 12) == expected
