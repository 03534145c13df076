"""Turning item text into model inputs, shared by training and inference so both see the same thing.

Long comments: with ``truncation: head_tail`` the first ``max_length - tail - 2`` and the last ``tail``
word pieces are kept (the opening and the conclusion of a rant both carry stance); ``head`` keeps the
start only. An optional parent comment (for replies) goes in as a second segment, truncated first.

A very long text (more than ``2 * CHARS_PER_PIECE * max_length`` characters) is cut to a head and a tail
of ``CHARS_PER_PIECE * max_length`` characters each, at whitespace, before it is tokenised: the word
pieces the model reads are exactly the same (a piece never spans whitespace, and English averages under
6 characters per piece), but a 51 MB comment no longer means tokenising 51 MB. :func:`read_windows`
gives the character ranges the model read, so evidence looks only at sentences the model saw.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class InputSpec:
    """How texts become token ids.

    Args:
        max_length: Maximum word pieces per example, special tokens included.
        truncation: ``head`` or ``head_tail``.
        tail_tokens: Word pieces kept from the end with ``head_tail``.
        include_parent: Append the parent comment of a reply as a second segment.
        parent_tokens: At most this many word pieces of the parent.
    """

    max_length: int = 256
    truncation: str = "head_tail"
    tail_tokens: int = 64
    include_parent: bool = False
    parent_tokens: int = 64


CHARS_PER_PIECE = 32  # characters kept per word piece read before tokenising a very long text
_WIDEN = (1, 16)  # a head or tail with too few pieces (very long "words") is retried this much wider


def _space_before(text: str, pos: int) -> int:
    """A whitespace position at or up to 1,000 characters before ``pos`` (else ``pos``: a cut inside a word)."""
    for i in range(pos, max(pos - 1000, 0), -1):
        if text[i].isspace():
            return i
    return pos


def _space_after(text: str, pos: int) -> int:
    """Just after a whitespace at or up to 1,000 characters after ``pos`` (else ``pos``)."""
    for i in range(pos, min(pos + 1000, len(text))):
        if text[i].isspace():
            return i + 1
    return pos


def _pieces(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: InputSpec, need: Sequence[int],
            offsets: bool = False) -> list[tuple[list[int], list[tuple[int, int]]]]:
    """Word pieces (and, with ``offsets``, their character spans in the text) of each text; for a very long
    text only of a head and a tail long enough for the ``need`` pieces the model reads."""
    out: list[tuple[list[int], list[tuple[int, int]]]] = [([], [])] * len(texts)
    todo = list(range(len(texts)))
    for factor in _WIDEN:
        chars = CHARS_PER_PIECE * spec.max_length * factor
        ranges = {i: _ranges(texts[i], spec, chars) for i in todo}
        flat = [(i, a, b) for i in todo for a, b in ranges[i]]
        enc = tokenizer([texts[i][a:b] for i, a, b in flat], add_special_tokens=False, truncation=False,
                        verbose=False, return_offsets_mapping=offsets)
        got: dict[int, list[tuple[list[int], list[tuple[int, int]], int]]] = {}
        for k, (i, a, _) in enumerate(flat):
            spans = [(x + a, y + a) for x, y in enc["offset_mapping"][k]] if offsets else []
            got.setdefault(i, []).append((enc["input_ids"][k], spans, a))
        retry = []
        for i in todo:
            parts = got[i]
            head, tail = parts[0][0], parts[-1][0] if len(parts) > 1 else []
            whole = len(parts) == 1 and ranges[i][0] == (0, len(texts[i]))
            tail_need = spec.tail_tokens if spec.truncation == "head_tail" else 0
            if not whole and (len(head) <= need[i] or len(tail) < tail_need) and factor != _WIDEN[-1]:
                retry.append(i)  # too few pieces in the kept characters: widen (never for real text)
            else:
                out[i] = ([t for p in parts for t in p[0]], [o for p in parts for o in p[1]])
        todo = retry
        if not todo:
            break
    return out


def _ranges(text: str, spec: InputSpec, chars: int) -> list[tuple[int, int]]:
    if len(text) <= 2 * chars:
        return [(0, len(text))]
    head = [(0, _space_before(text, chars))]
    return head if spec.truncation != "head_tail" else [*head, (_space_after(text, len(text) - chars), len(text))]


def _cut(ids: list[int], budget: int, spec: InputSpec) -> list[int]:
    if len(ids) <= budget:
        return ids
    if spec.truncation == "head_tail" and budget > spec.tail_tokens * 2:
        return ids[: budget - spec.tail_tokens] + ids[-spec.tail_tokens:]
    return ids[:budget]


def _second_segments(tokenizer: PreTrainedTokenizerBase, n: int, pairs: Sequence[str | None] | None,
                     spec: InputSpec) -> list[list[int] | None]:
    second: list[list[int] | None] = [None] * n
    if pairs is not None:
        idx = [i for i, p in enumerate(pairs) if p]
        if idx:
            enc = tokenizer([pairs[i][: CHARS_PER_PIECE * spec.max_length] for i in idx], add_special_tokens=False,
                            truncation=False, verbose=False)["input_ids"]
            for i, ids in zip(idx, enc):
                second[i] = ids[: spec.parent_tokens]
    return second


def _budget(spec: InputSpec, second: list[int] | None) -> int:
    return spec.max_length - 2 if second is None else spec.max_length - 3 - len(second)


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: InputSpec,
                 pairs: Sequence[str | None] | None = None) -> list[list[int]]:
    """Token ids (with special tokens) per text; ``pairs`` is an optional second segment per text.

    Tokenisation runs as one batched call of the fast (Rust) tokenizer, without padding; very long texts
    are cut to a head and a tail first (the same word pieces are kept, see the module docstring).
    """
    second = _second_segments(tokenizer, len(texts), pairs, spec)
    first = _pieces(tokenizer, texts, spec, [_budget(spec, b) for b in second])
    start, sep = special_ids(tokenizer)
    out = []
    for (a, _), b in zip(first, second):
        if b is None:
            out.append([start, *_cut(a, spec.max_length - 2, spec), sep])
        else:
            a = _cut(a, _budget(spec, b), spec)
            out.append([start, *a, sep, *b, sep])
    return out


def read_windows(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: InputSpec,
                 pairs: Sequence[str | None] | None = None) -> list[tuple[int, int] | None]:
    """Per text, None if the model reads all of it, else ``(head_end, tail_start)``: it reads
    ``text[:head_end]`` and ``text[tail_start:]`` (``tail_start == len(text)`` with ``head`` truncation)."""
    out: list[tuple[int, int] | None] = [None] * len(texts)
    # a word piece covers at least one character: only texts longer than the budget can be cut
    idx = [i for i, t in enumerate(texts) if len(t) > spec.max_length - 2]
    if not idx:
        return out
    second = _second_segments(tokenizer, len(idx), [pairs[i] for i in idx] if pairs is not None else None, spec)
    budgets = [_budget(spec, b) for b in second]
    pieces = _pieces(tokenizer, [texts[i] for i in idx], spec, budgets, offsets=True)
    for i, budget, (ids, spans) in zip(idx, budgets, pieces):
        if len(ids) <= budget:
            continue
        kept = _cut(list(range(len(ids))), budget, spec)  # which pieces the model reads
        head = next((k for k in range(len(kept)) if kept[k] != k), len(kept))
        tail_start = spans[kept[head]][0] if head < len(kept) else len(texts[i])
        out[i] = (spans[kept[head - 1]][1] if head else 0, tail_start)
    return out


def special_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(start, separator) token ids: [CLS]/[SEP] for BERT-style vocabularies, else <s>/</s>."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or sep is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no [CLS]/[SEP] or <s>/</s> tokens")
    return int(start), int(sep)
