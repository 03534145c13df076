"""The multi-task model: one shared transformer encoder, a sentiment head and one stance head per target.

All heads read the same mean-pooled encoding, so one forward pass gives every label. Saved and loaded
by :class:`pipeline.modeling.folder.ModelFolder`.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from pipeline.modeling.base_models import resolve_base_model


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


IGNORE = -100


def multitask_loss(out: dict[str, Any], labels: dict[str, torch.Tensor], targets: list[str],
                   class_weights: dict[str, torch.Tensor | None], loss_weights: dict[str, float],
                   sent_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> torch.Tensor:
    """Weighted sum of the sentiment, per-target stance and pair-stance cross-entropies (-100 = no label).

    ``sent_weight`` weights each example's sentiment loss (e.g. auxiliary tweets count half);
    ``label_smoothing`` is passed to the sentiment and stance cross-entropies.
    """
    loss = out["sentiment"].new_zeros((), dtype=torch.float32)
    y = labels["sentiment"]
    valid = y != IGNORE
    if valid.any():
        per = F.cross_entropy(out["sentiment"][valid].float(), y[valid], weight=class_weights.get("sentiment"),
                              reduction="none", label_smoothing=label_smoothing)
        w = sent_weight[valid] if sent_weight is not None else torch.ones_like(per)
        loss = loss + loss_weights["sentiment"] * (per * w).sum() / w.sum().clamp(min=1e-6)
    for t in targets:
        y = labels[f"stance_{t}"]
        if (y != IGNORE).any():
            loss = loss + loss_weights["stance"] * F.cross_entropy(
                out["stance"][t].float(), y, weight=class_weights.get(t), ignore_index=IGNORE,
                label_smoothing=label_smoothing)
    y = labels.get("pair_stance")
    if y is not None and (y != IGNORE).any():
        loss = loss + F.cross_entropy(out["pair_stance"].float(), y, ignore_index=IGNORE)
    return loss


class MultiTaskModel(nn.Module):
    """Shared encoder + sentiment head + stance head per target.

    Args:
        encoder: A transformers encoder (``AutoModel``).
        sentiment_classes: Sentiment label names, in head output order.
        stance_classes: Stance label names, in head output order (shared by every target).
        targets: Stance target names, one head each.
        dropout: Dropout before the heads.
        pooling: ``mean`` (masked mean of the last hidden states) or ``cls``.
        target_embeddings: ``[len(targets), hidden]``, the frozen base encoder's embedding of each target's
            codebook statement, or None. When given, the stance heads are target-aware:
            ``stance[t] = head_t(x) + W (tanh(P x) * (Q e_t))`` with ``P``, ``Q``, ``W`` shared by every
            target, so what is learned about one target's statement can carry to the rare polar classes of
            another. ``W`` starts at zero: the model starts as the plain one.
    """

    COND_DIM = 256

    def __init__(self, encoder: nn.Module, sentiment_classes: list[str], stance_classes: list[str],
                 targets: list[str], dropout: float = 0.1, pooling: str = "mean",
                 target_embeddings: torch.Tensor | None = None) -> None:
        super().__init__()
        self.encoder = encoder
        self.sentiment_classes = list(sentiment_classes)
        self.stance_classes = list(stance_classes)
        self.targets = list(targets)
        self.pooling = pooling
        self.dropout_p = dropout
        hidden = encoder.config.hidden_size
        self.dropout = nn.Dropout(dropout)
        self.sentiment_head = nn.Linear(hidden, len(self.sentiment_classes))
        self.stance_heads = nn.ModuleDict({t: nn.Linear(hidden, len(self.stance_classes)) for t in self.targets})
        # Auxiliary head for target-conditioned (topic, text) stance pairs, e.g. VAST; not used at inference.
        self.pair_stance_head = nn.Linear(hidden, len(self.stance_classes))
        self.target_aware = target_embeddings is not None
        if target_embeddings is not None:
            if tuple(target_embeddings.shape) != (len(self.targets), hidden):
                raise ValueError(f"target_embeddings must be [{len(self.targets)}, {hidden}], "
                                 f"not {list(target_embeddings.shape)}")
            self.register_buffer("target_emb", target_embeddings.detach().float().clone())
            self.cond_text = nn.Linear(hidden, self.COND_DIM)
            self.cond_target = nn.Linear(hidden, self.COND_DIM)
            self.cond_out = nn.Linear(self.COND_DIM, len(self.stance_classes))
            nn.init.zeros_(self.cond_out.weight)
            nn.init.zeros_(self.cond_out.bias)

    @classmethod
    def from_base(cls, base: str, sentiment_classes: list[str], stance_classes: list[str], targets: list[str],
                  dropout: float = 0.1, pooling: str = "mean", target_statements: list[str] | None = None
                  ) -> tuple[MultiTaskModel, PreTrainedTokenizerBase]:
        """A new model over a base encoder; with ``target_statements`` (one per target, in order) its stance
        heads are target-aware, conditioned on the base encoder's embedding of each statement."""
        path = resolve_base_model(base)
        encoder = AutoModel.from_pretrained(path)
        tokenizer = AutoTokenizer.from_pretrained(path)
        emb = None
        if target_statements is not None:
            emb = statement_embeddings(encoder, tokenizer, target_statements, pooling)
        return cls(encoder, sentiment_classes, stance_classes, targets, dropout, pooling, emb), tokenizer

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pooled, dropped-out encoding of last hidden states."""
        pooled = hidden[:, 0] if self.pooling == "cls" else mean_pool(hidden, attention_mask)
        return self.dropout(pooled)

    def heads(self, pooled: torch.Tensor) -> dict[str, Any]:
        """Logits: ``{"sentiment": [B, S], "stance": {target: [B, 3]}, "pair_stance": [B, 3]}``."""
        # The order of these calls is the order gradients are summed into ``pooled``: changing it changes the
        # trained weights in their last bits, and so every model_version.
        out = {"sentiment": self.sentiment_head(pooled),
               "stance": {t: head(pooled) for t, head in self.stance_heads.items()},
               "pair_stance": self.pair_stance_head(pooled)}
        if self.target_aware:
            text = torch.tanh(self.cond_text(pooled))
            for j, t in enumerate(self.targets):
                out["stance"][t] = out["stance"][t] + self.cond_out(text * self.cond_target(self.target_emb[j]))
        return out

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        kwargs: dict[str, Any] = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and getattr(self.encoder.config, "type_vocab_size", 1) > 1:
            kwargs["token_type_ids"] = token_type_ids
        return self.pool(self.encoder(**kwargs).last_hidden_state, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None = None) -> dict[str, Any]:
        """Logits: ``{"sentiment": [B, S], "stance": {target: [B, 3]}, "pair_stance": [B, 3]}``."""
        return self.heads(self.encode(input_ids, attention_mask, token_type_ids))

    def head_state(self) -> dict[str, torch.Tensor]:
        """The heads' weights (the encoder is saved on its own), as stored in ``heads.safetensors``."""
        heads = {f"sentiment_head.{k}": v for k, v in self.sentiment_head.state_dict().items()}
        for t, head in self.stance_heads.items():
            heads.update({f"stance_heads.{t}.{k}": v for k, v in head.state_dict().items()})
        heads.update({f"pair_stance_head.{k}": v for k, v in self.pair_stance_head.state_dict().items()})
        if self.target_aware:
            heads["target_emb"] = self.target_emb
            for name in ("cond_text", "cond_target", "cond_out"):
                heads.update({f"{name}.{k}": v for k, v in getattr(self, name).state_dict().items()})
        return heads


@torch.no_grad()
def statement_embeddings(encoder: nn.Module, tokenizer: PreTrainedTokenizerBase, statements: list[str],
                         pooling: str = "mean") -> torch.Tensor:
    """The encoder's pooled embedding of each statement, ``[len(statements), hidden]`` (eval mode, fp32)."""
    was_training = encoder.training
    encoder.eval()
    enc = tokenizer(list(statements), padding=True, return_tensors="pt")
    hidden = encoder(**enc).last_hidden_state
    encoder.train(was_training)
    return hidden[:, 0] if pooling == "cls" else mean_pool(hidden, enc["attention_mask"])
