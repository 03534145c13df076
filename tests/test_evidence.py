"""Evidence spans: the sentence splitter's offsets, the model-chosen evidence sentence, one batched model call."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.inference.evidence import Span, find_evidence, split_sentences
from pipeline.modeling.outputs import Prediction, Probabilities


def _sentences(text):
    spans = split_sentences(text)
    for s in spans:
        assert text[s.start:s.end] == text[s.start:s.end].strip() and s.end > s.start
    return [text[s.start:s.end] for s in spans]


# ---- splitter -----------------------------------------------------------------------------------
def test_sentences_end_at_punctuation_followed_by_a_capital_and_at_line_breaks():
    text = "Another pledge! Another year? Cuts again.\n• Caseloads of 30\n\nWe said so. \"Nobody\" listened."
    assert _sentences(text) == ["Another pledge!", "Another year?", "Cuts again.", "• Caseloads of 30",
                                "We said so.", "\"Nobody\" listened."]


def test_abbreviations_initials_and_lower_case_continuations_do_not_end_a_sentence():
    assert _sentences("Dr. Patel and J. Smith met Cllr. Jones, e.g. on Monday. It went well.") == [
        "Dr. Patel and J. Smith met Cllr. Jones, e.g. on Monday.", "It went well."]
    assert _sentences("They said No. 10 knew. The answer is no. We asked again.") == [
        "They said No. 10 knew.", "The answer is no.", "We asked again."]
    assert _sentences("It never... helps. Ofsted (again). 2019 was worse.") == [
        "It never... helps.", "Ofsted (again).", "2019 was worse."]


def test_a_line_wrapped_mid_sentence_stays_one_sentence_but_a_blank_line_always_ends_one():
    assert _sentences("who readily tick the box confirming they\ncontinue to meet the standards. Next one.") == [
        "who readily tick the box confirming they\ncontinue to meet the standards.", "Next one."]
    assert _sentences("What inspectors found\nCaseloads were high.\n\nand then lower case") == [
        "What inspectors found", "Caseloads were high.", "and then lower case"]


def test_closing_quotes_stay_with_their_sentence():
    assert _sentences('She said "it is over." Then she left.') == ['She said "it is over."', "Then she left."]


def test_no_sentences_in_blank_text_and_one_in_text_without_punctuation():
    assert split_sentences("  \n \n") == []
    assert split_sentences(" just words ") == [Span(1, 11)]


# ---- choosing the evidence (a predictor whose stance follows keywords) ---------------------------
class KeywordPredictor:
    """Funding favor when a text says 'funding', against when it says 'cuts are fine'; counts its calls."""

    stance_classes = ["favor", "against", "none"]
    sentiment_classes = ["negative", "neutral", "positive"]
    targets = ["funding", "ofsted"]
    none_class = "none"

    class spec:  # noqa: N801 - mimics InputSpec
        include_parent = False

    def __init__(self):
        self.calls = []

    def predict_proba(self, texts, parents=None):
        self.calls.append(list(texts))
        funding = []
        for text in texts:
            favor = 0.9 if "funding" in text else 0.2
            against = 0.7 if "cuts are fine" in text else 0.1
            p = np.array([favor, against, 0.3])
            funding.append(p / p.sum())
        funding = np.array(funding)
        ofsted = np.tile([0.1, 0.1, 0.8], (len(texts), 1))
        return Probabilities(np.full((len(texts), 3), 1 / 3), {"funding": funding, "ofsted": ofsted})


def _prediction(funding):
    probs = {"favor": 0.6, "against": 0.2, "none": 0.2} if funding == "favor" else \
        {"favor": 0.2, "against": 0.6, "none": 0.2}
    return Prediction("neutral", {"negative": 0.2, "neutral": 0.6, "positive": 0.2},
                      {"funding": funding, "ofsted": "none"},
                      {"funding": probs, "ofsted": {"favor": 0.1, "against": 0.1, "none": 0.8}})


@pytest.mark.parametrize("method", ["both", "alone", "occlusion"])
def test_the_evidence_is_the_sentence_that_carries_the_predicted_stance(method):
    texts = ["The weather was grim. More funding would fix this! Anyway, bye.",
             "Honestly, cuts are fine by me.\nThe funding row is overblown. Next question."]
    preds = [_prediction("favor"), _prediction("against")]
    predictor = KeywordPredictor()
    (first, second) = find_evidence(predictor, texts, preds, method=method)
    assert list(first) == ["funding"] and list(second) == ["funding"]  # ofsted is none: no evidence
    assert first["funding"].text == "More funding would fix this!"
    assert second["funding"].text == "Honestly, cuts are fine by me."
    for text, ev in ((texts[0], first["funding"]), (texts[1], second["funding"])):
        assert text[ev.start:ev.end] == ev.text and ev.sentences == 3
    # every item's variants in one batched call per kind: the sentences alone, the items without a sentence
    assert [len(call) for call in predictor.calls] == ([6, 6] if method == "both" else [6])


def test_with_both_only_the_best_sentences_alone_are_also_scored_by_occlusion():
    text = "Intro here. More funding now! Cuts hurt. The weather. We need funding."
    predictor = KeywordPredictor()
    (found,) = find_evidence(predictor, [text], [_prediction("favor")], method="both", candidates=2)
    alone, occluded = predictor.calls
    assert len(alone) == 5  # the two sentences that say 'funding' are the best alone, and only they are left out
    assert occluded == ["Intro here. Cuts hurt. The weather. We need funding.",
                        "Intro here. More funding now! Cuts hurt. The weather."]
    assert found["funding"].text == "More funding now!"
    predictor.calls.clear()
    find_evidence(predictor, [text], [_prediction("favor")], method="both", candidates=None)
    assert [len(call) for call in predictor.calls] == [5, 5]


def test_items_without_a_stance_are_not_split_or_scored_and_one_sentence_items_need_no_model_call():
    none = Prediction("neutral", {}, {"funding": "none", "ofsted": "none"},
                      {"funding": {"none": 1.0}, "ofsted": {"none": 1.0}})
    predictor = KeywordPredictor()
    out = find_evidence(predictor, ["Nothing here. At all.", "  More funding now  "], [none, _prediction("favor")])
    assert out[0] == {}
    assert out[1]["funding"].text == "More funding now" and (out[1]["funding"].start, out[1]["funding"].end) == (2, 18)
    assert predictor.calls == []


def test_unknown_method_and_misaligned_inputs_are_refused():
    with pytest.raises(ValueError, match="unknown evidence method"):
        find_evidence(KeywordPredictor(), [], [], method="attention")
    with pytest.raises(ValueError, match="aligned"):
        find_evidence(KeywordPredictor(), ["a"], [])


# ---- with a trained model -----------------------------------------------------------------------------
def test_with_a_trained_model_every_non_none_stance_gets_an_exact_span(smoke_model):
    from pipeline.inference.predict import Predictor

    predictor = Predictor(smoke_model, device="cpu", precision="fp32")
    texts = ["Another pledge, another year of thirty cases each. Until the council actually funds the posts it "
             "keeps promising, nothing on my team will change.",
             "Ofsted came in March. The report was fair!\nManagers blamed the front line, as usual. I left.",
             "Fine."]
    preds = predictor.predict(texts)
    evidence = find_evidence(predictor, texts, preds)
    for text, pred, ev in zip(texts, preds, evidence):
        assert set(ev) == {t for t, label in pred.stance.items() if label != "none"}
        for e in ev.values():
            assert text[e.start:e.end] == e.text
            assert (e.start, e.end) in {(s.start, s.end) for s in split_sentences(text)}
    assert evidence == find_evidence(predictor, texts, preds)  # deterministic


# ---- in every output: predict, the store (reclassify / predict --db) and exports -------------------------
def _assert_evidence_everywhere(records):
    claims = 0
    for rec in records:
        for head in rec["stance"].values():
            ev = head.get("evidence")
            assert (ev is not None) == (head["label"] != "none")
            if ev is not None:
                claims += 1
                assert rec["text"][ev["start"]:ev["end"]] == ev["text"] and set(ev) == {"text", "start", "end",
                                                                                     "score"}
    return claims


def test_predict_store_and_export_carry_an_exact_evidence_span_for_every_stance_taken(smoke_model, seeds_dir,
                                                                                        tmp_path):
    import json

    from typer.testing import CliRunner

    from pipeline.cli.main import app

    seed = sorted(seeds_dir.glob("*.txt"))[0]
    db = tmp_path / "store.sqlite"
    runner = CliRunner()
    printed = runner.invoke(app, ["predict", str(seed), "--model", str(smoke_model), "--format", "jsonl", "--db",
                                  str(db), "--device", "cpu", "--precision", "fp32"], catch_exceptions=False)
    assert printed.exit_code == 0, printed.output
    exported = runner.invoke(app, ["export", "predictions", "--db", str(db), "--model", str(smoke_model)],
                             catch_exceptions=False)
    assert exported.exit_code == 0, exported.output
    for output in (printed.stdout, exported.stdout):
        records = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert records and _assert_evidence_everywhere(records) > 0
    table = runner.invoke(app, ["predict", str(seed), "--model", str(smoke_model), "--device", "cpu"],
                          catch_exceptions=False)
    assert table.exit_code == 0 and "underlined: the evidence sentence" in " ".join(table.stdout.split())
