"""MRMC analysis (melanet.studies.mrmc): the published Van Dyke et al. (1993) figures, a brute-force
jackknife written plainly here, hand-made designs, and bad tables named by line and column."""

from __future__ import annotations

import csv
import itertools
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from melanet.studies import mrmc

# Van Dyke et al. (1993), the MRMC literature's standard example (5 readers, 2 modalities, 114 cases, ratings
# 1-5), shipped in tests/data so CI, which has no ../shared, runs the published-figure checks too
VAN_DYKE = Path(__file__).resolve().parent / "data" / "vandyke-mrmc.csv"
COLUMNS = "reader,treatment,case,truth,rating"


def _close(value: float, printed: str) -> None:
    """value rounds to the printed figure at the printed precision."""
    decimals = len(printed.split(".")[1]) if "." in printed else 0
    assert abs(value - float(printed)) <= 0.5 * 10 ** -decimals + 1e-12, (value, printed)


@pytest.fixture(scope="module")
def van_dyke() -> mrmc.Table:
    assert VAN_DYKE.is_file(), f"reference data {VAN_DYKE} is missing"
    return mrmc.read_table(VAN_DYKE)


def test_van_dyke_jackknife_random_readers(van_dyke: mrmc.Table) -> None:
    result = mrmc.analyse(van_dyke, "jackknife")
    for name, printed in zip(("1", "2"), ("0.91964573 0.85877617 0.90386473 0.97310789 0.82979066",
                                          "0.94782609 0.90531401 0.92173913 0.99935588 0.92995169")):
        for reader, value in zip(("1", "2", "3", "4", "5"), printed.split()):
            _close(result["auc"][name][reader], value)
    _close(result["treatment_means"]["1"], "0.89703704")
    _close(result["treatment_means"]["2"], "0.94083736")
    _close(result["difference"], "-0.04380032")
    components = result["variance_components"]
    for key, printed in (("var_error", "0.00080229"), ("cov1", "0.00034661"), ("cov2", "0.00034407"),
                         ("cov3", "0.00023903"), ("var_r", "0.00153500"), ("var_tr", "0.00020040")):
        _close(components[key], printed)
    for key, printed in (("ms_t", "0.00479617"), ("ms_r", "0.00383620"), ("ms_tr", "0.00055103")):
        _close(result["mean_squares"][key], printed)
    _close(result["error_term"], "0.00107626")
    _close(result["F"], "4.46")
    _close(result["ddf"], "15.26")
    _close(result["p"], "0.0517")
    _close(result["se"], "0.02075")
    _close(result["ci_low"], "-0.08796")
    _close(result["ci_high"], "0.00036")
    for name, (auc, se, df, low, high) in {
        "1": ("0.89703704", "0.03317360", "12.74", "0.82522360", "0.96885048"),
        "2": ("0.94083736", "0.02156637", "12.71", "0.89413783", "0.98753689"),
    }.items():
        single = result["single_treatment"][name]
        for key, printed in zip(("auc", "se", "df", "ci_low", "ci_high"), (auc, se, df, low, high)):
            _close(single[key], printed)


def test_van_dyke_delong(van_dyke: mrmc.Table) -> None:
    result = mrmc.analyse(van_dyke, "delong")
    _close(result["F"], "4.484854")
    _close(result["ddf"], "15.06611")
    _close(result["p"], "0.05123303")
    _close(result["se"], "0.0206825")


def test_van_dyke_fixed_readers(van_dyke: mrmc.Table) -> None:
    fixed = mrmc.analyse(van_dyke, "jackknife")["fixed_readers"]
    _close(fixed["chi2"], "5.47595")
    _close(fixed["p"], "0.0193")
    _close(fixed["se"], "0.01872")
    _close(fixed["ci_low"], "-0.08049")
    _close(fixed["ci_high"], "-0.00711")
    published = [("-0.02818", "0.2693"), ("-0.04654", "0.0768"), ("-0.01787", "0.5668"), ("-0.02625", "0.1290"),
                 ("-0.10016", "0.0230")]
    for entry, (difference, p_value) in zip(fixed["per_reader"], published):
        _close(entry["difference"], difference)
        _close(entry["p"], p_value)


def test_swapping_treatments_flips_the_sign_only(van_dyke: mrmc.Table) -> None:
    forward = mrmc.analyse(van_dyke)
    backward = mrmc.analyse(mrmc.read_table(VAN_DYKE, ["2", "1"]))
    assert backward["difference"] == pytest.approx(-forward["difference"], abs=1e-14)
    for key in ("F", "ddf", "p", "se"):
        assert backward[key] == pytest.approx(forward[key], rel=1e-12)
    assert backward["ci_low"] == pytest.approx(-forward["ci_high"], abs=1e-12)
    assert backward["fixed_readers"]["chi2"] == pytest.approx(forward["fixed_readers"]["chi2"], rel=1e-12)


def _rows(ratings: np.ndarray, truth: np.ndarray, treatments=("A", "B")) -> list[dict]:
    rows = []
    for i, treatment in enumerate(treatments):
        for j in range(ratings.shape[1]):
            for k in range(ratings.shape[2]):
                rows.append({"reader": f"r{j}", "treatment": treatment, "case": f"c{k}", "truth": int(truth[k]),
                             "rating": float(ratings[i, j, k])})
    return rows


def _plain_auc(truth: list[int], scores: list[float]) -> float:
    pairs = [(p, n) for p, tp in zip(scores, truth) if tp == 1 for n, tn in zip(scores, truth) if tn == 0]
    return sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in pairs) / len(pairs)


def test_against_a_brute_force_jackknife() -> None:
    """AUCs and the OR test from a plain O(c^2) jackknife that recomputes every AUC without each case."""
    generator = np.random.default_rng(7)
    treatments, readers, cases = 2, 4, 16
    truth = np.array([1] * 7 + [0] * 9)
    ratings = generator.integers(1, 6, size=(treatments, readers, cases)).astype(float)
    ratings[1] += truth  # a treatment effect, with plenty of ties
    table = mrmc.table_from_rows(_rows(ratings, truth))
    result = mrmc.analyse(table, "jackknife")

    cells = list(itertools.product(range(treatments), range(readers)))
    full = np.array([_plain_auc(list(truth), list(ratings[i, j])) for i, j in cells])
    pseudo = np.array([[_plain_auc([int(x) for k2, x in enumerate(truth) if k2 != k],
                                   [x for k2, x in enumerate(ratings[i, j]) if k2 != k]) for k in range(cases)]
                       for i, j in cells])
    centred = pseudo - pseudo.mean(axis=1, keepdims=True)
    covariance = (cases - 1) / cases * centred @ centred.T
    def average(predicate) -> float:
        values = [covariance[a, b] for a, (i, j) in enumerate(cells) for b, (i2, j2) in enumerate(cells)
                  if predicate(i == i2, j == j2)]
        return sum(values) / len(values)
    var = average(lambda t, r: t and r)
    cov1 = average(lambda t, r: not t and r)
    cov2 = average(lambda t, r: t and not r)
    cov3 = average(lambda t, r: not t and not r)
    theta = full.reshape(treatments, readers)
    ms_t = readers * sum((theta[i].mean() - theta.mean()) ** 2 for i in range(treatments))
    ms_tr = sum((theta[i, j] - theta[i].mean() - theta[:, j].mean() + theta.mean()) ** 2
                for i in range(treatments) for j in range(readers)) / (readers - 1)
    denominator = ms_tr + readers * max(cov2 - cov3, 0)
    for (i, j), value in zip(cells, full):
        assert result["auc"]["AB"[i]][f"r{j}"] == pytest.approx(value, abs=1e-12)
    components = result["variance_components"]
    assert [components[k] for k in ("var_error", "cov1", "cov2", "cov3")] == pytest.approx(
        [var, cov1, cov2, cov3], abs=1e-13)
    assert result["F"] == pytest.approx(ms_t / denominator, rel=1e-9)
    assert result["ddf"] == pytest.approx(denominator ** 2 / (ms_tr ** 2 / (readers - 1)), rel=1e-9)
    assert result["fixed_readers"]["chi2"] == pytest.approx(ms_t / (var - cov1 + (readers - 1) * max(cov2 - cov3, 0)),
                                                            rel=1e-9)


def test_a_perfectly_separating_modality() -> None:
    """Treatment A separates the classes for every reader (AUC 1), B is a coin with ties everywhere (AUC 0.5)."""
    truth = np.array([1] * 5 + [0] * 5)
    ratings = np.zeros((2, 3, 10))
    ratings[0] = truth * 10 + np.arange(10) % 3  # positives 10-12, negatives 0-2
    ratings[1] = 3.0
    result = mrmc.analyse(mrmc.table_from_rows(_rows(ratings, truth)))
    assert all(value == 1.0 for value in result["auc"]["A"].values())
    assert all(value == 0.5 for value in result["auc"]["B"].values())
    assert result["difference"] == pytest.approx(0.5)
    # no reader variation and no case variation: nothing is random, the difference is certain
    assert result["se"] == pytest.approx(0.0, abs=1e-12)
    assert result["p"] == 0.0


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "table.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _complete_lines() -> list[str]:
    lines = [COLUMNS]
    for treatment in ("A", "B"):
        for reader in ("r1", "r2"):
            for case, truth in (("c1", 1), ("c2", 1), ("c3", 0), ("c4", 0)):
                lines.append(f"{reader},{treatment},{case},{truth},{(truth * 3 + int(case[1])) % 5}")
    return lines


@pytest.mark.parametrize("edit, message", [
    (lambda lines: ["reader,treatment,case,truth"] + [l.rsplit(",", 1)[0] for l in lines[1:]],
     "line 1: missing column(s) rating"),
    (lambda lines: lines[:3] + ["r1,A,c3,0,high"] + lines[4:], "line 4, column 'rating': expected a number"),
    (lambda lines: lines[:3] + ["r1,A,c3,1,2"] + lines[4:], "line 8: case 'c3' has truth 0 here but 1 at"),
    (lambda lines: lines[:-1], "reader 'r2' has no rating under treatment 'B' for 1 case(s): 'c4'"),
    (lambda lines: [lines[0]] + [l.replace(",0,", ",1,") for l in lines[1:]], "4 positive and 0 negative"),
    (lambda lines: lines + ["r1,A,c1,1,2"], "line 18: reader 'r1' rated case 'c1' under treatment 'A' twice"),
    (lambda lines: lines[:2] + ["r1,A,c2,maybe,2"] + lines[3:], "line 3, column 'truth': expected 0"),
])
def test_bad_tables_are_named(tmp_path: Path, edit, message: str) -> None:
    path = _write(tmp_path, edit(_complete_lines()))
    with pytest.raises(mrmc.MRMCError, match=None) as caught:
        mrmc.read_table(path)
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_complete_small_table_reads(tmp_path: Path) -> None:
    table = mrmc.read_table(_write(tmp_path, _complete_lines()))
    assert table.ratings.shape == (2, 2, 4)
    with pytest.raises(mrmc.MRMCError, match="no treatment 'C'"):
        mrmc.read_table(_write(tmp_path, _complete_lines()), ["A", "C"])


def test_cli_writes_json(tmp_path: Path, van_dyke: mrmc.Table) -> None:
    out = tmp_path / "mrmc.json"
    completed = subprocess.run([sys.executable, "-m", "melanet", "reader-study", "mrmc", str(VAN_DYKE),
                                "--covariance", "delong", "--out", str(out)], capture_output=True, text=True,
                               check=True)
    assert "F = 4.485" in completed.stdout and "p = 0.0512" in completed.stdout
    data = json.loads(out.read_text())
    for key in ("F", "ddf", "p", "difference", "se", "ci_low", "ci_high", "variance_components", "auc"):
        assert key in data
    assert set(data["fixed_readers"]) >= {"chi2", "p", "per_reader"}
    bad = _write(tmp_path, ["reader,case,truth,rating", "r1,c1,1,2"])
    failed = subprocess.run([sys.executable, "-m", "melanet", "reader-study", "mrmc", str(bad)],
                            capture_output=True, text=True)
    assert failed.returncode == 2 and "missing column(s) treatment" in failed.stderr
