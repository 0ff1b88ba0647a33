"""Sample size for the next MRMC study from a pilot's Obuchowski-Rockette variance components.

Hillis, Obuchowski & Berbaum (2011), "Power estimation for multireader ROC methods: an updated and unified
approach" (Acad Radiol 18:129-142), random readers and random cases. A pilot with c* cases gives the OR
error covariances Var, Cov1, Cov2, Cov3 and the treatment-by-reader variance Var(T*R) (``melanet.studies.mrmc``).
A pivotal study with r readers and c cases (the pilot's mix of positive and negative cases) has error
covariances scaled by c*/c, and for a true difference ``delta`` of the two treatments' mean AUCs

    denominator = max(Var(T*R), 0) + c*/c (Var - Cov1 + (r - 1) max(Cov2 - Cov3, 0)),
    noncentrality = r delta^2 / (2 denominator),
    ddf = denominator^2 / ((max(Var(T*R), 0) + c*/c (Var - Cov1 - max(Cov2 - Cov3, 0)))^2 / (r - 1)),
    power = P(F(1, ddf; noncentrality) > F_{1 - alpha}(1, ddf))

(Hillis's denominator degrees of freedom with the mean squares replaced by their expectations). With
random readers the power is bounded as c grows (Var(T*R) stays), so some numbers of readers never reach
the target; those rows say so (``cases`` None). For so few readers the approximation's power also peaks
and then eases down towards that limit as cases are added (ddf tends to r - 1); the table reports the
first case count that reaches the target.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

from melanet.studies import mrmc

DEFAULT_POWER = 0.8
DEFAULT_ALPHA = 0.05
DEFAULT_READERS = (3, 4, 5, 6, 8, 10, 12, 15, 20)
MAX_CASES = 5000


# The OR variance components of the Van Dyke et al. (1993) data (5 readers, 114 cases, cine MRI vs spin
# echo; jackknife covariances, as Hillis, Obuchowski & Berbaum 2011 tabulate them): the pilot a study is sized
# with before it has one of its own (``create.design_warnings``). tests/test_sample_size.py recomputes them.
REFERENCE_PILOT_SOURCE = "sample-size table from the Van Dyke pilot of 5 readers and 114 cases"
CAVEAT_READERS = 4
CAVEAT_CASES = 50


class SampleSizeError(mrmc.MRMCError):
    """Arguments or pilot components that give no power (a bad delta, too few readers, no error variance)."""


@dataclasses.dataclass(frozen=True)
class Pilot:
    """OR variance components of a pilot study with ``n_readers`` readers and ``n_cases`` cases (AUC units
    squared)."""

    var_error: float
    cov1: float
    cov2: float
    cov3: float
    var_tr: float
    n_cases: int
    n_readers: int = 0

    def caveat(self) -> str | None:
        """A warning when the components come from too small a pilot to trust (under 4 readers or 50 cases)."""
        if self.n_readers < CAVEAT_READERS or self.n_cases < CAVEAT_CASES:
            return (f"the pilot has {self.n_readers} readers and {self.n_cases} cases: its variance components are "
                    f"rough (under {CAVEAT_READERS} readers or {CAVEAT_CASES} cases), so the case counts are too")
        return None

    @classmethod
    def from_analysis(cls, result: dict[str, Any]) -> "Pilot":
        """The pilot of a ``mrmc.analyse`` result (or a study's available MRMC section)."""
        components = result["variance_components"]
        return cls(var_error=float(components["var_error"]), cov1=float(components["cov1"]),
                   cov2=float(components["cov2"]), cov3=float(components["cov3"]),
                   var_tr=float(components["var_tr"]), n_cases=int(result["n_cases"]),
                   n_readers=len(result.get("readers") or ()))


REFERENCE_PILOT = Pilot(var_error=0.0008023, cov1=0.0003466, cov2=0.0003441, cov3=0.0002390, var_tr=0.0002004,
                        n_cases=114, n_readers=5)


def _check(delta: float, readers: int, alpha: float) -> None:
    if not (isinstance(delta, (int, float)) and math.isfinite(delta) and 0 < abs(delta) < 1):
        raise SampleSizeError(f"the AUC difference to detect must be a number between 0 and 1 (not 0), got {delta!r}")
    if int(readers) != readers or readers < 2:
        raise SampleSizeError(f"a multi-reader study needs at least 2 readers, got {readers!r}")
    if not 0 < alpha < 1:
        raise SampleSizeError(f"alpha must lie between 0 and 1, got {alpha!r}")


def power(pilot: Pilot, readers: int, cases: int | np.ndarray, delta: float,
          alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """Power of the random-readers, random-cases test for ``readers`` x ``cases`` (an int or an array of
    case counts); returns ``power``, ``noncentrality``, ``ddf`` and ``f_critical`` (floats, or arrays
    shaped like ``cases``)."""
    _check(delta, readers, alpha)
    case_counts = np.asarray(cases, dtype=np.float64)
    if np.any(case_counts < 2):
        raise SampleSizeError(f"a study needs at least 2 cases, got {cases!r}")
    var_tr = max(pilot.var_tr, 0.0)
    reader_covariance = max(pilot.cov2 - pilot.cov3, 0.0)
    scale = pilot.n_cases / case_counts
    denominator = var_tr + scale * (pilot.var_error - pilot.cov1 + (readers - 1) * reader_covariance)
    interaction = var_tr + scale * (pilot.var_error - pilot.cov1 - reader_covariance)
    if np.any(denominator <= 0) or np.any(interaction <= 0):
        raise SampleSizeError("the pilot's variance components give no error variance (Var(T*R) + Var - Cov1 "
                              f"- max(Cov2 - Cov3, 0) <= 0): Var {pilot.var_error:.3g}, Cov1 {pilot.cov1:.3g}, "
                              f"Var(T*R) {pilot.var_tr:.3g}")
    noncentrality = readers * delta ** 2 / (2 * denominator)
    ddf = denominator ** 2 / (interaction ** 2 / (readers - 1))
    f_critical = stats.f.ppf(1 - alpha, 1, ddf)
    value = stats.ncf.sf(f_critical, 1, ddf, noncentrality)
    if np.ndim(cases) == 0:
        return {"power": float(value), "noncentrality": float(noncentrality), "ddf": float(ddf),
                "f_critical": float(f_critical)}
    return {"power": value, "noncentrality": noncentrality, "ddf": ddf, "f_critical": f_critical}


def cases_needed(pilot: Pilot, readers: int, delta: float, target: float = DEFAULT_POWER,
                 alpha: float = DEFAULT_ALPHA, max_cases: int = MAX_CASES) -> dict[str, Any]:
    """The fewest cases (2..``max_cases``) that give ``readers`` readers at least ``target`` power:
    ``{"readers", "cases", "power", "ddf", "power_limit"}``; ``cases`` None when even ``max_cases`` fall
    short (``power_limit``: the power with unlimited cases, where Var(T*R) alone remains)."""
    if not 0 < target < 1:
        raise SampleSizeError(f"the target power must lie between 0 and 1, got {target!r}")
    counts = np.arange(2, max_cases + 1)
    figures = power(pilot, readers, counts, delta, alpha)
    reached = np.flatnonzero(figures["power"] >= target)
    limit = _power_without_case_error(pilot, readers, delta, alpha)
    if reached.size == 0:
        return {"readers": int(readers), "cases": None, "power": None, "ddf": None, "power_limit": limit}
    first = int(reached[0])
    return {"readers": int(readers), "cases": int(counts[first]), "power": float(figures["power"][first]),
            "ddf": float(figures["ddf"][first]), "power_limit": limit}


def _power_without_case_error(pilot: Pilot, readers: int, delta: float, alpha: float) -> float | None:
    """Power as the number of cases grows without bound: Var(T*R) on r - 1 df (1.0 when it is 0)."""
    var_tr = max(pilot.var_tr, 0.0)
    if var_tr == 0:
        return 1.0
    ddf = readers - 1
    return float(stats.ncf.sf(stats.f.ppf(1 - alpha, 1, ddf), 1, ddf, readers * delta ** 2 / (2 * var_tr)))


def sample_size_table(pilot: Pilot, delta: float, readers: Sequence[int] = DEFAULT_READERS,
                      target: float = DEFAULT_POWER, alpha: float = DEFAULT_ALPHA,
                      max_cases: int = MAX_CASES) -> list[dict[str, Any]]:
    """One ``cases_needed`` row per number of readers."""
    return [cases_needed(pilot, count, delta, target, alpha, max_cases) for count in readers]


def summary_lines(pilot: Pilot, delta: float, rows: Sequence[dict[str, Any]], target: float = DEFAULT_POWER,
                  alpha: float = DEFAULT_ALPHA, max_cases: int = MAX_CASES) -> list[str]:
    """What a person reads: the question, then one line per number of readers."""
    lines = [f"sample size to detect an AUC difference of {abs(delta):.3g} with power {target:.2g} at alpha "
             f"{alpha:.2g} (random readers and cases; Hillis, Obuchowski & Berbaum 2011; variance components from a pilot "
             f"of {pilot.n_readers} readers and {pilot.n_cases} cases, same case mix):"]
    if pilot.caveat():
        lines.append(f"  caution: {pilot.caveat()}")
    for row in rows:
        if row["cases"] is None:
            lines.append(f"  {row['readers']:>3} readers: not reachable with up to {max_cases} cases "
                         f"(power with unlimited cases {row['power_limit']:.2f})")
        else:
            lines.append(f"  {row['readers']:>3} readers: {row['cases']:>5} cases (power {row['power']:.3f})")
    return lines
