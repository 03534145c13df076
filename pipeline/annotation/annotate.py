"""Terminal annotation: a session (pure logic) and a key-driven loop around it.

:class:`AnnotationSession` knows which items are left, records a label (appended to the label file and
fsynced at once), skips and undoes; it never prints. :func:`run_annotation` drives a session with an
input function ``ask(prompt) -> str`` and an optional ``show(context, progress)``; the CLI passes rich
prompts, tests pass a list of keys.

Keys: sentiment ``n``/``u``/``p`` (negative/neutral/positive), then per target ``f``/``a``/``n``
(favor/against/none); at any prompt ``s`` skips the item, ``z`` undoes the last saved label (that item
comes back next), ``q`` quits. Labels typed for an item are only saved once every field is answered.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

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

SKIP, UNDO, QUIT = "s", "z", "q"
COMMAND_KEYS = (SKIP, UNDO, QUIT)
PREFERRED_KEYS = {"negative": "n", "neutral": "u", "positive": "p", "favor": "f", "against": "a", "none": "n"}


def assign_keys(classes: Sequence[str]) -> dict[str, str]:
    """One-letter key per class: the usual key when known, else the first free letter of its name."""
    keys: dict[str, str] = {}
    for cls in classes:
        candidates = [PREFERRED_KEYS.get(cls, "")] + [ch for ch in cls.lower() if ch.isalnum()] + \
            list("bcdeghijklmortvwxy0123456789")
        for key in candidates:
            if key and key not in keys and key not in COMMAND_KEYS:
                keys[key] = cls
                break
        else:  # pragma: no cover - more classes than keys
            raise UserError(f"cannot assign a key to class {cls!r}")
    return keys


@dataclass
class Progress:
    done: int
    total: int
    skipped: int


class AnnotationSession:
    """Labelling state for a list of items and one label file.

    Args:
        items: The items to label, in order (with their context).
        schema: The label schema (classes and targets).
        labels_path: The label file; items already in it are treated as done (resume).
        annotator: Name written into every record.
        clock: Returns the ``labelled_at`` timestamp (injectable for tests).
    """

    def __init__(self, items: Sequence[ItemContext], schema: LabelSchema, labels_path: str | Path,
                 annotator: str, clock: Callable[[], str] = now_iso) -> None:
        if not annotator.strip():
            raise UserError("--annotator must not be empty")
        self.items = list(items)
        self.schema = schema
        self.path = Path(labels_path)
        self.annotator = annotator
        self.clock = clock
        self.ids = {c.item_id for c in self.items}
        existing = check_label_file(self.path, schema) if self.path.exists() else None
        if existing is not None:
            broken = [p for p in existing.problems if p.kind in ("unreadable", "bad_json", "not_object")]
            if broken:
                raise UserError(broken[0].message + " (fix the file before annotating into it)",
                                broken[0].path, broken[0].line)
        self.done: set[str] = labelled_ids(self.path) & self.ids
        self.skipped: set[str] = set()
        self._front: list[str] = []  # undone items, shown before the rest

    # ---- queries ------------------------------------------------------------------------------
    def next_item(self) -> ItemContext | None:
        """The next item to label: an undone one first, else the first neither labelled nor skipped."""
        while self._front:
            item_id = self._front[-1]
            if item_id not in self.done:
                return self._by_id(item_id)
            self._front.pop()
        for ctx in self.items:
            if ctx.item_id not in self.done and ctx.item_id not in self.skipped:
                return ctx
        return None

    def progress(self) -> Progress:
        return Progress(done=len(self.done), total=len(self.items), skipped=len(self.skipped - self.done))

    def _by_id(self, item_id: str) -> ItemContext:
        for ctx in self.items:
            if ctx.item_id == item_id:
                return ctx
        raise KeyError(item_id)

    # ---- actions ------------------------------------------------------------------------------
    def record(self, item_id: str, sentiment: str, stance: dict[str, str], note: str | None = None) -> LabelRecord:
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
        rec = LabelRecord(item_id=item_id, sentiment=sentiment,
                          stance={t: stance[t] for t in self.schema.target_names},
                          annotator=self.annotator, labelled_at=self.clock(), note=note or None)
        append_label(self.path, rec)
        self.done.add(item_id)
        self.skipped.discard(item_id)
        if self._front and self._front[-1] == item_id:
            self._front.pop()
        return rec

    def skip(self, item_id: str) -> None:
        """Leave an item unlabelled for this session (it comes back in the next one)."""
        self.skipped.add(item_id)
        if self._front and self._front[-1] == item_id:
            self._front.pop()

    def undo(self) -> str | None:
        """Remove the last saved label of an item in this session's selection; that item is shown next."""
        item_id = remove_last_label(self.path, self.ids)
        if item_id is None:
            return None
        self.done.discard(item_id)
        self.skipped.discard(item_id)
        self._front.append(item_id)
        return item_id


# ---- the key-driven loop ----------------------------------------------------------------------
@dataclass
class RunSummary:
    saved: int = 0
    skipped: int = 0
    undone: int = 0
    quit: bool = False
    finished: bool = False
    log: list[str] = field(default_factory=list)


class _Command(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _ask_choice(ask: Callable[[str], str], prompt: str, keys: dict[str, str],
                say: Callable[[str], None]) -> str:
    while True:
        answer = ask(prompt).strip().lower()
        if answer in COMMAND_KEYS:
            raise _Command(answer)
        if answer in keys:
            return keys[answer]
        say(f"unknown key {answer!r}: choose {' / '.join(f'{k}={v}' for k, v in keys.items())} "
            f"(s skip, z undo, q quit)")


def run_annotation(session: AnnotationSession, ask: Callable[[str], str],
                   show: Callable[[ItemContext, Progress], None] | None = None,
                   say: Callable[[str], None] | None = None) -> RunSummary:
    """Label items until none are left or the user quits; every label is saved as soon as it is complete.

    ``ask(prompt)`` returns the key typed; an exhausted input (EOFError/StopIteration) quits cleanly.
    """
    summary = RunSummary()

    def _say(message: str) -> None:
        summary.log.append(message)
        if say is not None:
            say(message)

    schema = session.schema
    sentiment_keys = assign_keys(schema.sentiment_classes)
    stance_keys = assign_keys(schema.stance_classes)
    sentiment_prompt = "sentiment [" + "/".join(f"{k}={v}" for k, v in sentiment_keys.items()) + "]"
    stance_legend = "/".join(f"{k}={v}" for k, v in stance_keys.items())
    while True:
        ctx = session.next_item()
        if ctx is None:
            summary.finished = True
            skipped = len(session.skipped - session.done)
            _say(f"no items left: {skipped} skipped this session (they come back next time)" if skipped
                 else "all items in this selection are labelled")
            return summary
        if show is not None:
            show(ctx, session.progress())
        try:
            sentiment = _ask_choice(ask, sentiment_prompt, sentiment_keys, _say)
            stance = {t: _ask_choice(ask, f"{t} [{stance_legend}]", stance_keys, _say) for t in schema.target_names}
        except _Command as cmd:
            if cmd.key == QUIT:
                summary.quit = True
                _say(f"quit; {session.progress().done} of {len(session.items)} labelled in {session.path}")
                return summary
            if cmd.key == SKIP:
                session.skip(ctx.item_id)
                summary.skipped += 1
                _say(f"skipped {ctx.item_id}")
            else:
                undone = session.undo()
                if undone is None:
                    _say("nothing to undo")
                else:
                    summary.undone += 1
                    _say(f"removed the label of {undone}; label it again")
            continue
        except (EOFError, StopIteration, KeyboardInterrupt):
            summary.quit = True
            _say(f"input ended; {session.progress().done} of {len(session.items)} labelled in {session.path}")
            return summary
        session.record(ctx.item_id, sentiment, stance)
        summary.saved += 1
        _say(f"saved {ctx.item_id}")
