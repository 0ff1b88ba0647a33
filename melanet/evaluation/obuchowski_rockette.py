"""Multi-reader multi-case (MRMC) analysis: Obuchowski-Rockette with Hillis's degrees of freedom.

Readers j = 1..r each rate the same c cases under two treatments (modalities) i = 1, 2. The figure of
merit is the empirical AUC of each (treatment, reader), theta[i, j] (Mann-Whitney, ties count one half).
The Obuchowski-Rockette (1995) model writes

    theta[i, j] = mu + tau[i] + R[j] + (tau R)[i, j] + e[i, j]

with random readers R, (tau R) and an error e whose covariance over cases is estimated by the jackknife
over cases (Hillis 2007; the default, as OR-DBM MRMC) or by DeLong's method (MRMCaov's option).
Averaging the error covariance over pairs of (treatment, reader) cells gives

    Var  = same cell,                Cov1 = other treatment, same reader,
    Cov2 = same treatment, other reader,   Cov3 = other treatment, other reader.

Mean squares: MS(T) = r/(t-1) sum_i (theta_i. - theta_..)^2, MS(R) = t/(r-1) sum_j (theta_.j - theta_..)^2,
MS(T*R) = sum (theta_ij - theta_i. - theta_.j + theta_..)^2 / ((t-1)(r-1)).

Random readers and random cases (Hillis 2007, 2008):
    F = MS(T) / (MS(T*R) + r max(Cov2 - Cov3, 0)),
    ddf = (MS(T*R) + r max(Cov2 - Cov3, 0))^2 / (MS(T*R)^2 / ((t-1)(r-1))),
    SE(theta_1. - theta_2.) = sqrt(2/r (MS(T*R) + r max(Cov2 - Cov3, 0))), CI with Student's t on ddf;
    two identical treatments: no difference, F and p undefined (0/0; never significant);
    MS(T*R) = 0 (e.g. identical readers): ddf is infinite and p is the limiting F, (t-1) F ~ chi2(t-1);
    treatment i on its own: SE^2 = (MS(R)_i + r max(Cov2_i, 0)) / r,
    df_i = (MS(R)_i + r max(Cov2_i, 0))^2 / (MS(R)_i^2 / (r - 1)).
Fixed readers, random cases: chi2 = (t-1) MS(T) / (Var - Cov1 + (r-1) max(Cov2 - Cov3, 0)) on t-1 df,
SE = sqrt(2/r (Var - Cov1 + (r-1) max(Cov2 - Cov3, 0))), normal CI; per reader, theta_1j - theta_2j with
SE sqrt(Var_1j + Var_2j - 2 Cov_j) from that reader's own covariances.
Variance components: Var(T*R) = MS(T*R) - Var + Cov1 + Cov2 - Cov3,
Var(R) = (MS(R) - Var - (t-1) Cov1 + Cov2 + (t-1) Cov3 - Var(T*R)) / t.

Readers need not be people: with seeds in the readers' place (each seed's model a reader of the same test
images), :mod:`melanet.reproduce.seeds_summary` treats seed-to-seed variation as random the same way. This module
holds the arithmetic on arrays, shared by that analysis and the reader studies (:mod:`melanet.studies.mrmc`,
which reads a study's long table).
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy import stats

from melanet.evaluation import delong

COVARIANCE_METHODS = ("jackknife", "delong")
CONFIDENCE_LEVEL = 0.95


def reader_aucs(truth: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """(t, r) empirical AUCs (Mann-Whitney, ties one half) of ``ratings`` (t, r, c) against ``truth`` (c,) 0/1."""
    t, r, c = ratings.shape
    aucs, _, _ = delong.structural_components(truth, ratings.reshape(t * r, c))
    return aucs.reshape(t, r)


def error_covariance(truth: np.ndarray, ratings: np.ndarray, method: str = "jackknife") -> np.ndarray:
    """(t*r, t*r) covariance of the cell AUCs over cases, cells ordered treatment-major (i * r + j).

    Jackknife: leaving out diseased case k gives AUC (m AUC - V10[k]) / (m - 1), a non-diseased one
    (n AUC - V01[k]) / (n - 1) (V10, V01: DeLong's structural components), and the covariance is
    (c - 1)/c sum_k (theta_(k) - mean)(theta_(k) - mean)^T over all c cases.
    """
    if method not in COVARIANCE_METHODS:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCE_METHODS)}, got {method!r}")
    t, r, c = ratings.shape
    scores = ratings.reshape(t * r, c)
    if method == "delong":
        return delong.auc_covariance(truth, scores)[1]
    aucs, components_positive, components_negative = delong.structural_components(truth, scores)
    m, n = components_positive.shape[1], components_negative.shape[1]
    leave_one_out = np.concatenate([(m * aucs[:, None] - components_positive) / (m - 1),
                                    (n * aucs[:, None] - components_negative) / (n - 1)], axis=1)  # (K, c)
    deviations = leave_one_out - leave_one_out.mean(axis=1, keepdims=True)
    return (c - 1) / c * deviations @ deviations.T


def covariance_averages(covariance: np.ndarray, t: int, r: int) -> dict[str, float]:
    """Var, Cov1, Cov2, Cov3 of a (t*r, t*r) cell covariance (treatment-major)."""
    blocks = covariance.reshape(t, r, t, r)
    same_treatment = np.eye(t, dtype=bool)[:, None, :, None]
    same_reader = np.eye(r, dtype=bool)[None, :, None, :]
    masks = {"var": same_treatment & same_reader, "cov1": ~same_treatment & same_reader,
             "cov2": same_treatment & ~same_reader, "cov3": ~same_treatment & ~same_reader}
    return {name: float(blocks[np.broadcast_to(mask, blocks.shape)].mean()) for name, mask in masks.items()}


def single_treatment(aucs: np.ndarray, covariance: np.ndarray, confidence: float = CONFIDENCE_LEVEL) -> dict[str, Any]:
    """One treatment's mean AUC over random readers and cases: ``aucs`` (r,), ``covariance`` (r, r) of its cells.

    SE^2 = (MS(R) + r max(Cov2, 0)) / r, Student's t on df = (MS(R) + r max(Cov2, 0))^2 / (MS(R)^2 / (r - 1)).
    """
    aucs = np.asarray(aucs, dtype=np.float64)
    r = aucs.size
    mean = float(aucs.mean())
    cov2 = float(covariance[~np.eye(r, dtype=bool)].mean())
    ms_r = float(np.sum((aucs - mean) ** 2)) / (r - 1)
    term = ms_r + r * max(cov2, 0.0)
    df = term ** 2 / (ms_r ** 2 / (r - 1)) if ms_r > 0 else math.inf
    se = math.sqrt(term / r)
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return {"auc": mean, "se": se, "df": df, "ci_low": mean - half, "ci_high": mean + half,
            "var": float(np.mean(np.diag(covariance))), "cov2": cov2, "ms_r": ms_r}


def analyse(truth: np.ndarray, ratings: np.ndarray, treatments: Sequence[str], readers: Sequence[str],
            covariance: str = "jackknife", confidence: float = CONFIDENCE_LEVEL) -> dict[str, Any]:
    """The whole analysis (see the module docstring) as a JSON-ready mapping.

    ``ratings`` (2, r, c) float: treatment x reader x case, higher = more likely positive; ``truth`` (c,) 0/1
    with at least 2 of each class; r >= 2 readers. The difference is ``treatments[0] - treatments[1]``.
    """
    truth = np.asarray(truth, dtype=np.int64)
    ratings = np.asarray(ratings, dtype=np.float64)
    if ratings.ndim != 3 or ratings.shape[0] != 2 or ratings.shape[1] < 2 or ratings.shape[2] != truth.size:
        raise ValueError(f"ratings must be (2 treatments, >= 2 readers, {truth.size} cases), got {ratings.shape}")
    if len(treatments) != 2 or len(readers) != ratings.shape[1]:
        raise ValueError(f"{len(treatments)} treatment and {len(readers)} reader names for ratings {ratings.shape}")
    aucs = reader_aucs(truth, ratings)
    t, r = aucs.shape
    cell_covariance = error_covariance(truth, ratings, covariance)
    averages = covariance_averages(cell_covariance, t, r)
    var, cov1, cov2, cov3 = averages["var"], averages["cov1"], averages["cov2"], averages["cov3"]
    treatment_means, reader_means, grand_mean = aucs.mean(axis=1), aucs.mean(axis=0), float(aucs.mean())
    ms_t = r * float(np.sum((treatment_means - grand_mean) ** 2)) / (t - 1)
    ms_r = t * float(np.sum((reader_means - grand_mean) ** 2)) / (r - 1)
    interaction = aucs - treatment_means[:, None] - reader_means[None, :] + grand_mean
    ms_tr = float(np.sum(interaction ** 2)) / ((t - 1) * (r - 1))
    var_tr = ms_tr - var + cov1 + cov2 - cov3
    var_r = (ms_r - var - (t - 1) * cov1 + cov2 + (t - 1) * cov3 - var_tr) / t
    alpha = 1 - confidence
    difference = float(treatment_means[0] - treatment_means[1])

    identical = bool(np.array_equal(ratings[0], ratings[1]))

    # random readers, random cases
    error_term = ms_tr + r * max(cov2 - cov3, 0.0)
    ddf = error_term ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else math.inf
    if identical:  # 0/0: no difference to test
        f_value = p_value = math.nan
    elif error_term > 0:
        f_value = ms_t / error_term
        # MS(T*R) = 0: the limiting F on infinite ddf, i.e. (t-1) F ~ chi-square on t-1 df
        p_value = (float(stats.f.sf(f_value, t - 1, ddf)) if math.isfinite(ddf)
                   else float(stats.chi2.sf((t - 1) * f_value, t - 1)))
    else:  # a difference with no error variance at all (every reader and case agree exactly)
        f_value, p_value = math.inf, 0.0
    se = math.sqrt(2 / r * error_term)
    t_critical = float(stats.t.ppf(1 - alpha / 2, ddf))
    single = {name: single_treatment(aucs[index], cell_covariance.reshape(t, r, t, r)[index, :, index, :],
                                     confidence)
              for index, name in enumerate(treatments)}

    # fixed readers, random cases
    fixed_term = var - cov1 + (r - 1) * max(cov2 - cov3, 0.0)
    if identical:
        chi2 = math.nan
    else:
        chi2 = (t - 1) * ms_t / fixed_term if fixed_term > 0 else math.inf
    fixed_se = math.sqrt(2 / r * fixed_term) if fixed_term > 0 else 0.0
    z_critical = float(stats.norm.ppf(1 - alpha / 2))
    per_reader = []
    for j, reader in enumerate(readers):
        first, second = j, r + j
        variance = cell_covariance[first, first] + cell_covariance[second, second] - 2 * cell_covariance[first, second]
        reader_se = math.sqrt(max(float(variance), 0.0))
        reader_difference = float(aucs[0, j] - aucs[1, j])
        if reader_se > 0:
            reader_p = float(2 * stats.norm.sf(abs(reader_difference) / reader_se))
        else:
            reader_p = 1.0 if reader_difference == 0 else 0.0
        per_reader.append({"reader": reader, "difference": reader_difference, "se": reader_se,
                           "ci_low": reader_difference - z_critical * reader_se,
                           "ci_high": reader_difference + z_critical * reader_se, "p": reader_p})

    return {
        "method": "Obuchowski-Rockette, Hillis (2007) denominator degrees of freedom",
        "covariance": covariance, "confidence_level": confidence,
        "treatments": [str(name) for name in treatments], "readers": [str(name) for name in readers],
        "n_cases": int(truth.size), "n_positive": int(truth.sum()),
        "n_negative": int(truth.size - truth.sum()),
        "auc": {name: {reader: float(aucs[i, j]) for j, reader in enumerate(readers)}
                for i, name in enumerate(treatments)},
        "treatment_means": {name: float(treatment_means[i]) for i, name in enumerate(treatments)},
        "variance_components": {"var_error": var, "cov1": cov1, "cov2": cov2, "cov3": cov3,
                                "var_r": var_r, "var_tr": var_tr},
        "mean_squares": {"ms_t": ms_t, "ms_r": ms_r, "ms_tr": ms_tr},
        "error_term": error_term,
        "difference": difference, "difference_of": f"{treatments[0]} - {treatments[1]}",
        "identical_treatments": identical,
        "F": f_value, "ndf": t - 1, "ddf": ddf, "ddf_infinite": math.isinf(ddf), "p": p_value, "se": se,
        "ci_low": difference - t_critical * se, "ci_high": difference + t_critical * se,
        "single_treatment": single,
        "fixed_readers": {"chi2": chi2, "df": t - 1,
                          "p": (math.nan if identical else float(stats.chi2.sf(chi2, t - 1)) if math.isfinite(chi2)
                                else 0.0),
                          "se": fixed_se, "ci_low": difference - z_critical * fixed_se,
                          "ci_high": difference + z_critical * fixed_se, "per_reader": per_reader},
    }
