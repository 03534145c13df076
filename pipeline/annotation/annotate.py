"""Terminal annotation: a session (what is saved), a draft per item (what is being typed) and a key loop.

:class:`AnnotationSession` knows which items are left, saves a label (appended to the label file and
fsynced at once), skips and removes saved labels; it never prints. :func:`run_annotation` drives it with
an input function ``ask(prompt) -> key`` and an optional ``show(view)``; the CLI reads single key presses
from the terminal, tests pass a list of keys.

One key per decision, and no key means two things:

* labels: sentiment ``n`` negative, ``u`` neutral, ``p`` positive; stance ``f`` favor, ``a`` against,
  ``o`` none (other classes get the first free letter of their name). A label key sets the field under
  the cursor and moves to the next field; the item is saved after its last field.
* with a model, every field starts at the model's suggestion and every non-none stance at the model's
  evidence sentence: **Enter** accepts all remaining fields and saves the item; **space** keeps the
  field under the cursor and moves on.
* ``e`` moves the evidence of the stance just set or kept (if that one is none: of the stance under the
  cursor) to the next sentence; after the last sentence comes "no evidence", then the first again.
* ``z`` undoes the last action: a field set, an evidence change, a save (the label is removed from the
  file and the item comes back as it was) or a skip. In a resumed session with nothing done yet it
  removes the last label in the file. ``s`` skips the item, ``q`` quits, ``?`` lists the keys.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from pipeline.annotation.suggestions import SuggestFn, Suggestion, agreement_with_model
from pipeline.config.schema import LabelSchema
from pipeline.data.labels import (
    LabelRecord,
    append_label,
    check_label_file,
    labelled_ids,
    now_iso,
    remove_last_label,
)
from pipeline.data.selection import ItemContext
from pipeline.errors import UserError
from pipeline.inference.evidence import Span, split_sentences

SKIP, UNDO, QUIT, HELP, EVIDENCE = "s", "z", "q", "?", "e"
ACCEPT_KEYS = ("\r", "\n", "")  # Enter (a raw terminal sends \r; a line reader gives "")
KEEP = " "
COMMAND_KEYS = (SKIP, UNDO, QUIT, HELP, EVIDENCE)
PREFERRED_KEYS = {"negative": "n", "neutral": "u", "positive": "p", "favor": "f", "against": "a"}


def assign_keys(classes: Sequence[str], taken: Sequence[str] = ()) -> dict[str, str]:
    """One letter per class, unique among ``classes`` and ``taken``: the usual key when known, else the first
    free letter of its name; never a command key."""
    keys: dict[str, str] = {}
    for cls in classes:
        candidates = [PREFERRED_KEYS.get(cls, "")] + [ch for ch in cls.lower() if ch.isalnum()] + \
            list("bcdghijklmrtvwxy0123456789")
        for key in candidates:
            if key and key not in keys and key not in taken and key not in COMMAND_KEYS:
                keys[key] = cls
                break
        else:  # pragma: no cover - more classes than keys
            raise UserError(f"cannot assign a key to class {cls!r}")
    return keys


def schema_keys(schema: LabelSchema) -> tuple[dict[str, str], dict[str, str]]:
    """(sentiment keys, stance keys): disjoint, so every key names exactly one label."""
    sentiment = assign_keys(schema.sentiment_classes)
    return sentiment, assign_keys(schema.stance_classes, taken=tuple(sentiment))


@dataclass
class Progress:
    done: int
    total: int
    skipped: int
    saved: int = 0  # saved in this session


class AnnotationSession:
    """Labelling state for a list of items and one label file.

    Args:
        items: The items to label, in the order to show them (with their context).
        schema: The label schema (classes and targets).
        labels_path: The label file; items already in it are treated as done (resume).
        annotator: Name written into every record.
        clock: Returns the ``labelled_at`` timestamp (injectable for tests).
        suggest: Optional model suggestions, ``suggest(ctx) -> Suggestion | None``.
    """

    def __init__(self, items: Sequence[ItemContext], schema: LabelSchema, labels_path: str | Path,
                 annotator: str, clock: Callable[[], str] = now_iso, suggest: SuggestFn | None = None) -> None:
        if not annotator.strip():
            raise UserError("--annotator must not be empty")
        self.items = list(items)
        self.schema = schema
        self.path = Path(labels_path)
        self.annotator = annotator
        self.clock = clock
        self.suggest = suggest
        self.ids = {c.item_id for c in self.items}
        self._by_id = {c.item_id: c for c in self.items}
        existing = check_label_file(self.path, schema) if self.path.exists() else None
        if existing is not None:
            broken = [p for p in existing.problems if p.kind in ("unreadable", "bad_json", "not_object")]
            if broken:
                raise UserError(broken[0].message + " (fix the file before annotating into it)",
                                broken[0].path, broken[0].line)
        self.done: set[str] = labelled_ids(self.path) & self.ids
        self.skipped: set[str] = set()
        self.saved: list[LabelRecord] = []  # saved in this session, still in the file
        self.shown: dict[str, Suggestion] = {}  # suggestions shown, by item
        self._front: list[str] = []  # items brought back by undo, shown before the rest

    # ---- queries ------------------------------------------------------------------------------
    def next_item(self) -> ItemContext | None:
        """The next item to label: one brought back by undo first, else the first neither labelled nor skipped."""
        while self._front:
            item_id = self._front[-1]
            if item_id not in self.done:
                return self._by_id[item_id]
            self._front.pop()
        for ctx in self.items:
            if ctx.item_id not in self.done and ctx.item_id not in self.skipped:
                return ctx
        return None

    def progress(self) -> Progress:
        return Progress(done=len(self.done), total=len(self.items), skipped=len(self.skipped - self.done),
                        saved=len(self.saved))

    def suggestion(self, ctx: ItemContext) -> Suggestion | None:
        sug = self.suggest(ctx) if self.suggest is not None else None
        if sug is not None:
            self.shown[ctx.item_id] = sug
        return sug

    # ---- actions ------------------------------------------------------------------------------
    def record(self, item_id: str, sentiment: str, stance: dict[str, str], note: str | None = None,
               evidence: dict[str, dict[str, int]] | None = None) -> LabelRecord:
        """Validate and save one item's labels (append + fsync)."""
        if item_id not in self.ids:
            raise UserError(f"item {item_id!r} is not in this annotation session")
        if item_id in self.done:
            raise UserError(f"item {item_id!r} is already labelled in {self.path}; undo it first")
        if sentiment not in self.schema.sentiment_classes:
            raise UserError(f"unknown sentiment {sentiment!r}")
        missing = [t for t in self.schema.target_names if t not in stance]
        extra = [t for t in stance if t not in self.schema.targets]
        bad = [f"{t}={v}" for t, v in stance.items() if v not in self.schema.stance_classes]
        if missing or extra or bad:
            raise UserError(f"stance for {item_id!r}: missing {missing}, unknown targets {extra}, "
                            f"unknown labels {bad}")
        evidence = {t: span for t, span in (evidence or {}).items() if stance.get(t) != self.schema.none_class}
        rec = LabelRecord(item_id=item_id, sentiment=sentiment,
                          stance={t: stance[t] for t in self.schema.target_names},
                          annotator=self.annotator, labelled_at=self.clock(), note=note or None,
                          evidence=evidence or None)
        append_label(self.path, rec)
        self.done.add(item_id)
        self.skipped.discard(item_id)
        self.saved.append(rec)
        if self._front and self._front[-1] == item_id:
            self._front.pop()
        return rec

    def skip(self, item_id: str) -> None:
        """Leave an item unlabelled for this session (it comes back in the next one)."""
        self.skipped.add(item_id)
        if self._front and self._front[-1] == item_id:
            self._front.pop()

    def bring_back(self, item_id: str) -> None:
        """Show ``item_id`` next (after its label or skip was undone)."""
        self.done.discard(item_id)
        self.skipped.discard(item_id)
        self._front.append(item_id)

    def unsave(self, item_id: str) -> bool:
        """Remove the last saved label of ``item_id`` from the file; the item is shown next."""
        if remove_last_label(self.path, {item_id}) is None:
            return False
        self.saved = [r for r in self.saved if r.item_id != item_id]
        self.bring_back(item_id)
        return True

    def undo(self) -> str | None:
        """Remove the last label in the file of an item in this selection; that item is shown next."""
        item_id = remove_last_label(self.path, self.ids)
        if item_id is None:
            return None
        self.saved = [r for r in self.saved if r.item_id != item_id]
        self.bring_back(item_id)
        return item_id


# ---- one item being labelled ------------------------------------------------------------------
@dataclass
class Draft:
    """The labels typed (or suggested) so far for one item, the cursor and the evidence per stance."""

    ctx: ItemContext
    fields: list[str]
    values: dict[str, str | None]
    evidence: dict[str, Span | None]
    sentences: list[Span]
    suggestion: Suggestion | None = None
    cursor: int = 0

    @classmethod
    def start(cls, ctx: ItemContext, schema: LabelSchema, suggestion: Suggestion | None) -> Draft:
        fields = ["sentiment", *schema.target_names]
        values: dict[str, str | None] = {f: suggestion.value(f) if suggestion else None for f in fields}
        evidence: dict[str, Span | None] = {t: None for t in schema.target_names}
        if suggestion is not None:
            for t, ev in suggestion.evidence.items():
                evidence[t] = Span(ev.start, ev.end)
        return cls(ctx, fields, values, evidence, split_sentences(ctx.text), suggestion)

    def copy(self) -> Draft:
        return replace(self, values=dict(self.values), evidence=dict(self.evidence))

    @property
    def field(self) -> str:
        return self.fields[min(self.cursor, len(self.fields) - 1)]

    def evidence_target(self, none_class: str) -> str | None:
        """The stance ``e`` acts on: the one just set or kept, else the one under the cursor (non-none only)."""
        for index in (self.cursor - 1, self.cursor):
            if 1 <= index < len(self.fields):
                name = self.fields[index]
                if self.values[name] not in (None, none_class):
                    return name
        return None

    def next_evidence(self, target: str) -> Span | None:
        """Cycle: the model's / current sentence → the next one → … → no evidence → the first sentence."""
        current = self.evidence[target]
        if not self.sentences:
            return None
        if current is None:
            return self.sentences[0]
        starts = [s.start for s in self.sentences]
        index = starts.index(current.start) if current.start in starts else -1
        return self.sentences[index + 1] if index + 1 < len(self.sentences) else None

    def missing(self) -> list[str]:
        return [f for f in self.fields if self.values[f] is None]


# ---- the key-driven loop ----------------------------------------------------------------------
@dataclass
class RunSummary:
    saved: int = 0
    skipped: int = 0
    undone: int = 0
    quit: bool = False
    finished: bool = False
    log: list[str] = field(default_factory=list)
    agreement: list[str] = field(default_factory=list)  # summary lines: annotator vs model


@dataclass
class View:
    """What the screen shows: the item, the draft, where the session stands and what keys do."""

    draft: Draft
    progress: Progress
    sentiment_keys: dict[str, str]
    stance_keys: dict[str, str]


def prompt_text(view: View, none_class: str = "none") -> str:
    """Two lines: every field's current value (the cursor's in brackets); the keys for the cursor's field."""
    draft = view.draft
    parts = []
    for i, name in enumerate(draft.fields):
        value = draft.values[name] or "?"
        parts.append(f"[{name}={value}]" if i == draft.cursor else f"{name}={value}")
    keys = view.sentiment_keys if draft.field == "sentiment" else view.stance_keys
    legend = " ".join(f"{k}={v}" for k, v in keys.items())
    extra = " · Enter accept all · space keep" if draft.suggestion is not None else ""
    target = draft.evidence_target(none_class)
    if target is not None:
        extra += f" · e evidence ({target})"
    return " ".join(parts) + f"\n  {draft.field}: {legend}{extra} · s skip · z undo · q quit · ? help"


def help_lines(sentiment_keys: dict[str, str], stance_keys: dict[str, str]) -> list[str]:
    return [
        "sentiment: " + ", ".join(f"{k} {v}" for k, v in sentiment_keys.items()),
        "stance: " + ", ".join(f"{k} {v}" for k, v in stance_keys.items()),
        "Enter: accept the model's suggestion for every remaining field and save",
        "space: keep the value under the cursor and go to the next field",
        "e: next sentence as evidence for the stance just set (or the one under the cursor)",
        "s: skip this item · z: undo the last action · q: quit",
    ]


class _Loop:
    """The state of :func:`run_annotation`: the current draft and the actions that can be undone."""

    def __init__(self, session: AnnotationSession, summary: RunSummary, say: Callable[[str], None]) -> None:
        self.session = session
        self.summary = summary
        self.say = say
        self.none = session.schema.none_class
        self.sentiment_keys, self.stance_keys = schema_keys(session.schema)
        self.draft: Draft | None = None
        self.actions: list[tuple[str, Draft]] = []  # (kind, the draft as it was before the action)

    def current(self) -> Draft | None:
        if self.draft is None:
            ctx = self.session.next_item()
            if ctx is None:
                return None
            self.draft = Draft.start(ctx, self.session.schema, self.session.suggestion(ctx))
        return self.draft

    def press(self, key: str) -> None:
        draft = self.draft
        assert draft is not None
        keys = self.sentiment_keys if draft.field == "sentiment" else self.stance_keys
        if key in ACCEPT_KEYS:
            self._accept(draft)
        elif key == KEEP:
            if draft.values[draft.field] is None:
                self.say(f"no suggestion for {draft.field}: choose {self._legend(keys)}")
            else:
                self._set(draft, draft.values[draft.field])
        elif key in keys:
            self._set(draft, keys[key])
        elif key == EVIDENCE:
            self._evidence(draft)
        elif key == SKIP:
            self.actions.append(("skip", draft.copy()))
            self.session.skip(draft.ctx.item_id)
            self.summary.skipped += 1
            self.say(f"skipped {draft.ctx.item_id}")
            self.draft = None
        elif key == UNDO:
            self._undo()
        elif key == HELP:
            for line in help_lines(self.sentiment_keys, self.stance_keys):
                self.say(line)
        else:
            self.say(f"unknown key {key!r} for {draft.field}: choose {self._legend(keys)} "
                     "(Enter accept, space keep, s skip, z undo, q quit, ? help)")

    @staticmethod
    def _legend(keys: dict[str, str]) -> str:
        return " / ".join(f"{k}={v}" for k, v in keys.items())

    def _set(self, draft: Draft, value: str | None) -> None:
        self.actions.append(("set", draft.copy()))
        name = draft.field
        draft.values[name] = value
        if name != "sentiment" and value == self.none:
            draft.evidence[name] = None
        draft.cursor += 1
        if draft.cursor >= len(draft.fields):
            self._save(draft, self.actions.pop()[1])

    def _accept(self, draft: Draft) -> None:
        missing = draft.missing()
        if missing:
            self.say(f"no suggestion for {', '.join(missing)}: choose a label first")
            return
        self._save(draft, draft.copy())

    def _save(self, draft: Draft, before: Draft) -> None:
        values = {f: v for f, v in draft.values.items() if v is not None}
        evidence = {t: {"start": s.start, "end": s.end} for t, s in draft.evidence.items()
                    if s is not None and values.get(t) not in (None, self.none)}
        self.session.record(draft.ctx.item_id, values["sentiment"],
                            {t: values[t] for t in self.session.schema.target_names}, evidence=evidence)
        self.actions.append(("save", before))
        self.summary.saved += 1
        self.say(f"saved {draft.ctx.item_id}")
        self.draft = None

    def _evidence(self, draft: Draft) -> None:
        target = draft.evidence_target(self.none)
        if target is None:
            self.say("e: no stance here to give evidence for (set favor/against first)")
            return
        self.actions.append(("evidence", draft.copy()))
        span = draft.next_evidence(target)
        draft.evidence[target] = span
        text = "none" if span is None else f"«{draft.ctx.text[span.start:span.end]}»"
        self.say(f"evidence for {target}: {text}")

    def _undo(self) -> None:
        if not self.actions:
            undone = self.session.undo()
            if undone is None:
                self.say("nothing to undo")
                return
            self.summary.undone += 1
            self.say(f"removed the label of {undone}; label it again")
            self.draft = None
            return
        kind, before = self.actions.pop()
        self.summary.undone += 1
        if kind in ("save", "skip"):
            item_id = before.ctx.item_id
            if kind == "save":
                self.session.unsave(item_id)
                self.summary.saved -= 1
                self.say(f"undid the save of {item_id}")
            else:
                self.session.bring_back(item_id)
                self.summary.skipped -= 1
                self.say(f"undid the skip of {item_id}")
        else:
            self.say(f"undid the {'evidence change' if kind == 'evidence' else before.field + ' choice'}")
        self.draft = before


def run_annotation(session: AnnotationSession, ask: Callable[[str], str],
                   show: Callable[[View], None] | None = None,
                   say: Callable[[str], None] | None = None) -> RunSummary:
    """Label items until none are left or the user quits; every label is saved as soon as it is complete.

    ``ask(prompt)`` returns one key; an exhausted input (EOFError/StopIteration) quits cleanly. ``show(view)``
    is called whenever a different item comes up. At the end, when the model made suggestions, the
    summary carries the agreement between the labels saved and the suggestions.
    """
    summary = RunSummary()

    def _say(message: str) -> None:
        summary.log.append(message)
        if say is not None:
            say(message)

    loop = _Loop(session, summary, _say)
    shown_for: tuple[str, int] | None = None  # (item id, undo count) of the last item shown
    try:
        while True:
            draft = loop.current()
            if draft is None:
                summary.finished = True
                skipped = len(session.skipped - session.done)
                _say(f"no items left: {skipped} skipped this session (they come back next time)" if skipped
                     else "all items in this selection are labelled")
                break
            if show is not None and shown_for != (draft.ctx.item_id, summary.undone):
                show(View(draft, session.progress(), loop.sentiment_keys, loop.stance_keys))
                shown_for = (draft.ctx.item_id, summary.undone)
            key = ask(prompt_text(View(draft, session.progress(), loop.sentiment_keys, loop.stance_keys),
                                  loop.none))
            if key is not None and key.lower() == QUIT:
                summary.quit = True
                _say(f"quit; {session.progress().done} of {len(session.items)} labelled in {session.path}")
                break
            loop.press(key if key in ACCEPT_KEYS or key == KEEP else key.lower())
    except (EOFError, StopIteration, KeyboardInterrupt):
        summary.quit = True
        _say(f"input ended; {session.progress().done} of {len(session.items)} labelled in {session.path}")
    if session.shown and session.saved:
        summary.agreement = agreement_with_model(session.saved, session.shown, session.schema).lines()
    return summary
