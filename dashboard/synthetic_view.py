"""The figures of a real-or-synthetic reader study (``melanet.studies.synthetic_results``) as a sentence and
a table: shown on the Reader study page's Results view and on the Synthesized lesions page. The caller
decides who may see them (``results.results_for`` / ``results.shown_results``); this only draws them."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from dashboard import study_views


def readers_table(results: dict[str, Any]) -> pd.DataFrame:
    """One row per reader, then the pooled readers when there is a pooled analysis; every cell a string."""
    rows = [{"reader": entry["reader"], "cases": f"{entry['n']} of {results['n_cases']}",
             "accuracy": study_views.with_interval(entry["accuracy"], entry["accuracy_ci"]),
             "synthetic called synthetic": study_views.with_interval(entry["sensitivity"], entry["sensitivity_ci"]),
             "real called real": study_views.with_interval(entry["specificity"], entry["specificity_ci"]),
             "AUC synthetic vs real": _auc(entry["auc"], entry["auc_ci"])}
            for entry in results["readers"]]
    pooled = results.get("pooled") or {}
    if pooled.get("available"):
        rows.append({"reader": f"pooled ({len(pooled['readers'])} readers)", "cases": str(results["n_cases"]),
                     "accuracy": study_views.with_interval(pooled["mean_accuracy"], None) + " (mean)",
                     "synthetic called synthetic": "", "real called real": "",
                     "AUC synthetic vs real": _auc(pooled["auc"], pooled["auc_ci"])})
    return pd.DataFrame(rows)


def _auc(value: float | None, interval: list[float | None] | None) -> str:
    if value is None:
        return "n/a"
    if not interval or interval[0] is None:
        return f"{value:.3f}"
    return f"{value:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def show(results: dict[str, Any], organiser: bool) -> None:
    """The sentence, the table and how the figures were computed."""
    st.info(results["sentence"])
    st.caption(f"{results['n_cases']} cases: {results['n_real']} real training melanomas and {results['n_synthetic']} "
               f"synthetic ones, every image the same size and format. Accuracy with 95 % Wilson intervals; AUC of "
               f"the reader's rating ({results['rating']}) with a DeLong interval: 0.5 = cannot tell synthetic from "
               "real, 1 = always can. "
               + ("" if results.get("view") is None else results["view"] + "."))
    if not results["readers"]:
        st.caption("No answers yet.")
        return
    st.table(readers_table(results).set_index("reader"))
    pooled = results.get("pooled") or {}
    if pooled.get("available"):
        st.caption(f"Pooled: {pooled['method']}; p = {pooled['p_vs_chance']:.3g} for mean AUC = 0.5"
                   if pooled.get("p_vs_chance") is not None else f"Pooled: {pooled['method']}.")
    elif organiser and pooled:
        st.caption(f"No pooled AUC: {pooled['reason']}.")
    if organiser and results.get("voided"):
        st.caption("Left out by the organiser: " + "; ".join(
            f"{item['reader']} ({item['reason']}, {item['answers']} answers kept on disk)" for item in results["voided"]))
