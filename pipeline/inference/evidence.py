"""Evidence for a stance: the sentence of the item text that most supports the predicted label.

Sentences (:func:`split_sentences`) are exact spans of the text, found by a deterministic rule-based
splitter. A blank line always ends a sentence (a comment's paragraphs), and so does a single line break,
unless the next line starts with a lower-case letter (a sentence wrapped over two lines); so ``•`` list
items and headings are sentences of their own. Inside a line a sentence ends after ``.`` ``!`` ``?``
``…`` (plus closing quotes or brackets) when whitespace and then a capital letter, digit, ``£``, ``•``
or an opening quote or bracket follow, unless the word before the full stop is a known abbreviation
(``Mr.``, ``e.g.``, ``No.`` before a number …) or a single capital initial (``J. Smith``). Leading and
trailing whitespace is not part of a span.

The choice is the model's own (:func:`find_evidence`). For an item whose predicted stance toward a
target is not ``none``, its sentences are scored by the model, batched over all items:

* **alone** (the default): the probability of the predicted class when the model reads that sentence by
  itself. The evidence is the sentence that on its own most makes the model say what it said.
* **occlusion**: how much the probability of the predicted class drops when that sentence is left out of
  the item (leave-one-sentence-out).
* **both**: the sum of the two, with occlusion computed for the ``candidates`` best sentences alone.

Every sentence is a candidate in a text of up to ``FULL_SPLIT_CHARS`` characters (at most a few hundred
sentences). In a longer text only the sentences the model read are (``max_length`` word pieces, head and
tail kept): those wholly outside that part are never split out or scored (:func:`sentences_read`), so a
100,000-character comment costs about what a 20,000-character one does, and a 51 MB one no more.

On the 41 judged gold pairs the three agree with a person equally well (no significant difference),
and ``alone`` costs a third of the others (``reports/evidence.md``), so it is the default.
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

METHODS = ("alone", "occlusion", "both")
CANDIDATES = 3  # with "both": sentences (per target) also scored by occlusion, the best by the alone score

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


FULL_SPLIT_CHARS = 20_000  # longer texts: only the sentences the model read are evidence candidates
READ_SLACK = 2000  # characters past a cut in which the sentence the cut falls into is looked for


def sentences_read(text: str, window: tuple[int, int] | None) -> list[Span]:
    """The sentences of ``text`` the model read: all of them (``window`` None), else those that start before
    ``head_end`` or end after ``tail_start`` (the model reads ``text[:head_end]`` and ``text[tail_start:]``).
    Only the characters around the read part are split, so the cost does not grow with the text."""
    if window is None:
        return split_sentences(text)
    head_end, tail_start = window
    head = [s for s in split_sentences(text[:head_end + READ_SLACK]) if s.start < head_end]
    if tail_start >= len(text):
        return head
    offset = max(tail_start - READ_SLACK, head[-1].end if head else 0)
    tail = [Span(s.start + offset, s.end + offset) for s in split_sentences(text[offset:])]
    return head + [s for s in tail if s.end > tail_start]


def _without(text: str, span: Span) -> str:
    return (text[:span.start].rstrip() + " " + text[span.end:].lstrip()).strip()


def find_evidence(predictor: Any, texts: Sequence[str], predictions: Sequence[Any],
                  parents: Sequence[str | None] | None = None, method: str = "alone",
                  none_class: str | None = None, candidates: int | None = CANDIDATES) -> list[dict[str, Evidence]]:
    """Per item, ``{target: Evidence}`` for every target whose predicted stance is not ``none``.

    Args:
        predictor: A :class:`~pipeline.inference.predict.Predictor` (any backend).
        texts: The item texts, as classified.
        predictions: Their :class:`~pipeline.modeling.outputs.Prediction` (``stance``, ``stance_probs``).
        parents: Parent texts of replies, passed to the model with every variant when its input uses them.
        method: ``alone`` (the default), ``occlusion`` or ``both`` (alone + occlusion).
        none_class: The label that takes no stance (default: the predictor's).
        candidates: With ``both``, only the ``candidates`` best sentences by the alone score (per target)
            are also scored by occlusion, so long items cost a few full-length variants rather than one per
            sentence; None scores every sentence both ways.

    Only items with a non-none stance are split and scored. All items' variants go to the model together:
    one batched call for the sentences alone, one for the items without a sentence.
    """
    if method not in METHODS:
        raise ValueError(f"unknown evidence method {method!r}; choose one of {', '.join(METHODS)}")
    if len(texts) != len(predictions):
        raise ValueError("texts and predictions must be aligned")
    none = none_class or getattr(predictor, "none_class", "none")
    use_parents = parents is not None and getattr(predictor.spec, "include_parent", False)
    out: list[dict[str, Evidence]] = [{} for _ in texts]
    plan: list[tuple[int, list[Span], list[str]]] = []  # (item, its sentences, its non-none targets)
    stanced = [i for i, pred in enumerate(predictions) if len(texts[i]) > FULL_SPLIT_CHARS
               and any(label != none for label in pred.stance.values())]
    windows: dict[int, tuple[int, int] | None] = {}
    if stanced and hasattr(predictor, "read_windows"):  # what the model read of each text (long texts)
        found = predictor.read_windows([texts[i] for i in stanced],
                                       [parents[i] for i in stanced] if use_parents and parents else None)
        windows = dict(zip(stanced, found))
    for i, (text, pred) in enumerate(zip(texts, predictions)):
        targets = [t for t, label in pred.stance.items() if label != none]
        spans = sentences_read(text, windows.get(i)) if targets else []
        if len(spans) == 1:
            for t in targets:
                out[i][t] = Evidence(text[spans[0].start:spans[0].end], spans[0].start, spans[0].end,
                                     float(pred.stance_probs[t][pred.stance[t]]), 1)
        elif spans:
            plan.append((i, spans, targets))
    if not plan:
        return out
    classes = list(predictor.stance_classes)

    def run(variants: list[tuple[int, str]]) -> Any:  # (item index, text) -> Probabilities, in order
        par = [parents[i] if parents is not None else None for i, _ in variants] if use_parents else None
        return predictor.predict_proba([v for _, v in variants], par)

    # scores[(item, target)][sentence]: -inf where a sentence was not scored
    scores = {(i, t): np.zeros(len(spans)) for i, spans, targets in plan for t in targets}
    if method in ("both", "alone"):
        rows = [(i, texts[i][s.start:s.end]) for i, spans, _ in plan for s in spans]
        probs = run(rows)
        row = 0
        for i, spans, targets in plan:
            for t in targets:
                c = classes.index(predictions[i].stance[t])
                scores[(i, t)] += probs.stance[t][row:row + len(spans), c]
            row += len(spans)
    if method in ("both", "occlusion"):
        chosen: dict[int, list[int]] = {}
        for i, spans, targets in plan:
            keep = set(range(len(spans)))
            if method == "both" and candidates is not None and len(spans) > candidates:
                keep = {int(k) for t in targets for k in np.argsort(-scores[(i, t)], kind="stable")[:candidates]}
            chosen[i] = sorted(keep)
        rows = [(i, _without(texts[i], spans[k])) for i, spans, _ in plan for k in chosen[i]]
        probs = run(rows)
        row = 0
        for i, spans, targets in plan:
            ks = chosen[i]
            for t in targets:
                label = predictions[i].stance[t]
                drop = float(predictions[i].stance_probs[t][label]) - probs.stance[t][row:row + len(ks), classes.index(label)]
                full = np.full(len(spans), -np.inf)
                full[ks] = scores[(i, t)][ks] + drop
                scores[(i, t)] = full
            row += len(ks)
    for i, spans, targets in plan:
        for t in targets:
            best = int(np.argmax(scores[(i, t)]))  # the first sentence on ties: deterministic
            span = spans[best]
            out[i][t] = Evidence(texts[i][span.start:span.end], span.start, span.end,
                                 float(scores[(i, t)][best]), len(spans))
    return out
