"""PatchGAN or a projected discriminator for the demo preset, decided on training and validation images only.

Per arm and seed: ``melanet train-gan``, ``synthesize``, a MelaNet ``train-classifier``
(``classifier.training_set=synthetic`` on that GAN) and ``audit-synthesis --classifier``. Nothing here calls
``evaluate``: no test image is read. The measures and the decision rule are the ones written down in
``docs/demo-experiments.md`` ("PatchGAN or a projected discriminator") before the first run:

    python scripts/gan_arms.py --out runs/gan-arms --seeds 42 43 44

Finished steps are skipped, so an interrupted comparison continues where it stopped. Writes
``OUT/gan_arms.csv`` (one row per arm and seed) and ``OUT/decision.json``, and prints both.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path

from sklearn.metrics import roc_auc_score

CONFIG = "configs/demo.yaml"
ARMS = {
    "patchgan": [],
    "projected": ["gan.discriminator=projected", "gan.diff_augment=true"],
    # a second, separately pre-registered comparison (docs/demo-experiments.md, "A larger identity loss")
    "identity5": ["gan.identity_weight=5.0"],
    # a third, pre-registered comparison (docs/demo-experiments.md, "Lesion-only synthesis")
    "patchgan-lesion": ["gan.composite=lesion"],
    "identity5-lesion": ["gan.identity_weight=5.0", "gan.composite=lesion"],
}
# The rule (docs/demo-experiments.md), fixed before any run.
MEMORISATION_LIMIT = 0.10
PROBE_MARGIN = 0.05
AUC_MARGIN = 0.02


def _melanet(*arguments: str) -> None:
    subprocess.run([sys.executable, "-m", "melanet", "-q", *arguments], check=True)


def _sets(items: list[str]) -> list[str]:
    return [part for item in items for part in ("--set", item)]


def run_arm(out: Path, arm: str, seed: int, config: str = CONFIG) -> dict:
    """Run (or finish) one arm on one seed and return its measures."""
    overrides = [f"seed={seed}", *ARMS[arm]]
    gan, classifier = out / arm / f"seed-{seed}" / "gan", out / arm / f"seed-{seed}" / "melanet"
    started = time.monotonic()
    if not (gan / "synthetic" / "manifest.csv").is_file():
        if not (gan / "generator_benign_to_malignant.keras").is_file():
            resume = ["--resume", str(gan)] if (gan / "checkpoints").is_dir() else \
                ["--config", config, "--run", str(gan), *_sets(overrides)]
            _melanet("train-gan", *resume)
        _melanet("synthesize", "--run", str(gan))
    if not (classifier / "validation_predictions.csv").is_file():
        resume = ["--resume", str(classifier)] if (classifier / "checkpoints").is_dir() else \
            ["--config", config, "--run", str(classifier),
             *_sets([*overrides, "classifier.training_set=synthetic", f"classifier.gan_run={gan}"])]
        _melanet("train-classifier", *resume)
    audit_file = gan / "audit" / "audit.json"
    if not audit_file.is_file() or "pixel_probe" not in json.loads(audit_file.read_text())["realism"]:
        _melanet("audit-synthesis", "--run", str(gan), "--classifier", str(classifier))  # (again: older audits lack the pixel probe)
    seconds = time.monotonic() - started

    with open(classifier / "validation_predictions.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    audit = json.loads((gan / "audit" / "audit.json").read_text())
    backbone = audit["feature_spaces"]["backbone"]
    kid, yardstick = backbone["kid"]["synthetic_vs_real_malignant"], backbone["kid"]["real_benign_vs_real_malignant"]
    return {
        "arm": arm, "seed": seed,
        "val_auc": round(float(roc_auc_score([int(r["label"]) for r in rows],
                                             [float(r["prob_malignant"]) for r in rows])), 4),
        "val_n": len(rows), "val_malignant": sum(int(r["label"]) for r in rows),
        "realism_probe_auc": round(float(audit["realism"]["probe"]["auc"]), 4),
        "pixel_probe_auc": round(float(audit["realism"]["pixel_probe"]["auc"]), 4),
        "pixel_yardstick_auc": round(float(audit["realism"]["pixel_yardstick"]["auc"]), 4),
        "kid": round(kid["kid"], 4), "kid_low": round(kid["low"], 4), "kid_high": round(kid["high"], 4),
        "yardstick_kid": round(yardstick["kid"], 4), "yardstick_low": round(yardstick["low"], 4),
        "yardstick_high": round(yardstick["high"], 4),
        "memorisation_share": round(float(backbone["memorisation"]["share_closer_than_real_q05"]), 4),
        "seconds": round(seconds, 1),
    }


def _mean(rows: list[dict], arm: str, key: str) -> float:
    values = [row[key] for row in rows if row["arm"] == arm]
    return sum(values) / len(values)


def decide(rows: list[dict], challenger: str = "projected") -> dict:
    """The pre-registered rule on the seed means: does ``challenger`` replace PatchGAN?"""
    means = {arm: {key: round(_mean(rows, arm, key), 4) for key in ("val_auc", "realism_probe_auc",
                                                                    "memorisation_share", "kid")}
             for arm in ("patchgan", challenger)}
    d_probe = means[challenger]["realism_probe_auc"] - means["patchgan"]["realism_probe_auc"]
    d_auc = means[challenger]["val_auc"] - means["patchgan"]["val_auc"]
    memorisation_ok = means[challenger]["memorisation_share"] <= MEMORISATION_LIMIT
    more_real = d_probe < -PROBE_MARGIN and d_auc >= -AUC_MARGIN
    better_auc = d_auc > AUC_MARGIN and d_probe <= PROBE_MARGIN
    return {"means": means, "delta_realism_probe_auc": round(d_probe, 4), "delta_val_auc": round(d_auc, 4),
            "memorisation_ok": memorisation_ok, "more_real": more_real, "better_val_auc": better_auc,
            "challenger": challenger, f"{challenger}_wins": bool(memorisation_ok and (more_real or better_auc)),
            "seeds": sorted({row["seed"] for row in rows})}


LESION_ARMS = ("patchgan-lesion", "identity5-lesion")


def decide_lesion(rows: list[dict], challengers: tuple[str, ...] = LESION_ARMS) -> dict:
    """The rule of "Lesion-only synthesis" (docs/demo-experiments.md) on the seed means: the rule above with the
    independent pixel probe added (neither probe may rise by more than ``PROBE_MARGIN``); of several winners,
    the one with the lower sum of the two probes."""
    keys = ("val_auc", "realism_probe_auc", "pixel_probe_auc", "memorisation_share", "kid")
    means = {arm: {key: round(_mean(rows, arm, key), 4) for key in keys} for arm in ("patchgan", *challengers)}
    verdicts = {}
    for challenger in challengers:
        delta = {key: round(means[challenger][key] - means["patchgan"][key], 4)
                 for key in ("val_auc", "realism_probe_auc", "pixel_probe_auc")}
        memorisation_ok = means[challenger]["memorisation_share"] <= MEMORISATION_LIMIT
        pixel_ok = delta["pixel_probe_auc"] <= PROBE_MARGIN
        more_real = delta["realism_probe_auc"] < -PROBE_MARGIN and pixel_ok and delta["val_auc"] >= -AUC_MARGIN
        better_auc = delta["val_auc"] > AUC_MARGIN and delta["realism_probe_auc"] <= PROBE_MARGIN and pixel_ok
        verdicts[challenger] = {"delta": delta, "memorisation_ok": memorisation_ok, "more_real": more_real,
                                "better_val_auc": better_auc, "wins": bool(memorisation_ok and (more_real or better_auc))}
    winners = [arm for arm in challengers if verdicts[arm]["wins"]]
    winner = min(winners, key=lambda arm: (means[arm]["realism_probe_auc"] + means[arm]["pixel_probe_auc"],
                                           challengers.index(arm))) if winners else "patchgan"
    return {"means": means, "verdicts": verdicts, "winner": winner, "seeds": sorted({row["seed"] for row in rows})}


def picture(out: Path, arms: list[str], seed: int, path: Path, count: int = 6) -> Path:
    """A JPEG of the first ``count`` benign training sources of ``seed`` (top row) and, one row per arm, their
    synthetic lesions, all at the run's size. Training images only."""
    import numpy as np
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from melanet.runs import runs
    from melanet.data import splits
    from melanet.gan import synthesis

    first = out / arms[0] / f"seed-{seed}" / "gan"
    config = runs.Run.open(first).config()
    training, _ = splits.training_and_validation(config.data, config.seed)
    rows_of = {arm: synthesis.read_manifest(out / arm / f"seed-{seed}" / "gan")[:count] for arm in arms}
    sources = [row["source_id"] for row in rows_of[arms[0]]]
    grid = [np.concatenate([training.images[training.ids.index(source)] for source in sources], axis=1)]
    for arm in arms:
        assert [row["source_id"] for row in rows_of[arm]] == sources, f"{arm}: other sources"
        grid.append(np.concatenate([np.asarray(Image.open(out / arm / f"seed-{seed}" / "gan" / row["path"])
                                               .convert("RGB")) for row in rows_of[arm]], axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(grid, axis=0)).save(path, quality=90)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 43, 44])
    parser.add_argument("--arms", nargs="+", default=["patchgan", "projected"], choices=list(ARMS))
    parser.add_argument("--config", default=CONFIG, help="the preset both arms start from (default: the demo's)")
    parser.add_argument("--picture", type=Path, metavar="JPEG",
                        help="only draw the first seed's first six sources and each arm's lesions into JPEG")
    args = parser.parse_args()
    if args.picture:
        print(picture(args.out, args.arms, args.seeds[0], args.picture))
        return
    rows = []
    for seed in args.seeds:  # seed-major: an early stop still leaves both arms on the first seeds
        for arm in args.arms:
            row = run_arm(args.out, arm, seed, args.config)
            rows.append(row)
            print(json.dumps(row), flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    lesion = set(args.arms) == {"patchgan", *LESION_ARMS}
    name = "gan_arms.csv" if set(args.arms) <= {"patchgan", "projected"} else \
        "gan_arms-lesion.csv" if lesion else f"gan_arms-{'-'.join(args.arms)}.csv"
    with open(args.out / name, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if lesion:
        decision = decide_lesion(rows)
        (args.out / "decision-lesion.json").write_text(json.dumps(decision, indent=2) + "\n")
        print(json.dumps(decision, indent=2))
    elif "patchgan" in args.arms and len(args.arms) == 2:
        challenger = next(arm for arm in args.arms if arm != "patchgan")
        decision = decide(rows, challenger)
        name = "decision.json" if challenger == "projected" else f"decision-{challenger}.json"
        (args.out / name).write_text(json.dumps(decision, indent=2) + "\n")
        print(json.dumps(decision, indent=2))


if __name__ == "__main__":
    main()
