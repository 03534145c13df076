"""Baselines the evaluation report sets next to the model, all with a scikit-learn-like interface.

``fit(texts, labels)`` takes the texts and a dict of label columns (``"sentiment"`` and one per target,
each a list of class names aligned with ``texts``) and returns ``self``; ``predict(texts)`` returns the
same kind of dict for the fields the baseline covers (:attr:`fields`); baselines with class
probabilities also have ``predict_proba(texts)`` → ``{field: array [N, n_classes]}`` in schema class
order.

- :class:`MajorityBaseline`: the most frequent training label per field.
- :class:`LexiconBaseline`: cue words/phrases per class and target from ``configs/lexicon.yaml``.
- :class:`TfidfLogRegBaseline`: TF-IDF word 1-2-grams + one balanced logistic regression per field.
- :class:`VaderBaseline`: VADER compound score thresholds (sentiment only).

:func:`training_records` gives the model's exact training records (:func:`pipeline.data.splits.make_splits`,
as training uses), so the trained baselines see what the model saw.
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pipeline.config.run import RunConfig
from pipeline.config.schema import LabelSchema, load_yaml
from pipeline.data.splits import make_splits
from pipeline.errors import ConfigError

DEFAULT_LEXICON = Path("configs/lexicon.yaml")
Labels = dict[str, list[str]]


def training_records(cfg: RunConfig, schema: LabelSchema) -> tuple[list[dict], int]:
    """The labelled records the model of ``cfg`` was trained on, and the corpus size.

    The same :func:`pipeline.data.splits.make_splits` as training: the corpus train split (seed, dev
    fraction, cap) plus any domain_real training items. Auxiliary sets (TweetEval, VAST) are not included.
    """
    sp = make_splits(cfg, schema)
    return sp.train, sp.corpus_total


def record_labels(records: Sequence[dict], schema: LabelSchema) -> Labels:
    """Label columns (``sentiment`` + one per target) of corpus-style records."""
    out: Labels = {"sentiment": [r["sentiment"] for r in records]}
    for t in schema.target_names:
        out[t] = [r["stance"][t] for r in records]
    return out


class Baseline:
    """Common interface; subclasses set :attr:`name`, :attr:`description` and :attr:`fields`."""

    name = "baseline"
    description = ""
    has_proba = False

    def __init__(self, schema: LabelSchema) -> None:
        self.schema = schema
        self.fields: list[str] = ["sentiment", *schema.target_names]

    def classes(self, field: str) -> list[str]:
        return self.schema.sentiment_classes if field == "sentiment" else self.schema.stance_classes

    def fit(self, texts: Sequence[str], labels: Labels) -> Baseline:  # noqa: ARG002
        return self

    def predict(self, texts: Sequence[str]) -> Labels:
        raise NotImplementedError


class MajorityBaseline(Baseline):
    """Predicts the most frequent training label of each field (ties: first in schema order)."""

    name = "majority"
    description = "most frequent training label per field"
    has_proba = True

    def fit(self, texts: Sequence[str], labels: Labels) -> MajorityBaseline:  # noqa: ARG002
        self.majority_: dict[str, str] = {}
        self.prior_: dict[str, np.ndarray] = {}
        for f in self.fields:
            counts = Counter(labels[f])
            classes = self.classes(f)
            self.majority_[f] = max(classes, key=lambda c: (counts[c], -classes.index(c)))
            total = sum(counts[c] for c in classes) or 1
            self.prior_[f] = np.array([counts[c] / total for c in classes], dtype=float)
        return self

    def predict(self, texts: Sequence[str]) -> Labels:
        return {f: [self.majority_[f]] * len(texts) for f in self.fields}

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return {f: np.tile(self.prior_[f], (len(texts), 1)) for f in self.fields}


def _cue_pattern(cue: str) -> str:
    """A cue word/phrase as a regex: case-insensitive whole words, spaces also match hyphens, a trailing
    ``*`` matches any word ending (``underfund*`` → underfunded, underfunding)."""
    cue = cue.strip().lower().replace("\u2019", "'")
    wildcard = cue.endswith("*")
    words = cue.rstrip("*").split()
    body = r"[\s\-]+".join(re.escape(w) for w in words)
    return r"(?<![\w])" + body + (r"[\w'\-]*" if wildcard else r"(?![\w])")


def load_lexicon(path: str | Path, schema: LabelSchema) -> dict[str, dict[str, list[str]]]:
    """``{field: {class: [cues]}}`` for sentiment and every schema target, validated against the schema."""
    data = load_yaml(path)
    out: dict[str, dict[str, list[str]]] = {}
    sent = data.get("sentiment") or {}
    allowed = set(schema.sentiment_classes) - {"neutral"}
    for cls in sent:
        if cls not in allowed:
            raise ConfigError(f"sentiment class {cls!r} is not a polar sentiment class {sorted(allowed)}", path,
                              key=f"sentiment.{cls}")
    out["sentiment"] = {c: list(v or []) for c, v in sent.items()}
    stance = data.get("stance") or {}
    for t in stance:
        if t not in schema.target_names:
            raise ConfigError(f"unknown target {t!r} (schema targets: {schema.target_names})", path, key=f"stance.{t}")
    for t in schema.target_names:
        entry = stance.get(t)
        if not entry:
            raise ConfigError(f"no cues for target {t!r}", path, key=f"stance.{t}")
        for cls in entry:
            if cls not in schema.polar_classes:
                raise ConfigError(f"class {cls!r} is not one of {schema.polar_classes}", path, key=f"stance.{t}.{cls}")
        out[t] = {c: list(v or []) for c, v in entry.items()}
    return out


class LexiconBaseline(Baseline):
    """Keyword rules: per field, count the cue matches of each polar class; the class with strictly more
    matches wins, otherwise ``none`` (stance) or ``neutral`` (sentiment). No training; ``fit`` is a no-op.

    Args:
        schema: The label schema.
        lexicon: YAML file of cues (``configs/lexicon.yaml``: documented there).
    """

    name = "lexicon"
    description = "cue-word rules from configs/lexicon.yaml (not trained)"

    def __init__(self, schema: LabelSchema, lexicon: str | Path = DEFAULT_LEXICON) -> None:
        super().__init__(schema)
        self.lexicon_path = Path(lexicon)
        self.lexicon = load_lexicon(self.lexicon_path, schema)
        self._patterns = {f: {c: re.compile("|".join(_cue_pattern(q) for q in cues)) if cues else None
                              for c, cues in by_class.items()} for f, by_class in self.lexicon.items()}
        self.neutral_sentiment = "neutral" if "neutral" in schema.sentiment_classes else schema.sentiment_classes[0]

    def cue_counts(self, text: str, field: str) -> dict[str, int]:
        norm = text.lower().replace("\u2019", "'").replace("\u2018", "'")
        return {c: len(p.findall(norm)) if p is not None else 0 for c, p in self._patterns[field].items()}

    def _decide(self, counts: dict[str, int], default: str) -> str:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        if not ranked or ranked[0][1] == 0 or (len(ranked) > 1 and ranked[1][1] == ranked[0][1]):
            return default
        return ranked[0][0]

    def predict(self, texts: Sequence[str]) -> Labels:
        out: Labels = {f: [] for f in self.fields}
        for text in texts:
            out["sentiment"].append(self._decide(self.cue_counts(text, "sentiment"), self.neutral_sentiment))
            for t in self.schema.target_names:
                out[t].append(self._decide(self.cue_counts(text, t), self.schema.none_class))
        return out


class TfidfLogRegBaseline(Baseline):
    """TF-IDF (word 1-2-grams, sublinear tf) + one class-balanced logistic regression per field.

    A field whose training labels hold a single class predicts that class.
    """

    name = "tfidf_lr"
    description = "TF-IDF word 1-2-grams + balanced logistic regression, trained on the model's training split"
    has_proba = True

    def __init__(self, schema: LabelSchema, seed: int = 13, C: float = 1.0) -> None:
        super().__init__(schema)
        self.seed, self.C = seed, C

    def fit(self, texts: Sequence[str], labels: Labels) -> TfidfLogRegBaseline:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        self.vectorizer_ = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1, strip_accents="unicode")
        x = self.vectorizer_.fit_transform(list(texts))
        self.models_: dict[str, object] = {}
        for f in self.fields:
            y = list(labels[f])
            if len(set(y)) < 2:
                self.models_[f] = y[0]
                continue
            self.models_[f] = LogisticRegression(C=self.C, class_weight="balanced", max_iter=2000,
                                                 random_state=self.seed).fit(x, y)
        return self

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        x = self.vectorizer_.transform(list(texts))
        out = {}
        for f in self.fields:
            classes = self.classes(f)
            probs = np.zeros((len(texts), len(classes)))
            model = self.models_[f]
            if isinstance(model, str):
                probs[:, classes.index(model)] = 1.0
            else:
                p = model.predict_proba(x)
                for j, c in enumerate(model.classes_):
                    probs[:, classes.index(c)] = p[:, j]
            out[f] = probs
        return out

    def predict(self, texts: Sequence[str]) -> Labels:
        return {f: [self.classes(f)[i] for i in p.argmax(axis=1)] for f, p in self.predict_proba(texts).items()}


class VaderBaseline(Baseline):
    """VADER (Hutto & Gilbert 2014) compound score: ≥ 0.05 positive, ≤ -0.05 negative, else neutral (the
    thresholds its authors recommend). Sentiment only; not trained."""

    name = "vader"
    description = "VADER compound score, ±0.05 thresholds (sentiment only, not trained)"

    def __init__(self, schema: LabelSchema, threshold: float = 0.05) -> None:
        super().__init__(schema)
        missing = {"negative", "neutral", "positive"} - set(schema.sentiment_classes)
        if missing:
            raise ConfigError(f"VADER needs sentiment classes negative/neutral/positive; missing {sorted(missing)}")
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self.fields = ["sentiment"]
        self.threshold = threshold
        self.analyzer = SentimentIntensityAnalyzer()

    def predict(self, texts: Sequence[str]) -> Labels:
        out = []
        for text in texts:
            c = self.analyzer.polarity_scores(text)["compound"]
            out.append("positive" if c >= self.threshold else "negative" if c <= -self.threshold else "neutral")
        return {"sentiment": out}


def make_baselines(schema: LabelSchema, seed: int, lexicon: str | Path = DEFAULT_LEXICON) -> list[Baseline]:
    """The report's baselines, unfitted, in report order."""
    return [MajorityBaseline(schema), LexiconBaseline(schema, lexicon), TfidfLogRegBaseline(schema, seed),
            VaderBaseline(schema)]
