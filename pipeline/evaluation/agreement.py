"""Inter-annotator agreement between two label files: Cohen's kappa, raw agreement, disagreement tables.

Pure functions, no printing. Only items labelled in both files are compared. Cohen's kappa is
``(p_o - p_e) / (1 - p_e)`` with ``p_o`` the share of items given the same label and ``p_e`` the agreement
expected by chance from each annotator's own label distribution; it is undefined (None) when
``p_e == 1`` (both annotators used one and the same label for every item).
"""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config.schema import LabelSchema
from pipeline.data.labels import LabelRecord


@dataclass
class FieldAgreement:
    """Agreement on one field (``sentiment`` or a stance target) over the shared items."""

    field: str
    classes: list[str]
    n: int
    agreed: int
    observed: float | None  # p_o, raw agreement
    expected: float | None  # p_e, chance agreement
    kappa: float | None
    counts_a: dict[str, int]
    counts_b: dict[str, int]
    disagreements: dict[tuple[str, str], int]  # (label A, label B) -> count, A != B

    def to_dict(self) -> dict[str, Any]:
        return {
            "field": self.field, "n": self.n, "agreed": self.agreed,
            "raw_agreement": _round(self.observed), "expected_agreement": _round(self.expected),
            "kappa": _round(self.kappa), "counts_a": self.counts_a, "counts_b": self.counts_b,
            "disagreements": [{"label_a": a, "label_b": b, "count": c}
                              for (a, b), c in sorted(self.disagreements.items(), key=lambda kv: (-kv[1], kv[0]))],
        }


@dataclass
class AgreementReport:
    """Agreement between two label files, per field, over the items both label."""

    annotators_a: list[str]
    annotators_b: list[str]
    n_a: int
    n_b: int
    common: list[str]
    only_a: list[str]
    only_b: list[str]
    fields: list[FieldAgreement] = field(default_factory=list)
    items_fully_agreed: int = 0

    def get(self, name: str) -> FieldAgreement:
        for f in self.fields:
            if f.field == name:
                return f
        raise KeyError(name)

    @property
    def disputed_items(self) -> int:
        return len(self.common) - self.items_fully_agreed

    def to_dict(self) -> dict[str, Any]:
        return {
            "annotators_a": self.annotators_a, "annotators_b": self.annotators_b,
            "labelled_a": self.n_a, "labelled_b": self.n_b, "common": len(self.common),
            "only_a": self.only_a, "only_b": self.only_b,
            "items_fully_agreed": self.items_fully_agreed, "items_disputed": self.disputed_items,
            "fields": {f.field: f.to_dict() for f in self.fields},
        }


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def expected_agreement(labels_a: Sequence[str], labels_b: Sequence[str], classes: Sequence[str]) -> float:
    """Chance agreement ``p_e = sum_k (n_a[k] / n) * (n_b[k] / n)``."""
    n = len(labels_a)
    ca, cb = Counter(labels_a), Counter(labels_b)
    return sum(ca[k] * cb[k] for k in set(classes) | set(ca) | set(cb)) / (n * n)


def field_agreement(name: str, labels_a: Sequence[str], labels_b: Sequence[str],
                    classes: Sequence[str]) -> FieldAgreement:
    """Raw agreement, chance agreement, Cohen's kappa (sklearn) and the disagreement table for one field."""
    if len(labels_a) != len(labels_b):
        raise ValueError("both label sequences must cover the same items")
    n = len(labels_a)
    agreed = sum(1 for a, b in zip(labels_a, labels_b) if a == b)
    disagreements = Counter((a, b) for a, b in zip(labels_a, labels_b) if a != b)
    observed = expected = kappa = None
    if n:
        observed = agreed / n
        expected = expected_agreement(labels_a, labels_b, classes)
        if not math.isclose(expected, 1.0):
            from sklearn.metrics import cohen_kappa_score

            labels = list(dict.fromkeys([*classes, *labels_a, *labels_b]))
            kappa = float(cohen_kappa_score(list(labels_a), list(labels_b), labels=labels))
    return FieldAgreement(field=name, classes=list(classes), n=n, agreed=agreed, observed=observed,
                          expected=expected, kappa=kappa,
                          counts_a={c: Counter(labels_a)[c] for c in classes},
                          counts_b={c: Counter(labels_b)[c] for c in classes},
                          disagreements=dict(disagreements))


def compare_labels(records_a: Sequence[LabelRecord], records_b: Sequence[LabelRecord],
                   schema: LabelSchema) -> AgreementReport:
    """Agreement on sentiment and every schema target over the items both files label (file A's order)."""
    by_a = {r.item_id: r for r in records_a}
    by_b = {r.item_id: r for r in records_b}
    common = [i for i in by_a if i in by_b]
    report = AgreementReport(
        annotators_a=sorted({r.annotator for r in records_a}), annotators_b=sorted({r.annotator for r in records_b}),
        n_a=len(by_a), n_b=len(by_b), common=common,
        only_a=[i for i in by_a if i not in by_b], only_b=[i for i in by_b if i not in by_a])
    fields = [("sentiment", schema.sentiment_classes)] + [(t, schema.stance_classes) for t in schema.target_names]
    for name, classes in fields:
        report.fields.append(field_agreement(name, [by_a[i].value(name) for i in common],
                                             [by_b[i].value(name) for i in common], classes))
    report.items_fully_agreed = sum(
        1 for i in common if all(by_a[i].value(name) == by_b[i].value(name) for name, _ in fields))
    return report


def disputed_fields(record_a: LabelRecord, record_b: LabelRecord, schema: LabelSchema) -> list[str]:
    """The fields (``sentiment`` and targets) on which two records of the same item differ."""
    return [name for name in ("sentiment", *schema.target_names) if record_a.value(name) != record_b.value(name)]
