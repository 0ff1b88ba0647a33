"""Summary of a repeated reproduction: one ``reproduce`` results folder per seed.

Layout read here (written by ``melanet reproduce --seeds N``)::

    DIR/seed-<S>/{vgg_gap,augment5x,augment10x,melanet}/metrics.json + predictions.csv

Only those two files of each classifier folder are read (no model weights). The summary gives,
per method, the mean +- SD (sample SD, n - 1), min and max over seeds of the AUC, sensitivity and
specificity; each seed's AUCs; each seed's paired DeLong test of MelaNet against every baseline
(Holm over the three); and how many seeds each method has the highest AUC. Written as
``seeds.md``, ``seeds.csv`` (one row per seed and method) and ``seeds.json``.

One finding over all seeds, two ways:

- ``random_seeds`` (the headline): the seeds are a sample of the seeds one could have run, so their
  variation belongs in the interval. The Obuchowski-Rockette model with seeds in the readers' place
  (methods = treatments, seeds = readers, test images = cases; AUC of each method x seed, jackknife
  covariances over the images, Hillis 2007 ddf; :mod:`melanet.evaluation.obuchowski_rockette`) gives
  MelaNet minus each baseline with SE, CI and p, and each method's mean AUC with its CI.
- ``conditional_on_seeds``: the same mean difference with a bootstrap over the test images only,
  the seeds held fixed (narrower: it answers "on these five seeds", not "on another seed").

Each method's SD over seeds carries a chi-square interval (normal AUCs over seeds assumed):
[sqrt((n-1) s^2 / chi2_{1-a/2, n-1}), sqrt((n-1) s^2 / chi2_{a/2, n-1})].
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from melanet import config as config_module
from melanet.common import formatting, training_sets
from melanet.runs import layout, runs
from melanet.evaluation import compare, obuchowski_rockette, paired

logger = logging.getLogger(__name__)

SEED_FOLDER_PATTERN = re.compile(rf"^{re.escape(layout.SEED_FOLDER_PREFIX)}(-?\d+)$")
SUMMARY_FILES = (layout.SEEDS_MARKDOWN_FILE, layout.SEEDS_CSV_FILE, layout.SEEDS_JSON_FILE)
REFERENCE_FOLDER = training_sets.REGISTRY[training_sets.SYNTHETIC].folder  # MelaNet, against every baseline
FIGURES = ("auc", "sensitivity", "specificity")
CONFIDENCE = 0.95
CSV_COLUMNS = ("seed", "folder", "run", "method", "auc", "sensitivity", "specificity",
               "melanet_minus_this_auc", "p_vs_melanet", "p_holm_vs_melanet", "wins_seed")


def seed_folder(results: str | Path, seed: int) -> Path:
    """``results/seed-<seed>``: one complete reproduce results folder."""
    return Path(results) / f"{layout.SEED_FOLDER_PREFIX}{seed}"


def seed_folders(results: str | Path) -> list[tuple[int, Path]]:
    """(seed, folder) of every ``seed-<S>`` sub-folder of ``results``, by seed."""
    found = []
    for child in Path(results).iterdir() if Path(results).is_dir() else ():
        match = SEED_FOLDER_PATTERN.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def sd_interval(sd: float, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Chi-square interval of a standard deviation ``sd`` of ``n`` >= 2 normal values (see the module docstring)."""
    from scipy import stats

    tail = (1 - confidence) / 2
    squares = (n - 1) * sd ** 2
    return (math.sqrt(squares / stats.chi2.ppf(1 - tail, n - 1)), math.sqrt(squares / stats.chi2.ppf(tail, n - 1)))


def spread(values: Sequence[float]) -> dict[str, Any]:
    """``mean``, ``sd`` (sample, n - 1; None for one value) with ``sd_ci_low``/``sd_ci_high`` (chi-square,
    None for under 2 values), ``min``, ``max``, ``n`` of finite values."""
    finite = [float(value) for value in values if value is not None and math.isfinite(value)]
    if not finite:
        return {"mean": None, "sd": None, "sd_ci_low": None, "sd_ci_high": None, "min": None, "max": None, "n": 0}
    array = np.asarray(finite)
    sd = float(array.std(ddof=1)) if array.size > 1 else None
    low, high = sd_interval(sd, array.size) if sd is not None else (None, None)
    return {"mean": float(array.mean()), "sd": sd, "sd_ci_low": low, "sd_ci_high": high,
            "min": float(array.min()), "max": float(array.max()), "n": int(array.size)}


def _gan_seed(seed_path: Path) -> int | None:
    """The seed of the stage-1 run the seed's MelaNet classifier used (None when unknown)."""
    try:  # a shipped results-only copy keeps the GAN's config but not its images, and may have moved
        gan_run = runs.linked_gan_run(seed_path / REFERENCE_FOLDER, require_synthesis=False)
        return runs.Run(gan_run).config().seed if gan_run is not None else None
    except (runs.RunError, config_module.ConfigError, OSError):
        return None


def _names(per_seed: list[dict[str, Any]]) -> list[str]:
    """The classifier folder names of the seeds, in Table 1 order (``baseline`` or an older ``vgg_gap``)."""
    return list(per_seed[0]["methods"])


def _seed_entry(seed: int, seed_path: Path) -> dict[str, Any] | None:
    """One seed's AUCs, figures and paired tests, or None when its four evaluations are not all there."""
    expected = [folder.name for folder in compare.reproduce_folders(seed_path)]
    folders = [name for name in expected if (seed_path / name / runs.METRICS_FILE).is_file()]
    if folders != expected:
        return None
    rows = {name: compare.load_row(seed_path / name) for name in folders}
    comparison = paired.compare_runs([seed_path / name for name in folders], reference=str(seed_path / REFERENCE_FOLDER))
    tests = {Path(pair["b"]).name: {key: pair[key] for key in ("delta_auc", "ci_low", "ci_high", "p", "p_holm")}
             for pair in comparison["pairs"]}
    best = max(row["auc"] for row in rows.values() if row["auc"] is not None)
    return {
        "seed": seed,
        "folder": seed_path.name,
        "gan_seed": _gan_seed(seed_path),
        "methods": {name: {"method": rows[name]["method"], **{figure: rows[name][figure] for figure in FIGURES}}
                    for name in folders},
        "winners": [name for name in folders if rows[name]["auc"] is not None and rows[name]["auc"] >= best - 1e-12],
        "melanet_vs": tests,
        "n_images": comparison["n_images"],
        "n_malignant": comparison["n_malignant"],
    }


POOLED_BOOTSTRAP_SAMPLES = 2000


def _auc_rows(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Mann-Whitney AUC (ties 1/2) of each row of (R, N) ``scores`` against (R, N) 0/1 ``labels``."""
    from scipy import stats

    ranks = stats.rankdata(scores, axis=-1)
    positives = labels.sum(axis=-1)
    negatives = labels.shape[-1] - positives
    return ((ranks * labels).sum(axis=-1) - positives * (positives + 1) / 2) / (positives * negatives)


def pooled_difference(labels: Any, first: Any, second: Any, *, samples: int = POOLED_BOOTSTRAP_SAMPLES,
                      confidence: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Mean over seeds of AUC(first) - AUC(second), with a bootstrap over the test images.

    ``first``/``second``: (S, N) probabilities of S seeds on the same N images (``labels`` (N,)). Each
    bootstrap draw resamples the N images once and uses the same draw for every seed and both methods,
    so the interval keeps the images' shared difficulty and the seeds' correlation. Draws with one class
    are redrawn. p: two-sided, twice the smaller share of draws on either side of 0 (at least 1/samples).
    """
    labels = np.asarray(labels, dtype=np.float64).reshape(-1)
    first, second = np.atleast_2d(np.asarray(first, float)), np.atleast_2d(np.asarray(second, float))
    if first.shape != second.shape or first.shape[1] != labels.size:
        raise ValueError(f"pooled test: shapes {first.shape} and {second.shape} do not match {labels.size} images")
    observed = float(np.mean(_auc_rows(np.broadcast_to(labels, first.shape), first)
                             - _auc_rows(np.broadcast_to(labels, second.shape), second)))
    generator = np.random.default_rng(seed)
    means = []
    while len(means) < samples:
        index = generator.integers(0, labels.size, labels.size)
        drawn = labels[index]
        if drawn.min() == drawn.max():
            continue
        rows = np.broadcast_to(drawn, first.shape)
        means.append(float(np.mean(_auc_rows(rows, first[:, index]) - _auc_rows(rows, second[:, index]))))
    values = np.asarray(means)
    tail = (1 - confidence) / 2
    p_value = min(1.0, 2 * min(np.mean(values <= 0), np.mean(values >= 0)))
    return {"mean_delta_auc": observed, "ci_low": float(np.quantile(values, tail)),
            "ci_high": float(np.quantile(values, 1 - tail)), "p": max(p_value, 1 / samples),
            "seeds": int(first.shape[0]), "samples": samples}


def random_seeds_difference(labels: Any, first: Any, second: Any, seeds: Sequence[int], *,
                            confidence: float = CONFIDENCE) -> dict[str, Any]:
    """Mean over seeds of AUC(first) - AUC(second), the seeds random (Obuchowski-Rockette, seeds as readers).

    ``first``/``second``: (S, N) probabilities of S >= 2 seeds on the same N images; ``labels`` (N,) 0/1.
    Returns the difference with ``se``, ``ci_low``/``ci_high`` (Student's t on Hillis's ``ddf``), ``F``, ``p``,
    the variance components and each method's own mean AUC with its interval (``first``/``second``).
    """
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    first, second = np.atleast_2d(np.asarray(first, float)), np.atleast_2d(np.asarray(second, float))
    if first.shape != second.shape or first.shape[1] != labels.size:
        raise ValueError(f"random-seeds test: shapes {first.shape} and {second.shape} do not match {labels.size} images")
    if first.shape[0] < 2:
        raise ValueError(f"random-seeds test: {first.shape[0]} seed(s); seeds as a random factor need at least 2")
    names = [str(seed) for seed in seeds]
    result = obuchowski_rockette.analyse(labels, np.stack([first, second]), ("first", "second"), names,
                                         covariance="jackknife", confidence=confidence)
    keep = ("se", "ci_low", "ci_high", "F", "ndf", "ddf", "p", "variance_components")
    return {"mean_delta_auc": result["difference"], **{key: result[key] for key in keep},
            "first": {key: result["single_treatment"]["first"][key] for key in ("auc", "se", "df", "ci_low", "ci_high")},
            "second": {key: result["single_treatment"]["second"][key] for key in ("auc", "se", "df", "ci_low", "ci_high")},
            "seeds": int(first.shape[0]), "covariance": "jackknife", "confidence": confidence,
            "method": "Obuchowski-Rockette, seeds as random readers, Hillis (2007) ddf"}


def _pooled_tests(per_seed: list[dict[str, Any]], results: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """MelaNet minus each baseline over the seeds, on the images all share: (``random_seeds``
    (:func:`random_seeds_difference`), ``conditional_on_seeds`` (:func:`pooled_difference`))."""
    tests: dict[str, Any] = {}
    random_tests: dict[str, Any] = {}
    loaded = {entry["seed"]: {name: paired.load_scored_run(results / entry["folder"] / name)
                              for name in _names(per_seed)} for entry in per_seed}
    common = set.intersection(*(set(run.ids) for seed_runs in loaded.values() for run in seed_runs.values()))
    ids = sorted(common)
    if not ids:
        return random_tests, tests

    def column(run: paired.ScoredRun) -> np.ndarray:
        order = {image_id: position for position, image_id in enumerate(run.ids)}
        return np.asarray([run.probabilities[order[image_id]] for image_id in ids])

    reference_run = next(iter(loaded.values()))[REFERENCE_FOLDER]
    order = {image_id: position for position, image_id in enumerate(reference_run.ids)}
    labels = np.asarray([reference_run.labels[order[image_id]] for image_id in ids])
    for name in _names(per_seed):
        if name == REFERENCE_FOLDER:
            continue
        first = np.vstack([column(seed_runs[REFERENCE_FOLDER]) for seed_runs in loaded.values()])
        second = np.vstack([column(seed_runs[name]) for seed_runs in loaded.values()])
        tests[name] = {**pooled_difference(labels, first, second), "n_images": len(ids)}
        if first.shape[0] >= 2:
            random_tests[name] = {**random_seeds_difference(labels, first, second, list(loaded)), "n_images": len(ids)}
    return random_tests, tests


def summarize(results: str | Path) -> dict[str, Any]:
    """The ``seeds.json`` mapping from the seed folders under ``results`` (raises when none is evaluated)."""
    results = Path(results)
    per_seed, incomplete = [], []
    for seed, folder in seed_folders(results):
        entry = _seed_entry(seed, folder)
        (per_seed if entry is not None else incomplete).append(entry if entry is not None else seed)
    if not per_seed:
        raise runs.RunError(f"{results}: no seed-<S> folder with all four evaluated classifiers "
                            f"({', '.join(folder.name for folder in compare.reproduce_folders(results))}) to summarize")
    if len({tuple(entry["methods"]) for entry in per_seed}) > 1:
        raise runs.RunError(f"{results}: the seed folders name their classifier folders differently "
                            f"({', '.join(sorted({'/'.join(entry['methods']) for entry in per_seed}))})")
    methods = []
    for name in _names(per_seed):
        summary: dict[str, Any] = {"folder": name, "method": per_seed[0]["methods"][name]["method"]}
        for figure in FIGURES:
            summary[figure] = spread([entry["methods"][name][figure] for entry in per_seed])
        summary["wins"] = sum(name in entry["winners"] for entry in per_seed)
        methods.append(summary)
    gan_seeds = [entry["gan_seed"] for entry in per_seed]
    try:
        random_tests, pooled = _pooled_tests(per_seed, results)
    except (runs.RunError, ValueError, OSError) as error:
        logger.warning("no pooled test over seeds: %s", error)
        random_tests, pooled = {}, {}
    for summary in methods:  # each method's mean AUC with its seeds-random interval
        folder = summary["folder"]
        side = "first" if folder == REFERENCE_FOLDER else "second"
        found = [test[side] for name, test in random_tests.items() if folder in (name, REFERENCE_FOLDER)]
        summary["auc_random_seeds"] = found[0] if found else None
    return {
        "random_seeds": random_tests,
        "conditional_on_seeds": pooled,
        "seeds": [entry["seed"] for entry in per_seed],
        "incomplete_seeds": incomplete,
        "scope": _scope(gan_seeds),
        "gan_seeds": gan_seeds,
        "reference": REFERENCE_FOLDER,
        "methods": methods,
        "per_seed": per_seed,
        "notes": ("SD is the sample standard deviation over seeds (n - 1). A seed's win goes to every method "
                  "with its highest AUC (ties share). p: two-sided DeLong test of MelaNet against the baseline on "
                  "that seed's test images; p_holm: Holm over the three baselines of that seed (family 'vs "
                  "reference', 3 tests). random_seeds (the headline): the mean over seeds of MelaNet's AUC minus that "
                  "of the other method, the seeds a random factor: Obuchowski-Rockette with seeds in the readers' place, "
                  "jackknife covariances over the test images, Hillis (2007) ddf. conditional_on_seeds: the same "
                  "mean with a bootstrap CI and p that resample the test images once per draw for every seed and "
                  "both methods, the seeds held fixed (an interval for these seeds only). SD interval: chi-square, "
                  "normal AUCs over seeds assumed."),
    }


def _scope(gan_seeds: Sequence[int | None]) -> str:
    known = [seed for seed in gan_seeds if seed is not None]
    if len(known) == len(gan_seeds) and len(set(known)) == 1 and len(known) > 1:
        return (f"classifiers only: every seed's MelaNet uses the one GAN trained with seed {known[0]}, and every "
                "seed keeps that GAN's validation split (data.split_seed); weights, batch order and augmentation vary")
    if len(known) == len(gan_seeds) and len(set(known)) == len(known):
        return "GAN and classifiers: each seed trains its own GAN"
    return "mixed or unknown GAN seeds (see gan_seeds)"


def to_markdown(summary: dict[str, Any]) -> str:
    """Two tables: the spread over seeds per method, then each seed's AUCs and MelaNet's paired p-values."""
    seeds = summary["seeds"]
    lines = [f"# Repeated reproduction: {len(seeds)} seed(s) ({', '.join(map(str, seeds))})", "",
             f"Seeds vary: {summary['scope']}.", ""]
    if summary["incomplete_seeds"]:
        lines += [f"Not yet evaluated (left out): seeds {', '.join(map(str, summary['incomplete_seeds']))}.", ""]
    lines += ["| Method | AUC mean [95 % CI, seeds random] | AUC SD [95 % CI] | AUC min | AUC max | "
              "Sensitivity mean ± SD | Specificity mean ± SD | Seeds won |",
              "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for method in summary["methods"]:
        cells = [method["method"]]
        for figure in FIGURES:
            stats = method[figure]
            if figure == "auc":
                mean = method.get("auc_random_seeds")
                cells.append(formatting.number(stats["mean"]) + (f" [{formatting.number(mean['ci_low'])}, {formatting.number(mean['ci_high'])}]"
                                                       if mean else ""))
                cells.append(formatting.number(stats["sd"]) + (f" [{formatting.number(stats['sd_ci_low'])}, {formatting.number(stats['sd_ci_high'])}]"
                                                     if stats.get("sd_ci_low") is not None else ""))
                cells += [formatting.number(stats["min"]), formatting.number(stats["max"])]
            else:
                cells.append(f"{formatting.number(stats['mean'])} ± {formatting.number(stats['sd'])}")
        cells.append(f"{method['wins']} of {len(seeds)}")
        lines.append("| " + " | ".join(cells) + " |")
    order = [method["folder"] for method in summary["methods"]]  # Table 1 order, as the folders are named
    baselines = [name for name in order if name != summary["reference"]]
    names = {method["folder"]: method["method"] for method in summary["methods"]}
    header = ["Seed"] + [f"AUC {names[name]}" for name in order]
    header += [f"MelaNet − {names[name]}: Δ, p (Holm)" for name in baselines]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    for entry in summary["per_seed"]:
        cells = [str(entry["seed"])]
        for name in order:
            text = formatting.number(entry["methods"][name]["auc"])
            cells.append(f"**{text}**" if name in entry["winners"] else text)
        for name in baselines:
            test = entry["melanet_vs"][name]
            cells.append(f"{test['delta_auc']:+.3f}, {formatting.p_cell(test['p'])} ({formatting.p_cell(test['p_holm'])})")
        lines.append("| " + " | ".join(cells) + " |")
    random_tests = summary.get("random_seeds") or {}
    pooled = summary.get("conditional_on_seeds") or {}
    if random_tests or pooled:
        lines += ["", f"Over the {len(seeds)} seeds (one finding for all seeds, not one per seed). Seeds random "
                  "(the headline: Obuchowski-Rockette, seeds as readers) and conditional on these seeds (bootstrap "
                  "over the test images only):", "",
                  "| MelaNet − | mean ΔAUC, seeds random [95 % CI] | SE | p (F test) | "
                  "conditional on these seeds [95 % CI] | p (joint bootstrap) |", "|---|---:|---:|---:|---:|---:|"]
        for name in baselines:
            test, fixed = random_tests.get(name), pooled.get(name)
            if test is None and fixed is None:
                continue
            cells = [names[name]]
            cells += ([f"{test['mean_delta_auc']:+.3f} [{test['ci_low']:+.3f}, {test['ci_high']:+.3f}]",
                       f"{test['se']:.3f}", formatting.p_cell(test["p"])] if test else ["n/a"] * 3)
            cells += ([f"{fixed['mean_delta_auc']:+.3f} [{fixed['ci_low']:+.3f}, {fixed['ci_high']:+.3f}]",
                       formatting.p_cell(fixed["p"])] if fixed else ["n/a"] * 2)
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", summary["notes"], ""]
    return "\n".join(lines)


def csv_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per seed and method (figures as fractions)."""
    rows = []
    for entry in summary["per_seed"]:
        for name in entry["methods"]:
            figures = entry["methods"][name]
            test = entry["melanet_vs"].get(name, {})
            rows.append({"seed": entry["seed"], "folder": entry["folder"], "run": name, "method": figures["method"],
                         **{figure: figures[figure] for figure in FIGURES},
                         "melanet_minus_this_auc": test.get("delta_auc"),
                         "p_vs_melanet": test.get("p"), "p_holm_vs_melanet": test.get("p_holm"),
                         "wins_seed": int(name in entry["winners"])})
    return rows


def write_summary(summary: dict[str, Any], results: str | Path) -> list[Path]:
    """Write ``seeds.md``, ``seeds.csv``, ``seeds.json`` atomically into ``results``."""
    results = Path(results)
    markdown, table, data = (results / name for name in SUMMARY_FILES)
    runs.atomic_write_text(markdown, to_markdown(summary))
    runs.atomic_write_csv(table, [{key: "" if value is None else value for key, value in row.items()}
                                  for row in csv_rows(summary)], CSV_COLUMNS)
    runs.atomic_write_json(data, summary)
    return [markdown, table, data]


def summarize_folder(results: str | Path) -> dict[str, Any]:
    """Summarize the seed folders under ``results`` and write the three summary files; returns the summary."""
    summary = summarize(results)
    write_summary(summary, results)
    logger.info("seeds summary of %d seed(s) written to %s", len(summary["seeds"]), results)
    return summary
