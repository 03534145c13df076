"""Turning item text into model inputs, shared by training and inference so both see the same thing.

Long comments: with ``truncation: head_tail`` the first ``max_length - tail - 2`` and the last ``tail``
word pieces are kept (the opening and the conclusion of a rant both carry stance); ``head`` keeps the
start only. An optional parent comment (for replies) goes in as a second segment, truncated first.
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


def _cut(ids: list[int], budget: int, spec: InputSpec) -> list[int]:
    if len(ids) <= budget:
        return ids
    if spec.truncation == "head_tail" and budget > spec.tail_tokens * 2:
        return ids[: budget - spec.tail_tokens] + ids[-spec.tail_tokens:]
    return ids[:budget]


def encode_texts(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], spec: InputSpec,
                 pairs: Sequence[str | None] | None = None) -> list[list[int]]:
    """Token ids (with special tokens) per text; ``pairs`` is an optional second segment per text.

    Tokenisation runs as one batched call of the fast (Rust) tokenizer, without padding.
    """
    first = tokenizer(list(texts), add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
    second: list[list[int] | None] = [None] * len(first)
    if pairs is not None:
        idx = [i for i, p in enumerate(pairs) if p]
        if idx:
            enc = tokenizer([pairs[i] for i in idx], add_special_tokens=False, truncation=False, verbose=False)["input_ids"]
            for i, ids in zip(idx, enc):
                second[i] = ids
    start, sep = special_ids(tokenizer)
    out = []
    for a, b in zip(first, second):
        if b is None:
            out.append([start, *_cut(a, spec.max_length - 2, spec), sep])
        else:
            b = b[: spec.parent_tokens]
            a = _cut(a, spec.max_length - 3 - len(b), spec)
            out.append([start, *a, sep, *b, sep])
    return out


def special_ids(tokenizer: PreTrainedTokenizerBase) -> tuple[int, int]:
    """(start, separator) token ids: [CLS]/[SEP] for BERT-style vocabularies, else <s>/</s>."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    sep = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or sep is None:
        raise ValueError(f"tokenizer {type(tokenizer).__name__} has no [CLS]/[SEP] or <s>/</s> tokens")
    return int(start), int(sep)
