"""Every figure in the README's demo tables equals the shipped file it comes from.

The README quotes the demo's tables: Table 1 (from ``models/demo/table.csv``), the spread over seeds (from
``models/demo-seeds/seeds.json``), the shortcut audits and the probes; ``docs/demo-experiments.md`` the
PatchGAN-vs-projected arms (from ``docs/gan-arms/``). Rows are found by method name, so the test keeps
working when the demo is rebuilt; a row that names a method the files lack fails.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

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
        auc = methods[row[0]]["auc"]
        mean, sd = _numbers(row[1])
        assert abs(mean - auc["mean"]) <= 0.0005 + 1e-9 and abs(sd - auc["sd"]) <= 0.0005 + 1e-9, row
        assert abs(_numbers(row[2])[0] - auc["min"]) <= 0.0005 + 1e-9 and abs(_numbers(row[3])[0] - auc["max"]) <= 0.0005 + 1e-9
        assert _numbers(row[4]) == [methods[row[0]]["wins"], count], row



def test_the_readme_pooled_seed_table_is_the_shipped_seeds_json() -> None:
    table = _table_with("mean ΔAUC over seeds", first="MelaNet minus")
    summary = json.loads((REPOSITORY / "models" / "demo-seeds" / "seeds.json").read_text())
    folders = {method["method"]: method["folder"] for method in summary["methods"]}
    rows = table[2:]
    assert {row[0] for row in rows} == {name for name, folder in folders.items() if folder in summary["pooled_vs_melanet"]}
    for row in rows:
        pooled = summary["pooled_vs_melanet"][folders[row[0]]]
        assert _numbers(row[1]) == [round(pooled[key], 3) for key in ("mean_delta_auc", "ci_low", "ci_high")], row
        assert _numbers(row[2]) == [round(pooled["p"], 3)], row


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
        expected = [
            [full["auc"], full["ci_low"], full["ci_high"]],
            [lesion["auc"], lesion["delta"], lesion["p"]],
            [background["auc"], background["delta"], background["p"]],
            [jpeg["mean_abs_change"], jpeg["max_abs_change"]],
            [rotation["mean_abs_change"], rotation["max_abs_change"]],
        ]
        for cell, want in zip(row[1:], expected):
            values = [value for value in _numbers(cell.replace("p < 0.001", "p = 0.000")) if value not in (75.0, 10.0)]
            assert len(values) == len(want), (row[0], cell)
            for value, target in zip(values, want):
                digits = max(len(text.split(".")[1]) if "." in text else 0
                             for text in NUMBER.findall(cell) if abs(float(text) - value) < 1e-12)
                assert abs(value - target) <= 0.5 * 10 ** -digits + 1e-9, (row[0], cell, target)


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
    readme = README.read_text()
    for arm, label in (("projected", "lowers the KID to"), ("patchgan", "(PatchGAN")):
        quoted = re.search(re.escape(label) + r" (\d+\.\d+)", readme)
        assert quoted is not None and abs(float(quoted.group(1)) - mean(arm, "kid")) < 0.005, label


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
