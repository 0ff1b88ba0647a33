"""The results of a real-or-synthetic study (``melanet.studies.synthetic_study``): can readers tell them apart?

The positive class is *synthetic* (``label`` 1). For every reader, on the cases they answered:

- ``accuracy`` (right answers / answers) with a Wilson interval, and the same for ``sensitivity`` (synthetic
  cases called synthetic) and ``specificity`` (real cases called real);
- ``auc``: the area under the reader's ROC of their rating, synthetic/confidence 5 = 10 ... synthetic/1 = 6,
  real/1 = 5 ... real/5 = 1 (ties count one half), with DeLong's variance (DeLong et al. 1988: the
  structural components' variances over m synthetic and n real cases) and a normal ``auc_ci``, clipped to
  [0, 1]. 0.5 = the reader cannot tell synthetic from real; 1 = always can; below 0.5 = takes synthetic for
  real more often than real.

``pooled`` (at least ``MINIMUM_READERS`` readers who answered every case, and at least two cases of each
class): the readers' mean AUC as a single-treatment Obuchowski-Rockette analysis with random readers and
random cases (``obuchowski_rockette.single_treatment``: jackknife error covariance over cases,
SE^2 = (MS(R) + r max(Cov2, 0)) / r, Student's t on Hillis's df; Hillis, Obuchowski & Berbaum 2011), a
t test of mean AUC = 0.5 on the same SE and df, and the readers' mean accuracy. ``sentence`` says it in one
plain sentence. Readers the organiser voided are left out and listed under ``voided``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from melanet.evaluation import delong, metrics, obuchowski_rockette
from melanet.studies import access, mrmc
from melanet.studies import responses as responses_module
from melanet.studies import study as study_module

CONFIDENCE_LEVEL = 0.95
MINIMUM_READERS = 2
CHANCE = 0.5


def rating(decision: str, confidence: int) -> int:
    """1..10: real/5 = 1 ... real/1 = 5, synthetic/1 = 6 ... synthetic/5 = 10."""
    return 5 + confidence if decision == study_module.KIND_DECISIONS[study_module.REAL_OR_SYNTHETIC][1] \
        else 6 - confidence


def _proportion(successes: int, trials: int) -> tuple[float, list[float]]:
    low, high = metrics.wilson_interval(successes, trials, CONFIDENCE_LEVEL)
    return (successes / trials if trials else math.nan), [low, high]


def auc_with_interval(labels: np.ndarray, scores: np.ndarray, confidence: float = CONFIDENCE_LEVEL) -> dict[str, Any]:
    """AUC of (N,) ``scores`` against (N,) 0/1 ``labels`` with DeLong's SE and a normal CI clipped to [0, 1];
    every figure nan without both classes."""
    labels, scores = np.asarray(labels, dtype=np.int64), np.asarray(scores, dtype=np.float64)
    if not (labels.size and 0 < labels.sum() < labels.size):
        return {"auc": math.nan, "auc_se": math.nan, "auc_ci": [math.nan, math.nan]}
    aucs, covariance = delong.auc_covariance(labels, scores[None, :])
    auc, se = float(aucs[0]), math.sqrt(max(float(covariance[0, 0]), 0.0))
    half = float(stats.norm.ppf(0.5 + confidence / 2)) * se
    return {"auc": auc, "auc_se": se, "auc_ci": [max(0.0, auc - half), min(1.0, auc + half)]}


def reader_figures(study: study_module.Study, answers: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every figure of one reader from ``answers`` (case id -> answer row)."""
    positive = study.decisions[1]
    cases = [study.case(case_id) for case_id in sorted(answers)]
    labels = np.array([case.label for case in cases], dtype=np.int64)
    rows = [answers[case.case] for case in cases]
    said_synthetic = np.array([row["decision"] == positive for row in rows], dtype=np.int64)
    ratings = np.array([rating(row["decision"], row["confidence"]) for row in rows], dtype=np.float64)
    right = int(np.sum(said_synthetic == labels))
    caught = int(np.sum((said_synthetic == 1) & (labels == 1)))
    passed = int(np.sum((said_synthetic == 0) & (labels == 0)))
    accuracy, accuracy_ci = _proportion(right, labels.size)
    sensitivity, sensitivity_ci = _proportion(caught, int(labels.sum()))
    specificity, specificity_ci = _proportion(passed, int(labels.size - labels.sum()))
    figures = {"n": int(labels.size), "n_synthetic": int(labels.sum()), "n_real": int(labels.size - labels.sum()),
               "correct": right, "accuracy": accuracy, "accuracy_ci": accuracy_ci,
               "sensitivity": sensitivity, "sensitivity_ci": sensitivity_ci,
               "specificity": specificity, "specificity_ci": specificity_ci,
               **auc_with_interval(labels, ratings),
               "complete": len(cases) == len(study.cases),
               "mean_seconds": float(np.mean([row["seconds"] for row in rows])) if rows else math.nan}
    figures["sentence"] = sentence(figures["auc"], figures["auc_ci"], "this reader")
    return figures


def pooled(study: study_module.Study, readers: list[str], responses: list[dict[str, Any]],
           accuracies: list[float]) -> dict[str, Any]:
    """The single-treatment OR analysis of the complete ``readers`` (see the module docstring)."""
    labels = np.array([case.label for case in study.cases], dtype=np.int64)
    n_synthetic = int(labels.sum())
    if len(readers) < MINIMUM_READERS or min(n_synthetic, labels.size - n_synthetic) < 2:
        return {"available": False, "complete_readers": readers,
                "reason": f"needs {MINIMUM_READERS} readers who answered every case (and 2 cases of each class); "
                          f"{len(readers)} have"}
    ratings = np.array([[[rating(answers[case.case]["decision"], answers[case.case]["confidence"])
                          for case in study.cases]
                         for answers in (responses_module.answers_of(responses, reader, study.phases[0])
                                         for reader in readers)]], dtype=np.float64)  # (1, r, c)
    aucs = obuchowski_rockette.reader_aucs(labels, ratings)[0]
    covariance = obuchowski_rockette.error_covariance(labels, ratings, "jackknife")
    single = obuchowski_rockette.single_treatment(aucs, covariance, CONFIDENCE_LEVEL)
    t_value = (single["auc"] - CHANCE) / single["se"] if single["se"] > 0 else math.nan
    p_value = float(2 * stats.t.sf(abs(t_value), single["df"])) if math.isfinite(t_value) else math.nan
    return {"available": True, "readers": readers, "reader_aucs": [float(value) for value in aucs],
            "auc": single["auc"], "auc_se": single["se"], "df": single["df"],
            "auc_ci": [single["ci_low"], single["ci_high"]], "t_vs_chance": t_value, "p_vs_chance": p_value,
            "mean_accuracy": float(np.mean(accuracies)),
            "variance_components": {"var_error": single["var"], "cov2": single["cov2"], "ms_r": single["ms_r"]},
            "method": ("single-treatment Obuchowski-Rockette, random readers and cases: jackknife covariance over "
                       "cases, Hillis df (Hillis, Obuchowski & Berbaum 2011); t test of mean AUC = 0.5")}


def sentence(auc: float, interval: list[float], who: str) -> str:
    """One plain sentence: 0.5 means indistinguishable."""
    if auc is None or not math.isfinite(auc):
        return f"No AUC for {who} yet (it needs answers on real and synthetic cases)."
    low, high = interval
    figures = f"{who} told synthetic from real melanomas at AUC {auc:.2f} (95 % CI {low:.2f} to {high:.2f})"
    if low > CHANCE:
        verdict = "better than chance: these synthetic lesions can be told from real ones"
    elif high < CHANCE:
        verdict = "below chance: the synthetic lesions were taken for real more often than the real ones"
    else:
        verdict = "the interval includes 0.5: no better than chance at telling them apart"
    return f"{figures[0].upper()}{figures[1:]}; 0.5 means indistinguishable, 1 always told apart: {verdict}."


def compute(study: study_module.Study, responses: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole ``results.json`` mapping of a real-or-synthetic study (see the module docstring)."""
    left_out = access.voided(study)
    experience = access.experience(study)
    voided = [{"reader": name, "reason": reason, "answers": sum(row["reader"] == name for row in responses)}
              for name, reason in sorted(left_out.items())]
    responses = [row for row in responses if row["reader"] not in left_out]
    phase = study.phases[0]
    entries = []
    for reader in sorted({row["reader"] for row in responses}):
        answers = responses_module.answers_of(responses, reader, phase)
        if answers:
            entries.append({"reader": reader, "phase": phase, "experience": experience.get(reader),
                            **reader_figures(study, answers)})
    complete = [entry for entry in entries if entry["complete"]]
    summary = pooled(study, [entry["reader"] for entry in complete], responses, [e["accuracy"] for e in complete])
    if summary["available"]:
        headline = sentence(summary["auc"], summary["auc_ci"], f"the {len(complete)} readers together")
    elif len(complete) == 1:
        headline = sentence(complete[0]["auc"], complete[0]["auc_ci"], "the one reader who finished")
    else:
        headline = "No reader has answered every case yet."
    return mrmc.json_safe({
        "study": study.name, "kind": study.kind, "question": study.info.get("question", ""),
        "gan_run": study.info.get("gan_run"), "n_cases": len(study.cases),
        "n_synthetic": sum(case.label for case in study.cases),
        "n_real": sum(1 - case.label for case in study.cases), "phases": list(study.phases),
        "confidence_level": CONFIDENCE_LEVEL, "rating": study.info.get("rating", ""), "responses": len(responses),
        "voided": voided, "readers": entries, "pooled": summary, "sentence": headline,
        "incomplete_readers": sorted(entry["reader"] for entry in entries if not entry["complete"]),
    })
