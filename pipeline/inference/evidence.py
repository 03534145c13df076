"""Evidence for a stance: the sentence of the item text that most supports the predicted label.

Sentences (:func:`split_sentences`) are exact spans of the text, found by a deterministic rule-based
splitter. A blank line always ends a sentence (a comment's paragraphs), and so does a single line break,
unless the next line starts with a lower-case letter (a sentence wrapped over two lines); so ``•`` list
items and headings are sentences of their own. Inside a line a sentence ends after ``.`` ``!`` ``?``
``…`` (plus closing quotes or brackets) when whitespace and then a capital letter, digit, ``£``, ``•``
or an opening quote or bracket follow, unless the word before the full stop is a known abbreviation
(``Mr.``, ``e.g.``, ``No.`` before a number …) or a single capital initial (``J. Smith``). Leading and
trailing whitespace is not part of a span.

The choice is the model's own (:func:`find_evidence`): for an item whose predicted stance toward a target
is not ``none``, every sentence is scored in two ways, in one batched call of the Predictor for all items:

* **alone**: the probability of the predicted class when the model reads that sentence by itself;
* **occlusion**: how much the probability of the predicted class drops when that sentence is left out
  of the item (leave-one-sentence-out).

``method="both"`` (the default) ranks by the sum of the two; ``"alone"`` and ``"occlusion"`` use one.
The measured agreement with a person's choice and the cost in items/s are in ``reports/evidence.md``.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("both", "alone", "occlusion")

# Lower-case words that end with a full stop without ending a sentence ("Dr. Patel", "e.g. agency").
ABBREVIATIONS = frozenset({
    "mr", "mrs", "ms", "dr", "prof", "st", "sr", "jr", "rev", "cllr", "hon", "gov", "sgt", "capt", "col",
    "gen", "lt", "insp", "supt", "e.g", "i.e", "etc", "vs", "cf", "approx", "vol", "fig", "inc", "ltd", "corp",
    "dept", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "a.m", "p.m",
    "u.k", "u.s",
})
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "para", "p", "pp"})  # only before a number: "No. 10"
# sentence-final punctuation, closing quotes/brackets, whitespace, then what may start a sentence
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+[\"'“‘(\[]?[A-Z0-9£•])")
_WORD_BEFORE = re.compile(r"([A-Za-z][A-Za-z.]*)$")
# a line break ends a sentence unless it is a single one followed by a lower-case letter (a wrapped line)
_LINE_BREAK = re.compile(r"\n(?![ \t]*[a-z])|\n(?=[ \t]*\n)")


@dataclass(frozen=True)
class Span:
    """A part of a text: ``text[start:end]``."""

    start: int
    end: int


@dataclass(frozen=True)
class Evidence:
    """The sentence that most supports one stance label: its wording and character offsets in the item text."""

    text: str
    start: int
    end: int
    score: float
    sentences: int  # how many sentences the item has (1: the evidence is the whole item)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end, "score": round(self.score, 4)}


def _is_abbreviation(text: str, dot: int) -> bool:
    """Whether the full stop at ``dot`` closes an abbreviation or an initial rather than a sentence."""
    if text[dot] != ".":
        return False
    match = _WORD_BEFORE.search(text[max(0, dot - 24):dot])
    if match is None:
        return False
    word = match.group(1)
    if len(word) == 1 and word.isupper():  # an initial: "J. Smith"
        return True
    key = word.lower().rstrip(".")
    if key in NUMBER_ABBREVIATIONS:
        return text[dot + 1:].lstrip()[:1].isdigit()
    return key in ABBREVIATIONS


def split_sentences(text: str) -> list[Span]:
    """The sentences of ``text`` as spans (in order, non-overlapping, never empty, whitespace trimmed)."""
    cuts: list[int] = []
    for line in _line_spans(text):
        segment = text[line.start:line.end]
        for match in _END.finditer(segment):
            if not _is_abbreviation(text, line.start + match.start()):
                cuts.append(line.start + match.end())
        cuts.append(line.end)
    spans: list[Span] = []
    start = 0
    for cut in cuts:
        span = _trim(text, start, cut)
        if span is not None:
            spans.append(span)
        start = cut
    return spans


def _line_spans(text: str) -> list[Span]:
    out, start = [], 0
    for match in _LINE_BREAK.finditer(text):
        out.append(Span(start, match.start()))
        start = match.end()
    out.append(Span(start, len(text)))
    return out


def _trim(text: str, start: int, end: int) -> Span | None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Span(start, end) if end > start else None


def _without(text: str, span: Span) -> str:
    return (text[:span.start].rstrip() + " " + text[span.end:].lstrip()).strip()


def find_evidence(predictor: Any, texts: Sequence[str], predictions: Sequence[Any],
                  parents: Sequence[str | None] | None = None, method: str = "both",
                  none_class: str | None = None) -> list[dict[str, Evidence]]:
    """Per item, ``{target: Evidence}`` for every target whose predicted stance is not ``none``.

    Args:
        predictor: A :class:`~pipeline.inference.predict.Predictor` (any backend).
        texts: The item texts, as classified.
        predictions: Their :class:`~pipeline.modeling.outputs.Prediction` (``stance``, ``stance_probs``).
        parents: Parent texts of replies, passed to the model with every variant when its input uses them.
        method: ``both`` (alone + occlusion), ``alone`` or ``occlusion``.
        none_class: The label that takes no stance (default: the predictor's).

    Only items with a non-none stance are split and scored; all their variants (each sentence alone,
    the item without each sentence) go to the model in one batched call.
    """
    if method not in METHODS:
        raise ValueError(f"unknown evidence method {method!r}; choose one of {', '.join(METHODS)}")
    if len(texts) != len(predictions):
        raise ValueError("texts and predictions must be aligned")
    none = none_class or getattr(predictor, "none_class", "none")
    use_parents = parents is not None and getattr(predictor.spec, "include_parent", False)
    out: list[dict[str, Evidence]] = [{} for _ in texts]
    variants: list[str] = []
    variant_parents: list[str | None] = []
    # per item: (index, sentences, first variant row)
    plan: list[tuple[int, list[Span], int]] = []
    for i, (text, pred) in enumerate(zip(texts, predictions)):
        targets = [t for t, label in pred.stance.items() if label != none]
        if not targets:
            continue
        spans = split_sentences(text)
        if not spans:
            continue
        if len(spans) == 1:
            for t in targets:
                out[i][t] = Evidence(text[spans[0].start:spans[0].end], spans[0].start, spans[0].end,
                                     float(pred.stance_probs[t][pred.stance[t]]), 1)
            continue
        plan.append((i, spans, len(variants)))
        parent = parents[i] if use_parents and parents is not None else None
        for span in spans:
            if method in ("both", "alone"):
                variants.append(text[span.start:span.end])
                variant_parents.append(parent)
            if method in ("both", "occlusion"):
                variants.append(_without(text, span))
                variant_parents.append(parent)
    if not plan:
        return out
    probs = predictor.predict_proba(variants, variant_parents if use_parents else None)
    per_sentence = 2 if method == "both" else 1
    classes = list(predictor.stance_classes)
    for i, spans, first in plan:
        pred = predictions[i]
        text = texts[i]
        for t, label in pred.stance.items():
            if label == none:
                continue
            c = classes.index(label)
            rows = first + np.arange(len(spans)) * per_sentence
            p_variants = probs.stance[t][:, c]
            if method == "alone":
                score = p_variants[rows]
            elif method == "occlusion":
                score = float(pred.stance_probs[t][label]) - p_variants[rows]
            else:
                score = p_variants[rows] + (float(pred.stance_probs[t][label]) - p_variants[rows + 1])
            best = int(np.argmax(score))  # first sentence on ties: deterministic
            span = spans[best]
            out[i][t] = Evidence(text[span.start:span.end], span.start, span.end, float(score[best]), len(spans))
    return out
