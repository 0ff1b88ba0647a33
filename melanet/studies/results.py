"""Readers against the model on the same cases: ``results.json`` of a study.

For every reader and phase (on the cases that reader answered in that phase):

- ``sensitivity`` TP/(TP+FN) and ``specificity`` TN/(TN+FP) of the decisions, each with a Wilson
  interval (``*_ci`` = [low, high] at ``confidence_level``);
- ``auc`` of the reader's ordinal rating, ``rating(decision, confidence)``: malignant with confidence 5
  = 10, ..., malignant/1 = 6, benign/1 = 5, ..., benign/5 = 1 (ties count one half);
- ``kappa_vs_model``: Cohen's kappa between the reader's decisions and the model's decisions at the
  study's threshold (``model_decision`` of ``cases.csv``);
- ``model``: the model's AUC, sensitivity and specificity on the same cases;
- ``model_sensitivity_at_reader_specificity``: the highest sensitivity on the model's empirical ROC
  among its points whose specificity is at least the reader's, and ``model_specificity_at_reader_sensitivity``
  the other way round;
- ``delong``: the paired DeLong test of reader-rating AUC against model AUC on the same cases
  (``melanet.evaluation.delong``): ``auc_reader``, ``auc_model``, ``delta_auc`` (reader - model) with its CI, ``p``.

``aided_vs_unaided`` (readers who answered a case in both phases, on those cases): answers that went
right->wrong and wrong->right, changes towards and away from the model's decision, and the change
(aided - unaided) in sensitivity, specificity and rating AUC. ``mean_reader`` averages the readers who
finished a phase. Undefined figures (no malignant case answered, ...) are ``null``. The file is a pure
function of ``cases.csv``, ``study.json`` and ``responses.csv``: no timestamp, so the dashboard and the
command line write the same bytes.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as sklearn_metrics

from melanet.runs import runs
from melanet.evaluation import delong, metrics
from melanet.studies import mrmc
from melanet.studies import responses as responses_module
from melanet.studies import study as study_module

CONFIDENCE_LEVEL = 0.95
AUC_BOOTSTRAP_SAMPLES = 2000


def rating(decision: str, confidence: int) -> int:
    """The ordinal rating 1..10 of an answer: benign/5 = 1 ... benign/1 = 5, malignant/1 = 6 ... malignant/5 = 10."""
    return 5 + confidence if decision == study_module.DECISIONS[1] else 6 - confidence


def cohen_kappa(first: np.ndarray, second: np.ndarray) -> float:
    """Cohen's kappa of two (N,) 0/1 raters; nan when chance agreement is 1 (both constant and equal)."""
    first, second = np.asarray(first, dtype=float), np.asarray(second, dtype=float)
    observed = float(np.mean(first == second))
    expected = float(first.mean() * second.mean() + (1 - first.mean()) * (1 - second.mean()))
    return (observed - expected) / (1 - expected) if expected < 1 else math.nan


def _proportion(successes: int, trials: int) -> tuple[float, list[float]]:
    low, high = metrics.wilson_interval(successes, trials, CONFIDENCE_LEVEL)
    return (successes / trials if trials else math.nan), [low, high]


def decision_figures(labels: np.ndarray, malignant: np.ndarray) -> dict[str, Any]:
    """Counts, sensitivity and specificity (with Wilson CIs) of (N,) 0/1 decisions against (N,) 0/1 labels."""
    tp = int(np.sum((malignant == 1) & (labels == 1)))
    fn = int(np.sum((malignant == 0) & (labels == 1)))
    tn = int(np.sum((malignant == 0) & (labels == 0)))
    fp = int(np.sum((malignant == 1) & (labels == 0)))
    sensitivity, sensitivity_ci = _proportion(tp, tp + fn)
    specificity, specificity_ci = _proportion(tn, tn + fp)
    return {"n": int(labels.size), "n_malignant": tp + fn, "n_benign": tn + fp, "tp": tp, "fp": fp, "tn": tn,
            "fn": fn, "sensitivity": sensitivity, "sensitivity_ci": sensitivity_ci, "specificity": specificity,
            "specificity_ci": specificity_ci, "accuracy": (tp + tn) / labels.size if labels.size else math.nan}


def _two_classes(labels: np.ndarray) -> bool:
    return bool(labels.size) and 0 < int(labels.sum()) < labels.size


def model_trade_offs(labels: np.ndarray, probabilities: np.ndarray, sensitivity: float,
                     specificity: float) -> dict[str, float]:
    """The model's best sensitivity at specificity >= the reader's, and best specificity at sensitivity >= it,
    read off its empirical ROC on these cases (every threshold, no interpolation)."""
    if not _two_classes(labels):
        return {"model_sensitivity_at_reader_specificity": math.nan,
                "model_specificity_at_reader_sensitivity": math.nan}
    fpr, tpr, _ = sklearn_metrics.roc_curve(labels, probabilities, drop_intermediate=False)
    model_specificity = 1 - fpr
    tolerance = 1e-12
    at_specificity = tpr[model_specificity >= specificity - tolerance].max() if math.isfinite(specificity) else math.nan
    at_sensitivity = model_specificity[tpr >= sensitivity - tolerance].max() if math.isfinite(sensitivity) else math.nan
    return {"model_sensitivity_at_reader_specificity": float(at_specificity),
            "model_specificity_at_reader_sensitivity": float(at_sensitivity)}


def _delong(labels: np.ndarray, ratings: np.ndarray, probabilities: np.ndarray) -> dict[str, Any]:
    if not _two_classes(labels):
        return {"available": False, "reason": "needs at least one malignant and one benign case"}
    test = delong.delong_test(labels, ratings, probabilities, confidence=CONFIDENCE_LEVEL)
    return {"available": True, "auc_reader": test["auc_a"], "auc_model": test["auc_b"],
            "delta_auc": test["delta_auc"], "ci": [test["ci_low"], test["ci_high"]], "z": test["z"],
            "p": test["p"], "method": "paired DeLong test (reader rating vs model probability, same cases)"}


def reader_figures(study: study_module.Study, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every figure of one reader in one phase from ``answers`` (case id -> answer row)."""
    cases = [study.case(case_id) for case_id in sorted(answers)]
    labels = np.array([case.label for case in cases], dtype=np.int64)
    probabilities = np.array([case.prob_malignant for case in cases], dtype=np.float64)
    model_malignant = np.array([case.model_decision == study_module.DECISIONS[1] for case in cases], dtype=np.int64)
    rows = [answers[case.case] for case in cases]
    malignant = np.array([row["decision"] == study_module.DECISIONS[1] for row in rows], dtype=np.int64)
    ratings = np.array([rating(row["decision"], row["confidence"]) for row in rows], dtype=np.float64)
    figures = decision_figures(labels, malignant)
    figures["complete"] = len(cases) == len(study.cases)
    figures["auc"] = metrics.auc(labels, (ratings - 1) / 9) if labels.size else math.nan
    figures["kappa_vs_model"] = cohen_kappa(malignant, model_malignant) if labels.size else math.nan
    figures["agreement_with_model"] = float(np.mean(malignant == model_malignant)) if labels.size else math.nan
    model_figures = decision_figures(labels, model_malignant)
    figures["model"] = {"auc": metrics.auc(labels, probabilities) if labels.size else math.nan,
                        "sensitivity": model_figures["sensitivity"], "specificity": model_figures["specificity"]}
    figures.update(model_trade_offs(labels, probabilities, figures["sensitivity"], figures["specificity"]))
    figures["delong"] = _delong(labels, ratings, probabilities)
    figures["mean_seconds"] = float(np.mean([row["seconds"] for row in rows])) if rows else math.nan
    return figures


def model_summary(study: study_module.Study) -> dict[str, Any]:
    """The model on every case of the study: AUC (bootstrap CI), decisions at the threshold, ROC points."""
    labels = np.array([case.label for case in study.cases], dtype=np.int64)
    probabilities = np.array([case.prob_malignant for case in study.cases], dtype=np.float64)
    malignant = np.array([case.model_decision == study_module.DECISIONS[1] for case in study.cases], dtype=np.int64)
    summary = decision_figures(labels, malignant)
    summary["auc"] = metrics.auc(labels, probabilities)
    summary["auc_ci"] = list(metrics.bootstrap_auc_interval(labels, probabilities, samples=AUC_BOOTSTRAP_SAMPLES,
                                                            confidence=CONFIDENCE_LEVEL, seed=int(study.info["seed"])))
    roc = metrics.roc_points(labels, probabilities)
    summary["roc"] = {"fpr": roc["fpr"], "tpr": roc["tpr"]}  # thresholds left out: they are probabilities
    return summary


def aided_change(study: study_module.Study, unaided: dict[str, dict[str, Any]],
                 aided: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How one reader's answers moved from the unaided to the aided phase, on cases answered in both."""
    common = sorted(set(unaided) & set(aided))
    labels = np.array([study.case(case).label for case in common], dtype=np.int64)
    model = np.array([study.case(case).model_decision == study_module.DECISIONS[1] for case in common], dtype=np.int64)
    before = np.array([unaided[case]["decision"] == study_module.DECISIONS[1] for case in common], dtype=np.int64)
    after = np.array([aided[case]["decision"] == study_module.DECISIONS[1] for case in common], dtype=np.int64)
    right_before, right_after = before == labels, after == labels
    first, second = decision_figures(labels, before), decision_figures(labels, after)
    auc_before = metrics.auc(labels, np.array([(rating(unaided[c]["decision"], unaided[c]["confidence"]) - 1) / 9
                                               for c in common])) if common else math.nan
    auc_after = metrics.auc(labels, np.array([(rating(aided[c]["decision"], aided[c]["confidence"]) - 1) / 9
                                              for c in common])) if common else math.nan
    return {
        "n": len(common), "changed": int(np.sum(before != after)),
        "right_to_wrong": int(np.sum(right_before & ~right_after)),
        "wrong_to_right": int(np.sum(~right_before & right_after)),
        "changed_towards_model": int(np.sum((before != model) & (after == model))),
        "changed_away_from_model": int(np.sum((before == model) & (after != model))),
        "delta_sensitivity": second["sensitivity"] - first["sensitivity"],
        "delta_specificity": second["specificity"] - first["specificity"],
        "delta_auc": auc_after - auc_before,
    }


def _mean_reader(entries: list[dict[str, Any]]) -> dict[str, Any]:
    finished = [entry for entry in entries if entry["complete"]]

    def mean(key: str) -> float:
        values = [entry[key] for entry in finished if entry[key] is not None and math.isfinite(entry[key])]
        return float(np.mean(values)) if values else math.nan

    return {"readers": [entry["reader"] for entry in finished], "sensitivity": mean("sensitivity"),
            "specificity": mean("specificity"), "auc": mean("auc"), "kappa_vs_model": mean("kappa_vs_model")}


MINIMUM_READERS = 2
MINIMUM_CASES_PER_CLASS = 10
NOT_ENOUGH = "not enough readings"


def _mrmc_section(study: study_module.Study, complete: dict[str, list[str]],
                  responses: list[dict[str, Any]], comparison: str) -> dict[str, Any]:
    """OR/Hillis MRMC test over complete readers: ``aided`` vs ``unaided``, or each phase vs the model
    (the model as a second modality every reader "reads" with its probabilities)."""
    labels = [case.label for case in study.cases]
    n_malignant = sum(labels)
    readers = complete["both"] if comparison == "aided_vs_unaided" else complete[comparison]
    if (len(readers) < MINIMUM_READERS or n_malignant < MINIMUM_CASES_PER_CLASS
            or len(labels) - n_malignant < MINIMUM_CASES_PER_CLASS):
        return {"available": False, "reason": NOT_ENOUGH, "complete_readers": readers,
                "minimum": {"readers": MINIMUM_READERS, "cases_per_class": MINIMUM_CASES_PER_CLASS}}
    rows = []
    for reader in readers:
        phases = study.phases if comparison == "aided_vs_unaided" else (comparison,)
        for phase in phases:
            answers = responses_module.answers_of(responses, reader, phase)
            rows += [{"reader": reader, "treatment": phase, "case": case.case, "truth": case.label,
                      "rating": rating(answers[case.case]["decision"], answers[case.case]["confidence"])}
                     for case in study.cases]
            if comparison != "aided_vs_unaided":
                rows += [{"reader": reader, "treatment": "model", "case": case.case, "truth": case.label,
                          "rating": case.prob_malignant} for case in study.cases]
    treatments = list(reversed(study.phases)) if comparison == "aided_vs_unaided" else [comparison, "model"]
    result = mrmc.analyse(mrmc.table_from_rows(rows, treatments, source=f"study {study.name}"))
    return {"available": True, **result}


def compute_results(study: study_module.Study, responses: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The whole ``results.json`` mapping (see the module docstring); reads ``responses.csv`` when not given."""
    if responses is None:
        responses = responses_module.read_responses(study)
    readers = sorted({row["reader"] for row in responses})
    entries, changes = [], []
    for reader in readers:
        answers = {phase: responses_module.answers_of(responses, reader, phase) for phase in study.phases}
        for phase in study.phases:
            if answers[phase]:
                entries.append({"reader": reader, "phase": phase, **reader_figures(study, answers[phase])})
        if len(study.phases) > 1 and answers[study.phases[0]] and answers[study.phases[1]]:
            changes.append({"reader": reader, **aided_change(study, answers[study.phases[0]], answers[study.phases[1]])})
    return _json_safe({
        "study": study.name, "n_cases": len(study.cases), "n_malignant": sum(case.label for case in study.cases),
        "phases": list(study.phases), "threshold": study.info["threshold"], "confidence_level": CONFIDENCE_LEVEL,
        "rating": "malignant/confidence 5 = 10 ... malignant/1 = 6, benign/1 = 5 ... benign/5 = 1",
        "responses": len(responses), "model": model_summary(study), "readers": entries,
        "mean_reader": {phase: _mean_reader([e for e in entries if e["phase"] == phase]) for phase in study.phases},
        "aided_vs_unaided": changes,
        "incomplete_readers": sorted({e["reader"] for e in entries if not e["complete"]}),
        "mrmc": _mrmc_all(study, entries, responses),
    })


def _mrmc_all(study: study_module.Study, entries: list[dict[str, Any]],
              responses: list[dict[str, Any]]) -> dict[str, Any]:
    complete = {phase: sorted(e["reader"] for e in entries if e["phase"] == phase and e["complete"])
                for phase in study.phases}
    complete["both"] = sorted(set.intersection(*(set(complete[phase]) for phase in study.phases)))
    section = {f"{phase}_vs_model": _mrmc_section(study, complete, responses, phase) for phase in study.phases}
    if len(study.phases) > 1:
        section["aided_vs_unaided"] = _mrmc_section(study, complete, responses, "aided_vs_unaided")
    return section


def results_bytes(results: dict[str, Any]) -> bytes:
    """``results.json`` as written by the command line and offered for download by the dashboard."""
    return (json.dumps(results, indent=2) + "\n").encode("utf-8")


def write_results(study: study_module.Study) -> tuple[dict[str, Any], Path]:
    """Compute the results and write ``results.json`` atomically; returns (results, path)."""
    results = compute_results(study)
    path = study.path / study_module.RESULTS_FILE
    runs.atomic_write_bytes(path, results_bytes(results))
    return results, path


def _json_safe(value: Any) -> Any:
    """nan/inf -> None and numpy scalars -> Python numbers, recursively."""
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value
