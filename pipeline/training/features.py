"""From labelled records to tokenised ``datasets`` features and padded training batches."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from datasets import Dataset
from transformers import PreTrainedTokenizerBase

from pipeline.config.schema import LabelSchema
from pipeline.modeling.encoding import InputSpec, encode_texts, special_ids
from pipeline.modeling.model import IGNORE
from pipeline.modeling.outputs import pad_numpy


def label_columns(schema: LabelSchema) -> list[str]:
    return ["sentiment", *(f"stance_{t}" for t in schema.target_names), "pair_stance"]


def record_features(records: Sequence[dict], schema: LabelSchema, tokenizer: PreTrainedTokenizerBase,
                    spec: InputSpec, sentiment_weight: float = 1.0) -> Dataset:
    """Corpus-style records (text, sentiment, stance{target}, parent_text) -> tokenised Dataset.

    A missing label (``None``) becomes -100 and is ignored by the loss.
    """
    texts = [r["text"] for r in records]
    parents = [r.get("parent_text") for r in records] if spec.include_parent else None
    ids = encode_texts(tokenizer, texts, spec, parents)
    cols: dict[str, list] = {"input_ids": ids, "length": [len(x) for x in ids],
                             "sent_weight": [sentiment_weight] * len(ids), "pair_stance": [IGNORE] * len(ids)}
    cols["sentiment"] = [schema.sentiment_classes.index(r["sentiment"]) if r.get("sentiment") else IGNORE
                         for r in records]
    for t in schema.target_names:
        cols[f"stance_{t}"] = [schema.stance_classes.index(r["stance"][t]) if r.get("stance") else IGNORE
                               for r in records]
    return Dataset.from_dict(cols)


def pair_features(pairs: Dataset, schema: LabelSchema, tokenizer: PreTrainedTokenizerBase,
                  spec: InputSpec) -> Dataset:
    """(topic, text, stance) rows -> features for the auxiliary pair-stance head (topic as 2nd segment)."""
    ids = encode_texts(tokenizer, pairs["text"], spec, pairs["topic"]) if len(pairs) else []
    n = len(ids)
    cols: dict[str, list] = {"input_ids": ids, "length": [len(x) for x in ids], "sent_weight": [0.0] * n,
                             "sentiment": [IGNORE] * n,
                             "pair_stance": [schema.stance_classes.index(s) for s in pairs["stance"]]}
    for t in schema.target_names:
        cols[f"stance_{t}"] = [IGNORE] * n
    return Dataset.from_dict(cols)


@dataclass
class Collator:
    """Dynamic padding to the longest example of the batch; label columns stacked as tensors."""

    tokenizer: PreTrainedTokenizerBase
    columns: list[str]

    def __post_init__(self) -> None:
        self.pad_id = self.tokenizer.pad_token_id or 0
        self.sep_id = special_ids(self.tokenizer)[1]

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        padded = pad_numpy([f["input_ids"] for f in features], self.pad_id, self.sep_id)
        batch = {k: torch.from_numpy(v) for k, v in padded.items()}
        for col in self.columns:
            batch[col] = torch.tensor([f[col] for f in features], dtype=torch.long)
        batch["sent_weight"] = torch.tensor([f["sent_weight"] for f in features], dtype=torch.float)
        return batch
