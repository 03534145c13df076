"""The model's side of annotation: a suggested label (with evidence) per item, and how far people agree.

:class:`ModelSuggestions` classifies the selected items once (batched) and finds the evidence of an item
the first time it is asked for (one batched call of ``find_evidence`` per item), so a large selection
costs one prediction pass up front and a few model calls per item shown. :func:`agreement_with_model`
compares what the annotator saved with what the model suggested: per field raw agreement and Cohen's
kappa (scikit-learn, via :func:`pipeline.evaluation.agreement.field_agreement`), the share of items
accepted unchanged and the share of evidence spans kept.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pipeline.config.schema import LabelSchema
from pipeline.data.labels import LabelRecord
from pipeline.data.selection import ItemContext
from pipeline.evaluation.agreement import FieldAgreement, field_agreement
from pipeline.inference.evidence import Evidence, find_evidence


@dataclass
class Suggestion:
    """What the model says about one item: labels, their probabilities and the evidence per stance."""

    sentiment: str
    stance: dict[str, str]
    sentiment_prob: float
    stance_prob: dict[str, float]
    evidence: dict[str, Evidence] = field(default_factory=dict)

    def value(self, name: str) -> str:
        return self.sentiment if name == "sentiment" else self.stance[name]

    def prob(self, name: str) -> float:
        return self.sentiment_prob if name == "sentiment" else self.stance_prob[name]


SuggestFn = Callable[[ItemContext], "Suggestion | None"]


class ModelSuggestions:
    """Suggestions from a trained model for a fixed list of items (callable: ``suggestions(ctx)``).

    Args:
        predictor: A :class:`~pipeline.inference.predict.Predictor`.
        items: The items that will be shown.
        with_evidence: Find an evidence sentence for each non-none stance.
        predictions: The model's predictions by item id when already made (anything with ``sentiment``,
            ``sentiment_probs``, ``stance``, ``stance_probs``); otherwise the items are classified here.
    """

    def __init__(self, predictor: Any, items: Sequence[ItemContext], with_evidence: bool = True,
                 predictions: dict[str, Any] | None = None) -> None:
        self.predictor = predictor
        self.model_version: str = predictor.model_version
        self.with_evidence = with_evidence
        self.none_class: str = getattr(predictor, "none_class", "none")
        self.items = {c.item_id: c for c in items}
        if predictions is None and items:
            use_parent = bool(getattr(predictor.spec, "include_parent", False))
            predictions = dict(zip(self.items, predictor.predict(
                [c.text for c in items], [c.parent_text for c in items] if use_parent else None)))
        self.predictions: dict[str, Any] = dict(predictions or {})
        self._cache: dict[str, Suggestion] = {}

    def prediction(self, item_id: str) -> Any:
        """The model's :class:`~pipeline.modeling.outputs.Prediction` for an item."""
        return self.predictions[item_id]

    def __call__(self, ctx: ItemContext) -> Suggestion | None:
        if ctx.item_id not in self.predictions:
            return None
        if ctx.item_id not in self._cache:
            pred = self.predictions[ctx.item_id]
            evidence: dict[str, Evidence] = {}
            if self.with_evidence and any(label != self.none_class for label in pred.stance.values()):
                evidence = find_evidence(self.predictor, [ctx.text], [pred], [ctx.parent_text])[0]
            self._cache[ctx.item_id] = Suggestion(
                sentiment=pred.sentiment, stance=dict(pred.stance),
                sentiment_prob=float(pred.sentiment_probs[pred.sentiment]),
                stance_prob={t: float(pred.stance_probs[t][label]) for t, label in pred.stance.items()},
                evidence=evidence)
        return self._cache[ctx.item_id]


@dataclass
class ModelAgreement:
    """How the annotator's saved labels compare with the model's suggestions for the same items."""

    n: int
    accepted_unchanged: int
    fields: list[FieldAgreement]
    evidence_compared: int  # stances where both said the same non-none label and both gave a span
    evidence_kept: int  # ... and the annotator kept the model's span

    def lines(self) -> list[str]:
        """A short plain-text summary (one line per field)."""
        if not self.n:
            return ["agreement with the model: no items labelled with a suggestion"]
        out = [f"agreement with the model over {self.n} item(s): {self.accepted_unchanged} accepted unchanged"]
        for f in self.fields:
            kappa = "undefined (one label only)" if f.kappa is None else f"{f.kappa:.2f}"
            out.append(f"  {f.field}: {f.agreed}/{f.n} agree ({(f.observed or 0):.0%}), Cohen's kappa {kappa}")
        if self.evidence_compared:
            out.append(f"  evidence: the model's sentence kept for {self.evidence_kept} of "
                       f"{self.evidence_compared} stance(s) both gave")
        return out


def agreement_with_model(records: Sequence[LabelRecord], suggestions: dict[str, Suggestion],
                         schema: LabelSchema) -> ModelAgreement:
    """Agreement of ``records`` with the suggestions shown for them (items without one are left out)."""
    pairs = [(r, suggestions[r.item_id]) for r in records if r.item_id in suggestions]
    names = ["sentiment", *schema.target_names]
    fields = []
    for name in names:
        classes = schema.sentiment_classes if name == "sentiment" else schema.stance_classes
        fields.append(field_agreement(name, [r.value(name) for r, _ in pairs], [s.value(name) for _, s in pairs],
                                      classes))
    compared = kept = 0
    for rec, sug in pairs:
        for t, ev in sug.evidence.items():
            span = (rec.evidence or {}).get(t)
            if span is None or rec.stance.get(t) != sug.stance.get(t):
                continue
            compared += 1
            kept += (span["start"], span["end"]) == (ev.start, ev.end)
    unchanged = sum(all(r.value(n) == s.value(n) for n in names) for r, s in pairs)
    return ModelAgreement(n=len(pairs), accepted_unchanged=unchanged, fields=fields, evidence_compared=compared,
                          evidence_kept=kept)
