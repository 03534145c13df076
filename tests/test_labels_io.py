"""Reading and writing label files: round trip, append + fsync, atomic rewrite, removing the last label."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline.config.schema import load_schema
from pipeline.data.labels import (
    LabelRecord,
    append_label,
    check_label_file,
    label_counts,
    labelled_ids,
    now_iso,
    parse_timestamp,
    read_labels,
    remove_last_label,
    write_labels,
)

REPO = Path(__file__).resolve().parents[1]
SCHEMA = load_schema(REPO / "configs" / "labels.yaml")


def _rec(item_id, sentiment="neutral", note=None, **stance):
    full = {t: "none" for t in SCHEMA.target_names}
    full.update(stance)
    return LabelRecord(item_id=item_id, sentiment=sentiment, stance=full, annotator="tester",
                       labelled_at="2026-01-05T10:12:00Z", note=note)


def test_written_labels_read_back_equal(tmp_path):
    records = [_rec("t/c1", "negative", funding="favor"), _rec("t/c2", note="quoted speaker, approving")]
    path = tmp_path / "sub" / "labels.jsonl"
    assert write_labels(path, records) == 2
    assert read_labels(path, SCHEMA) == records
    assert "note" not in path.read_text().splitlines()[0]  # no empty note key
    assert not list(path.parent.glob(".*tmp"))  # the temporary file is gone


def test_labels_carry_ids_not_text(tmp_path):
    path = tmp_path / "labels.jsonl"
    write_labels(path, [_rec("t/c1")])
    assert set(json.loads(path.read_text())) == {"item_id", "sentiment", "stance", "annotator", "labelled_at"}


def test_append_adds_a_line_and_repairs_a_missing_final_newline(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(_rec("t/c1").to_json())  # no trailing newline, as an editor might leave it
    append_label(path, _rec("t/c2"))
    append_label(path, _rec("t/c3"))
    assert [r.item_id for r in read_labels(path, SCHEMA)] == ["t/c1", "t/c2", "t/c3"]
    assert path.read_text().endswith("\n")


def test_remove_last_label_keeps_other_lines_byte_for_byte(tmp_path):
    path = tmp_path / "labels.jsonl"
    first = '{"item_id": "t/c1", "sentiment": "neutral",  "stance": {}, "annotator": "x", "labelled_at": "2026"}\n'
    path.write_text(first + _rec("t/c2").to_json() + "\n" + _rec("t/c3").to_json() + "\n")
    assert remove_last_label(path, {"t/c1", "t/c2"}) == "t/c2"
    assert path.read_text() == first + _rec("t/c3").to_json() + "\n"
    assert remove_last_label(path) == "t/c3"
    assert remove_last_label(path, {"t/zz"}) is None
    assert path.read_text() == first


def test_labelled_ids_is_lenient_about_broken_lines(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_text(_rec("t/c1").to_json() + "\n{broken\n" + '{"item_id": "t/c2"}\n')
    assert labelled_ids(path) == {"t/c1", "t/c2"}
    assert labelled_ids(tmp_path / "missing.jsonl") == set()


def test_label_counts_per_field():
    counts = label_counts([_rec("a", "negative", funding="favor"), _rec("b", "negative"), _rec("c")], SCHEMA)
    assert counts["sentiment"] == {"negative": 2, "neutral": 1}
    assert counts["funding"] == {"favor": 1, "none": 2}
    assert list(counts) == ["sentiment", *SCHEMA.target_names]


def test_timestamps():
    assert parse_timestamp("2026-01-05T10:12:00Z").utcoffset().total_seconds() == 0
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")
    stamp = now_iso()
    assert stamp.endswith("Z") and parse_timestamp(stamp)


def test_utf8_bom_and_crlf_are_tolerated(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (_rec("t/c1").to_json() + "\r\n" + _rec("t/c2").to_json() + "\r\n").encode())
    assert check_label_file(path, SCHEMA).ok


def test_non_utf8_file_is_reported_with_line(tmp_path):
    path = tmp_path / "labels.jsonl"
    path.write_bytes(_rec("t/c1").to_json().encode() + b"\n" + b'{"item_id": "t/caf\xe9"}\n')
    (problem,) = check_label_file(path, SCHEMA).problems
    assert problem.kind == "unreadable" and problem.line == 2
