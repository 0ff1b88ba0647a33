"""One decision for one image, with its evidence: what the Predict page says about an upload.

Inputs are the image's malignant probability, the run's triage ``operating_points`` (chosen on the
validation predictions, :mod:`melanet.evaluation.operating_points`), whether the image is flagged
uncertain (:func:`melanet.evaluation.uncertainty.is_uncertain`) and how similar it is to its nearest
training image beside the 1st percentile of the training images' own nearest-other similarities
(:func:`melanet.explain.retrieval.unlike_training_threshold`). In order of precedence:

1. ``unlike_training``: the nearest training image is less similar than that percentile; the model has
   seen nothing like it, so no band is stated;
2. ``cannot_rule_out``: the band would be rule-out but the image is flagged uncertain (its probability
   moves past the spread threshold when the image is flipped or turned): an uncertain image is never
   ruled out;
3. ``rule_out`` / ``between`` / ``rule_in``: the triage band (the package's one rule, malignant when
   ``p > threshold``);
4. ``no_bands``: the run has no rule-out and rule-in thresholds.

The evidence is counted, with a Wilson interval: "of 12 melanomas in the validation data, 12 (100 %
[76 %, 100 %]) scored above this threshold". No figure of the test set chooses anything here.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from melanet.common import formatting
from melanet.evaluation import metrics

KINDS = ("unlike_training", "cannot_rule_out", "rule_out", "between", "rule_in", "no_bands")


@dataclasses.dataclass(frozen=True)
class Typicality:
    """How like the training images an upload is: ``nearest`` its cosine similarity to the nearest training
    image; ``threshold`` the ``percentile``-th percentile of the ``n_training`` training images' similarity
    to their nearest other training image."""

    nearest: float
    threshold: float
    n_training: int
    percentile: float = 1.0

    @property
    def unlike(self) -> bool:
        return self.nearest < self.threshold


@dataclasses.dataclass(frozen=True)
class Decision:
    """``kind`` one of :data:`KINDS`; ``headline`` the one sentence shown; ``evidence`` the counts behind it."""

    kind: str
    headline: str
    evidence: list[str]


def _percent(value: float) -> str:
    return formatting.percent(value, 0, unit=" %")


def _where(entry: dict[str, Any]) -> str:
    chosen_on = str(entry.get("chosen_on", "")).lower()
    return "out-of-fold predictions of the training images" if "out-of-fold" in chosen_on else "validation data"


def evidence_count(entry: dict[str, Any], which: str, confidence: float = 0.95) -> dict[str, Any]:
    """The count behind a rule-out (``which="rule_out"``: melanomas scoring above the threshold) or rule-in
    (``"rule_in"``: benign lesions scoring at or below it) threshold on the data it was chosen on.

    Returns {successes, trials, share, low, high, sentence}; ``low``/``high`` the Wilson interval.
    ValueError when the entry lacks its validation counts.
    """
    validation = entry.get("validation") or {}
    try:
        n, n_malignant = int(validation["n"]), int(validation["n_malignant"])
        rate = float(validation["sensitivity" if which == "rule_out" else "specificity"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"operating point {which} has no validation n, n_malignant and rate: {validation}") from None
    trials = n_malignant if which == "rule_out" else n - n_malignant
    successes = int(round(rate * trials))
    low, high = metrics.wilson_interval(successes, trials, confidence)
    threshold = float(entry["threshold"])
    what, how = (("melanomas", "scored above") if which == "rule_out" else ("benign lesions", "scored at or below"))
    sentence = (f"{which.replace('_', '-')}: of {trials} {what} in the {_where(entry)}, {successes} "
                f"({_percent(successes / trials) if trials else '-'} [{_percent(low)}, {_percent(high)}]) "
                f"{how} this threshold ({threshold:.3f})")
    return {"successes": successes, "trials": trials, "share": successes / trials if trials else None,
            "low": low, "high": high, "sentence": sentence}


def decide(probability: float, points: dict[str, Any] | None, *, uncertain: bool,
           typicality: Typicality | None = None, spread_sentence: str = "") -> Decision:
    """The one decision for an image of malignant ``probability`` in [0, 1] (see the module docstring).

    ``spread_sentence`` describes the image's spread under flips and rotations; it joins the evidence
    when ``uncertain``. ``typicality`` None (a run without a retrieval index) skips the likeness check.
    """
    if typicality is not None and typicality.unlike:
        return Decision("unlike_training", "Unlike the images this model learnt from: the result is not meaningful.", [
            f"Its nearest training image has similarity {typicality.nearest:.3f}; {100 - typicality.percentile:g} % of "
            f"the {typicality.n_training} training images have a nearest other training image at least "
            f"{typicality.threshold:.3f} similar (percentile {typicality.percentile:g} of their similarities, each "
            "image left out of its own search)."])
    points = points or {}
    rule_out, rule_in = points.get("rule_out") or {}, points.get("rule_in") or {}
    if not (rule_out.get("available") and rule_in.get("available")):
        return Decision("no_bands", "No triage decision: this run has no rule-out and rule-in thresholds.", [
            "`melanet evaluate --run RUN --from-predictions` chooses them on the validation split."])
    low, high = float(rule_out["threshold"]), float(rule_in["threshold"])
    out_evidence = evidence_count(rule_out, "rule_out")["sentence"] + "."
    in_evidence = evidence_count(rule_in, "rule_in")["sentence"] + "."
    turned = [spread_sentence] if uncertain and spread_sentence else []
    if not metrics.predicted_malignant(probability, low):
        if uncertain:
            return Decision("cannot_rule_out", "Cannot be ruled out: the answer changes when the image is turned.",
                            turned + [f"P(malignant) {probability:.3f} is below the rule-out threshold, but an image "
                                      "flagged uncertain is never ruled out.", out_evidence])
        return Decision("rule_out", f"Rule-out: P(malignant) {probability:.3f} is below the rule-out threshold "
                                    f"{low:.3f}.", [out_evidence])
    if metrics.predicted_malignant(probability, high):
        return Decision("rule_in", f"Rule-in: P(malignant) {probability:.3f} is above the rule-in threshold "
                                   f"{high:.3f}.", [in_evidence] + turned)
    return Decision("between", f"Between: P(malignant) {probability:.3f} is neither low enough to rule out "
                               f"({low:.3f}) nor high enough to rule in ({high:.3f}).",
                    [out_evidence, in_evidence] + turned)


def other_thresholds(probability: float, points: dict[str, Any] | None, operating_threshold: float | None,
                     default_threshold: float = 0.5) -> list[str]:
    """One line per threshold the decision does not use (for a details box): where ``probability`` lies."""
    def side(threshold: float) -> str:
        return "above" if metrics.predicted_malignant(probability, threshold) else "at or below"

    lines = []
    balanced = (points or {}).get("balanced") or {}
    if balanced.get("available"):
        validation = balanced.get("validation") or {}
        lines.append(f"Balanced threshold {float(balanced['threshold']):.3f} (largest sensitivity + specificity on the "
                     f"{_where(balanced)}: sensitivity {_percent(validation.get('sensitivity', 0))}, specificity "
                     f"{_percent(validation.get('specificity', 0))}): P is {side(float(balanced['threshold']))} it.")
    if operating_threshold is not None:
        lines.append(f"The run's operating threshold {operating_threshold:.3f} (chosen on validation for a target "
                     f"sensitivity): P is {side(operating_threshold)} it.")
    lines.append(f"The default threshold {default_threshold:g}: P is {side(default_threshold)} it.")
    return lines
