"""The Overview's one sentence of what a results folder (the shipped demo) shows, with its figures."""

from __future__ import annotations

import json
from pathlib import Path

from melanet.runs import layout

from dashboard import artifacts, discovery


def _interval(low: float | None, high: float | None, signed: bool = False) -> str:
    if low is None or high is None:
        return ""
    form = "{:+.3f}" if signed else "{:.3f}"
    return f" [{form.format(low)}, {form.format(high)}]"


def sentence(results: list[discovery.RunEntry]) -> str:
    """'On N test images ..., REF scores AUC a [l, h]; ... minus each other run: d [l, h]' from the first
    results folder with a ``comparison.json`` (shipped first), or '' when there is none."""
    ordered = sorted(results, key=lambda entry: (entry.source != "shipped", entry.label))
    for entry in ordered:
        path = Path(entry.path) / layout.COMPARISON_FILE
        if not path.is_file():
            continue
        try:
            comparison = json.loads(path.read_text(encoding="utf-8"))
            reference = comparison["reference"]
            methods = {run["run"]: run["method"] for run in comparison["runs"]}
            pairs = [pair for pair in comparison["pairs"] if pair["a"] == reference]
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not pairs:
            continue
        metrics = artifacts.metrics(discovery.resolve_path(reference)) or {}
        ci = (metrics.get("confidence_intervals") or {}).get("auc") or {}
        name = methods.get(reference, reference)
        others = "; ".join(f"{methods.get(pair['b'], pair['b'])} {pair['delta_auc']:+.3f}"
                           f"{_interval(pair.get('ci_low'), pair.get('ci_high'), signed=True)}" for pair in pairs)
        ahead = [pair for pair in pairs if (pair.get("ci_low") or 0) > 0]
        verdict = (f"the interval lies above 0 for {len(ahead)} of them" if ahead else
                   f"no interval lies above 0: {name} is not shown to be better than any of them")
        holm = [pair.get("p_holm") for pair in pairs]
        if all(value is not None for value in holm):
            verdict += f" (DeLong p, Holm-adjusted over the {len(pairs)}: " + ", ".join(f"{value:.3f}" for value in holm) + ")"
        return (f"on the {comparison.get('n_images', '?')} test images of `{entry.label}` "
                f"({comparison.get('n_malignant', '?')} melanomas), {name} scores AUC "
                f"{pairs[0]['auc_a']:.3f}{_interval(ci.get('low'), ci.get('high'))}. Its AUC minus each simpler "
                f"classifier's, with 95 % intervals: {others}; {verdict}.")
    return ""
