"""Probe: can the evidence sentence come from the classification pass itself (no second model pass)?

For each of the 41 judged (gold item, target) pairs of ``data/evidence/person_v1.jsonl`` (see
``scripts/evidence_study.py``), the item is run once through the model and every sentence is scored from
that one pass, three ways, then compared with the person's sentence (strict, and lenient: a sentence the
person also accepted):

* ``context mean``: the stance head applied to the mean of the sentence's last-layer token states (the
  mean-pooled text encoding restricted to the sentence), probability of the gold class (temperature and
  decision bias as in the Predictor);
* ``context margin``: the same logits, gold-class logit minus the best other class;
* ``token contributions``: the sum over the sentence's tokens of each token's log-probability of the gold
  class under the head;
* ``context top-k, then alone``: the k best sentences by ``context mean`` are scored alone (the shipped
  method), the best of them wins: a second pass over k sentences per pair instead of all;
* ``alone``: every sentence scored alone, the shipped method (the reference, here in fp32 without parent
  text, so it can differ by a pair or two from ``reports/evidence.md``).

    .venv/bin/python scripts/evidence_context_probe.py --model models/default
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from evidence_study import judged_items, study_arguments  # noqa: E402

from pipeline.inference.evidence import split_sentences  # noqa: E402
from pipeline.inference.predict import Predictor  # noqa: E402
from pipeline.modeling.outputs import apply_bias  # noqa: E402


def main() -> None:
    args = study_arguments(__doc__.splitlines()[0]).parse_args()
    torch.set_grad_enabled(False)
    judged, items = judged_items(args)
    p = Predictor(args.model, device="cpu", precision="fp32")
    model, tok = p.model, p.tokenizer
    methods = ["context mean", "context margin", "token contributions", "context top-2, then alone",
               "context top-3, then alone", "alone"]
    hits: dict[str, list[tuple[bool, bool]]] = {m: [] for m in methods}
    for j in judged:
        text = items[j["item_id"]]["text"]
        enc = tok(text, return_offsets_mapping=True, truncation=True, max_length=p.spec.max_length, return_tensors="pt")
        offsets = enc.pop("offset_mapping")[0].tolist()
        hidden = model.encoder(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state[0]
        spans = split_sentences(text)
        t, c = p.targets.index(j["target"]), p.stance_classes.index(j["label"])
        def head(pooled, target=j["target"]):  # noqa: ANN001, ANN202 - the model's heads (target-aware too)
            return model.heads(pooled.unsqueeze(0))["stance"][target][0]
        scores: dict[str, list[float]] = {m: [] for m in methods[:3]}
        for s in spans:
            toks = [k for k, (a, b) in enumerate(offsets) if b > a and a < s.end and b > s.start]
            if not toks:  # a sentence the model did not read
                for m in scores:
                    scores[m].append(-np.inf)
                continue
            logits = head(hidden[toks].mean(0)).numpy()
            prob = np.exp(logits / p.stance_temperature - (logits / p.stance_temperature).max())
            prob /= prob.sum()
            if p.stance_bias is not None:
                prob = apply_bias(prob[None], p.stance_bias[t])[0]
            scores["context mean"].append(float(prob[c]))
            scores["context margin"].append(float(logits[c] - np.delete(logits, c).max()))
            per_token = torch.log_softmax(head(hidden[toks]), -1)[:, c]
            scores["token contributions"].append(float(per_token.sum()))
        alone = p.predict_proba([text[s.start:s.end] for s in spans]).stance[j["target"]][:, c]
        order = np.argsort(-np.array(scores["context mean"]), kind="stable")
        picks = {m: int(np.argmax(scores[m])) for m in scores}
        for k in (2, 3):
            keep = order[:k]
            picks[f"context top-{k}, then alone"] = int(keep[int(np.argmax(alone[keep]))])
        picks["alone"] = int(np.argmax(alone))
        for m, best in picks.items():
            span = (spans[best].start, spans[best].end)
            strict = span == (j["start"], j["end"])
            hits[m].append((strict, strict or any(span == (a["start"], a["end"]) for a in j["also"])))
    n = len(judged)
    print(f"model {p.model_version}, {n} judged pairs, fp32\n")
    print("| method | strict | lenient |\n|---|---|---|")
    for m in methods:
        v = np.array(hits[m])
        print(f"| {m} | {int(v[:, 0].sum())}/{n} ({v[:, 0].mean():.2f}) | {int(v[:, 1].sum())}/{n} ({v[:, 1].mean():.2f}) |")


if __name__ == "__main__":
    main()
