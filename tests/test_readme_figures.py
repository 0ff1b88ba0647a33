"""Every figure in the README's demo tables equals the shipped file it comes from.

The README quotes the demo's tables: Table 1 (from ``models/demo/table.csv``), the spread over seeds (from
``models/demo-seeds/seeds.json``), the shortcut audits and the probes; ``docs/demo-experiments.md`` the
PatchGAN-vs-projected arms (from ``docs/gan-arms/``). Rows are found by method name, so the test keeps
working when the demo is rebuilt; a row that names a method the files lack fails.

Beyond the tables, every number of the README's prose is parsed (a regex over the text) and must lie in a
claim whose numbers equal, to the decimals shown, the shipped file they come from (``_claims``: the figure and
its interval together), or in a listed plain count, setting or citation (``PLAIN``); anything else fails with
its line.
"""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import numpy as np
import yaml

REPOSITORY = Path(__file__).resolve().parents[1]
README = REPOSITORY / "README.md"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of ``text`` as rows of cells (header and separator rows included)."""
    tables, current = [], []
    for line in text.splitlines():
        if line.startswith("|"):
            current.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current)
            current = []
    if current:
        tables.append(current)
    return tables


def _numbers(cell: str) -> list[float]:
    return [float(value) for value in NUMBER.findall(cell.replace("−", "-").replace("*", ""))]


def _assert_rounded(shown: list[float], expected: list[float], where) -> None:
    """Each shown value is its expected one rounded to the decimals it is shown with."""
    assert len(shown) == len(expected), where
    for value, truth in zip(shown, expected):
        decimals = len(str(value).split(".")[1]) if "." in str(value) else 0
        assert abs(value - truth) <= 0.5 * 10 ** -decimals + 1e-9, (where, value, truth)


def _table_with(header_start: str, first: str = "Method") -> list[list[str]]:
    found = [table for table in _tables(README.read_text()) if table[0][0] == first and header_start in table[0][1]]
    assert len(found) == 1, f"expected one README table whose second column starts with {header_start!r}"
    return found[0]


def test_the_readme_table_1_is_the_shipped_table_csv() -> None:
    table = _table_with("AUC %")
    with (REPOSITORY / "models" / "demo" / "table.csv").open(newline="") as handle:
        shipped = {row["method"]: row for row in csv.DictReader(handle)}
    header = table[0]
    rows = table[2:]
    assert {row[0] for row in rows} == set(shipped), "the README's methods are the shipped table's methods"
    for row in rows:
        source = shipped[row[0]]
        for column, cell in zip(header[1:], row[1:]):
            values = _numbers(cell)
            if column.startswith("AUC"):
                expected = [100 * float(source[key]) for key in ("auc", "auc_low", "auc_high")][: len(values)]
            elif column.startswith("Sensitivity"):
                expected = [100 * float(source[key]) for key in ("sensitivity", "sensitivity_low", "sensitivity_high")][: len(values)]
            elif column.startswith("Specificity"):
                expected = [100 * float(source[key]) for key in ("specificity", "specificity_low", "specificity_high")][: len(values)]
            elif column in ("FN", "FP"):
                expected = [float(source[column.lower()])]
            else:
                continue
            assert len(values) == len(expected) and values, (row[0], column, cell)
            for value, want in zip(values, expected):
                decimals = len(str(value).split(".")[1]) if "." in cell else 0
                assert abs(value - want) <= 0.5 * 10 ** -decimals + 1e-9, (row[0], column, cell, want)


def test_the_readme_seed_table_is_the_shipped_seeds_json() -> None:
    table = _table_with("test AUC mean")
    summary = json.loads((REPOSITORY / "models" / "demo-seeds" / "seeds.json").read_text())
    methods = {method["method"]: method for method in summary["methods"]}
    count = len(summary["seeds"])
    assert f"over {count} seeds" in table[0][1]
    rows = table[2:]
    assert {row[0] for row in rows} == set(methods)
    for row in rows:
        auc, mean = methods[row[0]]["auc"], methods[row[0]]["auc_random_seeds"]
        _assert_rounded(_numbers(row[1]), [auc["mean"], mean["ci_low"], mean["ci_high"]], row)
        _assert_rounded(_numbers(row[2]), [auc["sd"], auc["sd_ci_low"], auc["sd_ci_high"]], row)
        _assert_rounded(_numbers(row[3]) + _numbers(row[4]), [auc["min"], auc["max"]], row)
        assert _numbers(row[5]) == [methods[row[0]]["wins"], count], row


def test_the_readme_pooled_seed_table_is_the_shipped_seeds_json() -> None:
    """Seeds random (the headline, Obuchowski-Rockette) beside the bootstrap conditional on these seeds."""
    table = _table_with("mean ΔAUC, seeds random", first="MelaNet minus")
    summary = json.loads((REPOSITORY / "models" / "demo-seeds" / "seeds.json").read_text())
    folders = {method["method"]: method["folder"] for method in summary["methods"]}
    rows = table[2:]
    assert {row[0] for row in rows} == {name for name, folder in folders.items() if folder in summary["random_seeds"]}
    for row in rows:
        random_seeds = summary["random_seeds"][folders[row[0]]]
        fixed = summary["conditional_on_seeds"][folders[row[0]]]
        _assert_rounded(_numbers(row[1]), [random_seeds[key] for key in ("mean_delta_auc", "ci_low", "ci_high")], row)
        _assert_rounded(_numbers(row[2]) + _numbers(row[3]), [random_seeds["se"], random_seeds["p"]], row)
        _assert_rounded(_numbers(row[4]), [fixed[key] for key in ("mean_delta_auc", "ci_low", "ci_high")], row)
        _assert_rounded(_numbers(row[5]), [fixed["p"]], row)


def _aucs(value) -> set[float]:
    """Every number stored under a key named ``auc`` anywhere in a JSON value, rounded to 3 places."""
    found: set[float] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "auc" and isinstance(item, (int, float)):
                found.add(round(float(item), 3))
            else:
                found |= _aucs(item)
    elif isinstance(value, list):
        for item in value:
            found |= _aucs(item)
    return found


def test_every_probe_auc_the_readme_quotes_is_in_the_shipped_audit_or_embedding_files() -> None:
    text = README.read_text()
    quoted = [float(value) for value in re.findall(r"(?:probe|realism|separab)[^.|]*?AUC (\d\.\d{3})", text)]
    demo = REPOSITORY / "models" / "demo"
    shipped: set[float] = set()
    for path in [demo / "gan" / "audit" / "audit.json", *demo.glob("*/embedding/separability.json")]:
        if path.is_file():
            shipped |= _aucs(json.loads(path.read_text()))
    assert shipped, "the shipped demo has no audit.json / separability.json to quote from"
    for value in quoted:
        assert round(value, 3) in shipped, f"README quotes probe AUC {value} that no shipped audit or embedding file holds"


def test_the_readme_shortcut_table_is_each_runs_shipped_shortcuts_json() -> None:
    table = _table_with("full AUC")
    with (REPOSITORY / "models" / "demo" / "table.csv").open(newline="") as handle:
        folders = {row["method"]: row["run"] for row in csv.DictReader(handle)}
    rows = table[2:]
    assert {row[0] for row in rows} == set(folders)
    for row in rows:
        audit = json.loads((REPOSITORY / "models" / "demo" / folders[row[0]] / "shortcuts" / "shortcuts.json").read_text())
        full, lesion, background = audit["full"], audit["lesion_only"], audit["background_only"]
        jpeg, rotation = audit["perturbations"]["jpeg75"], audit["perturbations"]["rotate10"]

        def view(figures: dict) -> list[float]:
            return [figures[key] for key in ("auc", "ci_low", "ci_high", "delta", "delta_ci_low", "delta_ci_high", "p", "p_holm")]

        expected = [[full["auc"], full["ci_low"], full["ci_high"]], view(lesion), view(background),
                    [jpeg["mean_abs_change"], jpeg["max_abs_change"]],
                    [rotation["mean_abs_change"], rotation["max_abs_change"]]]
        for cell, want in zip(row[1:], expected):
            _assert_rounded(_numbers(cell), want, (row[0], cell))


def test_the_gan_arms_table_and_verdict_follow_from_the_shipped_csv() -> None:
    """docs/demo-experiments.md's arms table is docs/gan-arms/gan_arms.csv, and the verdict in decision.json
    and the README is the pre-registered rule applied to the CSV (recomputed here, by hand)."""
    with open(REPOSITORY / "docs" / "gan-arms" / "gan_arms.csv", newline="") as handle:
        rows = {(int(row["seed"]), row["arm"]): row for row in csv.DictReader(handle)}
    assert sorted({seed for seed, _ in rows}) == [42, 43, 44] and len(rows) == 6
    text = (REPOSITORY / "docs" / "demo-experiments.md").read_text()
    table = [t for t in _tables(text) if t[0][:2] == ["seed", "arm"]]
    assert len(table) == 1
    names = {"PatchGAN": "patchgan", "projected": "projected"}
    for cells in table[0][2:]:
        row = rows[(int(cells[0]), names[cells[1]])]
        expected = [float(row[key]) for key in ("val_auc", "realism_probe_auc", "kid", "kid_low", "kid_high",
                                                "yardstick_kid", "yardstick_low", "yardstick_high",
                                                "memorisation_share")]
        _assert_rounded(_numbers(cells[2]) + _numbers(cells[3]) + _numbers(cells[4]) + _numbers(cells[5])
                        + _numbers(cells[6]), expected, cells)

    def mean(arm: str, key: str) -> float:
        return sum(float(rows[(seed, arm)][key]) for seed in (42, 43, 44)) / 3

    d_probe = mean("projected", "realism_probe_auc") - mean("patchgan", "realism_probe_auc")
    d_auc = mean("projected", "val_auc") - mean("patchgan", "val_auc")
    wins = mean("projected", "memorisation_share") <= 0.10 and (
        (d_probe < -0.05 and d_auc >= -0.02) or (d_auc > 0.02 and d_probe <= 0.05))
    decision = json.loads((REPOSITORY / "docs" / "gan-arms" / "decision.json").read_text())
    assert decision["projected_wins"] is wins
    assert abs(decision["delta_realism_probe_auc"] - d_probe) < 1e-3 and abs(decision["delta_val_auc"] - d_auc) < 1e-3
    demo = (REPOSITORY / "configs" / "demo.yaml").read_text()
    assert ("discriminator: projected" in demo) is wins  # the preset ships what won


def test_the_lesion_composite_verdict_follows_from_the_shipped_csv() -> None:
    """docs/gan-arms/decision-lesion.json is the pre-registered rule of "Lesion-only synthesis" applied to
    docs/gan-arms/gan_arms-lesion.csv (recomputed here, by hand), the PatchGAN rows there equal those of the
    first comparison, and the demo preset ships a composite only when one won."""
    with open(REPOSITORY / "docs" / "gan-arms" / "gan_arms-lesion.csv", newline="") as handle:
        rows = {(int(row["seed"]), row["arm"]): row for row in csv.DictReader(handle)}
    arms = ("patchgan", "patchgan-lesion", "identity5-lesion")
    assert set(rows) == {(seed, arm) for seed in (42, 43, 44) for arm in arms}
    with open(REPOSITORY / "docs" / "gan-arms" / "gan_arms.csv", newline="") as handle:
        first = {int(row["seed"]): row for row in csv.DictReader(handle) if row["arm"] == "patchgan"}
    for seed, row in first.items():  # re-auditing added the pixel probe and changed nothing else
        for key in ("val_auc", "realism_probe_auc", "kid", "kid_low", "kid_high", "memorisation_share"):
            assert rows[(seed, "patchgan")][key] == row[key], (seed, key)

    text = (REPOSITORY / "docs" / "demo-experiments.md").read_text()
    table = [t for t in _tables(text) if t[0][:3] == ["arm", "seed", "MelaNet val AUC"]]
    assert len(table) == 1 and len(table[0]) == 2 + 9
    names = {"PatchGAN": "patchgan", "patchgan-lesion": "patchgan-lesion", "identity5-lesion": "identity5-lesion"}
    for cells in table[0][2:]:
        row = rows[(int(cells[1]), names[cells[0]])]
        expected = [float(row[key]) for key in ("val_auc", "realism_probe_auc", "pixel_probe_auc", "kid", "kid_low",
                                                "kid_high", "memorisation_share")]
        _assert_rounded([value for cell in cells[2:] for value in _numbers(cell)], expected, cells)

    def mean(arm: str, key: str) -> float:
        return sum(float(rows[(seed, arm)][key]) for seed in (42, 43, 44)) / 3

    winners = []
    for arm in arms[1:]:
        d_probe = mean(arm, "realism_probe_auc") - mean("patchgan", "realism_probe_auc")
        d_pixel = mean(arm, "pixel_probe_auc") - mean("patchgan", "pixel_probe_auc")
        d_auc = mean(arm, "val_auc") - mean("patchgan", "val_auc")
        if mean(arm, "memorisation_share") <= 0.10 and (
                (d_probe < -0.05 and d_pixel <= 0.05 and d_auc >= -0.02)
                or (d_auc > 0.02 and d_probe <= 0.05 and d_pixel <= 0.05)):
            winners.append(arm)
    expected = min(winners, key=lambda arm: mean(arm, "realism_probe_auc") + mean(arm, "pixel_probe_auc")) \
        if winners else "patchgan"
    decision = json.loads((REPOSITORY / "docs" / "gan-arms" / "decision-lesion.json").read_text())
    assert decision["winner"] == expected
    demo = (REPOSITORY / "configs" / "demo.yaml").read_text()
    assert ("composite: lesion" in demo) is (expected != "patchgan")


# ---------------------------------------------------------------------------------------------------------
# Every number of the README's prose: each comes from a shipped file (CLAIMS) or is a plain count or setting
# listed in PLAIN. Tables are checked above; code (fenced blocks, `inline code`) and link targets are commands
# and paths, not figures.

NUMBER_TEXT = r"([-+]?\d+(?:,\d{3})*(?:\.\d+)?)"
PROSE_NUMBER = re.compile(r"(?<![\w.])([-+−]?\d+(?:,\d{3})*(?:\.\d+)?)(?![\w]|\.\d)")


def _pattern(template: str) -> re.Pattern:
    """A README phrase with ``{}`` where a number stands; any run of spaces may be a line break."""
    pieces = re.split(r"(\{\}|\s+)", template)
    return re.compile("".join(NUMBER_TEXT if piece == "{}" else r"\s+" if piece.isspace() else re.escape(piece)
                              for piece in pieces if piece))


def _json(*parts: str):
    return json.loads(REPOSITORY.joinpath(*parts).read_text())


def _sources() -> dict:
    demo = ("models", "demo")
    runs = ("vgg_gap", "augment5x", "augment10x", "melanet")
    with (REPOSITORY / "models" / "demo" / "table.csv").open(newline="") as handle:
        table = {row["run"]: row for row in csv.DictReader(handle)}
    with (REPOSITORY / "docs" / "gan-arms" / "gan_arms.csv").open(newline="") as handle:
        arms = {(int(row["seed"]), row["arm"]): row for row in csv.DictReader(handle)}
    with (REPOSITORY / "models" / "demo" / "melanet" / "predictions.csv").open(newline="") as handle:
        predictions = {row["image"]: row for row in csv.DictReader(handle)}
    return {
        "metrics": {run: _json(*demo, run, "metrics.json") for run in runs},
        "shortcuts": {run: _json(*demo, run, "shortcuts", "shortcuts.json") for run in runs},
        "focus": {run: _json(*demo, run, "explain", "lesion_focus.json") for run in runs},
        "comparison": {Path(pair["b"]).name: pair for pair in _json(*demo, "comparison.json")["pairs"]},
        "audit": _json(*demo, "gan", "audit", "audit.json"),
        "seeds": _json("models", "demo-seeds", "seeds.json"),
        "memory": _json("benchmarks", "results", "training_memory.json"),
        "scale": _json("benchmarks", "results", "data_scale.json"),
        "table": table, "arms": arms, "predictions": predictions,
    }


def _interval(block: dict, value: str = "auc", low: str = "ci_low", high: str = "ci_high", scale: float = 1.0) -> list[float]:
    return [scale * block[value], scale * block[low], scale * block[high]]


def _wilson_percent(successes: int, n: int) -> list[float]:
    """The share and its 95 % Wilson score interval in percent, from the formula (z = 1.959964)."""
    z, share = 1.959963984540054, successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return [100 * share, 100 * (centre - half), 100 * (centre + half)]


def _unlike_threshold() -> float:
    """The 1st percentile of the shipped MelaNet's training images' similarity to their nearest other training
    image (cosine of the stored features, brute force), the Predict page's "unlike the training images" line."""
    with np.load(REPOSITORY / "models" / "demo" / "melanet" / "retrieval" / "index.npz") as data:
        features = data["features"].astype(np.float64)
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    similarity = features @ features.T
    np.fill_diagonal(similarity, -np.inf)
    return float(np.percentile(similarity.max(axis=1), 1))


def _claims(source: dict) -> list[tuple[str, list[float]]]:
    """(README phrase with {} for each number, the numbers the shipped files give), in README order."""
    metrics, shortcuts, seeds, audit = source["metrics"], source["shortcuts"], source["seeds"], source["audit"]
    translation = audit["translation"]["judges"]
    melanet = metrics["melanet"]
    rule_out, rule_in = melanet["operating_points"]["rule_out"], melanet["operating_points"]["rule_in"]
    augment_rule_in = metrics["augment5x"]["operating_points"]["rule_in"]
    # the Predict paragraph's evidence: counts on the validation split behind each threshold
    melanomas = rule_out["validation"]["n_malignant"]
    detected = round(rule_out["validation"]["sensitivity"] * melanomas)
    benign = rule_in["validation"]["n"] - rule_in["validation"]["n_malignant"]
    cleared = round(rule_in["validation"]["specificity"] * benign)

    def wilson(point: dict, name: str) -> list[float]:
        block = point["confidence_intervals"][name]
        return [100 * point[name], 100 * block["low"], 100 * block["high"]]

    def adjusted(point: dict, name: str) -> list[float]:
        block = point["prevalence_adjusted"]
        return [100 * block[name], 100 * block[f"{name}_ci"][0], 100 * block[f"{name}_ci"][1]]

    def unflagged(run: str) -> list[float]:
        block = metrics[run]["uncertainty"]["unflagged_minus_flagged"]
        return [block["delta"], block["ci_low"], block["ci_high"], block["p"]]

    def paired(run: str) -> list[float]:
        pair = source["comparison"][run]
        return [pair["delta_auc"], pair["ci_low"], pair["ci_high"], pair["p"], pair["p_holm"]]

    backbone = audit["feature_spaces"]["backbone"]
    realism = audit["realism"]
    patchgan = source["arms"][(42, "patchgan")]
    background = shortcuts["melanet"]["background_only"]
    baselines = ("vgg_gap", "augment5x", "augment10x")
    method = {entry["folder"]: entry for entry in seeds["methods"]}
    settings = melanet["evaluation_settings"]
    uncertainty = {run: metrics[run]["uncertainty"] for run in metrics}
    memory = source["memory"]["build"]
    demo_cv = yaml.safe_load((REPOSITORY / "configs" / "demo-cv.yaml").read_text())
    return [
        ("`configs/demo-cv.yaml` (candidate cross-validated demo at {} px: {} folds",
         [demo_cv["data"]["image_size"], demo_cv["classifier"]["folds"]]),
        ("The sample's test part has {} images ({} malignant)", [melanet["n"], melanet["n_malignant"]]),
        ("on the {} test images (threshold {}; the probabilities are low, so sensitivity at {} is low",
         [melanet["n"], settings["threshold"], settings["threshold"]]),
        ("for sensitivity >= {}; AUC intervals", [settings["target_sensitivity"]]),
        ("thresholds set on the {} validation images, {} of them malignant",
         [rule_out["validation"]["n"], rule_out["validation"]["n_malignant"]]),
        ("MelaNet's rule-out threshold {} misses none of the {} melanomas and clears {} of {} benign lesions "
         "(sensitivity {} % [{}, {}], specificity {} % [{}, {}], Wilson); at the stated prevalence of {} %",
         [rule_out["threshold"], rule_out["n_malignant"], rule_out["tn"], rule_out["n_benign"],
          *wilson(rule_out, "sensitivity"), *wilson(rule_out, "specificity"), 100 * settings["prevalence"]]),
        ("its NPV is {} % [{}, {}] and its PPV {} % [{}, {}]", adjusted(rule_out, "npv") + adjusted(rule_out, "ppv")),
        ("Its rule-in threshold {} reaches specificity {} % [{}, {}] ({} false alarms), far below its validation "
         "target of {};", [rule_in["threshold"], *wilson(rule_in, "specificity"), rule_in["fp"],
                           rule_in["validation"]["target_specificity"]]),
        ("Augment-5x's rule-in threshold ({}) raises no false alarm and finds {} of {} melanomas",
         [augment_rule_in["threshold"], augment_rule_in["tp"], augment_rule_in["n_malignant"]]),
        ("Under the {} flips and 90-degree rotations, {} of {} test images are flagged uncertain (spread > {}) for "
         "the GAP baseline, {} for MelaNet, {} for Augment-5x and {} for Augment-10x",
         [uncertainty["melanet"]["views"], uncertainty["vgg_gap"]["n_uncertain"], uncertainty["vgg_gap"]["n"],
          settings["uncertain_spread"], uncertainty["melanet"]["n_uncertain"], uncertainty["augment5x"]["n_uncertain"],
          uncertainty["augment10x"]["n_uncertain"]]),
        ("DeLong variances) is {} [{}, {}] (p = {}) for the GAP baseline, {} [{}, {}] (p = {}) for Augment-5x, {} "
         "[{}, {}] (p = {}) for Augment-10x and {} [{}, {}] (p = {}) for MelaNet",
         unflagged("vgg_gap") + unflagged("augment5x") + unflagged("augment10x") + unflagged("melanet")),
        ("P(malignant) is {}, above the rule-out threshold ({}) and below the rule-in threshold ({})",
         [float(source["predictions"]["ISIC_0000070"]["prob_malignant"]), rule_out["threshold"], rule_in["threshold"]]),
        ("(of the {} melanomas in the validation data, {}, {} % [{} %, {} %], scored above {}; of its {} benign lesions, "
         "{}, {} % [{} %, {} %], at or below {})",
         [melanomas, detected, *_wilson_percent(detected, melanomas), rule_out["threshold"],
          benign, cleared, *_wilson_percent(cleared, benign), rule_in["threshold"]]),
        ("nearest-neighbour similarities ({} for the shipped MelaNet)", [_unlike_threshold()]),
        ("MelaNet against its GAP baseline: {} AUC [{}, {}], DeLong p = {} (Holm over the {} tests of the family "
         "\"vs reference\": {}); against Augment-5x {} [{}, {}] (p = {}, Holm {}), against Augment-10x {} [{}, {}] "
         "(p = {}, Holm {})", [*paired("vgg_gap")[:4], len(source["comparison"]), paired("vgg_gap")[4],
                               *paired("augment5x"), *paired("augment10x")]),
        ("of the {} true positives put on average {} of their mass on the Otsu lesion mask against {} for a uniform "
         "map (MelaNet; the GAP baseline's {}: {} against {};",
         [source["focus"][run]["by_outcome"]["TP"][key] for run in ("melanet", "vgg_gap")
          for key in ("n", "mass_share", "area_fraction")]),
        ("KID from real melanomas {} [{}, {}]",
         _interval(backbone["kid"]["synthetic_vs_real_malignant"], "kid", "low", "high")),
        ("(the PatchGAN CycleGAN's on seed {}: {} [{}, {}]), against {} [{}, {}]",
         [42, *(float(patchgan[key]) for key in ("kid", "kid_low", "kid_high")),
          *_interval(backbone["kid"]["real_benign_vs_real_malignant"], "kid", "low", "high")]),
        ("(`kid_difference`), is {} [{}, {}]", _interval(backbone["kid_difference"], "difference", "low", "high")),
        ("at AUC {} [{}, {}] in the classifier's features", _interval(realism["probe"])),
        ("training lesions at {} [{}, {}] there", _interval(realism["yardstick"])),
        ("(no network) at {} [{}, {}] (real benign vs real malignant: {} [{}, {}];",
         _interval(realism["pixel_probe"]) + _interval(realism["pixel_yardstick"])),
        ("the rebuilt MelaNet scores {};", [melanet["auc"]]),
        ("(issue {}; `melanet audit-synthesis`", [34]),
        ("lesions {} % [{} %, {} %] of the way from their benign sources to real melanomas in the backbone's",
         _interval(translation["backbone"], "share", "share_low", "share_high", scale=100)),
        ("(mean P(malignant) {} for the sources, {} for the synthetic images, {} for real melanomas; {} % of them above",
         [translation["backbone"][key] for key in ("mean_source", "mean_synthetic", "mean_malignant")]
         + [100 * translation["backbone"]["above_source"]]),
        ("and {} % [{} %, {} %] in pixel features ({}, {}, {}; {} %",
         _interval(translation["pixel"], "share", "share_low", "share_high", scale=100)
         + [translation["pixel"][key] for key in ("mean_source", "mean_synthetic", "mean_malignant")]
         + [100 * translation["pixel"]["above_source"]]),
        ("on the same {} test images, read after", [shortcuts["melanet"]["n"]]),
        ("over the one family of {} such tests ({} views x {} models;",
         [shortcuts["melanet"]["family"]["size"], 2, len(shortcuts)]),
        ("with the lesion painted over ({}-{} against {}-{} on the full images",
         [min(shortcuts[run]["background_only"]["auc"] for run in baselines),
          max(shortcuts[run]["background_only"]["auc"] for run in baselines),
          min(shortcuts[run]["full"]["auc"] for run in baselines), max(shortcuts[run]["full"]["auc"] for run in baselines)]),
        ("it falls to {} [{}, {}], near chance (Δ {} [{}, {}], p = {}), but after Holm over the family's {} tests "
         "p = {},", [*_interval(background), background["delta"], background["delta_ci_low"], background["delta_ci_high"],
                     background["p"], shortcuts["melanet"]["family"]["size"], background["p_holm"]]),
        ("(mean change {}-{}); the GAP baseline and MelaNet move by {}-{} on average and up to {},",
         [min(shortcuts[run]["perturbations"][kind]["mean_abs_change"] for run in ("augment5x", "augment10x")
              for kind in ("jpeg75", "rotate10")),
          max(shortcuts[run]["perturbations"][kind]["mean_abs_change"] for run in ("augment5x", "augment10x")
              for kind in ("jpeg75", "rotate10")),
          min(shortcuts[run]["perturbations"][kind]["mean_abs_change"] for run in ("vgg_gap", "melanet")
              for kind in ("jpeg75", "rotate10")),
          max(shortcuts[run]["perturbations"][kind]["mean_abs_change"] for run in ("vgg_gap", "melanet")
              for kind in ("jpeg75", "rotate10")),
          max(shortcuts[run]["perturbations"][kind]["max_abs_change"] for run in ("vgg_gap", "melanet")
              for kind in ("jpeg75", "rotate10"))]),
        ("repeats the reproduction with seeds {}-{}", [min(seeds["seeds"]), max(seeds["seeds"])]),
        ("on the sample's {} test images (mean AUC interval", [seeds["random_seeds"]["augment5x"]["n_images"]]),
        ("SD interval: chi-square over {} seeds", [len(seeds["seeds"])]),
        ("MelaNet averages {} [{}, {}], beside the GAP baseline's {} [{}, {}], Augment-5x's {} [{}, {}] and "
         "Augment-10x's {} [{}, {}];", [value for run in ("melanet", *baselines)
                                         for value in _interval(method[run]["auc_random_seeds"])]),
        ("its difference from the GAP baseline is {} [{}, {}] (p = {}) and from Augment-5x {} [{}, {}] (p = {})",
         [seeds["random_seeds"][run][key] for run in ("vgg_gap", "augment5x")
          for key in ("mean_delta_auc", "ci_low", "ci_high", "p")]),
        ("(SD {} [{}, {}] against {}-{} for the baselines",
         [method["melanet"]["auc"][key] for key in ("sd", "sd_ci_low", "sd_ci_high")]
         + [min(method[run]["auc"]["sd"] for run in baselines), max(method[run]["auc"]["sd"] for run in baselines)]),
        ("preparing {} images at 128 px", [source["scale"]["prepare"]["after"]["images"]]),
        ("Building Augment-5x from {} images at 128 px grows memory by {} MB, as much as from a quarter of them, "
         "against {} MB before", [memory["after"]["images"] / 6, memory["after"]["growth_mb"],
                                  memory["before"]["growth_mb"]]),
    ]


# Plain counts, settings, citations and names: README phrases whose numbers have no file to come from.
PLAIN = [
    "Zunair & Hamza (2020)", "ISIC-2016", "Stage 1", "Stage 2", "with 95 % confidence", "(Python 3.11)",
    "minutes on 2 cores", "made on 2 CPU cores in 16 minutes", "own seed 42;", "40 cases", "(54 MB)",
    "128 px images from the sample's 512 px JPEGs", "trained 30 epochs", "stages 6-7", "Table 1's",
    "90-degree", "no interval excludes 0", "stage-5 output", "grown by 4 % of the side", "seed 42, all figures",
    "issue 19's aim of 0.80", "is seed 42.", "Δ [95 % CI]", "Bissoto et al. (2019)", "seed 42 is",
    "The demo runs at 128 px on 300 training images", "426 real CC0", "ISIC-2016 Part 3", "ISIC 2017 Part 3",
    "ISIC 2018 Task 3", "ISIC 2019 and ISIC 2020", "(issue 32)", "`** (issue 34)", "grouped by lesion (2019) or patient (2020), and 2020's",
    "for 2018.", "(past 1 GiB)", "images at 128 px", "test split (2019, 2020)", "port 12345", "(worker 0,",
]


def _covered_spans(text: str, source: dict) -> tuple[list[tuple[int, int]], list[str]]:
    """The spans of every claim and plain phrase, and the problems found (a claim whose phrase is missing,
    or whose number differs from its file beyond the decimals it is shown with)."""
    spans, problems = [], []
    for template, expected in _claims(source):
        matches = list(_pattern(template).finditer(text))
        if len(matches) != 1:
            problems.append(f"{len(matches)} places in the README match {template!r}")
            continue
        match = matches[0]
        if len(match.groups()) != len(expected):
            problems.append(f"{template!r}: {len(match.groups())} numbers shown, {len(expected)} expected")
            continue
        for index, (shown, truth) in enumerate(zip(match.groups(), expected), start=1):
            decimals = len(shown.split(".")[1]) if "." in shown else 0
            if abs(float(shown.replace(",", "")) - float(truth)) > 0.5 * 10 ** -decimals + 1e-9:
                problems.append(f"README says {shown} where the shipped file gives {truth} ({template!r})")
            spans.append(match.span(index))
    for phrase in PLAIN:
        found = [match.span() for match in re.finditer(_pattern(phrase).pattern, text)]
        if not found:
            problems.append(f"plain phrase {phrase!r} no longer in the README: drop it from PLAIN")
        spans += found
    return spans, problems


def _prose_numbers(text: str) -> list[tuple[int, str]]:
    """(offset, text) of every number outside tables, code and link targets."""
    hidden = [False] * len(text)
    for pattern in (r"```.*?```", r"`[^`\n]*`", r"\]\([^)]*\)", r"^\|.*\|$"):
        for match in re.finditer(pattern, text, re.S if pattern.startswith("```") else re.M):
            hidden[match.start():match.end()] = [True] * (match.end() - match.start())
    return [(match.start(1), match.group(1)) for match in PROSE_NUMBER.finditer(text) if not hidden[match.start(1)]]


def test_every_number_in_the_readme_is_a_shipped_figure_or_a_listed_plain_count() -> None:
    """Each number of the README's prose lies in a claim whose numbers equal the shipped files (with their
    intervals) or in a listed plain count/setting/citation; a number in neither, or one that differs from its
    file, fails with its line."""
    text = README.read_text()
    spans, problems = _covered_spans(text, _sources())
    for offset, shown in _prose_numbers(text):
        if not any(start <= offset < end for start, end in spans):
            line = text.count("\n", 0, offset) + 1
            problems.append(f"README line {line}: {shown!r} has no source ({text[max(0, offset - 40):offset + 20]!r})")
    assert not problems, "\n".join(problems)
