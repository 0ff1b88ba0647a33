"""`melanet reader-study create|results|mrmc`: readers against a classifier run on the same test cases."""

from __future__ import annotations

import argparse
from pathlib import Path

from melanet.common import formatting
from melanet.cli import common
from melanet.studies import study as study_module


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this module's verbs to the top-level parser."""
    parser = subparsers.add_parser(
        "reader-study",
        help="reader studies: dermatologists read a run's test cases blind (and aided); compare with the model",
        description=(
            "A reader study lives in ROOT/NAME/ (ROOT = --root, default studies/). Readers answer on the "
            "dashboard's Reader study page; 'results' compares them with the model."
        ),
    )
    verbs = parser.add_subparsers(dest="study_command", metavar="VERB", required=True)
    create = verbs.add_parser(
        "create",
        help="make a study from an evaluated classifier run",
        description=(
            "Write ROOT/NAME/ with study.json, cases.csv (case, image, label, prob_malignant, model_decision, "
            "file, overlay) and overlays/ (the run's Grad-CAM maps drawn over each original image in its own framing, for the aided phase). Cases: the test "
            "split of the run's data or of --data DIR; --cases N draws a stratified random subset with --seed. "
            "The model's decisions use the operating threshold the run chose on its validation split."
        ),
    )
    create.add_argument("--run", required=True, metavar="RUN", help="an evaluated train-classifier run folder")
    create.add_argument("--name", required=True, metavar="NAME", help="study name (letters, digits, - _ . /)")
    create.add_argument("--data", metavar="DIR", help="use the test split of this labelled data folder")
    create.add_argument("--cases", type=int, default=0, metavar="N", help="a stratified random subset of N cases")
    create.add_argument("--seed", type=int, default=0, help="seed of the subset and of the readers' case orders")
    create.add_argument("--no-aided", action="store_true", help="unaided phase only (no model output shown)")
    _add_root(create)
    create.set_defaults(handler=_create)

    results = verbs.add_parser(
        "results",
        help="compute readers vs model and write STUDY/results.json",
        description=(
            "Per reader and phase: sensitivity, specificity (Wilson CIs), AUC of the reader's rating, Cohen's "
            "kappa against the model, the model's figures on the same cases, a paired DeLong test; for "
            "aided vs unaided: answers changed right->wrong and wrong->right. Writes STUDY/results.json."
        ),
    )
    results.add_argument("study", metavar="STUDY", help="a study name under --root, or a study folder")
    _add_root(results)
    results.set_defaults(handler=_results)

    mrmc = verbs.add_parser(
        "mrmc",
        help="multi-reader multi-case analysis (Obuchowski-Rockette, Hillis ddf) of a ratings table",
        description=(
            "FILE.csv: a long table with columns reader,treatment,case,truth,rating (truth 1 = positive; any "
            "ordinal or continuous rating, higher = more likely positive); every reader rates every case under "
            "both treatments. Prints per treatment the mean AUC and CI, the random-readers F test (Hillis ddf) "
            "with the difference A - B, its SE and 95% CI, and the fixed-readers chi-square test."
        ),
    )
    mrmc.add_argument("file", metavar="FILE.csv", help="the ratings table")
    mrmc.add_argument("--treatments", nargs=2, metavar=("A", "B"),
                      help="the two treatments to compare, difference = A - B (default: the file's two)")
    mrmc.add_argument("--covariance", choices=("jackknife", "delong"), default="jackknife",
                      help="error covariances of the reader AUCs (default: jackknife over cases)")
    mrmc.add_argument("--out", metavar="FILE.json", help="also write the whole analysis as JSON")
    mrmc.add_argument("--power-for", type=float, metavar="DELTA",
                      help="sample size of the next study: for each number of readers (--readers), the cases needed "
                           "to detect an AUC difference DELTA (random readers and cases, Hillis & Obuchowski 2011), "
                           "with this table as the pilot")
    mrmc.add_argument("--readers", type=int, nargs="+", metavar="R",
                      help="numbers of readers for --power-for (default: 3 4 5 6 8 10 12 15 20)")
    mrmc.add_argument("--power", type=float, default=0.8, help="target power for --power-for (default 0.8)")
    mrmc.add_argument("--alpha", type=float, default=0.05, help="test size for --power-for (default 0.05)")
    mrmc.set_defaults(handler=_mrmc)


def _add_root(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", default=str(study_module.DEFAULT_STUDIES_DIR), metavar="DIR",
                        help="folder holding the studies (default: studies/)")


def _create(args: argparse.Namespace) -> int:
    from melanet.studies import create

    options = create.CreateOptions(data_root=args.data, cases=args.cases, seed=args.seed, aided=not args.no_aided)
    study = create.create_study(args.run, args.name, root=Path(args.root), options=options,
                                progress=common.progress_bar("test images"))
    print(f"study folder: {study.path}")
    overlays = study.info.get("overlays") or {}
    print(f"{len(study.cases)} cases ({study.info['n_malignant']} malignant), phases {', '.join(study.phases)}, "
          f"threshold {study.threshold:.4g} ({study.info['threshold']['source']})"
          + (f", overlays: {overlays.get('from_run_explain', 0)} from the run's explain/, "
             f"{overlays.get('computed', 0)} computed" if overlays else ""))
    return 0


def _results(args: argparse.Namespace) -> int:
    from melanet.studies import results as results_module

    study = study_module.find_study(args.study, Path(args.root))
    results, path = results_module.write_results(study)
    model = results["model"]
    print(f"model on {results['n_cases']} cases: AUC {model['auc']:.3f}, sensitivity {formatting.percent(model['sensitivity'])}, "
          f"specificity {formatting.percent(model['specificity'])} at threshold {study.threshold:.4g}")
    if not results["readers"]:
        print("no responses yet")
    for entry in results["readers"]:
        auc = "n/a" if entry["auc"] is None else f"{entry['auc']:.3f}"
        p_value = entry["delong"].get("p")
        print(f"{entry['reader']} ({entry['phase']}, {entry['n']} of {results['n_cases']}): sensitivity "
              f"{formatting.percent(entry['sensitivity'])}, specificity {formatting.percent(entry['specificity'])}, rating AUC {auc}"
              + ("" if p_value is None else f" (DeLong vs model {formatting.p_value(p_value)})")
              + ("" if entry["complete"] else " [incomplete: left out of pooled tests]"))
    for name, section in results.get("mrmc", {}).items():
        if section["available"]:
            print(f"MRMC {name.replace('_', ' ')}: {section['difference_of']} = {section['difference']:.3f} "
                  f"(95% CI {section['ci_low']:.3f} to {section['ci_high']:.3f}), {formatting.p_value(section['p'])}")
        else:
            print(f"MRMC {name.replace('_', ' ')}: {section['reason']} ({len(section['complete_readers'])} "
                  f"complete readers; needs {section['minimum']['readers']} and "
                  f"{section['minimum']['cases_per_class']} cases of each class)")
    print(f"results written to {path}")
    return 0


def _mrmc(args: argparse.Namespace) -> int:
    import json

    from melanet.runs import runs
    from melanet.studies import mrmc, sample_size

    table = mrmc.read_table(args.file, args.treatments)
    result = mrmc.analyse(table, covariance=args.covariance)
    for line in mrmc.summary_lines(result):
        print(line)
    if args.power_for is not None:
        pilot = sample_size.Pilot.from_analysis(result)
        readers = tuple(args.readers or sample_size.DEFAULT_READERS)
        rows = sample_size.sample_size_table(pilot, args.power_for, readers, target=args.power, alpha=args.alpha)
        for line in sample_size.summary_lines(pilot, args.power_for, rows, target=args.power, alpha=args.alpha):
            print(line)
        result["sample_size"] = {"delta": args.power_for, "power": args.power, "alpha": args.alpha,
                                 "method": "Hillis & Obuchowski (2011), random readers and random cases",
                                 "pilot_cases": pilot.n_cases, "rows": rows}
    if args.out:
        runs.atomic_write_bytes(Path(args.out), (json.dumps(result, indent=2) + "\n").encode("utf-8"))
        print(f"analysis written to {args.out}")
    return 0
