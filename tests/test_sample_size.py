"""Sample size for the next MRMC study (Hillis, Obuchowski & Berbaum 2011) from the Van Dyke pilot.

The expected power comes from an independent route: Dorfman-Berbaum-Metz variance components of
jackknife pseudovalues computed here by brute force from the ratings (no ``melanet`` code), the DBM form
of the power formula, and the noncentral F written out as its Poisson mixture of incomplete beta
functions (not ``scipy.stats.ncf``). A simulation of the OR model checks the approximation itself.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import special, stats

from melanet.cli import main as cli_main
from melanet.studies import mrmc, sample_size

VAN_DYKE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "vandyke-mrmc.csv"
if not VAN_DYKE.is_file():
    VAN_DYKE = Path("/work/shared/reference/vandyke-mrmc.csv")
pytestmark = pytest.mark.skipif(not VAN_DYKE.is_file(), reason="reference data vandyke-mrmc.csv not available")


@pytest.fixture(scope="module")
def pilot_result() -> dict:
    return mrmc.analyse(mrmc.read_table(VAN_DYKE))


@pytest.fixture(scope="module")
def pilot(pilot_result) -> sample_size.Pilot:
    return sample_size.Pilot.from_analysis(pilot_result)


def brute_force_dbm_components() -> dict[str, float]:
    """DBM variance components of the Van Dyke ratings from leave-one-case-out AUCs computed by loops."""
    with VAN_DYKE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    treatments = sorted({row["treatment"] for row in rows})
    readers = sorted({row["reader"] for row in rows})
    cases = sorted({row["case"] for row in rows})
    truth = {row["case"]: int(row["truth"]) for row in rows}
    rating = {(row["treatment"], row["reader"], row["case"]): float(row["rating"]) for row in rows}

    def auc(scores: dict[str, float], kept: list[str]) -> float:
        positives = [scores[case] for case in kept if truth[case] == 1]
        negatives = [scores[case] for case in kept if truth[case] == 0]
        wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
        return wins / (len(positives) * len(negatives))

    t, r, c = len(treatments), len(readers), len(cases)
    pseudo = np.zeros((t, r, c))
    for i, treatment in enumerate(treatments):
        for j, reader in enumerate(readers):
            scores = {case: rating[(treatment, reader, case)] for case in cases}
            full = auc(scores, cases)
            for k, case in enumerate(cases):
                pseudo[i, j, k] = c * full - (c - 1) * auc(scores, cases[:k] + cases[k + 1:])
    grand = pseudo.mean()
    by_t, by_r, by_c = pseudo.mean(axis=(1, 2)), pseudo.mean(axis=(0, 2)), pseudo.mean(axis=(0, 1))
    by_tr, by_tc, by_rc = pseudo.mean(axis=2), pseudo.mean(axis=1), pseudo.mean(axis=0)
    ms_tr = c * np.sum((by_tr - by_t[:, None] - by_r[None, :] + grand) ** 2) / ((t - 1) * (r - 1))
    ms_tc = r * np.sum((by_tc - by_t[:, None] - by_c[None, :] + grand) ** 2) / ((t - 1) * (c - 1))
    residual = (pseudo - by_tr[:, :, None] - by_tc[:, None, :] - by_rc[None, :, :] + by_t[:, None, None]
                + by_r[None, :, None] + by_c[None, None, :] - grand)
    ms_trc = np.sum(residual ** 2) / ((t - 1) * (r - 1) * (c - 1))
    return {"var_tr": (ms_tr - ms_trc) / c, "var_tc": (ms_tc - ms_trc) / r, "var_error": ms_trc,
            "difference": float(by_t[0] - by_t[1])}


def noncentral_f_sf(x: float, numerator_df: float, denominator_df: float, noncentrality: float) -> float:
    """P(F > x) for F ~ F'(d1, d2; lambda): sum_j Poisson(j; lambda/2) (1 - I_z(d1/2 + j, d2/2)),
    z = d1 x / (d1 x + d2)."""
    z = numerator_df * x / (numerator_df * x + denominator_df)
    half = noncentrality / 2
    total = 0.0
    for j in range(400):
        weight = math.exp(-half + j * math.log(half) - math.lgamma(j + 1)) if half > 0 else float(j == 0)
        total += weight * (1 - special.betainc(numerator_df / 2 + j, denominator_df / 2, z))
    return total


def dbm_power(components: dict[str, float], readers: int, cases: int, delta: float, alpha: float = 0.05) -> float:
    """The DBM form (Hillis 2011, RJafroc's SsPowerGivenJKDbmVarComp): per-case DBM components / cases."""
    denominator = max(components["var_tr"], 0) + (components["var_error"] + readers * max(components["var_tc"], 0)) / cases
    ddf = denominator ** 2 / ((max(components["var_tr"], 0) + components["var_error"] / cases) ** 2 / (readers - 1))
    noncentrality = delta ** 2 * readers / 2 / denominator
    return noncentral_f_sf(stats.f.ppf(1 - alpha, 1, ddf), 1, ddf, noncentrality)


@pytest.mark.parametrize("readers, cases, delta", [(5, 114, 0.05), (6, 251, 0.0438), (10, 163, 0.0438),
                                                   (3, 60, 0.1), (12, 400, 0.03)])
def test_power_equals_an_independent_dbm_computation(pilot, readers, cases, delta) -> None:
    expected = dbm_power(brute_force_dbm_components(), readers, cases, delta)
    assert sample_size.power(pilot, readers, cases, delta)["power"] == pytest.approx(expected, abs=1e-6)


def test_the_van_dyke_pilot_at_its_observed_difference(pilot, pilot_result) -> None:
    """RJafroc's OR sample-size vignette asks about J = 6 readers and K = 251 cases for this pilot at its
    observed difference: about 80 % power."""
    assert pilot_result["difference"] == pytest.approx(-0.04380032, abs=1e-8)
    figures = sample_size.power(pilot, 6, 251, abs(pilot_result["difference"]))
    assert figures["power"] == pytest.approx(0.80, abs=0.01)
    row = sample_size.cases_needed(pilot, 6, abs(pilot_result["difference"]))
    assert row["cases"] <= 251 and row["power"] >= 0.8
    assert sample_size.power(pilot, 6, row["cases"] - 1, abs(pilot_result["difference"]))["power"] < 0.8


def test_the_approximation_agrees_with_a_simulation_of_the_or_model(pilot) -> None:
    """Reader AUCs drawn from the OR model with the pilot's components, tested with the OR F test and
    Hillis ddf: the share of rejections is the power the formula predicts (within simulation error)."""
    readers, cases, delta, draws = 5, 114, 0.05, 40_000
    generator = np.random.default_rng(0)
    scale = pilot.n_cases / cases
    same_treatment = np.kron(np.eye(2), np.ones((readers, readers)))
    same_reader = np.kron(np.ones((2, 2)), np.eye(readers))
    covariance = scale * np.where(same_treatment * same_reader == 1, pilot.var_error,
                                  np.where(same_reader == 1, pilot.cov1,
                                           np.where(same_treatment == 1, pilot.cov2, pilot.cov3)))
    error = generator.multivariate_normal(np.zeros(2 * readers), covariance, size=draws).reshape(draws, 2, readers)
    interaction = generator.normal(0, math.sqrt(pilot.var_tr), (draws, 2, readers))
    aucs = np.array([delta, 0.0])[None, :, None] + generator.normal(0, 0.03, (draws, 1, readers)) + interaction + error
    treatment_means = aucs.mean(axis=2)
    ms_t = readers * np.sum((treatment_means - treatment_means.mean(axis=1, keepdims=True)) ** 2, axis=1)
    residual = aucs - treatment_means[:, :, None] - aucs.mean(axis=1, keepdims=True) + aucs.mean(axis=(1, 2))[:, None, None]
    ms_tr = np.sum(residual ** 2, axis=(1, 2)) / (readers - 1)
    error_term = ms_tr + readers * scale * max(pilot.cov2 - pilot.cov3, 0)
    ddf = error_term ** 2 / (ms_tr ** 2 / (readers - 1))
    rejected = stats.f.sf(ms_t / error_term, 1, ddf) < 0.05
    predicted = sample_size.power(pilot, readers, cases, delta)["power"]
    assert rejected.mean() == pytest.approx(predicted, abs=0.03)
    assert abs(predicted - 0.5) < 0.4  # a power where the comparison can tell a wrong formula


def test_more_readers_never_lower_power_and_more_cases_only_past_the_peak(pilot) -> None:
    """More readers never lower the power. More cases never lower it until it peaks; past the peak (only
    where Var(T*R) caps the power: 2-4 readers here) Hillis's ddf tends to r - 1 and the power eases down
    towards its unlimited-cases limit, never below it. With 4 or more readers and up to 1000 cases the
    power rises with every case."""
    case_counts = np.arange(2, 5001)
    for delta in (0.03, 0.05, 0.1):
        grid = np.array([sample_size.power(pilot, readers, case_counts, delta)["power"] for readers in range(2, 31)])
        assert np.all(np.diff(grid, axis=0) >= -1e-12)
        for readers, row in zip(range(2, 31), grid):
            peak = int(np.argmax(row))
            assert np.all(np.diff(row[: peak + 1]) >= -1e-12), (delta, readers)
            limit = sample_size.cases_needed(pilot, readers, delta)["power_limit"]
            if peak < row.size - 1:  # it peaked within 5000 cases
                assert np.all(np.diff(row[peak:]) <= 1e-12) and np.all(row[peak:] >= limit - 1e-9), (delta, readers)
        assert np.all(np.diff(grid[2:, :1000], axis=1) >= -1e-12)  # 4+ readers, up to 1000 cases: monotone


def test_no_difference_gives_the_test_size_and_a_bigger_difference_more_power(pilot) -> None:
    assert sample_size.power(pilot, 5, 114, 1e-9)["power"] == pytest.approx(0.05, abs=1e-6)
    assert sample_size.power(pilot, 5, 114, 0.1)["power"] > sample_size.power(pilot, 5, 114, 0.05)["power"]


def test_cases_needed_is_the_first_case_count_that_reaches_the_target(pilot) -> None:
    for readers in (4, 5, 8):
        row = sample_size.cases_needed(pilot, readers, 0.05)
        assert sample_size.power(pilot, readers, row["cases"], 0.05)["power"] >= 0.8
        assert all(sample_size.power(pilot, readers, count, 0.05)["power"] < 0.8 for count in range(2, row["cases"]))
    unreachable = sample_size.cases_needed(pilot, 3, 0.05)  # Var(T*R) alone keeps 3 readers below 0.8
    assert unreachable["cases"] is None and unreachable["power_limit"] < 0.8
    limit = sample_size.power(pilot, 3, 10 ** 9, 0.05)["power"]
    assert unreachable["power_limit"] == pytest.approx(limit, abs=1e-6)


@pytest.mark.parametrize("arguments, message", [((5, 114, 0.0), "between 0 and 1"), ((1, 114, 0.05), "at least 2 readers"),
                                                ((5, 1, 0.05), "at least 2 cases"), ((5, 114, 1.5), "between 0 and 1")])
def test_bad_arguments_are_refused(pilot, arguments, message) -> None:
    with pytest.raises(sample_size.SampleSizeError, match=message):
        sample_size.power(pilot, *arguments)


def test_the_cli_prints_and_writes_the_sample_size_table(tmp_path, capsys, pilot) -> None:
    out = tmp_path / "analysis.json"
    assert cli_main(["reader-study", "mrmc", str(VAN_DYKE), "--power-for", "0.05", "--readers", "4", "5", "10",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    expected = [sample_size.cases_needed(pilot, readers, 0.05) for readers in (4, 5, 10)]
    for row in expected:
        assert f"{row['readers']:>3} readers: {row['cases']:>5} cases (power {row['power']:.3f})" in printed
    saved = json.loads(out.read_text())["sample_size"]
    assert saved["delta"] == 0.05 and saved["power"] == 0.8 and saved["alpha"] == 0.05
    assert [row["cases"] for row in saved["rows"]] == [row["cases"] for row in expected]
    assert cli_main(["reader-study", "mrmc", str(VAN_DYKE), "--power-for", "0"]) == 2
    assert "between 0 and 1" in capsys.readouterr().err


def test_the_reference_pilot_is_van_dykes_and_small_pilots_carry_a_caveat(pilot) -> None:
    """The pilot ``create`` sizes a study with is the Van Dyke OR components (recomputed here from the data);
    the table says how many readers and cases its components come from, with a caution under 4 or 50."""
    reference = sample_size.REFERENCE_PILOT
    for name in ("var_error", "cov1", "cov2", "cov3", "var_tr"):
        assert getattr(reference, name) == pytest.approx(getattr(pilot, name), abs=5e-8), name
    assert (reference.n_readers, reference.n_cases) == (5, 114) == (pilot.n_readers, pilot.n_cases)
    lines = sample_size.summary_lines(pilot, 0.05, sample_size.sample_size_table(pilot, 0.05, (5,)))
    assert "pilot of 5 readers and 114 cases" in lines[0] and not any("caution" in line for line in lines)
    small = dataclasses.replace(pilot, n_readers=2, n_cases=22)
    lines = sample_size.summary_lines(small, 0.05, sample_size.sample_size_table(small, 0.05, (3,)))
    assert "caution: the pilot has 2 readers and 22 cases" in lines[1]
    assert dataclasses.replace(pilot, n_readers=4, n_cases=49).caveat() and not \
        dataclasses.replace(pilot, n_readers=4, n_cases=50).caveat()
