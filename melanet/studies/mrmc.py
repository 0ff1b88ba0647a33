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
    treatment i on its own: SE^2 = (MS(R)_i + r max(Cov2_i, 0)) / r,
    df_i = (MS(R)_i + r max(Cov2_i, 0))^2 / (MS(R)_i^2 / (r - 1)).
Fixed readers, random cases: chi2 = (t-1) MS(T) / (Var - Cov1 + (r-1) max(Cov2 - Cov3, 0)) on t-1 df,
SE = sqrt(2/r (Var - Cov1 + (r-1) max(Cov2 - Cov3, 0))), normal CI; per reader, theta_1j - theta_2j with
SE sqrt(Var_1j + Var_2j - 2 Cov_j) from that reader's own covariances.
Variance components: Var(T*R) = MS(T*R) - Var + Cov1 + Cov2 - Cov3,
Var(R) = (MS(R) - Var - (t-1) Cov1 + Cov2 + (t-1) Cov3 - Var(T*R)) / t.

Input: a long table with columns ``reader, treatment, case, truth, rating`` (truth 1 = diseased/malignant;
higher rating = more likely diseased; any ordinal or continuous rating). Every reader rates every case
under both treatments. The difference is ``treatment A - treatment B`` in the order given.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from scipy import stats

from melanet.common import formatting
from melanet.data import errors as data_errors
from melanet.evaluation import delong

COLUMNS = ("reader", "treatment", "case", "truth", "rating")
COVARIANCE_METHODS = ("jackknife", "delong")
CONFIDENCE_LEVEL = 0.95


class MRMCError(data_errors.DataError):
    """A table that cannot be analysed (names the file, line and column where there is one)."""


@dataclass(frozen=True)
class Table:
    """A complete MRMC design: ``ratings`` (t, r, c) float64, ``truth`` (c,) 0/1, names of each axis."""

    treatments: tuple[str, ...]
    readers: tuple[str, ...]
    cases: tuple[str, ...]
    truth: np.ndarray
    ratings: np.ndarray


def table_from_rows(rows: Sequence[dict[str, Any]], treatments: Sequence[str] | None = None,
                    source: str = "table") -> Table:
    """A complete (t, r, c) design from long rows (dicts with COLUMNS, values as text or numbers).

    Each row may carry ``_line`` (its line in the file) for error messages. ``treatments``: the two to
    compare, in this order (default: the only two present, in order of first appearance).
    """
    def where(row: dict[str, Any]) -> str:
        return f"{source} line {row['_line']}" if "_line" in row else source

    truth_of: dict[str, tuple[int, str]] = {}
    cells: dict[tuple[str, str, str], float] = {}
    treatment_order: list[str] = []
    reader_order: list[str] = []
    case_order: list[str] = []
    for row in rows:
        values = {}
        for column in COLUMNS:
            value = row.get(column)
            if value is None or str(value).strip() == "":
                raise MRMCError(f"{where(row)}: column '{column}' is empty")
            values[column] = str(value).strip()
        reader, treatment, case = values["reader"], values["treatment"], values["case"]
        try:
            rating_value = float(values["rating"])
        except ValueError:
            raise MRMCError(f"{where(row)}, column 'rating': expected a number, got {values['rating']!r}") from None
        if not math.isfinite(rating_value):
            raise MRMCError(f"{where(row)}, column 'rating': expected a finite number, got {values['rating']!r}")
        if values["truth"] not in ("0", "1", "0.0", "1.0"):
            raise MRMCError(f"{where(row)}, column 'truth': expected 0 (negative) or 1 (positive), "
                            f"got {values['truth']!r}")
        truth_value = int(float(values["truth"]))
        if case in truth_of and truth_of[case][0] != truth_value:
            raise MRMCError(f"{where(row)}: case {case!r} has truth {truth_value} here but {truth_of[case][0]} "
                            f"at {truth_of[case][1]} (a case has one truth)")
        truth_of.setdefault(case, (truth_value, where(row)))
        key = (treatment, reader, case)
        if key in cells:
            raise MRMCError(f"{where(row)}: reader {reader!r} rated case {case!r} under treatment {treatment!r} "
                            f"twice")
        cells[key] = rating_value
        for value, order in ((treatment, treatment_order), (reader, reader_order), (case, case_order)):
            if value not in order:
                order.append(value)
    if not cells:
        raise MRMCError(f"{source}: no ratings")
    if treatments is None:
        if len(treatment_order) != 2:
            raise MRMCError(f"{source}: {len(treatment_order)} treatments ({', '.join(treatment_order)}); "
                            f"name the two to compare (--treatments A B)")
        chosen = tuple(treatment_order)
    else:
        chosen = tuple(str(name) for name in treatments)
        if len(chosen) != 2 or chosen[0] == chosen[1]:
            raise MRMCError(f"give two different treatments to compare, got {list(chosen)}")
        for name in chosen:
            if name not in treatment_order:
                raise MRMCError(f"{source}: no treatment {name!r} (treatments: {', '.join(treatment_order)})")
    readers = [reader for reader in reader_order if any((t, reader, c) in cells for t in chosen for c in case_order)]
    cases = [case for case in case_order if any((t, r, case) in cells for t in chosen for r in readers)]
    for treatment in chosen:
        for reader in readers:
            missing = [case for case in cases if (treatment, reader, case) not in cells]
            if missing:
                shown = ", ".join(repr(case) for case in missing[:5]) + (" ..." if len(missing) > 5 else "")
                raise MRMCError(f"{source}: reader {reader!r} has no rating under treatment {treatment!r} for "
                                f"{len(missing)} case(s): {shown} (every reader must rate every case in both "
                                f"treatments)")
    truth = np.array([truth_of[case][0] for case in cases], dtype=np.int64)
    positives = int(truth.sum())
    if positives < 2 or truth.size - positives < 2:
        raise MRMCError(f"{source}: {positives} positive and {truth.size - positives} negative case(s); the "
                        f"analysis needs at least 2 of each (one-class data have no AUC)")
    if len(readers) < 2:
        raise MRMCError(f"{source}: {len(readers)} reader(s); a multi-reader analysis needs at least 2")
    ratings = np.array([[[cells[(t, r, c)] for c in cases] for r in readers] for t in chosen], dtype=np.float64)
    return Table(treatments=chosen, readers=tuple(readers), cases=tuple(cases), truth=truth, ratings=ratings)


def read_table(path: str | Path, treatments: Sequence[str] | None = None) -> Table:
    """A Table from a CSV file with header ``reader,treatment,case,truth,rating`` (extra columns ignored)."""
    path = Path(path)
    if not path.is_file():
        raise MRMCError(f"{path}: no such file")
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in (reader.fieldnames or [])]
        missing = [column for column in COLUMNS if column not in header]
        if missing:
            raise MRMCError(f"{path} line 1: missing column(s) {', '.join(missing)} (expected columns "
                            f"{', '.join(COLUMNS)}; found {', '.join(header) or 'none'})")
        reader.fieldnames = header
        rows = []
        for row in reader:
            row["_line"] = reader.line_num
            rows.append(row)
    return table_from_rows(rows, treatments, source=str(path))


def reader_aucs(table: Table) -> np.ndarray:
    """(t, r) empirical AUCs (Mann-Whitney, ties one half)."""
    t, r, c = table.ratings.shape
    aucs, _, _ = delong.structural_components(table.truth, table.ratings.reshape(t * r, c))
    return aucs.reshape(t, r)


def error_covariance(table: Table, method: str = "jackknife") -> np.ndarray:
    """(t*r, t*r) covariance of the cell AUCs over cases, cells ordered treatment-major (i * r + j).

    Jackknife: leaving out diseased case k gives AUC (m AUC - V10[k]) / (m - 1), a non-diseased one
    (n AUC - V01[k]) / (n - 1) (V10, V01: DeLong's structural components), and the covariance is
    (c - 1)/c sum_k (theta_(k) - mean)(theta_(k) - mean)^T over all c cases.
    """
    if method not in COVARIANCE_METHODS:
        raise MRMCError(f"covariance must be one of {', '.join(COVARIANCE_METHODS)}, got {method!r}")
    t, r, c = table.ratings.shape
    scores = table.ratings.reshape(t * r, c)
    if method == "delong":
        return delong.auc_covariance(table.truth, scores)[1]
    aucs, components_positive, components_negative = delong.structural_components(table.truth, scores)
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


def analyse(table: Table, covariance: str = "jackknife", confidence: float = CONFIDENCE_LEVEL) -> dict[str, Any]:
    """The whole analysis (see the module docstring) as a JSON-ready mapping."""
    aucs = reader_aucs(table)
    t, r = aucs.shape
    cell_covariance = error_covariance(table, covariance)
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

    # random readers, random cases
    error_term = ms_tr + r * max(cov2 - cov3, 0.0)
    f_value = ms_t / error_term if error_term > 0 else math.inf
    ddf = error_term ** 2 / (ms_tr ** 2 / ((t - 1) * (r - 1))) if ms_tr > 0 else math.inf
    p_value = float(stats.f.sf(f_value, t - 1, ddf)) if math.isfinite(f_value) else 0.0
    se = math.sqrt(2 / r * error_term)
    t_critical = float(stats.t.ppf(1 - alpha / 2, ddf))
    single = {}
    for index, name in enumerate(table.treatments):
        block = cell_covariance.reshape(t, r, t, r)[index, :, index, :]
        cov2_single = float(block[~np.eye(r, dtype=bool)].mean())
        ms_r_single = float(np.sum((aucs[index] - treatment_means[index]) ** 2)) / (r - 1)
        term = ms_r_single + r * max(cov2_single, 0.0)
        df_single = term ** 2 / (ms_r_single ** 2 / (r - 1)) if ms_r_single > 0 else math.inf
        se_single = math.sqrt(term / r)
        half = float(stats.t.ppf(1 - alpha / 2, df_single)) * se_single
        single[name] = {"auc": float(treatment_means[index]), "se": se_single, "df": df_single,
                        "ci_low": float(treatment_means[index]) - half, "ci_high": float(treatment_means[index]) + half,
                        "var": float(np.mean(np.diag(block))), "cov2": cov2_single, "ms_r": ms_r_single}

    # fixed readers, random cases
    fixed_term = var - cov1 + (r - 1) * max(cov2 - cov3, 0.0)
    chi2 = (t - 1) * ms_t / fixed_term if fixed_term > 0 else math.inf
    fixed_se = math.sqrt(2 / r * fixed_term) if fixed_term > 0 else 0.0
    z_critical = float(stats.norm.ppf(1 - alpha / 2))
    per_reader = []
    for j, reader in enumerate(table.readers):
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
        "treatments": list(table.treatments), "readers": list(table.readers),
        "n_cases": len(table.cases), "n_positive": int(table.truth.sum()),
        "n_negative": int(table.truth.size - table.truth.sum()),
        "auc": {name: {reader: float(aucs[i, j]) for j, reader in enumerate(table.readers)}
                for i, name in enumerate(table.treatments)},
        "treatment_means": {name: float(treatment_means[i]) for i, name in enumerate(table.treatments)},
        "variance_components": {"var_error": var, "cov1": cov1, "cov2": cov2, "cov3": cov3,
                                "var_r": var_r, "var_tr": var_tr},
        "mean_squares": {"ms_t": ms_t, "ms_r": ms_r, "ms_tr": ms_tr},
        "error_term": error_term,
        "difference": difference, "difference_of": f"{table.treatments[0]} - {table.treatments[1]}",
        "F": f_value, "ndf": t - 1, "ddf": ddf, "p": p_value, "se": se,
        "ci_low": difference - t_critical * se, "ci_high": difference + t_critical * se,
        "single_treatment": single,
        "fixed_readers": {"chi2": chi2, "df": t - 1,
                          "p": float(stats.chi2.sf(chi2, t - 1)) if math.isfinite(chi2) else 0.0,
                          "se": fixed_se, "ci_low": difference - z_critical * fixed_se,
                          "ci_high": difference + z_critical * fixed_se, "per_reader": per_reader},
    }


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A few lines for a person: AUCs, the random-reader test, each treatment's CI, the fixed-reader test."""
    first, second = result["treatments"]
    lines = [f"{len(result['readers'])} readers x {result['n_cases']} cases ({result['n_positive']} positive), "
             f"covariance: {result['covariance']}"]
    for name in result["treatments"]:
        single = result["single_treatment"][name]
        lines.append(f"  {name}: mean AUC {single['auc']:.4f} (95% CI {single['ci_low']:.4f} to "
                     f"{single['ci_high']:.4f}, df {single['df']:.2f})")
    lines.append(f"random readers and cases: {first} - {second} = {result['difference']:.4f} "
                 f"(SE {result['se']:.4f}, 95% CI {result['ci_low']:.4f} to {result['ci_high']:.4f}), "
                 f"F = {result['F']:.3f} on 1 and {result['ddf']:.2f} df, {formatting.p_value(result['p'])}")
    fixed = result["fixed_readers"]
    lines.append(f"fixed readers: chi2 = {fixed['chi2']:.3f} (1 df), {formatting.p_value(fixed['p'])}, "
                 f"95% CI {fixed['ci_low']:.4f} to {fixed['ci_high']:.4f}")
    return lines
